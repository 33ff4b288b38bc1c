#include "net/sftp_source.h"

#include <algorithm>
#include <cstdlib>

#include <spdlog/spdlog.h>

#include "index/paths.h"

namespace dirindex {

namespace {

Result<std::string> DecodeUrlPart(std::string_view text, std::string_view what) {
  std::optional<std::string> out = PercentDecode(text, false);
  if (!out) {
    return InvalidArgument("the " + std::string(what) + " in the sftp:// URL has an invalid "
                           "percent escape; write '%' itself as %25");
  }
  if (out->find('\0') != std::string::npos) {
    return InvalidArgument("the " + std::string(what) + " in the sftp:// URL contains a NUL byte");
  }
  return *out;
}

// Shows a name with control bytes escaped, for log lines.
std::string PrintableName(std::string_view name) {
  std::string out;
  for (char c : name) {
    auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 15];
    } else {
      out += c;
    }
  }
  return ToValidUtf8(out);
}

// Returns the start directories of a scan: the root, or the requested
// directories without duplicates, without those beyond the depth limit,
// and without those inside another recursive target.
Result<std::vector<ListTarget>> PlanTargets(const ScanRequest& request, uint32_t max_depth) {
  if (request.dirs.empty()) return std::vector<ListTarget>{{"", 0, request.recursive, true}};
  std::vector<std::string> dirs = request.dirs;
  for (const std::string& dir : dirs) {
    Status valid = ValidateRelativePath(dir);
    if (!valid.ok()) return valid;
  }
  std::sort(dirs.begin(), dirs.end());
  dirs.erase(std::unique(dirs.begin(), dirs.end()), dirs.end());

  std::vector<ListTarget> targets;
  for (const std::string& dir : dirs) {
    uint32_t depth = dir.empty() ? 0 : static_cast<uint32_t>(std::count(dir.begin(), dir.end(), '/') + 1);
    if (max_depth != 0 && depth > max_depth) continue;
    bool covered = request.recursive &&
                   std::any_of(targets.begin(), targets.end(), [&dir](const ListTarget& target) {
                     return target.path.empty() || dir.starts_with(target.path + "/");
                   });
    if (!covered) targets.push_back(ListTarget{dir, depth, request.recursive, true});
  }
  return targets;
}

uint32_t EffectiveDepth(uint32_t a, uint32_t b) {
  if (a == 0) return b;
  if (b == 0) return a;
  return std::min(a, b);
}

std::string JoinExtensions(const sftp::VersionInfo& version) {
  std::string out;
  for (const auto& extension : version.extensions) {
    if (!out.empty()) out += ',';
    out += ToValidUtf8(extension.first);
  }
  return out;
}

SourceDetail Text(std::string key, std::string text) {
  SourceDetail detail;
  detail.key = std::move(key);
  detail.text = std::move(text);
  return detail;
}

SourceDetail Number(std::string key, double number) {
  SourceDetail detail;
  detail.key = std::move(key);
  detail.number = number;
  detail.is_number = true;
  return detail;
}

}  // namespace

Result<SftpUrl> ParseSftpUrl(std::string_view url) {
  constexpr std::string_view kScheme = "sftp://";
  if (!url.starts_with(kScheme)) {
    return InvalidArgument("source '" + std::string(url) + "' is not an sftp:// URL");
  }
  std::string_view rest = url.substr(kScheme.size());
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);

  size_t at = authority.rfind('@');
  if (at == std::string_view::npos) {
    return InvalidArgument("source '" + std::string(url) +
                           "' names no user; write sftp://user@host:port/path");
  }
  std::string_view user_info = authority.substr(0, at);
  std::string_view host_port = authority.substr(at + 1);
  if (user_info.find(':') != std::string_view::npos) {
    return InvalidArgument("the sftp:// source for host '" + std::string(host_port) +
                           "' contains a password; remove it from the URL and put it in "
                           "password_file");
  }
  SftpUrl parsed;
  auto user = DecodeUrlPart(user_info, "user name");
  if (!user.ok()) return user.status();
  if (user->empty()) {
    return InvalidArgument("source '" + std::string(url) + "' has an empty user name");
  }
  parsed.user = std::move(*user);

  std::string_view port_text;
  if (host_port.starts_with('[')) {
    size_t close = host_port.find(']');
    if (close == std::string_view::npos) {
      return InvalidArgument("source '" + std::string(url) + "' has an unclosed '[' in its host");
    }
    parsed.host = host_port.substr(1, close - 1);
    std::string_view after = host_port.substr(close + 1);
    if (!after.empty() && !after.starts_with(':')) {
      return InvalidArgument("source '" + std::string(url) + "' has text after the IPv6 address");
    }
    if (!after.empty()) port_text = after.substr(1);
  } else {
    size_t colon = host_port.find(':');
    parsed.host = host_port.substr(0, colon);
    if (colon != std::string_view::npos) port_text = host_port.substr(colon + 1);
  }
  if (parsed.host.empty()) {
    return InvalidArgument("source '" + std::string(url) + "' names no host");
  }
  if (!port_text.empty() || host_port.ends_with(':')) {
    uint32_t port = 0;
    bool digits = !port_text.empty() && port_text.size() <= 5 &&
                  std::all_of(port_text.begin(), port_text.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (digits) port = static_cast<uint32_t>(std::strtoul(std::string(port_text).c_str(), nullptr, 10));
    if (!digits || port == 0 || port > 65535) {
      return InvalidArgument("source '" + std::string(url) + "' has an invalid port '" +
                             std::string(port_text) + "'; use a number from 1 to 65535");
    }
    parsed.port = static_cast<uint16_t>(port);
  }

  auto decoded = DecodeUrlPart(path, "path");
  if (!decoded.ok()) return decoded.status();
  std::string root = std::move(*decoded);
  if (root == "/~" || root.starts_with("/~/")) {
    root = root.size() <= 3 ? "." : root.substr(3);
  } else if (root.empty()) {
    root = "/";
  }
  while (root.size() > 1 && root.ends_with('/')) root.pop_back();
  parsed.path = std::move(root);
  return parsed;
}

Result<std::unique_ptr<SftpSource>> SftpSource::Create(const SftpSourceOptions& options) {
  auto url = ParseSftpUrl(options.remote.url);
  if (!url.ok()) return url.status();
  const RemoteOptions& remote = options.remote;
  if (remote.identity_file.empty() && remote.password_file.empty()) {
    return InvalidArgument("source '" + remote.url + "' needs identity_file or password_file");
  }
  if (remote.connect_timeout.count() <= 0 || remote.operation_timeout.count() <= 0) {
    return InvalidArgument("source '" + remote.url +
                           "': connect_timeout and operation_timeout must be positive");
  }
  if (options.connect_attempts == 0) {
    return InvalidArgument("source '" + remote.url + "': connect_attempts must be at least 1");
  }
  const SftpListerTuning& tuning = options.tuning;
  if (tuning.max_open_dirs == 0 || tuning.initial_readdirs == 0 ||
      tuning.max_readdirs_per_dir == 0 || tuning.max_outstanding == 0) {
    return InvalidArgument("source '" + remote.url +
                           "': every SFTP request limit must be at least 1");
  }
  SftpSourceOptions checked = options;
  if (checked.remote.known_hosts.empty()) {
    const char* home = std::getenv("HOME");
    if (home == nullptr || *home == '\0') {
      return InvalidArgument("source '" + remote.url +
                             "' has no known_hosts file and $HOME is not set; set known_hosts");
    }
    checked.remote.known_hosts = std::string(home) + "/.ssh/known_hosts";
  }
  return std::unique_ptr<SftpSource>(new SftpSource(checked, std::move(*url)));
}

SftpSource::SftpSource(const SftpSourceOptions& options, SftpUrl url)
    : options_(options), url_(std::move(url)) {
  const RemoteOptions& remote = options_.remote;
  SshOptions& ssh = client_options_.ssh;
  ssh.host = url_.host;
  ssh.port = url_.port;
  ssh.user = url_.user;
  ssh.identity_file = remote.identity_file;
  ssh.passphrase_file = remote.passphrase_file;
  ssh.password_file = remote.password_file;
  ssh.known_hosts = remote.known_hosts;
  ssh.trust_on_first_use = remote.trust_on_first_use;
  ssh.keepalive_interval = remote.keepalive_interval;
  if (remote.keepalive_interval.count() > 0) {
    keepalive_thread_ = std::thread([this] { KeepAliveLoop(); });
  }
}

SftpSource::~SftpSource() {
  {
    std::lock_guard lock(wake_mutex_);
    shutting_down_ = true;
  }
  wake_.notify_all();
  if (keepalive_thread_.joinable()) keepalive_thread_.join();
}

std::string SftpSource::Describe() const {
  std::string path = url_.path;
  if (path == ".") {
    path = "/~";
  } else if (!path.starts_with('/')) {
    path = "/~/" + path;
  }
  return "sftp://" + url_.user + "@" + FormatEndpoint(url_.host, url_.port) + path;
}

SftpStats SftpSource::stats() const {
  std::lock_guard lock(state_mutex_);
  return stats_;
}

std::vector<SourceDetail> SftpSource::Details() const {
  std::lock_guard lock(state_mutex_);
  std::vector<SourceDetail> details;
  details.push_back(Text("host", FormatEndpoint(url_.host, url_.port)));
  details.push_back(Text("user", url_.user));
  details.push_back(Text("remote_path", url_.path));
  details.push_back(Text("protocol", "SFTP version 3"));
  details.push_back(Text("connection", stats_.connected ? "connected" : "disconnected"));
  if (!server_banner_.empty()) details.push_back(Text("server_banner", server_banner_));
  if (!algorithms_.empty()) details.push_back(Text("algorithms", algorithms_));
  if (!host_key_.empty()) details.push_back(Text("host_key", host_key_));
  if (!extensions_.empty()) details.push_back(Text("server_extensions", extensions_));
  if (max_open_handles_ > 0) {
    details.push_back(Number("server_max_open_handles", static_cast<double>(max_open_handles_)));
  }
  details.push_back(Number("connects", static_cast<double>(stats_.connects)));
  details.push_back(Number("connect_failures", static_cast<double>(stats_.connect_failures)));
  if (!last_error_.empty()) details.push_back(Text("last_error", last_error_));
  if (stats_.scans > 0) {
    double ms = std::chrono::duration<double, std::milli>(stats_.last_duration).count();
    details.push_back(Number("last_listing_ms", ms));
    details.push_back(Number("last_listing_entries", static_cast<double>(stats_.last_entries)));
    details.push_back(Number("last_listing_dirs", static_cast<double>(stats_.last_dirs)));
    details.push_back(Number("last_listing_requests", static_cast<double>(stats_.last_requests)));
  }
  return details;
}

Status SftpSource::ConnectOnce(const std::atomic<bool>& stop) {
  auto started = Clock::now();
  auto client = SftpClient::Connect(client_options_, started + options_.remote.connect_timeout, stop);
  if (!client.ok()) {
    Status error = client.status();
    if (error.code() == StatusCode::kTimedOut) {
      error = Status(StatusCode::kTimedOut,
                     error.message() + " (connect_timeout " +
                         std::to_string(options_.remote.connect_timeout.count()) + " ms)");
    }
    return error;
  }
  client_ = std::move(*client);
  const SshConnection& ssh = client_->ssh();
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  spdlog::info("SFTP session open: source={} server=\"{}\" algorithms=\"{}\" host_key=\"{} {}\" "
               "connect_ms={}",
               Describe(), ssh.server_banner(), ssh.algorithms(), ssh.host_key().type_name,
               ssh.host_key().fingerprint, elapsed.count());
  std::lock_guard lock(state_mutex_);
  ++stats_.connects;
  stats_.connected = true;
  server_banner_ = ssh.server_banner();
  algorithms_ = ssh.algorithms();
  host_key_ = ssh.host_key().type_name + " " + ssh.host_key().fingerprint;
  extensions_ = JoinExtensions(client_->version());
  return Status::Ok();
}

Status SftpSource::EnsureConnected(const std::atomic<bool>& stop) {
  if (client_ != nullptr && !client_->broken()) return Status::Ok();
  client_.reset();
  Status last;
  for (uint32_t attempt = 1; attempt <= options_.connect_attempts; ++attempt) {
    last = ConnectOnce(stop);
    if (last.ok()) {
      if (failures_in_a_row_ > 0) {
        spdlog::info("SFTP reconnected: source={} after {} failed attempts", Describe(),
                     failures_in_a_row_);
      }
      failures_in_a_row_ = 0;
      return last;
    }
    ++failures_in_a_row_;
    {
      std::lock_guard lock(state_mutex_);
      ++stats_.connect_failures;
      stats_.connected = false;
      last_error_ = last.ToString();
    }
    // A rejected host key or credential, an unusable option and a stop do
    // not get better by retrying.
    StatusCode code = last.code();
    bool retry = code == StatusCode::kUnavailable || code == StatusCode::kTimedOut ||
                 code == StatusCode::kIoError;
    if (!retry || attempt == options_.connect_attempts) {
      spdlog::error("SFTP connect failed: source={} attempt={} error={}{}", Describe(),
                    failures_in_a_row_, last.ToString(),
                    retry ? "; the next scan tries again" : "");
      return last;
    }
    auto delay = options_.retry_delay * (uint64_t{1} << std::min<uint64_t>(failures_in_a_row_ - 1, 20));
    delay = std::min<std::chrono::milliseconds>(delay, options_.max_retry_delay);
    spdlog::warn("SFTP connect failed: source={} attempt={} error={}; retrying in {} ms",
                 Describe(), failures_in_a_row_, last.ToString(), delay.count());
    auto wake_at = Clock::now() + delay;
    while (Clock::now() < wake_at) {
      if (stop.load()) return Status(StatusCode::kAborted, "SFTP connect to " + Describe() + " stopped");
      std::this_thread::sleep_for(std::min<Clock::duration>(wake_at - Clock::now(),
                                                            std::chrono::milliseconds(100)));
    }
  }
  return last;
}

void SftpSource::DropConnection(const Status& reason) {
  if (client_ == nullptr) return;
  auto level = reason.code() == StatusCode::kAborted ? spdlog::level::info : spdlog::level::warn;
  spdlog::log(level, "SFTP session closed: source={} reason={}", Describe(), reason.ToString());
  client_.reset();
  std::lock_guard lock(state_mutex_);
  stats_.connected = false;
  last_error_ = reason.ToString();
}

Result<ScanTotals> SftpSource::Scan(const ScanRequest& request, ListingSink& sink,
                                    const std::atomic<bool>& stop) {
  std::lock_guard session_lock(session_mutex_);
  auto started = Clock::now();
  ListJob job;
  job.root_path = url_.path;
  job.max_depth = EffectiveDepth(options_.remote.max_depth, request.max_depth);
  job.operation_timeout = options_.remote.operation_timeout;
  job.tuning = options_.tuning;
  job.previous_replies = &previous_replies_;
  auto targets = PlanTargets(request, job.max_depth);
  if (!targets.ok()) return targets.status();
  job.targets = std::move(*targets);

  bool reused = client_ != nullptr && !client_->broken();
  Status connected = EnsureConnected(stop);
  if (!connected.ok()) return connected;

  ListReport report;
  Status listed = ListTree(*client_, job, sink, stop, &report);
  if (!listed.ok() && reused && !report.emitted && listed.code() == StatusCode::kUnavailable) {
    // The session died while idle (a server restart, a dropped NAT entry).
    // Nothing reached the sink yet, so the scan starts over on a new one.
    DropConnection(listed);
    connected = EnsureConnected(stop);
    if (!connected.ok()) return connected;
    report = ListReport();
    listed = ListTree(*client_, job, sink, stop, &report);
  }
  if (!report.unfinished.empty()) {
    Status failed = FailUnfinished(listed, sink, &report);
    if (!failed.ok()) listed = failed;
  }
  if (client_->broken()) DropConnection(listed);
  LogRejectedNames(report);
  if (listed.ok() && request.dirs.empty()) {
    previous_replies_ = std::move(report.replies);
  } else {
    for (auto& [path, replies] : report.replies) previous_replies_[path] = replies;
  }

  auto elapsed = Clock::now() - started;
  {
    std::lock_guard lock(state_mutex_);
    ++stats_.scans;
    stats_.last_duration = elapsed;
    stats_.last_entries = report.entries;
    stats_.last_dirs = report.totals.dirs;
    stats_.last_requests = report.requests;
    if (client_ != nullptr && client_->limits()) {
      max_open_handles_ = client_->limits()->max_open_handles;
    }
    if (!listed.ok()) {
      last_error_ = listed.ToString();
    } else if (report.totals.failed_dirs == 0) {
      last_error_.clear();
    }
  }
  spdlog::debug("SFTP scan: source={} dirs={} failed_dirs={} entries={} requests={} ms={}",
                Describe(), report.totals.dirs, report.totals.failed_dirs, report.entries,
                report.requests,
                std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count());
  if (!listed.ok()) return listed;
  return report.totals;
}

void SftpSource::LogRejectedNames(const ListReport& report) {
  uint64_t count = report.rejected_names;
  if (count == 0) {
    last_rejected_names_ = 0;
    return;
  }
  std::string examples;
  for (const auto& [dir, name] : report.rejected_examples) {
    if (!examples.empty()) examples += ", ";
    examples += "'" + PrintableName(dir) + "' '" + PrintableName(name) + "'";
  }
  // The same count as the last scan means the same names, most likely, so
  // a root with a few bad names logs them once, not every scan.
  auto level = count == last_rejected_names_ ? spdlog::level::debug : spdlog::level::warn;
  spdlog::log(level,
              "SFTP entries skipped: source={} count={} reason=\"name is empty or contains '/' "
              "or NUL\" examples (directory, name): {}",
              Describe(), count, examples);
  last_rejected_names_ = count;
}

void SftpSource::KeepAliveLoop() {
  // libssh2 sends a keepalive only once its interval has passed, so waking
  // twice per interval keeps the gap between two at most 1.5 intervals.
  const auto period = std::max<std::chrono::milliseconds>(options_.remote.keepalive_interval / 2,
                                                          std::chrono::milliseconds(100));
  std::unique_lock wake_lock(wake_mutex_);
  while (!wake_.wait_for(wake_lock, period, [this] { return shutting_down_; })) {
    wake_lock.unlock();
    {
      // A running scan keeps the session busy, so there is nothing to do.
      std::unique_lock session_lock(session_mutex_, std::try_to_lock);
      if (session_lock.owns_lock() && client_ != nullptr) {
        Status alive = client_->KeepAlive();
        if (alive.ok()) {
          std::lock_guard lock(state_mutex_);
          ++stats_.keepalives;
        } else {
          DropConnection(alive);
        }
      }
    }
    wake_lock.lock();
  }
}

Result<std::unique_ptr<Source>> MakeSftpSource(const RemoteOptions& options) {
  SftpSourceOptions sftp_options;
  sftp_options.remote = options;
  auto source = SftpSource::Create(sftp_options);
  if (!source.ok()) return source.status();
  return std::unique_ptr<Source>(std::move(*source));
}

}  // namespace dirindex
