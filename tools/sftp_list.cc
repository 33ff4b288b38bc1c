// sftp_list: lists an sftp:// root with SftpSource and prints how long
// each listing took, for the measurements in docs/sftp.md. With --libssh2
// it lists the same tree with libssh2's own SFTP API instead, one READDIR
// at a time, as the baseline the pipelined walk is compared with.
//
//   sftp_list URL --known-hosts FILE (--identity FILE | --password-file FILE)
//             [--repeat N] [--open-dirs N] [--initial-readdirs N]
//             [--max-readdirs N] [--max-depth N] [--index DIR] [--libssh2]
//
// The first line of output covers connect and first listing together, the
// following lines are listings on the same session. --index DIR merges
// every listing into an index in DIR, as a scan of the service does.
#include <libssh2.h>
#include <libssh2_sftp.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "index/index.h"
#include "net/sftp_source.h"

namespace dirindex {
namespace {

using Clock = std::chrono::steady_clock;

struct Arguments {
  SftpSourceOptions source;
  int repeat = 1;
  bool libssh2 = false;
  std::string index_dir;
};

[[noreturn]] void Usage(const char* message) {
  std::fprintf(stderr,
               "sftp_list: %s\n"
               "usage: sftp_list URL --known-hosts FILE (--identity FILE | --password-file FILE)\n"
               "       [--repeat N] [--open-dirs N] [--initial-readdirs N] [--max-readdirs N]\n"
               "       [--max-depth N] [--index DIR] [--libssh2]\n",
               message);
  std::exit(2);
}

Arguments Parse(int argc, char** argv) {
  Arguments args;
  args.source.connect_attempts = 1;
  args.source.remote.keepalive_interval = std::chrono::milliseconds(0);
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Usage(("missing value after " + flag).c_str());
      return argv[++i];
    };
    auto number = [&]() -> uint32_t {
      std::string text = value();
      char* end = nullptr;
      unsigned long parsed = std::strtoul(text.c_str(), &end, 10);
      if (end == text.c_str() || *end != '\0') Usage(("invalid number for " + flag).c_str());
      return static_cast<uint32_t>(parsed);
    };
    if (flag == "--known-hosts") args.source.remote.known_hosts = value();
    else if (flag == "--identity") args.source.remote.identity_file = value();
    else if (flag == "--password-file") args.source.remote.password_file = value();
    else if (flag == "--repeat") args.repeat = static_cast<int>(number());
    else if (flag == "--open-dirs") args.source.tuning.max_open_dirs = number();
    else if (flag == "--initial-readdirs") args.source.tuning.initial_readdirs = number();
    else if (flag == "--max-readdirs") args.source.tuning.max_readdirs_per_dir = number();
    else if (flag == "--max-depth") args.source.remote.max_depth = number();
    else if (flag == "--index") args.index_dir = value();
    else if (flag == "--libssh2") args.libssh2 = true;
    else if (flag.starts_with("--")) Usage(("unknown option " + flag).c_str());
    else args.source.remote.url = flag;
  }
  if (args.source.remote.url.empty()) Usage("missing URL");
  return args;
}

double MillisecondsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// CountingSink counts entries and drops the listings.
class CountingSink : public ListingSink {
 public:
  Status Accept(DirListing&& listing) override {
    entries += listing.entries.size();
    if (!listing.status.ok()) ++failed;
    return Status::Ok();
  }
  uint64_t entries = 0;
  uint64_t failed = 0;
};

int RunSource(const Arguments& args) {
  auto source = SftpSource::Create(args.source);
  if (!source.ok()) {
    std::fprintf(stderr, "sftp_list: %s\n", source.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<Index> index;
  uint32_t root = 0;
  if (!args.index_dir.empty()) {
    IndexOptions options;
    options.dir = args.index_dir;
    auto opened = Index::Open(options);
    if (!opened.ok()) {
      std::fprintf(stderr, "sftp_list: %s\n", opened.status().ToString().c_str());
      return 1;
    }
    index = std::move(*opened);
    auto added = index->AddRoot("sftp", args.source.remote.url);
    if (!added.ok()) {
      std::fprintf(stderr, "sftp_list: %s\n", added.status().ToString().c_str());
      return 1;
    }
    root = *added;
  }

  std::atomic<bool> stop{false};
  for (int run = 0; run < args.repeat; ++run) {
    CountingSink counter;
    std::unique_ptr<ScanSession> session;
    ListingSink* sink = &counter;
    if (index != nullptr) {
      session = index->BeginScan(root, ChangeOrigin::kScan);
      sink = session.get();
    }
    auto start = Clock::now();
    auto totals = (*source)->Scan(ScanRequest(), *sink, stop);
    uint64_t changes = 0;
    if (session != nullptr) {
      auto summary = session->Finish(totals.status());
      if (summary.ok()) changes = summary->changes;
    }
    double ms = MillisecondsSince(start);
    if (!totals.ok()) {
      std::fprintf(stderr, "sftp_list: %s\n", totals.status().ToString().c_str());
      return 1;
    }
    SftpStats stats = (*source)->stats();
    std::printf("%s %d: %.1f ms, %llu entries, %llu dirs, %llu failed dirs, %llu requests, "
                "%llu changes\n",
                run == 0 ? "connect+list" : "relist", run + 1, ms,
                static_cast<unsigned long long>(stats.last_entries),
                static_cast<unsigned long long>(totals->dirs),
                static_cast<unsigned long long>(totals->failed_dirs),
                static_cast<unsigned long long>(stats.last_requests),
                static_cast<unsigned long long>(changes));
  }
  return 0;
}

// Lists `path` and its subdirectories with libssh2_sftp_readdir_ex, one
// request at a time, on a blocking session. Returns the entries seen.
uint64_t ListWithLibssh2(LIBSSH2_SFTP* sftp, const std::string& path, uint32_t depth,
                         uint32_t max_depth) {
  LIBSSH2_SFTP_HANDLE* handle = libssh2_sftp_opendir(sftp, path.c_str());
  if (handle == nullptr) {
    std::fprintf(stderr, "sftp_list: libssh2_sftp_opendir '%s' failed\n", path.c_str());
    return 0;
  }
  uint64_t entries = 0;
  std::vector<std::string> subdirs;
  char name[4096];
  for (;;) {
    LIBSSH2_SFTP_ATTRIBUTES attributes;
    int length = libssh2_sftp_readdir_ex(handle, name, sizeof(name), nullptr, 0, &attributes);
    if (length <= 0) break;
    std::string_view entry(name, static_cast<size_t>(length));
    if (entry == "." || entry == "..") continue;
    ++entries;
    bool is_dir = (attributes.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) &&
                  (attributes.permissions & S_IFMT) == S_IFDIR;
    if (is_dir && (max_depth == 0 || depth < max_depth)) subdirs.emplace_back(entry);
  }
  libssh2_sftp_closedir(handle);
  for (const std::string& subdir : subdirs) {
    entries += ListWithLibssh2(sftp, path + "/" + subdir, depth + 1, max_depth);
  }
  return entries;
}

int RunLibssh2(const Arguments& args) {
  auto url = ParseSftpUrl(args.source.remote.url);
  if (!url.ok()) {
    std::fprintf(stderr, "sftp_list: %s\n", url.status().ToString().c_str());
    return 1;
  }
  SshOptions options;
  options.host = url->host;
  options.port = url->port;
  options.user = url->user;
  options.identity_file = args.source.remote.identity_file;
  options.password_file = args.source.remote.password_file;
  options.known_hosts = args.source.remote.known_hosts;
  options.keepalive_interval = std::chrono::milliseconds(0);

  std::atomic<bool> stop{false};
  auto start = Clock::now();
  auto connection = SshConnection::Open(options, start + std::chrono::seconds(10), stop);
  if (!connection.ok()) {
    std::fprintf(stderr, "sftp_list: %s\n", connection.status().ToString().c_str());
    return 1;
  }
  LIBSSH2_SESSION* session = (*connection)->session();
  libssh2_session_set_blocking(session, 1);
  LIBSSH2_SFTP* sftp = libssh2_sftp_init(session);
  if (sftp == nullptr) {
    std::fprintf(stderr, "sftp_list: libssh2_sftp_init failed: %s\n",
                 (*connection)->LastError().c_str());
    return 1;
  }
  for (int run = 0; run < args.repeat; ++run) {
    if (run > 0) start = Clock::now();
    uint64_t entries = ListWithLibssh2(sftp, url->path, 0, args.source.remote.max_depth);
    std::printf("libssh2 %s %d: %.1f ms, %llu entries\n", run == 0 ? "connect+list" : "relist",
                run + 1, MillisecondsSince(start), static_cast<unsigned long long>(entries));
  }
  libssh2_sftp_shutdown(sftp);
  return 0;
}

}  // namespace
}  // namespace dirindex

int main(int argc, char** argv) {
  dirindex::Arguments args = dirindex::Parse(argc, argv);
  return args.libssh2 ? dirindex::RunLibssh2(args) : dirindex::RunSource(args);
}
