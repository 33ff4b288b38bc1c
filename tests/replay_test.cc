// Replay property test: random file operations against a real local root,
// with rescans in between. A client that applies the change feed from the
// first cursor, and one that joins halfway with a fresh-instance snapshot,
// must both reconstruct exactly the final tree: names, types, file sizes and
// file mtimes. The seed is printed; DIRINDEX_REPLAY_SEED repeats a run and
// DIRINDEX_REPLAY_ROUNDS makes it longer.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>

#include "index/index.h"
#include "scan/walker.h"
#include "tests/test_support.h"

namespace dirindex {
namespace {

using testing::ScratchDir;
namespace fs = std::filesystem;

struct Node {
  EntryType type = EntryType::kUnknown;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  bool operator==(const Node&) const = default;
};

using Tree = std::map<std::string, Node>;

Node NodeOf(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return {};
  if (S_ISDIR(st.st_mode)) return Node{EntryType::kDir, 0, 0};
  Node node{S_ISREG(st.st_mode) ? EntryType::kFile
            : S_ISLNK(st.st_mode) ? EntryType::kSymlink
                                  : EntryType::kOther,
            static_cast<uint64_t>(st.st_size),
            st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec};
  return node;
}

Tree ReadDisk(const std::string& root) {
  Tree tree;
  for (const auto& item : fs::recursive_directory_iterator(root)) {
    tree[fs::relative(item.path(), root).string()] = NodeOf(item.path().string());
  }
  return tree;
}

// Client applies the feed to its own copy of the tree.
class Client {
 public:
  Client(Index& index, uint32_t root) : index_(index), root_(root) {}

  void Follow() {
    for (;;) {
      auto page = index_.ReadChanges(root_, cursor_, 333, "");
      ASSERT_TRUE(page.ok()) << page.status().ToString();
      if (page->fresh_instance && !in_snapshot_) {
        tree_.clear();
        in_snapshot_ = true;
      }
      for (const Change& change : page->changes) Apply(change);
      cursor_ = page->cursor;
      if (!page->more) break;
    }
    in_snapshot_ = false;
  }

  const Tree& tree() const { return tree_; }

 private:
  void Apply(const Change& change) {
    if (change.op == ChangeOp::kDeleted) {
      tree_.erase(change.path);
      return;
    }
    if (change.op == ChangeOp::kRenamed) {
      // A renamed directory takes everything beneath it along.
      std::string old_prefix = change.old_path + "/";
      std::vector<std::pair<std::string, Node>> moved;
      for (auto it = tree_.lower_bound(old_prefix);
           it != tree_.end() && it->first.starts_with(old_prefix);) {
        moved.emplace_back(change.path + "/" + it->first.substr(old_prefix.size()), it->second);
        it = tree_.erase(it);
      }
      for (auto& [path, node] : moved) tree_[path] = node;
      tree_.erase(change.old_path);
    }
    Node node{change.type, 0, 0};
    if (change.type != EntryType::kDir) {
      node.size = change.size;
      node.mtime_ns = change.mtime_ns;
    }
    tree_[change.path] = node;
  }

  Index& index_;
  uint32_t root_;
  std::string cursor_;
  bool in_snapshot_ = false;
  Tree tree_;
};

// Mutator applies one random operation to the tree on disk.
class Mutator {
 public:
  Mutator(std::string root, uint64_t seed) : root_(std::move(root)), random_(seed) {}

  void Step() {
    std::vector<std::string> files, dirs{""};
    for (const auto& [path, node] : ReadDisk(root_)) {
      (node.type == EntryType::kDir ? dirs : files).push_back(path);
    }
    switch (Pick(10)) {
      case 0: Create(dirs); break;
      case 1: if (!files.empty()) Append(PickOf(files)); else Create(dirs); break;
      case 2: if (!files.empty()) truncate(Full(PickOf(files)).c_str(), Pick(50)); break;
      case 3: if (!files.empty()) testing::WriteFile(Full(PickOf(files)), std::string(Pick(40), 'o')); break;
      case 4: if (!files.empty()) fs::remove(Full(PickOf(files))); break;
      case 5: if (!files.empty()) Rename(PickOf(files), dirs); break;
      case 6: fs::create_directory(Full(JoinName(PickOf(dirs), "d" + std::to_string(counter_++)))); break;
      case 7: if (dirs.size() > 1) fs::remove_all(Full(dirs[1 + Pick(dirs.size() - 1)])); break;
      case 8: if (dirs.size() > 1) Rename(dirs[1 + Pick(dirs.size() - 1)], dirs); break;
      case 9: if (!files.empty()) chmod(Full(PickOf(files)).c_str(), Pick(2) ? 0600 : 0644); break;
    }
  }

 private:
  size_t Pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(random_); }
  const std::string& PickOf(const std::vector<std::string>& items) { return items[Pick(items.size())]; }
  std::string Full(const std::string& relative) const {
    return relative.empty() ? root_ : root_ + "/" + relative;
  }
  static std::string JoinName(const std::string& dir, const std::string& name) {
    return dir.empty() ? name : dir + "/" + name;
  }

  void Create(const std::vector<std::string>& dirs) {
    testing::WriteFile(Full(JoinName(PickOf(dirs), "f" + std::to_string(counter_++))),
                       std::string(Pick(30), 'c'));
  }

  void Append(const std::string& file) {
    int fd = open(Full(file).c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) return;
    std::string more(1 + Pick(20), 'a');
    EXPECT_EQ(write(fd, more.data(), more.size()), static_cast<ssize_t>(more.size()));
    close(fd);
  }

  void Rename(const std::string& from, const std::vector<std::string>& dirs) {
    std::string target_dir = PickOf(dirs);
    // A directory cannot move into itself or below itself.
    if (target_dir == from || target_dir.starts_with(from + "/")) return;
    std::rename(Full(from).c_str(),
                Full(JoinName(target_dir, "r" + std::to_string(counter_++))).c_str());
  }

  std::string root_;
  std::mt19937_64 random_;
  uint64_t counter_ = 0;
};

TEST(ReplayTest, FeedReconstructsTree) {
  uint64_t seed = std::random_device{}();
  if (const char* text = std::getenv("DIRINDEX_REPLAY_SEED")) seed = std::strtoull(text, nullptr, 10);
  int rounds = 150;
  if (const char* text = std::getenv("DIRINDEX_REPLAY_ROUNDS")) rounds = std::atoi(text);
  std::printf("replay seed %llu (set DIRINDEX_REPLAY_SEED to repeat), %d rounds\n",
              static_cast<unsigned long long>(seed), rounds);
  SCOPED_TRACE("seed " + std::to_string(seed));

  ScratchDir scratch;
  std::string tree_root = scratch.Sub("tree");
  testing::MakeDirs(tree_root);
  IndexOptions options;
  options.dir = scratch.Sub("index");
  options.batch_changes = 7;  // many small commits, as a long scan makes
  auto index = Index::Open(options);
  ASSERT_TRUE(index.ok());
  uint32_t root = *(*index)->AddRoot("replay", "file://" + tree_root);
  WalkerOptions walker;
  walker.root_path = tree_root;
  auto source = LocalSource::Create(walker);
  ASSERT_TRUE(source.ok());

  Mutator mutator(tree_root, seed);
  Client from_start(**index, root);
  std::unique_ptr<Client> late;
  std::atomic<bool> stop{false};
  for (int round = 0; round < rounds; ++round) {
    int steps = 1 + static_cast<int>(seed % 7 + round) % 8;
    for (int s = 0; s < steps; ++s) mutator.Step();
    auto session = (*index)->BeginScan(root, ChangeOrigin::kScan);
    auto totals = (*source)->Scan(ScanRequest{}, *session, stop);
    ASSERT_TRUE(totals.ok()) << totals.status().ToString();
    ASSERT_TRUE(session->Finish(Status::Ok()).ok());
    // The first client reads only every third round, so it often catches
    // up over several scans at once.
    if (round % 3 == 0) from_start.Follow();
    if (round == rounds / 2) late = std::make_unique<Client>(**index, root);
    if (late && round % 2 == 0) late->Follow();
  }
  from_start.Follow();
  ASSERT_NE(late, nullptr);
  late->Follow();

  Tree disk = ReadDisk(tree_root);
  EXPECT_EQ(from_start.tree().size(), disk.size());
  EXPECT_TRUE(from_start.tree() == disk) << "client from the first cursor diverged";
  EXPECT_TRUE(late->tree() == disk) << "client that joined with a snapshot diverged";
  auto verified = (*index)->Verify();
  ASSERT_TRUE(verified.ok());
  EXPECT_TRUE(verified->problems.empty()) << verified->problems.front();
}

}  // namespace
}  // namespace dirindex
