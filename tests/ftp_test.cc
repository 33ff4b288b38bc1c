// Integration tests of the FTP source against real servers on 127.0.0.1:
// pure-ftpd (MLSD, FTPS, truncated listings) and pyftpdlib with MLSD
// switched off (LIST, with faults switched on by control files), both
// started by the scripts in tests/servers on free ports. Listings go
// through a real Index, so each case checks the change feed a client reads.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "index/index.h"
#include "net/ftp_connection.h"
#include "net/ftp_parse.h"
#include "net/remote_source.h"
#include "tests/test_support.h"

extern char** environ;

namespace dirindex {
namespace {

using Clock = std::chrono::steady_clock;
using testing::MakeDirs;
using testing::ScratchDir;
using testing::WriteFile;

// Sanitizers slow the instrumented parser several times over but not
// libcurl, so timing bounds are only checked without them.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitizerBuild = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitizerBuild = true;
#else
constexpr bool kSanitizerBuild = false;
#endif
#else
constexpr bool kSanitizerBuild = false;
#endif

constexpr const char* kUser = "tester";
constexpr const char* kPassword = "correct horse";
constexpr size_t kBigFolderFiles = 20'000;

std::string ServerScript(const char* name) {
  std::string file = __FILE__;
  return file.substr(0, file.rfind('/')) + "/servers/" + name;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool Executable(const char* path) { return access(path, X_OK) == 0; }

bool HasPyftpdlib() {
  return Executable("/usr/bin/python3") &&
         std::system("/usr/bin/python3 -c 'import pyftpdlib' >/dev/null 2>&1") == 0;
}

bool PortFree(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  bool free = bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  close(fd);
  return free;
}

uint16_t FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

// Returns "FROM:TO" for `count` consecutive free ports.
std::string FreePortRange(int count) {
  for (int attempt = 0; attempt < 50; ++attempt) {
    uint16_t first = FreePort();
    if (first > 65535 - count) continue;
    bool all_free = true;
    for (int i = 0; i < count && all_free; ++i) all_free = PortFree(first + i);
    if (all_free) return std::to_string(first) + ":" + std::to_string(first + count - 1);
  }
  return "";
}

bool Accepts(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  close(fd);
  return ok;
}

// Creates `dir` with kBigFolderFiles small files, once per test process.
void MakeBigFolder(const std::string& dir) {
  if (access(dir.c_str(), F_OK) == 0) return;
  MakeDirs(dir);
  for (size_t i = 0; i < kBigFolderFiles; ++i) {
    WriteFile(dir + "/invoice-" + std::to_string(i) + ".xml", "x");
  }
}

void SetMtime(const std::string& path, int64_t seconds) {
  timespec times[2] = {{seconds, 0}, {seconds, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << path;
}

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ServerProcess runs a fixture script in its own process group, so that
// Stop also ends the session processes a server forks.
class ServerProcess {
 public:
  ServerProcess() = default;
  ~ServerProcess() { Stop(); }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Starts `argv` with `env` ("NAME=value") added to the environment and
  // its output appended to `log_path`, and waits until `port` accepts.
  ::testing::AssertionResult Start(const std::vector<std::string>& argv,
                                   const std::vector<std::string>& env,
                                   const std::string& log_path, uint16_t port) {
    Stop();
    log_path_ = log_path;
    std::vector<char*> args;
    for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    std::vector<std::string> env_strings;
    for (char** item = environ; *item != nullptr; ++item) env_strings.emplace_back(*item);
    env_strings.insert(env_strings.end(), env.begin(), env.end());
    std::vector<char*> envp;
    for (std::string& item : env_strings) envp.push_back(item.data());
    envp.push_back(nullptr);

    pid_t pid = fork();
    if (pid < 0) return ::testing::AssertionFailure() << "fork failed";
    if (pid == 0) {
      setpgid(0, 0);
      int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      int null = open("/dev/null", O_RDONLY);
      if (log >= 0) {
        dup2(log, 1);
        dup2(log, 2);
      }
      if (null >= 0) dup2(null, 0);
      execve(args[0], args.data(), envp.data());
      _exit(127);
    }
    setpgid(pid, pid);
    pid_ = pid;

    auto deadline = Clock::now() + std::chrono::seconds(20);
    while (Clock::now() < deadline) {
      if (Accepts(port)) return ::testing::AssertionSuccess();
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return ::testing::AssertionFailure()
               << argv[0] << " exited before accepting on port " << port << "; its log:\n"
               << ReadText(log_path_);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return ::testing::AssertionFailure() << argv[0] << " did not accept on port " << port
                                         << " within 20 s; its log:\n" << ReadText(log_path_);
  }

  // Ends the process group: SIGTERM, then SIGKILL after 3 seconds.
  void Stop() {
    if (pid_ <= 0) return;
    kill(-pid_, SIGTERM);
    auto deadline = Clock::now() + std::chrono::seconds(3);
    int status = 0;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (Clock::now() > deadline) {
        kill(-pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    kill(-pid_, SIGKILL);  // session processes left in the group
    pid_ = -1;
  }

  // Waits for the process to exit by itself.
  bool WaitExit(std::chrono::seconds timeout) {
    auto deadline = Clock::now() + timeout;
    int status = 0;
    while (pid_ > 0 && Clock::now() < deadline) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        kill(-pid_, SIGKILL);
        pid_ = -1;
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return pid_ <= 0;
  }

  std::string Log() const { return ReadText(log_path_); }

 private:
  pid_t pid_ = -1;
  std::string log_path_;
};

// CountingSink counts listings and entries without an index.
class CountingSink : public ListingSink {
 public:
  Status Accept(DirListing&& listing) override {
    ++listings;
    if (!listing.status.ok()) ++failed;
    entries += listing.entries.size();
    return Status::Ok();
  }
  uint64_t listings = 0;
  uint64_t failed = 0;
  uint64_t entries = 0;
};

struct ScanOutcome {
  Status status;
  ScanTotals totals;
  ScanSummary summary;
};

// FtpFixture owns the index that one test scans into and reads the feed of.
class FtpFixture : public ::testing::Test {
 protected:
  void OpenIndex(const std::string& source_url) {
    IndexOptions options;
    options.dir = scratch_.Sub("index");
    options.durable = false;
    auto opened = Index::Open(options);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    index_ = std::move(*opened);
    auto root = index_->AddRoot("ftp", source_url);
    ASSERT_TRUE(root.ok()) << root.status().ToString();
    root_ = *root;
  }

  std::unique_ptr<Source> MakeSource(const RemoteOptions& options) {
    auto created = MakeFtpSource(options);
    EXPECT_TRUE(created.ok()) << created.status().ToString();
    return created.ok() ? std::move(*created) : nullptr;
  }

  ScanOutcome Scan(Source& source, ScanRequest request = {}, ScanOptions options = {}) {
    ScanOutcome outcome;
    auto session = index_->BeginScan(root_, options);
    std::atomic<bool> stop{false};
    auto totals = source.Scan(request, *session, stop);
    if (totals.ok()) {
      outcome.totals = *totals;
    } else {
      outcome.status = totals.status();
    }
    auto summary = session->Finish(outcome.status);
    EXPECT_TRUE(summary.ok()) << summary.status().ToString();
    if (summary.ok()) outcome.summary = *summary;
    return outcome;
  }

  ::testing::AssertionResult ScanOk(Source& source) {
    ScanOutcome outcome = Scan(source);
    if (outcome.status.ok()) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "scan failed: " << outcome.status.ToString();
  }

  // Returns the changes since the previous call, as "op path" (renames as
  // "renamed old -> new"), in feed order.
  std::vector<std::string> NewChanges() {
    std::vector<std::string> out;
    for (;;) {
      auto page = index_->ReadChanges(root_, cursor_, 100'000, "");
      EXPECT_TRUE(page.ok()) << page.status().ToString();
      if (!page.ok()) break;
      for (const Change& change : page->changes) {
        std::string text = std::string(ChangeOpName(change.op)) + " ";
        if (change.op == ChangeOp::kRenamed) text += change.old_path + " -> ";
        out.push_back(text + change.path);
      }
      cursor_ = page->cursor;
      if (!page->more) break;
    }
    return out;
  }

  static std::vector<std::string> Sorted(std::vector<std::string> items) {
    std::sort(items.begin(), items.end());
    return items;
  }

  // Returns every indexed path below the root, sorted.
  std::vector<std::string> IndexedPaths() {
    std::vector<std::string> out;
    FilesQuery query;
    query.limit = 100'000;
    for (;;) {
      auto page = index_->ListFiles(root_, query);
      EXPECT_TRUE(page.ok()) << page.status().ToString();
      if (!page.ok()) break;
      for (const Entry& entry : page->entries) out.push_back(entry.path);
      if (page->next.empty()) break;
      query.after = page->next;
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  std::optional<Entry> StatPath(std::string_view path) {
    auto found = index_->Stat(root_, path);
    EXPECT_TRUE(found.ok()) << found.status().ToString();
    return found.ok() ? *found : std::nullopt;
  }

  uint64_t IndexedFiles() {
    auto root = index_->GetRoot("ftp");
    EXPECT_TRUE(root.ok());
    return root.ok() ? root->files : 0;
  }

  ScratchDir scratch_;
  std::unique_ptr<Index> index_;
  uint32_t root_ = 0;
  std::string cursor_;
};

// Checks that `changes` record `old_path` going away and `new_path`
// arriving: as a rename, or as a deletion plus an addition.
::testing::AssertionResult MovedTo(const std::vector<std::string>& changes,
                                   const std::string& old_path, const std::string& new_path) {
  auto has = [&](const std::string& text) {
    return std::find(changes.begin(), changes.end(), text) != changes.end();
  };
  if (has("renamed " + old_path + " -> " + new_path)) return ::testing::AssertionSuccess();
  if (has("deleted " + old_path) && has("added " + new_path)) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "no rename or delete+add of " << old_path << " to "
                                       << new_path;
}

// ---- pure-ftpd: MLSD

// PureFtpTest shares one pure-ftpd for the suite. Each test lists its own
// folder under the served root.
class PureFtpTest : public FtpFixture {
 protected:
  static void SetUpTestSuite() {
    if (!Executable("/usr/sbin/pure-ftpd") || !Executable("/usr/bin/pure-pw")) {
      skip_reason_ = new std::string("pure-ftpd is not installed (apt-get install pure-ftpd)");
      return;
    }
    suite_dir_ = new ScratchDir();
    served_ = new std::string(suite_dir_->Sub("served"));
    MakeDirs(*served_);
    chmod(served_->c_str(), 0755);
    password_file_ = new std::string(suite_dir_->Sub("password"));
    WriteFile(*password_file_, std::string(kPassword) + "\n");
    chmod(password_file_->c_str(), 0600);

    server_ = new ServerProcess();
    port_ = FreePort();
    auto started = StartServer(*server_, port_, {});
    if (!started) setup_error_ = new std::string(started.message());
  }

  static void TearDownTestSuite() {
    delete server_;
    delete suite_dir_;
    delete served_;
    delete password_file_;
    delete skip_reason_;
    delete setup_error_;
    server_ = nullptr;
    suite_dir_ = nullptr;
    served_ = nullptr;
    password_file_ = nullptr;
    skip_reason_ = nullptr;
    setup_error_ = nullptr;
  }

  static ::testing::AssertionResult StartServer(ServerProcess& server, uint16_t port,
                                                std::vector<std::string> extra) {
    std::string passive = FreePortRange(20);
    std::vector<std::string> argv = {ServerScript("ftp_pure.sh"),
                                     "--root", *served_,
                                     "--state", suite_dir_->Sub("state-" + std::to_string(port)),
                                     "--port", std::to_string(port),
                                     "--user", kUser,
                                     "--password-file", *password_file_,
                                     "--passive", passive};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return server.Start(argv, {}, suite_dir_->Sub("pure-ftpd-" + std::to_string(port) + ".log"),
                        port);
  }

  void SetUp() override {
    if (skip_reason_ != nullptr) GTEST_SKIP() << *skip_reason_;
    ASSERT_EQ(setup_error_, nullptr) << *setup_error_;
    folder_ = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    dir_ = *served_ + "/" + folder_;
    MakeDirs(dir_);
  }

  RemoteOptions Options(uint16_t port = 0, const std::string& folder = "") const {
    RemoteOptions options;
    options.url = "ftp://" + std::string(kUser) + "@127.0.0.1:" +
                  std::to_string(port != 0 ? port : port_) + "/" +
                  (folder.empty() ? folder_ : folder);
    options.password_file = *password_file_;
    options.operation_timeout = std::chrono::milliseconds(10'000);
    return options;
  }

  static std::string* skip_reason_;
  static std::string* setup_error_;
  static ScratchDir* suite_dir_;
  static std::string* served_;
  static std::string* password_file_;
  static ServerProcess* server_;
  static uint16_t port_;

  std::string folder_;  // this test's folder below the served root
  std::string dir_;     // its local path
};

std::string* PureFtpTest::skip_reason_ = nullptr;
std::string* PureFtpTest::setup_error_ = nullptr;
ScratchDir* PureFtpTest::suite_dir_ = nullptr;
std::string* PureFtpTest::served_ = nullptr;
std::string* PureFtpTest::password_file_ = nullptr;
ServerProcess* PureFtpTest::server_ = nullptr;
uint16_t PureFtpTest::port_ = 0;

TEST_F(PureFtpTest, BigFolderListedExactly) {
  MakeBigFolder(*served_ + "/big");
  RemoteOptions options = Options(0, "big");
  OpenIndex(options.url);
  auto source = MakeSource(options);
  ASSERT_NE(source, nullptr);

  ScanOutcome first = Scan(*source);
  ASSERT_TRUE(first.status.ok()) << first.status.ToString();
  EXPECT_EQ(first.totals.files, kBigFolderFiles);
  EXPECT_EQ(first.totals.failed_dirs, 0u);
  EXPECT_EQ(IndexedFiles(), kBigFolderFiles);
  std::vector<std::string> changes = NewChanges();
  EXPECT_EQ(changes.size(), kBigFolderFiles);
  EXPECT_EQ(std::count_if(changes.begin(), changes.end(),
                          [](const std::string& c) { return c.starts_with("added "); }),
            static_cast<long>(kBigFolderFiles));

  ScanOutcome again = Scan(*source);
  ASSERT_TRUE(again.status.ok()) << again.status.ToString();
  EXPECT_EQ(again.summary.changes, 0u);
  EXPECT_TRUE(NewChanges().empty());

  std::map<std::string, std::string> details;
  for (const SourceDetail& detail : source->Details()) details[detail.key] = detail.text;
  EXPECT_EQ(details["mlsd"], "yes");
  EXPECT_EQ(details["utf8"], "yes");
  EXPECT_EQ(details["listing_command"], "MLSD");
  EXPECT_EQ(details["connection"], "connected");
}

TEST_F(PureFtpTest, DetailsReadDuringScan) {
  for (int i = 0; i < 20; ++i) {
    std::string sub = dir_ + "/d" + std::to_string(i);
    MakeDirs(sub);
    WriteFile(sub + "/f", "f");
  }
  RemoteOptions options = Options();
  OpenIndex(options.url);
  auto source = MakeSource(options);
  ASSERT_NE(source, nullptr);

  std::atomic<bool> done{false};
  std::atomic<uint64_t> reads{0};
  std::thread reader([&] {
    while (!done.load()) {
      std::vector<SourceDetail> details = source->Details();
      if (!details.empty()) ++reads;
    }
  });
  ScanOutcome first = Scan(*source);
  ScanOutcome second = Scan(*source);
  done = true;
  reader.join();
  ASSERT_TRUE(first.status.ok()) << first.status.ToString();
  ASSERT_TRUE(second.status.ok()) << second.status.ToString();
  EXPECT_EQ(second.totals.dirs, 21u);
  EXPECT_GT(reads.load(), 0u);
}

TEST_F(PureFtpTest, SettleWaitsThenAnnouncesOnce) {
  WriteFile(dir_ + "/old.xml", "old");
  SetMtime(dir_ + "/old.xml", NowSeconds() - 3600);
  RemoteOptions options = Options();
  OpenIndex(options.url);
  auto source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  ScanOptions settle;
  settle.settle = std::chrono::milliseconds(700);
  ASSERT_TRUE(Scan(*source, {}, settle).status.ok());
  EXPECT_EQ(NewChanges(), (std::vector<std::string>{"added old.xml"}));

  // A file just written waits. Listing its directory alone is enough to
  // look at it again, as the scheduler does once the settle time is over.
  WriteFile(dir_ + "/in.xml", "<order/>");
  ASSERT_TRUE(Scan(*source, {}, settle).status.ok());
  EXPECT_TRUE(NewChanges().empty());
  auto waiting = StatPath("in.xml");
  ASSERT_TRUE(waiting.has_value());
  EXPECT_FALSE(waiting->stable);
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  ScanRequest relist;
  relist.dirs = {""};
  relist.recursive = false;
  ASSERT_TRUE(Scan(*source, relist, settle).status.ok());
  EXPECT_EQ(NewChanges(), (std::vector<std::string>{"added in.xml"}));
  EXPECT_TRUE(StatPath("in.xml")->stable);
}

TEST_F(PureFtpTest, ChangesBetweenListings) {
  const int64_t base = NowSeconds() - 3600;
  for (const char* name : {"a.xml", "b.xml", "c.xml", "d.xml"}) {
    WriteFile(dir_ + "/" + name, "0123456789");
    SetMtime(dir_ + "/" + name, base);
  }
  MakeDirs(dir_ + "/sub");
  WriteFile(dir_ + "/sub/deep.xml", "1");

  RemoteOptions options = Options();
  OpenIndex(options.url);
  auto source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  ScanOutcome first = Scan(*source);
  ASSERT_TRUE(first.status.ok()) << first.status.ToString();
  EXPECT_EQ(Sorted(NewChanges()),
            (std::vector<std::string>{"added a.xml", "added b.xml", "added c.xml", "added d.xml",
                                      "added sub", "added sub/deep.xml"}));
  auto a = StatPath("a.xml");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->size, 10u);
  EXPECT_EQ(a->mtime_ns, base * 1'000'000'000);

  WriteFile(dir_ + "/a.xml", "01234567890123456789");  // size changes
  SetMtime(dir_ + "/a.xml", base);
  SetMtime(dir_ + "/b.xml", base + 5);  // same size, MLSD shows seconds
  ASSERT_EQ(unlink((dir_ + "/c.xml").c_str()), 0);
  ASSERT_EQ(rename((dir_ + "/d.xml").c_str(), (dir_ + "/d.xml.success").c_str()), 0);
  WriteFile(dir_ + "/e.xml", "new");
  WriteFile(dir_ + "/sub/deep.xml", "22");

  ScanOutcome second = Scan(*source);
  ASSERT_TRUE(second.status.ok()) << second.status.ToString();
  std::vector<std::string> changes = NewChanges();
  auto has = [&](const std::string& text) {
    return std::find(changes.begin(), changes.end(), text) != changes.end();
  };
  EXPECT_TRUE(has("modified a.xml"));
  EXPECT_TRUE(has("modified b.xml"));
  EXPECT_TRUE(has("deleted c.xml"));
  EXPECT_TRUE(has("added e.xml"));
  EXPECT_TRUE(has("modified sub/deep.xml"));
  // MLSD sends the unique fact, so the rename is known, not guessed.
  EXPECT_TRUE(has("renamed d.xml -> d.xml.success")) << ::testing::PrintToString(changes);
  EXPECT_EQ(changes.size(), 6u) << ::testing::PrintToString(changes);

  ScanOutcome third = Scan(*source);
  ASSERT_TRUE(third.status.ok()) << third.status.ToString();
  EXPECT_TRUE(NewChanges().empty());
}

TEST_F(PureFtpTest, OddNamesKeptExactly) {
  const std::vector<std::string> names = {
      "with space.txt", " lead.txt", "trail.txt ", "semi;c=d.txt", "-dash.txt",
      "zażółć gęślą.txt", "caf\xe9.txt", "a -> b", "100%.txt", "#hash?.txt", ".hidden"};
  for (const std::string& name : names) WriteFile(dir_ + "/" + name, name);
  // Directories whose CWD paths have spaces, a leading dash, '%', ';' or '='.
  for (const std::string& sub : {std::string("sub dir"), std::string("-dir"),
                                 std::string("100% ;x=y"), std::string("ünï")}) {
    MakeDirs(dir_ + "/" + sub);
    WriteFile(dir_ + "/" + sub + "/inner file.txt", "i");
  }

  RemoteOptions options = Options();
  OpenIndex(options.url);
  auto source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  ScanOutcome outcome = Scan(*source);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  EXPECT_EQ(outcome.totals.failed_dirs, 0u);

  std::vector<std::string> expected = names;
  for (const char* sub : {"sub dir", "-dir", "100% ;x=y", "ünï"}) {
    expected.push_back(sub);
    expected.push_back(std::string(sub) + "/inner file.txt");
  }
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(IndexedPaths(), expected);
}

TEST_F(PureFtpTest, WrongPasswordKeepsEntries) {
  WriteFile(dir_ + "/kept.xml", "k");
  RemoteOptions options = Options();
  OpenIndex(options.url);
  auto source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  ASSERT_TRUE(ScanOk(*source));
  NewChanges();

  std::string wrong = scratch_.Sub("wrong-password");
  WriteFile(wrong, "not the password\n");
  RemoteOptions bad = options;
  bad.password_file = wrong;
  auto bad_source = MakeSource(bad);
  ASSERT_NE(bad_source, nullptr);
  ScanOutcome outcome = Scan(*bad_source);
  ASSERT_FALSE(outcome.status.ok());
  EXPECT_EQ(outcome.status.code(), StatusCode::kPermissionDenied) << outcome.status.ToString();
  const std::string& message = outcome.status.message();
  EXPECT_NE(message.find("password_file '" + wrong + "'"), std::string::npos) << message;
  EXPECT_EQ(message.find("not the password"), std::string::npos) << message;
  EXPECT_TRUE(NewChanges().empty());
  EXPECT_EQ(IndexedPaths(), (std::vector<std::string>{"kept.xml"}));

  auto root = index_->GetRoot("ftp");
  ASSERT_TRUE(root.ok());
  EXPECT_NE(root->last_error.find("password_file"), std::string::npos) << root->last_error;
}

TEST_F(PureFtpTest, ConnectionReusedAcrossDirectoriesAndScans) {
  for (const char* sub : {"one", "two", "three", "two/nested"}) {
    MakeDirs(dir_ + "/" + sub);
    WriteFile(dir_ + "/" + sub + "/f", "f");
  }
  RemoteOptions options = Options();
  OpenIndex(options.url);
  auto source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  for (int scan = 0; scan < 3; ++scan) {
    ScanOutcome outcome = Scan(*source);
    ASSERT_TRUE(outcome.status.ok()) << outcome.status.ToString();
    EXPECT_EQ(outcome.totals.dirs, 5u);
  }
  double connects = -1;
  for (const SourceDetail& detail : source->Details()) {
    if (detail.key == "connects") connects = detail.number;
  }
  EXPECT_EQ(connects, 1);
}

TEST_F(PureFtpTest, MaxDepthStopsRecursion) {
  MakeDirs(dir_ + "/a/b/c");
  WriteFile(dir_ + "/top.txt", "t");
  WriteFile(dir_ + "/a/in-a.txt", "a");
  WriteFile(dir_ + "/a/b/in-b.txt", "b");
  RemoteOptions options = Options();
  options.max_depth = 1;
  OpenIndex(options.url);
  auto source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  ScanOutcome outcome = Scan(*source);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  EXPECT_EQ(IndexedPaths(), (std::vector<std::string>{"a", "a/b", "a/in-a.txt", "top.txt"}));
}

TEST_F(PureFtpTest, RequestedMissingDirectoryListsParent) {
  MakeDirs(dir_ + "/gone");
  WriteFile(dir_ + "/gone/x.txt", "x");
  WriteFile(dir_ + "/stays.txt", "s");
  RemoteOptions options = Options();
  OpenIndex(options.url);
  auto source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  ASSERT_TRUE(ScanOk(*source));
  NewChanges();

  testing::RemoveTree(dir_ + "/gone");
  ScanRequest request;
  request.dirs = {"gone"};
  ScanOutcome outcome = Scan(*source, request);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  EXPECT_EQ(Sorted(NewChanges()), (std::vector<std::string>{"deleted gone", "deleted gone/x.txt"}));
  EXPECT_EQ(IndexedPaths(), (std::vector<std::string>{"stays.txt"}));
}

TEST_F(PureFtpTest, TruncatedListingKeepsEntries) {
  MakeDirs(dir_ + "/many");
  for (int i = 0; i < 60; ++i) WriteFile(dir_ + "/many/f" + std::to_string(i), "x");
  RemoteOptions options = Options();
  OpenIndex(options.url);
  auto source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  ASSERT_TRUE(ScanOk(*source));
  EXPECT_EQ(IndexedFiles(), 60u);
  NewChanges();

  // The same folder through a server that stops listings at 50 names.
  ServerProcess capped;
  uint16_t capped_port = FreePort();
  ASSERT_TRUE(StartServer(capped, capped_port, {"--max-files", "50"}));
  auto capped_source = MakeSource(Options(capped_port));
  ASSERT_NE(capped_source, nullptr);
  ScanOutcome outcome = Scan(*capped_source);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  EXPECT_EQ(outcome.totals.failed_dirs, 1u);
  EXPECT_TRUE(NewChanges().empty());
  EXPECT_EQ(IndexedFiles(), 60u);
  auto root = index_->GetRoot("ftp");
  ASSERT_TRUE(root.ok());
  EXPECT_NE(root->last_error.find("truncated"), std::string::npos) << root->last_error;
}

TEST_F(PureFtpTest, ServerRestartRecovers) {
  WriteFile(dir_ + "/before.txt", "b");
  ServerProcess own;
  uint16_t own_port = FreePort();
  ASSERT_TRUE(StartServer(own, own_port, {}));
  RemoteOptions options = Options(own_port);
  OpenIndex(options.url);
  auto source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  ASSERT_TRUE(ScanOk(*source));
  NewChanges();

  own.Stop();
  WriteFile(dir_ + "/during.txt", "d");
  ScanOutcome down = Scan(*source);
  ASSERT_FALSE(down.status.ok());
  EXPECT_EQ(down.status.code(), StatusCode::kUnavailable) << down.status.ToString();
  EXPECT_TRUE(NewChanges().empty());
  EXPECT_EQ(IndexedPaths(), (std::vector<std::string>{"before.txt"}));

  ASSERT_TRUE(StartServer(own, own_port, {}));
  ScanOutcome up = Scan(*source);
  ASSERT_TRUE(up.status.ok()) << up.status.ToString();
  EXPECT_EQ(NewChanges(), (std::vector<std::string>{"added during.txt"}));
}

// Returns the path of a PEM file with a new self-signed key and
// certificate for 127.0.0.1, and writes the certificate alone to
// `cert_path`.
std::string MakeCertificate(const ScratchDir& dir, const std::string& cert_path) {
  std::string key = dir.Sub("tls-key.pem");
  std::string command = "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1"
                        " -addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout '" +
                        key + "' -out '" + cert_path + "' >/dev/null 2>&1";
  if (std::system(command.c_str()) != 0) return "";
  std::string bundle = dir.Sub("pure-ftpd.pem");
  WriteFile(bundle, ReadText(key) + ReadText(cert_path));
  chmod(bundle.c_str(), 0600);
  return bundle;
}

TEST_F(PureFtpTest, FtpsWithCaFileLists) {
  WriteFile(dir_ + "/secret-report.xml", "s");
  std::string cert = scratch_.Sub("tls-cert.pem");
  std::string bundle = MakeCertificate(scratch_, cert);
  ASSERT_FALSE(bundle.empty()) << "openssl could not make a certificate";
  ServerProcess tls;
  uint16_t tls_port = FreePort();
  ASSERT_TRUE(StartServer(tls, tls_port, {"--tls", bundle}));

  RemoteOptions options = Options(tls_port);
  options.url.replace(0, 3, "ftps");
  options.ca_file = cert;
  OpenIndex(options.url);
  auto source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  ScanOutcome outcome = Scan(*source);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  EXPECT_EQ(IndexedPaths(), (std::vector<std::string>{"secret-report.xml"}));
  std::map<std::string, std::string> details;
  for (const SourceDetail& detail : source->Details()) details[detail.key] = detail.text;
  EXPECT_EQ(details["tls"], "explicit (AUTH TLS)");
  EXPECT_EQ(details["auth_tls"], "yes");

  // Without the CA file the self-signed certificate is rejected.
  RemoteOptions untrusted = options;
  untrusted.ca_file.clear();
  auto untrusted_source = MakeSource(untrusted);
  ASSERT_NE(untrusted_source, nullptr);
  ScanOutcome rejected = Scan(*untrusted_source);
  ASSERT_FALSE(rejected.status.ok());
  EXPECT_EQ(rejected.status.code(), StatusCode::kPermissionDenied) << rejected.status.ToString();
  EXPECT_NE(rejected.status.message().find("ca_file"), std::string::npos);

  // Plain FTP to a server that requires TLS fails without deletions.
  RemoteOptions plain = Options(tls_port);
  auto plain_source = MakeSource(plain);
  ASSERT_NE(plain_source, nullptr);
  EXPECT_FALSE(Scan(*plain_source).status.ok());
  EXPECT_EQ(IndexedPaths(), (std::vector<std::string>{"secret-report.xml"}));
}

// Times one listing of the 20,000-file folder: raw bytes with libcurl
// alone, and the source's path (connection, parser, name checks). Prints
// the medians; the bound is loose because other work may share the CPU.
TEST_F(PureFtpTest, ListingSpeedNearRawTransfer) {
  constexpr int kRuns = 7;
  MakeBigFolder(*served_ + "/big");
  FtpSettings settings;
  settings.host = "127.0.0.1";
  settings.port = port_;
  settings.user = kUser;
  settings.password_file = *password_file_;
  settings.root_path = "big";

  auto median = [](std::vector<double> values) {
    std::sort(values.begin(), values.end());
    return values[values.size() / 2];
  };
  auto raw = [&](const char* command) {
    auto start = Clock::now();
    CURL* curl = curl_easy_init();
    std::string url = "ftp://127.0.0.1:" + std::to_string(port_) + "/big/";
    size_t bytes = 0;
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_USERNAME, kUser);
    curl_easy_setopt(curl, CURLOPT_PASSWORD, kPassword);
    if (command != nullptr) curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, command);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &bytes);
    curl_easy_setopt(
        curl, CURLOPT_WRITEFUNCTION, +[](char*, size_t size, size_t count, void* user) {
          *static_cast<size_t*>(user) += size * count;
          return size * count;
        });
    CURLcode code = curl_easy_perform(curl);
    curl_easy_cleanup(curl);
    double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    EXPECT_EQ(code, CURLE_OK);
    EXPECT_GT(bytes, kBigFolderFiles * 20);
    return seconds;
  };
  auto parsed = [&](ListingFormat format) {
    auto start = Clock::now();
    FtpConnection connection(settings);
    std::atomic<bool> stop{false};
    Status connected = connection.Connect(stop);
    EXPECT_TRUE(connected.ok()) << connected.ToString();
    ListingParser parser(format, ListTimeContext{NowSeconds(), nullptr});
    std::function<void(std::string_view)> feed = [&](std::string_view data) {
      parser.Feed(data);
    };
    Status listed = connection.List("", format, feed, stop);
    auto entries = parser.Finish();
    double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    EXPECT_TRUE(listed.ok()) << listed.ToString();
    EXPECT_TRUE(entries.ok()) << entries.status().ToString();
    if (entries.ok()) {
      EXPECT_EQ(entries->size(), kBigFolderFiles);
    }
    return seconds;
  };
  auto source_scan = [&] {
    auto start = Clock::now();
    auto source = MakeSource(Options(0, "big"));
    CountingSink sink;
    std::atomic<bool> stop{false};
    auto totals = source->Scan(ScanRequest{}, sink, stop);
    double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    EXPECT_TRUE(totals.ok()) << totals.status().ToString();
    EXPECT_EQ(sink.entries, kBigFolderFiles);
    return seconds;
  };

  // The kinds take turns, so a burst of other load hits all of them alike.
  std::vector<double> raw_mlsd_runs, raw_list_runs, parsed_mlsd_runs, parsed_list_runs, scan_runs;
  for (int run = 0; run < kRuns; ++run) {
    raw_mlsd_runs.push_back(raw("MLSD"));
    parsed_mlsd_runs.push_back(parsed(ListingFormat::kMlsd));
    raw_list_runs.push_back(raw(nullptr));
    parsed_list_runs.push_back(parsed(ListingFormat::kList));
    scan_runs.push_back(source_scan());
  }
  double raw_mlsd = median(raw_mlsd_runs);
  double raw_list = median(raw_list_runs);
  double parsed_mlsd = median(parsed_mlsd_runs);
  double parsed_list = median(parsed_list_runs);
  double scan_mlsd = median(scan_runs);
  std::printf("20,000 files on pure-ftpd, median of %d, each with a new connection and login:\n"
              "  raw MLSD    %.4f s\n  parsed MLSD %.4f s (%.2fx)\n"
              "  raw LIST    %.4f s\n  parsed LIST %.4f s (%.2fx)\n"
              "  FtpSource::Scan (MLSD) %.4f s (%.2fx)\n",
              kRuns, raw_mlsd, parsed_mlsd, parsed_mlsd / raw_mlsd, raw_list, parsed_list,
              parsed_list / raw_list, scan_mlsd, scan_mlsd / raw_mlsd);
  if (kSanitizerBuild) return;
  EXPECT_LT(parsed_mlsd, 3 * raw_mlsd + 0.05);
  EXPECT_LT(parsed_list, 3 * raw_list + 0.05);
}

// ---- pyftpdlib: LIST and faults

// PyFtpTest shares one pyftpdlib server with MLSD switched off, so the
// source lists with LIST. Faults are switched on by files in control_.
class PyFtpTest : public FtpFixture {
 protected:
  static void SetUpTestSuite() {
    if (!HasPyftpdlib()) {
      skip_reason_ = new std::string(
          "pyftpdlib is not installed for /usr/bin/python3 (apt-get install python3-pyftpdlib)");
      return;
    }
    suite_dir_ = new ScratchDir();
    served_ = new std::string(suite_dir_->Sub("served"));
    control_ = new std::string(suite_dir_->Sub("control"));
    MakeDirs(*served_);
    MakeDirs(*control_);
    password_file_ = new std::string(suite_dir_->Sub("password"));
    WriteFile(*password_file_, std::string(kPassword) + "\n");
    server_ = new ServerProcess();
    port_ = FreePort();
    auto started = StartServer(*server_, port_, {"--no-mlsd"}, {});
    if (!started) setup_error_ = new std::string(started.message());
  }

  static void TearDownTestSuite() {
    delete server_;
    delete suite_dir_;
    delete served_;
    delete control_;
    delete password_file_;
    delete skip_reason_;
    delete setup_error_;
    server_ = nullptr;
    suite_dir_ = nullptr;
    served_ = nullptr;
    control_ = nullptr;
    password_file_ = nullptr;
    skip_reason_ = nullptr;
    setup_error_ = nullptr;
  }

  static ::testing::AssertionResult StartServer(ServerProcess& server, uint16_t port,
                                                std::vector<std::string> extra,
                                                std::vector<std::string> env) {
    std::vector<std::string> argv = {ServerScript("ftp_py.sh"),
                                     "--root", *served_,
                                     "--port", std::to_string(port),
                                     "--user", kUser,
                                     "--password-file", *password_file_,
                                     "--control", *control_};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return server.Start(argv, env, suite_dir_->Sub("pyftpdlib-" + std::to_string(port) + ".log"),
                        port);
  }

  void SetUp() override {
    if (skip_reason_ != nullptr) GTEST_SKIP() << *skip_reason_;
    ASSERT_EQ(setup_error_, nullptr) << *setup_error_;
    folder_ = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    dir_ = *served_ + "/" + folder_;
    MakeDirs(dir_);
  }

  void TearDown() override {
    if (control_ == nullptr) return;
    for (const char* fault : {"cut", "stall", "bad", "dos", "slash"}) {
      unlink((*control_ + "/" + fault).c_str());
    }
  }

  // Switches `fault` on for listings of `dir` (relative to the served root).
  void SetFault(const char* fault, const std::string& dir) {
    WriteFile(*control_ + "/" + fault, dir);
  }
  void ClearFault(const char* fault) { unlink((*control_ + "/" + fault).c_str()); }

  RemoteOptions Options(uint16_t port = 0, const std::string& folder = "") const {
    RemoteOptions options;
    options.url = "ftp://" + std::string(kUser) + "@127.0.0.1:" +
                  std::to_string(port != 0 ? port : port_) + "/" +
                  (folder.empty() ? folder_ : folder);
    options.password_file = *password_file_;
    options.operation_timeout = std::chrono::milliseconds(10'000);
    return options;
  }

  static std::string* skip_reason_;
  static std::string* setup_error_;
  static ScratchDir* suite_dir_;
  static std::string* served_;
  static std::string* control_;
  static std::string* password_file_;
  static ServerProcess* server_;
  static uint16_t port_;

  std::string folder_;
  std::string dir_;
};

std::string* PyFtpTest::skip_reason_ = nullptr;
std::string* PyFtpTest::setup_error_ = nullptr;
ScratchDir* PyFtpTest::suite_dir_ = nullptr;
std::string* PyFtpTest::served_ = nullptr;
std::string* PyFtpTest::control_ = nullptr;
std::string* PyFtpTest::password_file_ = nullptr;
ServerProcess* PyFtpTest::server_ = nullptr;
uint16_t PyFtpTest::port_ = 0;

TEST_F(PyFtpTest, ListBigFolderExactly) {
  MakeBigFolder(*served_ + "/big");
  RemoteOptions options = Options(0, "big");
  OpenIndex(options.url);
  auto source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  ScanOutcome outcome = Scan(*source);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  EXPECT_EQ(outcome.totals.files, kBigFolderFiles);
  EXPECT_EQ(IndexedFiles(), kBigFolderFiles);
  EXPECT_EQ(NewChanges().size(), kBigFolderFiles);
  std::map<std::string, std::string> details;
  for (const SourceDetail& detail : source->Details()) details[detail.key] = detail.text;
  EXPECT_EQ(details["mlsd"], "no");
  EXPECT_EQ(details["listing_command"], "LIST");

  ScanOutcome again = Scan(*source);
  ASSERT_TRUE(again.status.ok()) << again.status.ToString();
  EXPECT_TRUE(NewChanges().empty());
}

TEST_F(PyFtpTest, ListChangesAtMinutePrecision) {
  // A whole minute two hours ago, plus ten seconds.
  const int64_t minute = (NowSeconds() - 7200) / 60 * 60;
  WriteFile(dir_ + "/a.xml", "aaaa");
  SetMtime(dir_ + "/a.xml", minute + 10);
  WriteFile(dir_ + "/gone.xml", "g");
  WriteFile(dir_ + "/d.xml", "d");
  SetMtime(dir_ + "/d.xml", minute);
  RemoteOptions options = Options();
  OpenIndex(options.url);
  auto source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  ASSERT_TRUE(ScanOk(*source));
  NewChanges();
  auto a = StatPath("a.xml");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->mtime_ns, minute * 1'000'000'000);
  EXPECT_EQ(a->size, 4u);

  // Within the same minute LIST shows nothing new.
  SetMtime(dir_ + "/a.xml", minute + 50);
  ASSERT_TRUE(ScanOk(*source));
  EXPECT_TRUE(NewChanges().empty());

  SetMtime(dir_ + "/a.xml", minute + 120);
  ASSERT_TRUE(ScanOk(*source));
  EXPECT_EQ(NewChanges(), (std::vector<std::string>{"modified a.xml"}));

  WriteFile(dir_ + "/a.xml", "aaaaaaaa");
  SetMtime(dir_ + "/a.xml", minute + 120);
  ASSERT_EQ(unlink((dir_ + "/gone.xml").c_str()), 0);
  WriteFile(dir_ + "/new.xml", "n");
  ASSERT_EQ(rename((dir_ + "/d.xml").c_str(), (dir_ + "/d.xml.failed").c_str()), 0);
  ASSERT_TRUE(ScanOk(*source));
  std::vector<std::string> changes = NewChanges();
  auto has = [&](const std::string& text) {
    return std::find(changes.begin(), changes.end(), text) != changes.end();
  };
  EXPECT_TRUE(has("modified a.xml"));
  EXPECT_TRUE(has("deleted gone.xml"));
  EXPECT_TRUE(has("added new.xml"));
  EXPECT_TRUE(MovedTo(changes, "d.xml", "d.xml.failed"));
}

TEST_F(PyFtpTest, ListOddNamesAndSymlink) {
  const std::vector<std::string> names = {"with space.txt", " lead.txt", "sp  ace",
                                          "-dash.txt", "zażółć.txt", "semi;c=d", "a -> b"};
  for (const std::string& name : names) WriteFile(dir_ + "/" + name, name);
  ASSERT_EQ(symlink("with space.txt", (dir_ + "/link").c_str()), 0);
  MakeDirs(dir_ + "/sub dir");
  WriteFile(dir_ + "/sub dir/inner", "i");

  RemoteOptions options = Options();
  OpenIndex(options.url);
  auto source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  ScanOutcome outcome = Scan(*source);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  std::vector<std::string> expected = names;
  expected.insert(expected.end(), {"link", "sub dir", "sub dir/inner"});
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(IndexedPaths(), expected);
  auto link = StatPath("link");
  ASSERT_TRUE(link.has_value());
  EXPECT_EQ(link->type, EntryType::kSymlink);
}

TEST_F(PyFtpTest, MalformedLineKeepsEntries) {
  MakeDirs(dir_ + "/sub");
  for (const char* name : {"one", "two", "three", "four"}) WriteFile(dir_ + "/sub/" + name, "x");
  WriteFile(dir_ + "/top", "t");
  RemoteOptions options = Options();
  OpenIndex(options.url);
  auto source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  ASSERT_TRUE(ScanOk(*source));
  NewChanges();

  ASSERT_EQ(unlink((dir_ + "/sub/one").c_str()), 0);
  SetFault("bad", folder_ + "/sub");
  ScanOutcome outcome = Scan(*source);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  EXPECT_EQ(outcome.totals.failed_dirs, 1u);
  EXPECT_TRUE(NewChanges().empty());
  EXPECT_EQ(IndexedFiles(), 5u);
  auto root = index_->GetRoot("ftp");
  ASSERT_TRUE(root.ok());
  EXPECT_NE(root->last_error.find("'this line is in no LIST format'"), std::string::npos)
      << root->last_error;

  ClearFault("bad");
  ASSERT_TRUE(ScanOk(*source));
  EXPECT_EQ(NewChanges(), (std::vector<std::string>{"deleted sub/one"}));
}

TEST_F(PyFtpTest, NameWithSlashSkipped) {
  for (const char* name : {"a", "b", "c", "d"}) WriteFile(dir_ + "/" + name, "x");
  SetFault("slash", folder_);
  RemoteOptions options = Options();
  OpenIndex(options.url);
  auto source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  ScanOutcome outcome = Scan(*source);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  EXPECT_EQ(outcome.totals.failed_dirs, 0u);
  EXPECT_EQ(IndexedPaths(), (std::vector<std::string>{"a", "b", "c", "d"}));

  // The same through MLSD.
  ServerProcess mlsd;
  uint16_t mlsd_port = FreePort();
  ASSERT_TRUE(StartServer(mlsd, mlsd_port, {}, {}));
  auto mlsd_source = MakeSource(Options(mlsd_port));
  ASSERT_NE(mlsd_source, nullptr);
  CountingSink sink;
  std::atomic<bool> stop{false};
  auto totals = mlsd_source->Scan(ScanRequest{}, sink, stop);
  ASSERT_TRUE(totals.ok()) << totals.status().ToString();
  EXPECT_EQ(sink.failed, 0u);
  EXPECT_EQ(sink.entries, 4u);
}

TEST_F(PyFtpTest, ServerKilledMidListingRecovers) {
  ServerProcess own;
  uint16_t own_port = FreePort();
  ASSERT_TRUE(StartServer(own, own_port, {"--no-mlsd"}, {}));
  MakeDirs(dir_ + "/sub");
  for (int i = 0; i < 50; ++i) WriteFile(dir_ + "/sub/f" + std::to_string(i), "x");
  RemoteOptions options = Options(own_port);
  OpenIndex(options.url);
  auto source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  ASSERT_TRUE(ScanOk(*source));
  NewChanges();

  ASSERT_EQ(unlink((dir_ + "/sub/f7").c_str()), 0);
  WriteFile(dir_ + "/sub/added", "a");
  SetFault("cut", folder_ + "/sub");
  ScanOutcome cut = Scan(*source);
  EXPECT_TRUE(own.WaitExit(std::chrono::seconds(5))) << own.Log();
  EXPECT_FALSE(cut.status.ok() && cut.totals.failed_dirs == 0);
  EXPECT_TRUE(NewChanges().empty());
  EXPECT_EQ(IndexedFiles(), 50u);

  ClearFault("cut");
  ASSERT_TRUE(StartServer(own, own_port, {"--no-mlsd"}, {}));
  ScanOutcome recovered = Scan(*source);
  ASSERT_TRUE(recovered.status.ok()) << recovered.status.ToString();
  EXPECT_EQ(recovered.totals.failed_dirs, 0u);
  EXPECT_EQ(Sorted(NewChanges()),
            (std::vector<std::string>{"added sub/added", "deleted sub/f7"}));
}

TEST_F(PyFtpTest, StalledListingTimesOut) {
  MakeDirs(dir_ + "/slow");
  for (const char* name : {"one", "two", "three", "four"}) WriteFile(dir_ + "/slow/" + name, "x");
  ServerProcess own;
  uint16_t own_port = FreePort();
  ASSERT_TRUE(StartServer(own, own_port, {"--no-mlsd"}, {}));
  RemoteOptions options = Options(own_port);
  options.operation_timeout = std::chrono::milliseconds(1000);
  OpenIndex(options.url);
  auto source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  ASSERT_TRUE(ScanOk(*source));
  NewChanges();

  ASSERT_EQ(unlink((dir_ + "/slow/one").c_str()), 0);
  SetFault("stall", folder_ + "/slow");
  auto start = Clock::now();
  ScanOutcome stalled = Scan(*source);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  EXPECT_FALSE(stalled.status.ok() && stalled.totals.failed_dirs == 0);
  EXPECT_TRUE(NewChanges().empty());
  EXPECT_EQ(IndexedFiles(), 4u);
  auto root = index_->GetRoot("ftp");
  ASSERT_TRUE(root.ok());
  EXPECT_NE(root->last_error.find("timed_out"), std::string::npos) << root->last_error;

  ClearFault("stall");
  std::this_thread::sleep_for(std::chrono::seconds(5));  // the server sleeps that long
  ScanOutcome recovered = Scan(*source);
  ASSERT_TRUE(recovered.status.ok()) << recovered.status.ToString();
  EXPECT_EQ(NewChanges(), (std::vector<std::string>{"deleted slow/one"}));
}

TEST_F(PyFtpTest, DosListingParsed) {
  const int64_t minute = (NowSeconds() - 86'400) / 60 * 60;
  WriteFile(dir_ + "/file one.txt", "12345");
  SetMtime(dir_ + "/file one.txt", minute + 30);
  MakeDirs(dir_ + "/Sub Dir");
  WriteFile(dir_ + "/Sub Dir/inner.txt", "i");
  SetFault("dos", "");
  RemoteOptions options = Options();
  OpenIndex(options.url);
  auto source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  ScanOutcome outcome = Scan(*source);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  EXPECT_EQ(IndexedPaths(),
            (std::vector<std::string>{"Sub Dir", "Sub Dir/inner.txt", "file one.txt"}));
  auto file = StatPath("file one.txt");
  ASSERT_TRUE(file.has_value());
  EXPECT_EQ(file->type, EntryType::kFile);
  EXPECT_EQ(file->size, 5u);
  EXPECT_EQ(file->mtime_ns, minute * 1'000'000'000);
  auto dir = StatPath("Sub Dir");
  ASSERT_TRUE(dir.has_value());
  EXPECT_EQ(dir->type, EntryType::kDir);
}

TEST_F(PyFtpTest, ServerTimeZoneConvertsListTimes) {
  // Kathmandu is UTC+05:45 all year, so the expected shift is exact.
  const int64_t minute = (NowSeconds() - 7200) / 60 * 60;
  WriteFile(dir_ + "/f.txt", "f");
  SetMtime(dir_ + "/f.txt", minute);
  ServerProcess local;
  uint16_t local_port = FreePort();
  ASSERT_TRUE(StartServer(local, local_port, {"--no-mlsd", "--local-times"},
                          {"TZ=Asia/Kathmandu"}));

  RemoteOptions options = Options(local_port);
  options.server_timezone = "Asia/Kathmandu";
  OpenIndex(options.url);
  auto source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  ASSERT_TRUE(ScanOk(*source));
  auto zoned = StatPath("f.txt");
  ASSERT_TRUE(zoned.has_value());
  EXPECT_EQ(zoned->mtime_ns, minute * 1'000'000'000);

  // Read as UTC, the same listing is 5 h 45 min late.
  RemoteOptions utc = options;
  utc.server_timezone = "UTC";
  auto utc_source = MakeSource(utc);
  ASSERT_NE(utc_source, nullptr);
  ASSERT_TRUE(ScanOk(*utc_source));
  auto shifted = StatPath("f.txt");
  ASSERT_TRUE(shifted.has_value());
  EXPECT_EQ(shifted->mtime_ns, (minute + 5 * 3600 + 45 * 60) * 1'000'000'000);
}

TEST_F(PyFtpTest, PyftpdlibMlsdLists) {
  WriteFile(dir_ + "/m.txt", "mlsd");
  MakeDirs(dir_ + "/d");
  WriteFile(dir_ + "/d/n.txt", "n");
  ServerProcess mlsd;
  uint16_t mlsd_port = FreePort();
  ASSERT_TRUE(StartServer(mlsd, mlsd_port, {}, {}));
  RemoteOptions options = Options(mlsd_port);
  OpenIndex(options.url);
  auto source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  ASSERT_TRUE(ScanOk(*source));
  EXPECT_EQ(IndexedPaths(), (std::vector<std::string>{"d", "d/n.txt", "m.txt"}));
  auto file = StatPath("m.txt");
  ASSERT_TRUE(file.has_value());
  EXPECT_EQ(file->size, 4u);
  std::map<std::string, std::string> details;
  for (const SourceDetail& detail : source->Details()) details[detail.key] = detail.text;
  EXPECT_EQ(details["listing_command"], "MLSD");
}

}  // namespace
}  // namespace dirindex
