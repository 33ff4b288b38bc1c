// statx for the entries of one directory, made directly or through
// io_uring (IORING_OP_STATX), and the policy of StatxMode::kAuto that picks
// one of the two for each chunk of entries. uring_statx.cc explains the
// choice and the measurements behind it.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "index/listing.h"
#include "index/status.h"
#include "scan/walker.h"

struct io_uring;

namespace dirindex {

// Flags and mask of every statx the walker makes: never follow a symlink or
// trigger an automount, and ask only for what a ListedEntry stores.
inline constexpr int kEntryStatxFlags = AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT;
inline constexpr unsigned kEntryStatxMask =
    STATX_TYPE | STATX_MODE | STATX_SIZE | STATX_MTIME | STATX_INO;

// Copies type, mode, size, mtime, inode and device from `sx` into `entry`.
// A known bit is set only when the file system returned that field.
void FillEntryFromStatx(const struct statx& sx, ListedEntry& entry);

// Checks whether this process can use io_uring for IORING_OP_STATX. The
// first call runs ProbeIoUringStatx and logs the reason once when it
// cannot; later calls return the stored result.
Status IoUringStatxSupport();

// Sets up a small ring and checks that the kernel supports
// IORING_OP_STATX. Returns kUnavailable with the errno otherwise.
Status ProbeIoUringStatx();

// UringStatx owns one io_uring instance. One thread at a time may use it.
class UringStatx {
 public:
  // Sets up a ring with `queue_depth` submission entries and lets the
  // kernel run that many statx requests at once.
  static Result<std::unique_ptr<UringStatx>> Create(unsigned queue_depth);
  ~UringStatx();

  UringStatx(const UringStatx&) = delete;
  UringStatx& operator=(const UringStatx&) = delete;

  // Stats entries[i].name relative to `dir_fd` for each i whose errors[i]
  // is kNotStatted, keeping up to queue_depth requests in flight. Sets
  // errors[i] to 0 and fills the entry, or to the errno of the failed
  // statx. A non-ok return means the ring itself failed, and entries
  // it did not finish keep kNotStatted.
  Status StatAll(int dir_fd, std::span<ListedEntry> entries,
                 std::span<int> errors);

  // Shortest time from submission to completion among the requests of the
  // last StatAll, in ns. It approximates the latency of one statx on the
  // storage at hand, plus the cost of handing it to a kernel worker.
  int64_t last_min_latency_ns() const { return last_min_latency_ns_; }

  static constexpr int kNotStatted = -1;

 private:
  UringStatx(std::unique_ptr<io_uring> ring, unsigned queue_depth);

  // Submits what is queued, waits for at least one completion and handles
  // every completion that is ready. Returns the number handled.
  Result<unsigned> SubmitAndReap(std::span<ListedEntry> entries,
                                 std::span<int> errors);

  std::unique_ptr<io_uring> ring_;
  unsigned queue_depth_;
  // One slot per request in flight: the statx buffer the kernel writes,
  // the index of the entry, and when the request was submitted.
  std::vector<struct statx> slot_buffers_;
  std::vector<uint32_t> slot_entry_;
  std::vector<int64_t> slot_submitted_ns_;
  std::vector<uint32_t> free_slots_;
  std::vector<uint32_t> unsubmitted_slots_;
  int64_t last_min_latency_ns_ = 0;
};

// EntryStatter stats chunks of directory entries for one worker thread,
// with direct statx calls or through its own UringStatx, as `mode` and
// (for kAuto) the measured latency decide.
class EntryStatter {
 public:
  struct Config {
    StatxMode mode = StatxMode::kAuto;
    bool uring_allowed = true;  // false when io_uring is off or unavailable
    unsigned queue_depth = 256;
    // kAuto moves a chunk to io_uring when single statx calls take at least
    // this long.
    std::chrono::nanoseconds slow_statx{std::chrono::microseconds(40)};
  };

  explicit EntryStatter(const Config& config);
  ~EntryStatter();

  // Stats every entry of the chunk. errors[i] becomes 0 for a filled entry
  // or the errno of its statx. Direct calls stop early once `stop` is set,
  // leaving later entries at UringStatx::kNotStatted.
  void StatChunk(int dir_fd, std::span<ListedEntry> entries,
                 std::span<int> errors, const std::atomic<bool>& stop);

  uint64_t sync_calls() const { return sync_calls_; }
  uint64_t uring_calls() const { return uring_calls_; }

 private:
  void StatAuto(int dir_fd, std::span<ListedEntry> entries,
                std::span<int> errors, const std::atomic<bool>& stop);
  // Stats entries [begin, end) with direct calls.
  void StatSync(int dir_fd, std::span<ListedEntry> entries,
                std::span<int> errors, size_t begin, size_t end);
  // Stats the entries from `begin` on through the ring, falling back to
  // direct calls when the ring fails.
  void StatUring(int dir_fd, std::span<ListedEntry> entries,
                 std::span<int> errors, size_t begin);
  bool EnsureRing();

  Config config_;
  std::unique_ptr<UringStatx> ring_;
  bool ring_failed_ = false;
  // Set after a chunk whose io_uring requests still took at least
  // slow_statx each. The next chunks go to io_uring without a probe until
  // the last probe is kReprobeIntervalNs old.
  bool storage_slow_ = false;
  int64_t last_probe_ns_ = 0;  // steady clock
  uint64_t sync_calls_ = 0;
  uint64_t uring_calls_ = 0;
};

}  // namespace dirindex
