// The Watchman anchor of the capacity harness. It starts a private
// watchman on the synthetic tree, with its own socket, state, log and pid
// files in the scratch folder, so the system-wide one is never used. It
// measures the initial crawl, resident memory and a full query. Then it
// times the since-query after a known number of changes, both over the
// socket directly and through the watchman command line.
#include <rapidjson/document.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "bench/capacity.h"

namespace dirindex::capacity {

namespace {

namespace fs = std::filesystem;

// WatchmanClient is one connection to watchman's Unix socket, speaking
// its JSON protocol: a request is a JSON array on one line, a response is
// a JSON object on one line.
class WatchmanClient {
 public:
  ~WatchmanClient() {
    if (fd_ >= 0) close(fd_);
  }

  bool Connect(const std::string& path, double timeout_s) {
    if (fd_ >= 0) close(fd_);
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return Failed("socket");
    timeval timeout{};
    timeout.tv_sec = static_cast<time_t>(timeout_s);
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
      return Failed("connect to " + path);
    }
    return true;
  }

  // Sends one request and returns its response line. Unilateral messages
  // (log lines, subscription updates) that arrive first are skipped.
  std::optional<std::string> Send(const std::string& request) {
    std::string line = request + "\n";
    for (size_t sent = 0; sent < line.size();) {
      ssize_t n = send(fd_, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        Failed("send");
        return std::nullopt;
      }
      sent += static_cast<size_t>(n);
    }
    for (;;) {
      size_t end;
      while ((end = buffer_.find('\n')) == std::string::npos) {
        if (!ReadMore()) return std::nullopt;
      }
      std::string response = buffer_.substr(0, end);
      buffer_.erase(0, end + 1);
      if (response.find("\"unilateral\":") == std::string::npos) return response;
    }
  }

  const std::string& error() const { return error_; }

 private:
  bool Failed(const std::string& operation) {
    error_ = operation + " failed: " + std::strerror(errno);
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    return false;
  }

  bool ReadMore() {
    ssize_t received = ReceiveInto(fd_, buffer_);
    if (received > 0) return true;
    if (received == 0) {
      error_ = "watchman closed the connection";
      return false;
    }
    return Failed("receive");
  }

  int fd_ = -1;
  std::string buffer_;
  std::string error_;
};

// QueryResult is the part of a watchman response the harness reads.
struct QueryResult {
  std::string error;  // watchman's "error" field, or a parse failure
  std::string clock;
  std::string watch;
  size_t files = 0;
};

QueryResult ParseResponse(const std::string& line) {
  QueryResult result;
  rapidjson::Document document;
  document.Parse(line.data(), line.size());
  if (document.HasParseError() || !document.IsObject()) {
    result.error = "response is not a JSON object";
    return result;
  }
  if (document.HasMember("error") && document["error"].IsString()) result.error = document["error"].GetString();
  if (document.HasMember("clock") && document["clock"].IsString()) result.clock = document["clock"].GetString();
  if (document.HasMember("watch") && document["watch"].IsString()) result.watch = document["watch"].GetString();
  if (document.HasMember("files") && document["files"].IsArray()) result.files = document["files"].Size();
  return result;
}

// Returns `text` as a JSON string literal.
std::string JsonString(const std::string& text) {
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') quoted.push_back('\\');
    quoted.push_back(c);
  }
  return quoted + "\"";
}

// The fields each query requests, close to what a dirindex change carries.
constexpr const char* kFields = R"(["name","exists","new","type","size","mtime_ns"])";

std::string SinceQuery(const std::string& root, const std::string& clock, bool sync) {
  return "[\"query\"," + JsonString(root) + ",{\"since\":" + JsonString(clock) + ",\"fields\":" + kFields +
         (sync ? "" : ",\"sync_timeout\":0") + "}]";
}

double Mib(uint64_t bytes) { return static_cast<double>(bytes) / 1048576.0; }

// PrivateWatchman is a watchman server of this run only. Destroying it
// sends the shutdown-server command, then SIGTERM if the server stays up.
class PrivateWatchman {
 public:
  ~PrivateWatchman() {
    if (process_.Running()) {
      WatchmanClient client;
      if (client.Connect(socket_, 5)) client.Send(R"(["shutdown-server"])");
      if (!process_.WaitExit(std::chrono::seconds(10))) process_.Stop(SIGTERM, std::chrono::seconds(10));
    }
    if (!socket_dir_.empty()) {
      std::error_code ignored;
      fs::remove_all(socket_dir_, ignored);
    }
  }

  // Starts watchman in the foreground with every file it uses in `dir`,
  // and waits for its socket. Returns an error message, or an empty string.
  std::string Start(const std::string& dir) {
    socket_ = dir + "/sock";
    if (socket_.size() >= sizeof(sockaddr_un{}.sun_path)) {
      // A Unix socket path has at most 107 bytes, so a deep scratch folder
      // gets its socket in a new private folder under /tmp instead.
      char pattern[] = "/tmp/dirindex-watchman-XXXXXX";
      if (mkdtemp(pattern) == nullptr) return "mkdtemp for watchman's socket failed: " + std::string(std::strerror(errno));
      socket_dir_ = pattern;
      socket_ = socket_dir_ + "/sock";
    }
    std::vector<std::string> argv = {"watchman",
                                     "--foreground",
                                     "--sockname=" + socket_,
                                     "--statefile=" + dir + "/state",
                                     "--logfile=" + dir + "/log",
                                     "--pidfile=" + dir + "/pid"};
    // TMPDIR keeps any default path watchman derives inside `dir` too.
    if (!process_.Start(argv, dir + "/stdout.log", {"TMPDIR=" + dir})) return "starting watchman failed";
    auto deadline = Clock::now() + std::chrono::seconds(20);
    while (Clock::now() < deadline) {
      if (!process_.Running()) return "watchman exited at start; see " + dir + "/log";
      WatchmanClient probe;
      if (access(socket_.c_str(), F_OK) == 0 && probe.Connect(socket_, 5)) return "";
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return "watchman's socket " + socket_ + " did not accept within 20 s";
  }

  const std::string& socket() const { return socket_; }
  pid_t pid() const { return process_.pid(); }

 private:
  ChildProcess process_;
  std::string socket_;
  std::string socket_dir_;  // the folder under /tmp holding the socket, or empty
};

void MeasureSinceQuery(const std::string& socket, const std::string& query, unsigned clients,
                       const WatchmanOptions& options, const std::string& label, const std::string& note_prefix,
                       Report& report) {
  auto connect = [&](unsigned) -> RequestFunction {
    auto client = std::make_shared<WatchmanClient>();
    if (!client->Connect(socket, 60)) return {};
    return [client, query] {
      auto response = client->Send(query);
      return response && response->find("\"error\":") == std::string::npos;
    };
  };
  LoadResult load = RunClients(clients, options.requests, 10, connect);
  char note[200];
  std::snprintf(note, sizeof(note), "%s%zu requests, %.0f requests/s, %llu failed", note_prefix.c_str(),
                load.latencies.count, load.requests_per_second, static_cast<unsigned long long>(load.failures));
  report.Add({"watchman", label + ", p50", Milliseconds(load.latencies.p50), "ms", "", 0, note});
  report.Add({"watchman", label + ", p99", Milliseconds(load.latencies.p99), "ms", "", 0, ""});
  if (load.failures > 0) report.Fail(label + ": " + std::to_string(load.failures) + " requests failed");
}

std::string ClientsLabel(unsigned clients) {
  return std::to_string(clients) + (clients == 1 ? " client" : " clients");
}

}  // namespace

void MeasureWatchman(const std::string& tree, const std::string& scratch, const Shape& shape,
                     const WatchmanOptions& options, Report& report) {
  if (!options.enabled) return;
  if (!HaveCommand("watchman")) {
    report.Skip("watchman figures: watchman not found; install it with scripts/install-anchors.sh");
    return;
  }
  std::string dir = scratch + "/watchman";
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::printf("watchman: starting a private server in %s, load %s\n", dir.c_str(), LoadAverage().c_str());

  auto started = Clock::now();
  PrivateWatchman watchman;
  std::string error = watchman.Start(dir);
  if (!error.empty()) {
    report.Fail("watchman figures: " + error);
    return;
  }
  WatchmanClient client;
  if (!client.Connect(watchman.socket(), 3600)) {
    report.Fail("watchman figures: " + client.error());
    return;
  }
  auto version = client.Send(R"(["version"])");
  // A query waits for the initial crawl to finish, so the time until the
  // first query returns includes the whole crawl.
  auto watch = client.Send("[\"watch-project\"," + JsonString(tree) + "]");
  QueryResult watched = watch ? ParseResponse(*watch) : QueryResult{client.error()};
  if (!watched.error.empty() || watched.watch.empty()) {
    report.Fail("watchman figures: watch-project failed: " + watched.error);
    return;
  }
  std::string root = watched.watch;
  auto first = client.Send("[\"query\"," + JsonString(root) +
                           R"(,{"expression":["name","no-such-file"],"fields":["name"],"sync_timeout":3600000}])");
  QueryResult first_result = first ? ParseResponse(*first) : QueryResult{client.error()};
  if (!first_result.error.empty()) {
    report.Fail("watchman figures: the first query failed: " + first_result.error);
    return;
  }
  double crawl = Seconds(Clock::now() - started);
  std::string version_note;
  if (version) {
    rapidjson::Document document;
    document.Parse(version->c_str());
    if (!document.HasParseError() && document.IsObject() && document.HasMember("version") &&
        document["version"].IsString()) {
      version_note = std::string("watchman ") + document["version"].GetString();
    }
  }
  report.Add({"watchman", "watchman crawl, start to first query answered", crawl, "s", "", 0, version_note});
  report.Add({"watchman", "watchman resident memory after the crawl", Mib(ResidentBytes(watchman.pid())), "MiB", "",
              0, ResidentNote(watchman.pid())});

  auto full_start = Clock::now();
  auto full = client.Send("[\"query\"," + JsonString(root) + ",{\"fields\":" + kFields + "}]");
  double full_time = Seconds(Clock::now() - full_start);
  QueryResult full_result = full ? ParseResponse(*full) : QueryResult{client.error()};
  if (!full_result.error.empty()) {
    report.Fail("watchman figures: the full query failed: " + full_result.error);
    return;
  }
  report.Add({"watchman", "watchman full query, all files", full_time, "s", "", 0,
              std::to_string(full_result.files) + " entries"});
  report.Add({"watchman", "watchman resident memory after the full query", Mib(ResidentBytes(watchman.pid())), "MiB",
              "", 0, ResidentNote(watchman.pid())});

  // Since-query: touch files, then query since the clock from before.
  std::string clock = full_result.clock;
  std::vector<std::string> touched = SpreadFiles(tree, shape, options.touched);
  TouchFiles(touched);
  // The default sync makes watchman process every event up to now first.
  auto settled = client.Send(SinceQuery(root, clock, true));
  QueryResult since = settled ? ParseResponse(*settled) : QueryResult{client.error()};
  if (!since.error.empty()) {
    report.Fail("watchman figures: the since-query failed: " + since.error);
    return;
  }
  if (since.files != touched.size()) {
    std::printf("watchman: expected %zu files in the since-query, it returned %zu\n", touched.size(), since.files);
  }
  std::printf("watchman: since-query, %zu files, load %s\n", since.files, LoadAverage().c_str());
  std::string files_note = std::to_string(since.files) + " files per response, ";
  std::vector<unsigned> client_counts = {1};
  if (options.clients > 1) client_counts.push_back(options.clients);
  for (unsigned clients : client_counts) {
    MeasureSinceQuery(watchman.socket(), SinceQuery(root, clock, true), clients, options,
                      "watchman since-query, direct socket, " + ClientsLabel(clients), files_note, report);
    MeasureSinceQuery(watchman.socket(), SinceQuery(root, clock, false), clients, options,
                      "watchman since-query without sync, direct socket, " + ClientsLabel(clients),
                      files_note + "sync_timeout 0, ", report);
  }

  // The command line pays for its own process start on every query.
  if (options.cli_rounds > 0) {
    std::string query_path = dir + "/since-query.json";
    std::ofstream(query_path) << SinceQuery(root, clock, true) << "\n";
    std::vector<std::string> argv = {"watchman", "--sockname=" + watchman.socket(), "--no-spawn", "--no-local",
                                     "--no-pretty", "-j"};
    std::vector<double> times;
    unsigned failures = 0;
    for (unsigned round = 0; round < options.cli_rounds; ++round) {
      auto start = Clock::now();
      int status = RunProgram(argv, query_path);
      if (status == 0) {
        times.push_back(Seconds(Clock::now() - start));
      } else {
        ++failures;
      }
    }
    Latencies summary = Summarize(times);
    report.Add({"watchman", "watchman since-query, command line, p50", Milliseconds(summary.p50), "ms", "", 0,
                std::to_string(summary.count) + " runs of 'watchman -j', process start included, " +
                    std::to_string(failures) + " failed"});
    if (failures > 0) report.Fail("watchman command line: " + std::to_string(failures) + " runs failed");
  }
}

}  // namespace dirindex::capacity
