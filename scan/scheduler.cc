// Scheduler: one thread per root. Each thread scans at start, then waits
// for its rescan interval or a request, whichever comes first. Requests
// that arrive while a scan runs are merged into the next scan, which then
// finishes all of their ids at once. A scan that fails to start is retried
// with a doubling delay, from the rescan interval up to kMaxRetryDelay.
#include "scan/scheduler.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include <spdlog/spdlog.h>

namespace dirindex {

namespace {

constexpr std::chrono::milliseconds kMaxRetryDelay{10 * 60 * 1000};

// Forwards listings to the scan session and counts them, so the scheduler
// can tell a scan that never started from one that failed half-way.
class CountingSink : public ListingSink {
 public:
  explicit CountingSink(ListingSink& target) : target_(target) {}

  Status Accept(DirListing&& listing) override {
    accepted_.fetch_add(1, std::memory_order_relaxed);
    return target_.Accept(std::move(listing));
  }

  uint64_t accepted() const { return accepted_.load(); }

 private:
  ListingSink& target_;
  std::atomic<uint64_t> accepted_{0};
};

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
  std::vector<uint64_t> running_ids;  // finished by the running scan
  uint64_t failures_in_row = 0;
  std::condition_variable wake;
  std::thread thread;
};

struct Scheduler::Impl {
  explicit Impl(Index& index) : index(index) {}

  void StartThread(ScheduledRoot& root);
  void RunRoot(ScheduledRoot& root);
  // Runs one scan of `root` and returns false when it failed.
  bool RunScan(ScheduledRoot& root, uint64_t rescan_id, bool full);
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
  root.thread = std::thread([this, &root] { RunRoot(root); });
}

void Scheduler::Impl::RunRoot(ScheduledRoot& root) {
  auto next_due = std::chrono::steady_clock::now();
  std::unique_lock lock(mu);
  while (!stop) {
    // Without an interval the root is scanned at start, on request, and
    // again after a failure.
    bool timed = root.schedule.rescan_interval.count() > 0 ||
                 root.runtime.scans_started == 0 || root.failures_in_row > 0;
    auto ready = [&] { return stop || !root.pending_ids.empty(); };
    if (timed) {
      root.wake.wait_until(lock, next_due, ready);
    } else {
      root.wake.wait(lock, ready);
    }
    if (stop) break;
    if (root.pending_ids.empty() && std::chrono::steady_clock::now() < next_due) {
      continue;
    }

    // Every request queued so far is served by this scan.
    uint64_t rescan_id;
    bool full = root.pending_full;
    if (root.pending_ids.empty()) {
      rescan_id = ++last_issued_id;
      root.running_ids = {rescan_id};
    } else {
      rescan_id = *std::max_element(root.pending_ids.begin(),
                                    root.pending_ids.end());
      root.running_ids = std::move(root.pending_ids);
      root.pending_ids.clear();
    }
    root.pending_full = false;
    root.runtime.scanning = true;
    root.runtime.running_rescan_id = rescan_id;
    ++root.runtime.scans_started;

    lock.unlock();
    bool ok = RunScan(root, rescan_id, full);
    lock.lock();

    root.runtime.scanning = false;
    root.runtime.running_rescan_id = 0;
    root.runtime.last_rescan_id = rescan_id;
    root.running_ids.clear();
    if (ok) {
      root.failures_in_row = 0;
    } else {
      ++root.runtime.scans_failed;
      ++root.failures_in_row;
    }
    next_due = std::chrono::steady_clock::now() + NextDelay(root);
    scan_done.notify_all();
  }
}

bool Scheduler::Impl::RunScan(ScheduledRoot& root, uint64_t rescan_id, bool full) {
  const RootSchedule& schedule = root.schedule;
  spdlog::info("scan started: root={} root_id={} rescan_id={} full={} source={}",
               schedule.name, schedule.root_id, rescan_id, full,
               schedule.source->Describe());
  auto started = std::chrono::steady_clock::now();

  std::unique_ptr<ScanSession> session = index.BeginScan(
      schedule.root_id, full ? ChangeOrigin::kReconcile : ChangeOrigin::kScan);
  if (session == nullptr) {
    Status error = Internal("the index could not begin a scan of root '" +
                            schedule.name + "'");
    spdlog::error("scan failed: root={} rescan_id={} error={}", schedule.name,
                  rescan_id, error.ToString());
    return false;
  }

  CountingSink sink(*session);
  Result<ScanTotals> totals =
      schedule.source->Scan(ScanRequest(), sink, stop);
  const Status& scan_status = totals.status();

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
  spdlog::log(summary->failed_dirs > 0 ? spdlog::level::warn
                                       : spdlog::level::info,
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
  {
    std::lock_guard lock(impl_->mu);
    ScheduledRoot* root = impl_->Find(root_name);
    if (root == nullptr) return std::nullopt;
    runtime = root->runtime;
    source = root->schedule.source.get();
  }
  // Sources guard their own details, and asking must not wait for the
  // scheduler's lock while a scan reports progress.
  if (source != nullptr) runtime.source_details = source->Details();
  return runtime;
}

std::vector<RootRuntime> Scheduler::Runtimes() const {
  std::lock_guard lock(impl_->mu);
  std::vector<RootRuntime> out;
  out.reserve(impl_->roots.size());
  for (const auto& root : impl_->roots) out.push_back(root->runtime);
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
