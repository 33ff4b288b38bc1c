#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include "bench/capacity.h"

extern char** environ;

namespace dirindex::capacity {

namespace fs = std::filesystem;

void Report::Skip(const std::string& reason) {
  std::printf("skipped: %s\n", reason.c_str());
  skipped.push_back(reason);
}

void Report::Fail(const std::string& reason) {
  std::fprintf(stderr, "failed: %s\n", reason.c_str());
  failed = true;
}

double Report::Value(const std::string& name) const {
  for (const Figure& figure : figures) {
    if (figure.name == name) return figure.value;
  }
  return -1;
}

void Report::ComputeRatios() {
  for (Figure& figure : figures) {
    if (figure.anchor.empty()) continue;
    double anchor = Value(figure.anchor);
    figure.ratio = (anchor > 0 && figure.value >= 0) ? figure.value / anchor : 0;
  }
}

void Report::AddRatioTarget(const std::string& target, const std::string& numerator,
                            const std::string& denominator, double limit) {
  Target entry{target, -1, limit, false, false};
  double top = Value(numerator);
  double bottom = Value(denominator);
  if (top >= 0 && bottom > 0) {
    entry.value = top / bottom;
    entry.measured = true;
    entry.met = entry.value <= limit;
  }
  targets.push_back(entry);
}

double Seconds(Clock::duration duration) { return std::chrono::duration<double>(duration).count(); }

double Milliseconds(double seconds) { return seconds < 0 ? -1 : seconds * 1e3; }

std::string FileName(uint64_t index, unsigned length) {
  std::string name = "f";
  name += std::to_string(index);
  while (name.size() + 4 < length) name.push_back('_');
  return name + ".dat";
}

std::string DirPath(const std::string& root, const Shape& shape, uint64_t dir) {
  std::string path = root;
  for (unsigned level = 1; level < shape.depth; ++level) {
    path += "/l" + std::to_string(level) + "_" + std::to_string(dir % 7);
  }
  return path + "/d" + std::to_string(dir);
}

void BuildTree(const std::string& root, const Shape& shape) {
  std::string marker = root + "/.shape";
  std::string expected = std::to_string(shape.files) + " " + std::to_string(shape.per_dir) + " " +
                         std::to_string(shape.depth) + " " + std::to_string(shape.name_length) + " " +
                         std::to_string(shape.nonempty_share);
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
    std::string dir = DirPath(root, shape, d);
    fs::create_directories(dir);
    for (uint64_t f = d * shape.per_dir; f < std::min(shape.files, (d + 1) * shape.per_dir); ++f) {
      std::string path = dir + "/" + FileName(f, shape.name_length);
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

std::vector<std::string> SpreadFiles(const std::string& root, const Shape& shape, uint64_t count) {
  std::vector<std::string> paths;
  count = std::min(count, shape.files);
  if (count == 0) return paths;
  paths.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    // Evenly spaced file numbers from 0 to files - 1.
    uint64_t file = i * shape.files / count;
    uint64_t dir = file / shape.per_dir;
    paths.push_back(DirPath(root, shape, dir) + "/" + FileName(file, shape.name_length));
  }
  return paths;
}

void TouchFiles(const std::vector<std::string>& paths) {
  timespec times[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
  for (const std::string& path : paths) {
    if (utimensat(AT_FDCWD, path.c_str(), times, 0) != 0) std::perror(path.c_str());
  }
}

Latencies Summarize(std::vector<double> seconds) {
  Latencies result;
  result.count = seconds.size();
  if (seconds.empty()) return result;
  std::sort(seconds.begin(), seconds.end());
  auto at = [&](double quantile) {
    size_t rank = static_cast<size_t>(std::ceil(quantile * static_cast<double>(seconds.size())));
    return seconds[std::min(seconds.size() - 1, rank == 0 ? 0 : rank - 1)];
  };
  result.p50 = at(0.50);
  result.p99 = at(0.99);
  return result;
}

LoadResult RunClients(unsigned clients, unsigned requests, unsigned warmup,
                      const std::function<RequestFunction(unsigned client)>& connect) {
  std::mutex mutex;
  std::vector<double> all;
  uint64_t failures = 0;
  std::vector<std::thread> threads;
  auto start = Clock::now();
  for (unsigned client = 0; client < clients; ++client) {
    threads.emplace_back([&, client] {
      std::vector<double> mine;
      uint64_t failed = 0;
      RequestFunction request = connect(client);
      if (!request) {
        failed = requests;
      } else {
        for (unsigned i = 0; i < warmup; ++i) request();
        mine.reserve(requests);
        for (unsigned i = 0; i < requests; ++i) {
          auto before = Clock::now();
          bool ok = request();
          if (ok) {
            mine.push_back(Seconds(Clock::now() - before));
          } else {
            ++failed;
          }
        }
      }
      std::lock_guard lock(mutex);
      all.insert(all.end(), mine.begin(), mine.end());
      failures += failed;
    });
  }
  for (std::thread& thread : threads) thread.join();
  double elapsed = Seconds(Clock::now() - start);
  LoadResult result;
  result.failures = failures;
  result.requests_per_second = elapsed > 0 ? static_cast<double>(all.size()) / elapsed : 0;
  result.latencies = Summarize(std::move(all));
  return result;
}

namespace {

// Returns the field `key` (such as "VmRSS:") of /proc/PID/status in bytes,
// or 0 when it cannot be read.
uint64_t StatusBytes(pid_t pid, const std::string& key) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string field;
  while (status >> field) {
    if (field == key) {
      uint64_t kib = 0;
      status >> kib;
      return kib * 1024;
    }
    status.ignore(1 << 16, '\n');
  }
  return 0;
}

}  // namespace

uint64_t ResidentBytes(pid_t pid) { return StatusBytes(pid, "VmRSS:"); }

std::string ResidentNote(pid_t pid) {
  char note[96];
  std::snprintf(note, sizeof(note), "VmRSS: RssAnon %.1f MiB, RssFile %.1f MiB",
                static_cast<double>(StatusBytes(pid, "RssAnon:")) / 1048576.0,
                static_cast<double>(StatusBytes(pid, "RssFile:")) / 1048576.0);
  return note;
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

std::string ExecutableDir() {
  std::error_code error;
  fs::path self = fs::read_symlink("/proc/self/exe", error);
  return error ? std::string(".") : self.parent_path().string();
}

bool HaveCommand(const std::string& name) {
  return std::system(("command -v " + name + " >/dev/null 2>&1").c_str()) == 0;
}

double TimeCommand(const std::string& command) {
  auto start = Clock::now();
  int status = std::system((command + " >/dev/null 2>&1").c_str());
  double elapsed = Seconds(Clock::now() - start);
  return (WIFEXITED(status) && WEXITSTATUS(status) == 0) ? elapsed : -1;
}

std::string ShellQuote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted.push_back(c);
    }
  }
  return quoted + "'";
}

namespace {

std::vector<char*> Pointers(const std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  for (const std::string& text : strings) pointers.push_back(const_cast<char*>(text.c_str()));
  pointers.push_back(nullptr);
  return pointers;
}

// Returns this process's environment with `extra` ("NAME=value") entries
// added, each replacing an inherited entry of the same name.
std::vector<std::string> ChildEnvironment(const std::vector<std::string>& extra) {
  std::vector<std::string> result;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string text = *entry;
    std::string name = text.substr(0, text.find('='));
    bool replaced = std::any_of(extra.begin(), extra.end(), [&](const std::string& added) {
      return added.compare(0, name.size() + 1, name + "=") == 0;
    });
    if (!replaced) result.push_back(text);
  }
  result.insert(result.end(), extra.begin(), extra.end());
  return result;
}

// Replaces the child's standard streams and runs argv; never returns. It
// allocates no memory itself, because another thread of the parent may
// have held the allocator's lock at fork time.
[[noreturn]] void ExecChild(char* const* argv, char* const* envp, int input, int output) {
  if (input >= 0) dup2(input, STDIN_FILENO);
  if (output >= 0) {
    dup2(output, STDOUT_FILENO);
    dup2(output, STDERR_FILENO);
  }
  execvpe(argv[0], argv, envp);
  const char prefix[] = "starting ";
  const char suffix[] = " failed\n";
  // The exit status reports the failure, so a failed write changes nothing.
  ssize_t written = write(STDERR_FILENO, prefix, sizeof(prefix) - 1);
  written = write(STDERR_FILENO, argv[0], strlen(argv[0]));
  written = write(STDERR_FILENO, suffix, sizeof(suffix) - 1);
  (void)written;
  _exit(127);
}

}  // namespace

int RunProgram(const std::vector<std::string>& argv, const std::string& input_path) {
  int input = open(input_path.empty() ? "/dev/null" : input_path.c_str(), O_RDONLY | O_CLOEXEC);
  int output = open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (input < 0 || output < 0) {
    if (input >= 0) close(input);
    if (output >= 0) close(output);
    return -1;
  }
  std::vector<char*> args = Pointers(argv);
  pid_t pid = fork();
  if (pid == 0) ExecChild(args.data(), environ, input, output);
  close(input);
  close(output);
  if (pid < 0) return -1;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) Stop(SIGTERM, std::chrono::seconds(10));
}

bool ChildProcess::Start(const std::vector<std::string>& argv, const std::string& log_path,
                         const std::vector<std::string>& environment) {
  int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) {
    std::fprintf(stderr, "cannot open log %s: %s\n", log_path.c_str(), std::strerror(errno));
    return false;
  }
  std::vector<char*> args = Pointers(argv);
  std::vector<std::string> variables = ChildEnvironment(environment);
  std::vector<char*> envp = Pointers(variables);
  pid_ = fork();
  if (pid_ == 0) ExecChild(args.data(), envp.data(), -1, log);
  close(log);
  return pid_ > 0;
}

bool ChildProcess::Running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

bool ChildProcess::WaitExit(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Running()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

void ChildProcess::Stop(int signal, std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return;
  kill(pid_, signal);
  if (WaitExit(timeout)) return;
  std::fprintf(stderr, "process %d did not exit within %lld ms of signal %d; sending SIGKILL\n",
               static_cast<int>(pid_), static_cast<long long>(timeout.count()), signal);
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

ssize_t ReceiveInto(int fd, std::string& buffer) {
  char chunk[64 * 1024];
  for (;;) {
    ssize_t received = recv(fd, chunk, sizeof(chunk), 0);
    if (received < 0 && errno == EINTR) continue;
    if (received > 0) buffer.append(chunk, static_cast<size_t>(received));
    return received;
  }
}

}  // namespace dirindex::capacity
