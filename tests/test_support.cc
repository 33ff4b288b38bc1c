#include "tests/test_support.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace dirindex::testing {

namespace {

[[noreturn]] void Die(const char* what, const std::string& path) {
  std::fprintf(stderr, "%s failed on '%s': %s\n", what, path.c_str(),
               std::strerror(errno));
  std::abort();
}

// Removes every entry inside the directory open at `dir_fd`, recursing by
// file descriptor so that paths longer than PATH_MAX are no obstacle.
void RemoveContents(int dir_fd) {
  DIR* dir = fdopendir(dir_fd);
  if (dir == nullptr) {
    close(dir_fd);
    return;
  }
  while (dirent* item = readdir(dir)) {
    std::string_view name = item->d_name;
    if (name == "." || name == "..") continue;
    if (unlinkat(dirfd(dir), item->d_name, 0) == 0) continue;
    // A directory: make it writable and searchable, empty it, remove it.
    fchmodat(dirfd(dir), item->d_name, 0700, 0);
    int child = openat(dirfd(dir), item->d_name,
                       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (child >= 0) RemoveContents(child);
    unlinkat(dirfd(dir), item->d_name, AT_REMOVEDIR);
  }
  closedir(dir);
}

}  // namespace

ScratchDir::ScratchDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base && *base ? base : "/tmp") +
                        "/dirindex-test-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) Die("mkdtemp", pattern);
  path_ = pattern;
}

ScratchDir::~ScratchDir() { RemoveTree(path_); }

std::string ScratchDir::Sub(std::string_view relative) const {
  return path_ + "/" + std::string(relative);
}

void WriteFile(const std::string& path, std::string_view content) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) Die("open", path);
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = write(fd, content.data() + done, content.size() - done);
    if (n < 0) Die("write", path);
    done += static_cast<size_t>(n);
  }
  close(fd);
}

void MakeDirs(const std::string& path) {
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos == path.size() || path[pos] == '/') {
      std::string prefix = path.substr(0, pos);
      if (mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) Die("mkdir", prefix);
    }
  }
}

void RemoveTree(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) RemoveContents(fd);
  rmdir(path.c_str());
}

std::string ServersDir() {
  std::string file = __FILE__;
  return file.substr(0, file.rfind('/')) + "/servers";
}

std::pair<int, std::string> RunCommand(const std::string& command) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  std::string output;
  char buffer[4096];
  size_t got = 0;
  while ((got = fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, got);
  int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

std::set<std::string> Names(const DirListing& listing) {
  std::set<std::string> names;
  for (const ListedEntry& entry : listing.entries) names.insert(entry.name);
  return names;
}

std::set<std::string> Paths(const std::map<std::string, DirListing>& listings) {
  std::set<std::string> paths;
  for (const auto& [path, listing] : listings) paths.insert(path);
  return paths;
}

}  // namespace dirindex::testing
