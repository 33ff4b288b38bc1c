// Design note: direct statx or io_uring, and how StatxMode::kAuto chooses.
//
// Linux has no non-blocking statx, so io_uring hands every IORING_OP_STATX
// to a kernel io-wq worker thread. On a warm cache or a fast local disk that
// hand-off costs more than the call itself. io_uring wins only where each
// statx waits on slow storage (NFS, SMB or FUSE, of which only FUSE is
// measured below), because it keeps up to queue_depth calls waiting at
// once where a direct call waits alone.
//
// kAuto therefore starts every chunk of entries with direct calls and times
// the first ones one by one. When two of them take at least slow_statx
// (WalkerOptions::auto_uring_latency, 40 us), the rest of the chunk goes
// through io_uring. Otherwise the chunk continues with direct calls in
// batches of kWatchBatch, and a batch whose mean reaches slow_statx moves
// the rest of the chunk to io_uring. After a chunk done through io_uring,
// the shortest submit-to-completion time of its requests shows whether
// storage is still slow. If so, the next chunks on that thread skip the
// probe for up to kReprobeIntervalNs, so a slow tree of small directories
// does not pay two slow direct calls per directory.
//
// Measured on the 2-core development VM (kernel 6.18, ext4 on virtio,
// liburing 2.3), walking one folder of 200,000 files with 2 threads, with a
// throwaway bench that calls LocalSource::Scan into a counting sink. Times
// are medians of 6 to 8 runs taken while no compiler ran:
//
//   per statx, one thread    warm 1.0 us; cold 3 us median, but 240 us for
//                            the first calls, which each read an inode block
//   warm cache               direct 0.140 s, io_uring 0.195 s, auto 0.141 s,
//                            find -printf '%s %T@ %p' 0.440 s
//   cold (drop_caches)       direct 0.62 s, io_uring 0.73 s, auto 0.61 s
//                            (one chunk through io_uring), find 1.12 s
//   FUSE, 1 ms per lookup    direct 16.5 s, io_uring 0.75 s, auto 0.77 s
//   FUSE, 100 us per lookup  direct 3.09 s, io_uring 0.51 s, auto 0.53 s
//   FUSE, no added delay     direct 0.24 s, io_uring 0.27 s, auto 0.23 s
//
// The FUSE rows (one or two runs each) walk a synthetic file system (a 20,000-file folder and 200
// folders of 20 files) whose daemon sleeps in every LOOKUP, after one walk
// that filled the dentry cache. With no added delay one direct statx there
// takes 16 to 65 us and both paths cost about the same, which puts the
// 40 us bound just above the point where io_uring starts to pay. Warm
// io_uring requests of 5-entry batches complete in 6 us (median, 11 us at
// p99), well below the bound, so a fast disk is not mistaken for slow.
#include "scan/uring_statx.h"

#include <liburing.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <thread>

#include <spdlog/spdlog.h>

namespace dirindex {

namespace {

// Direct calls made between two looks at the clock and at the stop flag.
constexpr size_t kWatchBatch = 256;

// Maximum time a thread trusts a slow verdict without probing direct calls
// again. On storage that stays slow the probe then costs two calls per
// interval, and a wrong verdict on fast storage lasts at most this long.
constexpr int64_t kReprobeIntervalNs = 200'000'000;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

EntryType TypeFromMode(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return EntryType::kFile;
    case S_IFDIR: return EntryType::kDir;
    case S_IFLNK: return EntryType::kSymlink;
    default: return EntryType::kOther;
  }
}

// Describes a failed io_uring call by its errno. `err` is positive.
Status UringError(StatusCode code, const char* call, int err) {
  std::string message = std::string(call) + " failed with errno " +
                        std::to_string(err) + " (" + std::strerror(err) + ").";
  if (err == EPERM) {
    message += " The sysctl kernel.io_uring_disabled or a seccomp filter "
               "may block io_uring.";
  }
  return Status(code, std::move(message));
}

// Logs the first failure of a ring in this process, so a broken io_uring
// shows up once instead of once per thread and scan.
void LogRingFailureOnce(const Status& status) {
  static std::atomic<bool> logged{false};
  if (!logged.exchange(true)) {
    spdlog::warn("io_uring statx failed, continuing with direct statx: {}",
                 status.ToString());
  }
}

}  // namespace

Status ProbeIoUringStatx() {
  io_uring ring;
  int ret = io_uring_queue_init(4, &ring, 0);
  if (ret < 0) {
    return UringError(StatusCode::kUnavailable, "io_uring_setup", -ret);
  }
  io_uring_probe* probe = io_uring_get_probe_ring(&ring);
  bool supported = probe != nullptr &&
                   io_uring_opcode_supported(probe, IORING_OP_STATX);
  if (probe != nullptr) io_uring_free_probe(probe);
  io_uring_queue_exit(&ring);
  if (!supported) {
    return Status(StatusCode::kUnavailable,
                  "the kernel's io_uring does not support IORING_OP_STATX");
  }
  return Status::Ok();
}

void FillEntryFromStatx(const struct statx& sx, ListedEntry& entry) {
  uint8_t known = 0;
  if (sx.stx_mask & STATX_TYPE) entry.type = TypeFromMode(sx.stx_mode);
  if (sx.stx_mask & STATX_MODE) {
    entry.mode = sx.stx_mode;
    known |= kKnownMode;
  }
  if (sx.stx_mask & STATX_SIZE) {
    entry.size = sx.stx_size;
    known |= kKnownSize;
  }
  if (sx.stx_mask & STATX_MTIME) {
    entry.mtime_ns = sx.stx_mtime.tv_sec * int64_t{1'000'000'000} +
                     sx.stx_mtime.tv_nsec;
    known |= kKnownMtime;
  }
  if (sx.stx_mask & STATX_INO) {
    entry.inode = sx.stx_ino;
    known |= kKnownInode;
  }
  entry.known = known;
  entry.mtime_precision = TimePrecision::kNanosecond;
  entry.device = makedev(sx.stx_dev_major, sx.stx_dev_minor);
}

Status IoUringStatxSupport() {
  static const Status support = [] {
    Status status = ProbeIoUringStatx();
    if (!status.ok()) {
      spdlog::warn("io_uring unavailable, the walker uses direct statx only: "
                   "{}", status.message());
    }
    return status;
  }();
  return support;
}

// ---------------------------------------------------------------------------
// UringStatx

Result<std::unique_ptr<UringStatx>> UringStatx::Create(unsigned queue_depth) {
  auto ring = std::make_unique<io_uring>();

  // Completions are only needed when this thread waits for them, so the
  // kernel may defer their task work until then. Kernels before 6.1 reject
  // these flags with EINVAL, so setup is then retried without them.
  io_uring_params params{};
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  int ret = io_uring_queue_init_params(queue_depth, ring.get(), &params);
  if (ret == -EINVAL) {
    params = io_uring_params{};
    ret = io_uring_queue_init_params(queue_depth, ring.get(), &params);
  }
  if (ret < 0) {
    return UringError(StatusCode::kUnavailable, "io_uring_setup", -ret);
  }

  // io-wq caps the workers of a ring at min(queue depth, 4 x CPUs) by
  // default, and on slow storage every request in flight needs its own
  // worker, so raise both limits to the queue depth. Measured here, 4096
  // statx at 1 ms each with 256 in flight took 0.58 s with the default cap
  // (8 workers on 2 CPUs) and 0.086 s with it raised.
  unsigned max_workers[2] = {queue_depth, queue_depth};
  ret = io_uring_register_iowq_max_workers(ring.get(), max_workers);
  if (ret < 0) {
    spdlog::debug("io_uring_register_iowq_max_workers failed: {}",
                  std::strerror(-ret));
  }
  return std::unique_ptr<UringStatx>(
      new UringStatx(std::move(ring), queue_depth));
}

UringStatx::UringStatx(std::unique_ptr<io_uring> ring, unsigned queue_depth)
    : ring_(std::move(ring)),
      queue_depth_(queue_depth),
      slot_buffers_(queue_depth),
      slot_entry_(queue_depth),
      slot_submitted_ns_(queue_depth) {
  free_slots_.reserve(queue_depth);
  for (unsigned slot = queue_depth; slot > 0; --slot) {
    free_slots_.push_back(slot - 1);
  }
  unsubmitted_slots_.reserve(queue_depth);
}

UringStatx::~UringStatx() {
  // A request still in flight writes into slot_buffers_ when it completes,
  // so wait for all of them before the buffers go away.
  size_t in_flight = queue_depth_ - free_slots_.size();
  while (in_flight > 0) {
    io_uring_cqe* cqe = nullptr;
    int ret = io_uring_submit_and_wait(ring_.get(), 1);
    if (ret < 0 && ret != -EINTR) break;
    while (io_uring_peek_cqe(ring_.get(), &cqe) == 0) {
      io_uring_cqe_seen(ring_.get(), cqe);
      --in_flight;
    }
  }
  if (in_flight > 0) {
    // NOTE: the ring failed with requests in flight. Their buffers are
    // leaked on purpose, because freeing them would let the kernel write
    // into reused memory.
    spdlog::error("io_uring statx ring closed with {} requests in flight; "
                  "leaking their buffers", in_flight);
    new std::vector<struct statx>(std::move(slot_buffers_));
  }
  io_uring_queue_exit(ring_.get());
}

Status UringStatx::StatAll(int dir_fd, std::span<ListedEntry> entries,
                           std::span<int> errors) {
  last_min_latency_ns_ = std::numeric_limits<int64_t>::max();
  size_t next = 0;
  for (;;) {
    // Queue requests until the queue depth is reached or the submission
    // queue is full. A full queue is normal and empties at the next submit.
    while (!free_slots_.empty()) {
      while (next < entries.size() && errors[next] != kNotStatted) ++next;
      if (next == entries.size()) break;
      io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
      if (sqe == nullptr) break;

      uint32_t slot = free_slots_.back();
      free_slots_.pop_back();
      io_uring_prep_statx(sqe, dir_fd, entries[next].name.c_str(),
                          kEntryStatxFlags, kEntryStatxMask,
                          &slot_buffers_[slot]);
      io_uring_sqe_set_data64(sqe, slot);
      slot_entry_[slot] = static_cast<uint32_t>(next);
      unsubmitted_slots_.push_back(slot);
      ++next;
    }

    if (free_slots_.size() == queue_depth_) break;  // nothing in flight
    Result<unsigned> handled = SubmitAndReap(entries, errors);
    if (!handled.ok()) return handled.status();
  }
  if (last_min_latency_ns_ == std::numeric_limits<int64_t>::max()) {
    last_min_latency_ns_ = 0;
  }
  return Status::Ok();
}

Result<unsigned> UringStatx::SubmitAndReap(std::span<ListedEntry> entries,
                                           std::span<int> errors) {
  int64_t submitted_ns = NowNs();
  for (uint32_t slot : unsubmitted_slots_) {
    slot_submitted_ns_[slot] = submitted_ns;
  }
  unsubmitted_slots_.clear();

  int ret;
  do {
    ret = io_uring_submit_and_wait(ring_.get(), 1);
  } while (ret == -EINTR);
  if (ret == -EAGAIN || ret == -EBUSY) {
    // The kernel could not take more requests now. Wait for one of those
    // it took to complete, or pause briefly when it took none. The rest of
    // the queue goes in with the next submit.
    size_t in_flight = queue_depth_ - free_slots_.size();
    if (in_flight > io_uring_sq_ready(ring_.get())) {
      io_uring_cqe* cqe = nullptr;
      ret = io_uring_wait_cqe(ring_.get(), &cqe);
      if (ret == -EINTR) ret = 0;
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      ret = 0;
    }
  }
  if (ret < 0) return UringError(StatusCode::kIoError, "io_uring_enter", -ret);

  // Handle every completion that is ready, however few: the kernel may
  // complete fewer requests than were submitted.
  int64_t reaped_ns = NowNs();
  unsigned handled = 0;
  unsigned head;
  io_uring_cqe* cqe;
  io_uring_for_each_cqe(ring_.get(), head, cqe) {
    auto slot = static_cast<uint32_t>(io_uring_cqe_get_data64(cqe));
    uint32_t index = slot_entry_[slot];
    if (cqe->res < 0) {
      errors[index] = -cqe->res;
    } else {
      FillEntryFromStatx(slot_buffers_[slot], entries[index]);
      errors[index] = 0;
    }
    last_min_latency_ns_ =
        std::min(last_min_latency_ns_, reaped_ns - slot_submitted_ns_[slot]);
    free_slots_.push_back(slot);
    ++handled;
  }
  io_uring_cq_advance(ring_.get(), handled);
  return handled;
}

// ---------------------------------------------------------------------------
// EntryStatter

EntryStatter::EntryStatter(const Config& config) : config_(config) {}

EntryStatter::~EntryStatter() = default;

void EntryStatter::StatChunk(int dir_fd, std::span<ListedEntry> entries,
                             std::span<int> errors,
                             const std::atomic<bool>& stop) {
  switch (config_.mode) {
    case StatxMode::kAuto:
      StatAuto(dir_fd, entries, errors, stop);
      return;
    case StatxMode::kUring:
      if (EnsureRing()) {
        StatUring(dir_fd, entries, errors, 0);
        return;
      }
      break;
    case StatxMode::kSync:
      break;
  }
  for (size_t begin = 0; begin < entries.size(); begin += kWatchBatch) {
    if (stop.load(std::memory_order_relaxed)) return;
    StatSync(dir_fd, entries, errors, begin,
             std::min(entries.size(), begin + kWatchBatch));
  }
}

void EntryStatter::StatAuto(int dir_fd, std::span<ListedEntry> entries,
                            std::span<int> errors,
                            const std::atomic<bool>& stop) {
  const int64_t slow_ns = config_.slow_statx.count();
  if (storage_slow_ && NowNs() - last_probe_ns_ < kReprobeIntervalNs &&
      EnsureRing()) {
    StatUring(dir_fd, entries, errors, 0);
    return;
  }

  // Probe: time direct calls one by one until two of them agree.
  last_probe_ns_ = NowNs();
  size_t next = 0;
  int slow_calls = 0;
  int fast_calls = 0;
  while (next < entries.size() && slow_calls < 2 && fast_calls < 2) {
    int64_t start_ns = NowNs();
    StatSync(dir_fd, entries, errors, next, next + 1);
    if (NowNs() - start_ns >= slow_ns) {
      ++slow_calls;
    } else {
      ++fast_calls;
    }
    ++next;
  }
  // A chunk too small to decide leaves the verdict as it was.
  if (slow_calls >= 2) storage_slow_ = true;
  if (fast_calls >= 2) storage_slow_ = false;
  if (slow_calls >= 2 && next < entries.size() && EnsureRing()) {
    StatUring(dir_fd, entries, errors, next);
    return;
  }

  // Direct calls, watching the mean latency in case storage slows down.
  while (next < entries.size()) {
    if (stop.load(std::memory_order_relaxed)) return;
    size_t end = std::min(entries.size(), next + kWatchBatch);
    int64_t start_ns = NowNs();
    StatSync(dir_fd, entries, errors, next, end);
    int64_t mean_ns = (NowNs() - start_ns) / static_cast<int64_t>(end - next);
    next = end;
    if (mean_ns >= slow_ns && next < entries.size() && EnsureRing()) {
      StatUring(dir_fd, entries, errors, next);
      return;
    }
  }
}

void EntryStatter::StatSync(int dir_fd, std::span<ListedEntry> entries,
                            std::span<int> errors, size_t begin, size_t end) {
  struct statx sx;
  for (size_t i = begin; i < end; ++i) {
    if (errors[i] != UringStatx::kNotStatted) continue;
    if (statx(dir_fd, entries[i].name.c_str(), kEntryStatxFlags,
              kEntryStatxMask, &sx) == 0) {
      FillEntryFromStatx(sx, entries[i]);
      errors[i] = 0;
    } else {
      errors[i] = errno;
    }
    ++sync_calls_;
  }
}

void EntryStatter::StatUring(int dir_fd, std::span<ListedEntry> entries,
                             std::span<int> errors, size_t begin) {
  std::span<ListedEntry> rest = entries.subspan(begin);
  std::span<int> rest_errors = errors.subspan(begin);
  Status status = ring_->StatAll(dir_fd, rest, rest_errors);
  uring_calls_ += static_cast<uint64_t>(
      std::count_if(rest_errors.begin(), rest_errors.end(),
                    [](int error) { return error != UringStatx::kNotStatted; }));
  if (status.ok()) {
    storage_slow_ =
        ring_->last_min_latency_ns() >= config_.slow_statx.count();
    return;
  }

  LogRingFailureOnce(status);
  ring_failed_ = true;
  ring_.reset();
  storage_slow_ = false;
  StatSync(dir_fd, entries, errors, begin, entries.size());
}

bool EntryStatter::EnsureRing() {
  if (ring_ != nullptr) return true;
  if (!config_.uring_allowed || ring_failed_) return false;
  Result<std::unique_ptr<UringStatx>> ring =
      UringStatx::Create(config_.queue_depth);
  if (!ring.ok()) {
    LogRingFailureOnce(ring.status());
    ring_failed_ = true;
    return false;
  }
  ring_ = std::move(ring).value();
  return true;
}

}  // namespace dirindex
