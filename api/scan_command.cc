// `dirindex scan DIR`: one walk with the local walker into a sink that
// only counts, to measure how fast a tree can be listed. Progress goes to
// stderr, as a line redrawn every 200 ms on a terminal or a log line every
// 10 s otherwise. The summary goes to stdout.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>

#include <spdlog/spdlog.h>

#include "api/commands.h"
#include "scan/walker.h"

namespace dirindex {

namespace {

using Clock = std::chrono::steady_clock;

std::atomic<bool> g_stop_scan{false};

void OnStopSignal(int) { g_stop_scan.store(true); }

// CountingSink counts what the walker lists and stores nothing.
class CountingSink : public ListingSink {
 public:
  Status Accept(DirListing&& listing) override {
    if (!listing.status.ok()) {
      if (failed_dirs_.fetch_add(1) < kMaxLoggedFailures) {
        spdlog::warn("scan: listing '{}' failed: {}", listing.path,
                     listing.status.message());
      }
    } else {
      dirs_.fetch_add(1);
    }
    uint64_t files = 0;
    uint64_t bytes = 0;
    for (const ListedEntry& entry : listing.entries) {
      if (entry.type == EntryType::kDir) continue;
      ++files;
      if (entry.type == EntryType::kFile && (entry.known & kKnownSize)) {
        bytes += entry.size;
      }
    }
    files_.fetch_add(files);
    bytes_.fetch_add(bytes);
    return Status::Ok();
  }

  uint64_t dirs() const { return dirs_.load(); }
  uint64_t files() const { return files_.load(); }
  uint64_t bytes() const { return bytes_.load(); }
  uint64_t failed_dirs() const { return failed_dirs_.load(); }

 private:
  static constexpr uint64_t kMaxLoggedFailures = 20;
  std::atomic<uint64_t> dirs_{0};
  std::atomic<uint64_t> files_{0};
  std::atomic<uint64_t> bytes_{0};
  std::atomic<uint64_t> failed_dirs_{0};
};

double Seconds(Clock::duration elapsed) {
  return std::chrono::duration<double>(elapsed).count();
}

std::string ProgressLine(const CountingSink& sink, Clock::duration elapsed) {
  double seconds = Seconds(elapsed);
  double rate = seconds > 0 ? static_cast<double>(sink.files()) / seconds : 0;
  char line[160];
  std::snprintf(line, sizeof line,
                "%llu directories, %llu files, %.1f MiB, %.0f files/s",
                static_cast<unsigned long long>(sink.dirs()),
                static_cast<unsigned long long>(sink.files()),
                static_cast<double>(sink.bytes()) / (1 << 20), rate);
  return line;
}

// ProgressReporter shows the sink's counts on a thread of its own until
// it is destroyed.
class ProgressReporter {
 public:
  ProgressReporter(const CountingSink& sink, Clock::time_point start)
      : sink_(sink), start_(start), terminal_(isatty(STDERR_FILENO) == 1) {
    thread_ = std::thread([this] { Run(); });
  }

  ~ProgressReporter() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    wake_.notify_one();
    thread_.join();
    if (terminal_ && drawn_) std::fputs("\r\033[K", stderr);
  }

 private:
  void Run() {
    auto period = terminal_ ? std::chrono::milliseconds(200)
                            : std::chrono::milliseconds(10'000);
    std::unique_lock lock(mutex_);
    while (!wake_.wait_for(lock, period, [this] { return done_; })) {
      std::string line = ProgressLine(sink_, Clock::now() - start_);
      if (terminal_) {
        std::fprintf(stderr, "\r\033[K%s", line.c_str());
        std::fflush(stderr);
        drawn_ = true;
      } else {
        spdlog::info("scan: {}", line);
      }
    }
  }

  const CountingSink& sink_;
  const Clock::time_point start_;
  const bool terminal_;
  bool drawn_ = false;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool done_ = false;
  std::thread thread_;
};

void PrintSummary(const std::string& path, const CountingSink& sink,
                  Clock::duration elapsed) {
  double seconds = Seconds(elapsed);
  double rate = seconds > 0 ? static_cast<double>(sink.files()) / seconds : 0;
  std::printf("root: %s\n", path.c_str());
  std::printf("directories: %llu\n",
              static_cast<unsigned long long>(sink.dirs()));
  std::printf("files: %llu\n", static_cast<unsigned long long>(sink.files()));
  std::printf("bytes: %llu\n", static_cast<unsigned long long>(sink.bytes()));
  std::printf("failed directories: %llu\n",
              static_cast<unsigned long long>(sink.failed_dirs()));
  std::printf("elapsed: %.3f s\n", seconds);
  std::printf("files/s: %.0f\n", rate);
}

}  // namespace

int RunScan(const std::string& dir) {
  char* resolved = realpath(dir.c_str(), nullptr);
  if (resolved == nullptr) {
    std::fprintf(stderr, "scan: %s\n",
                 ErrnoStatus(errno, "resolving", dir).message().c_str());
    return 1;
  }
  WalkerOptions options;
  options.root_path = resolved;
  std::free(resolved);

  Result<std::unique_ptr<LocalSource>> source = LocalSource::Create(options);
  if (!source.ok()) {
    std::fprintf(stderr, "scan: %s\n", source.status().message().c_str());
    return 1;
  }
  signal(SIGINT, OnStopSignal);
  signal(SIGTERM, OnStopSignal);

  CountingSink sink;
  Clock::time_point start = Clock::now();
  Result<ScanTotals> totals = [&] {
    ProgressReporter progress(sink, start);
    return (*source)->Scan(ScanRequest{}, sink, g_stop_scan);
  }();
  Clock::duration elapsed = Clock::now() - start;

  PrintSummary(options.root_path, sink, elapsed);
  if (!totals.ok()) {
    std::fprintf(stderr, "scan: %s\n", totals.status().message().c_str());
    return totals.status().code() == StatusCode::kAborted ? 130 : 1;
  }
  return 0;
}

}  // namespace dirindex
