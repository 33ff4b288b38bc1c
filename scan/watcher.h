// DirWatcher: inotify watching of one local root. The walker hands it every
// directory it opens (WalkerOptions::on_directory_open), before reading the
// names, so each listing is covered by a watch from its first name on.
// Events mark directories dirty. The watcher coalesces them and requests
// targeted rescans of exactly those directories. When the kernel's event
// queue overflows, the watcher requests a rescan of the whole root, with a
// capped back-off so that a flood of events cannot cause a rescan loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "index/status.h"

namespace dirindex {

struct WatcherOptions {
  std::string root_name;  // for logs
  std::string root_path;  // absolute path, for logs
  // At most this many watches for the root; 0 means only the kernel's
  // limit (fs.inotify.max_user_watches) applies.
  uint32_t max_watches = 0;
  // A batch of dirty directories is handed over once no event came for
  // `quiet`, or `max_delay` after its first event, whichever is first.
  std::chrono::milliseconds quiet{20};
  std::chrono::milliseconds max_delay{200};
  // First and longest wait between two whole-root rescans asked for by
  // queue overflows. The wait doubles while overflows keep coming.
  std::chrono::milliseconds overflow_backoff_min{1000};
  std::chrono::milliseconds overflow_backoff_max{60'000};
  // Says whether an event about `path` (relative to the root) can matter;
  // events about names the root does not index are dropped. Unset admits
  // everything.
  std::function<bool(std::string_view path, bool is_dir)> admits;
};

// WatchStats counts what a watcher did since it started.
struct WatchStats {
  bool running = false;
  uint64_t watches = 0;          // directories watched now
  uint64_t events = 0;           // inotify events read
  uint64_t batches = 0;          // targeted rescans asked for
  uint64_t overflows = 0;        // IN_Q_OVERFLOW events
  uint64_t overflow_rescans = 0; // whole-root rescans asked for by overflows
  uint64_t watch_failures = 0;   // directories left unwatched (limit, error)
  std::string last_problem;      // newest overflow or watch failure, for the API
};

class DirWatcher {
 public:
  // Receives dirty directories (relative paths, never empty-handed), or a
  // request to rescan the whole root when `whole_root` is true.
  using Notify =
      std::function<void(std::vector<std::string> dirs, bool whole_root)>;

  // Creates the inotify instance. Fails with the errno of inotify_init1
  // (EMFILE when fs.inotify.max_user_instances is reached).
  static Result<std::unique_ptr<DirWatcher>> Create(const WatcherOptions& options);

  ~DirWatcher();  // stops

  DirWatcher(const DirWatcher&) = delete;
  DirWatcher& operator=(const DirWatcher&) = delete;

  // Starts the thread that reads events and calls `notify`.
  void Start(Notify notify);
  // Stops and joins the thread. Idempotent.
  void Stop();

  // Adds a watch on the open directory `fd`, found at `path` relative to
  // the root. Safe from any thread.
  void DirOpened(std::string_view path, int fd);

  WatchStats stats() const;

 private:
  struct Impl;
  explicit DirWatcher(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dirindex
