// fuse_delay: a read-only FUSE passthrough file system over a source
// folder that waits a fixed time in every lookup and getattr request, to
// measure walkers against slow storage (a network or cloud file system)
// on a local disk. Many requests are served at once, each on its own
// libfuse worker thread, so concurrent callers overlap their waits.
//
//   fuse_delay [--delay-us N] [--threads N] [--timeout S] SOURCE MOUNTPOINT
//
// readdir, open, read, readlink and statfs pass through without delay.
// readdirplus is switched off, so every entry's attributes come from a
// lookup or getattr and pay the delay. Runs in the foreground until
// unmounted (fusermount3 -u MOUNTPOINT) or sent SIGINT or SIGTERM.
#define FUSE_USE_VERSION 312

#include <dirent.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace {

struct Options {
  std::string source;
  std::string mount_point;
  unsigned delay_us = 1000;
  unsigned threads = 256;
  double timeout_s = 0;
  bool debug = false;
};

// Node is one inode of the source that the kernel has looked up and not
// yet forgotten: its path below the source (the first one seen, for a
// hard-linked file) and the kernel's lookup count, which forget lowers. A path rather than an open
// descriptor per inode keeps the number of open files independent of the
// tree's size. Renames in the source while mounted leave stale paths,
// which then fail with ENOENT.
struct Node {
  std::string path;
  uint64_t lookups = 0;
  std::pair<dev_t, ino_t> identity;
};

// NodeTable maps FUSE inode numbers to source inodes. A source inode found
// under several names (hard links) gets one FUSE inode number.
class NodeTable {
 public:
  NodeTable() { nodes_[FUSE_ROOT_ID] = Node{".", 1, {}}; }

  // Returns the path of `ino` relative to the source, or nothing for an
  // inode number that is not in the table.
  std::optional<std::string> Path(fuse_ino_t ino) {
    std::lock_guard lock(mutex_);
    auto found = nodes_.find(ino);
    if (found == nodes_.end()) return std::nullopt;
    return found->second.path;
  }

  // Records one more kernel lookup of the inode at `path` and returns its
  // FUSE inode number.
  fuse_ino_t Remember(const std::string& path, const struct stat& st) {
    std::lock_guard lock(mutex_);
    std::pair<dev_t, ino_t> identity{st.st_dev, st.st_ino};
    auto known = by_identity_.find(identity);
    if (known != by_identity_.end()) {
      ++nodes_[known->second].lookups;
      return known->second;
    }
    fuse_ino_t ino = next_ino_++;
    nodes_[ino] = Node{path, 1, identity};
    by_identity_[identity] = ino;
    return ino;
  }

  // Lowers the lookup count of `ino` by `count` and drops the inode when
  // the count reaches zero. The root is never forgotten.
  void Forget(fuse_ino_t ino, uint64_t count) {
    if (ino == FUSE_ROOT_ID) return;
    std::lock_guard lock(mutex_);
    auto found = nodes_.find(ino);
    if (found == nodes_.end()) return;
    Node& node = found->second;
    node.lookups = count >= node.lookups ? 0 : node.lookups - count;
    if (node.lookups > 0) return;
    by_identity_.erase(node.identity);
    nodes_.erase(found);
  }

 private:
  std::mutex mutex_;
  std::unordered_map<fuse_ino_t, Node> nodes_;
  std::map<std::pair<dev_t, ino_t>, fuse_ino_t> by_identity_;
  fuse_ino_t next_ino_ = FUSE_ROOT_ID + 1;
};

// DirHandle is an open source directory. `pending` is an entry read from
// the stream that did not fit in the previous readdir reply.
struct DirHandle {
  DIR* stream = nullptr;
  off_t offset = 0;
  dirent* pending = nullptr;
  std::mutex mutex;
};

struct FileSystem {
  Options options;
  int source_fd = -1;  // the source directory; every path is relative to it
  NodeTable* nodes = nullptr;
  std::atomic<uint64_t> lookups{0};
  std::atomic<uint64_t> getattrs{0};
};

FileSystem* Self(fuse_req_t request) { return static_cast<FileSystem*>(fuse_req_userdata(request)); }

// Waits the configured delay. The thread's timer slack is lowered to 1 ns
// first: the default of 50 µs would lengthen every 100 µs wait by half.
void Delay(const FileSystem& fs) {
  thread_local bool slack_set = false;
  if (!slack_set) {
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    slack_set = true;
  }
  if (fs.options.delay_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(fs.options.delay_us));
}

void Init(void* userdata, fuse_conn_info* connection) {
  (void)userdata;
  connection->want &= ~(FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO);
  // Without parallel directory operations the kernel serializes all
  // lookups in one directory, and no two waits would overlap.
  if (connection->capable & FUSE_CAP_PARALLEL_DIROPS) connection->want |= FUSE_CAP_PARALLEL_DIROPS;
}

void Lookup(fuse_req_t request, fuse_ino_t parent, const char* name) {
  FileSystem& fs = *Self(request);
  fs.lookups.fetch_add(1, std::memory_order_relaxed);
  Delay(fs);
  std::optional<std::string> parent_path = fs.nodes->Path(parent);
  if (!parent_path) {
    fuse_reply_err(request, ESTALE);
    return;
  }
  std::string path = *parent_path == "." ? std::string(name) : *parent_path + "/" + name;
  fuse_entry_param entry{};
  if (fstatat(fs.source_fd, path.c_str(), &entry.attr, AT_SYMLINK_NOFOLLOW) != 0) {
    fuse_reply_err(request, errno);
    return;
  }
  entry.ino = fs.nodes->Remember(path, entry.attr);
  entry.attr_timeout = fs.options.timeout_s;
  entry.entry_timeout = fs.options.timeout_s;
  fuse_reply_entry(request, &entry);
}

void Forget(fuse_req_t request, fuse_ino_t ino, uint64_t count) {
  Self(request)->nodes->Forget(ino, count);
  fuse_reply_none(request);
}

void ForgetMulti(fuse_req_t request, size_t count, fuse_forget_data* forgets) {
  for (size_t i = 0; i < count; ++i) Self(request)->nodes->Forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(request);
}

void Getattr(fuse_req_t request, fuse_ino_t ino, fuse_file_info* file) {
  (void)file;
  FileSystem& fs = *Self(request);
  fs.getattrs.fetch_add(1, std::memory_order_relaxed);
  Delay(fs);
  std::optional<std::string> path = fs.nodes->Path(ino);
  struct stat st {};
  if (!path) {
    fuse_reply_err(request, ESTALE);
  } else if (fstatat(fs.source_fd, path->c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    fuse_reply_err(request, errno);
  } else {
    fuse_reply_attr(request, &st, fs.options.timeout_s);
  }
}

void Readlink(fuse_req_t request, fuse_ino_t ino) {
  FileSystem& fs = *Self(request);
  std::optional<std::string> path = fs.nodes->Path(ino);
  if (!path) {
    fuse_reply_err(request, ESTALE);
    return;
  }
  std::vector<char> target(PATH_MAX + 1);
  ssize_t length = readlinkat(fs.source_fd, path->c_str(), target.data(), PATH_MAX);
  if (length < 0) {
    fuse_reply_err(request, errno);
    return;
  }
  target[static_cast<size_t>(length)] = '\0';
  fuse_reply_readlink(request, target.data());
}

// Opens the source file of `ino` with `flags`, never following a symlink
// in its last component. Returns -1 with errno set on failure.
int OpenSource(fuse_req_t request, fuse_ino_t ino, int flags) {
  FileSystem& fs = *Self(request);
  std::optional<std::string> path = fs.nodes->Path(ino);
  if (!path) {
    errno = ESTALE;
    return -1;
  }
  return openat(fs.source_fd, path->c_str(), (flags & ~(O_CREAT | O_TRUNC)) | O_NOFOLLOW | O_CLOEXEC);
}

void Opendir(fuse_req_t request, fuse_ino_t ino, fuse_file_info* file) {
  int fd = OpenSource(request, ino, O_RDONLY | O_DIRECTORY);
  if (fd < 0) {
    fuse_reply_err(request, errno);
    return;
  }
  DIR* stream = fdopendir(fd);
  if (stream == nullptr) {
    int error = errno;
    close(fd);
    fuse_reply_err(request, error);
    return;
  }
  auto* handle = new DirHandle;
  handle->stream = stream;
  file->fh = reinterpret_cast<uint64_t>(handle);
  if (fuse_reply_open(request, file) != 0) {
    closedir(stream);
    delete handle;
  }
}

void Readdir(fuse_req_t request, fuse_ino_t ino, size_t size, off_t offset, fuse_file_info* file) {
  (void)ino;
  auto* handle = reinterpret_cast<DirHandle*>(file->fh);
  std::lock_guard lock(handle->mutex);
  if (offset != handle->offset) {
    seekdir(handle->stream, offset);
    handle->pending = nullptr;
    handle->offset = offset;
  }
  std::vector<char> reply(size);
  size_t used = 0;
  for (;;) {
    dirent* entry = handle->pending;
    if (entry == nullptr) {
      errno = 0;
      entry = readdir(handle->stream);
      if (entry == nullptr) {
        if (errno != 0 && used == 0) {
          fuse_reply_err(request, errno);
          return;
        }
        break;
      }
    }
    struct stat st {};
    st.st_ino = entry->d_ino;
    st.st_mode = static_cast<mode_t>(DTTOIF(entry->d_type));
    size_t needed = fuse_add_direntry(request, reply.data() + used, size - used, entry->d_name, &st,
                                      entry->d_off);
    if (needed > size - used) {
      handle->pending = entry;
      break;
    }
    used += needed;
    handle->pending = nullptr;
    handle->offset = entry->d_off;
  }
  fuse_reply_buf(request, reply.data(), used);
}

void Releasedir(fuse_req_t request, fuse_ino_t ino, fuse_file_info* file) {
  (void)ino;
  auto* handle = reinterpret_cast<DirHandle*>(file->fh);
  closedir(handle->stream);
  delete handle;
  fuse_reply_err(request, 0);
}

void Open(fuse_req_t request, fuse_ino_t ino, fuse_file_info* file) {
  if ((file->flags & O_ACCMODE) != O_RDONLY) {
    fuse_reply_err(request, EROFS);
    return;
  }
  int fd = OpenSource(request, ino, file->flags);
  if (fd < 0) {
    fuse_reply_err(request, errno);
    return;
  }
  file->fh = static_cast<uint64_t>(fd);
  if (fuse_reply_open(request, file) != 0) close(fd);
}

void Read(fuse_req_t request, fuse_ino_t ino, size_t size, off_t offset, fuse_file_info* file) {
  (void)ino;
  std::vector<char> data(size);
  ssize_t got = pread(static_cast<int>(file->fh), data.data(), size, offset);
  if (got < 0) {
    fuse_reply_err(request, errno);
  } else {
    fuse_reply_buf(request, data.data(), static_cast<size_t>(got));
  }
}

void Release(fuse_req_t request, fuse_ino_t ino, fuse_file_info* file) {
  (void)ino;
  close(static_cast<int>(file->fh));
  fuse_reply_err(request, 0);
}

void Statfs(fuse_req_t request, fuse_ino_t ino) {
  (void)ino;
  struct statvfs st {};
  if (fstatvfs(Self(request)->source_fd, &st) != 0) {
    fuse_reply_err(request, errno);
  } else {
    fuse_reply_statfs(request, &st);
  }
}

fuse_lowlevel_ops Operations() {
  fuse_lowlevel_ops ops{};
  ops.init = Init;
  ops.lookup = Lookup;
  ops.forget = Forget;
  ops.forget_multi = ForgetMulti;
  ops.getattr = Getattr;
  ops.readlink = Readlink;
  ops.opendir = Opendir;
  ops.readdir = Readdir;
  ops.releasedir = Releasedir;
  ops.open = Open;
  ops.read = Read;
  ops.release = Release;
  ops.statfs = Statfs;
  return ops;
}

bool IsDirectory(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

int Serve(const Options& options) {
  int source_fd = open(options.source.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (source_fd < 0) {
    std::fprintf(stderr, "fuse_delay: opening source '%s' failed: %s; give an existing, readable directory\n",
                 options.source.c_str(), std::strerror(errno));
    return 1;
  }
  if (!IsDirectory(options.mount_point)) {
    std::fprintf(stderr, "fuse_delay: mount point '%s' is not a directory; create it first\n",
                 options.mount_point.c_str());
    return 1;
  }
  NodeTable nodes;
  FileSystem fs;
  fs.options = options;
  fs.source_fd = source_fd;
  fs.nodes = &nodes;

  // libfuse takes mount options as a command line; argv[0] is skipped.
  std::vector<std::string> words = {"fuse_delay", "-o", "ro,fsname=fuse_delay,subtype=fuse_delay"};
  if (options.debug) words.push_back("-d");
  std::vector<char*> argv;
  for (std::string& word : words) argv.push_back(word.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  fuse_lowlevel_ops ops = Operations();
  fuse_session* session = fuse_session_new(&args, &ops, sizeof(ops), &fs);
  if (session == nullptr) {
    std::fprintf(stderr, "fuse_delay: creating the FUSE session failed\n");
    return 1;
  }
  if (fuse_set_signal_handlers(session) != 0) {
    std::fprintf(stderr, "fuse_delay: installing signal handlers failed\n");
    fuse_session_destroy(session);
    return 1;
  }
  if (fuse_session_mount(session, options.mount_point.c_str()) != 0) {
    std::fprintf(stderr,
                 "fuse_delay: mounting on '%s' failed; check that /dev/fuse exists and is "
                 "usable, and that fusermount3 (package fuse3) is installed\n",
                 options.mount_point.c_str());
    fuse_remove_signal_handlers(session);
    fuse_session_destroy(session);
    return 1;
  }
  std::printf("fuse_delay: mounted %s on %s, %u us per lookup and getattr, up to %u threads\n",
              options.source.c_str(), options.mount_point.c_str(), options.delay_us, options.threads);
  std::fflush(stdout);

  fuse_loop_config* loop = fuse_loop_cfg_create();
  fuse_loop_cfg_set_max_threads(loop, options.threads);
  fuse_loop_cfg_set_idle_threads(loop, options.threads);
  int status = fuse_session_loop_mt(session, loop);
  fuse_loop_cfg_destroy(loop);

  fuse_session_unmount(session);
  fuse_remove_signal_handlers(session);
  fuse_session_destroy(session);
  std::printf("fuse_delay: unmounted %s after %llu lookups and %llu getattrs\n", options.mount_point.c_str(),
              static_cast<unsigned long long>(fs.lookups.load()),
              static_cast<unsigned long long>(fs.getattrs.load()));
  // The loop returns 0 after an unmount, the signal number after SIGINT or
  // SIGTERM, and a negative errno when processing requests failed.
  if (status < 0) {
    std::fprintf(stderr, "fuse_delay: the request loop failed: %s\n", std::strerror(-status));
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  CLI::App app{
      "fuse_delay: mount a read-only passthrough of SOURCE on MOUNTPOINT that waits a fixed "
      "time in every lookup and getattr request, serving many requests at once. Runs in the "
      "foreground until unmounted with 'fusermount3 -u MOUNTPOINT' or stopped with SIGINT or "
      "SIGTERM."};
  app.add_option("SOURCE", options.source, "Directory to pass through")->required()->type_name("");
  app.add_option("MOUNTPOINT", options.mount_point, "Empty directory to mount on")->required()->type_name("");
  app.add_option("--delay-us", options.delay_us, "Microseconds to wait in each lookup and getattr")
      ->capture_default_str()
      ->check(CLI::Range(0U, 10'000'000U));
  app.add_option("--threads", options.threads,
                 "Maximum number of requests served at once, one worker thread each")
      ->capture_default_str()
      ->check(CLI::Range(1U, 100'000U));
  app.add_option("--timeout", options.timeout_s,
                 "Seconds the kernel may cache entries and attributes; 0 sends every stat to "
                 "this file system")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 86'400.0));
  app.add_flag("--debug", options.debug, "Print every FUSE request (libfuse's -d)");
  CLI11_PARSE(app, argc, argv);
  return Serve(options);
}
