// End-to-end tests of the HTTP API: the real Service (index, scheduler,
// local walker, Beast server) on 127.0.0.1 with an ephemeral port, a
// scratch tree and libcurl as the client. The file also contains unit
// tests of the pieces behind the server: JSON bodies, commit waiters and
// the log limiter.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <future>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <curl/curl.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "api/json.h"
#include "api/log_limiter.h"
#include "api/long_poll.h"
#include "api/query.h"
#include "api/service.h"
#include "index/paths.h"
#include "tests/test_support.h"

namespace dirindex {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using testing::MakeDirs;
using testing::ScratchDir;
using testing::WriteFile;

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// ---------------------------------------------------------------------------
// A libcurl client that keeps the status, body and response headers.

struct Reply {
  long status = 0;  // 0 when no response arrived
  std::string body;
  std::string headers;
  std::string error;
};

size_t AppendTo(char* data, size_t size, size_t count, void* target) {
  static_cast<std::string*>(target)->append(data, size * count);
  return size * count;
}

class CurlClient {
 public:
  CurlClient() : curl_(curl_easy_init()) {}
  ~CurlClient() { curl_easy_cleanup(curl_); }
  CurlClient(const CurlClient&) = delete;
  CurlClient& operator=(const CurlClient&) = delete;

  Reply Send(const std::string& method, const std::string& url,
             const std::vector<std::string>& headers = {},
             const std::string& body = "", long timeout_ms = 30'000) {
    Reply reply;
    curl_slist* header_list = nullptr;
    for (const std::string& header : headers) {
      header_list = curl_slist_append(header_list, header.c_str());
    }
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl_, CURLOPT_CUSTOMREQUEST, method.c_str());
    if (method == "POST") {
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body.c_str());
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE,
                       static_cast<long>(body.size()));
    } else {
      curl_easy_setopt(curl_, CURLOPT_HTTPGET, 1L);
      curl_easy_setopt(curl_, CURLOPT_CUSTOMREQUEST, method.c_str());
    }
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, header_list);
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, AppendTo);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &reply.body);
    curl_easy_setopt(curl_, CURLOPT_HEADERFUNCTION, AppendTo);
    curl_easy_setopt(curl_, CURLOPT_HEADERDATA, &reply.headers);
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl_, CURLOPT_NOPROXY, "*");
    CURLcode code = curl_easy_perform(curl_);
    if (code == CURLE_OK) {
      curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &reply.status);
    } else {
      reply.error = curl_easy_strerror(code);
    }
    curl_slist_free_all(header_list);
    return reply;
  }

  long NewConnections() {
    long count = -1;
    curl_easy_getinfo(curl_, CURLINFO_NUM_CONNECTS, &count);
    return count;
  }

 private:
  CURL* curl_;
};

Reply Fetch(const std::string& method, const std::string& url,
            const std::vector<std::string>& headers = {},
            const std::string& body = "") {
  CurlClient client;
  return client.Send(method, url, headers, body);
}

rapidjson::Document ParseJson(const std::string& body) {
  rapidjson::Document document;
  document.Parse(body.c_str(), body.size());
  EXPECT_FALSE(document.HasParseError()) << body;
  return document;
}

std::string ErrorCode(const Reply& reply) {
  rapidjson::Document document = ParseJson(reply.body);
  if (!document.IsObject() || !document.HasMember("error")) return "";
  return document["error"]["code"].GetString();
}

std::string ErrorMessage(const Reply& reply) {
  rapidjson::Document document = ParseJson(reply.body);
  if (!document.IsObject() || !document.HasMember("error")) return "";
  return document["error"]["message"].GetString();
}

// A change as the feed shows it, reduced to what the tests compare.
struct SeenChange {
  uint64_t seq = 0;
  std::string op;
  std::string path;
  std::string type;
};

// Opens a plain TCP connection to 127.0.0.1:port; -1 on failure.
int ConnectLoopback(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Waits up to `timeout` for the peer to close `fd`. Returns true when a
// read returned end of file or a reset.
bool WaitForPeerClose(int fd, milliseconds timeout) {
  Clock::time_point deadline = Clock::now() + timeout;
  char buffer[4096];
  while (Clock::now() < deadline) {
    pollfd entry{fd, POLLIN, 0};
    int left = static_cast<int>(
        std::chrono::duration_cast<milliseconds>(deadline - Clock::now())
            .count());
    if (poll(&entry, 1, std::max(left, 1)) <= 0) continue;
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n <= 0) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------
// The fixture: a scratch tree served as root "tree".

class HttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MakeDirs(scratch_.Sub("tree/dir/sub"));
    WriteFile(scratch_.Sub("tree/a.txt"), "alpha");
    WriteFile(scratch_.Sub("tree/dir/b.txt"), "bravo!");
    WriteFile(scratch_.Sub("tree/dir/sub/c.txt"), "charlie");
  }

  void TearDown() override {
    if (service_) service_->Stop();
  }

  Config MakeConfig() const {
    Config config;
    config.listen = "127.0.0.1:0";
    config.index_dir = scratch_.Sub("index");
    RootConfig root;
    root.name = "tree";
    root.source = "file://" + scratch_.Sub("tree");
    root.local_path = scratch_.Sub("tree");
    root.rescan_interval = std::chrono::hours(1);
    config.roots.push_back(root);
    return config;
  }

  HttpLimits MakeLimits() const {
    HttpLimits limits;
    limits.request_timeout = milliseconds(1500);
    return limits;
  }

  void StartService(const Config& config) {
    StartService(config, MakeLimits());
  }

  void StartService(const Config& config, const HttpLimits& limits) {
    Result<std::unique_ptr<Service>> service = Service::Start(config, limits);
    ASSERT_TRUE(service.ok()) << service.status().ToString();
    service_ = std::move(*service);
  }

  // Starts the default service and waits until a scan has indexed the tree.
  void StartAndScan() {
    ASSERT_NO_FATAL_FAILURE(StartService(MakeConfig()));
    ASSERT_NO_FATAL_FAILURE(RescanAndWait());
  }

  std::string Url(const std::string& target) const {
    return "http://127.0.0.1:" + std::to_string(service_->port()) + target;
  }

  void RescanAndWait() {
    Reply reply = Fetch("POST", Url("/v1/roots/tree/rescan"));
    ASSERT_EQ(reply.status, 202) << reply.body << reply.error;
    rapidjson::Document document = ParseJson(reply.body);
    uint64_t id = document["rescan_id"].GetUint64();
    ASSERT_TRUE(service_->scheduler().WaitForScan("tree", id,
                                                  std::chrono::seconds(30)));
  }

  // Reads the feed from `since` (empty for a fresh instance) page by page
  // until `more` is false. Returns the changes and sets the final cursor.
  std::vector<SeenChange> ReadAll(const std::string& since, size_t limit,
                                  std::string* cursor, int* pages = nullptr) {
    std::vector<SeenChange> changes;
    std::string next = since;
    for (int page = 0; page < 1000; ++page) {
      std::string target =
          "/v1/roots/tree/changes?limit=" + std::to_string(limit);
      if (!next.empty()) target += "&since=" + PercentEncode(next);
      Reply reply = Fetch("GET", Url(target));
      EXPECT_EQ(reply.status, 200) << reply.body;
      rapidjson::Document document = ParseJson(reply.body);
      for (const auto& change : document["changes"].GetArray()) {
        changes.push_back({change["seq"].GetUint64(), change["op"].GetString(),
                           change["path"].GetString(),
                           change["type"].GetString()});
      }
      next = document["cursor"].GetString();
      if (pages != nullptr) *pages = page + 1;
      if (!document["more"].GetBool()) break;
    }
    *cursor = next;
    return changes;
  }

  std::string LiveCursor() {
    std::string cursor;
    ReadAll("", kMaxLimit, &cursor);
    return cursor;
  }

  ScratchDir scratch_;
  std::unique_ptr<Service> service_;
};

std::set<std::string> PathsOf(const std::vector<SeenChange>& changes) {
  std::set<std::string> paths;
  for (const SeenChange& change : changes) paths.insert(change.path);
  return paths;
}

TEST_F(HttpTest, RootsListShowsScannedRoot) {
  ASSERT_NO_FATAL_FAILURE(StartAndScan());
  Reply reply = Fetch("GET", Url("/v1/roots"));
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_TRUE(Contains(reply.headers, "application/json"));

  rapidjson::Document document = ParseJson(reply.body);
  ASSERT_EQ(document["roots"].Size(), 1u);
  const auto& root = document["roots"][0];
  EXPECT_STREQ(root["name"].GetString(), "tree");
  EXPECT_EQ(root["source"].GetString(), "file://" + scratch_.Sub("tree"));
  EXPECT_EQ(root["files"].GetUint64(), 3u);
  EXPECT_EQ(root["dirs"].GetUint64(), 2u);
  EXPECT_GE(root["scans"].GetUint64(), 1u);
  EXPECT_GT(root["last_seq"].GetUint64(), 0u);
  EXPECT_TRUE(root["last_scan"].IsObject());
  EXPECT_TRUE(root["last_error"].IsNull());

  Reply one = Fetch("GET", Url("/v1/roots/tree"));
  ASSERT_EQ(one.status, 200) << one.body;
  EXPECT_STREQ(ParseJson(one.body)["name"].GetString(), "tree");
}

TEST_F(HttpTest, UnknownRootIs404) {
  ASSERT_NO_FATAL_FAILURE(StartService(MakeConfig()));
  for (const char* target :
       {"/v1/roots/nope", "/v1/roots/nope/changes", "/v1/roots/nope/files",
        "/v1/roots/nope/stat?path=a"}) {
    Reply reply = Fetch("GET", Url(target));
    EXPECT_EQ(reply.status, 404) << target;
    EXPECT_EQ(ErrorCode(reply), "not_found") << reply.body;
    EXPECT_TRUE(Contains(ErrorMessage(reply), "'nope'")) << reply.body;
  }
  Reply rescan = Fetch("POST", Url("/v1/roots/nope/rescan"));
  EXPECT_EQ(rescan.status, 404);
}

TEST_F(HttpTest, UnknownRouteAndParameterRejected) {
  ASSERT_NO_FATAL_FAILURE(StartService(MakeConfig()));
  Reply route = Fetch("GET", Url("/v1/nothing"));
  EXPECT_EQ(route.status, 404);
  EXPECT_EQ(ErrorCode(route), "not_found");

  Reply parameter = Fetch("GET", Url("/v1/roots/tree/changes?sinse=x"));
  EXPECT_EQ(parameter.status, 400);
  EXPECT_TRUE(Contains(ErrorMessage(parameter), "'sinse'"));
}

TEST_F(HttpTest, WrongMethodIs405WithAllow) {
  ASSERT_NO_FATAL_FAILURE(StartService(MakeConfig()));
  Reply post = Fetch("POST", Url("/v1/roots"));
  EXPECT_EQ(post.status, 405);
  EXPECT_TRUE(Contains(post.headers, "Allow: GET")) << post.headers;
  EXPECT_EQ(ErrorCode(post), "method_not_allowed");

  Reply get = Fetch("GET", Url("/v1/roots/tree/rescan"));
  EXPECT_EQ(get.status, 405);
  EXPECT_TRUE(Contains(get.headers, "Allow: POST")) << get.headers;

  Reply put = Fetch("PUT", Url("/v1/roots/tree/changes"));
  EXPECT_EQ(put.status, 405);
}

TEST_F(HttpTest, FreshInstanceWithoutSince) {
  ASSERT_NO_FATAL_FAILURE(StartAndScan());
  Reply reply = Fetch("GET", Url("/v1/roots/tree/changes"));
  ASSERT_EQ(reply.status, 200) << reply.body;
  rapidjson::Document document = ParseJson(reply.body);
  EXPECT_STREQ(document["root"].GetString(), "tree");
  EXPECT_TRUE(document["fresh_instance"].GetBool());
  EXPECT_FALSE(document["more"].GetBool());
  EXPECT_FALSE(std::string(document["cursor"].GetString()).empty());

  std::set<std::string> files;
  for (const auto& change : document["changes"].GetArray()) {
    EXPECT_STREQ(change["op"].GetString(), "added");
    EXPECT_TRUE(change.HasMember("seq"));
    EXPECT_FALSE(change.HasMember("old_path"));
    if (std::string(change["type"].GetString()) == "file") {
      files.insert(change["path"].GetString());
      EXPECT_TRUE(change.HasMember("size"));
      EXPECT_TRUE(change.HasMember("mtime_ns"));
    }
  }
  EXPECT_EQ(files,
            (std::set<std::string>{"a.txt", "dir/b.txt", "dir/sub/c.txt"}));
}

TEST_F(HttpTest, PagingWithLimitReachesLiveCursor) {
  MakeDirs(scratch_.Sub("tree/many"));
  for (int i = 0; i < 25; ++i) {
    WriteFile(scratch_.Sub("tree/many/f" + std::to_string(i)), "x");
  }
  ASSERT_NO_FATAL_FAILURE(StartAndScan());

  std::string cursor;
  int pages = 0;
  std::vector<SeenChange> changes = ReadAll("", 10, &cursor, &pages);
  EXPECT_GE(pages, 3);
  std::set<std::string> paths = PathsOf(changes);
  for (int i = 0; i < 25; ++i) {
    EXPECT_EQ(paths.count("many/f" + std::to_string(i)), 1u) << i;
  }
  EXPECT_EQ(paths.count("a.txt"), 1u);

  // The final cursor is live: nothing new, not a fresh instance.
  Reply reply = Fetch(
      "GET", Url("/v1/roots/tree/changes?since=" + PercentEncode(cursor)));
  ASSERT_EQ(reply.status, 200) << reply.body;
  rapidjson::Document document = ParseJson(reply.body);
  EXPECT_FALSE(document["fresh_instance"].GetBool());
  EXPECT_EQ(document["changes"].Size(), 0u);
  EXPECT_FALSE(document["more"].GetBool());
}

TEST_F(HttpTest, ChangesAppearInOrderAfterRescan) {
  ASSERT_NO_FATAL_FAILURE(StartAndScan());
  std::string cursor = LiveCursor();

  WriteFile(scratch_.Sub("tree/new.txt"), "new");
  ASSERT_NO_FATAL_FAILURE(RescanAndWait());
  WriteFile(scratch_.Sub("tree/a.txt"), "alpha, now longer");
  ASSERT_NO_FATAL_FAILURE(RescanAndWait());
  ASSERT_EQ(unlink(scratch_.Sub("tree/dir/b.txt").c_str()), 0);
  ASSERT_NO_FATAL_FAILURE(RescanAndWait());
  ASSERT_EQ(rename(scratch_.Sub("tree/dir/sub/c.txt").c_str(),
                   scratch_.Sub("tree/dir/sub/c.txt.success").c_str()),
            0);
  ASSERT_NO_FATAL_FAILURE(RescanAndWait());

  std::string live;
  std::vector<SeenChange> changes = ReadAll(cursor, 1000, &live);
  for (size_t i = 1; i < changes.size(); ++i) {
    EXPECT_LT(changes[i - 1].seq, changes[i].seq);
  }
  // Directories whose mtime changed may appear as modified too, so only
  // the file changes are compared.
  std::vector<std::pair<std::string, std::string>> file_changes;
  for (const SeenChange& change : changes) {
    if (change.type == "file")
      file_changes.emplace_back(change.op, change.path);
  }
  ASSERT_GE(file_changes.size(), 4u);
  EXPECT_EQ(file_changes[0],
            (std::pair<std::string, std::string>("added", "new.txt")));
  EXPECT_EQ(file_changes[1],
            (std::pair<std::string, std::string>("modified", "a.txt")));
  EXPECT_EQ(file_changes[2],
            (std::pair<std::string, std::string>("deleted", "dir/b.txt")));
  // A rename is reported as deleted plus added, in either order, or as
  // one renamed change.
  std::set<std::pair<std::string, std::string>> rename_ops(
      file_changes.begin() + 3, file_changes.end());
  bool as_pair = rename_ops.count({"deleted", "dir/sub/c.txt"}) == 1 &&
                 rename_ops.count({"added", "dir/sub/c.txt.success"}) == 1;
  bool as_rename = rename_ops.count({"renamed", "dir/sub/c.txt.success"}) == 1;
  EXPECT_TRUE(as_pair || as_rename);
}

TEST_F(HttpTest, LongPollWakesOnChange) {
  ASSERT_NO_FATAL_FAILURE(StartAndScan());
  std::string cursor = LiveCursor();

  Clock::time_point start = Clock::now();
  std::future<Reply> poll = std::async(std::launch::async, [&] {
    return Fetch("GET", Url("/v1/roots/tree/changes?wait=60&since=" +
                            PercentEncode(cursor)));
  });
  std::this_thread::sleep_for(milliseconds(300));
  WriteFile(scratch_.Sub("tree/late.txt"), "late");
  ASSERT_NO_FATAL_FAILURE(RescanAndWait());

  ASSERT_EQ(poll.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  Reply reply = poll.get();
  auto elapsed = Clock::now() - start;
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_LT(elapsed, std::chrono::seconds(20));

  rapidjson::Document document = ParseJson(reply.body);
  EXPECT_FALSE(document["fresh_instance"].GetBool());
  std::set<std::string> paths;
  for (const auto& change : document["changes"].GetArray()) {
    paths.insert(change["path"].GetString());
  }
  EXPECT_EQ(paths.count("late.txt"), 1u) << reply.body;
  EXPECT_NE(document["cursor"].GetString(), cursor);
}

TEST_F(HttpTest, LongPollReturnsEmptyAtTimeout) {
  ASSERT_NO_FATAL_FAILURE(StartAndScan());
  std::string cursor = LiveCursor();

  Clock::time_point start = Clock::now();
  Reply reply = Fetch("GET", Url("/v1/roots/tree/changes?wait=1&since=" +
                                 PercentEncode(cursor)));
  auto elapsed = Clock::now() - start;
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_GE(elapsed, milliseconds(950));
  EXPECT_LT(elapsed, milliseconds(5000));

  rapidjson::Document document = ParseJson(reply.body);
  EXPECT_EQ(document["changes"].Size(), 0u);
  EXPECT_FALSE(document["fresh_instance"].GetBool());
  EXPECT_EQ(document["cursor"].GetString(), cursor);
}

TEST_F(HttpTest, MetricsCountWaitingLongPolls) {
  ASSERT_NO_FATAL_FAILURE(StartAndScan());
  std::string cursor = LiveCursor();
  std::future<Reply> poll = std::async(std::launch::async, [&] {
    return Fetch("GET", Url("/v1/roots/tree/changes?wait=2&since=" +
                            PercentEncode(cursor)));
  });
  std::this_thread::sleep_for(milliseconds(500));
  Reply metrics = Fetch("GET", Url("/metrics"));
  EXPECT_TRUE(Contains(metrics.body, "dirindex_long_polls_waiting 1\n"))
      << metrics.body;
  EXPECT_EQ(poll.get().status, 200);
}

TEST_F(HttpTest, MalformedParametersAre400) {
  ASSERT_NO_FATAL_FAILURE(StartAndScan());
  struct Case {
    const char* query;
    const char* named;
  };
  for (const Case& c :
       {Case{"since=not-a-cursor", "not-a-cursor"}, Case{"limit=0", "limit"},
        Case{"limit=-5", "limit"}, Case{"limit=abc", "limit"},
        Case{"limit=10001", "limit"},
        Case{"limit=99999999999999999999", "limit"}, Case{"wait=-1", "wait"},
        Case{"wait=abc", "wait"}, Case{"wait=301", "wait"}}) {
    Reply reply =
        Fetch("GET", Url(std::string("/v1/roots/tree/changes?") + c.query));
    EXPECT_EQ(reply.status, 400) << c.query << ": " << reply.body;
    EXPECT_EQ(ErrorCode(reply), "invalid_argument") << c.query;
    EXPECT_TRUE(Contains(ErrorMessage(reply), c.named))
        << c.query << ": " << reply.body;
  }
}

TEST_F(HttpTest, StatReturnsEntryOr404) {
  ASSERT_NO_FATAL_FAILURE(StartAndScan());
  Reply file = Fetch("GET", Url("/v1/roots/tree/stat?path=dir%2Fb.txt"));
  ASSERT_EQ(file.status, 200) << file.body;
  rapidjson::Document entry = ParseJson(file.body);
  EXPECT_STREQ(entry["path"].GetString(), "dir/b.txt");
  EXPECT_STREQ(entry["type"].GetString(), "file");
  EXPECT_EQ(entry["size"].GetUint64(), 6u);
  EXPECT_TRUE(entry.HasMember("mtime_ns"));

  Reply dir = Fetch("GET", Url("/v1/roots/tree/stat?path=dir/sub"));
  ASSERT_EQ(dir.status, 200) << dir.body;
  EXPECT_STREQ(ParseJson(dir.body)["type"].GetString(), "dir");

  Reply missing = Fetch("GET", Url("/v1/roots/tree/stat?path=dir/none.txt"));
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(ErrorCode(missing), "not_found");
  EXPECT_TRUE(Contains(ErrorMessage(missing), "dir/none.txt"));
}

TEST_F(HttpTest, UnsafePathsAre400) {
  ASSERT_NO_FATAL_FAILURE(StartAndScan());
  for (const char* target :
       {"/v1/roots/tree/stat?path=..", "/v1/roots/tree/stat?path=%2e%2e",
        "/v1/roots/tree/stat?path=dir/../../etc",
        "/v1/roots/tree/stat?path=%2Fetc%2Fpasswd",
        "/v1/roots/tree/stat?path=/etc/passwd",
        "/v1/roots/tree/stat?path=a%00b", "/v1/roots/tree/changes?prefix=../x",
        "/v1/roots/tree/changes?prefix=%2E%2E%2F",
        "/v1/roots/tree/changes?prefix=%2Ftmp",
        "/v1/roots/tree/files?prefix=%2e%2e",
        "/v1/roots/tree/files?prefix=a%00"}) {
    Reply reply = Fetch("GET", Url(target));
    EXPECT_EQ(reply.status, 400) << target << ": " << reply.body;
    EXPECT_EQ(ErrorCode(reply), "invalid_argument") << target;
  }
}

TEST_F(HttpTest, NonUtf8NameGetsPathB64) {
  std::string name = "bad\xff\xfe.txt";
  WriteFile(scratch_.Sub("tree/" + name), "x");
  ASSERT_NO_FATAL_FAILURE(StartAndScan());

  std::string cursor;
  bool found = false;
  Reply reply = Fetch("GET", Url("/v1/roots/tree/changes"));
  rapidjson::Document document = ParseJson(reply.body);
  for (const auto& change : document["changes"].GetArray()) {
    if (!change.HasMember("path_b64")) continue;
    found = true;
    EXPECT_EQ(change["path_b64"].GetString(), Base64Encode(name));
    EXPECT_EQ(change["path"].GetString(), ToValidUtf8(name));
  }
  EXPECT_TRUE(found) << reply.body;

  Reply by_bytes = Fetch("GET", Url("/v1/roots/tree/stat?path=bad%FF%FE.txt"));
  ASSERT_EQ(by_bytes.status, 200) << by_bytes.body;
  EXPECT_EQ(ParseJson(by_bytes.body)["path_b64"].GetString(),
            Base64Encode(name));

  Reply by_b64 = Fetch("GET", Url("/v1/roots/tree/stat?path_b64=" +
                                  PercentEncode(Base64Encode(name))));
  EXPECT_EQ(by_b64.status, 200) << by_b64.body;
}

TEST_F(HttpTest, FilesListingPages) {
  ASSERT_NO_FATAL_FAILURE(StartAndScan());
  std::set<std::string> paths;
  std::string after;
  int pages = 0;
  for (; pages < 100; ++pages) {
    std::string target = "/v1/roots/tree/files?limit=2";
    if (!after.empty()) target += "&after=" + PercentEncode(after);
    Reply reply = Fetch("GET", Url(target));
    ASSERT_EQ(reply.status, 200) << reply.body;
    rapidjson::Document document = ParseJson(reply.body);
    EXPECT_LE(document["entries"].Size(), 2u);
    for (const auto& entry : document["entries"].GetArray()) {
      EXPECT_TRUE(paths.insert(entry["path"].GetString()).second)
          << "repeated " << entry["path"].GetString();
    }
    if (document["next"].IsNull()) break;
    after = document["next"].GetString();
  }
  EXPECT_GE(pages, 1);
  for (const char* path : {"a.txt", "dir/b.txt", "dir/sub/c.txt"}) {
    EXPECT_EQ(paths.count(path), 1u) << path;
  }

  Reply glob =
      Fetch("GET", Url("/v1/roots/tree/files?prefix=dir%2F&glob=*.txt"));
  ASSERT_EQ(glob.status, 200) << glob.body;
  std::set<std::string> matched;
  rapidjson::Document glob_document = ParseJson(glob.body);
  for (const auto& entry : glob_document["entries"].GetArray()) {
    matched.insert(entry["path"].GetString());
  }
  EXPECT_EQ(matched.count("a.txt"), 0u);
  EXPECT_EQ(matched.count("dir/b.txt"), 1u);
}

TEST_F(HttpTest, RescanReturns202WithId) {
  ASSERT_NO_FATAL_FAILURE(StartService(MakeConfig()));
  Reply reply = Fetch("POST", Url("/v1/roots/tree/rescan?full=1"));
  ASSERT_EQ(reply.status, 202) << reply.body;
  rapidjson::Document document = ParseJson(reply.body);
  EXPECT_STREQ(document["root"].GetString(), "tree");
  EXPECT_GT(document["rescan_id"].GetUint64(), 0u);
  EXPECT_TRUE(document["full"].GetBool());

  Reply bad = Fetch("POST", Url("/v1/roots/tree/rescan?full=maybe"));
  EXPECT_EQ(bad.status, 400);
}

TEST_F(HttpTest, TokenRequiredWhenConfigured) {
  WriteFile(scratch_.Sub("token"), "correct-horse\n");
  Config config = MakeConfig();
  config.token_file = scratch_.Sub("token");
  ASSERT_NO_FATAL_FAILURE(StartService(config));

  Reply none = Fetch("GET", Url("/v1/roots"));
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(ErrorCode(none), "unauthorized");
  EXPECT_TRUE(Contains(none.headers, "WWW-Authenticate: Bearer"));
  EXPECT_FALSE(Contains(none.body, "correct-horse"));

  Reply wrong =
      Fetch("GET", Url("/v1/roots"), {"Authorization: Bearer correct-horsf"});
  EXPECT_EQ(wrong.status, 401);
  Reply longer = Fetch("GET", Url("/v1/roots"),
                       {"Authorization: Bearer correct-horse-battery"});
  EXPECT_EQ(longer.status, 401);
  Reply basic =
      Fetch("GET", Url("/v1/roots"), {"Authorization: Basic correct-horse"});
  EXPECT_EQ(basic.status, 401);

  Reply right =
      Fetch("GET", Url("/v1/roots"), {"Authorization: Bearer correct-horse"});
  EXPECT_EQ(right.status, 200) << right.body;
  Reply missing_route = Fetch("GET", Url("/v1/nothing"));
  EXPECT_EQ(missing_route.status, 401);

  Reply health = Fetch("GET", Url("/healthz"));
  EXPECT_EQ(health.status, 200);
}

TEST_F(HttpTest, NonLoopbackWithoutTokenRefusesToStart) {
  Config config = MakeConfig();
  config.listen = "0.0.0.0:0";
  Result<std::unique_ptr<Service>> service = Service::Start(config);
  ASSERT_FALSE(service.ok());
  EXPECT_TRUE(Contains(service.status().message(), "0.0.0.0:0"));
  EXPECT_TRUE(Contains(service.status().message(), "token_file"));
}

TEST_F(HttpTest, OversizedRequestsRejected) {
  ASSERT_NO_FATAL_FAILURE(StartService(MakeConfig()));
  Reply header = Fetch("GET", Url("/v1/roots"),
                       {"X-Padding: " + std::string(16 * 1024, 'p')});
  EXPECT_EQ(header.status, 431) << header.error;
  EXPECT_EQ(ErrorCode(header), "header_too_large");

  Reply url = Fetch(
      "GET", Url("/v1/roots/tree/stat?path=" + std::string(10 * 1024, 'a')));
  EXPECT_EQ(url.status, 431) << url.error;

  Reply body = Fetch("POST", Url("/v1/roots/tree/rescan"), {"Expect:"},
                     std::string(100 * 1024, 'b'));
  EXPECT_EQ(body.status, 413) << body.error;
  EXPECT_EQ(ErrorCode(body), "payload_too_large");

  // The server still responds afterwards.
  EXPECT_EQ(Fetch("GET", Url("/healthz")).status, 200);
}

TEST_F(HttpTest, SlowClientDoesNotBlockOthers) {
  ASSERT_NO_FATAL_FAILURE(StartService(MakeConfig()));
  int slow = ConnectLoopback(service_->port());
  ASSERT_GE(slow, 0);
  std::string request = "GET /v1/roots HTTP/1.1\r\nHost: x\r\n";
  ASSERT_EQ(write(slow, request.data(), 5), 5);

  // Other clients get their responses at once while the slow one dawdles.
  for (int i = 0; i < 3; ++i) {
    Clock::time_point start = Clock::now();
    Reply reply = Fetch("GET", Url("/healthz"));
    EXPECT_EQ(reply.status, 200);
    EXPECT_LT(Clock::now() - start, milliseconds(1000));
    ASSERT_EQ(write(slow, request.data() + 5 + i, 1), 1);
    std::this_thread::sleep_for(milliseconds(200));
  }

  // The test limits allow 1.5 s per request, so the server hangs up.
  EXPECT_TRUE(WaitForPeerClose(slow, milliseconds(5000)));
  close(slow);
}

TEST_F(HttpTest, IdleConnectionCostsNoBlocking) {
  ASSERT_NO_FATAL_FAILURE(StartService(MakeConfig()));
  std::vector<int> idle;
  for (int i = 0; i < 50; ++i) {
    int fd = ConnectLoopback(service_->port());
    ASSERT_GE(fd, 0);
    idle.push_back(fd);
  }
  Clock::time_point start = Clock::now();
  EXPECT_EQ(Fetch("GET", Url("/healthz")).status, 200);
  EXPECT_LT(Clock::now() - start, milliseconds(1000));
  for (int fd : idle) close(fd);
}

TEST_F(HttpTest, ConnectionLimitGets503) {
  HttpLimits limits = MakeLimits();
  limits.max_connections = 2;
  ASSERT_NO_FATAL_FAILURE(StartService(MakeConfig(), limits));
  int first = ConnectLoopback(service_->port());
  int second = ConnectLoopback(service_->port());
  ASSERT_GE(first, 0);
  ASSERT_GE(second, 0);
  std::this_thread::sleep_for(milliseconds(200));

  Reply busy = Fetch("GET", Url("/healthz"));
  EXPECT_EQ(busy.status, 503) << busy.error;
  EXPECT_EQ(ErrorCode(busy), "unavailable");

  close(first);
  close(second);
  std::this_thread::sleep_for(milliseconds(200));
  EXPECT_EQ(Fetch("GET", Url("/healthz")).status, 200);
  Reply metrics = Fetch("GET", Url("/metrics"));
  EXPECT_TRUE(
      Contains(metrics.body, "dirindex_http_connections_rejected_total 1\n"))
      << metrics.body;
}

TEST_F(HttpTest, KeepAliveReusesConnection) {
  ASSERT_NO_FATAL_FAILURE(StartService(MakeConfig()));
  CurlClient client;
  EXPECT_EQ(client.Send("GET", Url("/healthz")).status, 200);
  EXPECT_EQ(client.NewConnections(), 1);
  EXPECT_EQ(client.Send("GET", Url("/v1/roots")).status, 200);
  EXPECT_EQ(client.NewConnections(), 0);
}

TEST_F(HttpTest, HealthzAndMetrics) {
  ASSERT_NO_FATAL_FAILURE(StartAndScan());
  Reply health = Fetch("GET", Url("/healthz"));
  ASSERT_EQ(health.status, 200);
  EXPECT_STREQ(ParseJson(health.body)["status"].GetString(), "ok");

  Reply metrics = Fetch("GET", Url("/metrics"));
  ASSERT_EQ(metrics.status, 200);
  EXPECT_TRUE(Contains(metrics.headers, "text/plain; version=0.0.4"));
  for (const char* line :
       {"dirindex_http_requests_total{route=\"/healthz\",status=\"200\"} 1\n",
        "dirindex_http_requests_total{route=\"/v1/roots/{root}/rescan\","
        "status=\"202\"} 1\n",
        "# TYPE dirindex_root_last_seq gauge\n",
        "dirindex_root_entries{root=\"tree\"} 5\n",
        "dirindex_root_files{root=\"tree\"} 3\n",
        "dirindex_long_polls_waiting 0\n", "dirindex_index_map_size_bytes ",
        "dirindex_index_commits_total ", "dirindex_index_map_resizes_total ",
        "dirindex_root_scans_total{root=\"tree\"} ",
        "dirindex_root_error{root=\"tree\"} 0\n"}) {
    EXPECT_TRUE(Contains(metrics.body, line)) << line << "\n" << metrics.body;
  }
}

// ---------------------------------------------------------------------------
// Unit tests of the pieces behind the server.

TEST(ChangesJson, EncodesEveryField) {
  FeedPage page;
  page.cursor = "cur";
  page.more = true;
  Change added;
  added.seq = 7;
  added.op = ChangeOp::kAdded;
  added.type = EntryType::kFile;
  added.known = kKnownSize | kKnownMtime;
  added.size = 12;
  added.mtime_ns = -5;
  added.path = "in/a \"quoted\".xml";
  page.changes.push_back(added);

  Change renamed;
  renamed.seq = 8;
  renamed.op = ChangeOp::kRenamed;
  renamed.type = EntryType::kDir;
  renamed.path = "new\xff";
  renamed.old_path = "old\xfe";
  page.changes.push_back(renamed);

  rapidjson::Document document = ParseJson(ChangesJson("r", page));
  EXPECT_STREQ(document["root"].GetString(), "r");
  EXPECT_FALSE(document["fresh_instance"].GetBool());
  EXPECT_TRUE(document["more"].GetBool());
  EXPECT_STREQ(document["cursor"].GetString(), "cur");

  const auto& first = document["changes"][0];
  EXPECT_EQ(first["seq"].GetUint64(), 7u);
  EXPECT_STREQ(first["op"].GetString(), "added");
  EXPECT_STREQ(first["path"].GetString(), "in/a \"quoted\".xml");
  EXPECT_STREQ(first["type"].GetString(), "file");
  EXPECT_EQ(first["size"].GetUint64(), 12u);
  EXPECT_EQ(first["mtime_ns"].GetInt64(), -5);
  EXPECT_FALSE(first.HasMember("path_b64"));
  EXPECT_FALSE(first.HasMember("old_path"));

  const auto& second = document["changes"][1];
  EXPECT_STREQ(second["op"].GetString(), "renamed");
  EXPECT_FALSE(second.HasMember("size"));
  EXPECT_FALSE(second.HasMember("mtime_ns"));
  EXPECT_EQ(second["path"].GetString(), ToValidUtf8("new\xff"));
  EXPECT_EQ(second["path_b64"].GetString(), Base64Encode("new\xff"));
  EXPECT_EQ(second["old_path"].GetString(), ToValidUtf8("old\xfe"));
  EXPECT_EQ(second["old_path_b64"].GetString(), Base64Encode("old\xfe"));
}

TEST(ErrorJson, KeepsMessageValidUtf8) {
  rapidjson::Document document =
      ParseJson(ErrorJson("invalid_argument", "path 'a\xff' is bad"));
  EXPECT_STREQ(document["error"]["code"].GetString(), "invalid_argument");
  EXPECT_EQ(document["error"]["message"].GetString(),
            ToValidUtf8("path 'a\xff' is bad"));
}

TEST(CommitWaiters, WakesOnlyNewerCommitsOfRoot) {
  CommitWaiters waiters;
  int woken_a = 0;
  int woken_b = 0;
  waiters.Add(1, 10, [&] { ++woken_a; });
  uint64_t b = waiters.Add(2, 10, [&] { ++woken_b; });
  EXPECT_EQ(waiters.size(), 2u);

  waiters.Notify(1, 10);  // not newer than the baseline
  EXPECT_EQ(woken_a, 0);
  waiters.Notify(1, 11);
  EXPECT_EQ(woken_a, 1);
  waiters.Notify(1, 12);  // already woken and removed
  EXPECT_EQ(woken_a, 1);
  EXPECT_EQ(woken_b, 0);

  waiters.Remove(b);
  waiters.Notify(2, 20);
  EXPECT_EQ(woken_b, 0);
  EXPECT_EQ(waiters.size(), 0u);
}

TEST(LogLimiter, SuppressesRepeatsAndCountsThem) {
  LogLimiter limiter(2, std::chrono::seconds(10));
  Clock::time_point now = Clock::now();
  EXPECT_TRUE(limiter.Check("k", now).write);
  EXPECT_TRUE(limiter.Check("k", now).write);
  EXPECT_FALSE(limiter.Check("k", now).write);
  EXPECT_FALSE(limiter.Check("k", now).write);
  EXPECT_TRUE(limiter.Check("other", now).write);

  LogLimiter::LogDecision later =
      limiter.Check("k", now + std::chrono::seconds(11));
  EXPECT_TRUE(later.write);
  EXPECT_EQ(later.suppressed, 2u);
}

}  // namespace
}  // namespace dirindex
