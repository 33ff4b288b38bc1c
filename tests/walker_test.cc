// Tests of LocalSource on generated trees, through a collecting sink so
// that they do not depend on the index.
#include "scan/walker.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <functional>
#include <iterator>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "index/paths.h"
#include "scan/uring_statx.h"
#include "tests/test_support.h"

namespace dirindex {
namespace {

using testing::MakeDirs;
using testing::Names;
using testing::Paths;
using testing::ScratchDir;
using testing::WriteFile;

// CollectingSink stores every listing it receives. Walker threads may call
// it at the same time.
class CollectingSink : public ListingSink {
 public:
  Status Accept(DirListing&& listing) override {
    std::lock_guard lock(mu_);
    listings_.push_back(std::move(listing));
    return Status::Ok();
  }

  // Returns the listings keyed by path. Fails the test on a path listed
  // twice.
  std::map<std::string, DirListing> ByPath() const {
    std::lock_guard lock(mu_);
    std::map<std::string, DirListing> out;
    for (const DirListing& listing : listings_) {
      EXPECT_TRUE(out.emplace(listing.path, listing).second)
          << "directory listed twice: '" << listing.path << "'";
    }
    return out;
  }

  size_t size() const {
    std::lock_guard lock(mu_);
    return listings_.size();
  }

 private:
  mutable std::mutex mu_;
  std::vector<DirListing> listings_;
};

const ListedEntry* FindEntry(const DirListing& listing, std::string_view name) {
  for (const ListedEntry& entry : listing.entries) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

std::unique_ptr<LocalSource> MakeSource(WalkerOptions options) {
  Result<std::unique_ptr<LocalSource>> source = LocalSource::Create(options);
  EXPECT_TRUE(source.ok()) << source.status().ToString();
  if (!source.ok()) return nullptr;
  return std::move(source).value();
}

WalkerOptions OptionsFor(const std::string& root) {
  WalkerOptions options;
  options.root_path = root;
  return options;
}

// Runs one scan and returns its totals, failing the test on an error.
ScanTotals ScanAll(LocalSource& source, CollectingSink& sink,
                   const ScanRequest& request = ScanRequest()) {
  std::atomic<bool> stop{false};
  Result<ScanTotals> totals = source.Scan(request, sink, stop);
  EXPECT_TRUE(totals.ok()) << totals.status().ToString();
  return totals.ok() ? totals.value() : ScanTotals();
}

// Canonical text of a whole scan: every listing sorted by path, every entry
// sorted by name, with every field the walker fills.
std::string Canonical(const std::map<std::string, DirListing>& listings) {
  std::ostringstream out;
  for (const auto& [path, listing] : listings) {
    out << "dir '" << path << "' " << listing.status.ToString() << "\n";
    std::vector<ListedEntry> entries = listing.entries;
    std::sort(entries.begin(), entries.end(),
              [](const ListedEntry& a, const ListedEntry& b) {
                return a.name < b.name;
              });
    for (const ListedEntry& e : entries) {
      out << "  '" << e.name << "' type=" << EntryTypeName(e.type)
          << " known=" << int{e.known} << " mode=" << e.mode
          << " size=" << e.size << " mtime=" << e.mtime_ns
          << " inode=" << e.inode << " device=" << e.device << "\n";
    }
  }
  return out.str();
}

// Builds a small mixed tree: nested directories, files of several sizes, a
// symlink and a FIFO.
void BuildMixedTree(const ScratchDir& dir) {
  MakeDirs(dir.Sub("a/b/c"));
  MakeDirs(dir.Sub("d"));
  for (int i = 0; i < 40; ++i) {
    WriteFile(dir.Sub("a/f" + std::to_string(i)), std::string(i * 7, 'x'));
    WriteFile(dir.Sub("a/b/g" + std::to_string(i)), std::string(i, 'y'));
  }
  WriteFile(dir.Sub("a/b/c/deep.txt"), "deep");
  WriteFile(dir.Sub("top.txt"), "top level");
  ASSERT_EQ(symlink("a/b", dir.Sub("link").c_str()), 0);
  ASSERT_EQ(mkfifo(dir.Sub("d/pipe").c_str(), 0600), 0);
}

TEST(WalkerTest, NestedTreeTotals) {
  ScratchDir dir;
  MakeDirs(dir.Sub("a/b/c"));
  WriteFile(dir.Sub("root.txt"), "12345");
  WriteFile(dir.Sub("a/one"), std::string(100, 'a'));
  WriteFile(dir.Sub("a/b/two"), std::string(2000, 'b'));
  WriteFile(dir.Sub("a/b/c/three"), "");

  auto source = MakeSource(OptionsFor(dir.path()));
  ASSERT_NE(source, nullptr);
  CollectingSink sink;
  ScanTotals totals = ScanAll(*source, sink);

  EXPECT_EQ(totals.dirs, 4u);
  EXPECT_EQ(totals.files, 4u);
  EXPECT_EQ(totals.bytes, 2105u);
  EXPECT_EQ(totals.failed_dirs, 0u);

  auto listings = sink.ByPath();
  EXPECT_EQ(Paths(listings),
            (std::set<std::string>{"", "a", "a/b", "a/b/c"}));
  EXPECT_EQ(Names(listings[""]), (std::set<std::string>{"a", "root.txt"}));
  EXPECT_EQ(Names(listings["a"]), (std::set<std::string>{"b", "one"}));
  EXPECT_EQ(Names(listings["a/b"]), (std::set<std::string>{"c", "two"}));
  EXPECT_EQ(Names(listings["a/b/c"]), (std::set<std::string>{"three"}));
  for (const auto& [path, listing] : listings) {
    EXPECT_TRUE(listing.status.ok()) << path << ": " << listing.status.ToString();
  }

  // Every field matches lstat of the same name.
  const ListedEntry* two = FindEntry(listings["a/b"], "two");
  ASSERT_NE(two, nullptr);
  struct stat st;
  ASSERT_EQ(lstat(dir.Sub("a/b/two").c_str(), &st), 0);
  EXPECT_EQ(two->type, EntryType::kFile);
  EXPECT_EQ(two->known, kKnownSize | kKnownMtime | kKnownInode | kKnownMode);
  EXPECT_EQ(two->size, 2000u);
  EXPECT_EQ(two->mode, st.st_mode);
  EXPECT_EQ(two->inode, st.st_ino);
  EXPECT_EQ(two->device, st.st_dev);
  EXPECT_EQ(two->mtime_ns,
            st.st_mtim.tv_sec * int64_t{1'000'000'000} + st.st_mtim.tv_nsec);

  const ListedEntry* b = FindEntry(listings["a"], "b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->type, EntryType::kDir);

  WalkerStats stats = source->stats();
  EXPECT_EQ(stats.dirs_listed, 4u);
  EXPECT_EQ(stats.dirs_failed, 0u);
  EXPECT_EQ(stats.statx_sync + stats.statx_uring, 7u);
  EXPECT_EQ(source->Describe(), "file://" + dir.path());
}

TEST(WalkerTest, UnusualNamesListed) {
  ScratchDir dir;
  const std::string newline = "line\nbreak";
  const std::string invalid_utf8 = "bad\xff\xfe\x80name";
  const std::string longest(255, 'n');
  WriteFile(dir.Sub(newline), "1");
  WriteFile(dir.Sub(invalid_utf8), "22");
  WriteFile(dir.Sub(longest), "333");
  // 255 bytes is the limit: the kernel rejects one byte more.
  ASSERT_NE(mkdir(dir.Sub(longest + "d").c_str(), 0755), 0);
  ASSERT_EQ(errno, ENAMETOOLONG);
  auto source = MakeSource(OptionsFor(dir.path()));
  ASSERT_NE(source, nullptr);
  CollectingSink sink;
  ScanAll(*source, sink);

  auto listings = sink.ByPath();
  ASSERT_EQ(listings.count(""), 1u);
  EXPECT_EQ(Names(listings[""]),
            (std::set<std::string>{newline, invalid_utf8, longest}));
  EXPECT_EQ(FindEntry(listings[""], longest)->size, 3u);
  EXPECT_EQ(FindEntry(listings[""], invalid_utf8)->size, 2u);
}

TEST(WalkerTest, PathBeyondPathMax) {
  ScratchDir dir;
  const std::string component(240, 'p');
  int fd = open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::string relative;
  for (int level = 0; level < 20; ++level) {
    ASSERT_EQ(mkdirat(fd, component.c_str(), 0755), 0) << std::strerror(errno);
    int next = openat(fd, component.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(next, 0) << std::strerror(errno);
    close(fd);
    fd = next;
    relative = JoinPath(relative, component);
  }
  int file = openat(fd, "bottom.txt", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(file, 0);
  ASSERT_EQ(write(file, "end", 3), 3);
  close(file);
  close(fd);
  ASSERT_GT(dir.path().size() + 1 + relative.size(), size_t{PATH_MAX});

  auto source = MakeSource(OptionsFor(dir.path()));
  ASSERT_NE(source, nullptr);
  CollectingSink sink;
  ScanTotals totals = ScanAll(*source, sink);

  EXPECT_EQ(totals.dirs, 21u);
  EXPECT_EQ(totals.failed_dirs, 0u);
  auto listings = sink.ByPath();
  ASSERT_EQ(listings.count(relative), 1u);
  const DirListing& bottom = listings[relative];
  EXPECT_TRUE(bottom.status.ok()) << bottom.status.ToString();
  ASSERT_NE(FindEntry(bottom, "bottom.txt"), nullptr);
  EXPECT_EQ(FindEntry(bottom, "bottom.txt")->size, 3u);
}

TEST(WalkerTest, SymlinkNotFollowed) {
  ScratchDir outside;
  WriteFile(outside.Sub("secret.txt"), "outside the root");
  ScratchDir dir;
  MakeDirs(dir.Sub("real"));
  WriteFile(dir.Sub("real/inner.txt"), "x");
  ASSERT_EQ(symlink(outside.path().c_str(), dir.Sub("to_outside").c_str()), 0);
  ASSERT_EQ(symlink("real", dir.Sub("to_real").c_str()), 0);
  ASSERT_EQ(symlink("loop", dir.Sub("loop").c_str()), 0);

  auto source = MakeSource(OptionsFor(dir.path()));
  ASSERT_NE(source, nullptr);
  CollectingSink sink;
  ScanAll(*source, sink);

  auto listings = sink.ByPath();
  EXPECT_EQ(Paths(listings), (std::set<std::string>{"", "real"}));
  for (const char* name : {"to_outside", "to_real", "loop"}) {
    const ListedEntry* link = FindEntry(listings[""], name);
    ASSERT_NE(link, nullptr) << name;
    EXPECT_EQ(link->type, EntryType::kSymlink) << name;
    EXPECT_TRUE(S_ISLNK(link->mode)) << name;
  }
  // The size of a symlink is the length of its target.
  EXPECT_EQ(FindEntry(listings[""], "to_real")->size, 4u);
}

TEST(WalkerTest, EntryVanishedBeforeStatx) {
  ScratchDir dir;
  MakeDirs(dir.Sub("sub"));
  WriteFile(dir.Sub("sub/keep.txt"), "k");
  WriteFile(dir.Sub("sub/gone.txt"), "g");
  MakeDirs(dir.Sub("sub/gone_dir"));

  WalkerOptions options = OptionsFor(dir.path());
  const std::string gone_file = dir.Sub("sub/gone.txt");
  const std::string gone_dir = dir.Sub("sub/gone_dir");
  options.after_getdents_for_test = [&](std::string_view path) {
    if (path != "sub") return;
    unlink(gone_file.c_str());
    rmdir(gone_dir.c_str());
  };
  auto source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  CollectingSink sink;
  ScanTotals totals = ScanAll(*source, sink);

  auto listings = sink.ByPath();
  EXPECT_EQ(Paths(listings), (std::set<std::string>{"", "sub"}));
  EXPECT_TRUE(listings["sub"].status.ok()) << listings["sub"].status.ToString();
  EXPECT_EQ(Names(listings["sub"]), (std::set<std::string>{"keep.txt"}));
  EXPECT_EQ(source->stats().entries_vanished, 2u);
  EXPECT_EQ(totals.failed_dirs, 0u);
}

TEST(WalkerTest, DirectoryVanishedBeforeOpen) {
  ScratchDir dir;
  MakeDirs(dir.Sub("x/inner"));
  MakeDirs(dir.Sub("y/inner"));

  // With one thread the walk is sequential: whichever of x and y is listed
  // first removes the other, which then vanishes after its parent's statx
  // and before its own open.
  WalkerOptions options = OptionsFor(dir.path());
  options.threads = 1;
  std::string removed;
  options.after_getdents_for_test = [&](std::string_view path) {
    if (!removed.empty() || (path != "x" && path != "y")) return;
    removed = path == "x" ? "y" : "x";
    testing::RemoveTree(dir.Sub(removed));
  };
  auto source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  CollectingSink sink;
  ScanTotals totals = ScanAll(*source, sink);

  ASSERT_FALSE(removed.empty());
  std::string surviving = removed == "x" ? "y" : "x";
  auto listings = sink.ByPath();
  EXPECT_EQ(Paths(listings),
            (std::set<std::string>{"", surviving, surviving + "/inner"}));
  EXPECT_EQ(totals.failed_dirs, 0u);
}

// Runs `body` in a forked child process and returns what it wrote. The
// child may change its credentials or install a seccomp filter without
// affecting the test binary.
std::string RunInChild(const std::function<std::string()>& body) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    std::string out = body();
    size_t done = 0;
    while (done < out.size()) {
      ssize_t n = write(fds[1], out.data() + done, out.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    _exit(0);
  }
  close(fds[1]);
  std::string text;
  char buffer[4096];
  ssize_t n;
  while ((n = read(fds[0], buffer, sizeof buffer)) > 0) text.append(buffer, n);
  close(fds[0]);
  int wstatus = 0;
  waitpid(pid, &wstatus, 0);
  EXPECT_TRUE(WIFEXITED(wstatus));
  EXPECT_EQ(WEXITSTATUS(wstatus), 0);
  return text;
}

// Scans `root` in a child process that has switched to the user nobody
// when run as root, so permission bits apply. Returns one line
// per listing, "path|status code|entry count", plus a "message" line for
// each failed listing.
std::set<std::string> ScanAsNobody(const std::string& root) {
  std::string text = RunInChild([&]() -> std::string {
    // A test run by another user is already subject to permission bits.
    if (geteuid() == 0 && (setgroups(0, nullptr) != 0 || setgid(65534) != 0 ||
                           setuid(65534) != 0)) {
      return std::string("setuid failed: ") + std::strerror(errno) + "\n";
    }
    Result<std::unique_ptr<LocalSource>> source =
        LocalSource::Create(OptionsFor(root));
    if (!source.ok()) return "create failed: " + source.status().ToString();
    CollectingSink sink;
    std::atomic<bool> stop{false};
    Result<ScanTotals> totals = (*source)->Scan(ScanRequest(), sink, stop);
    if (!totals.ok()) return "scan failed: " + totals.status().ToString();

    std::string out;
    for (const auto& [path, listing] : sink.ByPath()) {
      out += path + "|" + std::string(StatusCodeName(listing.status.code())) +
             "|" + std::to_string(listing.entries.size()) + "\n";
      if (!listing.status.ok()) {
        out += "message " + listing.status.message() + "\n";
      }
    }
    return out;
  });

  std::set<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.insert(line);
  return lines;
}

// Root bypasses permission bits, so the scan runs in a child process as
// the user nobody. "locked" cannot be opened, and "nosearch" can be read
// but its entries cannot be statted.
TEST(WalkerTest, UnreadableDirectoryFails) {
  ScratchDir dir;
  ASSERT_EQ(chmod(dir.path().c_str(), 0755), 0);
  MakeDirs(dir.Sub("open/inner"));
  MakeDirs(dir.Sub("locked"));
  MakeDirs(dir.Sub("nosearch"));
  WriteFile(dir.Sub("open/inner/file"), "f");
  WriteFile(dir.Sub("locked/hidden"), "h");
  WriteFile(dir.Sub("nosearch/listed"), "l");
  ASSERT_EQ(chmod(dir.Sub("locked").c_str(), 0000), 0);
  ASSERT_EQ(chmod(dir.Sub("nosearch").c_str(), 0444), 0);

  std::set<std::string> lines = ScanAsNobody(dir.path());

  EXPECT_TRUE(lines.count("|ok|3")) << ::testing::PrintToString(lines);
  EXPECT_TRUE(lines.count("open|ok|1")) << ::testing::PrintToString(lines);
  EXPECT_TRUE(lines.count("open/inner|ok|1")) << ::testing::PrintToString(lines);
  EXPECT_TRUE(lines.count("locked|permission_denied|0"))
      << ::testing::PrintToString(lines);
  EXPECT_TRUE(lines.count("nosearch|permission_denied|0"))
      << ::testing::PrintToString(lines);
  EXPECT_TRUE(lines.count("message open failed on '" + dir.Sub("locked") +
                          "': Permission denied"))
      << ::testing::PrintToString(lines);
  EXPECT_TRUE(lines.count("message statx failed on '" +
                          dir.Sub("nosearch/listed") + "': Permission denied"))
      << ::testing::PrintToString(lines);
  EXPECT_EQ(lines.size(), 7u) << ::testing::PrintToString(lines);
}

TEST(WalkerTest, UringAndSyncListingsMatch) {
  ScratchDir dir;
  BuildMixedTree(dir);

  auto scan = [&](StatxMode mode, bool use_io_uring, WalkerStats* stats) {
    WalkerOptions options = OptionsFor(dir.path());
    options.statx_mode = mode;
    options.use_io_uring = use_io_uring;
    options.uring_queue_depth = 8;  // fewer slots than entries per directory
    auto source = MakeSource(options);
    CollectingSink sink;
    if (source != nullptr) {
      ScanAll(*source, sink);
      *stats = source->stats();
    }
    return Canonical(sink.ByPath());
  };

  WalkerStats sync_stats, uring_stats, fallback_stats, auto_stats;
  std::string sync = scan(StatxMode::kSync, true, &sync_stats);
  std::string uring = scan(StatxMode::kUring, true, &uring_stats);
  std::string fallback = scan(StatxMode::kUring, false, &fallback_stats);
  std::string automatic = scan(StatxMode::kAuto, true, &auto_stats);

  EXPECT_EQ(uring, sync);
  EXPECT_EQ(fallback, sync);
  EXPECT_EQ(automatic, sync);
  EXPECT_NE(sync.find("'pipe' type=other"), std::string::npos) << sync;
  EXPECT_NE(sync.find("'link' type=symlink"), std::string::npos) << sync;

  EXPECT_EQ(sync_stats.statx_uring, 0u);
  EXPECT_GT(sync_stats.statx_sync, 0u);
  EXPECT_FALSE(fallback_stats.uring_available);
  EXPECT_EQ(fallback_stats.statx_uring, 0u);
  EXPECT_EQ(fallback_stats.statx_sync, sync_stats.statx_sync);
  // Kernels since 5.6 support IORING_OP_STATX. A machine without io_uring
  // still checks everything above.
  if (uring_stats.uring_available) {
    EXPECT_EQ(uring_stats.statx_sync, 0u);
    EXPECT_EQ(uring_stats.statx_uring, sync_stats.statx_sync);
  }
}

// A seccomp filter makes io_uring_setup fail with EPERM, as the sysctl
// kernel.io_uring_disabled does, in a child process. The probe reports it,
// and a walker forced to io_uring falls back to direct statx with the same
// listings.
TEST(WalkerTest, UringSetupFailureFallsBack) {
  ScratchDir dir;
  BuildMixedTree(dir);
  auto source = MakeSource(OptionsFor(dir.path()));
  ASSERT_NE(source, nullptr);
  CollectingSink sink;
  ScanAll(*source, sink);
  const std::string expected = Canonical(sink.ByPath());

  std::string text = RunInChild([&]() -> std::string {
    sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog program = {static_cast<unsigned short>(std::size(filter)),
                          filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) {
      return std::string("seccomp failed: ") + std::strerror(errno);
    }
    Status probe = ProbeIoUringStatx();
    std::string out = "probe " + probe.ToString() + "\n";

    WalkerOptions options = OptionsFor(dir.path());
    options.statx_mode = StatxMode::kUring;
    Result<std::unique_ptr<LocalSource>> forced = LocalSource::Create(options);
    if (!forced.ok()) return out + "create failed " + forced.status().ToString();
    CollectingSink child_sink;
    std::atomic<bool> stop{false};
    Result<ScanTotals> totals = (*forced)->Scan(ScanRequest(), child_sink, stop);
    if (!totals.ok()) return out + "scan failed " + totals.status().ToString();
    WalkerStats stats = (*forced)->stats();
    out += "uring " + std::to_string(stats.statx_uring) + " sync " +
           std::to_string(stats.statx_sync) + "\n";
    return out + Canonical(child_sink.ByPath());
  });

  std::istringstream in(text);
  std::string probe_line, counts_line;
  std::getline(in, probe_line);
  std::getline(in, counts_line);
  std::string listings((std::istreambuf_iterator<char>(in)),
                       std::istreambuf_iterator<char>());
  EXPECT_EQ(probe_line,
            "probe unavailable: io_uring_setup failed with errno 1 (Operation "
            "not permitted). The sysctl kernel.io_uring_disabled or a seccomp "
            "filter may block io_uring.");
  EXPECT_EQ(counts_line, "uring 0 sync " +
                             std::to_string(source->stats().statx_sync));
  EXPECT_EQ(listings, expected);
}

// kAuto with a zero latency bound treats every call as slow, so it moves
// each chunk to io_uring after its two probe calls. With a huge bound it
// never leaves direct calls. Both give the same listings.
TEST(WalkerTest, AutoModeSwitchesOnLatency) {
  ScratchDir dir;
  MakeDirs(dir.Sub("many"));
  for (int i = 0; i < 300; ++i) {
    WriteFile(dir.Sub("many/file" + std::to_string(i)), std::to_string(i));
  }

  auto scan = [&](std::chrono::microseconds bound, WalkerStats* stats) {
    WalkerOptions options = OptionsFor(dir.path());
    options.statx_mode = StatxMode::kAuto;
    options.auto_uring_latency = bound;
    options.threads = 1;
    auto source = MakeSource(options);
    CollectingSink sink;
    if (source != nullptr) {
      ScanAll(*source, sink);
      *stats = source->stats();
    }
    return Canonical(sink.ByPath());
  };

  WalkerStats slow_stats, fast_stats;
  std::string slow = scan(std::chrono::microseconds(0), &slow_stats);
  std::string fast = scan(std::chrono::hours(1), &fast_stats);
  EXPECT_EQ(slow, fast);
  EXPECT_EQ(fast_stats.statx_uring, 0u);
  EXPECT_EQ(fast_stats.statx_sync, 301u);
  if (!slow_stats.uring_available) GTEST_SKIP() << "io_uring unavailable";
  // The root has one entry, statted directly. "many" gets two probe calls,
  // then io_uring for the rest.
  EXPECT_EQ(slow_stats.statx_sync, 3u);
  EXPECT_EQ(slow_stats.statx_uring, 298u);
}

TEST(WalkerTest, LargeDirectoryListedOnce) {
  ScratchDir dir;
  MakeDirs(dir.Sub("big/sub"));
  const int kFiles = 10'000;
  for (int i = 0; i < kFiles; ++i) {
    WriteFile(dir.Sub("big/f" + std::to_string(i)), "");
  }

  for (StatxMode mode : {StatxMode::kSync, StatxMode::kUring}) {
    for (size_t chunk : {size_t{4096}, size_t{700}}) {
      SCOPED_TRACE("mode " + std::to_string(static_cast<int>(mode)) +
                   " chunk " + std::to_string(chunk));
      WalkerOptions options = OptionsFor(dir.path());
      options.statx_mode = mode;
      options.chunk_entries = chunk;
      options.getdents_buffer_bytes = 16 * 1024;  // many getdents64 batches
      auto source = MakeSource(options);
      ASSERT_NE(source, nullptr);
      CollectingSink sink;
      ScanTotals totals = ScanAll(*source, sink);

      EXPECT_EQ(sink.size(), 3u);  // "", "big", "big/sub"
      auto listings = sink.ByPath();
      ASSERT_EQ(listings.count("big"), 1u);
      EXPECT_EQ(listings["big"].entries.size(), size_t{kFiles} + 1);
      std::set<std::string> names = Names(listings["big"]);
      EXPECT_EQ(names.size(), size_t{kFiles} + 1);
      EXPECT_TRUE(names.count("f0"));
      EXPECT_TRUE(names.count("f9999"));
      EXPECT_TRUE(names.count("sub"));
      EXPECT_EQ(listings.count("big/sub"), 1u);
      EXPECT_EQ(totals.files, uint64_t{kFiles});
    }
  }
}

TEST(WalkerTest, MountPointNotCrossed) {
  ScratchDir dir;
  MakeDirs(dir.Sub("mnt"));
  WriteFile(dir.Sub("here.txt"), "h");
  if (mount("dirindex-test", dir.Sub("mnt").c_str(), "tmpfs", 0, "size=1m") !=
      0) {
    GTEST_SKIP() << "cannot mount tmpfs here: " << std::strerror(errno);
  }
  WriteFile(dir.Sub("mnt/elsewhere.txt"), "e");

  CollectingSink sink;
  auto source = MakeSource(OptionsFor(dir.path()));
  ASSERT_NE(source, nullptr);
  ScanAll(*source, sink);
  auto listings = sink.ByPath();

  WalkerOptions crossing = OptionsFor(dir.path());
  crossing.cross_devices = true;
  CollectingSink crossing_sink;
  auto crossing_source = MakeSource(crossing);
  ASSERT_NE(crossing_source, nullptr);
  ScanAll(*crossing_source, crossing_sink);
  auto crossed = crossing_sink.ByPath();

  // A targeted scan below the mount point is skipped as well.
  CollectingSink targeted_sink;
  ScanRequest request;
  request.dirs = {"mnt"};
  ScanAll(*source, targeted_sink, request);

  umount(dir.Sub("mnt").c_str());

  EXPECT_EQ(Paths(listings), (std::set<std::string>{""}));
  const ListedEntry* mnt = FindEntry(listings[""], "mnt");
  ASSERT_NE(mnt, nullptr);
  EXPECT_EQ(mnt->type, EntryType::kDir);
  EXPECT_NE(mnt->device, FindEntry(listings[""], "here.txt")->device);

  EXPECT_EQ(Paths(crossed), (std::set<std::string>{"", "mnt"}));
  EXPECT_EQ(Names(crossed["mnt"]), (std::set<std::string>{"elsewhere.txt"}));
  EXPECT_EQ(targeted_sink.size(), 0u);
}

TEST(WalkerTest, TargetedDirsAndDepth) {
  ScratchDir dir;
  MakeDirs(dir.Sub("a/b/c/d"));
  MakeDirs(dir.Sub("a/e"));
  MakeDirs(dir.Sub("z"));
  auto source = MakeSource(OptionsFor(dir.path()));
  ASSERT_NE(source, nullptr);

  struct Case {
    std::vector<std::string> dirs;
    bool recursive;
    uint32_t max_depth;
    std::set<std::string> expected;
  };
  const Case cases[] = {
      {{}, true, 0, {"", "a", "a/b", "a/b/c", "a/b/c/d", "a/e", "z"}},
      {{}, false, 0, {""}},
      {{}, true, 1, {"", "a", "z"}},
      {{}, true, 2, {"", "a", "a/b", "a/e", "z"}},
      {{"a/b"}, true, 0, {"a/b", "a/b/c", "a/b/c/d"}},
      {{"a/b"}, false, 0, {"a/b"}},
      {{"a/b", "a", "a/b/c", "a"}, true, 0,
       {"a", "a/b", "a/b/c", "a/b/c/d", "a/e"}},
      {{"a/b", "z"}, false, 0, {"a/b", "z"}},
      {{"a/b"}, true, 3, {"a/b", "a/b/c"}},
      {{"a/b/c/d"}, true, 3, {}},
      {{""}, false, 0, {""}},
      // A missing target is replaced by its nearest existing ancestor,
      // listed without recursion.
      {{"a/gone/deeper"}, true, 0, {"a"}},
      {{"gone"}, true, 0, {""}},
  };
  for (const Case& c : cases) {
    ScanRequest request;
    request.dirs = c.dirs;
    request.recursive = c.recursive;
    request.max_depth = c.max_depth;
    CollectingSink sink;
    ScanAll(*source, sink, request);
    EXPECT_EQ(Paths(sink.ByPath()), c.expected)
        << "dirs " << ::testing::PrintToString(c.dirs) << " recursive "
        << c.recursive << " max_depth " << c.max_depth;
  }

  ScanRequest invalid;
  invalid.dirs = {"../outside"};
  CollectingSink sink;
  std::atomic<bool> stop{false};
  Result<ScanTotals> result = source->Scan(invalid, sink, stop);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find("../outside"), std::string::npos)
      << result.status().message();
}

TEST(WalkerTest, StopFlagAborts) {
  ScratchDir dir;
  for (int i = 0; i < 50; ++i) MakeDirs(dir.Sub("d" + std::to_string(i) + "/x"));

  std::atomic<bool> stop{false};
  WalkerOptions options = OptionsFor(dir.path());
  options.after_getdents_for_test = [&](std::string_view path) {
    if (!path.empty()) stop = true;
  };
  auto source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  CollectingSink sink;
  Result<ScanTotals> result = source->Scan(ScanRequest(), sink, stop);

  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kAborted);
  EXPECT_LT(sink.size(), 101u);
}

TEST(WalkerTest, SinkErrorStopsScan) {
  ScratchDir dir;
  for (int i = 0; i < 50; ++i) MakeDirs(dir.Sub("d" + std::to_string(i)));

  class FailingSink : public ListingSink {
   public:
    Status Accept(DirListing&&) override {
      ++calls;
      return Status(StatusCode::kIoError, "commit failed: disk full");
    }
    std::atomic<int> calls{0};
  };
  WalkerOptions options = OptionsFor(dir.path());
  options.threads = 1;
  auto source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  FailingSink sink;
  std::atomic<bool> stop{false};
  Result<ScanTotals> result = source->Scan(ScanRequest(), sink, stop);

  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kIoError);
  EXPECT_EQ(result.status().message(), "commit failed: disk full");
  EXPECT_EQ(sink.calls.load(), 1);
}

TEST(WalkerTest, CreateRejectsBadRoot) {
  ScratchDir dir;
  WriteFile(dir.Sub("file"), "f");

  Result<std::unique_ptr<LocalSource>> missing =
      LocalSource::Create(OptionsFor(dir.Sub("missing")));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find(dir.Sub("missing")),
            std::string::npos)
      << missing.status().message();

  Result<std::unique_ptr<LocalSource>> file =
      LocalSource::Create(OptionsFor(dir.Sub("file")));
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(file.status().message().find(dir.Sub("file")), std::string::npos)
      << file.status().message();

  Result<std::unique_ptr<LocalSource>> relative =
      LocalSource::Create(OptionsFor("relative/path"));
  ASSERT_FALSE(relative.ok());
  EXPECT_EQ(relative.status().code(), StatusCode::kInvalidArgument);

  WalkerOptions zero_depth = OptionsFor(dir.path());
  zero_depth.uring_queue_depth = 0;
  EXPECT_FALSE(LocalSource::Create(zero_depth).ok());
}

TEST(WalkerTest, RootRemovedAfterCreate) {
  ScratchDir dir;
  MakeDirs(dir.Sub("root"));
  auto source = MakeSource(OptionsFor(dir.Sub("root")));
  ASSERT_NE(source, nullptr);
  ASSERT_EQ(rmdir(dir.Sub("root").c_str()), 0);

  CollectingSink sink;
  std::atomic<bool> stop{false};
  Result<ScanTotals> result = source->Scan(ScanRequest(), sink, stop);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(sink.size(), 0u);
}

int CountOpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  int count = 0;
  while (dirent* item = readdir(dir)) {
    if (item->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count - 1;  // the descriptor of /proc/self/fd itself
}

// A binary tree of depth 9 (1023 directories) next to a directory with 300
// subdirectories: the walk keeps about one descriptor per level of each
// thread's branch open, not one per directory.
TEST(WalkerTest, OpenDescriptorsBounded) {
  ScratchDir dir;
  const int kDepth = 9;
  std::vector<std::string> level = {""};
  for (int depth = 0; depth < kDepth; ++depth) {
    std::vector<std::string> next;
    for (const std::string& parent : level) {
      for (const char* name : {"l", "r"}) {
        std::string child = JoinPath(parent, name);
        MakeDirs(dir.Sub(child));
        next.push_back(child);
      }
    }
    level = std::move(next);
  }
  for (int i = 0; i < 300; ++i) {
    MakeDirs(dir.Sub("wide/w" + std::to_string(i) + "/inner"));
  }

  const int baseline = CountOpenFds();
  std::mutex mu;
  int peak = 0;
  WalkerOptions options = OptionsFor(dir.path());
  options.threads = 2;
  options.statx_mode = StatxMode::kSync;
  options.after_getdents_for_test = [&](std::string_view) {
    int open_now = CountOpenFds();
    std::lock_guard lock(mu);
    peak = std::max(peak, open_now);
  };
  auto source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  CollectingSink sink;
  ScanTotals totals = ScanAll(*source, sink);

  EXPECT_EQ(totals.dirs, 1023u + 601u);
  EXPECT_GT(peak, baseline);
  // Each thread's branch keeps at most one descriptor per level (the
  // parent of a sibling not yet visited) plus its current directory, and
  // each thread's hook opens /proc/self/fd.
  const int threads = static_cast<int>(options.threads);
  EXPECT_LE(peak - baseline, threads * (kDepth + 2) + threads)
      << "baseline " << baseline << " peak " << peak;
  EXPECT_EQ(CountOpenFds(), baseline);
}

}  // namespace
}  // namespace dirindex
