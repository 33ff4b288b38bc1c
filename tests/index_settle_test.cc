// The merge's workflow rules with listings built by hand: settle (entries
// announced only once unchanged for the settle time) and renames inferred
// for sources without inodes.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "index/index.h"
#include "tests/test_support.h"

namespace dirindex {
namespace {

using std::chrono::milliseconds;
using testing::ScratchDir;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A file as a local disk lists it: with an inode.
ListedEntry File(std::string name, uint64_t size, int64_t mtime_ns, uint64_t inode) {
  ListedEntry entry;
  entry.name = std::move(name);
  entry.type = EntryType::kFile;
  entry.known = kKnownSize | kKnownMtime | kKnownInode;
  entry.size = size;
  entry.mtime_ns = mtime_ns;
  entry.inode = inode;
  return entry;
}

// A file as an FTP LIST or SFTP listing shows it: no inode.
ListedEntry RemoteFile(std::string name, uint64_t size, int64_t mtime_ns) {
  ListedEntry entry;
  entry.name = std::move(name);
  entry.type = EntryType::kFile;
  entry.known = kKnownSize | kKnownMtime;
  entry.mtime_precision = TimePrecision::kSecond;
  entry.size = size;
  entry.mtime_ns = mtime_ns;
  return entry;
}

DirListing Listing(std::string path, std::vector<ListedEntry> entries) {
  DirListing listing;
  listing.path = std::move(path);
  listing.entries = std::move(entries);
  return listing;
}

class SettleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    IndexOptions options;
    options.dir = dir_.Sub("index");
    auto opened = Index::Open(options);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    index_ = std::move(*opened);
    auto root = index_->AddRoot("r", "file:///r");
    ASSERT_TRUE(root.ok());
    root_ = *root;
    cursor_ = Changes("").cursor;
  }

  void Scan(std::vector<DirListing> listings, milliseconds settle) {
    ScanOptions options;
    options.settle = settle;
    auto session = index_->BeginScan(root_, options);
    for (DirListing& listing : listings) ASSERT_TRUE(session->Accept(std::move(listing)).ok());
    ASSERT_TRUE(session->Finish(Status::Ok()).ok());
  }

  FeedPage Changes(const std::string& since) {
    auto page = index_->ReadChanges(root_, since, 1000, "");
    EXPECT_TRUE(page.ok()) << page.status().ToString();
    return page.ok() ? *page : FeedPage{};
  }

  // Describes the changes since the last call.
  std::vector<std::string> New() {
    FeedPage page = Changes(cursor_);
    cursor_ = page.cursor;
    std::vector<std::string> out;
    for (const Change& change : page.changes) {
      std::string text = std::string(ChangeOpName(change.op)) + " " + change.path;
      if (!change.old_path.empty()) text += " from " + change.old_path;
      if (change.inferred) text += " inferred";
      out.push_back(text);
    }
    return out;
  }

  std::optional<Entry> Stat(const std::string& path) {
    auto entry = index_->Stat(root_, path);
    EXPECT_TRUE(entry.ok());
    return entry.ok() ? *entry : std::nullopt;
  }

  ScratchDir dir_;
  std::unique_ptr<Index> index_;
  uint32_t root_ = 0;
  std::string cursor_;
};

constexpr milliseconds kSettle{150};

TEST_F(SettleTest, NewFileWaitsUntilUnchanged) {
  int64_t t = NowNs();
  Scan({Listing("", {File("a.xml", 10, t, 1)})}, kSettle);
  EXPECT_TRUE(New().empty());
  ASSERT_TRUE(Stat("a.xml").has_value());
  EXPECT_FALSE(Stat("a.xml")->stable);
  EXPECT_EQ(index_->GetRoot("r")->unsettled, 1u);

  // Still growing: the clock starts again.
  Scan({Listing("", {File("a.xml", 20, t + 1, 1)})}, kSettle);
  std::this_thread::sleep_for(kSettle / 2);
  Scan({Listing("", {File("a.xml", 20, t + 1, 1)})}, kSettle);
  EXPECT_TRUE(New().empty());

  std::this_thread::sleep_for(kSettle);
  Scan({Listing("", {File("a.xml", 20, t + 1, 1)})}, kSettle);
  EXPECT_EQ(New(), (std::vector<std::string>{"added a.xml"}));
  EXPECT_TRUE(Stat("a.xml")->stable);
  EXPECT_EQ(index_->GetRoot("r")->unsettled, 0u);
  FeedPage all = Changes("");
  ASSERT_EQ(all.changes.size(), 1u);
  EXPECT_EQ(all.changes[0].size, 20u);
}

TEST_F(SettleTest, PlanNamesTheDirectoryOnceDue) {
  Scan({Listing("", {}), Listing("in", {File("a", 1, NowNs(), 1)})}, kSettle);
  auto now = std::chrono::steady_clock::now();
  SettlePlan early = index_->PlanSettle(root_, now);
  EXPECT_EQ(early.pending, 1u);
  EXPECT_TRUE(early.due_dirs.empty());
  ASSERT_TRUE(early.next_due.has_value());
  SettlePlan due = index_->PlanSettle(root_, *early.next_due);
  EXPECT_EQ(due.due_dirs, (std::vector<std::string>{"in"}));
}

TEST_F(SettleTest, FileDeletedBeforeSettlingIsNeverAnnounced) {
  Scan({Listing("", {File("tmp", 5, NowNs(), 1), File("old", 1, 1, 2)})}, kSettle);
  EXPECT_EQ(New(), (std::vector<std::string>{"added old"}));
  Scan({Listing("", {File("old", 1, 1, 2)})}, kSettle);
  EXPECT_TRUE(New().empty());
  EXPECT_FALSE(Stat("tmp").has_value());
  EXPECT_EQ(index_->GetRoot("r")->files, 1u);
  // A fresh-instance snapshot never showed it either.
  Scan({Listing("", {File("old", 1, 1, 2), File("tmp2", 5, NowNs(), 3)})}, kSettle);
  FeedPage snapshot = Changes("");
  ASSERT_EQ(snapshot.changes.size(), 1u);
  EXPECT_EQ(snapshot.changes[0].path, "old");
}

TEST_F(SettleTest, ModificationWaitsButADeletionDuringItIsAnnounced) {
  Scan({Listing("", {File("a", 1, 1, 1)})}, kSettle);
  EXPECT_EQ(New(), (std::vector<std::string>{"added a"}));
  Scan({Listing("", {File("a", 2, NowNs(), 1)})}, kSettle);
  EXPECT_TRUE(New().empty());
  EXPECT_FALSE(Stat("a")->stable);
  Scan({Listing("", {})}, kSettle);
  EXPECT_EQ(New(), (std::vector<std::string>{"deleted a"}));
}

TEST_F(SettleTest, RenameOfSettledFileIsAnnouncedAtOnce) {
  Scan({Listing("", {File("a.xml", 7, 1000, 9)})}, kSettle);
  New();
  Scan({Listing("", {File("a.xml.success", 7, 1000, 9)})}, kSettle);
  EXPECT_EQ(New(), (std::vector<std::string>{"renamed a.xml.success from a.xml"}));
  EXPECT_TRUE(Stat("a.xml.success")->stable);
}

TEST_F(SettleTest, RewrittenRenameIsDeleteThenAdd) {
  Scan({Listing("", {File("a", 7, 1000, 9)})}, kSettle);
  New();
  // Same inode, new mtime: as likely a new file on a reused inode as the
  // old one renamed and rewritten, so no rename is claimed.
  int64_t t = NowNs();
  Scan({Listing("", {File("b", 8, t, 9)})}, kSettle);
  EXPECT_EQ(New(), (std::vector<std::string>{"deleted a"}));
  EXPECT_FALSE(Stat("b")->stable);
  std::this_thread::sleep_for(kSettle);
  Scan({Listing("", {File("b", 8, t, 9)})}, kSettle);
  EXPECT_EQ(New(), (std::vector<std::string>{"added b"}));
}

TEST_F(SettleTest, InodeReusedByANewFileIsNotARename) {
  Scan({Listing("", {File("old", 3, 1000, 9)})}, milliseconds(0));
  New();
  Scan({Listing("", {File("new", 3, 2000, 9)})}, milliseconds(0));
  EXPECT_EQ(New(), (std::vector<std::string>{"added new", "deleted old"}));  // by name
}

TEST_F(SettleTest, MinuteMtimesInferNoRename) {
  ListedEntry before = RemoteFile("a", 1, 60'000'000'000);
  before.mtime_precision = TimePrecision::kMinute;
  ListedEntry after = before;
  after.name = "b";
  Scan({Listing("", {before})}, milliseconds(0));
  New();
  Scan({Listing("", {after})}, milliseconds(0));
  EXPECT_EQ(New(), (std::vector<std::string>{"deleted a", "added b"}));
}

TEST_F(SettleTest, OldMtimeSettlesAtFirstSight) {
  Scan({Listing("", {File("copied", 3, NowNs() - 3'600'000'000'000, 1)})}, kSettle);
  EXPECT_EQ(New(), (std::vector<std::string>{"added copied"}));
}

TEST_F(SettleTest, DirectoriesAreAnnouncedAtOnce) {
  ListedEntry dir;
  dir.name = "in";
  dir.type = EntryType::kDir;
  dir.known = kKnownMtime | kKnownInode;
  dir.mtime_ns = NowNs();
  dir.inode = 5;
  Scan({Listing("", {dir}), Listing("in", {})}, kSettle);
  EXPECT_EQ(New(), (std::vector<std::string>{"added in"}));
}

TEST_F(SettleTest, RemoteRenameIsInferredFromSizeAndMtime) {
  Scan({Listing("", {RemoteFile("a.xml", 42, 1'000'000'000'000), RemoteFile("b.xml", 42, 2'000'000'000'000)})},
       milliseconds(0));
  New();
  Scan({Listing("", {RemoteFile("a.xml.done", 42, 1'000'000'000'000), RemoteFile("b.xml", 42, 2'000'000'000'000)})},
       milliseconds(0));
  EXPECT_EQ(New(), (std::vector<std::string>{"renamed a.xml.done from a.xml inferred"}));
  EXPECT_EQ(index_->GetRoot("r")->files, 2u);
}

TEST_F(SettleTest, AmbiguousOrMovedRemoteRenameIsNotInferred) {
  const int64_t t = 1'000'000'000'000;
  Scan({Listing("", {RemoteFile("a", 1, t), RemoteFile("b", 1, t), RemoteFile("c", 5, t)}), Listing("sub", {})},
       milliseconds(0));
  New();
  // Two names gone with the same size and mtime: no way to tell which
  // became "x". And "c" moved to another directory: renames are inferred
  // within one directory only.
  Scan({Listing("", {RemoteFile("x", 1, t)}), Listing("sub", {RemoteFile("c", 5, t)})}, milliseconds(0));
  std::vector<std::string> got = New();
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{"added sub/c", "added x", "deleted a", "deleted b", "deleted c"}));
}

TEST_F(SettleTest, RemoteFileWithDifferentMtimeIsNotARename) {
  Scan({Listing("", {RemoteFile("a", 1, 1'000'000'000'000)})}, milliseconds(0));
  New();
  Scan({Listing("", {RemoteFile("b", 1, 2'000'000'000'000)})}, milliseconds(0));
  EXPECT_EQ(New(), (std::vector<std::string>{"deleted a", "added b"}));
}

}  // namespace
}  // namespace dirindex
