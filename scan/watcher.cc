// DirWatcher: one inotify instance and one thread per watched root.
//
// Watches are added on the directory the walker has open, through its
// /proc/self/fd link, so the watch is on exactly the directory listed even
// when a path is longer than PATH_MAX or was renamed meanwhile. Each watch
// descriptor maps to the directory's path relative to the root. A directory
// moved within the root keeps its watches, and their paths move along.
#include "scan/watcher.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "index/paths.h"

namespace dirindex {

namespace {

using Clock = std::chrono::steady_clock;

constexpr uint32_t kWatchMask = IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB |
                                IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF |
                                IN_ONLYDIR | IN_EXCL_UNLINK;

// A watch failure is logged at most this often per root.
constexpr std::chrono::seconds kFailureLogInterval{60};
// Overflows this far apart count as a new flood: the back-off restarts.
constexpr std::chrono::minutes kOverflowQuietReset{5};

bool IsBelowOrAt(std::string_view path, std::string_view dir) {
  if (dir.empty()) return true;
  return path.starts_with(dir) && (path.size() == dir.size() || path[dir.size()] == '/');
}

}  // namespace

struct DirWatcher::Impl {
  WatcherOptions options;
  int inotify_fd = -1;
  int stop_fd = -1;
  std::thread thread;
  Notify notify;

  mutable std::mutex mu;  // guards everything below
  std::unordered_map<int, std::string> wd_path;
  std::map<std::string, int> path_wd;
  WatchStats stats;
  Clock::time_point last_failure_log{};
  uint64_t failures_since_log = 0;

  // Owned by the thread.
  std::set<std::string> dirty;
  Clock::time_point batch_started{}, last_event{};
  bool whole_requested = false;
  Clock::time_point next_overflow_rescan{};
  Clock::time_point last_overflow{};
  std::chrono::milliseconds overflow_backoff{0};
  std::unordered_map<uint32_t, std::string> moved_from;  // cookie -> old dir path

  void Run();
  void HandleEvent(const inotify_event& event);
  void MoveWatches(const std::string& from, const std::string& to);
  void DropWatchesBelow(const std::string& dir);
  void NoteFailure(std::string_view path, const std::string& reason);
  void Flush(Clock::time_point now);
  int PollTimeoutMs(Clock::time_point now) const;
  bool Admits(std::string_view path, bool is_dir) const {
    return !options.admits || options.admits(path, is_dir);
  }
};

Result<std::unique_ptr<DirWatcher>> DirWatcher::Create(const WatcherOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (impl->inotify_fd < 0) {
    return ErrnoStatus(errno, "inotify_init1 for watching", options.root_path);
  }
  impl->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (impl->stop_fd < 0) {
    Status error = ErrnoStatus(errno, "eventfd for the watcher", options.root_path);
    close(impl->inotify_fd);
    return error;
  }
  impl->overflow_backoff = options.overflow_backoff_min;
  return std::unique_ptr<DirWatcher>(new DirWatcher(std::move(impl)));
}

DirWatcher::DirWatcher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

DirWatcher::~DirWatcher() {
  Stop();
  close(impl_->inotify_fd);
  close(impl_->stop_fd);
}

void DirWatcher::Start(Notify notify) {
  std::lock_guard lock(impl_->mu);
  if (impl_->thread.joinable()) return;
  impl_->notify = std::move(notify);
  impl_->stats.running = true;
  impl_->thread = std::thread([this] { impl_->Run(); });
  spdlog::info("watching started: root={} path={}", impl_->options.root_name,
               impl_->options.root_path);
}

void DirWatcher::Stop() {
  if (!impl_->thread.joinable()) return;
  uint64_t one = 1;
  if (write(impl_->stop_fd, &one, sizeof one) < 0) {
    spdlog::error("watcher stop signal failed: root={} error={}", impl_->options.root_name,
                  std::strerror(errno));
  }
  impl_->thread.join();
  std::lock_guard lock(impl_->mu);
  impl_->stats.running = false;
  spdlog::info("watching stopped: root={}", impl_->options.root_name);
}

WatchStats DirWatcher::stats() const {
  std::lock_guard lock(impl_->mu);
  WatchStats stats = impl_->stats;
  stats.watches = impl_->wd_path.size();
  return stats;
}

void DirWatcher::DirOpened(std::string_view path, int fd) {
  std::lock_guard lock(impl_->mu);
  if (impl_->options.max_watches != 0 && impl_->wd_path.size() >= impl_->options.max_watches &&
      impl_->path_wd.count(std::string(path)) == 0) {
    impl_->NoteFailure(path, "the root's max_watches of " +
                                 std::to_string(impl_->options.max_watches) + " is reached");
    return;
  }

  std::string link = "/proc/self/fd/" + std::to_string(fd);
  int wd = inotify_add_watch(impl_->inotify_fd, link.c_str(), kWatchMask);
  if (wd < 0 && (errno == ENOENT || errno == EACCES)) {
    // Without /proc (or without access to it) the path has to do, which
    // may already name another directory if this one was just renamed.
    std::string absolute = path.empty() ? impl_->options.root_path
                                        : impl_->options.root_path + "/" + std::string(path);
    wd = inotify_add_watch(impl_->inotify_fd, absolute.c_str(), kWatchMask);
  }
  if (wd < 0) {
    int error = errno;
    if (error == ENOSPC) {
      impl_->NoteFailure(path,
                         "the kernel's watch limit is reached; raise fs.inotify.max_user_watches");
    } else {
      impl_->NoteFailure(path, std::string("inotify_add_watch failed: ") + std::strerror(error));
    }
    return;
  }

  std::string key(path);
  auto known = impl_->wd_path.find(wd);
  if (known != impl_->wd_path.end()) {
    if (known->second == key) return;
    // The same directory under a new path: it moved.
    impl_->path_wd.erase(known->second);
  }
  if (auto old = impl_->path_wd.find(key); old != impl_->path_wd.end() && old->second != wd) {
    // Another directory had this path before; its watch is stale.
    impl_->wd_path.erase(old->second);
    inotify_rm_watch(impl_->inotify_fd, old->second);
  }
  impl_->wd_path[wd] = key;
  impl_->path_wd[key] = wd;
}

// Called with `mu` held.
void DirWatcher::Impl::NoteFailure(std::string_view path, const std::string& reason) {
  ++stats.watch_failures;
  stats.last_problem = "directory '" + ToValidUtf8(path) + "' is not watched: " + reason;
  ++failures_since_log;
  auto now = Clock::now();
  if (last_failure_log != Clock::time_point{} && now - last_failure_log < kFailureLogInterval) {
    return;
  }
  spdlog::warn(
      "watch not added, changes there are found by periodic rescans: root={} path={} "
      "reason={} failures_since_last_log={}",
      options.root_name, ToValidUtf8(path), reason, failures_since_log);
  last_failure_log = now;
  failures_since_log = 0;
}

// Called with `mu` held.
void DirWatcher::Impl::MoveWatches(const std::string& from, const std::string& to) {
  std::vector<std::pair<std::string, int>> moved;
  for (auto it = path_wd.lower_bound(from); it != path_wd.end() && IsBelowOrAt(it->first, from);) {
    moved.emplace_back(to + it->first.substr(from.size()), it->second);
    it = path_wd.erase(it);
  }
  for (auto& [path, wd] : moved) {
    wd_path[wd] = path;
    path_wd[path] = wd;
  }
}

// Called with `mu` held.
void DirWatcher::Impl::DropWatchesBelow(const std::string& dir) {
  for (auto it = path_wd.lower_bound(dir); it != path_wd.end() && IsBelowOrAt(it->first, dir);) {
    inotify_rm_watch(inotify_fd, it->second);
    wd_path.erase(it->second);
    it = path_wd.erase(it);
  }
}

void DirWatcher::Impl::HandleEvent(const inotify_event& event) {
  if (event.mask & IN_Q_OVERFLOW) {
    auto now = Clock::now();
    std::lock_guard lock(mu);
    ++stats.overflows;
    stats.last_problem = "the inotify event queue overflowed; the whole root is rescanned";
    if (last_overflow != Clock::time_point{} && now - last_overflow > kOverflowQuietReset) {
      overflow_backoff = options.overflow_backoff_min;
    }
    last_overflow = now;
    whole_requested = true;
    spdlog::warn("inotify queue overflowed, events lost: root={} overflows={} action=rescan of the whole root",
                 options.root_name, stats.overflows);
    return;
  }

  std::string dir;
  {
    std::lock_guard lock(mu);
    ++stats.events;
    auto found = wd_path.find(event.wd);
    if (found == wd_path.end()) return;  // a watch removed meanwhile
    dir = found->second;
    if (event.mask & IN_IGNORED) {
      path_wd.erase(found->second);
      wd_path.erase(found);
      return;
    }
  }
  if (event.mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
    // The parent's event covers a directory inside the root; the root
    // itself going away needs a look at the whole root.
    if (dir.empty()) whole_requested = true;
    return;
  }

  const bool is_dir = (event.mask & IN_ISDIR) != 0;
  std::string name = event.len > 0 ? std::string(event.name) : std::string();
  if (name.empty()) {
    // An event on the directory itself (its mode or owner): its record
    // lives in the parent's listing.
    if (!dir.empty()) dirty.insert(std::string(ParentPath(dir)));
    return;
  }
  std::string path = JoinPath(dir, name);
  if (is_dir && (event.mask & IN_MOVED_FROM)) moved_from[event.cookie] = path;
  if (is_dir && (event.mask & IN_MOVED_TO)) {
    auto from = moved_from.find(event.cookie);
    if (from != moved_from.end()) {
      std::lock_guard lock(mu);
      MoveWatches(from->second, path);
      moved_from.erase(from);
    }
  }
  if (!Admits(path, is_dir)) return;
  dirty.insert(dir);
}

int DirWatcher::Impl::PollTimeoutMs(Clock::time_point now) const {
  std::optional<Clock::time_point> wake;
  if (!dirty.empty()) {
    wake = std::min(last_event + options.quiet, batch_started + options.max_delay);
  }
  if (whole_requested) {
    Clock::time_point at = std::max(now, next_overflow_rescan);
    if (!wake || at < *wake) wake = at;
  }
  if (!wake) return -1;
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*wake - now).count();
  return static_cast<int>(std::clamp<int64_t>(ms + 1, 0, 60'000));
}

void DirWatcher::Impl::Flush(Clock::time_point now) {
  if (whole_requested && now >= next_overflow_rescan) {
    whole_requested = false;
    dirty.clear();
    {
      std::lock_guard lock(mu);
      ++stats.overflow_rescans;
    }
    next_overflow_rescan = now + overflow_backoff;
    overflow_backoff = std::min(overflow_backoff * 2, options.overflow_backoff_max);
    notify({}, true);
    return;
  }
  if (dirty.empty() || whole_requested) return;
  if (now < last_event + options.quiet && now < batch_started + options.max_delay) return;
  std::vector<std::string> dirs(dirty.begin(), dirty.end());
  dirty.clear();
  {
    std::lock_guard lock(mu);
    ++stats.batches;
  }
  notify(std::move(dirs), false);
}

void DirWatcher::Impl::Run() {
  // Room for many events per read; each is at most NAME_MAX + 1 bytes past
  // its header.
  std::vector<char> buffer(1 << 18);
  for (;;) {
    pollfd fds[2] = {{stop_fd, POLLIN, 0}, {inotify_fd, POLLIN, 0}};
    int ready = poll(fds, 2, PollTimeoutMs(Clock::now()));
    if (ready < 0 && errno != EINTR) {
      spdlog::error("watcher poll failed, watching ends: root={} error={}", options.root_name,
                    std::strerror(errno));
      break;
    }
    if (fds[0].revents & POLLIN) break;
    if (fds[1].revents & POLLIN) {
      for (;;) {
        ssize_t bytes = read(inotify_fd, buffer.data(), buffer.size());
        if (bytes <= 0) {
          if (bytes < 0 && errno != EAGAIN && errno != EINTR) {
            spdlog::error("reading inotify events failed: root={} error={}", options.root_name,
                          std::strerror(errno));
          }
          break;
        }
        auto now = Clock::now();
        if (dirty.empty()) batch_started = now;
        last_event = now;
        for (ssize_t offset = 0; offset < bytes;) {
          const auto* event = reinterpret_cast<const inotify_event*>(buffer.data() + offset);
          HandleEvent(*event);
          offset += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
        }
        // A directory moved out of the root leaves no IN_MOVED_TO behind:
        // its watches would report paths that are not in the root.
        if (!moved_from.empty()) {
          std::lock_guard lock(mu);
          for (const auto& [cookie, path] : moved_from) DropWatchesBelow(path);
          moved_from.clear();
        }
      }
    }
    Flush(Clock::now());
  }
}

}  // namespace dirindex
