// LocalSource: the local directory walker. It lists a tree with getdents64
// and one statx per entry, spreads directories (and the entries of very
// large directories) over worker threads, and carries statx through
// io_uring where that is faster (see uring_statx.h).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "index/source.h"

namespace dirindex {

enum class StatxMode : uint8_t {
  kAuto = 0,   // choose per batch of entries from measured statx latency
  kSync = 1,   // plain statx calls on the worker threads
  kUring = 2,  // IORING_OP_STATX with many requests in flight
};

struct WalkerOptions {
  std::string root_path;        // absolute path of the tree to walk
  unsigned threads = 0;         // 0 means one per online CPU, at least 2
  StatxMode statx_mode = StatxMode::kAuto;
  bool cross_devices = false;   // descend into other mounted file systems
  size_t getdents_buffer_bytes = size_t{1} << 20;  // per thread, >= 4096
  unsigned uring_queue_depth = 256;  // statx requests in flight per thread
  // A directory with more entries is statted in chunks of this many
  // entries on several threads, and listed once all chunks are done.
  size_t chunk_entries = 4096;
  // false runs with direct statx only, as on a kernel without io_uring.
  bool use_io_uring = true;
  // kAuto sends a chunk to io_uring when single statx calls take at least
  // this long (uring_statx.cc gives the measurements behind the default).
  std::chrono::microseconds auto_uring_latency{40};
  // Called on a worker thread with each directory the walk opened, before
  // its names are read, so a watch added here misses nothing the listing
  // does not show. `fd` stays open only for the call.
  std::function<void(std::string_view dir_path, int fd)> on_directory_open;
  // Test hook: called on a worker thread after each getdents64 batch of
  // the directory at `dir_path` (relative to the root) and before any name
  // of that batch is statted.
  std::function<void(std::string_view dir_path)> after_getdents_for_test;
};

// WalkerStats counts what the walker did since it was created.
struct WalkerStats {
  uint64_t dirs_listed = 0;        // listings emitted with an ok status
  uint64_t dirs_failed = 0;        // listings emitted with an error
  uint64_t entries_vanished = 0;   // gone between getdents64 and statx
  uint64_t statx_sync = 0;         // statx calls made directly
  uint64_t statx_uring = 0;        // statx calls made through io_uring
  bool uring_available = false;    // io_uring allowed by options and kernel
};

class LocalSource : public Source {
 public:
  // Checks the options and the root (it must be a readable directory) and
  // raises the soft RLIMIT_NOFILE to the hard limit. io_uring that cannot
  // be set up is logged once and the walker runs with plain statx.
  static Result<std::unique_ptr<LocalSource>> Create(const WalkerOptions& options);

  ~LocalSource() override;

  // Walks the tree on `threads` threads (the caller's and threads - 1 new
  // ones). Directories of `request.dirs` that no longer exist are replaced
  // by their nearest existing ancestor, listed without recursion, so the
  // index records the removal. Depth counts path components below the root:
  // with max_depth N, directories up to N components deep are listed.
  Result<ScanTotals> Scan(const ScanRequest& request, ListingSink& sink,
                          const std::atomic<bool>& stop) override;
  std::string Describe() const override;

  WalkerStats stats() const;

 private:
  struct Impl;
  explicit LocalSource(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dirindex
