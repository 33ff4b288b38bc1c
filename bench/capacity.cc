// dirindex_capacity: the capacity harness. It builds a synthetic tree of a
// given shape in a scratch folder, then measures, in one run on one
// machine, the walk and index figures operators size a deployment from,
// next to find, bfs, fd and du on the same tree. It prints a table and
// writes the figures as JSON.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "index/index.h"
#include "scan/walker.h"

namespace dirindex {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct Shape {
  uint64_t files = 200'000;
  uint64_t per_dir = 200'000;
  unsigned depth = 1;
  unsigned name_length = 16;
  double nonempty_share = 0.1;
};

struct Figure {
  std::string name;
  double seconds = 0;
  double ratio_to_find = 0;
  std::string note;
};

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Returns the RssAnon of this process in bytes.
uint64_t AnonymousBytes() {
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    if (key == "RssAnon:") {
      uint64_t kib = 0;
      status >> kib;
      return kib * 1024;
    }
    status.ignore(1 << 16, '\n');
  }
  return 0;
}

// PeakSampler records the highest RssAnon seen while it runs.
class PeakSampler {
 public:
  PeakSampler() : thread_([this] {
    while (!stop_) {
      uint64_t now = AnonymousBytes();
      if (now > peak_) peak_ = now;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }) {}
  ~PeakSampler() { Stop(); }
  uint64_t Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    return peak_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> peak_{0};
  std::thread thread_;
};

bool DropCaches() {
  sync();
  int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = write(fd, "3", 1) == 1;
  close(fd);
  return ok;
}

std::string Name(uint64_t i, unsigned length) {
  std::string name = "f" + std::to_string(i);
  while (name.size() + 4 < length) name.push_back('_');
  return name + ".dat";
}

// Builds the tree, or reuses it when its marker file records this shape.
void BuildTree(const std::string& root, const Shape& shape) {
  std::string marker = root + "/.shape";
  std::string expected = std::to_string(shape.files) + " " + std::to_string(shape.per_dir) + " " +
                         std::to_string(shape.depth) + " " + std::to_string(shape.name_length) +
                         " " + std::to_string(shape.nonempty_share);
  std::ifstream in(marker);
  std::string found;
  std::getline(in, found);
  if (found == expected) {
    std::printf("reusing tree %s\n", root.c_str());
    return;
  }
  fs::remove_all(root);
  fs::create_directories(root);
  std::mt19937_64 random(1);
  std::uniform_real_distribution<double> share(0, 1);
  uint64_t dirs = (shape.files + shape.per_dir - 1) / shape.per_dir;
  bool tty = isatty(STDOUT_FILENO);
  auto last_progress = Clock::now();
  for (uint64_t d = 0; d < dirs; ++d) {
    std::string dir = root;
    for (unsigned level = 1; level < shape.depth; ++level) dir += "/l" + std::to_string(level) + "_" + std::to_string(d % 7);
    dir += "/d" + std::to_string(d);
    fs::create_directories(dir);
    for (uint64_t f = d * shape.per_dir; f < std::min(shape.files, (d + 1) * shape.per_dir); ++f) {
      std::string path = dir + "/" + Name(f, shape.name_length);
      int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0) {
        std::perror(path.c_str());
        std::exit(1);
      }
      if (share(random) < shape.nonempty_share) {
        if (write(fd, "payload\n", 8) != 8) std::perror("write");
      }
      close(fd);
      if (tty && Clock::now() - last_progress > std::chrono::milliseconds(200)) {
        std::printf("\rbuilding tree: %llu / %llu files", static_cast<unsigned long long>(f),
                    static_cast<unsigned long long>(shape.files));
        std::fflush(stdout);
        last_progress = Clock::now();
      }
    }
  }
  if (tty) std::printf("\n");
  std::ofstream(marker) << expected << "\n";
}

// Runs a shell command with output discarded and returns its wall time,
// or a negative value when it failed.
double TimeCommand(const std::string& command) {
  auto start = Clock::now();
  int status = std::system((command + " >/dev/null 2>&1").c_str());
  double elapsed = Seconds(Clock::now() - start);
  return (WIFEXITED(status) && WEXITSTATUS(status) == 0) ? elapsed : -1;
}

bool HaveCommand(const std::string& name) {
  return std::system(("command -v " + name + " >/dev/null 2>&1").c_str()) == 0;
}

// CountingSink counts entries without indexing them.
class CountingSink : public ListingSink {
 public:
  Status Accept(DirListing&& listing) override {
    entries_ += listing.entries.size();
    return Status::Ok();
  }
  uint64_t entries() const { return entries_; }

 private:
  std::atomic<uint64_t> entries_{0};
};

struct ScanResult {
  double seconds = 0;
  ScanSummary summary;
  bool ok = false;
};

ScanResult IndexScan(Index& index, uint32_t root, LocalSource& source) {
  std::atomic<bool> stop{false};
  auto start = Clock::now();
  auto session = index.BeginScan(root, ChangeOrigin::kScan);
  auto totals = source.Scan(ScanRequest{}, *session, stop);
  auto summary = session->Finish(totals.ok() ? Status::Ok() : totals.status());
  ScanResult result;
  result.seconds = Seconds(Clock::now() - start);
  result.ok = totals.ok() && summary.ok();
  if (summary.ok()) result.summary = *summary;
  return result;
}

void Touch(const std::string& root, const Shape& shape, double share) {
  uint64_t step = static_cast<uint64_t>(1 / share);
  uint64_t dirs = (shape.files + shape.per_dir - 1) / shape.per_dir;
  timespec times[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
  for (uint64_t d = 0; d < dirs; ++d) {
    std::string dir = root;
    for (unsigned level = 1; level < shape.depth; ++level) dir += "/l" + std::to_string(level) + "_" + std::to_string(d % 7);
    dir += "/d" + std::to_string(d);
    for (uint64_t f = d * shape.per_dir; f < std::min(shape.files, (d + 1) * shape.per_dir); f += step) {
      utimensat(AT_FDCWD, (dir + "/" + Name(f, shape.name_length)).c_str(), times, 0);
    }
  }
}

int Run(int argc, char** argv) {
  Shape shape;
  std::string scratch = "/tmp/dirindex-capacity";
  std::string json_path;
  bool cold = false;
  unsigned repeat = 3;
  CLI::App app{"dirindex_capacity: build a synthetic tree and measure walk, index build, "
               "rescans, index size and memory next to find, bfs, fd and du"};
  app.add_option("--files", shape.files, "total files in the tree")->capture_default_str();
  app.add_option("--per-dir", shape.per_dir, "files per directory")->capture_default_str();
  app.add_option("--depth", shape.depth, "directory levels holding the files")->capture_default_str();
  app.add_option("--name-length", shape.name_length, "bytes per file name")->capture_default_str();
  app.add_option("--nonempty-share", shape.nonempty_share, "share of files with content, 0 to 1")
      ->capture_default_str();
  app.add_option("--scratch", scratch, "folder for the tree and the index (reused when its shape matches)")
      ->capture_default_str();
  app.add_option("--json", json_path, "also write the figures to this JSON file");
  app.add_option("--repeat", repeat, "runs per warm measurement; the best is reported")->capture_default_str();
  app.add_flag("--cold", cold, "also measure after dropping the page cache (needs root)");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);

  std::string tree = scratch + "/tree";
  std::string index_dir = scratch + "/index";
  BuildTree(tree, shape);
  fs::remove_all(index_dir);
  std::vector<Figure> figures;
  auto best = [&](auto&& measure) {
    double best_time = 1e300;
    for (unsigned i = 0; i < repeat; ++i) best_time = std::min(best_time, measure());
    return best_time;
  };

  // Anchors: each walks the tree and stats every file.
  std::string quoted = "'" + tree + "'";
  double find_time = best([&] { return TimeCommand("find " + quoted + " -printf '%s %T@ %p\\n'"); });
  figures.push_back({"find -printf", find_time, 1, ""});
  if (HaveCommand("bfs")) {
    figures.push_back({"bfs -printf", best([&] { return TimeCommand("bfs " + quoted + " -printf '%s %T@ %p\\n'"); }), 0, ""});
  }
  if (HaveCommand("fdfind")) {
    figures.push_back({"fdfind --changed-before", best([&] { return TimeCommand("fdfind -HI -u --changed-before 2100-01-01 . " + quoted); }), 0, ""});
  }
  figures.push_back({"du -s", best([&] { return TimeCommand("du -s " + quoted); }), 0, ""});

  WalkerOptions walker_options;
  walker_options.root_path = tree;
  auto source = LocalSource::Create(walker_options);
  if (!source.ok()) {
    std::fprintf(stderr, "%s\n", source.status().ToString().c_str());
    return 1;
  }
  std::atomic<bool> stop{false};
  double walk_time = best([&] {
    CountingSink sink;
    auto start = Clock::now();
    auto totals = (*source)->Scan(ScanRequest{}, sink, stop);
    return totals.ok() ? Seconds(Clock::now() - start) : -1;
  });
  figures.push_back({"dirindex walk (no index)", walk_time, 0, ""});

  IndexOptions index_options;
  index_options.dir = index_dir;
  auto index = Index::Open(index_options);
  if (!index.ok()) {
    std::fprintf(stderr, "%s\n", index.status().ToString().c_str());
    return 1;
  }
  uint32_t root = *(*index)->AddRoot("bench", "file://" + tree);
  PeakSampler sampler;
  ScanResult first = IndexScan(**index, root, **source);
  uint64_t peak_anon = sampler.Stop();
  figures.push_back({"dirindex first index build", first.seconds, 0,
                     std::to_string(first.summary.changes) + " changes, " +
                         std::to_string(static_cast<uint64_t>(first.summary.changes / first.seconds)) +
                         " files/s"});

  uint64_t txn_before = (*index)->Stats().last_txn_id;
  ScanResult unchanged;
  double unchanged_time = best([&] {
    unchanged = IndexScan(**index, root, **source);
    return unchanged.seconds;
  });
  uint64_t txn_after = (*index)->Stats().last_txn_id;
  figures.push_back({"dirindex rescan, nothing changed", unchanged_time, 0,
                     "write transactions: " + std::to_string(txn_after - txn_before)});

  Touch(tree, shape, 0.01);
  ScanResult one_percent = IndexScan(**index, root, **source);
  figures.push_back({"dirindex rescan, 1% changed", one_percent.seconds, 0,
                     std::to_string(one_percent.summary.changes) + " changes"});

  if (cold) {
    if (DropCaches()) {
      figures.push_back({"find -printf, cold", TimeCommand("find " + quoted + " -printf '%s %T@ %p\\n'"), 0, ""});
      DropCaches();
      CountingSink sink;
      auto start = Clock::now();
      auto totals = (*source)->Scan(ScanRequest{}, sink, stop);
      figures.push_back({"dirindex walk, cold", totals.ok() ? Seconds(Clock::now() - start) : -1, 0, ""});
      DropCaches();
      figures.push_back({"dirindex rescan nothing changed, cold", IndexScan(**index, root, **source).seconds, 0, ""});
    } else {
      std::printf("cannot drop caches (needs root): cold figures skipped\n");
    }
  }

  IndexStats stats = (*index)->Stats();
  uint64_t name_bytes = 0;
  for (uint64_t f = 0; f < shape.files; ++f) name_bytes += Name(f, shape.name_length).size();
  double bytes_per_file = static_cast<double>(stats.used_bytes) / static_cast<double>(shape.files);
  double overhead_per_file = static_cast<double>(stats.used_bytes - name_bytes) / static_cast<double>(shape.files);

  for (Figure& figure : figures) figure.ratio_to_find = find_time > 0 ? figure.seconds / find_time : 0;
  std::printf("\ntree: %llu files, %llu per directory, depth %u, names of %u bytes\n",
              static_cast<unsigned long long>(shape.files), static_cast<unsigned long long>(shape.per_dir),
              shape.depth, shape.name_length);
  std::printf("| measurement | seconds | ratio to find | note |\n|---|---:|---:|---|\n");
  for (const Figure& figure : figures) {
    std::printf("| %s | %.3f | %.2f | %s |\n", figure.name.c_str(), figure.seconds, figure.ratio_to_find,
                figure.note.c_str());
  }
  std::printf("\nindex: %.1f bytes per file (%.1f beyond the name bytes), peak anonymous memory during the build %.1f MiB\n",
              bytes_per_file, overhead_per_file, peak_anon / 1048576.0);

  if (!json_path.empty()) {
    std::ofstream out(json_path);
    out << "{\"files\":" << shape.files << ",\"per_dir\":" << shape.per_dir << ",\"depth\":" << shape.depth
        << ",\"index_bytes_per_file\":" << bytes_per_file << ",\"index_overhead_bytes_per_file\":" << overhead_per_file
        << ",\"peak_anon_bytes\":" << peak_anon << ",\"figures\":[";
    for (size_t i = 0; i < figures.size(); ++i) {
      out << (i ? "," : "") << "{\"name\":\"" << figures[i].name << "\",\"seconds\":" << figures[i].seconds
          << ",\"ratio_to_find\":" << figures[i].ratio_to_find << ",\"note\":\"" << figures[i].note << "\"}";
    }
    out << "]}\n";
  }
  return txn_after == txn_before ? 0 : 2;
}

}  // namespace
}  // namespace dirindex

int main(int argc, char** argv) { return dirindex::Run(argc, argv); }
