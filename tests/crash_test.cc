// Crash test: the real server is killed with SIGKILL at random moments while
// it scans a changing tree. After every restart the index must verify, and a
// client that kept a cursor from before the kill must continue with no gap
// in sequences and end with exactly the tree on disk.
#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <thread>

#include "index/cursor.h"
#include "tests/http_client.h"
#include "tests/test_support.h"

namespace dirindex {
namespace {

using namespace dirindex::testing;
namespace fs = std::filesystem;

struct Seen {
  std::string type;
  uint64_t size = 0;
  bool operator==(const Seen&) const = default;
};

using Tree = std::map<std::string, Seen>;

// Reads the tree on disk the way the feed describes it.
Tree ReadDisk(const std::string& root) {
  Tree tree;
  for (const auto& item : fs::recursive_directory_iterator(root)) {
    std::string path = fs::relative(item.path(), root).string();
    if (item.is_directory()) {
      tree[path] = Seen{"dir", 0};
    } else {
      tree[path] = Seen{"file", static_cast<uint64_t>(item.file_size())};
    }
  }
  return tree;
}

// FeedClient applies the change feed to its own copy of the tree, the way
// an integration service would.
class FeedClient {
 public:
  explicit FeedClient(std::string base) : base_(std::move(base)) {}

  // Follows the feed until `more` is false. Returns false on an HTTP error.
  // Sets *fresh when any page was a fresh instance.
  bool Follow(bool* fresh, std::string* failure) {
    *fresh = false;
    for (;;) {
      std::string url = base_ + "/v1/roots/tree/changes?limit=4000";
      if (!cursor_.empty()) url += "&since=" + cursor_;
      HttpResponse response = HttpGet(url);
      if (response.status != 200) {
        *failure = "GET " + url + " -> " + std::to_string(response.status) + " " +
                   response.error + response.body;
        return false;
      }
      rapidjson::Document doc;
      doc.Parse(response.body.c_str());
      if (doc.HasParseError() || !doc.IsObject()) {
        *failure = "unparsable body: " + response.body.substr(0, 200);
        return false;
      }
      if (doc["fresh_instance"].GetBool()) {
        if (!in_snapshot_) tree_.clear();
        in_snapshot_ = true;
        *fresh = true;
      }
      for (const auto& change : doc["changes"].GetArray()) {
        uint64_t seq = change["seq"].GetUint64();
        if (!in_snapshot_) {
          if (last_seq_ != 0 && seq != last_seq_ + 1) {
            *failure = "sequence gap: " + std::to_string(last_seq_) + " then " + std::to_string(seq);
            return false;
          }
          last_seq_ = seq;
        }
        Apply(change);
      }
      cursor_ = doc["cursor"].GetString();
      if (!doc["more"].GetBool()) {
        if (in_snapshot_) {
          in_snapshot_ = false;
          auto decoded = DecodeCursor(cursor_);
          last_seq_ = decoded.ok() ? decoded->seq : 0;
        }
        return true;
      }
    }
  }

  const Tree& tree() const { return tree_; }
  const std::string& cursor() const { return cursor_; }

 private:
  void Apply(const rapidjson::Value& change) {
    std::string op = change["op"].GetString();
    std::string path = change["path"].GetString();
    if (op == "deleted") {
      tree_.erase(path);
      return;
    }
    if (op == "renamed") {
      // A renamed directory takes everything beneath it along.
      std::string old_path = change["old_path"].GetString();
      std::string old_prefix = old_path + "/";
      std::vector<std::pair<std::string, Seen>> moved;
      for (auto it = tree_.lower_bound(old_prefix);
           it != tree_.end() && it->first.starts_with(old_prefix);) {
        moved.emplace_back(path + "/" + it->first.substr(old_prefix.size()), it->second);
        it = tree_.erase(it);
      }
      for (auto& [moved_path, seen] : moved) tree_[moved_path] = seen;
      tree_.erase(old_path);
    }
    Seen seen{change["type"].GetString(), 0};
    if (seen.type != "dir" && change.HasMember("size")) seen.size = change["size"].GetUint64();
    tree_[path] = seen;
  }

  std::string base_;
  std::string cursor_;
  uint64_t last_seq_ = 0;
  bool in_snapshot_ = false;
  Tree tree_;
};

void Mutate(const std::string& root, int round, std::mt19937_64& random) {
  std::string dir = root + "/round" + std::to_string(round);
  MakeDirs(dir);
  for (int i = 0; i < 1500; ++i) WriteFile(dir + "/n" + std::to_string(i), std::string(i % 7, 'x'));
  // Delete and grow some of the original files.
  std::uniform_int_distribution<int> pick(0, 9999);
  for (int i = 0; i < 300; ++i) {
    int n = pick(random);
    fs::remove(root + "/d" + std::to_string(n % 10) + "/f" + std::to_string(n));
  }
  for (int i = 0; i < 100; ++i) {
    int n = pick(random);
    std::string path = root + "/d" + std::to_string(n % 10) + "/f" + std::to_string(n);
    if (fs::exists(path)) WriteFile(path, "grown content " + std::to_string(round));
  }
  if (round % 3 == 2) fs::remove_all(root + "/round" + std::to_string(round - 1));
}

TEST(CrashTest, KillDuringScanLosesNothing) {
  const char* rounds_env = std::getenv("DIRINDEX_CRASH_ROUNDS");
  int rounds = rounds_env != nullptr ? std::atoi(rounds_env) : 50;
  uint64_t seed = std::random_device{}();
  if (const char* seed_env = std::getenv("DIRINDEX_CRASH_SEED")) seed = std::strtoull(seed_env, nullptr, 10);
  std::printf("crash test seed %llu (set DIRINDEX_CRASH_SEED to repeat), %d rounds\n",
              static_cast<unsigned long long>(seed), rounds);
  std::mt19937_64 random(seed);

  ScratchDir scratch;
  std::string tree = scratch.Sub("tree");
  for (int d = 0; d < 10; ++d) {
    MakeDirs(tree + "/d" + std::to_string(d));
    for (int f = d; f < 10000; f += 10) {
      WriteFile(tree + "/d" + std::to_string(d) + "/f" + std::to_string(f), "x");
    }
  }
  int port = FreeLoopbackPort();
  std::vector<std::string> args = {"--listen", "127.0.0.1:" + std::to_string(port), "--index",
                                   scratch.Sub("index"), "--rescan-interval", "1", tree};
  std::string log = scratch.Sub("server.log");

  auto server = std::make_unique<ServerProcess>();
  ASSERT_TRUE(server->Start(args, port, log)) << "server did not start; see " << log;
  FeedClient client(server->base_url());
  std::string failure;
  bool fresh = false;
  // Wait for the first scan to be complete in the client's view.
  for (int attempt = 0; attempt < 200 && client.tree().size() != 10010; ++attempt) {
    ASSERT_TRUE(client.Follow(&fresh, &failure)) << failure;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(client.tree().size(), 10010u);

  std::uniform_int_distribution<int> delay_ms(0, 800);
  for (int round = 0; round < rounds; ++round) {
    Mutate(tree, round, random);
    HttpRequest("POST", server->base_url() + "/v1/roots/tree/rescan");
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(random)));
    server->Stop(SIGKILL);

    std::string output;
    EXPECT_EQ(RunDirindex({"verify", "--index", scratch.Sub("index")}, &output), 0)
        << "round " << round << ": " << output;

    server = std::make_unique<ServerProcess>();
    ASSERT_TRUE(server->Start(args, port, log)) << "restart failed in round " << round;
    ASSERT_TRUE(client.Follow(&fresh, &failure)) << "round " << round << ": " << failure;
    EXPECT_FALSE(fresh) << "round " << round << ": a cursor from before the kill got a fresh instance";
  }

  // Let the server settle, then the client's copy must equal the disk.
  Tree disk = ReadDisk(tree);
  for (int attempt = 0; attempt < 100 && client.tree() != disk; ++attempt) {
    HttpRequest("POST", server->base_url() + "/v1/roots/tree/rescan");
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    ASSERT_TRUE(client.Follow(&fresh, &failure)) << failure;
    EXPECT_FALSE(fresh);
  }
  EXPECT_EQ(client.tree().size(), disk.size());
  EXPECT_TRUE(client.tree() == disk) << "the feed does not reconstruct the tree";
}

}  // namespace
}  // namespace dirindex
