// The slow-storage figures of the capacity harness. For each delay it
// mounts tools/fuse_delay over a folder of synthetic files, so every
// lookup and getattr waits that long, then walks the mount with the
// dirindex walker (auto, direct statx and io_uring statx) and with
// `find -printf`. The mount is removed with fusermount3 -u after each
// delay, also when a walk fails.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "bench/capacity.h"
#include "scan/walker.h"

namespace dirindex::capacity {

namespace {

namespace fs = std::filesystem;

// Returns true when `path` is a mount point in /proc/self/mountinfo.
bool IsMounted(const std::string& path) {
  std::ifstream mounts("/proc/self/mountinfo");
  std::string line;
  while (std::getline(mounts, line)) {
    std::istringstream fields(line);
    std::string id, parent, device, root, mount_point;
    fields >> id >> parent >> device >> root >> mount_point;
    // mountinfo escapes space, tab, newline and backslash as octal.
    std::string decoded;
    for (size_t i = 0; i < mount_point.size(); ++i) {
      if (mount_point[i] == '\\' && i + 3 < mount_point.size()) {
        decoded.push_back(static_cast<char>(std::stoi(mount_point.substr(i + 1, 3), nullptr, 8)));
        i += 3;
      } else {
        decoded.push_back(mount_point[i]);
      }
    }
    if (decoded == path) return true;
  }
  return false;
}

// Unmounts `path` with fusermount3 -u, retrying while it is busy, and
// detaches it lazily (-uz) as the last resort.
void Unmount(const std::string& path) {
  for (int attempt = 0; attempt < 20 && IsMounted(path); ++attempt) {
    if (RunProgram({"fusermount3", "-u", path}, "") == 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (IsMounted(path)) {
    std::fprintf(stderr, "fusermount3 -u %s kept failing; detaching it lazily\n", path.c_str());
    RunProgram({"fusermount3", "-uz", path}, "");
  }
}

// FuseMount is one running fuse_delay. Destroying it unmounts the file
// system and stops the process.
class FuseMount {
 public:
  ~FuseMount() {
    Unmount(mount_point_);
    if (!process_.WaitExit(std::chrono::seconds(5))) process_.Stop(SIGTERM, std::chrono::seconds(5));
  }

  // Mounts `source` on `mount_point` with `delay_us` per call. Returns an
  // error message, or an empty string once a stat of the mount succeeds.
  std::string Mount(const FuseOptions& options, const std::string& source, const std::string& mount_point,
                    unsigned delay_us, const std::string& log_path) {
    mount_point_ = mount_point;
    std::vector<std::string> argv = {options.binary, "--delay-us", std::to_string(delay_us), "--threads",
                                     std::to_string(options.threads), source, mount_point};
    if (!process_.Start(argv, log_path)) return "starting " + options.binary + " failed";
    auto deadline = Clock::now() + std::chrono::seconds(10);
    while (!IsMounted(mount_point)) {
      if (!process_.Running()) return options.binary + " exited before mounting; see " + log_path;
      if (Clock::now() > deadline) return "the mount did not appear within 10 s; see " + log_path;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    struct stat st {};
    if (stat(mount_point.c_str(), &st) != 0) return "stat of the mount failed: " + std::string(std::strerror(errno));
    return "";
  }

 private:
  ChildProcess process_;
  std::string mount_point_;
};

// Returns why FUSE figures cannot run here, or an empty string.
std::string FuseUnavailable(const FuseOptions& options) {
  if (access(options.binary.c_str(), X_OK) != 0) {
    return "'" + options.binary + "' not found; it is built only with libfuse3-dev installed (pass --fuse-binary)";
  }
  int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fd < 0) return std::string("/dev/fuse cannot be opened: ") + std::strerror(errno);
  close(fd);
  if (!HaveCommand("fusermount3")) return "fusermount3 not found (package fuse3)";
  return "";
}

struct WalkResult {
  double seconds = -1;
  uint64_t entries = 0;
  WalkerStats stats;
};

WalkResult Walk(const std::string& root, StatxMode mode) {
  WalkResult result;
  WalkerOptions options;
  options.root_path = root;
  options.statx_mode = mode;
  auto source = LocalSource::Create(options);
  if (!source.ok()) {
    std::fprintf(stderr, "walker over %s: %s\n", root.c_str(), source.status().ToString().c_str());
    return result;
  }
  CountingSink sink;
  std::atomic<bool> stop{false};
  auto start = Clock::now();
  auto totals = (*source)->Scan(ScanRequest{}, sink, stop);
  if (!totals.ok()) {
    std::fprintf(stderr, "walk of %s failed: %s\n", root.c_str(), totals.status().ToString().c_str());
    return result;
  }
  result.seconds = Seconds(Clock::now() - start);
  result.entries = sink.entries();
  result.stats = (*source)->stats();
  return result;
}

std::string DelayLabel(unsigned delay_us) { return std::to_string(delay_us) + " us per call"; }

void MeasureDelay(const std::string& scratch, const std::string& source, const FuseOptions& options, unsigned delay_us,
                  Report& report) {
  // /proc/self/mountinfo lists mount points as absolute paths without
  // symlinks, so IsMounted compares against the canonical path.
  std::string mount_point = fs::weakly_canonical(scratch + "/fuse-mount").string();
  if (IsMounted(mount_point)) {
    std::printf("FUSE: %s is still mounted from an earlier run; unmounting it\n", mount_point.c_str());
    Unmount(mount_point);
  }
  fs::create_directories(mount_point);
  std::string log_path = scratch + "/fuse-" + std::to_string(delay_us) + "us.log";
  std::printf("FUSE: %u us per lookup and getattr, load %s\n", delay_us, LoadAverage().c_str());
  FuseMount mount;
  std::string error = mount.Mount(options, source, mount_point, delay_us, log_path);
  if (!error.empty()) {
    report.Fail("FUSE at " + DelayLabel(delay_us) + ": " + error);
    return;
  }
  std::string section = "fuse " + DelayLabel(delay_us);
  std::string find_name = "find -printf over FUSE, " + DelayLabel(delay_us);
  double find_time = 1e300;
  for (unsigned i = 0; i < options.repeat; ++i) {
    double time = TimeCommand("find " + ShellQuote(mount_point) + " -printf '%s %T@ %p\\n'");
    if (time < 0) {
      report.Fail(find_name + " failed");
      break;
    }
    find_time = std::min(find_time, time);
  }
  report.Add({section, find_name, find_time < 1e300 ? find_time : -1, "s", "", 0, ""});

  struct Mode {
    StatxMode mode;
    const char* name;
  };
  for (Mode mode : {Mode{StatxMode::kAuto, "auto"}, Mode{StatxMode::kSync, "direct statx"},
                    Mode{StatxMode::kUring, "io_uring statx"}}) {
    WalkResult best;
    for (unsigned i = 0; i < options.repeat; ++i) {
      WalkResult walk = Walk(mount_point, mode.mode);
      if (walk.seconds < 0) break;
      if (best.seconds < 0 || walk.seconds < best.seconds) best = walk;
    }
    std::string name = std::string("dirindex walk, ") + mode.name + ", over FUSE, " + DelayLabel(delay_us);
    if (best.seconds < 0) report.Fail(name + " failed");
    char note[160];
    std::snprintf(note, sizeof(note), "%llu entries; statx direct %llu, io_uring %llu",
                  static_cast<unsigned long long>(best.entries), static_cast<unsigned long long>(best.stats.statx_sync),
                  static_cast<unsigned long long>(best.stats.statx_uring));
    report.Add({section, name, best.seconds, "s", find_name, 0, note});
  }
}

}  // namespace

void MeasureFuse(const std::string& scratch, const FuseOptions& options, Report& report) {
  if (options.delays_us.empty()) return;
  std::string reason = FuseUnavailable(options);
  if (!reason.empty()) {
    report.Skip("FUSE figures: " + reason);
    return;
  }
  // One folder of `files` files, like one busy input folder.
  std::string source = scratch + "/fuse-source";
  Shape shape;
  shape.files = options.files;
  shape.per_dir = options.files;
  BuildTree(source, shape);
  for (unsigned delay_us : options.delays_us) MeasureDelay(scratch, source, options, delay_us, report);
}

}  // namespace dirindex::capacity
