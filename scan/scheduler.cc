// Scheduler: one thread per root. Each thread scans the whole root at
// start, then waits for the first of: its rescan interval, a request, a
// scheduled full rescan, directories marked dirty by watching, or entries
// due for another look because they wait to settle. Requests that arrive
// while a scan runs are merged into the next scan, which then finishes all
// of their ids at once. A whole-root scan that fails to start is retried
// with a doubling delay, from the rescan interval up to kMaxRetryDelay.
// Dirty and settling directories are listed by a targeted scan: those
// directories alone, plus, in the same session, whatever they hold that
// is new to the index.
#include "scan/scheduler.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <ctime>
#include <optional>
#include <set>
#include <thread>

#include <spdlog/spdlog.h>

namespace dirindex {

namespace {

constexpr std::chrono::milliseconds kMaxRetryDelay{10 * 60 * 1000};

using Clock = std::chrono::steady_clock;

// Forwards listings to the scan session and counts them, so the scheduler
// can tell a scan that never started from one that failed half-way. A
// targeted scan lists in several passes, and a session merges each
// directory at most once, so the sink drops a directory's second listing.
class CountingSink : public ListingSink {
 public:
  CountingSink(ListingSink& target, bool once_per_dir)
      : target_(target), once_per_dir_(once_per_dir) {}

  Status Accept(DirListing&& listing) override {
    accepted_.fetch_add(1, std::memory_order_relaxed);
    if (once_per_dir_) {
      std::lock_guard lock(mu_);
      if (!listed_.insert(listing.path).second) return Status::Ok();
    }
    return target_.Accept(std::move(listing));
  }

  uint64_t accepted() const { return accepted_.load(); }

 private:
  ListingSink& target_;
  const bool once_per_dir_;
  std::atomic<uint64_t> accepted_{0};
  std::mutex mu_;
  std::set<std::string> listed_;
};

bool IsAtOrBelow(std::string_view path, std::string_view dir) {
  if (dir.empty()) return true;
  return path.starts_with(dir) && (path.size() == dir.size() || path[dir.size()] == '/');
}

int64_t ToWallNs(Clock::time_point at) {
  auto wall = std::chrono::system_clock::now() +
              std::chrono::duration_cast<std::chrono::system_clock::duration>(at - Clock::now());
  return std::chrono::duration_cast<std::chrono::nanoseconds>(wall.time_since_epoch()).count();
}

// Returns when the next scheduled full rescan of `schedule` is due, after
// `now`, or nullopt when none is scheduled.
std::optional<Clock::time_point> NextFullRescan(const RootSchedule& schedule,
                                                Clock::time_point now) {
  std::optional<Clock::time_point> next;
  if (schedule.full_rescan_interval.count() > 0) next = now + schedule.full_rescan_interval;
  if (schedule.full_rescan_minute >= 0) {
    // The next local wall-clock time at that minute; mktime applies the
    // time zone and daylight saving of that day.
    std::time_t wall_now = std::time(nullptr);
    std::tm local{};
    localtime_r(&wall_now, &local);
    local.tm_hour = schedule.full_rescan_minute / 60;
    local.tm_min = schedule.full_rescan_minute % 60;
    local.tm_sec = 0;
    local.tm_isdst = -1;
    std::time_t at = std::mktime(&local);
    if (at <= wall_now) {
      ++local.tm_mday;
      local.tm_hour = schedule.full_rescan_minute / 60;
      local.tm_min = schedule.full_rescan_minute % 60;
      local.tm_isdst = -1;
      at = std::mktime(&local);
    }
    Clock::time_point daily = now + std::chrono::seconds(at - wall_now);
    if (!next || daily < *next) next = daily;
  }
  return next;
}

int64_t MillisecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace

// ScheduledRoot is one root's schedule, runtime and request queue. Everything
// but `schedule.source` and `thread` is guarded by Scheduler::Impl::mu.
struct ScheduledRoot {
  RootSchedule schedule;
  RootRuntime runtime;
  std::vector<uint64_t> pending_ids;  // requested, not started yet
  bool pending_full = false;
  std::set<std::string> dirty_dirs;   // from watching, not listed yet
  std::optional<Clock::time_point> settle_due;
  std::optional<Clock::time_point> full_due;
  Clock::time_point targeted_allowed{};  // no targeted scan starts before
  std::vector<uint64_t> running_ids;  // finished by the running scan
  uint64_t failures_in_row = 0;
  std::condition_variable wake;
  std::thread thread;
};

struct Scheduler::Impl {
  explicit Impl(Index& index) : index(index) {}

  void StartThread(ScheduledRoot& root);
  void RunRoot(ScheduledRoot& root);
  // Runs one scan of `root` and returns false when it failed. `dirs` set
  // makes it a targeted scan of those directories.
  bool RunScan(ScheduledRoot& root, uint64_t rescan_id, bool full,
               const std::optional<std::vector<std::string>>& dirs);
  // Lists, in the same session, the directories the session added, until
  // none is left. Returns the first error.
  Status ListAddedDirs(ScheduledRoot& root, ScanSession& session, ListingSink& sink);
  std::chrono::milliseconds NextDelay(const ScheduledRoot& root) const;
  ScheduledRoot* Find(std::string_view name) const;
  bool IsFinished(const ScheduledRoot& root, uint64_t rescan_id) const;

  Index& index;
  mutable std::mutex mu;
  std::condition_variable scan_done;  // a scan ended, or Stop was called
  std::vector<std::unique_ptr<ScheduledRoot>> roots;
  uint64_t last_issued_id = 0;
  bool started = false;
  std::atomic<bool> stop{false};
};

void Scheduler::Impl::StartThread(ScheduledRoot& root) {
  if (DirWatcher* watcher = root.schedule.watcher.get()) {
    watcher->Start([this, &root](std::vector<std::string> dirs, bool whole_root) {
      std::lock_guard lock(mu);
      if (stop) return;
      if (whole_root) {
        root.pending_ids.push_back(++last_issued_id);
      } else {
        root.dirty_dirs.insert(std::make_move_iterator(dirs.begin()),
                               std::make_move_iterator(dirs.end()));
      }
      root.wake.notify_all();
    });
  }
  root.thread = std::thread([this, &root] { RunRoot(root); });
}

void Scheduler::Impl::RunRoot(ScheduledRoot& root) {
  auto next_due = Clock::now();
  std::unique_lock lock(mu);
  root.full_due = NextFullRescan(root.schedule, Clock::now());
  root.runtime.next_full_rescan_ns = root.full_due ? ToWallNs(*root.full_due) : 0;
  while (!stop) {
    // Without an interval the root is scanned at start, on request, and
    // again after a failure.
    bool timed = root.schedule.rescan_interval.count() > 0 ||
                 root.runtime.scans_started == 0 || root.failures_in_row > 0;
    std::optional<Clock::time_point> deadline;
    auto consider = [&](const std::optional<Clock::time_point>& at) {
      if (at && (!deadline || *at < *deadline)) deadline = at;
    };
    if (timed) consider(next_due);
    consider(root.full_due);
    consider(root.settle_due);
    // Dirty directories wait while targeted scans are throttled.
    const bool throttled = Clock::now() < root.targeted_allowed;
    if (throttled) consider(root.targeted_allowed);
    auto ready = [&] {
      return stop || !root.pending_ids.empty() || (!throttled && !root.dirty_dirs.empty());
    };
    if (deadline) {
      root.wake.wait_until(lock, *deadline, ready);
    } else {
      root.wake.wait(lock, ready);
    }
    if (stop) break;

    auto now = Clock::now();
    bool full = root.pending_full || (root.full_due && now >= *root.full_due);
    bool whole = full || !root.pending_ids.empty() || (timed && now >= next_due);
    std::optional<std::vector<std::string>> dirs;
    if (!whole) {
      std::set<std::string> wanted;
      if (now >= root.targeted_allowed) {
        wanted = std::move(root.dirty_dirs);
        root.dirty_dirs.clear();
      }
      if (root.settle_due && now >= *root.settle_due) {
        SettlePlan plan = index.PlanSettle(root.schedule.root_id, now);
        wanted.insert(plan.due_dirs.begin(), plan.due_dirs.end());
        root.settle_due = plan.next_due;
      }
      if (wanted.empty()) continue;
      dirs.emplace(wanted.begin(), wanted.end());
    }

    // Every request queued so far is served by a whole-root scan.
    uint64_t rescan_id;
    if (!whole || root.pending_ids.empty()) {
      rescan_id = ++last_issued_id;
      root.running_ids = {rescan_id};
    } else {
      rescan_id = *std::max_element(root.pending_ids.begin(),
                                    root.pending_ids.end());
      root.running_ids = std::move(root.pending_ids);
      root.pending_ids.clear();
    }
    if (whole) {
      root.pending_full = false;
      root.dirty_dirs.clear();  // the whole root covers them
      ++root.runtime.scans_started;
    } else {
      ++root.runtime.targeted_scans;
    }
    if (full) ++root.runtime.full_rescans;
    root.runtime.scanning = true;
    root.runtime.running_rescan_id = rescan_id;

    lock.unlock();
    auto scan_started = Clock::now();
    bool ok = RunScan(root, rescan_id, full, dirs);
    SettlePlan settle = index.PlanSettle(root.schedule.root_id, Clock::time_point::min());
    lock.lock();

    // A file written without pause keeps its directory dirty. Waiting twice
    // the last targeted scan's time before the next one caps the share of
    // time spent listing that directory at a third.
    auto scan_ended = Clock::now();
    root.targeted_allowed = whole ? scan_ended : scan_ended + 2 * (scan_ended - scan_started);

    root.runtime.scanning = false;
    root.runtime.running_rescan_id = 0;
    root.runtime.last_rescan_id = rescan_id;
    root.running_ids.clear();
    root.settle_due = settle.next_due;
    if (whole) {
      if (ok) {
        root.failures_in_row = 0;
      } else {
        ++root.runtime.scans_failed;
        ++root.failures_in_row;
      }
      next_due = Clock::now() + NextDelay(root);
    } else if (!ok) {
      ++root.runtime.scans_failed;
    }
    if (full) {
      root.full_due = NextFullRescan(root.schedule, Clock::now());
      root.runtime.next_full_rescan_ns = root.full_due ? ToWallNs(*root.full_due) : 0;
    }
    scan_done.notify_all();
  }
}

Status Scheduler::Impl::ListAddedDirs(ScheduledRoot& root, ScanSession& session,
                                      ListingSink& sink) {
  std::vector<std::string> trees;  // listed with everything below them
  for (;;) {
    std::vector<std::string> added = session.TakeAddedDirs();
    std::erase_if(added, [&](const std::string& dir) {
      return std::any_of(trees.begin(), trees.end(),
                         [&](const std::string& tree) { return IsAtOrBelow(dir, tree); });
    });
    if (added.empty() || stop) return Status::Ok();
    ScanRequest request;
    request.dirs = added;
    request.recursive = true;
    if (root.schedule.filter != nullptr && !root.schedule.filter->empty()) {
      request.filter = root.schedule.filter.get();
    }
    Result<ScanTotals> listed = root.schedule.source->Scan(request, sink, stop);
    if (!listed.ok()) return listed.status();
    trees.insert(trees.end(), added.begin(), added.end());
  }
}

bool Scheduler::Impl::RunScan(ScheduledRoot& root, uint64_t rescan_id, bool full,
                              const std::optional<std::vector<std::string>>& dirs) {
  const RootSchedule& schedule = root.schedule;
  const bool targeted = dirs.has_value();
  // Targeted scans follow every burst of events; they log at debug level
  // unless they find changes.
  spdlog::log(targeted ? spdlog::level::debug : spdlog::level::info,
              "scan started: root={} root_id={} rescan_id={} full={} dirs={} source={}",
              schedule.name, schedule.root_id, rescan_id, full,
              targeted ? std::to_string(dirs->size()) : "all", schedule.source->Describe());
  auto started = Clock::now();
  int64_t started_wall = ToWallNs(started);

  ScanOptions options(full ? ChangeOrigin::kReconcile : ChangeOrigin::kScan);
  options.settle = schedule.settle;
  options.partial = targeted;
  std::unique_ptr<ScanSession> session = index.BeginScan(schedule.root_id, options);
  if (session == nullptr) {
    Status error = Internal("the index could not begin a scan of root '" +
                            schedule.name + "'");
    spdlog::error("scan failed: root={} rescan_id={} error={}", schedule.name,
                  rescan_id, error.ToString());
    return false;
  }

  const PathFilter* filter =
      schedule.filter != nullptr && !schedule.filter->empty() ? schedule.filter.get() : nullptr;
  std::optional<FilteringSink> filtering;
  if (filter != nullptr) filtering.emplace(*session, *filter);
  CountingSink sink(filtering ? static_cast<ListingSink&>(*filtering) : *session, targeted);
  ScanRequest request;
  request.filter = filter;
  if (targeted) {
    request.dirs = *dirs;
    request.recursive = false;
  }
  Result<ScanTotals> totals = schedule.source->Scan(request, sink, stop);
  Status scan_status = totals.status();
  if (targeted && scan_status.ok()) scan_status = ListAddedDirs(root, *session, sink);

  if (!scan_status.ok() && sink.accepted() == 0) {
    // Nothing was listed (root missing, server unreachable, or a stop before
    // the first listing). The session is dropped unfinished, so the index
    // keeps every entry, and the error goes on the root.
    session.reset();
    if (scan_status.code() == StatusCode::kAborted) {
      spdlog::info("scan stopped before listing anything: root={} "
                   "rescan_id={}", schedule.name, rescan_id);
      return true;
    }
    spdlog::error("scan failed to start: root={} rescan_id={} "
                  "duration_ms={} error={}",
                  schedule.name, rescan_id, MillisecondsSince(started),
                  scan_status.ToString());
    Status recorded = index.RecordRootError(schedule.root_id, scan_status);
    if (!recorded.ok()) {
      spdlog::error("recording the scan error failed: root={} rescan_id={} "
                    "error={}", schedule.name, rescan_id, recorded.ToString());
    }
    return false;
  }

  Result<ScanSummary> summary = session->Finish(scan_status);
  if (!summary.ok()) {
    spdlog::error("scan could not be committed: root={} rescan_id={} "
                  "duration_ms={} scan_status={} error={}",
                  schedule.name, rescan_id, MillisecondsSince(started),
                  scan_status.ToString(), summary.status().ToString());
    return false;
  }
  if (full) {
    ReconcileReport report;
    report.finished_ns = ToWallNs(Clock::now());
    report.duration_ns = static_cast<uint64_t>(report.finished_ns - started_wall);
    report.entries_checked = summary->entries;
    report.failed_dirs = summary->failed_dirs;
    report.added = summary->added;
    report.modified = summary->modified;
    report.deleted = summary->deleted;
    report.renamed = summary->renamed;
    if (!scan_status.ok()) report.error = scan_status.ToString();
    index.RecordReconcile(schedule.root_id, report);
    // Drift means the incremental path missed something: worth a warning.
    spdlog::log(report.drift() > 0 || !report.error.empty() ? spdlog::level::warn
                                                            : spdlog::level::info,
                "full rescan report: root={} rescan_id={} duration_ms={} entries_checked={} "
                "drift={} added={} modified={} deleted={} renamed={} failed_dirs={} error={}",
                schedule.name, rescan_id, MillisecondsSince(started), report.entries_checked,
                report.drift(), report.added, report.modified, report.deleted, report.renamed,
                report.failed_dirs, report.error.empty() ? "none" : report.error);
  }
  if (!scan_status.ok()) {
    bool stopped = scan_status.code() == StatusCode::kAborted;
    spdlog::log(stopped ? spdlog::level::info : spdlog::level::err,
                "scan {}: root={} rescan_id={} duration_ms={} entries={} "
                "changes={} error={}",
                stopped ? "stopped" : "failed", schedule.name, rescan_id,
                MillisecondsSince(started), summary->entries, summary->changes,
                scan_status.ToString());
    return stopped;
  }
  spdlog::level::level_enum level = summary->failed_dirs > 0 ? spdlog::level::warn
                                    : targeted && summary->changes == 0 ? spdlog::level::debug
                                                                        : spdlog::level::info;
  spdlog::log(level,
              "scan finished: root={} rescan_id={} duration_ms={} dirs={} "
              "entries={} changes={} failed_dirs={} last_seq={}",
              schedule.name, rescan_id, MillisecondsSince(started),
              summary->listings, summary->entries, summary->changes,
              summary->failed_dirs, summary->last_seq);
  return true;
}

std::chrono::milliseconds Scheduler::Impl::NextDelay(
    const ScheduledRoot& root) const {
  std::chrono::milliseconds interval = root.schedule.rescan_interval;
  if (root.failures_in_row == 0) return interval;
  if (interval.count() <= 0) interval = std::chrono::seconds(30);
  std::chrono::milliseconds cap = std::max(interval, kMaxRetryDelay);
  std::chrono::milliseconds delay = interval;
  for (uint64_t i = 1; i < root.failures_in_row && delay < cap; ++i) {
    delay *= 2;
  }
  return std::min(delay, cap);
}

ScheduledRoot* Scheduler::Impl::Find(std::string_view name) const {
  for (const auto& root : roots) {
    if (root->schedule.name == name) return root.get();
  }
  return nullptr;
}

bool Scheduler::Impl::IsFinished(const ScheduledRoot& root,
                                 uint64_t rescan_id) const {
  if (rescan_id == 0 || rescan_id > last_issued_id) return false;
  auto contains = [&](const std::vector<uint64_t>& ids) {
    return std::find(ids.begin(), ids.end(), rescan_id) != ids.end();
  };
  return !contains(root.pending_ids) && !contains(root.running_ids);
}

// ---------------------------------------------------------------------------
// Scheduler

Scheduler::Scheduler(Index& index) : impl_(std::make_unique<Impl>(index)) {}

Scheduler::~Scheduler() { Stop(); }

void Scheduler::AddRoot(RootSchedule schedule) {
  std::lock_guard lock(impl_->mu);
  if (impl_->stop) {
    spdlog::error("root '{}' added after the scheduler stopped; it is not "
                  "scheduled", schedule.name);
    return;
  }
  if (schedule.source == nullptr) {
    spdlog::error("root '{}' has no source; it is not scheduled",
                  schedule.name);
    return;
  }
  if (impl_->Find(schedule.name) != nullptr) {
    spdlog::error("root '{}' is already scheduled; the second one is ignored",
                  schedule.name);
    return;
  }
  auto root = std::make_unique<ScheduledRoot>();
  root->runtime.name = schedule.name;
  root->runtime.rescan_interval = schedule.rescan_interval;
  root->runtime.watched = schedule.watcher != nullptr;
  root->runtime.settle = schedule.settle;
  root->runtime.full_rescan_interval = schedule.full_rescan_interval;
  root->runtime.full_rescan_minute = schedule.full_rescan_minute;
  if (schedule.filter != nullptr) {
    root->runtime.include = schedule.filter->include();
    root->runtime.exclude = schedule.filter->exclude();
  }
  root->schedule = std::move(schedule);
  impl_->roots.push_back(std::move(root));
  if (impl_->started && !impl_->stop) impl_->StartThread(*impl_->roots.back());
}

void Scheduler::Start() {
  std::lock_guard lock(impl_->mu);
  if (impl_->started || impl_->stop) return;
  impl_->started = true;
  spdlog::info("scheduler starting {} roots", impl_->roots.size());
  for (auto& root : impl_->roots) impl_->StartThread(*root);
}

void Scheduler::Stop() {
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->stop.exchange(true)) return;
    for (auto& root : impl_->roots) root->wake.notify_all();
    impl_->scan_done.notify_all();
  }
  for (auto& root : impl_->roots) {
    if (root->schedule.watcher != nullptr) root->schedule.watcher->Stop();
    if (root->thread.joinable()) root->thread.join();
  }
  spdlog::info("scheduler stopped");
}

Result<uint64_t> Scheduler::RequestRescan(std::string_view root_name,
                                          bool full) {
  std::lock_guard lock(impl_->mu);
  ScheduledRoot* root = impl_->Find(root_name);
  if (root == nullptr) {
    return NotFound("root '" + std::string(root_name) + "' is not configured");
  }
  if (impl_->stop) {
    return Status(StatusCode::kAborted,
                  "the scheduler is stopping; no new scans start");
  }
  uint64_t rescan_id = ++impl_->last_issued_id;
  root->pending_ids.push_back(rescan_id);
  root->pending_full = root->pending_full || full;
  root->wake.notify_all();
  spdlog::debug("rescan requested: root={} rescan_id={} full={}", root_name,
                rescan_id, full);
  return rescan_id;
}

std::optional<RootRuntime> Scheduler::Runtime(std::string_view root_name) const {
  RootRuntime runtime;
  Source* source = nullptr;
  DirWatcher* watcher = nullptr;
  {
    std::lock_guard lock(impl_->mu);
    ScheduledRoot* root = impl_->Find(root_name);
    if (root == nullptr) return std::nullopt;
    runtime = root->runtime;
    source = root->schedule.source.get();
    watcher = root->schedule.watcher.get();
  }
  // Sources and watchers guard their own state, and asking must not wait
  // for the scheduler's lock while a scan reports progress.
  if (source != nullptr) runtime.source_details = source->Details();
  if (watcher != nullptr) runtime.watch = watcher->stats();
  return runtime;
}

std::vector<RootRuntime> Scheduler::Runtimes() const {
  std::lock_guard lock(impl_->mu);
  std::vector<RootRuntime> out;
  out.reserve(impl_->roots.size());
  for (const auto& root : impl_->roots) {
    out.push_back(root->runtime);
    if (root->schedule.watcher != nullptr) out.back().watch = root->schedule.watcher->stats();
  }
  return out;
}

bool Scheduler::WaitForScan(std::string_view root_name, uint64_t rescan_id,
                            std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->mu);
  ScheduledRoot* root = impl_->Find(root_name);
  if (root == nullptr) return false;
  impl_->scan_done.wait_for(lock, timeout, [&] {
    return impl_->stop || impl_->IsFinished(*root, rescan_id);
  });
  return impl_->IsFinished(*root, rescan_id);
}

}  // namespace dirindex
