// File workflows end to end: watching, settle, filters, renames and full
// rescans, against the real server with real files and real inotify, read
// through the HTTP API.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "api/service.h"
#include "tests/http_client.h"
#include "tests/test_support.h"

namespace dirindex {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using testing::HttpGet;
using testing::HttpRequest;
using testing::MakeDirs;
using testing::ScratchDir;
using testing::WriteFile;

struct FeedChange {
  std::string op;
  std::string path;
  std::string old_path;
  std::string origin;
  bool inferred = false;
  uint64_t size = 0;
};

rapidjson::Document Json(const std::string& body) {
  rapidjson::Document document;
  document.Parse(body.c_str(), body.size());
  EXPECT_FALSE(document.HasParseError()) << body;
  return document;
}

std::string Encode(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char escaped[4];
      std::snprintf(escaped, sizeof escaped, "%%%02X", c);
      out += escaped;
    }
  }
  return out;
}

void AppendTo(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::app);
  out << bytes;
}

class WorkflowTest : public ::testing::Test {
 protected:
  void SetUp() override { MakeDirs(Tree()); }
  void TearDown() override {
    if (service_) service_->Stop();
  }

  std::string Tree() const { return scratch_.Sub("tree"); }
  std::string At(const std::string& relative) const { return Tree() + "/" + relative; }

  RootConfig MakeRoot() const {
    RootConfig root;
    root.name = "tree";
    root.source = "file://" + Tree();
    root.local_path = Tree();
    root.rescan_interval = std::chrono::hours(1);
    return root;
  }

  void Start(const RootConfig& root) {
    Config config;
    config.listen = "127.0.0.1:0";
    config.index_dir = scratch_.Sub("index");
    config.roots.push_back(root);
    Result<std::unique_ptr<Service>> service = Service::Start(config);
    ASSERT_TRUE(service.ok()) << service.status().ToString();
    service_ = std::move(*service);
    // The first scan: from then on every directory is watched.
    ASSERT_TRUE(WaitFor([&] { return RootJson()["scans"].GetUint64() >= 1; }));
    cursor_ = LiveCursor();
  }

  void Restart(const RootConfig& root) {
    service_->Stop();
    service_.reset();
    std::string cursor = cursor_;
    Start(root);
    cursor_ = cursor;
  }

  std::string Url(const std::string& target) const {
    return "http://127.0.0.1:" + std::to_string(service_->port()) + target;
  }

  rapidjson::Document RootJson() {
    testing::HttpResponse reply = HttpGet(Url("/v1/roots/tree"));
    EXPECT_EQ(reply.status, 200) << reply.body << reply.error;
    return Json(reply.body);
  }

  std::string Metrics() { return HttpGet(Url("/metrics")).body; }

  static bool WaitFor(const std::function<bool()>& done, milliseconds limit = milliseconds(20'000)) {
    auto deadline = Clock::now() + limit;
    while (Clock::now() < deadline) {
      if (done()) return true;
      std::this_thread::sleep_for(milliseconds(20));
    }
    return done();
  }

  void Rescan(bool full) {
    testing::HttpResponse reply =
        HttpRequest("POST", Url(std::string("/v1/roots/tree/rescan") + (full ? "?full=true" : "")));
    ASSERT_EQ(reply.status, 202) << reply.body;
    uint64_t id = Json(reply.body)["rescan_id"].GetUint64();
    ASSERT_TRUE(service_->scheduler().WaitForScan("tree", id, std::chrono::seconds(60)));
  }

  // Reads the feed from `since` to its end; `wait_s` > 0 long-polls the
  // first page.
  std::vector<FeedChange> Read(std::string* since, int wait_s = 0) {
    std::vector<FeedChange> changes;
    for (int page = 0; page < 10'000; ++page) {
      std::string target = "/v1/roots/tree/changes?limit=10000";
      if (!since->empty()) target += "&since=" + Encode(*since);
      if (page == 0 && wait_s > 0) target += "&wait=" + std::to_string(wait_s);
      testing::HttpResponse reply = HttpGet(Url(target), 60'000);
      EXPECT_EQ(reply.status, 200) << reply.body << reply.error;
      if (reply.status != 200) break;
      rapidjson::Document document = Json(reply.body);
      for (const auto& change : document["changes"].GetArray()) {
        FeedChange seen;
        seen.op = change["op"].GetString();
        seen.path = change["path"].GetString();
        if (change.HasMember("old_path")) seen.old_path = change["old_path"].GetString();
        if (change.HasMember("origin")) seen.origin = change["origin"].GetString();
        if (change.HasMember("inferred")) seen.inferred = change["inferred"].GetBool();
        if (change.HasMember("size")) seen.size = change["size"].GetUint64();
        changes.push_back(seen);
      }
      *since = document["cursor"].GetString();
      if (!document["more"].GetBool()) break;
    }
    return changes;
  }

  std::string LiveCursor() {
    std::string cursor;
    Read(&cursor);
    return cursor;
  }

  // Reads new changes until `done` holds for all seen so far.
  std::vector<FeedChange> ReadUntil(const std::function<bool(const std::vector<FeedChange>&)>& done,
                                    milliseconds limit = milliseconds(20'000)) {
    std::vector<FeedChange> seen;
    auto deadline = Clock::now() + limit;
    while (!done(seen) && Clock::now() < deadline) {
      for (FeedChange& change : Read(&cursor_, 1)) seen.push_back(std::move(change));
    }
    return seen;
  }

  static size_t Count(const std::vector<FeedChange>& changes, const std::string& op,
                      const std::string& path) {
    size_t n = 0;
    for (const FeedChange& change : changes) n += change.op == op && change.path == path;
    return n;
  }

  static size_t CountPath(const std::vector<FeedChange>& changes, const std::string& path) {
    size_t n = 0;
    for (const FeedChange& change : changes) n += change.path == path || change.old_path == path;
    return n;
  }

  // Every indexed path of the root, from GET /files.
  std::map<std::string, bool> Files(const std::string& prefix = "") {
    std::map<std::string, bool> files;  // path -> stable
    std::string after;
    for (int page = 0; page < 10'000; ++page) {
      std::string target = "/v1/roots/tree/files?limit=10000";
      if (!prefix.empty()) target += "&prefix=" + Encode(prefix);
      if (!after.empty()) target += "&after=" + Encode(after);
      testing::HttpResponse reply = HttpGet(Url(target));
      EXPECT_EQ(reply.status, 200) << reply.body;
      rapidjson::Document document = Json(reply.body);
      for (const auto& entry : document["entries"].GetArray()) {
        files[entry["path"].GetString()] = entry["stable"].GetBool();
      }
      if (!document.HasMember("next") || document["next"].IsNull()) break;
      after = document["next"].GetString();
      if (after.empty()) break;
    }
    return files;
  }

  ScratchDir scratch_;
  std::unique_ptr<Service> service_;
  std::string cursor_;
};

TEST_F(WorkflowTest, WatchReportsNewFile) {
  ASSERT_NO_FATAL_FAILURE(Start(MakeRoot()));
  WriteFile(At("new.xml"), "<a/>");
  std::vector<FeedChange> seen =
      ReadUntil([](const auto& changes) { return Count(changes, "added", "new.xml") == 1; });
  EXPECT_EQ(Count(seen, "added", "new.xml"), 1u);
  EXPECT_EQ(RootJson()["watch"]["enabled"].GetBool(), true);
  EXPECT_GE(RootJson()["watch"]["watches"].GetUint64(), 1u);
}

TEST_F(WorkflowTest, FilesCreatedRightAfterMkdirAreFound) {
  ASSERT_NO_FATAL_FAILURE(Start(MakeRoot()));
  MakeDirs(At("in/deep/er"));
  for (int i = 0; i < 20; ++i) WriteFile(At("in/deep/er/f" + std::to_string(i)), "x");
  for (int i = 0; i < 5; ++i) WriteFile(At("in/g" + std::to_string(i)), "y");
  auto all_there = [](const std::vector<FeedChange>& changes) {
    size_t files = 0;
    for (const FeedChange& change : changes) files += change.op == "added";
    return files == 3 + 25;
  };
  std::vector<FeedChange> seen = ReadUntil(all_there);
  EXPECT_TRUE(all_there(seen)) << seen.size() << " changes";
  EXPECT_EQ(Count(seen, "added", "in/deep/er/f19"), 1u);
  EXPECT_EQ(Count(seen, "added", "in/g4"), 1u);
}

TEST_F(WorkflowTest, MovedDirectoryStaysWatched) {
  MakeDirs(At("old/sub"));
  WriteFile(At("old/sub/a"), "a");
  ASSERT_NO_FATAL_FAILURE(Start(MakeRoot()));
  std::filesystem::rename(At("old"), At("new"));
  std::vector<FeedChange> seen =
      ReadUntil([](const auto& changes) { return Count(changes, "renamed", "new") == 1; });
  ASSERT_EQ(Count(seen, "renamed", "new"), 1u);
  EXPECT_EQ(seen.size(), 1u) << "the files below move with the directory";
  // Events from the moved directory arrive under its new path.
  WriteFile(At("new/sub/b"), "b");
  seen = ReadUntil([](const auto& changes) { return Count(changes, "added", "new/sub/b") == 1; });
  EXPECT_EQ(Count(seen, "added", "new/sub/b"), 1u);
  EXPECT_EQ(CountPath(seen, "old/sub/b"), 0u);
}

TEST_F(WorkflowTest, FolderRotationIsRenameAndAdd) {
  MakeDirs(At("q"));
  WriteFile(At("q/a"), "a");
  ASSERT_NO_FATAL_FAILURE(Start(MakeRoot()));
  // The move and the new folder land in one batch of events.
  std::filesystem::rename(At("q"), At("q.old"));
  MakeDirs(At("q"));
  std::vector<FeedChange> seen = ReadUntil([](const auto& changes) {
    return Count(changes, "renamed", "q.old") == 1 && Count(changes, "added", "q") == 1;
  });
  EXPECT_EQ(Count(seen, "renamed", "q.old"), 1u);
  EXPECT_EQ(Count(seen, "added", "q"), 1u);
  EXPECT_EQ(CountPath(seen, "q/a"), 0u) << "a moved along with the folder";
  // The new folder is watched.
  WriteFile(At("q/b"), "b");
  seen = ReadUntil([](const auto& changes) { return Count(changes, "added", "q/b") == 1; });
  EXPECT_EQ(Count(seen, "added", "q/b"), 1u);
  std::map<std::string, bool> files = Files();
  EXPECT_EQ(files.count("q.old/a"), 1u);
  EXPECT_EQ(files.count("q/a"), 0u);
  EXPECT_EQ(files.count("q/b"), 1u);
}

TEST_F(WorkflowTest, RenameToSuccessIsOneRename) {
  WriteFile(At("a.xml"), "<order/>");
  ASSERT_NO_FATAL_FAILURE(Start(MakeRoot()));
  std::filesystem::rename(At("a.xml"), At("a.xml.success"));
  std::vector<FeedChange> seen =
      ReadUntil([](const auto& changes) { return !changes.empty(); });
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].op, "renamed");
  EXPECT_EQ(seen[0].path, "a.xml.success");
  EXPECT_EQ(seen[0].old_path, "a.xml");
}

TEST_F(WorkflowTest, RenameChainAndCaseOnly) {
  WriteFile(At("a"), "1");
  WriteFile(At("Report.csv"), "2");
  RootConfig root = MakeRoot();
  root.watch = false;
  ASSERT_NO_FATAL_FAILURE(Start(root));
  std::filesystem::rename(At("a"), At("b"));
  std::filesystem::rename(At("b"), At("c"));
  std::filesystem::rename(At("Report.csv"), At("report.csv"));
  ASSERT_NO_FATAL_FAILURE(Rescan(false));
  std::vector<FeedChange> seen = Read(&cursor_);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(Count(seen, "renamed", "c"), 1u);
  EXPECT_EQ(Count(seen, "renamed", "report.csv"), 1u);
  for (const FeedChange& change : seen) {
    EXPECT_EQ(change.old_path, change.path == "c" ? "a" : "Report.csv");
  }
}

TEST_F(WorkflowTest, StepwiseWriteAnnouncedOnce) {
  RootConfig root = MakeRoot();
  root.settle = milliseconds(800);
  ASSERT_NO_FATAL_FAILURE(Start(root));
  // Five writes 300 ms apart: 1.2 s of writing, longer than the settle time.
  std::string path = At("big.xml");
  for (int step = 0; step < 5; ++step) {
    AppendTo(path, std::string(1000, 'x'));
    std::this_thread::sleep_for(milliseconds(300));
    if (step == 2) {
      // Indexed, not announced: GET /files shows it as not stable.
      ASSERT_TRUE(WaitFor([&] { return Files().count("big.xml") == 1; }));
      EXPECT_FALSE(Files()["big.xml"]);
      EXPECT_GE(RootJson()["unsettled"].GetUint64(), 1u);
    }
  }
  std::vector<FeedChange> seen =
      ReadUntil([](const auto& changes) { return !changes.empty(); });
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].op, "added");
  EXPECT_EQ(seen[0].size, 5000u) << "announced with its final size";
  // Nothing more follows: the file was announced once.
  std::this_thread::sleep_for(milliseconds(1500));
  EXPECT_TRUE(Read(&cursor_).empty());
  EXPECT_TRUE(Files()["big.xml"]);
  EXPECT_EQ(RootJson()["unsettled"].GetUint64(), 0u);
}

TEST_F(WorkflowTest, UnsettledDeletionNeverAnnounced) {
  RootConfig root = MakeRoot();
  root.settle = milliseconds(1500);
  ASSERT_NO_FATAL_FAILURE(Start(root));
  WriteFile(At("tmp.xml"), "short-lived");
  ASSERT_TRUE(WaitFor([&] { return Files().count("tmp.xml") == 1; }));
  std::filesystem::remove(At("tmp.xml"));
  WriteFile(At("kept.xml"), "stays");
  std::vector<FeedChange> seen =
      ReadUntil([](const auto& changes) { return Count(changes, "added", "kept.xml") == 1; });
  EXPECT_EQ(CountPath(seen, "tmp.xml"), 0u);
  EXPECT_EQ(Count(seen, "added", "kept.xml"), 1u);
  EXPECT_EQ(Files().count("tmp.xml"), 0u);
}

TEST_F(WorkflowTest, SettledFileRenameNotDelayed) {
  WriteFile(At("a.xml"), "<done/>");
  // Not written for an hour: settled at first sight.
  std::filesystem::last_write_time(At("a.xml"),
                                   std::filesystem::file_time_type::clock::now() - std::chrono::hours(1));
  RootConfig root = MakeRoot();
  root.settle = std::chrono::seconds(30);
  ASSERT_NO_FATAL_FAILURE(Start(root));
  std::string from_start;
  std::vector<FeedChange> first = Read(&from_start);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].path, "a.xml");
  std::filesystem::rename(At("a.xml"), At("a.xml.failed"));
  std::vector<FeedChange> seen =
      ReadUntil([](const auto& changes) { return !changes.empty(); }, milliseconds(10'000));
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].op, "renamed");
  EXPECT_EQ(seen[0].old_path, "a.xml");
  EXPECT_TRUE(Files()["a.xml.failed"]);
}

TEST_F(WorkflowTest, ExcludedPartFilesNeverAppear) {
  RootConfig root = MakeRoot();
  root.include = {"*.xml", "!*.part"};
  ASSERT_NO_FATAL_FAILURE(Start(root));
  WriteFile(At("order.xml.part"), "<half");
  WriteFile(At("notes.txt"), "not wanted");
  std::this_thread::sleep_for(milliseconds(300));
  std::filesystem::rename(At("order.xml.part"), At("order.xml"));
  std::vector<FeedChange> seen =
      ReadUntil([](const auto& changes) { return Count(changes, "added", "order.xml") == 1; });
  EXPECT_EQ(Count(seen, "added", "order.xml"), 1u);
  for (const FeedChange& change : seen) {
    EXPECT_EQ(change.path.find(".part"), std::string::npos) << change.path;
    EXPECT_NE(change.path, "notes.txt");
  }
  std::map<std::string, bool> files = Files();
  EXPECT_EQ(files.size(), 1u);
  EXPECT_EQ(files.count("order.xml"), 1u);
}

TEST_F(WorkflowTest, ChangingTheFiltersReconciles) {
  WriteFile(At("a.xml"), "x");
  WriteFile(At("b.txt"), "t");
  MakeDirs(At("skip"));
  WriteFile(At("skip/c.xml"), "x");
  RootConfig root = MakeRoot();
  root.include = {"*.xml"};
  ASSERT_NO_FATAL_FAILURE(Start(root));
  std::map<std::string, bool> files = Files();
  EXPECT_EQ(files.count("a.xml"), 1u);
  EXPECT_EQ(files.count("skip/c.xml"), 1u);
  EXPECT_EQ(files.count("b.txt"), 0u);

  root.include = {"*.txt"};
  root.exclude = {"skip"};
  ASSERT_NO_FATAL_FAILURE(Restart(root));
  std::vector<FeedChange> seen = Read(&cursor_);
  EXPECT_EQ(Count(seen, "added", "b.txt"), 1u);
  EXPECT_EQ(Count(seen, "deleted", "a.xml"), 1u);
  EXPECT_EQ(Count(seen, "deleted", "skip/c.xml"), 1u);
  EXPECT_EQ(Count(seen, "deleted", "skip"), 1u);
  EXPECT_EQ(seen.size(), 4u);
  EXPECT_EQ(Files().size(), 1u);
}

TEST_F(WorkflowTest, FullRescanReportsDrift) {
  for (int i = 0; i < 5; ++i) WriteFile(At("f" + std::to_string(i)), "same");
  RootConfig root = MakeRoot();
  root.watch = false;
  ASSERT_NO_FATAL_FAILURE(Start(root));
  EXPECT_EQ(RootJson()["watch"]["enabled"].GetBool(), false);
  WriteFile(At("new1"), "n");
  WriteFile(At("new2"), "n");
  WriteFile(At("new3"), "n");
  WriteFile(At("f0"), "longer content");
  WriteFile(At("f1"), "also longer");
  std::filesystem::remove(At("f2"));
  std::filesystem::rename(At("f3"), At("f3.done"));
  ASSERT_NO_FATAL_FAILURE(Rescan(true));

  rapidjson::Document root_json = RootJson();
  ASSERT_TRUE(root_json["last_reconcile"].IsObject()) << HttpGet(Url("/v1/roots/tree")).body;
  const auto& drift = root_json["last_reconcile"]["drift"];
  EXPECT_EQ(drift["added"].GetUint64(), 3u);
  EXPECT_EQ(drift["modified"].GetUint64(), 2u);
  EXPECT_EQ(drift["deleted"].GetUint64(), 1u);
  EXPECT_EQ(drift["renamed"].GetUint64(), 1u);
  EXPECT_EQ(drift["total"].GetUint64(), 7u);
  EXPECT_EQ(root_json["last_reconcile"]["entries_checked"].GetUint64(), 7u);
  EXPECT_EQ(root_json["full_rescan"]["runs"].GetUint64(), 1u);

  std::vector<FeedChange> seen = Read(&cursor_);
  ASSERT_EQ(seen.size(), 7u);
  for (const FeedChange& change : seen) EXPECT_EQ(change.origin, "reconcile") << change.path;
  std::string metrics = Metrics();
  EXPECT_NE(metrics.find("dirindex_root_drift_total{root=\"tree\",op=\"added\"} 3"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("dirindex_root_last_full_rescan_drift{root=\"tree\"} 7"), std::string::npos);

  // The report outlives a restart.
  ASSERT_NO_FATAL_FAILURE(Restart(root));
  EXPECT_EQ(RootJson()["last_reconcile"]["drift"]["total"].GetUint64(), 7u);
  EXPECT_EQ(RootJson()["full_rescan"]["runs"].GetUint64(), 0u);

  // A second full rescan with nothing changed finds no drift.
  ASSERT_NO_FATAL_FAILURE(Rescan(true));
  EXPECT_EQ(RootJson()["last_reconcile"]["drift"]["total"].GetUint64(), 0u);
  EXPECT_TRUE(Read(&cursor_).empty());
}

TEST_F(WorkflowTest, ScheduledFullRescanRuns) {
  RootConfig root = MakeRoot();
  root.watch = false;
  root.full_rescan.kind = FullRescanSchedule::Kind::kInterval;
  root.full_rescan.interval = milliseconds(300);
  ASSERT_NO_FATAL_FAILURE(Start(root));
  WriteFile(At("missed"), "m");
  std::vector<FeedChange> seen =
      ReadUntil([](const auto& changes) { return !changes.empty(); });
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].origin, "reconcile");
  // The report follows the commit that made the change visible.
  EXPECT_TRUE(WaitFor([&] { return RootJson()["full_rescan"]["runs"].GetUint64() >= 1; }));
  EXPECT_EQ(RootJson()["full_rescan"]["interval_ms"].GetUint64(), 300u);
}

TEST_F(WorkflowTest, DailyFullRescanPlannedAtLocalTime) {
  std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  RootConfig root = MakeRoot();
  root.full_rescan.kind = FullRescanSchedule::Kind::kDaily;
  root.full_rescan.minute_of_day = (local.tm_hour * 60 + local.tm_min + 90) % 1440;
  ASSERT_NO_FATAL_FAILURE(Start(root));
  rapidjson::Document root_json = RootJson();
  char expected[16];
  std::snprintf(expected, sizeof expected, "%02d:%02d", root.full_rescan.minute_of_day / 60,
                root.full_rescan.minute_of_day % 60);
  EXPECT_STREQ(root_json["full_rescan"]["daily_at"].GetString(), expected);
  // 89 to 90 minutes from now, at the start of that minute.
  int64_t wait_s = (root_json["full_rescan"]["next_ns"].GetInt64() / 1'000'000'000) - now;
  EXPECT_GE(wait_s, 89 * 60 - local.tm_sec - 2);
  EXPECT_LE(wait_s, 90 * 60 - local.tm_sec + 2);
  EXPECT_EQ(root_json["full_rescan"]["runs"].GetUint64(), 0u);
}

TEST_F(WorkflowTest, WatchLimitFallsBack) {
  for (int i = 0; i < 6; ++i) MakeDirs(At("d" + std::to_string(i)));
  RootConfig root = MakeRoot();
  root.max_watches = 2;
  root.rescan_interval = milliseconds(300);
  ASSERT_NO_FATAL_FAILURE(Start(root));
  rapidjson::Document root_json = RootJson();
  EXPECT_EQ(root_json["watch"]["watches"].GetUint64(), 2u);
  EXPECT_GE(root_json["watch"]["watch_failures"].GetUint64(), 5u);
  EXPECT_NE(std::string(root_json["watch"]["last_problem"].GetString()).find("max_watches"),
            std::string::npos);
  EXPECT_NE(Metrics().find("dirindex_root_watch_failures_total{root=\"tree\"}"), std::string::npos);
  // A directory without a watch is still covered.
  WriteFile(At("d5/late"), "l");
  std::vector<FeedChange> seen =
      ReadUntil([](const auto& changes) { return Count(changes, "added", "d5/late") == 1; });
  EXPECT_EQ(Count(seen, "added", "d5/late"), 1u);
}

// Lowers the kernel's inotify queue length while an inotify instance is
// created, so that a burst of events overflows it. Tests run as root in CI.
class QueueLimit {
 public:
  explicit QueueLimit(int events) {
    std::ifstream in(kPath);
    if (!(in >> saved_)) return;
    std::ofstream out(kPath);
    out << events;
    out.flush();
    lowered_ = out.good();
  }
  ~QueueLimit() { Restore(); }
  void Restore() {
    if (!lowered_) return;
    std::ofstream out(kPath);
    out << saved_;
    lowered_ = false;
  }
  bool lowered() const { return lowered_; }

 private:
  static constexpr const char* kPath = "/proc/sys/fs/inotify/max_queued_events";
  int saved_ = 0;
  bool lowered_ = false;
};

TEST_F(WorkflowTest, QueueOverflowEndsExact) {
  constexpr int kFiles = 50'000;
  QueueLimit limit(256);
  if (!limit.lowered()) GTEST_SKIP() << "fs.inotify.max_queued_events is not writable here";
  ASSERT_NO_FATAL_FAILURE(Start(MakeRoot()));
  limit.Restore();  // the watcher's instance keeps the short queue

  MakeDirs(At("burst"));
  std::this_thread::sleep_for(milliseconds(200));
  for (int i = 0; i < kFiles; ++i) {
    int fd = open(At("burst/f" + std::to_string(i)).c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    close(fd);
  }
  ASSERT_TRUE(WaitFor([&] { return RootJson()["files"].GetUint64() == kFiles; }, milliseconds(120'000)))
      << HttpGet(Url("/v1/roots/tree")).body;
  EXPECT_GE(RootJson()["watch"]["overflows"].GetUint64(), 1u);
  EXPECT_GE(RootJson()["watch"]["overflow_rescans"].GetUint64(), 1u);
  std::string metrics = Metrics();
  EXPECT_EQ(metrics.find("dirindex_root_inotify_overflows_total{root=\"tree\"} 0"), std::string::npos);

  std::vector<FeedChange> seen = Read(&cursor_);
  std::set<std::string> added;
  for (const FeedChange& change : seen) {
    if (change.op == "added") added.insert(change.path);
  }
  EXPECT_EQ(added.size(), static_cast<size_t>(kFiles) + 1);  // the files and burst/
  EXPECT_EQ(added.count("burst/f49999"), 1u);
  EXPECT_EQ(Files("burst/").size(), static_cast<size_t>(kFiles));
}

}  // namespace
}  // namespace dirindex
