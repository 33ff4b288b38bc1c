// SFTP source tests. URL parsing and the SFTP wire format run on their own.
// The rest run the whole source against a real OpenSSH server that each
// test starts on 127.0.0.1 with tests/servers/sshd.sh, and merge the
// listings into a real index, so every check goes through the change feed.
// A scripted server (tests/servers/fake_sftp_server.py, run by sshd as its
// sftp subsystem) sends what OpenSSH never sends: bad names, missing
// attributes and multi-megabyte NAME replies.
//
// The server tests need root (sshd does) and /usr/sbin/sshd; without them
// they are skipped.
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "index/index.h"
#include "index/paths.h"
#include "net/remote_source.h"
#include "net/sftp_source.h"
#include "net/sftp_wire.h"
#include "tests/test_support.h"

namespace dirindex {
namespace {

using testing::MakeDirs;
using testing::RemoveTree;
using testing::RunCommand;
using testing::ScratchDir;
using testing::ServersDir;
using testing::WriteFile;

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

uint16_t FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

// Returns the ids of every descendant of `root`, from /proc.
std::vector<pid_t> Descendants(pid_t root) {
  std::multimap<pid_t, pid_t> children;
  DIR* proc = opendir("/proc");
  while (dirent* item = proc ? readdir(proc) : nullptr) {
    pid_t pid = static_cast<pid_t>(std::atoi(item->d_name));
    if (pid <= 0) continue;
    std::string stat = ReadText("/proc/" + std::to_string(pid) + "/stat");
    size_t close_paren = stat.rfind(')');
    if (close_paren == std::string::npos) continue;
    char state = 0;
    int parent = 0;
    if (std::sscanf(stat.c_str() + close_paren + 1, " %c %d", &state, &parent) == 2) {
      children.emplace(parent, pid);
    }
  }
  if (proc != nullptr) closedir(proc);
  std::vector<pid_t> found;
  std::vector<pid_t> queue = {root};
  while (!queue.empty()) {
    pid_t next = queue.back();
    queue.pop_back();
    auto [begin, end] = children.equal_range(next);
    for (auto it = begin; it != end; ++it) {
      found.push_back(it->second);
      queue.push_back(it->second);
    }
  }
  return found;
}

// SshdServer is one throwaway sshd on 127.0.0.1, run by sshd.sh.
class SshdServer {
 public:
  explicit SshdServer(std::string dir) : dir_(std::move(dir)), port_(FreePort()) {}
  ~SshdServer() { Stop(); }

  // Starts the server; `subsystem` replaces internal-sftp when not empty,
  // and `extra_config` lines are added to sshd_config.
  void Start(const std::string& subsystem = "", const std::string& extra_config = "") {
    std::string command = "SSHD_EXTRA_CONFIG='" + extra_config + "' " + ServersDir() +
                          "/sshd.sh start " + dir_ + " " + std::to_string(port_);
    if (!subsystem.empty()) command += " '" + subsystem + "'";
    auto [code, output] = RunCommand(command);
    ASSERT_EQ(code, 0) << output;
  }

  void Stop() { RunCommand(ServersDir() + "/sshd.sh stop " + dir_); }

  pid_t pid() const { return static_cast<pid_t>(std::atoi(ReadText(dir_ + "/sshd.pid").c_str())); }
  uint16_t port() const { return port_; }
  std::string known_hosts() const { return dir_ + "/known_hosts"; }
  std::string user_key() const { return dir_ + "/user_ed25519_key"; }
  std::string dir() const { return dir_; }

  // The host key's fingerprint as ssh-keygen prints it.
  std::string HostFingerprint() const {
    auto [code, output] = RunCommand("ssh-keygen -lf " + dir_ + "/host_ed25519_key.pub");
    std::istringstream words(output);
    std::string bits;
    std::string fingerprint;
    words >> bits >> fingerprint;
    return fingerprint;
  }

 private:
  std::string dir_;
  uint16_t port_;
};

// CapturingSink keeps every listing it receives.
class CapturingSink : public ListingSink {
 public:
  Status Accept(DirListing&& listing) override {
    std::lock_guard lock(mutex_);
    listings.push_back(std::move(listing));
    return Status::Ok();
  }
  std::vector<DirListing> listings;

 private:
  std::mutex mutex_;
};

// HookSink passes listings on to `inner` and calls `after_first` once the
// first one has been accepted.
class HookSink : public ListingSink {
 public:
  HookSink(ListingSink& inner, std::function<void()> after_first)
      : inner_(inner), after_first_(std::move(after_first)) {}
  Status Accept(DirListing&& listing) override {
    Status status = inner_.Accept(std::move(listing));
    if (accepted_++ == 0) after_first_();
    return status;
  }

 private:
  ListingSink& inner_;
  std::function<void()> after_first_;
  int accepted_ = 0;
};

bool CanRunServers() { return geteuid() == 0 && access("/usr/sbin/sshd", X_OK) == 0; }

// ---------------------------------------------------------------------
// URL parsing

TEST(SftpUrlTest, ParsesUserHostPortPath) {
  auto url = ParseSftpUrl("sftp://ingest@sftp.example:2222/outbound/in");
  ASSERT_TRUE(url.ok()) << url.status().ToString();
  EXPECT_EQ(url->user, "ingest");
  EXPECT_EQ(url->host, "sftp.example");
  EXPECT_EQ(url->port, 2222);
  EXPECT_EQ(url->path, "/outbound/in");
}

TEST(SftpUrlTest, DefaultsAndDecoding) {
  auto plain = ParseSftpUrl("sftp://a%40b@host");
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(plain->user, "a@b");
  EXPECT_EQ(plain->port, 22);
  EXPECT_EQ(plain->path, "/");

  auto spaced = ParseSftpUrl("sftp://u@host/with%20space/");
  ASSERT_TRUE(spaced.ok());
  EXPECT_EQ(spaced->path, "/with space");

  auto home = ParseSftpUrl("sftp://u@host/~/drop");
  ASSERT_TRUE(home.ok());
  EXPECT_EQ(home->path, "drop");
  auto home_itself = ParseSftpUrl("sftp://u@host/~");
  ASSERT_TRUE(home_itself.ok());
  EXPECT_EQ(home_itself->path, ".");

  auto v6 = ParseSftpUrl("sftp://u@[::1]:2200/x");
  ASSERT_TRUE(v6.ok()) << v6.status().ToString();
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 2200);
}

TEST(SftpUrlTest, RejectsMalformedUrls) {
  for (const char* bad : {"ftp://u@host/x", "sftp://host/x", "sftp://@host/x", "sftp://u@:22/x",
                          "sftp://u@host:0/x", "sftp://u@host:65536/x", "sftp://u@host:2x/x",
                          "sftp://u@[::1/x", "sftp://u@host/a%zz", "sftp://u@host/a%00b"}) {
    auto url = ParseSftpUrl(bad);
    EXPECT_FALSE(url.ok()) << bad;
    EXPECT_EQ(url.status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(SftpUrlTest, PasswordRejectedNotEchoed) {
  RemoteOptions options;
  options.url = "sftp://user:hunter2@host/x";
  options.identity_file = "/nonexistent";
  auto source = MakeRemoteSource(options);
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(source.status().message().find("password_file"), std::string::npos);
  EXPECT_EQ(source.status().message().find("hunter2"), std::string::npos);
}

TEST(SftpUrlTest, CredentialsRequired) {
  RemoteOptions options;
  options.url = "sftp://user@host/x";
  auto source = MakeRemoteSource(options);
  ASSERT_FALSE(source.ok());
  EXPECT_NE(source.status().message().find("identity_file or password_file"), std::string::npos);
}

TEST(SftpUrlTest, DescribeKeepsHomeForm) {
  for (auto [url, described] : std::vector<std::pair<std::string, std::string>>{
           {"sftp://u@host:2200/~", "sftp://u@host:2200/~"},
           {"sftp://u@host/~/in/", "sftp://u@host:22/~/in"},
           {"sftp://u@[::1]/abs/path", "sftp://u@[::1]:22/abs/path"}}) {
    SftpSourceOptions options;
    options.remote.url = url;
    options.remote.password_file = "/etc/secret-password";
    options.remote.known_hosts = "/etc/known_hosts";
    options.remote.keepalive_interval = std::chrono::milliseconds(0);
    auto source = SftpSource::Create(options);
    ASSERT_TRUE(source.ok()) << source.status().ToString();
    EXPECT_EQ((*source)->Describe(), described);
  }
}

TEST(SftpUrlTest, ZeroRequestLimitRejected) {
  SftpSourceOptions options;
  options.remote.url = "sftp://u@host/x";
  options.remote.password_file = "/etc/secret-password";
  options.tuning.max_outstanding = 0;
  auto source = SftpSource::Create(options);
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.status().code(), StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------
// Wire format

std::string U32(uint32_t value) {
  std::string out(4, '\0');
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>(value >> (24 - 8 * i));
  return out;
}

std::string U64(uint64_t value) { return U32(static_cast<uint32_t>(value >> 32)) + U32(static_cast<uint32_t>(value)); }

std::string Str(std::string_view text) { return U32(static_cast<uint32_t>(text.size())) + std::string(text); }

std::string Packet(uint8_t type, const std::string& body) {
  return U32(static_cast<uint32_t>(body.size() + 1)) + std::string(1, static_cast<char>(type)) + body;
}

struct WireEntry {
  std::string name;
  std::optional<uint64_t> size;
  std::optional<uint32_t> permissions;
  std::optional<uint32_t> mtime;
};

std::string NamePacket(uint32_t id, const std::vector<WireEntry>& entries) {
  std::string body = U32(id) + U32(static_cast<uint32_t>(entries.size()));
  for (const WireEntry& entry : entries) {
    uint32_t flags = 0;
    if (entry.size) flags |= sftp::kAttrSize;
    if (entry.permissions) flags |= sftp::kAttrPermissions;
    if (entry.mtime) flags |= sftp::kAttrAcModTime;
    body += Str(entry.name) + Str("-rw-r--r-- 1 u g 0 Jan 1 00:00 " + entry.name) + U32(flags);
    if (entry.size) body += U64(*entry.size);
    if (entry.permissions) body += U32(*entry.permissions);
    if (entry.mtime) body += U32(*entry.mtime) + U32(*entry.mtime);
  }
  return Packet(sftp::kName, body);
}

Result<sftp::NameBatch> ParsePacket(const std::string& packet) {
  auto framed = sftp::FramePacket(packet, 1 << 30);
  if (!framed.ok()) return framed.status();
  EXPECT_EQ(*framed, packet.size());
  auto reply = sftp::ParseReply(packet);
  if (!reply.ok()) return reply.status();
  sftp::NameBatch batch;
  Status parsed = sftp::ParseNames(*reply, &batch);
  if (!parsed.ok()) return parsed;
  return batch;
}

TEST(SftpWireTest, RecordsOnlySentAttributes) {
  auto batch = ParsePacket(NamePacket(7, {
      {"full", 10, 0100644, 1'700'000'000},
      {"dir", 4096, 040755, 1'700'000'001},
      {"link", 3, 0120777, 1'700'000'002},
      {"fifo", 0, 010644, 1'700'000'003},
      {"no-size", std::nullopt, 0100600, 5},
      {"no-mtime", 7, 0100600, std::nullopt},
      {"no-permissions", 8, std::nullopt, 6},
      {"no-type-bits", 9, 0644, 7},
  }));
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  ASSERT_EQ(batch->entries.size(), 8u);
  EXPECT_TRUE(batch->rejected_names.empty());

  const ListedEntry& full = batch->entries[0];
  EXPECT_EQ(full.name, "full");
  EXPECT_EQ(full.type, EntryType::kFile);
  EXPECT_EQ(full.known, kKnownSize | kKnownMtime | kKnownMode);
  EXPECT_EQ(full.size, 10u);
  EXPECT_EQ(full.mode, 0100644u);
  EXPECT_EQ(full.mtime_ns, int64_t{1'700'000'000} * 1'000'000'000);
  EXPECT_EQ(full.mtime_precision, TimePrecision::kSecond);

  EXPECT_EQ(batch->entries[1].type, EntryType::kDir);
  EXPECT_EQ(batch->entries[2].type, EntryType::kSymlink);
  EXPECT_EQ(batch->entries[3].type, EntryType::kOther);

  const ListedEntry& no_size = batch->entries[4];
  EXPECT_EQ(no_size.known, kKnownMtime | kKnownMode);
  EXPECT_EQ(no_size.type, EntryType::kFile);
  const ListedEntry& no_mtime = batch->entries[5];
  EXPECT_EQ(no_mtime.known, kKnownSize | kKnownMode);
  const ListedEntry& no_permissions = batch->entries[6];
  EXPECT_EQ(no_permissions.known, kKnownSize | kKnownMtime);
  EXPECT_EQ(no_permissions.type, EntryType::kUnknown);
  const ListedEntry& no_type = batch->entries[7];
  EXPECT_EQ(no_type.known, kKnownSize | kKnownMtime | kKnownMode);
  EXPECT_EQ(no_type.type, EntryType::kUnknown);
}

TEST(SftpWireTest, BadNamesRejectedDotsDropped) {
  auto batch = ParsePacket(NamePacket(1, {{".", 1, 040755, 1},
                                          {"..", 1, 040755, 1},
                                          {"a/b", 1, 0100644, 1},
                                          {std::string("x\0y", 3), 1, 0100644, 1},
                                          {"", 1, 0100644, 1},
                                          {"good", 1, 0100644, 1}}));
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  ASSERT_EQ(batch->entries.size(), 1u);
  EXPECT_EQ(batch->entries[0].name, "good");
  EXPECT_EQ(batch->rejected_names,
            (std::vector<std::string>{"a/b", std::string("x\0y", 3), ""}));
}

TEST(SftpWireTest, TruncatedNameRejected) {
  std::string packet = NamePacket(1, {{"one", 1, 0100644, 1}, {"two", 1, 0100644, 1}});
  // Cut the last entry short but keep the length field consistent.
  std::string body = packet.substr(5, packet.size() - 5 - 6);
  auto batch = ParsePacket(Packet(sftp::kName, body));
  ASSERT_FALSE(batch.ok());
  EXPECT_EQ(batch.status().code(), StatusCode::kCorruption);
}

TEST(SftpWireTest, FramingLimitsAndPartialPackets) {
  std::string packet = NamePacket(3, {{"a", 1, 0100644, 1}});
  auto partial = sftp::FramePacket(std::string_view(packet).substr(0, packet.size() - 1), 1 << 20);
  ASSERT_TRUE(partial.ok());
  EXPECT_EQ(*partial, 0u);
  auto too_large = sftp::FramePacket(U32(5 << 20) + "x", 4 << 20);
  ASSERT_FALSE(too_large.ok());
  EXPECT_EQ(too_large.status().code(), StatusCode::kResourceExhausted);
  auto empty = sftp::FramePacket(U32(0), 1 << 20);
  EXPECT_FALSE(empty.ok());
}

TEST(SftpWireTest, MultiMegabyteNameReply) {
  std::vector<WireEntry> entries;
  for (int i = 0; i < 50'000; ++i) {
    entries.push_back({"file-" + std::string(60, 'x') + std::to_string(i), 1, 0100644, 1});
  }
  std::string packet = NamePacket(9, entries);
  ASSERT_GT(packet.size(), size_t{5} << 20);
  auto batch = ParsePacket(packet);
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  EXPECT_EQ(batch->entries.size(), 50'000u);
}

TEST(SftpWireTest, StatusMapsToStatusCodes) {
  auto status_for = [](uint32_t code) {
    sftp::StatusReply reply;
    reply.code = code;
    reply.message = "server text";
    return sftp::ToStatus(reply, "OPENDIR", "/x");
  };
  EXPECT_EQ(status_for(sftp::kFxNoSuchFile).code(), StatusCode::kNotFound);
  EXPECT_EQ(status_for(sftp::kFxPermissionDenied).code(), StatusCode::kPermissionDenied);
  Status failure = status_for(sftp::kFxFailure);
  EXPECT_EQ(failure.code(), StatusCode::kIoError);
  EXPECT_NE(failure.message().find("SSH_FX_FAILURE"), std::string::npos);
  EXPECT_NE(failure.message().find("'/x'"), std::string::npos);
  EXPECT_NE(failure.message().find("server text"), std::string::npos);
}

// ---------------------------------------------------------------------
// A real OpenSSH server

class SftpSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!CanRunServers()) GTEST_SKIP() << "these tests start sshd, which needs root and /usr/sbin/sshd";
    server_ = std::make_unique<SshdServer>(scratch_.Sub("sshd"));
    server_->Start();
    if (HasFatalFailure()) return;
    tree_ = scratch_.Sub("tree");
    MakeDirs(tree_);
    IndexOptions options;
    options.dir = scratch_.Sub("index");
    options.durable = false;
    auto index = Index::Open(options);
    ASSERT_TRUE(index.ok()) << index.status().ToString();
    index_ = std::move(*index);
    auto root = index_->AddRoot("remote", "sftp");
    ASSERT_TRUE(root.ok());
    root_ = *root;
  }

  std::string Url(const std::string& path) const {
    return "sftp://root@127.0.0.1:" + std::to_string(server_->port()) + path;
  }

  SftpSourceOptions Options() const {
    SftpSourceOptions options;
    options.remote.url = Url(tree_);
    options.remote.identity_file = server_->user_key();
    options.remote.known_hosts = server_->known_hosts();
    options.remote.connect_timeout = std::chrono::seconds(10);
    options.remote.operation_timeout = std::chrono::seconds(10);
    options.connect_attempts = 1;
    return options;
  }

  std::unique_ptr<SftpSource> MakeSource(const SftpSourceOptions& options) {
    auto source = SftpSource::Create(options);
    EXPECT_TRUE(source.ok()) << source.status().ToString();
    return source.ok() ? std::move(*source) : nullptr;
  }

  // Runs one scan into the index, as the scheduler does, and returns the
  // source's result. `wrap` may put a sink around the index's session.
  Result<ScanTotals> ScanIntoIndex(
      Source& source, const ScanRequest& request = ScanRequest(),
      const std::function<std::unique_ptr<ListingSink>(ListingSink&)>& wrap = nullptr) {
    auto session = index_->BeginScan(root_, ChangeOrigin::kScan);
    std::unique_ptr<ListingSink> wrapper = wrap ? wrap(*session) : nullptr;
    std::atomic<bool> stop{false};
    auto totals = source.Scan(request, wrapper ? *wrapper : *session, stop);
    auto summary = session->Finish(totals.status());
    EXPECT_TRUE(summary.ok()) << summary.status().ToString();
    return totals;
  }

  // Reads the feed from `*cursor` to its end and moves the cursor there.
  std::vector<Change> ReadFeed(std::string* cursor) {
    std::vector<Change> changes;
    for (;;) {
      auto page = index_->ReadChanges(root_, *cursor, 5000, "");
      EXPECT_TRUE(page.ok()) << page.status().ToString();
      if (!page.ok()) return changes;
      for (Change& change : page->changes) changes.push_back(std::move(change));
      *cursor = page->cursor;
      if (!page->more) return changes;
    }
  }

  static std::set<std::string> PathsWith(const std::vector<Change>& changes, ChangeOp op) {
    std::set<std::string> paths;
    for (const Change& change : changes) {
      if (change.op == op) paths.insert(change.path);
    }
    return paths;
  }

  ScratchDir scratch_;
  std::unique_ptr<SshdServer> server_;
  std::string tree_;
  std::unique_ptr<Index> index_;
  uint32_t root_ = 0;
};

TEST_F(SftpSourceTest, TwentyThousandFilesExactCount) {
  std::set<std::string> expected;
  for (int i = 0; i < 20'000; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "file%05d.xml", i);
    WriteFile(tree_ + "/" + name, std::string(i % 5, 'x'));
    expected.insert(name);
  }
  auto source = MakeSource(Options());
  ASSERT_NE(source, nullptr);

  auto totals = ScanIntoIndex(*source);
  ASSERT_TRUE(totals.ok()) << totals.status().ToString();
  EXPECT_EQ(totals->files, 20'000u);
  EXPECT_EQ(totals->dirs, 1u);
  EXPECT_EQ(totals->failed_dirs, 0u);

  std::string cursor;
  std::vector<Change> changes = ReadFeed(&cursor);
  EXPECT_EQ(changes.size(), 20'000u);
  EXPECT_EQ(PathsWith(changes, ChangeOp::kAdded), expected);
  struct stat info;
  ASSERT_EQ(stat((tree_ + "/file00003.xml").c_str(), &info), 0);
  for (const Change& change : changes) {
    if (change.path != "file00003.xml") continue;
    EXPECT_EQ(change.type, EntryType::kFile);
    EXPECT_EQ(change.size, 3u);
    EXPECT_EQ(change.mtime_ns, int64_t{info.st_mtim.tv_sec} * 1'000'000'000);
  }

  // A second listing on the same session finds nothing new.
  auto again = ScanIntoIndex(*source);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE(ReadFeed(&cursor).empty());
  EXPECT_EQ(source->stats().connects, 1u);
  EXPECT_EQ(source->stats().last_entries, 20'000u);
}

TEST_F(SftpSourceTest, AddsModificationsDeletionsInFeed) {
  MakeDirs(tree_ + "/sub");
  WriteFile(tree_ + "/keep.txt", "k");
  WriteFile(tree_ + "/grow.txt", "g");
  WriteFile(tree_ + "/gone.txt", "x");
  WriteFile(tree_ + "/sub/old.txt", "o");
  auto source = MakeSource(Options());
  ASSERT_NE(source, nullptr);
  ASSERT_TRUE(ScanIntoIndex(*source).ok());
  std::string cursor;
  ReadFeed(&cursor);

  // New files differ in size from the deleted ones, or their deletion and
  // addition would be one inferred rename.
  WriteFile(tree_ + "/new.txt", "new");
  WriteFile(tree_ + "/grow.txt", "grown");
  ASSERT_EQ(unlink((tree_ + "/gone.txt").c_str()), 0);
  ASSERT_EQ(unlink((tree_ + "/sub/old.txt").c_str()), 0);
  WriteFile(tree_ + "/sub/fresh.txt", "fresh");
  auto totals = ScanIntoIndex(*source);
  ASSERT_TRUE(totals.ok()) << totals.status().ToString();

  std::vector<Change> changes = ReadFeed(&cursor);
  EXPECT_EQ(PathsWith(changes, ChangeOp::kAdded), (std::set<std::string>{"new.txt", "sub/fresh.txt"}));
  EXPECT_EQ(PathsWith(changes, ChangeOp::kModified), (std::set<std::string>{"grow.txt"}));
  EXPECT_EQ(PathsWith(changes, ChangeOp::kDeleted), (std::set<std::string>{"gone.txt", "sub/old.txt"}));
  for (const Change& change : changes) {
    if (change.path != "grow.txt") continue;
    EXPECT_EQ(change.size, 5u);
  }
}

TEST_F(SftpSourceTest, RenameShowsOldGoneNewAdded) {
  WriteFile(tree_ + "/a.xml", "payload");
  auto source = MakeSource(Options());
  ASSERT_NE(source, nullptr);
  ASSERT_TRUE(ScanIntoIndex(*source).ok());
  std::string cursor;
  ReadFeed(&cursor);

  ASSERT_EQ(rename((tree_ + "/a.xml").c_str(), (tree_ + "/a.xml.success").c_str()), 0);
  ASSERT_TRUE(ScanIntoIndex(*source).ok());
  std::vector<Change> changes = ReadFeed(&cursor);
  // The index reports a delete and an add, or one rename it inferred from
  // the same size and mtime. Either way the old name is gone.
  std::set<std::string> deleted = PathsWith(changes, ChangeOp::kDeleted);
  std::set<std::string> added = PathsWith(changes, ChangeOp::kAdded);
  bool renamed = std::any_of(changes.begin(), changes.end(), [](const Change& change) {
    return change.op == ChangeOp::kRenamed && change.old_path == "a.xml" &&
           change.path == "a.xml.success";
  });
  EXPECT_TRUE(renamed || (deleted == std::set<std::string>{"a.xml"} &&
                          added == std::set<std::string>{"a.xml.success"}))
      << "changes: " << changes.size();
  auto stat = index_->Stat(root_, "a.xml");
  ASSERT_TRUE(stat.ok());
  EXPECT_FALSE(stat->has_value());
}

TEST_F(SftpSourceTest, UnusualNamesListed) {
  const std::set<std::string> names = {"with space.txt", "zażółć gęślą jaźń.txt", "日本語.csv",
                                       "-rf",            "--help",                ".hidden",
                                       "new\nline",      "tab\tname",             "back\\slash",
                                       "quote'\"s",      "ends with space "};
  for (const std::string& name : names) WriteFile(tree_ + "/" + name, "x");
  auto source = MakeSource(Options());
  ASSERT_NE(source, nullptr);
  ASSERT_TRUE(ScanIntoIndex(*source).ok());
  std::string cursor;
  EXPECT_EQ(PathsWith(ReadFeed(&cursor), ChangeOp::kAdded), names);
}

TEST_F(SftpSourceTest, DepthLimitStopsDescent) {
  MakeDirs(tree_ + "/a/b/c/d");
  WriteFile(tree_ + "/a/b/c/d/deep.txt", "x");
  WriteFile(tree_ + "/a/top.txt", "x");
  SftpSourceOptions options = Options();
  options.remote.max_depth = 2;
  auto source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  auto totals = ScanIntoIndex(*source);
  ASSERT_TRUE(totals.ok()) << totals.status().ToString();
  EXPECT_EQ(totals->dirs, 3u);  // the root, a and a/b
  std::string cursor;
  EXPECT_EQ(PathsWith(ReadFeed(&cursor), ChangeOp::kAdded),
            (std::set<std::string>{"a", "a/top.txt", "a/b", "a/b/c"}));

  // The request's limit applies when it is smaller.
  ScanRequest shallow;
  shallow.max_depth = 1;
  CapturingSink sink;
  auto limited = source->Scan(shallow, sink, std::atomic<bool>(false));
  ASSERT_TRUE(limited.ok()) << limited.status().ToString();
  EXPECT_EQ(limited->dirs, 2u);  // the root and a
}

TEST_F(SftpSourceTest, TargetedRescanOfRemovedDir) {
  MakeDirs(tree_ + "/sub/gone");
  WriteFile(tree_ + "/sub/gone/x.txt", "x");
  WriteFile(tree_ + "/sub/stays.txt", "s");
  auto source = MakeSource(Options());
  ASSERT_NE(source, nullptr);
  ASSERT_TRUE(ScanIntoIndex(*source).ok());
  std::string cursor;
  ReadFeed(&cursor);

  RemoveTree(tree_ + "/sub/gone");
  ScanRequest request;
  request.dirs = {"sub/gone"};
  auto totals = ScanIntoIndex(*source, request);
  ASSERT_TRUE(totals.ok()) << totals.status().ToString();
  EXPECT_EQ(totals->dirs, 1u);  // "sub", listed in place of the missing target
  std::set<std::string> deleted = PathsWith(ReadFeed(&cursor), ChangeOp::kDeleted);
  EXPECT_TRUE(deleted.count("sub/gone")) << deleted.size();
  EXPECT_FALSE(deleted.count("sub/stays.txt"));
}

TEST_F(SftpSourceTest, MissingRootFailsScan) {
  SftpSourceOptions options = Options();
  options.remote.url = Url(tree_ + "/nope");
  auto source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  CapturingSink sink;
  auto totals = source->Scan(ScanRequest(), sink, std::atomic<bool>(false));
  ASSERT_FALSE(totals.ok());
  EXPECT_EQ(totals.status().code(), StatusCode::kNotFound);
  EXPECT_NE(totals.status().message().find(tree_ + "/nope"), std::string::npos);
  EXPECT_TRUE(sink.listings.empty());
}

TEST_F(SftpSourceTest, WrongHostKeyRejected) {
  auto [code, output] = RunCommand("ssh-keygen -q -t ed25519 -N '' -f " + scratch_.Sub("other_key"));
  ASSERT_EQ(code, 0) << output;
  std::string other = ReadText(scratch_.Sub("other_key.pub"));
  std::string line = "[127.0.0.1]:" + std::to_string(server_->port()) + " " +
                     other.substr(0, other.find(' ', other.find(' ') + 1)) + "\n";
  WriteFile(scratch_.Sub("wrong_known_hosts"), line);

  SftpSourceOptions options = Options();
  options.remote.known_hosts = scratch_.Sub("wrong_known_hosts");
  options.remote.trust_on_first_use = true;  // never overrides a changed key
  auto source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  CapturingSink sink;
  auto totals = source->Scan(ScanRequest(), sink, std::atomic<bool>(false));
  ASSERT_FALSE(totals.ok());
  const std::string& message = totals.status().message();
  EXPECT_EQ(totals.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(message.find("127.0.0.1:" + std::to_string(server_->port())), std::string::npos) << message;
  EXPECT_NE(message.find("ssh-ed25519"), std::string::npos) << message;
  EXPECT_NE(message.find(server_->HostFingerprint()), std::string::npos) << message;
  EXPECT_NE(message.find("does not match"), std::string::npos) << message;
  EXPECT_TRUE(sink.listings.empty());
  EXPECT_EQ(ReadText(scratch_.Sub("wrong_known_hosts")), line);
}

TEST_F(SftpSourceTest, UnknownHostRejectedWithoutTofu) {
  SftpSourceOptions options = Options();
  options.remote.known_hosts = scratch_.Sub("missing_known_hosts");
  auto source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  CapturingSink sink;
  auto missing = source->Scan(ScanRequest(), sink, std::atomic<bool>(false));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(missing.status().message().find(server_->HostFingerprint()), std::string::npos)
      << missing.status().message();
  EXPECT_NE(missing.status().message().find("does not exist"), std::string::npos);

  WriteFile(scratch_.Sub("empty_known_hosts"), "");
  options.remote.known_hosts = scratch_.Sub("empty_known_hosts");
  source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  auto unknown = source->Scan(ScanRequest(), sink, std::atomic<bool>(false));
  ASSERT_FALSE(unknown.ok());
  const std::string& message = unknown.status().message();
  EXPECT_EQ(unknown.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(message.find("127.0.0.1:" + std::to_string(server_->port())), std::string::npos) << message;
  EXPECT_NE(message.find("ssh-ed25519"), std::string::npos) << message;
  EXPECT_NE(message.find(server_->HostFingerprint()), std::string::npos) << message;
  EXPECT_NE(message.find("trust_on_first_use"), std::string::npos) << message;
  EXPECT_EQ(ReadText(scratch_.Sub("empty_known_hosts")), "");
}

TEST_F(SftpSourceTest, TofuRecordsUnknownHost) {
  const std::string path = scratch_.Sub("tofu_known_hosts");
  SftpSourceOptions options = Options();
  options.remote.known_hosts = path;
  options.remote.trust_on_first_use = true;
  auto source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  ASSERT_TRUE(ScanIntoIndex(*source).ok());

  std::string recorded = ReadText(path);
  std::string host_key = ReadText(server_->dir() + "/host_ed25519_key.pub");
  std::string key_fields = host_key.substr(0, host_key.find(' ', host_key.find(' ') + 1));
  EXPECT_EQ(recorded.rfind("[127.0.0.1]:" + std::to_string(server_->port()) + " " + key_fields, 0), 0u)
      << recorded;
  struct stat info;
  ASSERT_EQ(stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);

  // The recorded key now passes without trust on first use.
  options.remote.trust_on_first_use = false;
  auto strict = MakeSource(options);
  ASSERT_NE(strict, nullptr);
  CapturingSink sink;
  auto totals = strict->Scan(ScanRequest(), sink, std::atomic<bool>(false));
  EXPECT_TRUE(totals.ok()) << totals.status().ToString();
}

TEST_F(SftpSourceTest, PasswordLoginAndWrongPassword) {
  const std::string password = "dirindex-" + std::to_string(getpid());
  auto [code, output] = RunCommand(ServersDir() + "/sshd.sh password-user " + password);
  ASSERT_EQ(code, 0) << output;
  // The test user must reach the tree: search access on the way down.
  ASSERT_EQ(chmod(scratch_.path().c_str(), 0711), 0);
  WriteFile(tree_ + "/visible.txt", "v");

  SftpSourceOptions options = Options();
  options.remote.url = "sftp://dirindex-test@127.0.0.1:" + std::to_string(server_->port()) + tree_;
  options.remote.identity_file.clear();
  options.remote.password_file = scratch_.Sub("wrong_password");
  WriteFile(options.remote.password_file, "not-" + password + "\n");
  auto wrong = MakeSource(options);
  ASSERT_NE(wrong, nullptr);
  CapturingSink sink;
  auto rejected = wrong->Scan(ScanRequest(), sink, std::atomic<bool>(false));
  ASSERT_FALSE(rejected.ok());
  const std::string& message = rejected.status().message();
  EXPECT_EQ(rejected.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(message.find("rejected the password"), std::string::npos) << message;
  EXPECT_NE(message.find(options.remote.password_file), std::string::npos) << message;
  EXPECT_NE(message.find("dirindex-test"), std::string::npos) << message;
  EXPECT_EQ(message.find(password), std::string::npos) << message;
  EXPECT_EQ(wrong->stats().connect_failures, 1u);

  options.remote.password_file = scratch_.Sub("password");
  WriteFile(options.remote.password_file, password + "\n");
  auto right = MakeSource(options);
  ASSERT_NE(right, nullptr);
  auto totals = ScanIntoIndex(*right);
  ASSERT_TRUE(totals.ok()) << totals.status().ToString();
  std::string cursor;
  EXPECT_EQ(PathsWith(ReadFeed(&cursor), ChangeOp::kAdded), (std::set<std::string>{"visible.txt"}));
}

TEST_F(SftpSourceTest, ServerKilledMidListingKeepsEntries) {
  for (int d = 0; d < 40; ++d) {
    std::string dir = tree_ + "/d" + std::to_string(d);
    MakeDirs(dir);
    for (int f = 0; f < 150; ++f) WriteFile(dir + "/f" + std::to_string(f), "x");
  }
  auto source = MakeSource(Options());
  ASSERT_NE(source, nullptr);
  ASSERT_TRUE(ScanIntoIndex(*source).ok());
  std::string cursor;
  ASSERT_EQ(ReadFeed(&cursor).size(), 40u * 151u);

  auto killed = ScanIntoIndex(*source, ScanRequest(), [this](ListingSink& inner) {
    return std::make_unique<HookSink>(inner, [this] { server_->Stop(); });
  });
  if (killed.ok()) {
    EXPECT_GT(killed->failed_dirs, 0u);
  } else {
    EXPECT_EQ(killed.status().code(), StatusCode::kUnavailable) << killed.status().ToString();
  }
  EXPECT_TRUE(PathsWith(ReadFeed(&cursor), ChangeOp::kDeleted).empty());
  auto root = index_->GetRoot("remote");
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(root->files, 40u * 150u);
  EXPECT_FALSE(root->last_error.empty());

  // The next scan after a restart reconnects and finds what changed meanwhile.
  WriteFile(tree_ + "/d7/while-down.txt", "w");
  server_->Start();
  auto recovered = ScanIntoIndex(*source);
  ASSERT_TRUE(recovered.ok()) << recovered.status().ToString();
  EXPECT_EQ(recovered->failed_dirs, 0u);
  std::vector<Change> changes = ReadFeed(&cursor);
  EXPECT_EQ(PathsWith(changes, ChangeOp::kAdded), (std::set<std::string>{"d7/while-down.txt"}));
  EXPECT_TRUE(PathsWith(changes, ChangeOp::kDeleted).empty());
  EXPECT_EQ(source->stats().connects, 2u);
}

TEST_F(SftpSourceTest, IdleSessionLossReconnectsAtOnce) {
  WriteFile(tree_ + "/a", "a");
  auto source = MakeSource(Options());
  ASSERT_NE(source, nullptr);
  ASSERT_TRUE(ScanIntoIndex(*source).ok());
  server_->Stop();
  server_->Start();
  auto totals = ScanIntoIndex(*source);
  ASSERT_TRUE(totals.ok()) << totals.status().ToString();
  EXPECT_EQ(totals->files, 1u);
  EXPECT_EQ(source->stats().connects, 2u);
}

TEST_F(SftpSourceTest, KeepalivesHoldIdleSession) {
  // The server drops a client that leaves two of its 1 s probes unanswered.
  server_->Stop();
  server_->Start("", "ClientAliveInterval 1\nClientAliveCountMax 1");
  ASSERT_FALSE(HasFatalFailure());
  WriteFile(tree_ + "/a", "a");

  SftpSourceOptions options = Options();
  options.remote.keepalive_interval = std::chrono::milliseconds(400);
  auto with_keepalive = MakeSource(options);
  options.remote.keepalive_interval = std::chrono::milliseconds(0);
  auto idle = MakeSource(options);
  ASSERT_NE(with_keepalive, nullptr);
  ASSERT_NE(idle, nullptr);
  CapturingSink sink;
  ASSERT_TRUE(with_keepalive->Scan(ScanRequest(), sink, std::atomic<bool>(false)).ok());
  ASSERT_TRUE(idle->Scan(ScanRequest(), sink, std::atomic<bool>(false)).ok());

  // sshd 9.2 drops the silent client some seconds after its second probe:
  // 3.5 s were not always enough here, 6 s were.
  std::this_thread::sleep_for(std::chrono::milliseconds(6000));
  EXPECT_NE(ReadText(server_->dir() + "/sshd.log").find("Timeout, client not responding"),
            std::string::npos);
  ASSERT_TRUE(with_keepalive->Scan(ScanRequest(), sink, std::atomic<bool>(false)).ok());
  ASSERT_TRUE(idle->Scan(ScanRequest(), sink, std::atomic<bool>(false)).ok());
  EXPECT_GT(with_keepalive->stats().keepalives, 0u);
  EXPECT_EQ(with_keepalive->stats().connects, 1u);
  // Without keepalives the server hung up, and the scan reconnected.
  EXPECT_EQ(idle->stats().connects, 2u);
}

TEST_F(SftpSourceTest, StalledServerTimesOut) {
  for (int f = 0; f < 500; ++f) WriteFile(tree_ + "/f" + std::to_string(f), "x");
  SftpSourceOptions options = Options();
  options.remote.operation_timeout = std::chrono::milliseconds(1000);
  auto source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  ASSERT_TRUE(ScanIntoIndex(*source).ok());

  // Freeze the session processes; the listener keeps accepting.
  std::vector<pid_t> sessions = Descendants(server_->pid());
  ASSERT_FALSE(sessions.empty());
  for (pid_t pid : sessions) kill(pid, SIGSTOP);
  auto started = std::chrono::steady_clock::now();
  CapturingSink sink;
  auto stalled = source->Scan(ScanRequest(), sink, std::atomic<bool>(false));
  auto waited = std::chrono::steady_clock::now() - started;
  for (pid_t pid : sessions) kill(pid, SIGCONT);

  ASSERT_FALSE(stalled.ok());
  EXPECT_EQ(stalled.status().code(), StatusCode::kTimedOut) << stalled.status().ToString();
  EXPECT_NE(stalled.status().message().find("operation_timeout"), std::string::npos);
  EXPECT_LT(waited, std::chrono::seconds(5));
  ASSERT_EQ(sink.listings.size(), 1u);
  EXPECT_EQ(sink.listings[0].status.code(), StatusCode::kTimedOut);

  auto recovered = ScanIntoIndex(*source);
  ASSERT_TRUE(recovered.ok()) << recovered.status().ToString();
  EXPECT_EQ(recovered->files, 500u);
}

TEST_F(SftpSourceTest, StopFlagAbortsScan) {
  for (int d = 0; d < 30; ++d) {
    MakeDirs(tree_ + "/d" + std::to_string(d));
    WriteFile(tree_ + "/d" + std::to_string(d) + "/f", "x");
  }
  auto source = MakeSource(Options());
  ASSERT_NE(source, nullptr);
  std::atomic<bool> stop{false};
  CapturingSink captured;
  HookSink sink(captured, [&stop] { stop = true; });
  auto totals = source->Scan(ScanRequest(), sink, stop);
  ASSERT_FALSE(totals.ok());
  EXPECT_EQ(totals.status().code(), StatusCode::kAborted) << totals.status().ToString();
  EXPECT_LT(captured.listings.size(), 31u);

  // The next scan runs on a new session and lists everything.
  CapturingSink complete;
  auto again = source->Scan(ScanRequest(), complete, std::atomic<bool>(false));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(complete.listings.size(), 31u);
}

TEST_F(SftpSourceTest, UnreachableServerFailsFast) {
  SftpSourceOptions options = Options();
  server_->Stop();
  options.connect_attempts = 2;
  options.retry_delay = std::chrono::milliseconds(50);
  auto source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  CapturingSink sink;
  auto totals = source->Scan(ScanRequest(), sink, std::atomic<bool>(false));
  ASSERT_FALSE(totals.ok());
  EXPECT_EQ(totals.status().code(), StatusCode::kUnavailable) << totals.status().ToString();
  EXPECT_NE(totals.status().message().find("127.0.0.1:" + std::to_string(server_->port())),
            std::string::npos);
  EXPECT_EQ(source->stats().connect_failures, 2u);
}

TEST_F(SftpSourceTest, DetailsDescribeSession) {
  WriteFile(tree_ + "/a", "a");
  auto source = MakeSource(Options());
  ASSERT_NE(source, nullptr);
  ASSERT_TRUE(ScanIntoIndex(*source).ok());
  std::map<std::string, SourceDetail> details;
  for (SourceDetail& detail : source->Details()) details[detail.key] = detail;
  EXPECT_EQ(details["host"].text, "127.0.0.1:" + std::to_string(server_->port()));
  EXPECT_EQ(details["connection"].text, "connected");
  EXPECT_EQ(details["host_key"].text, "ssh-ed25519 " + server_->HostFingerprint());
  EXPECT_NE(details["server_extensions"].text.find("limits@openssh.com"), std::string::npos);
  EXPECT_EQ(details["last_listing_entries"].number, 1.0);
  EXPECT_GT(details["server_max_open_handles"].number, 0.0);
  EXPECT_TRUE(details["last_listing_ms"].is_number);
  EXPECT_EQ(source->Describe(), Url(tree_));
  for (const auto& [key, detail] : details) {
    EXPECT_EQ(detail.text.find(server_->user_key()), std::string::npos) << key;
  }
}

// ---------------------------------------------------------------------
// The scripted server

class FakeServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!CanRunServers()) GTEST_SKIP() << "these tests start sshd, which needs root and /usr/sbin/sshd";
    if (access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "/usr/bin/python3 is missing";
    server_ = std::make_unique<SshdServer>(scratch_.Sub("sshd"));
  }

  // Starts sshd with the scripted server serving `spec_json`.
  void StartWith(const std::string& spec_json) {
    WriteFile(scratch_.Sub("spec.json"), spec_json);
    server_->Start("/usr/bin/python3 " + ServersDir() + "/fake_sftp_server.py " +
                   scratch_.Sub("spec.json"));
  }

  Result<ScanTotals> List(const std::string& path, CapturingSink* sink) {
    SftpSourceOptions options;
    options.remote.url = "sftp://root@127.0.0.1:" + std::to_string(server_->port()) + path;
    options.remote.identity_file = server_->user_key();
    options.remote.known_hosts = server_->known_hosts();
    options.connect_attempts = 1;
    auto source = SftpSource::Create(options);
    if (!source.ok()) return source.status();
    return (*source)->Scan(ScanRequest(), *sink, std::atomic<bool>(false));
  }

  static std::string Entry(std::string_view name, std::string attributes) {
    return "{\"name_b64\": \"" + Base64Encode(name) + "\"" + attributes + "}";
  }

  ScratchDir scratch_;
  std::unique_ptr<SshdServer> server_;
};

TEST_F(FakeServerTest, BadNamesSkippedAttributesKept) {
  std::string entries = Entry("ok.txt", ", \"size\": 5, \"permissions\": 33188, \"mtime\": 1700000000") + "," +
                        Entry(".", ", \"permissions\": 16877") + "," +
                        Entry("..", ", \"permissions\": 16877") + "," +
                        Entry("a/b", ", \"size\": 1, \"permissions\": 33188") + "," +
                        Entry(std::string("nul\0byte", 8), ", \"size\": 1") + "," +
                        Entry("", ", \"size\": 1") + "," +
                        Entry("no-size", ", \"permissions\": 33188, \"mtime\": 1700000001") + "," +
                        Entry("no-attributes", "") + "," +
                        Entry("no-type", ", \"size\": 3, \"permissions\": 420") + "," +
                        Entry("sub", ", \"permissions\": 16877");
  StartWith("{\"entries_per_reply\": 3, \"dirs\": {\"/data\": [" + entries +
            "], \"/data/sub\": [" + Entry("inner", ", \"size\": 2, \"permissions\": 33188") + "]}}");
  ASSERT_FALSE(HasFatalFailure());

  CapturingSink sink;
  auto totals = List("/data", &sink);
  ASSERT_TRUE(totals.ok()) << totals.status().ToString();
  ASSERT_EQ(sink.listings.size(), 2u);
  std::map<std::string, ListedEntry> by_name;
  const DirListing* root = nullptr;
  for (const DirListing& listing : sink.listings) {
    EXPECT_TRUE(listing.status.ok()) << listing.status.ToString();
    if (listing.path.empty()) root = &listing;
  }
  ASSERT_NE(root, nullptr);
  for (const ListedEntry& entry : root->entries) by_name[entry.name] = entry;
  std::set<std::string> names;
  for (const auto& [name, entry] : by_name) names.insert(name);
  EXPECT_EQ(names, (std::set<std::string>{"ok.txt", "no-size", "no-attributes", "no-type", "sub"}));

  EXPECT_EQ(by_name["ok.txt"].known, kKnownSize | kKnownMtime | kKnownMode);
  EXPECT_EQ(by_name["ok.txt"].size, 5u);
  EXPECT_EQ(by_name["no-size"].known, kKnownMtime | kKnownMode);
  EXPECT_EQ(by_name["no-attributes"].known, 0);
  EXPECT_EQ(by_name["no-attributes"].type, EntryType::kUnknown);
  EXPECT_EQ(by_name["no-type"].type, EntryType::kUnknown);
  EXPECT_EQ(by_name["sub"].type, EntryType::kDir);
}

// Returns the spec of /data with six subdirectories of two files each.
std::string SixDirsSpec(const std::string& options) {
  auto entry = [](std::string_view name, const std::string& attributes) {
    return "{\"name_b64\": \"" + Base64Encode(name) + "\"" + attributes + "}";
  };
  std::string dirs = "\"/data\": [";
  for (int d = 0; d < 6; ++d) {
    std::string name = "d" + std::to_string(d);
    dirs += std::string(d > 0 ? "," : "") + entry(name, ", \"permissions\": 16877");
  }
  dirs += "]";
  for (int d = 0; d < 6; ++d) {
    dirs += ", \"/data/d" + std::to_string(d) + "\": [" +
            entry("a", ", \"size\": 1, \"permissions\": 33188") + "," +
            entry("b", ", \"size\": 2, \"permissions\": 33188") + "]";
  }
  return "{\"entries_per_reply\": 1, " + options + ", \"dirs\": {" + dirs + "}}";
}

TEST_F(FakeServerTest, AnnouncedHandleLimitRespected) {
  // The server allows two open handles, so the walk keeps one open.
  StartWith(SixDirsSpec("\"max_open_handles\": 2"));
  ASSERT_FALSE(HasFatalFailure());

  CapturingSink sink;
  auto totals = List("/data", &sink);
  ASSERT_TRUE(totals.ok()) << totals.status().ToString();
  EXPECT_EQ(totals->dirs, 7u);
  EXPECT_EQ(totals->failed_dirs, 0u);
  EXPECT_EQ(totals->files, 12u);
  for (const DirListing& listing : sink.listings) {
    EXPECT_TRUE(listing.status.ok()) << listing.path << ": " << listing.status.ToString();
  }
}

TEST_F(FakeServerTest, SilentHandleLimitLearned) {
  // The server fails a third OPENDIR without announcing any limit.
  StartWith(SixDirsSpec("\"max_open_handles\": 2, \"announce_limits\": false"));
  ASSERT_FALSE(HasFatalFailure());

  CapturingSink sink;
  auto totals = List("/data", &sink);
  ASSERT_TRUE(totals.ok()) << totals.status().ToString();
  EXPECT_EQ(totals->dirs, 7u);
  EXPECT_EQ(totals->failed_dirs, 0u);
  EXPECT_EQ(totals->files, 12u);
}

TEST_F(FakeServerTest, MultiMegabyteReplyAccepted) {
  // 60,000 entries with 90-byte names in one NAME reply: about 7.6 MB,
  // far over the 256 KiB libssh2's own SFTP code accepts.
  StartWith("{\"entries_per_reply\": 0, \"dirs\": {\"/big\": {\"generate\": 60000, "
            "\"name_prefix\": \"" + std::string(82, 'n') +
            "\", \"size\": 1, \"permissions\": 33188, \"mtime\": 1700000000}}}");
  ASSERT_FALSE(HasFatalFailure());
  CapturingSink sink;
  auto totals = List("/big", &sink);
  ASSERT_TRUE(totals.ok()) << totals.status().ToString();
  ASSERT_EQ(sink.listings.size(), 1u);
  EXPECT_TRUE(sink.listings[0].status.ok());
  EXPECT_EQ(sink.listings[0].entries.size(), 60'000u);
  EXPECT_EQ(totals->files, 60'000u);
}

}  // namespace
}  // namespace dirindex
