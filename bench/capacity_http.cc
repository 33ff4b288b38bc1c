// The HTTP figures of the capacity harness. It starts the real
// `dirindex serve` on 127.0.0.1 over the synthetic tree with a private
// index. It then measures the first scan, resident memory and a full
// listing. Last come the change query after a known number of changes,
// with concurrent keep-alive clients, and the long-poll wake-up time from
// a write on disk to the client receiving the change.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <rapidjson/document.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "bench/capacity.h"

namespace dirindex::capacity {

namespace {

namespace fs = std::filesystem;

struct HttpResponse {
  unsigned status = 0;
  std::string body;
};

// HttpConnection is one keep-alive HTTP/1.1 connection to 127.0.0.1. It
// reads responses framed by Content-Length, as dirindex sends them, and
// rejects chunked ones.
class HttpConnection {
 public:
  HttpConnection() = default;
  ~HttpConnection() { Close(); }
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // Connects to 127.0.0.1:port. Each later send and receive times out
  // after `timeout_s`.
  bool Connect(int port, double timeout_s) {
    Close();
    port_ = port;
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return Failed("socket");
    timeval timeout{};
    timeout.tv_sec = static_cast<time_t>(timeout_s);
    timeout.tv_usec = static_cast<suseconds_t>((timeout_s - static_cast<double>(timeout.tv_sec)) * 1e6);
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    int on = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
      return Failed("connect to 127.0.0.1:" + std::to_string(port));
    }
    return true;
  }

  // Sends one request and reads the whole response. Returns nothing, with
  // error() set, on a socket error, a timeout or a response it cannot
  // parse. A response with `Connection: close` closes the connection.
  std::optional<HttpResponse> Send(std::string_view method, const std::string& target) {
    if (fd_ < 0) {
      error_ = "not connected";
      return std::nullopt;
    }
    std::string request = std::string(method) + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1:" +
                          std::to_string(port_) + "\r\n";
    if (method == "POST") request += "Content-Length: 0\r\n";
    request += "\r\n";

    for (size_t sent = 0; sent < request.size();) {
      ssize_t n = send(fd_, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        Failed("send");
        return std::nullopt;
      }
      sent += static_cast<size_t>(n);
    }

    size_t header_end;
    while ((header_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!ReadMore()) return std::nullopt;
    }
    HttpResponse response;
    size_t length = 0;
    bool close_after = false;
    if (!ParseHeader(std::string_view(buffer_).substr(0, header_end), response.status, length, close_after)) {
      Close();
      return std::nullopt;
    }

    size_t total = header_end + 4 + length;
    while (buffer_.size() < total) {
      if (!ReadMore()) return std::nullopt;
    }
    response.body = buffer_.substr(header_end + 4, length);
    buffer_.erase(0, total);
    if (close_after) Close();
    return response;
  }

  const std::string& error() const { return error_; }

 private:
  bool Failed(const std::string& operation) {
    error_ = operation + " failed: " + std::strerror(errno);
    Close();
    return false;
  }

  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    buffer_.clear();
  }

  bool ReadMore() {
    ssize_t received = ReceiveInto(fd_, buffer_);
    if (received > 0) return true;
    if (received == 0) {
      error_ = "connection closed by the server";
      Close();
      return false;
    }
    return Failed((errno == EAGAIN || errno == EWOULDBLOCK) ? std::string("receive (timed out)") : "receive");
  }

  // Parses the status line and the header fields this client needs.
  bool ParseHeader(std::string_view header, unsigned& status, size_t& length, bool& close_after) {
    if (header.size() < 12 || header.substr(0, 9) != "HTTP/1.1 ") {
      error_ = "response does not start with an HTTP/1.1 status line";
      return false;
    }
    status = static_cast<unsigned>(std::atoi(std::string(header.substr(9, 3)).c_str()));
    bool have_length = false;
    size_t line_start = header.find("\r\n");
    while (line_start != std::string_view::npos) {
      line_start += 2;
      size_t line_end = header.find("\r\n", line_start);
      std::string line(header.substr(line_start, line_end == std::string_view::npos ? std::string_view::npos
                                                                                     : line_end - line_start));
      for (char& c : line) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (line.rfind("content-length:", 0) == 0) {
        length = std::strtoull(line.c_str() + 15, nullptr, 10);
        have_length = true;
      } else if (line.rfind("transfer-encoding:", 0) == 0 && line.find("chunked") != std::string::npos) {
        error_ = "chunked responses are not supported by this client";
        return false;
      } else if (line.rfind("connection:", 0) == 0 && line.find("close") != std::string::npos) {
        close_after = true;
      }
      line_start = line_end;
    }
    if (!have_length) {
      error_ = "response has no Content-Length";
      return false;
    }
    return true;
  }

  int fd_ = -1;
  int port_ = 0;
  std::string buffer_;
  std::string error_;
};

// Returns a TCP port on 127.0.0.1 that was free a moment ago, or 0.
int FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  close(fd);
  return port;
}

// Percent-encodes everything but RFC 3986's unreserved characters. '+' in
// a cursor must be encoded, because the server decodes '+' to a space.
std::string UrlEncode(std::string_view text) {
  std::string encoded;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      encoded.push_back(static_cast<char>(c));
    } else {
      char escape[4];
      std::snprintf(escape, sizeof(escape), "%%%02X", c);
      encoded += escape;
    }
  }
  return encoded;
}

// ChangesPage is the part of a change feed response the harness reads.
struct ChangesPage {
  size_t changes = 0;
  std::string cursor;
  bool more = false;
  bool fresh_instance = false;
};

std::optional<ChangesPage> ParseChanges(const std::string& body) {
  rapidjson::Document document;
  document.Parse(body.data(), body.size());
  if (document.HasParseError() || !document.IsObject() || !document.HasMember("changes") ||
      !document["changes"].IsArray() || !document.HasMember("cursor") || !document["cursor"].IsString()) {
    return std::nullopt;
  }
  ChangesPage page;
  page.changes = document["changes"].Size();
  page.cursor = document["cursor"].GetString();
  page.more = document.HasMember("more") && document["more"].IsBool() && document["more"].GetBool();
  page.fresh_instance = document.HasMember("fresh_instance") && document["fresh_instance"].IsBool() &&
                        document["fresh_instance"].GetBool();
  return page;
}

// RootState is the part of GET /v1/roots/{root} the harness reads.
struct RootState {
  std::string state;
  uint64_t scans = 0;
  uint64_t last_seq = 0;
  double last_scan_ms = -1;
  bool watching = false;  // inotify watching is enabled and running
};

std::optional<RootState> ParseRoot(const std::string& body) {
  rapidjson::Document document;
  document.Parse(body.data(), body.size());
  if (document.HasParseError() || !document.IsObject() || !document.HasMember("state") ||
      !document["state"].IsString() || !document.HasMember("scans") || !document["scans"].IsUint64()) {
    return std::nullopt;
  }
  RootState root;
  root.state = document["state"].GetString();
  root.scans = document["scans"].GetUint64();
  if (document.HasMember("last_seq") && document["last_seq"].IsUint64()) root.last_seq = document["last_seq"].GetUint64();
  if (document.HasMember("watch") && document["watch"].IsObject()) {
    const auto& watch = document["watch"];
    auto flag = [&](const char* name) { return watch.HasMember(name) && watch[name].IsBool() && watch[name].GetBool(); };
    root.watching = flag("enabled") && flag("running");
  }
  if (document.HasMember("last_scan") && document["last_scan"].IsObject()) {
    const auto& last = document["last_scan"];
    if (last.HasMember("duration_ms") && last["duration_ms"].IsNumber()) {
      root.last_scan_ms = last["duration_ms"].GetDouble();
    }
  }
  return root;
}

// Returns the value of the metric line `name VALUE`, or -1 when absent.
double MetricValue(const std::string& text, const std::string& name) {
  size_t at = 0;
  while ((at = text.find(name + " ", at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') return std::strtod(text.c_str() + at + name.size() + 1, nullptr);
    at += name.size();
  }
  return -1;
}

// ServerUnderTest is a running `dirindex serve` and one control connection.
class ServerUnderTest {
 public:
  ~ServerUnderTest() { process_.Stop(SIGTERM, std::chrono::seconds(20)); }

  // Starts the server on a free port and waits for /healthz, then finds
  // the root's name. Returns an error message, or an empty string.
  std::string Start(const std::string& binary, const std::string& tree, const std::string& index_dir,
                    const std::string& log_path) {
    port_ = FreeLoopbackPort();
    if (port_ == 0) return "no free port on 127.0.0.1";
    std::vector<std::string> argv = {binary, "serve", tree, "--listen", "127.0.0.1:" + std::to_string(port_),
                                     "--index", index_dir, "--rescan-interval", "86400"};
    if (!process_.Start(argv, log_path)) return "starting " + binary + " failed";
    auto deadline = Clock::now() + std::chrono::seconds(30);
    for (;;) {
      if (!process_.Running()) return binary + " serve exited at start; see " + log_path;
      if (control_.Connect(port_, 5)) {
        auto health = control_.Send("GET", "/healthz");
        if (health && health->status == 200) break;
      }
      if (Clock::now() > deadline) return "/healthz did not return 200 within 30 s; see " + log_path;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    auto roots = Get("/v1/roots");
    rapidjson::Document document;
    if (roots) document.Parse(roots->body.data(), roots->body.size());
    if (!roots || document.HasParseError() || !document.IsObject() || !document.HasMember("roots") ||
        !document["roots"].IsArray() || document["roots"].Empty() || !document["roots"][0].IsObject() ||
        !document["roots"][0].HasMember("name") || !document["roots"][0]["name"].IsString()) {
      return "GET /v1/roots did not return a root";
    }
    root_ = document["roots"][0]["name"].GetString();
    return "";
  }

  std::optional<HttpResponse> Get(const std::string& target) { return Request("GET", target); }

  std::optional<HttpResponse> Request(std::string_view method, const std::string& target) {
    auto response = control_.Send(method, target);
    if (!response && control_.Connect(port_, 60)) response = control_.Send(method, target);
    return response;
  }

  std::optional<RootState> Root() {
    auto response = Get("/v1/roots/" + UrlEncode(root_));
    if (!response || response->status != 200) return std::nullopt;
    return ParseRoot(response->body);
  }

  // Waits until the root has completed more than `scans` scans and is not
  // scanning. Returns the state, or nothing on a timeout or a failed scan.
  std::optional<RootState> WaitScans(uint64_t scans, std::chrono::seconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline && process_.Running()) {
      auto root = Root();
      if (root && root->scans > scans && root->state != "scanning") {
        if (root->state == "error") return std::nullopt;
        return root;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return std::nullopt;
  }

  // Waits until the root is not scanning and its newest change has stayed
  // the same for `quiet`, so that watch-driven scans have finished too.
  std::optional<RootState> WaitIdle(std::chrono::milliseconds quiet, std::chrono::seconds timeout) {
    auto deadline = Clock::now() + timeout;
    std::optional<RootState> previous;
    auto stable_since = Clock::now();
    while (Clock::now() < deadline && process_.Running()) {
      auto root = Root();
      if (!root) return std::nullopt;
      bool same = previous && previous->last_seq == root->last_seq && root->state != "scanning";
      if (!same) stable_since = Clock::now();
      if (same && Clock::now() - stable_since >= quiet) return root;
      previous = root;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return std::nullopt;
  }

  std::string ChangesTarget(const std::string& cursor, unsigned limit, double wait_s = 0) const {
    std::string target = "/v1/roots/" + UrlEncode(root_) + "/changes?limit=" + std::to_string(limit);
    if (!cursor.empty()) target += "&since=" + UrlEncode(cursor);
    if (wait_s > 0) {
      char wait[32];
      std::snprintf(wait, sizeof(wait), "%.3f", wait_s);
      target += std::string("&wait=") + wait;
    }
    return target;
  }

  std::string RescanTarget() const { return "/v1/roots/" + UrlEncode(root_) + "/rescan"; }

  pid_t pid() const { return process_.pid(); }
  int port() const { return port_; }
  const std::string& root() const { return root_; }
  const std::string& control_error() const { return control_.error(); }

 private:
  ChildProcess process_;
  HttpConnection control_;
  int port_ = 0;
  std::string root_;
};

double Mib(uint64_t bytes) { return static_cast<double>(bytes) / 1048576.0; }

// Pages through the change feed from `cursor` until `more` is false.
// Returns the last cursor and the number of changes, or nothing.
std::optional<ChangesPage> ReadFeed(ServerUnderTest& server, const std::string& cursor) {
  ChangesPage total;
  total.cursor = cursor;
  for (;;) {
    auto response = server.Get(server.ChangesTarget(total.cursor, 10'000));
    if (!response || response->status != 200) return std::nullopt;
    auto page = ParseChanges(response->body);
    if (!page) return std::nullopt;
    total.changes += page->changes;
    total.cursor = page->cursor;
    total.fresh_instance = total.fresh_instance || page->fresh_instance;
    if (!page->more) return total;
  }
}

void MeasureChangeQuery(ServerUnderTest& server, const std::string& since, uint64_t expected,
                        const HttpOptions& options, Report& report) {
  unsigned limit = static_cast<unsigned>(std::clamp<uint64_t>(expected, 1, 10'000));
  std::string target = server.ChangesTarget(since, limit);
  auto connect = [&](unsigned) -> RequestFunction {
    auto connection = std::make_shared<HttpConnection>();
    if (!connection->Connect(server.port(), 30)) return {};
    auto first = connection->Send("GET", target);
    if (!first || first->status != 200) return {};
    size_t expected_size = first->body.size();
    return [connection, target, expected_size] {
      auto response = connection->Send("GET", target);
      return response && response->status == 200 && response->body.size() == expected_size;
    };
  };
  std::string per_response = std::to_string(expected);
  std::vector<unsigned> client_counts = {1};
  if (options.clients > 1) client_counts.push_back(options.clients);
  for (unsigned clients : client_counts) {
    LoadResult load = RunClients(clients, options.requests, 10, connect);
    std::string label = "dirindex change query, " + std::to_string(clients) + (clients == 1 ? " client" : " clients");
    std::string watchman = "watchman since-query, direct socket, " + std::to_string(clients) +
                           (clients == 1 ? " client" : " clients");
    char note[160];
    std::snprintf(note, sizeof(note), "%s changes per response, %zu requests, %.0f requests/s, %llu failed",
                  per_response.c_str(), load.latencies.count, load.requests_per_second,
                  static_cast<unsigned long long>(load.failures));
    report.Add({"http", label + ", p50", Milliseconds(load.latencies.p50), "ms", watchman + ", p50", 0, note});
    report.Add({"http", label + ", p99", Milliseconds(load.latencies.p99), "ms", watchman + ", p99", 0, ""});
    if (load.failures > 0) report.Fail(label + ": " + std::to_string(load.failures) + " requests failed");
  }
}

// Writes a short, round-dependent content to `path`, which changes its
// size or its modification time.
bool WriteFile(const std::string& path, unsigned round) {
  int fd = open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) return false;
  std::string content = "wake " + std::string(round % 2 ? "odd " : "") + std::to_string(round) + "\n";
  bool ok = write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
  return close(fd) == 0 && ok;
}

// Measures the time from a write on disk to a waiting long-poll client
// receiving the change. With `trigger_rescan` each write is followed by
// POST .../rescan; otherwise the server must notice it by itself.
void MeasureWakeUp(ServerUnderTest& server, const std::string& tree, const Shape& shape, std::string cursor,
                   bool trigger_rescan, const HttpOptions& options, Report& report) {
  std::string path = SpreadFiles(tree, shape, 1).front();
  std::vector<double> latencies;
  unsigned timeouts = 0;
  unsigned failures = 0;
  double scan_ms = -1;
  HttpConnection waiter;
  for (unsigned round = 0; round < options.wake_rounds; ++round) {
    if (!waiter.Connect(server.port(), options.wake_timeout_s + 30)) {
      ++failures;
      continue;
    }
    std::optional<HttpResponse> response;
    Clock::time_point received;
    std::string target = server.ChangesTarget(cursor, 1000, options.wake_timeout_s);
    std::thread client([&] {
      response = waiter.Send("GET", target);
      received = Clock::now();
    });
    // The write must come after the server has parked the long-poll, or
    // the change would be found without waiting.
    auto parked_deadline = Clock::now() + std::chrono::seconds(5);
    bool parked = false;
    while (!parked && Clock::now() < parked_deadline) {
      auto metrics = server.Get("/metrics");
      double waiting = metrics ? MetricValue(metrics->body, "dirindex_long_polls_waiting") : -1;
      if (waiting < 0) {
        // Without the gauge, give the request time to arrive instead.
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        parked = true;
      } else if (waiting >= 1) {
        parked = true;
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
    Clock::time_point written = Clock::now();
    bool write_ok = WriteFile(path, round);
    if (write_ok && trigger_rescan) {
      auto rescan = server.Request("POST", server.RescanTarget());
      if (!rescan || rescan->status != 202) ++failures;
    }
    client.join();
    if (!write_ok || !response || response->status != 200) {
      ++failures;
      continue;
    }
    auto page = ParseChanges(response->body);
    if (!page) {
      ++failures;
      continue;
    }
    cursor = page->cursor;
    if (page->changes == 0) {
      ++timeouts;
    } else {
      latencies.push_back(Seconds(received - written));
    }
    // Start the next round with no scan running or pending.
    auto idle = server.WaitIdle(std::chrono::milliseconds(300), std::chrono::seconds(120));
    if (idle) scan_ms = idle->last_scan_ms;
  }
  Latencies summary = Summarize(latencies);
  char note[240];
  std::snprintf(note, sizeof(note), "trigger: %s; %zu rounds answered, %u timed out, %u failed; last scan %.0f ms",
                trigger_rescan ? "POST rescan after the write" : "the server's inotify watch", summary.count, timeouts,
                failures, scan_ms);
  report.Add({"http", "long-poll wake-up, write to response, p50", Milliseconds(summary.p50), "ms", "", 0, note});
  report.Add({"http", "long-poll wake-up, write to response, p99", Milliseconds(summary.p99), "ms", "", 0, ""});
  if (failures > 0) report.Fail("long-poll wake-up: " + std::to_string(failures) + " rounds failed");
}

}  // namespace

void MeasureHttp(const std::string& tree, const std::string& scratch, const Shape& shape,
                 const HttpOptions& options, Report& report) {
  if (options.clients == 0) return;
  if (access(options.binary.c_str(), X_OK) != 0) {
    report.Skip("HTTP figures: dirindex binary '" + options.binary +
                "' not found; build the target dirindex or pass --dirindex-binary");
    return;
  }
  if (options.wake_trigger != "auto" && options.wake_trigger != "rescan" && options.wake_trigger != "watch") {
    report.Fail("--wake-trigger must be 'auto', 'rescan' or 'watch', not '" + options.wake_trigger + "'");
    return;
  }
  std::string index_dir = scratch + "/serve-index";
  std::string log_path = scratch + "/serve.log";
  fs::remove_all(index_dir);
  fs::remove(log_path);
  std::printf("HTTP: starting %s serve (log %s), load %s\n", options.binary.c_str(), log_path.c_str(),
              LoadAverage().c_str());

  auto started = Clock::now();
  ServerUnderTest server;
  std::string error = server.Start(options.binary, tree, index_dir, log_path);
  if (!error.empty()) {
    report.Fail("HTTP figures: " + error);
    return;
  }
  auto first = server.WaitScans(0, std::chrono::seconds(3600));
  double first_scan_done = Seconds(Clock::now() - started);
  if (!first || !server.WaitIdle(std::chrono::milliseconds(300), std::chrono::seconds(3600))) {
    report.Fail("HTTP figures: the first scan did not complete; see " + log_path);
    return;
  }
  report.Add({"http", "dirindex serve, start to first scan committed", first_scan_done, "s",
              "watchman crawl, start to first query answered", 0,
              "first scan " + std::to_string(static_cast<int64_t>(first->last_scan_ms)) + " ms"});
  report.Add({"http", "dirindex serve resident memory after the first scan", Mib(ResidentBytes(server.pid())), "MiB",
              "watchman resident memory after the crawl", 0, ResidentNote(server.pid())});

  auto listing_start = Clock::now();
  auto listing = ReadFeed(server, "");
  if (!listing) {
    report.Fail("HTTP figures: reading the fresh-instance listing failed: " + server.control_error());
    return;
  }
  report.Add({"http", "dirindex full listing over HTTP, pages of 10,000", Seconds(Clock::now() - listing_start), "s",
              "watchman full query, all files", 0, std::to_string(listing->changes) + " entries"});
  report.Add({"http", "dirindex serve resident memory after the full listing", Mib(ResidentBytes(server.pid())),
              "MiB", "watchman resident memory after the full query", 0, ResidentNote(server.pid())});

  // Change query: touch files and rescan (a watching server may find them
  // first), then read the changes since the cursor from before the touch.
  std::vector<std::string> touched = SpreadFiles(tree, shape, options.touched);
  TouchFiles(touched);
  auto rescan = server.Request("POST", server.RescanTarget());
  if (!rescan || rescan->status != 202) {
    report.Fail("HTTP figures: POST rescan after touching files failed");
    return;
  }
  std::optional<ChangesPage> changes;
  for (int attempt = 0; attempt < 20; ++attempt) {
    auto idle = server.WaitIdle(std::chrono::milliseconds(500), std::chrono::seconds(3600));
    changes = ReadFeed(server, listing->cursor);
    if (!idle || !changes || changes->changes >= touched.size()) break;
  }
  if (!changes) {
    report.Fail("HTTP figures: reading the changes after the touch failed");
    return;
  }
  if (changes->changes != touched.size()) {
    std::printf("HTTP: expected %zu changes after the touch, the feed has %zu\n", touched.size(), changes->changes);
  }
  std::printf("HTTP: change query, %zu changes, load %s\n", changes->changes, LoadAverage().c_str());
  MeasureChangeQuery(server, listing->cursor, changes->changes, options, report);

  if (options.wake_rounds > 0) {
    auto root = server.Root();
    bool watching = root && root->watching;
    bool trigger_rescan = options.wake_trigger == "rescan" || (options.wake_trigger == "auto" && !watching);
    std::printf("HTTP: long-poll wake-up, %u rounds, trigger %s (server watching: %s), load %s\n",
                options.wake_rounds, trigger_rescan ? "POST rescan" : "the server's inotify watch",
                watching ? "yes" : "no", LoadAverage().c_str());
    MeasureWakeUp(server, tree, shape, changes->cursor, trigger_rescan, options, report);
  }
}

}  // namespace dirindex::capacity
