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

#include "index/index.h"
#include "index/source.h"

namespace dirindex {

struct RootSchedule {
  uint32_t root_id = 0;
  std::string name;
  std::unique_ptr<Source> source;
  // Time from the end of one scan to the start of the next. 0 means no
  // timer: the root is scanned at start, on request, and after a failure
  // (with the retry delay of a 30 s interval).
  std::chrono::milliseconds rescan_interval{30'000};
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
