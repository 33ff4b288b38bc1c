// Index tests: the merge diff, hash collisions, the change feed's cursor
// semantics, retention, restarts and map growth, with listings built by
// hand so each case is exact.
#include <gtest/gtest.h>

#include <algorithm>
#include <thread>

#include "index/cursor.h"
#include "index/index.h"
#include "tests/test_support.h"

namespace dirindex {
namespace {

using testing::ScratchDir;

// Gives each name its own inode unless a test passes one, as a file system
// does for distinct files.
uint64_t InodeOf(const std::string& name) { return std::hash<std::string>{}(name) | 1; }

ListedEntry File(std::string name, uint64_t size, int64_t mtime_ns, uint64_t inode = 0) {
  ListedEntry entry;
  if (inode == 0) inode = InodeOf(name);
  entry.name = std::move(name);
  entry.type = EntryType::kFile;
  entry.known = kKnownSize | kKnownMtime | kKnownInode | kKnownMode;
  entry.mode = 0100644;
  entry.size = size;
  entry.mtime_ns = mtime_ns;
  entry.inode = inode;
  return entry;
}

ListedEntry Dir(std::string name, uint64_t inode = 0) {
  ListedEntry entry;
  if (inode == 0) inode = InodeOf(name) + 1;
  entry.name = std::move(name);
  entry.type = EntryType::kDir;
  entry.known = kKnownSize | kKnownMtime | kKnownInode | kKnownMode;
  entry.mode = 040755;
  entry.inode = inode;
  return entry;
}

DirListing Listing(std::string path, std::vector<ListedEntry> entries) {
  DirListing listing;
  listing.path = std::move(path);
  listing.entries = std::move(entries);
  return listing;
}

// A hash that puts every name into one of two buckets.
uint64_t WeakHash(std::string_view bytes, uint64_t seed) {
  return (bytes.size() + seed) % 2;
}

// A directory hash as weak, but with a different value for each probe seed.
uint64_t WeakDirHash(std::string_view bytes, uint64_t seed) {
  return bytes.size() % 2 + seed * 16;
}

class IndexTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  void Reopen(IndexOptions options = {}) {
    index_.reset();
    options.dir = dir_.Sub("index");
    if (options.retention_changes == IndexOptions{}.retention_changes) {
      options.retention_changes = retention_;
    }
    auto opened = Index::Open(options);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    index_ = std::move(*opened);
    auto root = index_->AddRoot("r", "file:///r");
    ASSERT_TRUE(root.ok()) << root.status().ToString();
    root_ = *root;
  }

  // Merges one scan made of `listings` and returns what it did.
  ScanSummary Scan(std::vector<DirListing> listings) {
    auto session = index_->BeginScan(root_, ChangeOrigin::kScan);
    for (DirListing& listing : listings) {
      Status accepted = session->Accept(std::move(listing));
      EXPECT_TRUE(accepted.ok()) << accepted.ToString();
    }
    auto summary = session->Finish(Status::Ok());
    EXPECT_TRUE(summary.ok()) << summary.status().ToString();
    return summary.ok() ? *summary : ScanSummary{};
  }

  FeedPage Read(const std::string& since, size_t limit = 1000) {
    auto page = index_->ReadChanges(root_, since, limit, "");
    EXPECT_TRUE(page.ok()) << page.status().ToString();
    return page.ok() ? *page : FeedPage{};
  }

  static std::vector<std::string> Describe(const FeedPage& page) {
    std::vector<std::string> out;
    for (const Change& change : page.changes) {
      out.push_back(std::string(ChangeOpName(change.op)) + " " + change.path);
    }
    return out;
  }

  ScratchDir dir_;
  uint64_t retention_ = 1'000'000;
  std::unique_ptr<Index> index_;
  uint32_t root_ = 0;
};

TEST_F(IndexTest, FirstScanAddsEverything) {
  Scan({Listing("", {File("a.xml", 10, 100), Dir("sub")}),
        Listing("sub", {File("b.xml", 20, 200)})});
  FeedPage page = Read("");
  EXPECT_TRUE(page.fresh_instance);
  std::vector<std::string> got = Describe(page);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{"added a.xml", "added sub", "added sub/b.xml"}));
  auto root = index_->GetRoot("r");
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(root->files, 2u);
  EXPECT_EQ(root->dirs, 1u);
  EXPECT_EQ(root->bytes, 30u);
  EXPECT_EQ(root->last_seq, 3u);
}

TEST_F(IndexTest, DiffReportsAddModifyDelete) {
  Scan({Listing("", {File("keep", 1, 1), File("grow", 1, 1), File("gone", 1, 1)})});
  std::string cursor = Read("").cursor;
  Scan({Listing("", {File("keep", 1, 1), File("grow", 2, 5), File("new", 3, 3)})});
  FeedPage page = Read(cursor);
  EXPECT_FALSE(page.fresh_instance);
  EXPECT_EQ(Describe(page),
            (std::vector<std::string>{"deleted gone", "modified grow", "added new"}));
  EXPECT_EQ(page.changes[1].size, 2u);
  EXPECT_EQ(page.changes[1].mtime_ns, 5);
  EXPECT_LT(page.changes[0].seq, page.changes[1].seq);
  EXPECT_LT(page.changes[1].seq, page.changes[2].seq);
}

TEST_F(IndexTest, UnchangedScanWritesNothing) {
  std::vector<ListedEntry> many;
  for (int i = 0; i < 20000; ++i) many.push_back(File("f" + std::to_string(i), i, i));
  Scan({Listing("", many)});
  uint64_t txn_before = index_->Stats().last_txn_id;
  ScanSummary summary = Scan({Listing("", many)});
  EXPECT_EQ(summary.changes, 0u);
  EXPECT_EQ(summary.commits, 0u);
  EXPECT_EQ(index_->Stats().last_txn_id, txn_before);
}

TEST_F(IndexTest, CollidingNamesBothIndexed) {
  IndexOptions options;
  options.name_hash = WeakHash;
  options.dir_hash = WeakDirHash;
  Reopen(options);
  // "aa" and "bb" share a hash under WeakHash, and so do "x" and "y".
  Scan({Listing("", {File("aa", 1, 1), File("bb", 2, 2), Dir("x"), Dir("y")}),
        Listing("x", {File("in-x", 3, 3)}), Listing("y", {File("in-y", 4, 4)})});
  auto aa = index_->Stat(root_, "aa");
  auto bb = index_->Stat(root_, "bb");
  ASSERT_TRUE(aa.ok());
  ASSERT_TRUE(aa->has_value());
  ASSERT_TRUE(bb.ok());
  ASSERT_TRUE(bb->has_value());
  EXPECT_EQ((*aa)->size, 1u);
  EXPECT_EQ((*bb)->size, 2u);
  auto in_x = index_->Stat(root_, "x/in-x");
  auto in_y = index_->Stat(root_, "y/in-y");
  ASSERT_TRUE(in_x.ok());
  ASSERT_TRUE(in_x->has_value());
  ASSERT_TRUE(in_y.ok());
  ASSERT_TRUE(in_y->has_value());
  auto cross = index_->Stat(root_, "x/in-y");
  ASSERT_TRUE(cross.ok());
  EXPECT_FALSE(cross->has_value());
  auto absent = index_->Stat(root_, "cc");  // same hash bucket, other name
  ASSERT_TRUE(absent.ok());
  EXPECT_FALSE(absent->has_value());

  // Deleting one name of a bucket keeps the other.
  std::string cursor = Read("").cursor;
  while (Read(cursor).more) cursor = Read(cursor).cursor;
  cursor = Read(cursor).cursor;
  Scan({Listing("", {File("bb", 2, 2), Dir("x"), Dir("y")})});
  FeedPage page = Read(cursor);
  EXPECT_EQ(Describe(page), (std::vector<std::string>{"deleted aa"}));
  bb = index_->Stat(root_, "bb");
  ASSERT_TRUE(bb.ok());
  ASSERT_TRUE(bb->has_value());
  auto verified = index_->Verify();
  ASSERT_TRUE(verified.ok());
  EXPECT_TRUE(verified->problems.empty()) << verified->problems.front();
}

TEST_F(IndexTest, RemovedDirectoryDeletesSubtree) {
  Scan({Listing("", {Dir("d")}), Listing("d", {Dir("e"), File("f", 1, 1)}),
        Listing("d/e", {File("g", 1, 1)})});
  std::string cursor = Read("").cursor;
  Scan({Listing("", {})});
  std::vector<std::string> got = Describe(Read(cursor));
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got.back(), "deleted d");  // descendants come before the directory
  auto position = [&](const std::string& text) {
    return std::find(got.begin(), got.end(), text) - got.begin();
  };
  EXPECT_LT(position("deleted d/e/g"), position("deleted d/e"));
  EXPECT_LT(position("deleted d/f"), 3);
  auto root = index_->GetRoot("r");
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(root->files, 0u);
  EXPECT_EQ(root->dirs, 0u);
  auto verified = index_->Verify();
  ASSERT_TRUE(verified.ok());
  EXPECT_TRUE(verified->problems.empty()) << verified->problems.front();
}

TEST_F(IndexTest, FailedListingKeepsEntries) {
  Scan({Listing("", {File("a", 1, 1), File("b", 1, 1)})});
  std::string cursor = Read("").cursor;
  DirListing failed = Listing("", {});
  failed.status = Status(StatusCode::kPermissionDenied, "open failed: Permission denied");
  ScanSummary summary = Scan({std::move(failed)});
  EXPECT_EQ(summary.failed_dirs, 1u);
  EXPECT_TRUE(Read(cursor).changes.empty());
  auto root = index_->GetRoot("r");
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(root->files, 2u);
  EXPECT_NE(root->last_error.find("Permission denied"), std::string::npos);
}

TEST_F(IndexTest, TypeChangeIsDeleteThenAdd) {
  Scan({Listing("", {Dir("x")}), Listing("x", {File("inner", 1, 1)})});
  std::string cursor = Read("").cursor;
  Scan({Listing("", {File("x", 5, 5)})});
  EXPECT_EQ(Describe(Read(cursor)),
            (std::vector<std::string>{"deleted x/inner", "deleted x", "added x"}));
}

TEST_F(IndexTest, MalformedCursorIsInvalidArgument) {
  for (std::string bad : std::vector<std::string>{"garbage", "AAAA", "!!", std::string(300, 'A'), std::string("a\0b", 3)}) {
    auto page = index_->ReadChanges(root_, bad, 10, "");
    ASSERT_FALSE(page.ok()) << bad;
    EXPECT_EQ(page.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(page.status().message().find("not a cursor"), std::string::npos);
  }
}

TEST_F(IndexTest, CursorRoundTrips) {
  FeedCursor live{0x1234, 7, 99};
  auto decoded = DecodeCursor(EncodeCursor(live));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->epoch, 0x1234u);
  EXPECT_EQ(decoded->root, 7u);
  EXPECT_EQ(decoded->seq, 99u);
  EXPECT_FALSE(decoded->snapshot);
  FeedCursor snap{1, 2, 3, true, 4, 5};
  decoded = DecodeCursor(EncodeCursor(snap));
  ASSERT_TRUE(decoded.ok());
  EXPECT_TRUE(decoded->snapshot);
  EXPECT_EQ(decoded->name_hash, 5u);
  std::string text = EncodeCursor(live);
  text[3] = text[3] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(DecodeCursor(text).ok());
}

TEST_F(IndexTest, SnapshotPagesThenLiveCursor) {
  std::vector<ListedEntry> files;
  for (int i = 0; i < 25; ++i) files.push_back(File("f" + std::to_string(i), 1, 1));
  Scan({Listing("", files)});
  std::vector<std::string> seen;
  FeedPage page = Read("", 10);
  int pages = 1;
  for (auto& c : page.changes) seen.push_back(c.path);
  while (page.more) {
    EXPECT_TRUE(page.fresh_instance);
    page = Read(page.cursor, 10);
    ++pages;
    for (auto& c : page.changes) seen.push_back(c.path);
  }
  EXPECT_EQ(pages, 3);
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen.size(), 25u);
  EXPECT_EQ(std::unique(seen.begin(), seen.end()), seen.end());

  // The cursor after the last page is live: it returns only new changes.
  Scan({Listing("", {File("f0", 1, 1)})});
  FeedPage after = Read(page.cursor);
  EXPECT_FALSE(after.fresh_instance);
  EXPECT_EQ(after.changes.size(), 24u);
}

TEST_F(IndexTest, ChangesDuringSnapshotAreNotLost) {
  std::vector<ListedEntry> files;
  for (int i = 0; i < 10; ++i) files.push_back(File("f" + std::to_string(i), 1, 1));
  Scan({Listing("", files)});
  FeedPage page = Read("", 3);
  files.push_back(File("late", 1, 1));
  Scan({Listing("", files)});
  std::vector<std::string> seen;
  while (page.more) {
    page = Read(page.cursor, 3);
    for (auto& c : page.changes) seen.push_back(c.path);
  }
  page = Read(page.cursor);
  for (auto& c : page.changes) seen.push_back(c.path);
  EXPECT_NE(std::find(seen.begin(), seen.end(), "late"), seen.end());
}

TEST_F(IndexTest, ChangePagingWithMore) {
  Scan({Listing("", {})});
  std::string cursor = Read("").cursor;
  std::vector<ListedEntry> files;
  for (int i = 0; i < 7; ++i) files.push_back(File("f" + std::to_string(i), 1, 1));
  Scan({Listing("", files)});
  FeedPage first = Read(cursor, 5);
  EXPECT_EQ(first.changes.size(), 5u);
  EXPECT_TRUE(first.more);
  FeedPage second = Read(first.cursor, 5);
  EXPECT_EQ(second.changes.size(), 2u);
  EXPECT_FALSE(second.more);
  EXPECT_EQ(second.changes.front().seq, first.changes.back().seq + 1);
}

TEST_F(IndexTest, RetentionHorizonGivesFreshInstance) {
  retention_ = 5;
  Reopen();
  Scan({Listing("", {File("a", 1, 1)})});
  std::string old_cursor = Read("").cursor;
  std::vector<ListedEntry> files;
  for (int i = 0; i < 10; ++i) files.push_back(File("f" + std::to_string(i), 1, 1));
  Scan({Listing("", files)});
  auto root = index_->GetRoot("r");
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(root->last_seq - root->first_seq + 1, 5u);
  FeedPage page = Read(old_cursor);
  EXPECT_TRUE(page.fresh_instance);
  EXPECT_EQ(page.changes.size(), 10u);
}

TEST_F(IndexTest, SequencesContinueAfterReopen) {
  Scan({Listing("", {File("a", 1, 1)})});
  std::string cursor = Read("").cursor;
  uint64_t epoch = index_->epoch();
  Reopen();
  EXPECT_EQ(index_->epoch(), epoch);
  Scan({Listing("", {File("a", 1, 1), File("b", 1, 1)})});
  FeedPage page = Read(cursor);
  EXPECT_FALSE(page.fresh_instance);
  ASSERT_EQ(page.changes.size(), 1u);
  EXPECT_EQ(page.changes[0].seq, 2u);
}

TEST_F(IndexTest, ForeignEpochGivesFreshInstance) {
  Scan({Listing("", {File("a", 1, 1)})});
  std::string foreign = EncodeCursor(FeedCursor{index_->epoch() ^ 1, root_, 1});
  EXPECT_TRUE(Read(foreign).fresh_instance);
  std::string future = EncodeCursor(FeedCursor{index_->epoch(), root_, 999});
  EXPECT_TRUE(Read(future).fresh_instance);
}

TEST_F(IndexTest, MapFullGrowsMap) {
  IndexOptions options;
  options.initial_map_size_bytes = 1 << 20;
  Reopen(options);
  std::vector<ListedEntry> files;
  for (int i = 0; i < 30000; ++i) files.push_back(File("file-" + std::to_string(i), i, i));
  ScanSummary summary = Scan({Listing("", files)});
  EXPECT_EQ(summary.changes, 30000u);
  EXPECT_GE(index_->Stats().map_resizes, 1u);
  EXPECT_GT(index_->Stats().map_size_bytes, uint64_t{1} << 20);
}

TEST_F(IndexTest, CommitListenerSeesNewSeq) {
  std::atomic<uint64_t> seen{0};
  index_->SetCommitListener([&](uint32_t, uint64_t seq) { seen = seq; });
  Scan({Listing("", {File("a", 1, 1), File("b", 1, 1)})});
  EXPECT_EQ(seen.load(), 2u);
}

TEST_F(IndexTest, PrefixFiltersChanges) {
  Scan({Listing("", {Dir("in"), Dir("out")}), Listing("in", {File("a", 1, 1)}),
        Listing("out", {File("b", 1, 1)})});
  auto page = index_->ReadChanges(root_, "", 100, "in");
  ASSERT_TRUE(page.ok());
  std::vector<std::string> got = Describe(*page);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{"added in", "added in/a"}));
}

TEST_F(IndexTest, CoarseMtimeIgnoresSubMinute) {
  ListedEntry coarse = File("a", 1, 60'000'000'000);
  coarse.mtime_precision = TimePrecision::kMinute;
  Scan({Listing("", {coarse})});
  std::string cursor = Read("").cursor;
  coarse.mtime_ns = 60'000'000'000 + 5'000'000'000;
  Scan({Listing("", {coarse})});
  EXPECT_TRUE(Read(cursor).changes.empty());
  coarse.mtime_ns = 120'000'000'000;
  Scan({Listing("", {coarse})});
  EXPECT_EQ(Read(cursor).changes.size(), 1u);
}

TEST_F(IndexTest, DayMtimeMatchesAnyTimeThatDay) {
  // FTP LIST shows "Jan  5 14:03" for a recent file and "Jan  5  2025",
  // local midnight, once it is six months old.
  const int64_t midnight = 20'000 * 86'400'000'000'000;
  ListedEntry file = File("a", 1, midnight + (14 * 60 + 3) * 60'000'000'000);
  file.mtime_precision = TimePrecision::kMinute;
  Scan({Listing("", {file})});
  std::string cursor = Read("").cursor;
  file.mtime_ns = midnight;
  file.mtime_precision = TimePrecision::kDay;
  Scan({Listing("", {file})});
  EXPECT_TRUE(Read(cursor).changes.empty());
  file.mtime_ns = midnight + 86'400'000'000'000;
  Scan({Listing("", {file})});
  EXPECT_EQ(Describe(Read(cursor)), (std::vector<std::string>{"modified a"}));
}

TEST_F(IndexTest, ListFilesPagesAndGlob) {
  std::vector<ListedEntry> files;
  for (int i = 0; i < 12; ++i) files.push_back(File("f" + std::to_string(i) + (i % 2 ? ".xml" : ".txt"), 1, 1));
  Scan({Listing("", files)});
  FilesQuery query;
  query.glob = "*.xml";
  query.limit = 4;
  size_t total = 0;
  int pages = 0;
  for (;;) {
    auto page = index_->ListFiles(root_, query);
    ASSERT_TRUE(page.ok());
    total += page->entries.size();
    ++pages;
    for (const Entry& e : page->entries) EXPECT_TRUE(e.path.ends_with(".xml")) << e.path;
    if (page->next.empty()) break;
    query.after = page->next;
  }
  EXPECT_EQ(total, 6u);
  EXPECT_GE(pages, 2);
}

TEST_F(IndexTest, StatRejectsEscapingPaths) {
  for (std::string bad : std::vector<std::string>{"../x", "/etc/passwd", "a/../b", "a//b", std::string("a\0b", 3)}) {
    auto found = index_->Stat(root_, bad);
    ASSERT_FALSE(found.ok()) << bad;
    EXPECT_EQ(found.status().code(), StatusCode::kInvalidArgument);
  }
}

TEST_F(IndexTest, ConcurrentAcceptsMergeCorrectly) {
  std::vector<DirListing> listings;
  std::vector<ListedEntry> top;
  for (int d = 0; d < 40; ++d) {
    top.push_back(Dir("d" + std::to_string(d), 100 + d));
    std::vector<ListedEntry> files;
    for (int f = 0; f < 200; ++f) files.push_back(File("f" + std::to_string(f), f, f));
    listings.push_back(Listing("d" + std::to_string(d), files));
  }
  IndexOptions options;
  options.batch_changes = 500;
  Reopen(options);
  auto session = index_->BeginScan(root_, ChangeOrigin::kScan);
  ASSERT_TRUE(session->Accept(Listing("", top)).ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (size_t i = t; i < listings.size(); i += 4) {
        DirListing copy = listings[i];
        EXPECT_TRUE(session->Accept(std::move(copy)).ok());
      }
    });
  }
  for (auto& thread : threads) thread.join();
  auto summary = session->Finish(Status::Ok());
  ASSERT_TRUE(summary.ok());
  EXPECT_EQ(summary->changes, 40u + 40u * 200u);
  auto verified = index_->Verify();
  ASSERT_TRUE(verified.ok());
  EXPECT_TRUE(verified->problems.empty()) << verified->problems.front();
}

TEST_F(IndexTest, SameInodeBecomesRename) {
  Scan({Listing("", {File("a.xml", 5, 5, 77), Dir("done")}), Listing("done", {})});
  std::string cursor = Read("").cursor;
  Scan({Listing("", {Dir("done")}), Listing("done", {File("a.xml.success", 5, 5, 77)})});
  FeedPage page = Read(cursor);
  ASSERT_EQ(page.changes.size(), 1u);
  EXPECT_EQ(page.changes[0].op, ChangeOp::kRenamed);
  EXPECT_EQ(page.changes[0].old_path, "a.xml");
  EXPECT_EQ(page.changes[0].path, "done/a.xml.success");
}

TEST_F(IndexTest, CaseOnlyRenameIsRename) {
  Scan({Listing("", {File("Report.XML", 5, 5, 9)})});
  std::string cursor = Read("").cursor;
  Scan({Listing("", {File("report.xml", 5, 5, 9)})});
  FeedPage page = Read(cursor);
  ASSERT_EQ(page.changes.size(), 1u);
  EXPECT_EQ(page.changes[0].op, ChangeOp::kRenamed);
  EXPECT_EQ(page.changes[0].old_path, "Report.XML");
}

TEST_F(IndexTest, DirectoryRenameIsOneChange) {
  Scan({Listing("", {Dir("in", 50)}), Listing("in", {File("x", 1, 1, 51), Dir("sub", 52)}),
        Listing("in/sub", {File("y", 2, 2, 53)})});
  std::string cursor = Read("").cursor;
  Scan({Listing("", {Dir("out", 50)}), Listing("out", {File("x", 1, 1, 51), Dir("sub", 52)}),
        Listing("out/sub", {File("y", 3, 3, 53)})});
  FeedPage page = Read(cursor);
  EXPECT_EQ(Describe(page), (std::vector<std::string>{"renamed out", "modified out/sub/y"}));
  EXPECT_EQ(page.changes[0].old_path, "in");
  auto moved = index_->Stat(root_, "out/sub/y");
  ASSERT_TRUE(moved.ok());
  ASSERT_TRUE(moved->has_value());
  auto old = index_->Stat(root_, "in/x");
  ASSERT_TRUE(old.ok());
  EXPECT_FALSE(old->has_value());
  auto verified = index_->Verify();
  ASSERT_TRUE(verified.ok());
  EXPECT_TRUE(verified->problems.empty()) << verified->problems.front();
}

TEST_F(IndexTest, HardLinkedInodeNotPaired) {
  Scan({Listing("", {File("a", 1, 1, 5), File("b", 1, 1, 5)})});
  std::string cursor = Read("").cursor;
  Scan({Listing("", {File("c", 1, 1, 5)})});
  std::vector<std::string> got = Describe(Read(cursor));
  EXPECT_EQ(got, (std::vector<std::string>{"deleted a", "deleted b", "added c"}));
}

}  // namespace
}  // namespace dirindex
