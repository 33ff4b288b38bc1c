// Hostile HTTP clients against the real `dirindex serve` binary: a
// thousand long-polls at once, clients that hang up in the middle of a
// large response, and clients that hang up while their long-poll waits.
// The server must keep responding to other requests, wake every long-poll with
// the right change, and release each connection (its socket, its waiter
// and its memory) when the client is gone. Raw sockets play the clients,
// so each test controls exactly when a connection closes and how.
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "api/query.h"
#include "tests/http_client.h"
#include "tests/test_support.h"

namespace dirindex {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::HttpGet;
using testing::HttpRequest;
using testing::HttpResponse;
using testing::MakeDirs;
using testing::ScratchDir;
using testing::ServerProcess;
using testing::WriteFile;

rapidjson::Document ParseJson(const std::string& body) {
  rapidjson::Document document;
  document.Parse(body.c_str(), body.size());
  EXPECT_FALSE(document.HasParseError()) << body.substr(0, 500);
  if (document.HasParseError()) document.SetObject();
  return document;
}

// Raises the soft limit on open files to the hard limit, because a test
// here keeps a thousand sockets open. Returns the new soft limit.
rlim_t RaiseOpenFileLimit() {
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
  getrlimit(RLIMIT_NOFILE, &limit);
  return limit.rlim_cur;
}

// Opens a TCP connection to 127.0.0.1:port; -1 on failure.
int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = send(fd, text.data() + done, text.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

std::string GetRequest(const std::string& target) {
  return "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
}

// Closes `fd` so that the peer gets a reset (SO_LINGER with a zero
// timeout) instead of an orderly end of stream.
void CloseWithReset(int fd) {
  linger option{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, sizeof option);
  close(fd);
}

struct RawResponse {
  int status = 0;  // 0 when no complete response arrived
  std::string body;
};

// ResponseReader collects one HTTP/1.1 response with a Content-Length from
// bytes that arrive in pieces, and keeps what follows it.
class ResponseReader {
 public:
  // Takes bytes read from the socket. Returns true once a response is
  // complete.
  bool Add(const char* data, size_t size) {
    buffer_.append(data, size);
    return Complete();
  }

  bool Complete() {
    size_t header_end = buffer_.find("\r\n\r\n");
    if (header_end == std::string::npos) return false;
    std::string header = buffer_.substr(0, header_end);
    size_t length_at = header.find("Content-Length: ");
    if (length_at == std::string::npos) return false;
    size_t length = std::stoul(header.substr(length_at + 16));
    size_t body_start = header_end + 4;
    if (buffer_.size() < body_start + length) return false;
    response_.status = std::atoi(header.c_str() + 9);
    response_.body = buffer_.substr(body_start, length);
    buffer_.erase(0, body_start + length);
    return true;
  }

  RawResponse Take() { return std::exchange(response_, RawResponse()); }

 private:
  std::string buffer_;
  RawResponse response_;
};

// Reads one response from `fd`, waiting up to `timeout`.
RawResponse ReadResponse(int fd, ResponseReader& reader, milliseconds timeout) {
  if (reader.Complete()) return reader.Take();
  Clock::time_point deadline = Clock::now() + timeout;
  char buffer[65536];
  while (Clock::now() < deadline) {
    pollfd entry{fd, POLLIN, 0};
    if (poll(&entry, 1, 50) <= 0) continue;
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n <= 0) break;
    if (reader.Add(buffer, static_cast<size_t>(n))) return reader.Take();
  }
  return RawResponse();
}

// Returns the value of the sample `name` (with its labels, if any) in a
// Prometheus text exposition, or -1 when it is missing.
int64_t MetricValue(const std::string& metrics, const std::string& name) {
  size_t at = 0;
  while ((at = metrics.find(name + " ", at)) != std::string::npos) {
    if (at == 0 || metrics[at - 1] == '\n') {
      return std::stoll(metrics.substr(at + name.size() + 1));
    }
    at += name.size();
  }
  return -1;
}

// Returns the number of open file descriptors of process `pid`.
int OpenDescriptors(pid_t pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/fd";
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) return -1;
  int count = 0;
  while (dirent* item = readdir(dir)) {
    if (item->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count;
}

// The fixture serves a scratch tree as root "tree" from the real binary.
class HostileHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_GE(RaiseOpenFileLimit(), rlim_t{2048})
        << "these tests need 2048 open files; raise the hard RLIMIT_NOFILE";
    tree_ = scratch_.Sub("tree");
    MakeDirs(tree_);
    WriteFile(tree_ + "/a.txt", "alpha");
  }

  // Starts the server and waits until its first scan has indexed `files`
  // files.
  void StartServer(uint64_t files = 1) {
    port_ = testing::FreeLoopbackPort();
    ASSERT_TRUE(server_.Start({"--listen", "127.0.0.1:" + std::to_string(port_), "--index",
                               scratch_.Sub("index"), "--rescan-interval", "3600", tree_},
                              port_, scratch_.Sub("server.log")))
        << "dirindex did not start; see " << scratch_.Sub("server.log");
    ASSERT_TRUE(WaitForFiles(files)) << "the first scan did not finish";
  }

  std::string Url(const std::string& target) const { return server_.base_url() + target; }

  // Waits until the root has `files` files indexed.
  bool WaitForFiles(uint64_t files) {
    Clock::time_point deadline = Clock::now() + seconds(30);
    while (Clock::now() < deadline) {
      HttpResponse response = HttpGet(Url("/v1/roots/tree"), 5000);
      if (response.status == 200 && ParseJson(response.body)["files"].GetUint64() == files) {
        return true;
      }
      std::this_thread::sleep_for(milliseconds(50));
    }
    return false;
  }

  // Returns the cursor at the end of the feed.
  std::string LiveCursor() {
    std::string cursor;
    for (int page = 0; page < 100; ++page) {
      std::string target = "/v1/roots/tree/changes?limit=10000";
      if (!cursor.empty()) target += "&since=" + PercentEncode(cursor);
      HttpResponse response = HttpGet(Url(target));
      EXPECT_EQ(response.status, 200) << response.body;
      rapidjson::Document document = ParseJson(response.body);
      cursor = document["cursor"].GetString();
      if (!document["more"].GetBool()) break;
    }
    return cursor;
  }

  std::string Metrics() {
    HttpResponse response = HttpGet(Url("/metrics"), 5000);
    EXPECT_EQ(response.status, 200) << response.error;
    return response.body;
  }

  // Waits until the sample `name` has `value`. The /metrics request that
  // reads it has a connection of its own, which
  // dirindex_http_connections_open counts.
  ::testing::AssertionResult WaitForMetric(const std::string& name, int64_t value,
                                           milliseconds timeout) {
    Clock::time_point deadline = Clock::now() + timeout;
    int64_t seen = -1;
    while (Clock::now() < deadline) {
      seen = MetricValue(Metrics(), name);
      if (seen == value) return ::testing::AssertionSuccess();
      std::this_thread::sleep_for(milliseconds(50));
    }
    return ::testing::AssertionFailure() << name << " is " << seen << ", not " << value
                                         << ", after " << timeout.count() << " ms";
  }

  // Waits until the server has at most `count` open file descriptors.
  // Watching and scans open descriptors of their own for short times, so
  // an exact count would be flaky, but a leak of one per connection is
  // not.
  ::testing::AssertionResult WaitForDescriptorsAtMost(int count, milliseconds timeout) {
    Clock::time_point deadline = Clock::now() + timeout;
    int seen = -1;
    while (Clock::now() < deadline) {
      seen = OpenDescriptors(server_.pid());
      if (seen >= 0 && seen <= count) return ::testing::AssertionSuccess();
      std::this_thread::sleep_for(milliseconds(50));
    }
    return ::testing::AssertionFailure() << "the server has " << seen
                                         << " open file descriptors, more than " << count
                                         << ", after " << timeout.count() << " ms";
  }

  // Opens `count` connections that each send a change request waiting
  // `wait_seconds` after `cursor`, and waits until all of them wait.
  std::vector<int> OpenLongPolls(int count, const std::string& cursor, int wait_seconds) {
    std::vector<int> sockets;
    std::string request = GetRequest("/v1/roots/tree/changes?since=" + PercentEncode(cursor) +
                                     "&wait=" + std::to_string(wait_seconds));
    for (int i = 0; i < count; ++i) {
      int fd = Connect(port_);
      EXPECT_GE(fd, 0) << "connection " << i << ": " << std::strerror(errno);
      if (fd < 0) break;
      EXPECT_TRUE(SendAll(fd, request));
      sockets.push_back(fd);
    }
    EXPECT_TRUE(WaitForMetric("dirindex_long_polls_waiting", count, seconds(20)));
    return sockets;
  }

  ScratchDir scratch_;
  std::string tree_;
  ServerProcess server_;
  int port_ = 0;
};

// Ordinary requests get their responses within a few seconds while a
// thousand long-polls wait, and one commit wakes every long-poll with that change.
TEST_F(HostileHttpTest, ThousandLongPollsWakeTogether) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  std::string cursor = LiveCursor();
  std::vector<int> polls = OpenLongPolls(1000, cursor, 60);
  ASSERT_EQ(polls.size(), 1000u);
  EXPECT_TRUE(WaitForMetric("dirindex_http_connections_open", 1001, seconds(5)));

  for (const char* target :
       {"/healthz", "/v1/roots", "/v1/roots/tree", "/v1/roots/tree/files",
        "/v1/roots/tree/stat?path=a.txt", "/v1/roots/tree/changes", "/metrics"}) {
    Clock::time_point start = Clock::now();
    HttpResponse response = HttpGet(Url(target), 10'000);
    EXPECT_EQ(response.status, 200) << target << ": " << response.error;
    EXPECT_LT(Clock::now() - start, seconds(3)) << target;
  }

  WriteFile(tree_ + "/new.txt", "news");
  EXPECT_EQ(HttpRequest("POST", Url("/v1/roots/tree/rescan")).status, 202);

  std::map<int, ResponseReader> readers;
  std::map<int, RawResponse> responses;
  Clock::time_point deadline = Clock::now() + seconds(20);
  std::vector<pollfd> entries;
  char buffer[65536];
  while (responses.size() < polls.size() && Clock::now() < deadline) {
    entries.clear();
    for (int fd : polls) {
      if (responses.count(fd) == 0) entries.push_back({fd, POLLIN, 0});
    }
    if (poll(entries.data(), entries.size(), 100) <= 0) continue;
    for (const pollfd& entry : entries) {
      if (entry.revents == 0) continue;
      ssize_t n = read(entry.fd, buffer, sizeof buffer);
      if (n <= 0) {
        responses[entry.fd] = RawResponse();  // closed without a response
        continue;
      }
      if (readers[entry.fd].Add(buffer, static_cast<size_t>(n))) {
        responses[entry.fd] = readers[entry.fd].Take();
      }
    }
  }
  ASSERT_EQ(responses.size(), polls.size()) << "long-polls still waiting after 20 s";

  std::map<std::string, int> cursors;
  int woken = 0;
  for (const auto& [fd, response] : responses) {
    EXPECT_EQ(response.status, 200) << response.body;
    if (response.status != 200) continue;
    rapidjson::Document document = ParseJson(response.body);
    EXPECT_FALSE(document["fresh_instance"].GetBool());
    const auto& changes = document["changes"];
    ASSERT_EQ(changes.Size(), 1u) << response.body;
    EXPECT_STREQ(changes[0]["op"].GetString(), "added");
    EXPECT_STREQ(changes[0]["path"].GetString(), "new.txt");
    EXPECT_STREQ(changes[0]["type"].GetString(), "file");
    EXPECT_EQ(changes[0]["size"].GetUint64(), 4u);
    ++cursors[document["cursor"].GetString()];
    ++woken;
  }
  EXPECT_EQ(woken, 1000);
  EXPECT_EQ(cursors.size(), 1u) << "the woken long-polls got different cursors";

  for (int fd : polls) close(fd);
  EXPECT_TRUE(WaitForMetric("dirindex_http_connections_open", 1, seconds(5)));
  EXPECT_TRUE(WaitForMetric("dirindex_long_polls_waiting", 0, seconds(5)));
}

// Clients that hang up after the first bytes of a large response, or
// before reading anything, cost the server nothing afterwards: it keeps
// responding, and its connections and file descriptors return to where
// they were.
TEST_F(HostileHttpTest, HangupMidResponseReleasesConnection) {
  for (int i = 0; i < 10'000; ++i) {
    WriteFile(tree_ + "/file-" + std::to_string(i) + "-" + std::string(40, 'x'), "x");
  }
  ASSERT_NO_FATAL_FAILURE(StartServer(10'001));
  ASSERT_TRUE(WaitForMetric("dirindex_http_connections_open", 1, seconds(5)));
  int idle_descriptors = OpenDescriptors(server_.pid());
  ASSERT_GT(idle_descriptors, 0);

  // Each response is over a megabyte, more than the socket buffers hold.
  HttpResponse whole = HttpGet(Url("/v1/roots/tree/files?limit=10000"));
  ASSERT_EQ(whole.status, 200);
  ASSERT_GT(whole.body.size(), size_t{1} << 20);

  const char* targets[] = {"/v1/roots/tree/files?limit=10000",
                           "/v1/roots/tree/changes?limit=10000"};
  for (int i = 0; i < 60; ++i) {
    int fd = Connect(port_);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(SendAll(fd, GetRequest(targets[i % 2])));
    if (i % 3 != 2) {
      // Read the status line and a little more, then go.
      char buffer[100];
      size_t got = 0;
      while (got < sizeof buffer) {
        ssize_t n = read(fd, buffer + got, sizeof buffer - got);
        if (n <= 0) break;
        got += static_cast<size_t>(n);
      }
      EXPECT_EQ(std::string(buffer, 12), "HTTP/1.1 200");
    }
    if (i % 2 == 0) {
      CloseWithReset(fd);
    } else {
      close(fd);
    }
  }

  EXPECT_EQ(HttpGet(Url("/healthz")).status, 200);
  EXPECT_TRUE(WaitForMetric("dirindex_http_connections_open", 1, seconds(10)));
  EXPECT_TRUE(WaitForDescriptorsAtMost(idle_descriptors, seconds(10)));
  HttpResponse again = HttpGet(Url("/v1/roots/tree/files?limit=10000"));
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(again.body.size(), whole.body.size());
}

// Clients that hang up while their long-poll waits are noticed at once:
// their connections, waiters and file descriptors are released long before
// the wait would end, and a later commit wakes only the clients still
// there.
TEST_F(HostileHttpTest, HangupDuringLongPollReleasesConnection) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  ASSERT_TRUE(WaitForMetric("dirindex_http_connections_open", 1, seconds(5)));
  int idle_descriptors = OpenDescriptors(server_.pid());
  std::string cursor = LiveCursor();

  std::vector<int> polls = OpenLongPolls(200, cursor, 120);
  ASSERT_EQ(polls.size(), 200u);
  for (size_t i = 0; i < polls.size(); ++i) {
    if (i % 2 == 0) {
      CloseWithReset(polls[i]);
    } else {
      close(polls[i]);
    }
  }
  EXPECT_TRUE(WaitForMetric("dirindex_long_polls_waiting", 0, seconds(5)));
  EXPECT_TRUE(WaitForMetric("dirindex_http_connections_open", 1, seconds(5)));
  EXPECT_TRUE(WaitForDescriptorsAtMost(idle_descriptors, seconds(5)));

  // One client that stays is still woken by the next commit.
  int stays = Connect(port_);
  ASSERT_GE(stays, 0);
  ASSERT_TRUE(SendAll(stays, GetRequest("/v1/roots/tree/changes?since=" + PercentEncode(cursor) +
                                        "&wait=60")));
  ASSERT_TRUE(WaitForMetric("dirindex_long_polls_waiting", 1, seconds(5)));
  WriteFile(tree_ + "/late.txt", "late");
  EXPECT_EQ(HttpRequest("POST", Url("/v1/roots/tree/rescan")).status, 202);
  ResponseReader reader;
  RawResponse response = ReadResponse(stays, reader, seconds(20));
  ASSERT_EQ(response.status, 200) << response.body;
  rapidjson::Document document = ParseJson(response.body);
  ASSERT_EQ(document["changes"].Size(), 1u) << response.body;
  EXPECT_STREQ(document["changes"][0]["path"].GetString(), "late.txt");
  close(stays);
  EXPECT_EQ(HttpGet(Url("/healthz")).status, 200);
}

// A client may send its next request before the long-poll has responded
// (HTTP/1.1 pipelining). Both responses arrive, in order, on the same
// connection.
TEST_F(HostileHttpTest, PipelinedRequestAfterLongPollServed) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  std::string cursor = LiveCursor();
  int fd = Connect(port_);
  ASSERT_GE(fd, 0);
  Clock::time_point start = Clock::now();
  ASSERT_TRUE(SendAll(fd, GetRequest("/v1/roots/tree/changes?since=" + PercentEncode(cursor) +
                                     "&wait=1") +
                              GetRequest("/v1/roots/tree/stat?path=a.txt")));
  ResponseReader reader;
  RawResponse poll_response = ReadResponse(fd, reader, seconds(10));
  EXPECT_GE(Clock::now() - start, milliseconds(900));
  ASSERT_EQ(poll_response.status, 200) << poll_response.body;
  EXPECT_EQ(ParseJson(poll_response.body)["changes"].Size(), 0u);
  RawResponse stat_response = ReadResponse(fd, reader, seconds(10));
  ASSERT_EQ(stat_response.status, 200) << stat_response.body;
  EXPECT_STREQ(ParseJson(stat_response.body)["path"].GetString(), "a.txt");
  close(fd);
}

// A long-poll sent with "Connection: close" gets its response at the end
// of the wait, and then the server closes the connection.
TEST_F(HostileHttpTest, LongPollWithConnectionCloseEnds) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  std::string cursor = LiveCursor();
  int fd = Connect(port_);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, "GET /v1/roots/tree/changes?wait=1&since=" + PercentEncode(cursor) +
                              " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"));
  ResponseReader reader;
  RawResponse response = ReadResponse(fd, reader, seconds(10));
  ASSERT_EQ(response.status, 200) << response.body;
  EXPECT_EQ(ParseJson(response.body)["changes"].Size(), 0u);
  pollfd entry{fd, POLLIN, 0};
  ASSERT_EQ(poll(&entry, 1, 5000), 1) << "the server kept the connection open";
  char byte = 0;
  EXPECT_EQ(read(fd, &byte, 1), 0);
  close(fd);
  EXPECT_TRUE(WaitForMetric("dirindex_http_connections_open", 1, seconds(5)));
}

}  // namespace
}  // namespace dirindex
