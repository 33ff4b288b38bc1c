// Tests of PathFilter, FilteringSink, and the local walker's pruning of
// directories that ScanRequest::filter rejects.
#include "index/filter.h"

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "scan/walker.h"
#include "tests/test_support.h"

namespace dirindex {
namespace {

using testing::MakeDirs;
using testing::Names;
using testing::Paths;
using testing::ScratchDir;
using testing::WriteFile;

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

PathFilter MakeFilter(const std::vector<std::string>& include,
                      const std::vector<std::string>& exclude) {
  Result<PathFilter> filter = PathFilter::Create(include, exclude);
  EXPECT_TRUE(filter.ok()) << filter.status().ToString();
  return filter.ok() ? std::move(filter).value() : PathFilter();
}

ListedEntry Entry(std::string name, EntryType type) {
  ListedEntry entry;
  entry.name = std::move(name);
  entry.type = type;
  return entry;
}

DirListing Listing(std::string path, std::vector<ListedEntry> entries) {
  DirListing listing;
  listing.path = std::move(path);
  listing.entries = std::move(entries);
  return listing;
}

// CollectingSink stores every listing it receives, keyed by path, and
// returns `result` from each Accept. Several threads may call it at once.
class CollectingSink : public ListingSink {
 public:
  Status Accept(DirListing&& listing) override {
    std::lock_guard lock(mu_);
    ++accepted_;
    std::string path = listing.path;
    listings_[path] = std::move(listing);
    return result;
  }

  std::map<std::string, DirListing> listings() const {
    std::lock_guard lock(mu_);
    return listings_;
  }
  size_t accepted() const {
    std::lock_guard lock(mu_);
    return accepted_;
  }

  Status result;

 private:
  mutable std::mutex mu_;
  std::map<std::string, DirListing> listings_;
  size_t accepted_ = 0;
};

// ---------------------------------------------------------------------------
// PathFilter

TEST(PathFilterTest, EmptyFilterAdmitsEverything) {
  PathFilter filter = MakeFilter({}, {});
  EXPECT_TRUE(filter.empty());
  EXPECT_TRUE(filter.Admits("a.xml", EntryType::kFile));
  EXPECT_TRUE(filter.Admits("in/.hidden", EntryType::kFile));
  EXPECT_TRUE(filter.Admits("tmp", EntryType::kDir));
  EXPECT_TRUE(filter.AdmitsListing("tmp/deep"));
  EXPECT_EQ(filter.Describe(), "include=[] exclude=[]");
}

TEST(PathFilterTest, NamePatternMatchesAtEveryDepth) {
  PathFilter filter = MakeFilter({"*.xml"}, {});
  EXPECT_FALSE(filter.empty());
  EXPECT_TRUE(filter.Admits("a.xml", EntryType::kFile));
  EXPECT_TRUE(filter.Admits("in/b.xml", EntryType::kFile));
  EXPECT_TRUE(filter.Admits("in/2024/c.xml", EntryType::kFile));
  EXPECT_FALSE(filter.Admits("in/b.txt", EntryType::kFile));
  // The name alone is matched, so a directory called "x.xml" above does
  // not make a file below it match.
  EXPECT_FALSE(filter.Admits("x.xml/b.txt", EntryType::kFile));
}

TEST(PathFilterTest, PathPatternMatchesRelativePath) {
  PathFilter filter = MakeFilter({"in/*.xml"}, {});
  EXPECT_TRUE(filter.Admits("in/a.xml", EntryType::kFile));
  EXPECT_FALSE(filter.Admits("a.xml", EntryType::kFile));
  EXPECT_FALSE(filter.Admits("out/a.xml", EntryType::kFile));
  // With FNM_PATHNAME, '*' does not match '/'.
  EXPECT_FALSE(filter.Admits("in/sub/a.xml", EntryType::kFile));
}

TEST(PathFilterTest, LeadingSlashAnchorsAtRoot) {
  PathFilter filter = MakeFilter({}, {"/tmp"});
  EXPECT_FALSE(filter.Admits("tmp", EntryType::kDir));
  EXPECT_FALSE(filter.Admits("tmp", EntryType::kFile));
  EXPECT_TRUE(filter.Admits("in/tmp", EntryType::kDir));
  EXPECT_EQ(filter.exclude(), std::vector<std::string>{"/tmp"});
}

TEST(PathFilterTest, TrailingSlashMatchesDirectoriesOnly) {
  PathFilter filter = MakeFilter({}, {"cache/"});
  EXPECT_FALSE(filter.Admits("cache", EntryType::kDir));
  EXPECT_FALSE(filter.Admits("in/cache", EntryType::kDir));
  EXPECT_TRUE(filter.Admits("cache", EntryType::kFile));
  EXPECT_TRUE(filter.Admits("in/cache", EntryType::kSymlink));
}

TEST(PathFilterTest, BangInIncludeExcludes) {
  PathFilter filter = MakeFilter({"*.xml", "!*.part", "!.*"}, {});
  EXPECT_TRUE(filter.Admits("a.xml", EntryType::kFile));
  EXPECT_FALSE(filter.Admits("a.xml.part", EntryType::kFile));
  EXPECT_FALSE(filter.Admits(".a.xml", EntryType::kFile));
  EXPECT_FALSE(filter.Admits("in/.b.xml", EntryType::kFile));
  // An exclude pattern applies to directories too.
  EXPECT_FALSE(filter.Admits(".git", EntryType::kDir));
  EXPECT_TRUE(filter.Admits("in", EntryType::kDir));

  EXPECT_EQ(filter.include(), std::vector<std::string>{"*.xml"});
  EXPECT_EQ(filter.exclude(), (std::vector<std::string>{"*.part", ".*"}));
  EXPECT_EQ(filter.Describe(), "include=[*.xml] exclude=[*.part, .*]");
}

TEST(PathFilterTest, ExcludeListComesBeforeBangEntries) {
  PathFilter filter = MakeFilter({"!*.tmp"}, {"*.part"});
  EXPECT_TRUE(filter.include().empty());
  EXPECT_EQ(filter.exclude(), (std::vector<std::string>{"*.part", "*.tmp"}));
  EXPECT_TRUE(filter.Admits("a.xml", EntryType::kFile));
  EXPECT_FALSE(filter.Admits("a.tmp", EntryType::kFile));
  EXPECT_FALSE(filter.Admits("a.part", EntryType::kFile));
}

TEST(PathFilterTest, DirectoriesNeverDroppedByInclude) {
  PathFilter filter = MakeFilter({"*.xml"}, {});
  EXPECT_TRUE(filter.Admits("in", EntryType::kDir));
  EXPECT_TRUE(filter.Admits("in/archive", EntryType::kDir));
  EXPECT_TRUE(filter.AdmitsListing("in/archive"));
  // Every other type is subject to include, kUnknown included.
  EXPECT_FALSE(filter.Admits("in", EntryType::kFile));
  EXPECT_FALSE(filter.Admits("link", EntryType::kSymlink));
  EXPECT_FALSE(filter.Admits("pipe", EntryType::kOther));
  EXPECT_FALSE(filter.Admits("mystery", EntryType::kUnknown));
  EXPECT_TRUE(filter.Admits("link.xml", EntryType::kSymlink));
}

TEST(PathFilterTest, ExcludeWinsOverInclude) {
  PathFilter filter = MakeFilter({"*.xml"}, {"draft-*"});
  EXPECT_TRUE(filter.Admits("final.xml", EntryType::kFile));
  EXPECT_FALSE(filter.Admits("draft-1.xml", EntryType::kFile));
}

TEST(PathFilterTest, AdmitsListingChecksEveryAncestor) {
  PathFilter by_name = MakeFilter({}, {"tmp"});
  EXPECT_TRUE(by_name.AdmitsListing(""));
  EXPECT_TRUE(by_name.AdmitsListing("in/2024"));
  EXPECT_FALSE(by_name.AdmitsListing("tmp"));
  EXPECT_FALSE(by_name.AdmitsListing("tmp/x/y"));
  EXPECT_FALSE(by_name.AdmitsListing("in/tmp/x"));
  EXPECT_TRUE(by_name.AdmitsListing("in/tmpx"));

  PathFilter by_path = MakeFilter({}, {"in/*/old"});
  EXPECT_TRUE(by_path.AdmitsListing("in/2024"));
  EXPECT_FALSE(by_path.AdmitsListing("in/2024/old"));
  EXPECT_FALSE(by_path.AdmitsListing("in/2024/old/deeper"));
  EXPECT_TRUE(by_path.AdmitsListing("in/2024/new/old"));

  // Include patterns never reject a directory, so never a listing.
  PathFilter include_only = MakeFilter({"*.xml"}, {});
  EXPECT_TRUE(include_only.AdmitsListing("in/archive"));
}

TEST(PathFilterTest, BadPatternsRejectedWithPattern) {
  struct Case {
    std::vector<std::string> include;
    std::vector<std::string> exclude;
    std::string expected;  // in the message, besides the pattern
    std::string quoted;    // the pattern as the message quotes it
  };
  const std::vector<Case> cases = {
      {{""}, {}, "is empty", "''"},
      {{}, {""}, "is empty", "''"},
      {{"!"}, {}, "no glob after the '!'", "'!'"},
      {{"*.xml", std::string("a\0b", 3)}, {}, "NUL byte", "'a\\0b'"},
      {{}, {std::string("x\0", 2)}, "NUL byte", "'x\\0'"},
      {{}, {"logs/**/*.gz"}, "'**'", "'logs/**/*.gz'"},
      {{}, {"/"}, "only the root", "'/'"},
      {{"!/"}, {}, "only the root", "'!/'"},
      {{}, {"in//a"}, "empty path component", "'in//a'"},
      {{}, {"./a"}, "'.' or '..'", "'./a'"},
      {{"in/../a"}, {}, "'.' or '..'", "'in/../a'"},
      {{"cache/"}, {}, "ends with '/'", "'cache/'"},
      {{"[abc"}, {}, "without a closing ']'", "'[abc'"},
      {{}, {"x[!]"}, "without a closing ']'", "'x[!]'"},
  };
  for (const Case& c : cases) {
    Result<PathFilter> filter = PathFilter::Create(c.include, c.exclude);
    ASSERT_FALSE(filter.ok()) << "accepted " << c.quoted;
    EXPECT_EQ(filter.status().code(), StatusCode::kInvalidArgument);
    const std::string& message = filter.status().message();
    EXPECT_TRUE(Contains(message, c.quoted)) << message;
    EXPECT_TRUE(Contains(message, c.expected)) << message;
    EXPECT_TRUE(Contains(message, c.include.empty() ? "exclude pattern"
                                                    : "include pattern"))
        << message;
  }
}

TEST(PathFilterTest, UnusualButValidPatternsAccepted) {
  // '!' in exclude is an ordinary character, and a trailing '/' is fine
  // after '!' because exclude patterns apply to directories.
  PathFilter filter = MakeFilter({"!cache/", "[!.]*", "[]]x", "\\[y"}, {"!important"});
  EXPECT_FALSE(filter.Admits("!important", EntryType::kFile));
  EXPECT_TRUE(filter.Admits("important", EntryType::kFile));
  EXPECT_FALSE(filter.Admits("cache", EntryType::kDir));
  EXPECT_TRUE(filter.Admits("cache", EntryType::kFile));
  EXPECT_FALSE(filter.Admits(".profile", EntryType::kFile));
}

TEST(PathFilterTest, BackslashQuotesNextCharacter) {
  PathFilter filter = MakeFilter({}, {"a\\*b"});
  EXPECT_FALSE(filter.Admits("a*b", EntryType::kFile));
  EXPECT_TRUE(filter.Admits("axb", EntryType::kFile));
}

TEST(PathFilterTest, QuestionMarkMatchesOneByte) {
  // In the "C" locale, U+00E9 is two bytes, so it needs two '?'.
  PathFilter two_marks = MakeFilter({"caf??"}, {});
  EXPECT_TRUE(two_marks.Admits("caf\xc3\xa9", EntryType::kFile));
  PathFilter one_mark = MakeFilter({"caf?"}, {});
  EXPECT_FALSE(one_mark.Admits("caf\xc3\xa9", EntryType::kFile));
  EXPECT_TRUE(one_mark.Admits("cafe", EntryType::kFile));
}

// ---------------------------------------------------------------------------
// FilteringSink

TEST(FilteringSinkTest, RemovesEntriesNotAdmitted) {
  PathFilter filter = MakeFilter({"*.xml", "!*.part"}, {".*"});
  CollectingSink next;
  FilteringSink sink(next, filter);

  ASSERT_TRUE(sink.Accept(Listing("in", {Entry("a.xml", EntryType::kFile),
                                          Entry("a.xml.part", EntryType::kFile),
                                          Entry("notes.txt", EntryType::kFile),
                                          Entry("b.part", EntryType::kFile),
                                          Entry(".c.xml", EntryType::kFile),
                                          Entry("sub", EntryType::kDir),
                                          Entry(".git", EntryType::kDir)}))
                  .ok());
  auto listings = next.listings();
  ASSERT_EQ(Paths(listings), std::set<std::string>{"in"});
  EXPECT_EQ(Names(listings["in"]), (std::set<std::string>{"a.xml", "sub"}));
}

TEST(FilteringSinkTest, ExcludedDirectoryPrunesListingsBelow) {
  PathFilter filter = MakeFilter({}, {"tmp", "in/*/old"});
  CollectingSink next;
  FilteringSink sink(next, filter);

  for (DirListing listing :
       {Listing("", {Entry("tmp", EntryType::kDir), Entry("in", EntryType::kDir),
                     Entry("a.xml", EntryType::kFile)}),
        Listing("tmp", {Entry("x.xml", EntryType::kFile)}),
        Listing("tmp/deep", {Entry("y.xml", EntryType::kFile)}),
        Listing("in", {Entry("2024", EntryType::kDir)}),
        Listing("in/2024", {Entry("old", EntryType::kDir),
                            Entry("tmp", EntryType::kFile)}),
        Listing("in/2024/old", {Entry("z.xml", EntryType::kFile)}),
        Listing("in/2024/old/more", {})}) {
    ASSERT_TRUE(sink.Accept(std::move(listing)).ok());
  }

  auto listings = next.listings();
  EXPECT_EQ(Paths(listings), (std::set<std::string>{"", "in", "in/2024"}));
  EXPECT_EQ(Names(listings[""]), (std::set<std::string>{"in", "a.xml"}));
  // "tmp" without '/' excludes a file of that name as well.
  EXPECT_TRUE(Names(listings["in/2024"]).empty());
  EXPECT_EQ(next.accepted(), 3u);
}

TEST(FilteringSinkTest, ErrorListingPassesUnchanged) {
  PathFilter filter = MakeFilter({"*.xml"}, {"tmp"});
  CollectingSink next;
  FilteringSink sink(next, filter);

  DirListing failed = Listing("in", {Entry("notes.txt", EntryType::kFile)});
  failed.status = Status(StatusCode::kPermissionDenied, "open failed");
  ASSERT_TRUE(sink.Accept(std::move(failed)).ok());

  DirListing failed_below_excluded = Listing("tmp/x", {});
  failed_below_excluded.status = Status(StatusCode::kIoError, "read failed");
  ASSERT_TRUE(sink.Accept(std::move(failed_below_excluded)).ok());

  auto listings = next.listings();
  ASSERT_EQ(Paths(listings), std::set<std::string>{"in"});
  EXPECT_EQ(listings["in"].status.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(Names(listings["in"]), std::set<std::string>{"notes.txt"});
}

TEST(FilteringSinkTest, EmptyFilterForwardsEverything) {
  PathFilter filter;
  CollectingSink next;
  FilteringSink sink(next, filter);
  ASSERT_TRUE(sink.Accept(Listing(".git", {Entry("HEAD", EntryType::kFile)})).ok());
  EXPECT_EQ(Names(next.listings()[".git"]), std::set<std::string>{"HEAD"});
}

TEST(FilteringSinkTest, ReturnsNextSinkError) {
  PathFilter filter = MakeFilter({}, {"tmp"});
  CollectingSink next;
  next.result = Status(StatusCode::kIoError, "commit failed");
  FilteringSink sink(next, filter);

  Status forwarded = sink.Accept(Listing("in", {}));
  EXPECT_EQ(forwarded.code(), StatusCode::kIoError);
  // A dropped listing never reaches the next sink, so it cannot fail.
  EXPECT_TRUE(sink.Accept(Listing("tmp", {})).ok());
  EXPECT_EQ(next.accepted(), 1u);
}

TEST(FilteringSinkTest, ConcurrentAcceptsFilterEachListing) {
  PathFilter filter = MakeFilter({"*.xml"}, {"tmp"});
  CollectingSink next;
  FilteringSink sink(next, filter);

  constexpr int kThreads = 4;
  constexpr int kListingsPerThread = 200;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kListingsPerThread; ++i) {
        std::string dir = "d" + std::to_string(t) + "_" + std::to_string(i);
        if (i % 2 == 1) dir += "/tmp";
        Status status =
            sink.Accept(Listing(dir, {Entry("a.xml", EntryType::kFile),
                                      Entry("b.txt", EntryType::kFile)}));
        if (!status.ok()) ++failures;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  EXPECT_EQ(failures.load(), 0);
  auto listings = next.listings();
  ASSERT_EQ(listings.size(), size_t{kThreads * kListingsPerThread / 2});
  for (const auto& [path, listing] : listings) {
    EXPECT_FALSE(Contains(path, "tmp")) << path;
    EXPECT_EQ(Names(listing), std::set<std::string>{"a.xml"}) << path;
  }
}

// ---------------------------------------------------------------------------
// LocalSource with ScanRequest::filter

class WalkerFilterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MakeDirs(scratch_.Sub("tmp/x"));
    MakeDirs(scratch_.Sub("in/tmp"));
    MakeDirs(scratch_.Sub("in/2024"));
    WriteFile(scratch_.Sub("a.xml"), "a");
    WriteFile(scratch_.Sub("tmp/x/y.xml"), "y");
    WriteFile(scratch_.Sub("in/b.xml"), "b");
    WriteFile(scratch_.Sub("in/tmp/c.xml"), "c");
    WriteFile(scratch_.Sub("in/2024/d.xml"), "d");

    WalkerOptions options;
    options.root_path = scratch_.path();
    options.threads = 2;
    Result<std::unique_ptr<LocalSource>> source = LocalSource::Create(options);
    ASSERT_TRUE(source.ok()) << source.status().ToString();
    source_ = std::move(source).value();
  }

  std::map<std::string, DirListing> Scan(const ScanRequest& request,
                                         bool through_filtering_sink) {
    CollectingSink collected;
    const PathFilter no_filter;
    FilteringSink filtering(
        collected, request.filter != nullptr ? *request.filter : no_filter);
    std::atomic<bool> stop{false};
    Result<ScanTotals> totals =
        source_->Scan(request,
                      through_filtering_sink ? static_cast<ListingSink&>(filtering)
                                             : collected,
                      stop);
    EXPECT_TRUE(totals.ok()) << totals.status().ToString();
    return collected.listings();
  }

  ScratchDir scratch_;
  std::unique_ptr<LocalSource> source_;
};

TEST_F(WalkerFilterTest, ExcludedDirectoriesNotWalked) {
  PathFilter filter = MakeFilter({}, {"tmp"});
  ScanRequest request;
  request.filter = &filter;

  uint64_t listed_before = source_->stats().dirs_listed;
  auto listings = Scan(request, false);
  EXPECT_EQ(Paths(listings), (std::set<std::string>{"", "in", "in/2024"}));
  EXPECT_EQ(source_->stats().dirs_listed - listed_before, 3u);
  // The walker only prunes; removing the entry is FilteringSink's work.
  EXPECT_EQ(Names(listings[""]), (std::set<std::string>{"a.xml", "in", "tmp"}));

  auto filtered = Scan(request, true);
  EXPECT_EQ(Paths(filtered), (std::set<std::string>{"", "in", "in/2024"}));
  EXPECT_EQ(Names(filtered[""]), (std::set<std::string>{"a.xml", "in"}));
  EXPECT_EQ(Names(filtered["in"]), (std::set<std::string>{"2024", "b.xml"}));
}

TEST_F(WalkerFilterTest, WithoutFilterEverythingWalked) {
  auto listings = Scan(ScanRequest(), false);
  EXPECT_EQ(Paths(listings), (std::set<std::string>{"", "in", "in/2024",
                                                    "in/tmp", "tmp", "tmp/x"}));
}

TEST_F(WalkerFilterTest, IncludeDoesNotPruneDirectories) {
  PathFilter filter = MakeFilter({"d.*"}, {});
  ScanRequest request;
  request.filter = &filter;
  auto listings = Scan(request, true);
  EXPECT_EQ(Paths(listings), (std::set<std::string>{"", "in", "in/2024",
                                                    "in/tmp", "tmp", "tmp/x"}));
  EXPECT_EQ(Names(listings["in/2024"]), std::set<std::string>{"d.xml"});
  EXPECT_EQ(Names(listings["in"]), (std::set<std::string>{"2024", "tmp"}));
}

TEST_F(WalkerFilterTest, RequestedExcludedDirectoryNotListed) {
  PathFilter filter = MakeFilter({}, {"tmp"});
  ScanRequest request;
  request.filter = &filter;
  request.dirs = {"tmp/x", "in/tmp", "in/2024"};
  auto listings = Scan(request, false);
  EXPECT_EQ(Paths(listings), std::set<std::string>{"in/2024"});
}

TEST_F(WalkerFilterTest, VanishedTargetListsAdmittedAncestor) {
  // "in/gone" does not exist, so the walker lists "in" without recursion
  // instead; "in" is admitted even though "gone" would not be.
  PathFilter filter = MakeFilter({}, {"gone"});
  ScanRequest request;
  request.filter = &filter;
  request.dirs = {"in/gone/deeper"};
  auto listings = Scan(request, true);
  EXPECT_EQ(Paths(listings), std::set<std::string>{"in"});
  EXPECT_EQ(Names(listings["in"]), (std::set<std::string>{"2024", "b.xml", "tmp"}));
}

}  // namespace
}  // namespace dirindex
