// Tests of the Scheduler with the real Index and the local walker, plus a
// controllable source for timing cases.
#include "scan/scheduler.h"

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "scan/walker.h"
#include "tests/test_support.h"

namespace dirindex {
namespace {

using std::chrono::milliseconds;
using testing::MakeDirs;
using testing::ScratchDir;
using testing::WriteFile;

constexpr milliseconds kWait{20'000};

std::unique_ptr<Index> OpenIndex(const ScratchDir& dir) {
  IndexOptions options;
  options.dir = dir.Sub("index");
  options.durable = false;
  Result<std::unique_ptr<Index>> index = Index::Open(options);
  EXPECT_TRUE(index.ok()) << index.status().ToString();
  return index.ok() ? std::move(index).value() : nullptr;
}

std::unique_ptr<Source> WalkerFor(const std::string& root) {
  WalkerOptions options;
  options.root_path = root;
  Result<std::unique_ptr<LocalSource>> source = LocalSource::Create(options);
  EXPECT_TRUE(source.ok()) << source.status().ToString();
  return source.ok() ? std::move(source).value() : nullptr;
}

RootSchedule ScheduleFor(Index& index, const std::string& name,
                         std::unique_ptr<Source> source,
                         milliseconds interval = std::chrono::hours(1)) {
  RootSchedule schedule;
  Result<uint32_t> root_id = index.AddRoot(name, source->Describe());
  EXPECT_TRUE(root_id.ok()) << root_id.status().ToString();
  schedule.root_id = root_id.ok() ? root_id.value() : 0;
  schedule.name = name;
  schedule.source = std::move(source);
  schedule.rescan_interval = interval;
  return schedule;
}

// Polls `condition` until it returns true or `timeout` passes.
template <typename Condition>
bool Eventually(Condition condition, milliseconds timeout = kWait) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return condition();
}

bool FirstScanDone(const Scheduler& scheduler, std::string_view root) {
  std::optional<RootRuntime> runtime = scheduler.Runtime(root);
  return runtime && runtime->last_rescan_id != 0;
}

bool Indexed(Index& index, uint32_t root_id, std::string_view path) {
  Result<std::optional<Entry>> entry = index.Stat(root_id, path);
  return entry.ok() && entry->has_value();
}

// GatedSource lists one file per scan, and blocks inside Scan until the
// test opens the gate or the scheduler stops.
class GatedSource : public Source {
 public:
  Result<ScanTotals> Scan(const ScanRequest&, ListingSink& sink,
                          const std::atomic<bool>& stop) override {
    {
      std::unique_lock lock(mu_);
      ++scans_;
      changed_.notify_all();
      while (!open_ && !stop) changed_.wait_for(lock, milliseconds(2));
      if (stop) {
        saw_stop_ = true;
        return Status(StatusCode::kAborted, "gated source stopped");
      }
    }
    DirListing listing;
    ListedEntry entry;
    entry.name = "only.txt";
    entry.type = EntryType::kFile;
    entry.known = kKnownSize;
    entry.size = 1;
    listing.entries.push_back(entry);
    Status status = sink.Accept(std::move(listing));
    if (!status.ok()) return status;
    return ScanTotals{1, 1, 1, 0};
  }

  std::string Describe() const override { return "gated://test"; }

  void Open() {
    std::lock_guard lock(mu_);
    open_ = true;
    changed_.notify_all();
  }
  int scans() const {
    std::lock_guard lock(mu_);
    return scans_;
  }
  bool saw_stop() const {
    std::lock_guard lock(mu_);
    return saw_stop_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable changed_;
  bool open_ = false;
  bool saw_stop_ = false;
  int scans_ = 0;
};

TEST(SchedulerTest, ScansAtStart) {
  ScratchDir dir;
  MakeDirs(dir.Sub("tree/sub"));
  WriteFile(dir.Sub("tree/a.xml"), "a");
  WriteFile(dir.Sub("tree/sub/b.xml"), "bb");
  auto index = OpenIndex(dir);
  ASSERT_NE(index, nullptr);

  Scheduler scheduler(*index);
  RootSchedule schedule = ScheduleFor(*index, "tree", WalkerFor(dir.Sub("tree")));
  uint32_t root_id = schedule.root_id;
  scheduler.AddRoot(std::move(schedule));
  scheduler.Start();

  ASSERT_TRUE(Eventually([&] { return FirstScanDone(scheduler, "tree"); }));
  EXPECT_TRUE(Indexed(*index, root_id, "a.xml"));
  EXPECT_TRUE(Indexed(*index, root_id, "sub/b.xml"));
  std::optional<RootRuntime> runtime = scheduler.Runtime("tree");
  ASSERT_TRUE(runtime.has_value());
  EXPECT_EQ(runtime->name, "tree");
  EXPECT_EQ(runtime->scans_started, 1u);
  EXPECT_EQ(runtime->scans_failed, 0u);
  EXPECT_EQ(runtime->rescan_interval, std::chrono::hours(1));

  Result<RootInfo> info = index->GetRoot("tree");
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->files, 2u);
  EXPECT_EQ(info->scans, 1u);
  EXPECT_EQ(info->last_error, "");
}

TEST(SchedulerTest, RequestedRescanFindsNewFile) {
  ScratchDir dir;
  MakeDirs(dir.Sub("tree"));
  WriteFile(dir.Sub("tree/first.xml"), "1");
  auto index = OpenIndex(dir);
  ASSERT_NE(index, nullptr);
  Scheduler scheduler(*index);
  RootSchedule schedule = ScheduleFor(*index, "tree", WalkerFor(dir.Sub("tree")));
  uint32_t root_id = schedule.root_id;
  scheduler.AddRoot(std::move(schedule));
  scheduler.Start();
  ASSERT_TRUE(Eventually([&] { return FirstScanDone(scheduler, "tree"); }));

  WriteFile(dir.Sub("tree/second.xml"), "2");
  Result<uint64_t> first_id = scheduler.RequestRescan("tree", false);
  ASSERT_TRUE(first_id.ok()) << first_id.status().ToString();
  ASSERT_TRUE(scheduler.WaitForScan("tree", *first_id, kWait));
  EXPECT_TRUE(Indexed(*index, root_id, "second.xml"));

  Result<FeedPage> feed = index->ReadChanges(root_id, "", 100, "");
  ASSERT_TRUE(feed.ok()) << feed.status().ToString();

  unlink(dir.Sub("tree/first.xml").c_str());
  Result<uint64_t> second_id = scheduler.RequestRescan("tree", false);
  ASSERT_TRUE(second_id.ok());
  EXPECT_GT(*second_id, *first_id);
  ASSERT_TRUE(scheduler.WaitForScan("tree", *second_id, kWait));
  EXPECT_FALSE(Indexed(*index, root_id, "first.xml"));

  Result<FeedPage> changes = index->ReadChanges(root_id, feed->cursor, 100, "");
  ASSERT_TRUE(changes.ok()) << changes.status().ToString();
  ASSERT_EQ(changes->changes.size(), 1u);
  EXPECT_EQ(changes->changes[0].op, ChangeOp::kDeleted);
  EXPECT_EQ(changes->changes[0].path, "first.xml");
  EXPECT_EQ(changes->changes[0].origin, ChangeOrigin::kScan);
  EXPECT_EQ(scheduler.Runtime("tree")->last_rescan_id, *second_id);
}

TEST(SchedulerTest, FullRescanMarksReconcile) {
  ScratchDir dir;
  MakeDirs(dir.Sub("tree"));
  auto index = OpenIndex(dir);
  ASSERT_NE(index, nullptr);
  Scheduler scheduler(*index);
  RootSchedule schedule = ScheduleFor(*index, "tree", WalkerFor(dir.Sub("tree")));
  uint32_t root_id = schedule.root_id;
  scheduler.AddRoot(std::move(schedule));
  scheduler.Start();
  ASSERT_TRUE(Eventually([&] { return FirstScanDone(scheduler, "tree"); }));
  Result<FeedPage> before = index->ReadChanges(root_id, "", 100, "");
  ASSERT_TRUE(before.ok());

  WriteFile(dir.Sub("tree/drift.xml"), "d");
  Result<uint64_t> id = scheduler.RequestRescan("tree", true);
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(scheduler.WaitForScan("tree", *id, kWait));

  Result<FeedPage> changes = index->ReadChanges(root_id, before->cursor, 100, "");
  ASSERT_TRUE(changes.ok()) << changes.status().ToString();
  ASSERT_EQ(changes->changes.size(), 1u);
  EXPECT_EQ(changes->changes[0].path, "drift.xml");
  EXPECT_EQ(changes->changes[0].origin, ChangeOrigin::kReconcile);
}

TEST(SchedulerTest, RescanIdsUniqueAcrossRoots) {
  ScratchDir dir;
  MakeDirs(dir.Sub("one"));
  MakeDirs(dir.Sub("two"));
  auto index = OpenIndex(dir);
  ASSERT_NE(index, nullptr);
  Scheduler scheduler(*index);
  scheduler.AddRoot(ScheduleFor(*index, "one", WalkerFor(dir.Sub("one"))));
  scheduler.AddRoot(ScheduleFor(*index, "two", WalkerFor(dir.Sub("two"))));
  scheduler.Start();

  std::set<uint64_t> ids;
  uint64_t last = 0;
  for (int i = 0; i < 6; ++i) {
    const char* root = i % 2 == 0 ? "one" : "two";
    Result<uint64_t> id = scheduler.RequestRescan(root, false);
    ASSERT_TRUE(id.ok()) << id.status().ToString();
    EXPECT_GT(*id, last);
    last = *id;
    ids.insert(*id);
    ASSERT_TRUE(scheduler.WaitForScan(root, *id, kWait));
  }
  EXPECT_EQ(ids.size(), 6u);
  std::vector<RootRuntime> runtimes = scheduler.Runtimes();
  ASSERT_EQ(runtimes.size(), 2u);
  EXPECT_EQ(runtimes[0].name, "one");
  EXPECT_EQ(runtimes[1].name, "two");
}

TEST(SchedulerTest, UnknownRootNotFound) {
  ScratchDir dir;
  auto index = OpenIndex(dir);
  ASSERT_NE(index, nullptr);
  Scheduler scheduler(*index);
  scheduler.Start();

  Result<uint64_t> id = scheduler.RequestRescan("missing", false);
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().code(), StatusCode::kNotFound);
  EXPECT_NE(id.status().message().find("missing"), std::string::npos);
  EXPECT_FALSE(scheduler.Runtime("missing").has_value());
  EXPECT_FALSE(scheduler.WaitForScan("missing", 1, milliseconds(1)));
}

TEST(SchedulerTest, RemovedRootRecordsError) {
  ScratchDir dir;
  MakeDirs(dir.Sub("tree"));
  WriteFile(dir.Sub("tree/kept.xml"), "k");
  auto index = OpenIndex(dir);
  ASSERT_NE(index, nullptr);
  Scheduler scheduler(*index);
  RootSchedule schedule = ScheduleFor(*index, "tree", WalkerFor(dir.Sub("tree")));
  uint32_t root_id = schedule.root_id;
  scheduler.AddRoot(std::move(schedule));
  scheduler.Start();
  ASSERT_TRUE(Eventually([&] { return FirstScanDone(scheduler, "tree"); }));

  testing::RemoveTree(dir.Sub("tree"));
  Result<uint64_t> id = scheduler.RequestRescan("tree", false);
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(scheduler.WaitForScan("tree", *id, kWait));

  EXPECT_EQ(scheduler.Runtime("tree")->scans_failed, 1u);
  Result<RootInfo> info = index->GetRoot("tree");
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_NE(info->last_error.find(dir.Sub("tree")), std::string::npos)
      << info->last_error;
  // A scan that could not start deletes nothing.
  EXPECT_TRUE(Indexed(*index, root_id, "kept.xml"));

  // Once the folder is back, the next scan succeeds and clears the error.
  MakeDirs(dir.Sub("tree"));
  WriteFile(dir.Sub("tree/kept.xml"), "k");
  Result<uint64_t> retry = scheduler.RequestRescan("tree", false);
  ASSERT_TRUE(retry.ok());
  ASSERT_TRUE(scheduler.WaitForScan("tree", *retry, kWait));
  EXPECT_EQ(scheduler.Runtime("tree")->scans_failed, 1u);
  info = index->GetRoot("tree");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->last_error, "");
}

TEST(SchedulerTest, PeriodicRescans) {
  ScratchDir dir;
  MakeDirs(dir.Sub("tree"));
  auto index = OpenIndex(dir);
  ASSERT_NE(index, nullptr);
  Scheduler scheduler(*index);
  scheduler.AddRoot(
      ScheduleFor(*index, "tree", WalkerFor(dir.Sub("tree")), milliseconds(20)));
  scheduler.Start();

  EXPECT_TRUE(Eventually([&] {
    return scheduler.Runtime("tree")->last_rescan_id != 0 &&
           scheduler.Runtime("tree")->scans_started >= 3;
  }));
  scheduler.Stop();
  uint64_t started = scheduler.Runtime("tree")->scans_started;
  std::this_thread::sleep_for(milliseconds(60));
  EXPECT_EQ(scheduler.Runtime("tree")->scans_started, started);
}

TEST(SchedulerTest, RequestsDuringScanMerge) {
  ScratchDir dir;
  auto index = OpenIndex(dir);
  ASSERT_NE(index, nullptr);
  auto owned = std::make_unique<GatedSource>();
  GatedSource* source = owned.get();
  Scheduler scheduler(*index);
  scheduler.AddRoot(ScheduleFor(*index, "gated", std::move(owned)));
  scheduler.Start();
  ASSERT_TRUE(Eventually([&] { return source->scans() == 1; }));
  std::optional<RootRuntime> runtime = scheduler.Runtime("gated");
  ASSERT_TRUE(runtime.has_value());
  EXPECT_TRUE(runtime->scanning);
  EXPECT_NE(runtime->running_rescan_id, 0u);

  // Three requests while the first scan is blocked: one scan serves all.
  std::vector<uint64_t> ids;
  for (int i = 0; i < 3; ++i) {
    Result<uint64_t> id = scheduler.RequestRescan("gated", false);
    ASSERT_TRUE(id.ok());
    ids.push_back(*id);
  }
  EXPECT_FALSE(scheduler.WaitForScan("gated", ids[0], milliseconds(20)));
  source->Open();
  for (uint64_t id : ids) {
    EXPECT_TRUE(scheduler.WaitForScan("gated", id, kWait)) << id;
  }
  EXPECT_EQ(source->scans(), 2);
  EXPECT_EQ(scheduler.Runtime("gated")->scans_started, 2u);
  EXPECT_EQ(scheduler.Runtime("gated")->last_rescan_id, ids.back());
}

TEST(SchedulerTest, StopInterruptsRunningScan) {
  ScratchDir dir;
  auto index = OpenIndex(dir);
  ASSERT_NE(index, nullptr);
  auto owned = std::make_unique<GatedSource>();
  GatedSource* source = owned.get();
  Scheduler scheduler(*index);
  scheduler.AddRoot(ScheduleFor(*index, "gated", std::move(owned)));
  scheduler.Start();
  ASSERT_TRUE(Eventually([&] { return source->scans() == 1; }));
  uint64_t running = scheduler.Runtime("gated")->running_rescan_id;

  auto started = std::chrono::steady_clock::now();
  scheduler.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - started, milliseconds(5'000));
  EXPECT_TRUE(source->saw_stop());
  EXPECT_FALSE(scheduler.Runtime("gated")->scanning);
  EXPECT_TRUE(scheduler.WaitForScan("gated", running, milliseconds(1)));
  // A stopped scan is not a failure.
  EXPECT_EQ(scheduler.Runtime("gated")->scans_failed, 0u);

  Result<uint64_t> after = scheduler.RequestRescan("gated", false);
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.status().code(), StatusCode::kAborted);
  scheduler.Stop();  // a second Stop is harmless
}

}  // namespace
}  // namespace dirindex
