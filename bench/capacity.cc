// dirindex_capacity: the capacity harness. It builds a synthetic tree of a
// given shape in a scratch folder, then measures, in one run on one
// machine, the walk and index figures operators size a deployment from,
// next to find, bfs, fd and du on the same tree. It can also measure the
// real server over HTTP (capacity_http.cc), a private Watchman on the same
// tree (capacity_watchman.cc) and walks of slow storage through a FUSE
// file system (capacity_fuse.cc). It prints tables and writes the figures
// as JSON.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/capacity.h"
#include "index/index.h"
#include "scan/walker.h"

namespace dirindex::capacity {
namespace {

namespace fs = std::filesystem;

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

constexpr const char* kWalkSection = "walk and index";
constexpr const char* kFind = "find -printf";

// IndexFigures are the figures of the in-process walk and index section
// that are not table rows.
struct IndexFigures {
  double bytes_per_file = 0;
  double overhead_per_file = 0;
  uint64_t peak_anon = 0;
  bool unchanged_scan_wrote = false;
  bool failed = false;
};

// Measures the anchors, the walk, the first index build and the rescans.
IndexFigures MeasureWalkAndIndex(const std::string& tree, const std::string& index_dir, const Shape& shape,
                                 unsigned repeat, bool cold, Report& report) {
  IndexFigures result;
  auto best = [&](auto&& measure) {
    double best_time = 1e300;
    for (unsigned i = 0; i < repeat; ++i) best_time = std::min(best_time, measure());
    return best_time;
  };
  auto add = [&](const std::string& name, double seconds, const std::string& note = "") {
    report.Add({kWalkSection, name, seconds, "s", name == kFind ? "" : kFind, 0, note});
  };
  std::printf("walk and index: load %s\n", LoadAverage().c_str());

  // Anchors: each walks the tree and stats every file.
  std::string quoted = ShellQuote(tree);
  add(kFind, best([&] { return TimeCommand("find " + quoted + " -printf '%s %T@ %p\\n'"); }));
  if (HaveCommand("bfs")) {
    add("bfs -printf", best([&] { return TimeCommand("bfs " + quoted + " -printf '%s %T@ %p\\n'"); }));
  }
  if (HaveCommand("fdfind")) {
    add("fdfind --changed-before",
        best([&] { return TimeCommand("fdfind -HI -u --changed-before 2100-01-01 . " + quoted); }));
  }
  add("du -s", best([&] { return TimeCommand("du -s " + quoted); }));

  WalkerOptions walker_options;
  walker_options.root_path = tree;
  auto source = LocalSource::Create(walker_options);
  if (!source.ok()) {
    report.Fail("walker: " + source.status().ToString());
    result.failed = true;
    return result;
  }
  std::atomic<bool> stop{false};
  add("dirindex walk (no index)", best([&] {
        CountingSink sink;
        auto start = Clock::now();
        auto totals = (*source)->Scan(ScanRequest{}, sink, stop);
        return totals.ok() ? Seconds(Clock::now() - start) : -1;
      }));

  IndexOptions index_options;
  index_options.dir = index_dir;
  auto index = Index::Open(index_options);
  if (!index.ok()) {
    report.Fail("index: " + index.status().ToString());
    result.failed = true;
    return result;
  }
  uint32_t root = *(*index)->AddRoot("bench", "file://" + tree);
  PeakSampler sampler;
  ScanResult first = IndexScan(**index, root, **source);
  result.peak_anon = sampler.Stop();
  add("dirindex first index build", first.seconds,
      std::to_string(first.summary.changes) + " changes, " +
          std::to_string(static_cast<uint64_t>(first.summary.changes / first.seconds)) + " files/s");

  uint64_t txn_before = (*index)->Stats().last_txn_id;
  ScanResult unchanged;
  double unchanged_time = best([&] {
    unchanged = IndexScan(**index, root, **source);
    return unchanged.seconds;
  });
  uint64_t txn_after = (*index)->Stats().last_txn_id;
  result.unchanged_scan_wrote = txn_after != txn_before;
  add("dirindex rescan, nothing changed", unchanged_time,
      "write transactions: " + std::to_string(txn_after - txn_before));

  TouchFiles(SpreadFiles(tree, shape, shape.files / 100));
  ScanResult one_percent = IndexScan(**index, root, **source);
  add("dirindex rescan, 1% changed", one_percent.seconds, std::to_string(one_percent.summary.changes) + " changes");

  if (cold) {
    if (DropCaches()) {
      add("find -printf, cold", TimeCommand("find " + quoted + " -printf '%s %T@ %p\\n'"));
      DropCaches();
      CountingSink sink;
      auto start = Clock::now();
      auto totals = (*source)->Scan(ScanRequest{}, sink, stop);
      add("dirindex walk, cold", totals.ok() ? Seconds(Clock::now() - start) : -1);
      DropCaches();
      add("dirindex rescan nothing changed, cold", IndexScan(**index, root, **source).seconds);
    } else {
      report.Skip("cold figures: cannot drop caches (needs root)");
    }
  }

  IndexStats stats = (*index)->Stats();
  uint64_t name_bytes = 0;
  for (uint64_t f = 0; f < shape.files; ++f) name_bytes += FileName(f, shape.name_length).size();
  result.bytes_per_file = static_cast<double>(stats.used_bytes) / static_cast<double>(shape.files);
  result.overhead_per_file =
      (static_cast<double>(stats.used_bytes) - static_cast<double>(name_bytes)) / static_cast<double>(shape.files);
  return result;
}

std::string FormatValue(const Figure& figure) {
  if (figure.value < 0) return "failed";
  char text[64];
  std::snprintf(text, sizeof(text), figure.unit == "s" ? "%.3f %s" : "%.2f %s", figure.value, figure.unit.c_str());
  return text;
}

void PrintTables(const Report& report) {
  std::vector<std::string> sections;
  for (const Figure& figure : report.figures) {
    if (std::find(sections.begin(), sections.end(), figure.section) == sections.end()) {
      sections.push_back(figure.section);
    }
  }
  for (const std::string& section : sections) {
    std::printf("\n%s\n\n| measurement | value | ratio | anchor | note |\n|---|---:|---:|---|---|\n", section.c_str());
    for (const Figure& figure : report.figures) {
      if (figure.section != section) continue;
      std::string ratio = "";
      if (figure.ratio > 0) {
        char text[32];
        std::snprintf(text, sizeof(text), "%.3f", figure.ratio);
        ratio = text;
      }
      std::printf("| %s | %s | %s | %s | %s |\n", figure.name.c_str(), FormatValue(figure).c_str(), ratio.c_str(),
                  figure.ratio > 0 ? figure.anchor.c_str() : "", figure.note.c_str());
    }
  }
  if (!report.targets.empty()) {
    std::printf("\n| target | ratio | at most | met |\n|---|---:|---:|---|\n");
    for (const Target& target : report.targets) {
      if (target.measured) {
        std::printf("| %s | %.3f | %.3f | %s |\n", target.name.c_str(), target.value, target.limit,
                    target.met ? "yes" : "no");
      } else {
        std::printf("| %s | | %.3f | not measured |\n", target.name.c_str(), target.limit);
      }
    }
  }
  if (!report.skipped.empty()) std::printf("\nLeft out of this run:\n");
  for (const std::string& reason : report.skipped) std::printf("- %s\n", reason.c_str());
}

std::string JsonString(const std::string& text) {
  std::string quoted = "\"";
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      quoted.push_back('\\');
      quoted.push_back(static_cast<char>(c));
    } else if (c < 0x20) {
      char escape[8];
      std::snprintf(escape, sizeof(escape), "\\u%04x", c);
      quoted += escape;
    } else {
      quoted.push_back(static_cast<char>(c));
    }
  }
  return quoted + "\"";
}

void WriteJson(const std::string& path, const Shape& shape, const IndexFigures& index, const Report& report,
               const std::string& started_at, const std::string& load_start) {
  std::ofstream out(path);
  out << "{\"started_at\":" << JsonString(started_at) << ",\"load_start\":" << JsonString(load_start)
      << ",\"load_end\":" << JsonString(LoadAverage()) << ",\"files\":" << shape.files
      << ",\"per_dir\":" << shape.per_dir << ",\"depth\":" << shape.depth
      << ",\"index_bytes_per_file\":" << index.bytes_per_file
      << ",\"index_overhead_bytes_per_file\":" << index.overhead_per_file << ",\"peak_anon_bytes\":" << index.peak_anon
      << ",\"figures\":[";
  for (size_t i = 0; i < report.figures.size(); ++i) {
    const Figure& figure = report.figures[i];
    out << (i ? "," : "") << "{\"section\":" << JsonString(figure.section) << ",\"name\":" << JsonString(figure.name)
        << ",\"value\":" << figure.value << ",\"unit\":" << JsonString(figure.unit)
        << ",\"anchor\":" << JsonString(figure.anchor) << ",\"ratio\":" << figure.ratio
        << ",\"note\":" << JsonString(figure.note) << "}";
  }
  out << "],\"targets\":[";
  for (size_t i = 0; i < report.targets.size(); ++i) {
    const Target& target = report.targets[i];
    out << (i ? "," : "") << "{\"name\":" << JsonString(target.name) << ",\"ratio\":" << target.value
        << ",\"at_most\":" << target.limit << ",\"measured\":" << (target.measured ? "true" : "false")
        << ",\"met\":" << (target.met ? "true" : "false") << "}";
  }
  out << "],\"skipped\":[";
  for (size_t i = 0; i < report.skipped.size(); ++i) out << (i ? "," : "") << JsonString(report.skipped[i]);
  out << "]}\n";
}

void AddTargets(const HttpOptions& http, const FuseOptions& fuse, Report& report) {
  report.AddRatioTarget("first index build at most 0.5x Watchman's crawl", "dirindex first index build",
                        "watchman crawl, start to first query answered", 0.5);
  std::vector<unsigned> client_counts = {1};
  if (http.clients > 1) client_counts.push_back(http.clients);
  for (unsigned clients : client_counts) {
    std::string label = std::to_string(clients) + (clients == 1 ? " client" : " clients");
    std::string dirindex = "dirindex change query, " + label + ", p50";
    report.AddRatioTarget("change query p50 at most Watchman's since-query p50, " + label, dirindex,
                          "watchman since-query, direct socket, " + label + ", p50", 1.0);
    report.AddRatioTarget("change query p50 at most Watchman's since-query p50 without sync, " + label, dirindex,
                          "watchman since-query without sync, direct socket, " + label + ", p50", 1.0);
  }
  for (unsigned delay : fuse.delays_us) {
    if (delay != 1000) continue;
    report.AddRatioTarget("FUSE walk at 1 ms per call: dirindex auto at most 0.05x find",
                          "dirindex walk, auto, over FUSE, 1000 us per call",
                          "find -printf over FUSE, 1000 us per call", 0.05);
  }
}

std::string LocalTime() {
  std::time_t now = std::time(nullptr);
  char text[64];
  std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S %z", std::localtime(&now));
  return text;
}

int Run(int argc, char** argv) {
  Shape shape;
  std::string scratch = "/tmp/dirindex-capacity";
  std::string json_path;
  bool cold = false;
  unsigned repeat = 3;
  HttpOptions http;
  WatchmanOptions watchman;
  FuseOptions fuse;
  const char* binary_from_environment = std::getenv("DIRINDEX_BINARY");
  fs::path build_dir = fs::path(ExecutableDir()).parent_path();
  http.binary = binary_from_environment != nullptr ? binary_from_environment : (build_dir / "api/dirindex").string();
  fuse.binary = (build_dir / "tools/fuse_delay").string();

  CLI::App app{"dirindex_capacity: build a synthetic tree and measure walk, index build, "
               "rescans, index size and memory next to find, bfs, fd and du; the server's "
               "change query and long-poll over HTTP; a private Watchman on the same tree; and "
               "walks of slow storage through a FUSE file system"};
  app.add_option("--files", shape.files, "total files in the tree")->capture_default_str();
  app.add_option("--per-dir", shape.per_dir, "files per directory")->capture_default_str();
  app.add_option("--depth", shape.depth, "directory levels holding the files")->capture_default_str();
  app.add_option("--name-length", shape.name_length, "bytes per file name")->capture_default_str();
  app.add_option("--nonempty-share", shape.nonempty_share, "share of files with content, 0 to 1")
      ->capture_default_str();
  app.add_option("--scratch", scratch, "folder for the tree, the indexes, logs and mounts (the tree is reused when its shape matches)")
      ->capture_default_str();
  app.add_option("--json", json_path, "also write the figures to this JSON file");
  app.add_option("--repeat", repeat, "runs per warm walk and rescan measurement; the best is reported")
      ->capture_default_str();
  app.add_flag("--cold", cold, "also measure after dropping the page cache (needs root)");

  app.add_option("--http-clients", http.clients,
                 "concurrent keep-alive clients of the change query against 'dirindex serve' on "
                 "127.0.0.1 (the query is also timed with 1 client); 0 skips the HTTP figures")
      ->capture_default_str();
  app.add_option("--http-requests", http.requests, "timed change queries per client (Watchman's too)")
      ->capture_default_str();
  app.add_option("--touched", http.touched,
                 "files touched before the change query and Watchman's since-query")
      ->capture_default_str();
  app.add_option("--dirindex-binary", http.binary,
                 "dirindex executable to serve over HTTP (default $DIRINDEX_BINARY, else "
                 "../api/dirindex next to this program)")
      ->capture_default_str();
  app.add_option("--wake-rounds", http.wake_rounds, "long-poll wake-up rounds; 0 skips them")->capture_default_str();
  app.add_option("--wake-trigger", http.wake_trigger,
                 "what makes the server see each wake-up write: 'watch' (its own inotify watch), "
                 "'rescan' (POST .../rescan after the write) or 'auto' (watch when the root "
                 "reports a running watch, else rescan)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "rescan", "watch"}));
  app.add_option("--wake-timeout", http.wake_timeout_s, "seconds one long-poll round waits at most")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 300.0));

  app.add_flag("--watchman", watchman.enabled,
               "also measure a private watchman (own socket, state and log in --scratch): crawl, "
               "resident memory and since-query latency");
  app.add_option("--watchman-cli-rounds", watchman.cli_rounds,
                 "since-queries through the watchman command line, each a new process")
      ->capture_default_str();

  app.add_option("--fuse-delay-us", fuse.delays_us,
                 "comma-separated delays in microseconds; for each, walk a folder through "
                 "tools/fuse_delay with that delay per lookup and getattr")
      ->delimiter(',');
  app.add_option("--fuse-files", fuse.files, "files in the folder walked through FUSE")->capture_default_str();
  app.add_option("--fuse-threads", fuse.threads, "FUSE requests served at once")->capture_default_str();
  app.add_option("--fuse-repeat", fuse.repeat, "runs per FUSE walk; the best is reported")->capture_default_str();
  app.add_option("--fuse-binary", fuse.binary, "fuse_delay executable (default ../tools/fuse_delay next to this program)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);
  watchman.clients = http.clients > 0 ? http.clients : 1;
  watchman.requests = http.requests;
  watchman.touched = http.touched;
  if (repeat == 0 || fuse.repeat == 0) {
    std::fprintf(stderr, "--repeat and --fuse-repeat must be at least 1\n");
    return 1;
  }

  std::string started_at = LocalTime();
  std::string load_start = LoadAverage();
  std::printf("dirindex_capacity started %s, load %s\n", started_at.c_str(), load_start.c_str());
  // watchman and the mount table need absolute paths.
  scratch = fs::absolute(scratch).lexically_normal().string();
  std::string tree = scratch + "/tree";
  std::string index_dir = scratch + "/index";
  BuildTree(tree, shape);
  fs::remove_all(index_dir);
  Report report;
  IndexFigures index = MeasureWalkAndIndex(tree, index_dir, shape, repeat, cold, report);
  if (!index.failed) {
    MeasureHttp(tree, scratch, shape, http, report);
    MeasureWatchman(tree, scratch, shape, watchman, report);
    MeasureFuse(scratch, fuse, report);
  }
  report.ComputeRatios();
  AddTargets(http, fuse, report);

  std::printf("\ntree: %llu files, %llu per directory, depth %u, names of %u bytes; load at start %s, at end %s\n",
              static_cast<unsigned long long>(shape.files), static_cast<unsigned long long>(shape.per_dir),
              shape.depth, shape.name_length, load_start.c_str(), LoadAverage().c_str());
  PrintTables(report);
  std::printf("\nindex: %.1f bytes per file (%.1f beyond the name bytes), peak anonymous memory during the build %.1f MiB\n",
              index.bytes_per_file, index.overhead_per_file, static_cast<double>(index.peak_anon) / 1048576.0);
  if (!json_path.empty()) WriteJson(json_path, shape, index, report, started_at, load_start);
  if (index.unchanged_scan_wrote) {
    std::fprintf(stderr, "a rescan with nothing changed wrote to LMDB\n");
    return 2;
  }
  return report.failed || index.failed ? 1 : 0;
}

}  // namespace
}  // namespace dirindex::capacity

int main(int argc, char** argv) { return dirindex::capacity::Run(argc, argv); }
