// Design note: how LocalSource walks a tree.
//
// Work items live on one LIFO stack shared by the worker threads. A
// directory task opens its directory with openat() relative to its parent's
// descriptor (O_DIRECTORY | O_NOFOLLOW), so no full path is ever handed to
// the kernel and paths longer than PATH_MAX work. Tasks for the children of
// a directory share the parent's descriptor through a shared_ptr, and the
// stack is worked newest first, so the walk goes deep before wide. Open
// descriptors are then about one per level of each thread's branch (at
// most threads x depth), not one per directory.
//
// A directory is read with raw getdents64 into a per-thread buffer
// (getdents_buffer_bytes). Names are collected in parts. Once a part
// contains chunk_entries names while more are coming, it goes on the stack
// as a chunk task that any thread may stat, while the reading thread keeps
// reading. The reader stats the last part itself, split in two when it is
// larger than a chunk. Each part is statted by the EntryStatter of the
// thread that took it (direct statx or io_uring, see uring_statx.cc), and
// the thread that finishes the last part hands the whole listing to the
// sink. So one folder of 200,000 files is statted on every thread while
// getdents64 is still reading it.
//
// Errors: an entry that vanished between getdents64 and statx (ENOENT,
// ENOTDIR) is dropped and counted. Any other failure to open, read or stat
// a directory's entries yields a listing with that error and no entries, so
// the index keeps what it had. A directory that vanished before it was
// opened yields nothing, because its parent's listing no longer shows it.
//
// Filters: a subdirectory or requested directory that ScanRequest::filter
// rejects is not opened, so nothing below it is listed. The walker removes
// no entries from listings, because the caller's FilteringSink does that.
#include "scan/walker.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <variant>
#include <vector>

#include <spdlog/spdlog.h>

#include "index/filter.h"
#include "index/paths.h"
#include "scan/uring_statx.h"

namespace dirindex {

namespace {

// Failed directories logged one by one per scan. The rest are counted in a
// single line at the end of the scan.
constexpr uint64_t kMaxLoggedFailures = 20;

// One record of getdents64(2), laid out as in the man page.
struct LinuxDirent64 {
  uint64_t d_ino;
  int64_t d_off;
  uint16_t d_reclen;
  uint8_t d_type;
  char d_name[];
};

bool IsDotOrDotDot(const char* name) {
  return name[0] == '.' &&
         (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

// The errors of open and statx that mean the name is gone or is no longer
// a directory, as opposed to a directory that cannot be read.
bool IsVanished(int error) {
  return error == ENOENT || error == ENOTDIR || error == ELOOP;
}

void RaiseOpenFileLimitOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
    if (limit.rlim_cur >= limit.rlim_max) return;
    rlim_t old_soft = limit.rlim_cur;
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
      spdlog::warn("setrlimit(RLIMIT_NOFILE) to {} failed: {}",
                   limit.rlim_max, std::strerror(errno));
      return;
    }
    spdlog::debug("raised RLIMIT_NOFILE from {} to {}", old_soft,
                  limit.rlim_max);
  });
}

// DirFd owns the descriptor of one open directory.
class DirFd {
 public:
  explicit DirFd(int fd) : fd_(fd) {}
  ~DirFd() { close(fd_); }
  DirFd(const DirFd&) = delete;
  DirFd& operator=(const DirFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};
using DirFdPtr = std::shared_ptr<const DirFd>;

// DirTask lists one directory: either `opened`, or `name` opened relative
// to `parent`.
struct DirTask {
  DirFdPtr parent;
  std::string name;
  DirFdPtr opened;
  std::string path;  // relative to the root
  uint32_t depth = 0;
  bool recursive = true;
};

// DirJob collects the statted parts of one directory until the last part
// is done.
struct DirJob {
  DirFdPtr fd;
  std::string path;
  uint32_t depth = 0;
  bool recursive = true;
  // Parts still being statted, plus one held by the reader until getdents64
  // reaches the end of the directory.
  std::atomic<uint32_t> pending{1};
  std::mutex mu;  // guards parts and error
  std::vector<std::vector<ListedEntry>> parts;
  Status error;
};

struct ChunkTask {
  std::shared_ptr<DirJob> job;
  std::vector<ListedEntry> entries;
};

using Task = std::variant<DirTask, ChunkTask>;

// Worker is what one thread keeps for the length of a scan.
struct Worker {
  explicit Worker(const EntryStatter::Config& config, size_t buffer_bytes)
      : buffer(std::make_unique_for_overwrite<char[]>(buffer_bytes)),
        buffer_bytes(buffer_bytes),
        statter(config) {}

  std::unique_ptr<char[]> buffer;  // getdents64 records
  size_t buffer_bytes;
  EntryStatter statter;
  std::vector<int> errors;  // statx result per entry of the current part
};

// SourceState is what a LocalSource keeps between scans. It is the body of
// LocalSource::Impl, named here so the walk helpers can take it.
struct SourceState {
  WalkerOptions options;
  unsigned threads = 2;
  bool uring_allowed = false;
  std::mutex scan_mu;  // one scan at a time

  std::atomic<uint64_t> dirs_listed{0};
  std::atomic<uint64_t> dirs_failed{0};
  std::atomic<uint64_t> entries_vanished{0};
  std::atomic<uint64_t> statx_sync{0};
  std::atomic<uint64_t> statx_uring{0};

  std::string AbsolutePath(std::string_view relative) const {
    if (relative.empty()) return options.root_path;
    return JoinPath(options.root_path, relative);
  }
};

// Walk is the state of one Scan call: the task stack, the worker threads,
// the running totals and the first fatal error.
class Walk {
 public:
  Walk(SourceState& impl, ListingSink& sink,
       const std::atomic<bool>& stop, uint64_t root_device, uint32_t max_depth,
       const PathFilter* filter)
      : impl_(impl),
        sink_(sink),
        stop_(stop),
        root_device_(root_device),
        max_depth_(max_depth),
        filter_(filter) {}

  // Runs `tasks` and everything they lead to, on impl.threads threads.
  // Returns the sink's error, kAborted when `stop` was set, or ok.
  Status Run(std::vector<Task> tasks);

  ScanTotals totals() const;
  uint64_t failed_dirs() const { return failed_dirs_; }

 private:
  bool Cancelled() const {
    return cancelled_.load(std::memory_order_relaxed) ||
           stop_.load(std::memory_order_relaxed);
  }

  void RunWorker();
  bool NextTask(Task& task);
  void TaskDone();
  void Push(std::vector<Task>&& tasks);

  // Returns the task's directory, or nullptr when it vanished or could not
  // be opened (then a failed listing has been emitted).
  DirFdPtr OpenDirectory(DirTask& task);
  void ListDirectory(DirTask& task, Worker& worker);
  // Reads all names of the job's directory with getdents64, handing out
  // full chunks on the way and leaving the rest in `part`. Returns false
  // when the walk was cancelled.
  bool ReadNames(const std::shared_ptr<DirJob>& job, Worker& worker,
                 std::vector<ListedEntry>& part);
  void StatPart(DirJob& job, std::vector<ListedEntry>&& part, Worker& worker);
  void FinishPart(DirJob& job);
  void Emit(DirJob& job);
  void EmitFailure(const std::string& path, Status status);
  void Accept(DirListing&& listing);
  void LogFailure(const std::string& path, const Status& status);

  SourceState& impl_;
  ListingSink& sink_;
  const std::atomic<bool>& stop_;
  const uint64_t root_device_;
  const uint32_t max_depth_;  // 0 means unlimited
  const PathFilter* const filter_;  // subdirectories it rejects are skipped

  std::mutex mu_;  // guards stack_, busy_ and sink_error_
  std::condition_variable cv_;
  std::vector<Task> stack_;
  unsigned busy_ = 0;
  Status sink_error_;
  std::atomic<bool> cancelled_{false};

  std::atomic<uint64_t> dirs_{0};
  std::atomic<uint64_t> files_{0};
  std::atomic<uint64_t> bytes_{0};
  std::atomic<uint64_t> failed_dirs_{0};
};

Status Walk::Run(std::vector<Task> tasks) {
  stack_ = std::move(tasks);
  std::vector<std::thread> threads;
  threads.reserve(impl_.threads - 1);
  for (unsigned i = 1; i < impl_.threads; ++i) {
    threads.emplace_back([this] { RunWorker(); });
  }
  RunWorker();
  for (std::thread& thread : threads) thread.join();

  // Tasks left after a stop keep descriptors open, so release them now.
  stack_.clear();

  uint64_t failed = failed_dirs_.load();
  if (failed > kMaxLoggedFailures) {
    spdlog::warn("walk of {}: {} more directories failed and were not logged "
                 "one by one", impl_.options.root_path,
                 failed - kMaxLoggedFailures);
  }
  if (!sink_error_.ok()) return sink_error_;
  if (stop_.load()) {
    return Status(StatusCode::kAborted,
                  "walk of '" + impl_.options.root_path + "' stopped");
  }
  return Status::Ok();
}

ScanTotals Walk::totals() const {
  ScanTotals totals;
  totals.dirs = dirs_.load();
  totals.files = files_.load();
  totals.bytes = bytes_.load();
  totals.failed_dirs = failed_dirs_.load();
  return totals;
}

void Walk::RunWorker() {
  EntryStatter::Config config;
  config.mode = impl_.options.statx_mode;
  config.uring_allowed = impl_.uring_allowed;
  config.queue_depth = impl_.options.uring_queue_depth;
  config.slow_statx = impl_.options.auto_uring_latency;
  Worker worker(config, impl_.options.getdents_buffer_bytes);

  Task task;
  while (NextTask(task)) {
    if (auto* dir = std::get_if<DirTask>(&task)) {
      ListDirectory(*dir, worker);
    } else {
      auto& chunk = std::get<ChunkTask>(task);
      StatPart(*chunk.job, std::move(chunk.entries), worker);
      FinishPart(*chunk.job);
    }
    task = Task();  // drop descriptors before waiting for the next task
    TaskDone();
  }

  impl_.statx_sync += worker.statter.sync_calls();
  impl_.statx_uring += worker.statter.uring_calls();
}

bool Walk::NextTask(Task& task) {
  std::unique_lock lock(mu_);
  for (;;) {
    if (Cancelled()) {
      cv_.notify_all();
      return false;
    }
    if (!stack_.empty()) {
      task = std::move(stack_.back());
      stack_.pop_back();
      ++busy_;
      return true;
    }
    if (busy_ == 0) {
      cv_.notify_all();
      return false;
    }
    cv_.wait(lock);
  }
}

void Walk::TaskDone() {
  std::lock_guard lock(mu_);
  --busy_;
  if ((busy_ == 0 && stack_.empty()) || Cancelled()) cv_.notify_all();
}

void Walk::Push(std::vector<Task>&& tasks) {
  if (tasks.empty()) return;
  {
    std::lock_guard lock(mu_);
    for (Task& task : tasks) stack_.push_back(std::move(task));
  }
  if (tasks.size() == 1) {
    cv_.notify_one();
  } else {
    cv_.notify_all();
  }
}

DirFdPtr Walk::OpenDirectory(DirTask& task) {
  if (task.opened != nullptr) return std::move(task.opened);

  int raw = openat(task.parent->get(), task.name.c_str(),
                   O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (raw >= 0) return std::make_shared<DirFd>(raw);

  int error = errno;
  if (IsVanished(error)) {
    spdlog::debug("walk of {}: directory '{}' vanished before it was opened",
                  impl_.options.root_path, ToValidUtf8(task.path));
  } else {
    EmitFailure(task.path,
                ErrnoStatus(error, "open",
                            ToValidUtf8(impl_.AbsolutePath(task.path))));
  }
  return nullptr;
}

void Walk::ListDirectory(DirTask& task, Worker& worker) {
  DirFdPtr fd = OpenDirectory(task);
  task.parent.reset();
  if (fd == nullptr) return;
  if (impl_.options.on_directory_open) impl_.options.on_directory_open(task.path, fd->get());

  auto job = std::make_shared<DirJob>();
  job->fd = std::move(fd);
  job->path = std::move(task.path);
  job->depth = task.depth;
  job->recursive = task.recursive;

  std::vector<ListedEntry> part;
  if (!ReadNames(job, worker, part)) return;

  // The reader stats the last part itself, after handing half of it to
  // another thread when it is larger than one chunk.
  if (part.size() > impl_.options.chunk_entries) {
    size_t half = part.size() / 2;
    std::vector<ListedEntry> piece(
        std::make_move_iterator(part.begin() + static_cast<ptrdiff_t>(half)),
        std::make_move_iterator(part.end()));
    part.resize(half);
    job->pending.fetch_add(1);
    std::vector<Task> rest;
    rest.push_back(ChunkTask{job, std::move(piece)});
    Push(std::move(rest));
  }
  StatPart(*job, std::move(part), worker);
  FinishPart(*job);
}

bool Walk::ReadNames(const std::shared_ptr<DirJob>& job, Worker& worker,
                     std::vector<ListedEntry>& part) {
  const size_t chunk = impl_.options.chunk_entries;
  for (;;) {
    if (Cancelled()) return false;
    long bytes = syscall(SYS_getdents64, job->fd->get(), worker.buffer.get(),
                         worker.buffer_bytes);
    if (bytes < 0) {
      int error = errno;
      if (error == EINTR) continue;
      std::lock_guard lock(job->mu);
      job->error = ErrnoStatus(error, "getdents64",
                               ToValidUtf8(impl_.AbsolutePath(job->path)));
      return true;
    }
    if (bytes == 0) return true;

    for (long offset = 0; offset < bytes;) {
      auto* record =
          reinterpret_cast<const LinuxDirent64*>(worker.buffer.get() + offset);
      offset += record->d_reclen;
      if (IsDotOrDotDot(record->d_name)) continue;
      part.emplace_back().name = record->d_name;
    }
    if (impl_.options.after_getdents_for_test) {
      impl_.options.after_getdents_for_test(job->path);
    }

    // Hand out full chunks while more names may follow, keeping at least
    // one chunk back so the last part can be split evenly.
    std::vector<Task> chunks;
    while (part.size() >= 2 * chunk) {
      std::vector<ListedEntry> piece(
          std::make_move_iterator(part.end() - static_cast<ptrdiff_t>(chunk)),
          std::make_move_iterator(part.end()));
      part.resize(part.size() - chunk);
      job->pending.fetch_add(1);
      chunks.push_back(ChunkTask{job, std::move(piece)});
    }
    Push(std::move(chunks));
  }
}

void Walk::StatPart(DirJob& job, std::vector<ListedEntry>&& part,
                    Worker& worker) {
  worker.errors.assign(part.size(), UringStatx::kNotStatted);
  worker.statter.StatChunk(job.fd->get(), part, worker.errors, stop_);
  if (Cancelled()) return;

  const bool descend =
      job.recursive && (max_depth_ == 0 || job.depth < max_depth_);
  std::vector<Task> subdirs;
  Status error;
  uint64_t vanished = 0;
  size_t kept_count = 0;
  for (size_t i = 0; i < part.size(); ++i) {
    int result = worker.errors[i];
    if (result == 0) {
      ListedEntry& entry = part[i];
      if (descend && entry.type == EntryType::kDir &&
          (impl_.options.cross_devices || entry.device == root_device_)) {
        std::string path = JoinPath(job.path, entry.name);
        // A rejected directory stays in this listing, and only the walk
        // below it is skipped. The caller's FilteringSink removes the entry.
        if (filter_ == nullptr || filter_->Admits(path, EntryType::kDir)) {
          DirTask subdir;
          subdir.parent = job.fd;
          subdir.name = entry.name;
          subdir.path = std::move(path);
          subdir.depth = job.depth + 1;
          subdir.recursive = true;
          subdirs.push_back(std::move(subdir));
        }
      }
      if (kept_count != i) part[kept_count] = std::move(entry);
      ++kept_count;
    } else if (result == ENOENT || result == ENOTDIR) {
      ++vanished;
    } else if (error.ok()) {
      error = ErrnoStatus(
          result, "statx",
          ToValidUtf8(impl_.AbsolutePath(JoinPath(job.path, part[i].name))));
    }
  }
  part.resize(kept_count);
  if (vanished > 0) impl_.entries_vanished += vanished;

  // Subdirectories are listed even when a sibling failed: their own
  // listings are complete, and only this directory's listing is partial.
  Push(std::move(subdirs));

  std::lock_guard lock(job.mu);
  if (!error.ok() && job.error.ok()) job.error = std::move(error);
  job.parts.push_back(std::move(part));
}

void Walk::FinishPart(DirJob& job) {
  if (job.pending.fetch_sub(1) != 1) return;
  if (Cancelled()) return;
  Emit(job);
}

void Walk::Emit(DirJob& job) {
  // The last part is done, so no other thread touches the job any more.
  if (!job.error.ok()) {
    EmitFailure(job.path, std::move(job.error));
    return;
  }

  DirListing listing;
  listing.path = std::move(job.path);
  size_t count = 0;
  for (const auto& part : job.parts) count += part.size();
  if (job.parts.size() == 1) {
    listing.entries = std::move(job.parts.front());
  } else {
    listing.entries.reserve(count);
    for (auto& part : job.parts) {
      std::move(part.begin(), part.end(), std::back_inserter(listing.entries));
    }
  }
  job.parts.clear();

  uint64_t files = 0;
  uint64_t bytes = 0;
  for (const ListedEntry& entry : listing.entries) {
    if (entry.type == EntryType::kDir) continue;
    ++files;
    bytes += entry.size;
  }
  dirs_ += 1;
  files_ += files;
  bytes_ += bytes;
  impl_.dirs_listed += 1;
  Accept(std::move(listing));
}

void Walk::EmitFailure(const std::string& path, Status status) {
  LogFailure(path, status);
  failed_dirs_ += 1;
  impl_.dirs_failed += 1;
  DirListing listing;
  listing.path = path;
  listing.status = std::move(status);
  Accept(std::move(listing));
}

void Walk::Accept(DirListing&& listing) {
  Status status = sink_.Accept(std::move(listing));
  if (status.ok()) return;
  std::lock_guard lock(mu_);
  if (sink_error_.ok()) {
    spdlog::error("walk of {}: the listing sink failed, stopping the scan: {}",
                  impl_.options.root_path, status.ToString());
    sink_error_ = std::move(status);
  }
  cancelled_ = true;
  cv_.notify_all();
}

void Walk::LogFailure(const std::string& path, const Status& status) {
  if (failed_dirs_.load() >= kMaxLoggedFailures) return;
  spdlog::warn("walk of {}: listing directory '{}' failed: {}",
               impl_.options.root_path, ToValidUtf8(path), status.ToString());
}

// Opens the directory `path` below the root one component at a time, never
// following a symlink, and returns its task. When a component is gone, the
// task lists the nearest existing ancestor without recursion, so the index
// learns of the removal. Returns nullopt for a directory beyond a mount
// point that the walk does not cross.
std::optional<DirTask> ResolveTarget(const SourceState& impl,
                                     const DirFdPtr& root,
                                     uint64_t root_device,
                                     const std::string& path, bool recursive) {
  std::vector<std::string_view> components;
  for (size_t start = 0; start < path.size();) {
    size_t end = std::min(path.find('/', start), path.size());
    components.push_back(std::string_view(path).substr(start, end - start));
    start = end + 1;
  }

  DirFdPtr current = root;
  std::string current_path;
  for (size_t k = 0; k < components.size(); ++k) {
    const bool last = k + 1 == components.size();
    const std::string name(components[k]);
    // Directories on the way only need search permission, as for a full
    // walk through them. The target itself must be readable.
    int flags = O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | (last ? O_RDONLY : O_PATH);
    int raw = openat(current->get(), name.c_str(), flags);
    if (raw < 0 && IsVanished(errno)) {
      DirTask ancestor;
      ancestor.path = current_path;
      ancestor.depth = static_cast<uint32_t>(k);
      ancestor.recursive = false;
      if (k == 0) {
        ancestor.opened = root;
      } else {
        ancestor.parent = current;
        ancestor.name = ".";
      }
      spdlog::debug("walk of {}: '{}' is gone, listing '{}' instead",
                    impl.options.root_path, ToValidUtf8(path),
                    ToValidUtf8(current_path));
      return ancestor;
    }
    if (raw < 0) {
      // Let the directory task repeat the open and report the error as a
      // failed listing of the directory that could not be entered.
      DirTask blocked;
      blocked.parent = current;
      blocked.name = name;
      blocked.path = JoinPath(current_path, name);
      blocked.depth = static_cast<uint32_t>(k + 1);
      blocked.recursive = last && recursive;
      return blocked;
    }

    auto opened = std::make_shared<DirFd>(raw);
    if (!impl.options.cross_devices) {
      struct statx sx;
      if (statx(raw, "", AT_EMPTY_PATH, STATX_TYPE, &sx) == 0 &&
          makedev(sx.stx_dev_major, sx.stx_dev_minor) != root_device) {
        spdlog::debug("walk of {}: '{}' is on another file system, skipped",
                      impl.options.root_path, ToValidUtf8(path));
        return std::nullopt;
      }
    }
    current = std::move(opened);
    current_path = JoinPath(current_path, name);
  }

  DirTask target;
  target.opened = current;
  target.path = path;
  target.depth = static_cast<uint32_t>(components.size());
  target.recursive = recursive;
  return target;
}

// Builds the start tasks of a scan: the root, or the requested directories
// without duplicates and without those inside another recursive target.
Result<std::vector<Task>> PlanTargets(const SourceState& impl,
                                      const DirFdPtr& root,
                                      uint64_t root_device,
                                      const ScanRequest& request) {
  std::vector<Task> tasks;
  if (request.dirs.empty()) {
    DirTask task;
    task.opened = root;
    task.recursive = request.recursive;
    tasks.push_back(std::move(task));
    return tasks;
  }

  std::map<std::string, DirTask> targets;
  for (const std::string& dir : request.dirs) {
    Status valid = ValidateRelativePath(dir);
    if (!valid.ok()) {
      return InvalidArgument("scan request directory is invalid: " +
                             valid.message());
    }
    size_t depth = dir.empty() ? 0 : std::count(dir.begin(), dir.end(), '/') + 1;
    if (request.max_depth != 0 && depth > request.max_depth) continue;

    std::optional<DirTask> task;
    if (dir.empty()) {
      task.emplace();
      task->opened = root;
      task->recursive = request.recursive;
    } else {
      task = ResolveTarget(impl, root, root_device, dir, request.recursive);
    }
    if (!task) continue;
    // Checked after ResolveTarget, because the nearest existing ancestor
    // that replaces a vanished directory may well be admitted.
    if (request.filter != nullptr && !request.filter->AdmitsListing(task->path)) {
      continue;
    }
    auto [it, inserted] = targets.try_emplace(task->path, std::move(*task));
    if (!inserted && task->recursive) it->second.recursive = true;
  }

  for (auto& [path, task] : targets) {
    bool covered = false;
    for (std::string_view up = path; !up.empty() && !covered;) {
      up = ParentPath(up);
      auto it = targets.find(std::string(up));
      covered = it != targets.end() && it->second.recursive;
    }
    if (!covered) tasks.push_back(std::move(task));
  }
  return tasks;
}

}  // namespace

// ---------------------------------------------------------------------------
// LocalSource

struct LocalSource::Impl : SourceState {};

Result<std::unique_ptr<LocalSource>> LocalSource::Create(
    const WalkerOptions& options) {
  const std::string& root = options.root_path;
  if (root.empty() || root.front() != '/') {
    return InvalidArgument("walker root '" + ToValidUtf8(root) +
                           "' is not an absolute path; give the full path");
  }
  if (options.getdents_buffer_bytes < 4096) {
    return InvalidArgument("getdents buffer of " +
                           std::to_string(options.getdents_buffer_bytes) +
                           " bytes is too small; use at least 4096");
  }
  if (options.uring_queue_depth < 1 || options.uring_queue_depth > 32768) {
    return InvalidArgument("io_uring queue depth " +
                           std::to_string(options.uring_queue_depth) +
                           " is out of range; use 1 to 32768");
  }
  if (options.chunk_entries < 1) {
    return InvalidArgument("chunk_entries must be at least 1");
  }

  struct statx sx;
  if (statx(AT_FDCWD, root.c_str(), 0, STATX_TYPE, &sx) != 0) {
    return ErrnoStatus(errno, "statx of the walker root", ToValidUtf8(root));
  }
  if (!S_ISDIR(sx.stx_mode)) {
    return InvalidArgument("walker root '" + ToValidUtf8(root) +
                           "' is not a directory");
  }
  int fd = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return ErrnoStatus(errno, "open of the walker root", ToValidUtf8(root));
  }
  close(fd);

  RaiseOpenFileLimitOnce();

  auto impl = std::make_unique<Impl>();
  impl->options = options;
  while (impl->options.root_path.size() > 1 &&
         impl->options.root_path.back() == '/') {
    impl->options.root_path.pop_back();
  }
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  impl->threads = options.threads != 0
                      ? options.threads
                      : static_cast<unsigned>(std::max(2L, cpus));
  if (options.statx_mode != StatxMode::kSync) {
    if (!options.use_io_uring) {
      spdlog::info("walker for {}: io_uring turned off by option, using "
                   "direct statx", root);
    } else {
      impl->uring_allowed = IoUringStatxSupport().ok();
    }
  }
  return std::unique_ptr<LocalSource>(new LocalSource(std::move(impl)));
}

LocalSource::LocalSource(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

LocalSource::~LocalSource() = default;

Result<ScanTotals> LocalSource::Scan(const ScanRequest& request,
                                     ListingSink& sink,
                                     const std::atomic<bool>& stop) {
  std::lock_guard scan_lock(impl_->scan_mu);
  const std::string& root_path = impl_->options.root_path;

  int raw = open(root_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (raw < 0) {
    return ErrnoStatus(errno, "open of the walker root", ToValidUtf8(root_path));
  }
  auto root = std::make_shared<DirFd>(raw);
  struct statx sx;
  if (statx(raw, "", AT_EMPTY_PATH, STATX_TYPE, &sx) != 0) {
    return ErrnoStatus(errno, "statx of the walker root",
                       ToValidUtf8(root_path));
  }
  uint64_t root_device = makedev(sx.stx_dev_major, sx.stx_dev_minor);

  Result<std::vector<Task>> tasks =
      PlanTargets(*impl_, root, root_device, request);
  if (!tasks.ok()) return tasks.status();
  root.reset();

  auto started = std::chrono::steady_clock::now();
  Walk walk(*impl_, sink, stop, root_device, request.max_depth,
            request.filter);
  Status status = walk.Run(std::move(tasks).value());
  ScanTotals totals = walk.totals();
  spdlog::debug(
      "walk of {} ended: status={} dirs={} files={} failed_dirs={} ms={}",
      root_path, status.ToString(), totals.dirs, totals.files,
      totals.failed_dirs,
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - started)
          .count());
  if (!status.ok()) return status;
  return totals;
}

std::string LocalSource::Describe() const {
  return "file://" + impl_->options.root_path;
}

WalkerStats LocalSource::stats() const {
  WalkerStats stats;
  stats.dirs_listed = impl_->dirs_listed.load();
  stats.dirs_failed = impl_->dirs_failed.load();
  stats.entries_vanished = impl_->entries_vanished.load();
  stats.statx_sync = impl_->statx_sync.load();
  stats.statx_uring = impl_->statx_uring.load();
  stats.uring_available = impl_->uring_allowed;
  return stats;
}

}  // namespace dirindex
