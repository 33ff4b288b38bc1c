#include "api/service.h"

#include <sys/stat.h>

#include <filesystem>
#include <utility>

#include <spdlog/spdlog.h>

#include "index/filter.h"
#include "net/remote_source.h"
#include "scan/walker.h"
#include "scan/watcher.h"

namespace dirindex {

namespace {

void WarnIfReadableByOthers(const std::string& path) {
  struct stat info {};
  if (stat(path.c_str(), &info) == 0 && (info.st_mode & S_IROTH) != 0) {
    spdlog::warn(
        "token file {} is readable by every user; restrict it with "
        "chmod 600",
        path);
  }
}

}  // namespace

Status Service::OpenIndex(const Config& config) {
  std::string dir =
      config.index_dir.empty() ? DefaultIndexDir() : config.index_dir;
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    return ErrnoStatus(error.value(), "creating the index directory", dir);
  }

  IndexOptions options;
  options.dir = dir;
  options.initial_map_size_bytes = config.map_size_bytes;
  options.max_map_size_bytes =
      std::max(options.max_map_size_bytes, config.map_size_bytes);
  options.retention_changes = config.retention_changes;
  Result<std::unique_ptr<Index>> index = Index::Open(options);
  if (!index.ok()) return index.status();
  index_ = std::move(*index);
  spdlog::info("index opened in {}", dir);
  return Status::Ok();
}

namespace {

// Creates the lister of one root: the local walker, or a remote lister
// that connects at its first scan. A watched local root gets its watcher
// in `schedule`, fed by the walker with every directory it opens.
Result<std::unique_ptr<Source>> MakeSource(const RootConfig& root, RootSchedule& schedule) {
  if (root.remote) return MakeRemoteSource(root.remote_options);
  WalkerOptions walker;
  walker.root_path = root.local_path;
  if (root.watch) {
    WatcherOptions watching;
    watching.root_name = root.name;
    watching.root_path = root.local_path;
    watching.max_watches = root.max_watches;
    if (schedule.filter != nullptr && !schedule.filter->empty()) {
      std::shared_ptr<const PathFilter> filter = schedule.filter;
      watching.admits = [filter](std::string_view path, bool is_dir) {
        return filter->Admits(path, is_dir ? EntryType::kDir : EntryType::kFile);
      };
    }
    Result<std::unique_ptr<DirWatcher>> watcher = DirWatcher::Create(watching);
    if (watcher.ok()) {
      schedule.watcher = std::move(*watcher);
      DirWatcher* target = schedule.watcher.get();
      walker.on_directory_open = [target](std::string_view path, int fd) {
        target->DirOpened(path, fd);
      };
    } else {
      // The root still works, found by periodic rescans alone.
      spdlog::warn("root '{}' is not watched: {}; changes are found by periodic rescans",
                   root.name, watcher.status().ToString());
    }
  }
  Result<std::unique_ptr<LocalSource>> local = LocalSource::Create(walker);
  if (!local.ok()) return local.status();
  return std::unique_ptr<Source>(std::move(*local));
}

std::optional<int> DailyMinute(const FullRescanSchedule& schedule) {
  if (schedule.kind != FullRescanSchedule::Kind::kDaily) return std::nullopt;
  return schedule.minute_of_day;
}

}  // namespace

Status Service::AddRoots(const Config& config,
                         std::vector<ServedRoot>& served) {
  Status names = ValidateRoots(config.roots);
  if (!names.ok()) return names;

  for (const RootConfig& root : config.roots) {
    RootSchedule schedule;
    Result<PathFilter> filter = PathFilter::Create(root.include, root.exclude);
    if (!filter.ok()) {
      return Status(filter.status().code(), "root '" + root.name + "': " + filter.status().message());
    }
    schedule.filter = std::make_shared<const PathFilter>(std::move(*filter));
    Result<std::unique_ptr<Source>> source = MakeSource(root, schedule);
    if (!source.ok()) {
      return Status(source.status().code(),
                    "root '" + root.name + "': " + source.status().message());
    }
    Result<uint32_t> id = index_->AddRoot(root.name, root.source);
    if (!id.ok()) return id.status();

    schedule.root_id = *id;
    schedule.name = root.name;
    schedule.source = std::move(*source);
    schedule.rescan_interval = root.rescan_interval;
    schedule.settle = root.settle;
    if (root.full_rescan.kind == FullRescanSchedule::Kind::kInterval) {
      schedule.full_rescan_interval = root.full_rescan.interval;
    }
    schedule.full_rescan_minute = DailyMinute(root.full_rescan).value_or(-1);
    scheduler_->AddRoot(std::move(schedule));
    served.push_back({root.name, *id});
  }
  return Status::Ok();
}

Status Service::StartServer(const Config& config, const HttpLimits& limits) {
  HttpServerOptions options;
  options.listen = config.listen;
  options.limits = limits;
  if (!config.token_file.empty()) {
    Result<std::string> token = ReadTokenFile(config.token_file);
    if (!token.ok()) return token.status();
    options.token = std::move(*token);
    WarnIfReadableByOthers(config.token_file);
  }
  Result<std::unique_ptr<HttpServer>> server =
      HttpServer::Start(options, *api_);
  if (!server.ok()) return server.status();
  server_ = std::move(*server);
  return Status::Ok();
}

Result<std::unique_ptr<Service>> Service::Start(const Config& config,
                                                const HttpLimits& limits) {
  std::unique_ptr<Service> service(new Service());
  Status opened = service->OpenIndex(config);
  if (!opened.ok()) return opened;

  service->scheduler_ = std::make_unique<Scheduler>(*service->index_);
  std::vector<ServedRoot> served;
  Status added = service->AddRoots(config, served);
  if (!added.ok()) return added;
  service->api_ =
      std::make_unique<Api>(*service->index_, *service->scheduler_, served);

  Status started = service->StartServer(config, limits);
  if (!started.ok()) return started;
  HttpServer* server = service->server_.get();
  service->index_->SetCommitListener(
      [server](uint32_t root_id, uint64_t last_seq) {
        server->NotifyCommit(root_id, last_seq);
      });
  service->scheduler_->Start();

  spdlog::info("serving on {} (port {}) with {} root(s)", config.listen,
               service->port(), config.roots.size());
  for (const RootConfig& root : config.roots) {
    Result<PathFilter> filter = PathFilter::Create(root.include, root.exclude);
    spdlog::info("root '{}': {}, rescan every {} ms, settle {} ms, watch {}, full rescan {}, "
                 "filters {}",
                 root.name, root.source, root.rescan_interval.count(), root.settle.count(),
                 root.watch && !root.remote, root.full_rescan.text.empty() ? "off" : root.full_rescan.text,
                 !filter.ok() || filter->empty() ? "none" : filter->Describe());
  }
  return service;
}

Service::~Service() { Stop(); }

void Service::Stop() {
  if (stopped_) return;
  stopped_ = true;
  bool was_serving = server_ != nullptr;
  if (server_) server_->Stop();
  if (scheduler_) scheduler_->Stop();
  // The listener points at the server, so replace it before the server
  // goes away.
  if (index_) index_->SetCommitListener([](uint32_t, uint64_t) {});
  server_.reset();
  api_.reset();
  scheduler_.reset();
  index_.reset();
  if (was_serving) spdlog::info("stopped");
}

}  // namespace dirindex
