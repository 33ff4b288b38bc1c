// Scheduler: runs each root's scans through the Source interface, on a
// timer and on request, one scan at a time per root, and merges the results
// into the Index.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "index/filter.h"
#include "index/index.h"
#include "index/source.h"
#include "scan/watcher.h"

namespace dirindex {

struct RootSchedule {
  uint32_t root_id = 0;
  std::string name;
  std::unique_ptr<Source> source;
  // Time from the end of one scan to the start of the next. 0 means no
  // timer: the root is scanned at start, on request, and after a failure
  // (with the retry delay of a 30 s interval).
  std::chrono::milliseconds rescan_interval{30'000};
  // See ScanOptions::settle. Entries that wait are looked at again, by a
  // listing of their directory, once the settle time has passed.
  std::chrono::nanoseconds settle{0};
  // Full rescans that report drift: every `full_rescan_interval` (0: none),
  // and every day at `full_rescan_minute` minutes past local midnight
  // (-1: none).
  std::chrono::milliseconds full_rescan_interval{0};
  int full_rescan_minute = -1;
  // Applied to every listing before the merge. nullptr or an empty filter
  // admits everything.
  std::shared_ptr<const PathFilter> filter;
  // Watches the root and requests targeted rescans. nullptr for roots
  // that are not watched. Its directories come from the source's walks.
  std::unique_ptr<DirWatcher> watcher;
};

// RootRuntime is the live, in-memory state of one root's scanning.
struct RootRuntime {
  std::string name;
  bool scanning = false;
  uint64_t running_rescan_id = 0;    // 0 when idle
  uint64_t last_rescan_id = 0;       // id of the last finished scan
  uint64_t scans_started = 0;
  uint64_t scans_failed = 0;
  std::chrono::milliseconds rescan_interval{0};
  std::chrono::nanoseconds settle{0};
  std::vector<std::string> include;  // the root's filter, see PathFilter
  std::vector<std::string> exclude;
  std::chrono::milliseconds full_rescan_interval{0};
  int full_rescan_minute = -1;
  uint64_t targeted_scans = 0;      // scans of single directories
  uint64_t full_rescans = 0;        // full rescans, requested or scheduled
  int64_t next_full_rescan_ns = 0;  // wall clock; 0 when none is planned
  bool watched = false;
  WatchStats watch;                 // valid when `watched`
  // Source::Details() of the root's source: host, features and connection
  // state for remote roots, empty for local ones.
  std::vector<SourceDetail> source_details;
};

class Scheduler {
 public:
  explicit Scheduler(Index& index);
  ~Scheduler();  // stops and joins

  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Adds a root. A root added after Start gets its thread at once. A
  // duplicate name or a root without a source is logged and ignored.
  void AddRoot(RootSchedule schedule);

  // Starts one thread per root, which scans at once, then every interval.
  // A scan that fails to start is recorded with Index::RecordRootError and
  // retried after the interval, doubling up to 10 minutes (or the interval,
  // when that is longer) while it keeps failing.
  void Start();

  // Asks running scans to stop, and joins every thread. Idempotent.
  void Stop();

  // Queues a scan of `root_name` to start as soon as the current one ends.
  // Requests queued together are served by one scan. `full` records the
  // scan's changes as drift found by a full rescan (ChangeOrigin::kReconcile).
  // Returns the scan's id, unique and increasing across all roots, or
  // kNotFound for an unknown root, or kAborted after Stop.
  Result<uint64_t> RequestRescan(std::string_view root_name, bool full);

  std::optional<RootRuntime> Runtime(std::string_view root_name) const;
  std::vector<RootRuntime> Runtimes() const;

  // Waits until the scan with `rescan_id` of `root_name` has finished, or
  // the timeout passes, or Stop is called. Returns true when it finished
  // (also when it was stopped part-way, or when the id belongs to another
  // root). Used by tests and by `dirindex scan`.
  bool WaitForScan(std::string_view root_name, uint64_t rescan_id,
                   std::chrono::milliseconds timeout);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dirindex
