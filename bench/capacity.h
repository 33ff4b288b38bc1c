// Pieces shared by the capacity harness's measurements: the synthetic tree,
// the figures and targets it reports, latency percentiles and child
// processes.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "index/source.h"

namespace dirindex::capacity {

using Clock = std::chrono::steady_clock;

// Shape of a synthetic tree: `files` files, `per_dir` in each directory,
// the directories `depth` levels below the root.
struct Shape {
  uint64_t files = 200'000;
  uint64_t per_dir = 200'000;
  unsigned depth = 1;
  unsigned name_length = 16;
  double nonempty_share = 0.1;
};

// Figure is one measured value. Its ratio divides it by the figure named
// `anchor` (the tool people use instead, measured in the same run), so a
// ratio below 1 means dirindex is faster or smaller.
struct Figure {
  std::string section;  // table it is printed in
  std::string name;
  double value = -1;    // negative when the measurement failed
  std::string unit;     // "s", "ms" or "MiB"
  std::string anchor;   // name of the figure it is divided by, or empty
  double ratio = 0;     // 0 without an anchor or when either value is missing
  std::string note;
};

// Target is a goal checked in this run: the ratio `value` must be at most
// `limit`.
struct Target {
  std::string name;
  double value = -1;
  double limit = 0;
  bool measured = false;
  bool met = false;
};

// Report collects the figures of one run. `failed` is set when a requested
// measurement could not run for a reason other than a missing tool.
struct Report {
  std::vector<Figure> figures;
  std::vector<Target> targets;
  std::vector<std::string> skipped;  // one line per measurement left out, with the reason
  bool failed = false;

  void Add(Figure figure) { figures.push_back(std::move(figure)); }
  void Skip(const std::string& reason);
  void Fail(const std::string& reason);
  // Returns the value of the figure named `name`, or -1 when there is none.
  double Value(const std::string& name) const;
  // Sets every figure's ratio from its anchor.
  void ComputeRatios();
  // Adds a target met when figure `numerator` divided by figure
  // `denominator` is at most `limit`. It counts as not measured when
  // either figure is missing.
  void AddRatioTarget(const std::string& target, const std::string& numerator, const std::string& denominator,
                      double limit);
};

double Seconds(Clock::duration duration);
// Converts seconds to milliseconds, keeping a negative (failed) value at -1.
double Milliseconds(double seconds);

// Name of the file with number `index` in a synthetic tree, padded with
// '_' to `length` bytes.
std::string FileName(uint64_t index, unsigned length);
// Path of directory number `dir` of a synthetic tree below `root`.
std::string DirPath(const std::string& root, const Shape& shape, uint64_t dir);
// Builds the tree, or reuses it when its marker file records this shape.
void BuildTree(const std::string& root, const Shape& shape);
// Returns the paths of `count` files spread evenly over the tree.
std::vector<std::string> SpreadFiles(const std::string& root, const Shape& shape, uint64_t count);
// Sets the access and modification times of each path to now.
void TouchFiles(const std::vector<std::string>& paths);

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

// Latencies are percentiles of a set of request times, in seconds.
struct Latencies {
  double p50 = -1;
  double p99 = -1;
  size_t count = 0;
};
Latencies Summarize(std::vector<double> seconds);

// LoadResult is the outcome of RunClients.
struct LoadResult {
  Latencies latencies;
  double requests_per_second = 0;
  uint64_t failures = 0;
};

// A client's request function: sends one request and returns false when
// it failed.
using RequestFunction = std::function<bool()>;

// Runs `clients` threads at once. Each calls `connect(client)` to open its
// own connection, sends `warmup` untimed requests, then times `requests`
// requests one after another. A client whose connect returns an empty
// function counts all its requests as failures.
LoadResult RunClients(unsigned clients, unsigned requests, unsigned warmup,
                      const std::function<RequestFunction(unsigned client)>& connect);

// Returns the resident set size (VmRSS) of process `pid` in bytes, or 0
// when it cannot be read.
uint64_t ResidentBytes(pid_t pid);
// Returns a note that splits VmRSS of `pid` into anonymous memory
// (RssAnon) and mapped file pages (RssFile, such as an LMDB map), in MiB.
std::string ResidentNote(pid_t pid);
// Returns the 1, 5 and 15 minute load averages from /proc/loadavg.
std::string LoadAverage();
// Returns the directory holding this executable.
std::string ExecutableDir();
bool HaveCommand(const std::string& name);
// Runs a shell command with output discarded and returns its wall time in
// seconds, or -1 when it failed.
double TimeCommand(const std::string& command);
// Runs `argv` (no shell) with standard input from `input_path` and output
// discarded. Returns the exit status, or -1 when it could not run.
int RunProgram(const std::vector<std::string>& argv, const std::string& input_path);
// Quotes `text` for a POSIX shell.
std::string ShellQuote(const std::string& text);

// Appends what `fd` has ready to `buffer`, retrying after EINTR. Returns
// the bytes received, 0 at the end of the stream, or -1 with errno set.
ssize_t ReceiveInto(int fd, std::string& buffer);

// ChildProcess runs a program in the background with stdout and stderr
// appended to a log file, and stops it when destroyed.
class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Starts argv[0] (a path, not searched in PATH unless it has no '/')
  // with `environment` entries ("NAME=value") added to this process's
  // environment. Returns false when fork failed.
  bool Start(const std::vector<std::string>& argv, const std::string& log_path,
             const std::vector<std::string>& environment = {});
  // Returns true while the process has not exited.
  bool Running();
  // Waits up to `timeout` for the process to exit by itself. Returns true
  // when it exited.
  bool WaitExit(std::chrono::milliseconds timeout);
  // Sends `signal`, waits up to `timeout`, then sends SIGKILL and waits.
  void Stop(int signal, std::chrono::milliseconds timeout);
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

// Options and entry points of the measurements in capacity_http.cc,
// capacity_watchman.cc and capacity_fuse.cc.
struct HttpOptions {
  std::string binary;           // the dirindex executable
  unsigned clients = 8;         // concurrent keep-alive clients; 0 skips
  unsigned requests = 200;      // timed requests per client
  uint64_t touched = 1000;      // files changed before the change query
  unsigned wake_rounds = 20;    // long-poll wake-up rounds
  // What makes the server see a wake-up write: "watch" (its own inotify
  // watch), "rescan" (POST .../rescan) or "auto" (watch when the root
  // reports a running watch, else rescan).
  std::string wake_trigger = "auto";
  double wake_timeout_s = 30;   // maximum wait of one round
};

struct WatchmanOptions {
  bool enabled = false;
  unsigned clients = 8;
  unsigned requests = 200;
  unsigned cli_rounds = 10;
  uint64_t touched = 1000;
};

struct FuseOptions {
  std::vector<unsigned> delays_us;  // empty skips
  std::string binary;               // the fuse_delay executable
  uint64_t files = 20'000;
  unsigned threads = 256;
  unsigned repeat = 1;
};

void MeasureHttp(const std::string& tree, const std::string& scratch, const Shape& shape,
                 const HttpOptions& options, Report& report);
void MeasureWatchman(const std::string& tree, const std::string& scratch, const Shape& shape,
                     const WatchmanOptions& options, Report& report);
void MeasureFuse(const std::string& scratch, const FuseOptions& options, Report& report);

}  // namespace dirindex::capacity
