// FtpSource walks a remote tree one directory at a time over a single
// FtpConnection: FTP runs one command at a time per control connection,
// and one connection per root keeps the server's session count low.
//
// Safety of the index comes first. A listing can fail on a dropped or
// timed-out connection, on a line the parser does not understand, or
// because the server truncated it. Such a directory is handed to the sink
// as a failed DirListing with no entries, so the index keeps what it had.
// Its subdirectories are not visited in that scan and keep their entries.
#include "net/ftp_source.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <unordered_set>

#include <spdlog/spdlog.h>

#include "index/index.h"
#include "index/paths.h"
#include "net/ftp_parse.h"
#include "net/ftp_timezone.h"

namespace dirindex {

namespace {

// Skipped remote names logged one by one per scan; the rest are counted in
// one line at the end of the scan.
constexpr uint64_t kMaxLoggedSkippedNames = 10;

// Directories deeper than this are not entered, even with max_depth 0,
// because a server that shows a symlink to a parent as a directory would
// lead the walk in circles forever. With MLSD the unique fact catches that
// sooner (see Scan).
// NOTE: the value is a guard chosen well above real trees, not measured.
constexpr uint32_t kLoopGuardDepth = 512;

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

uint32_t PathDepth(std::string_view path) {
  if (path.empty()) return 0;
  return static_cast<uint32_t>(std::count(path.begin(), path.end(), '/')) + 1;
}

bool IsAncestor(std::string_view ancestor, std::string_view path) {
  if (ancestor.empty()) return !path.empty();
  return path.size() > ancestor.size() && path.starts_with(ancestor) &&
         path[ancestor.size()] == '/';
}

// The stricter of two depth limits, where 0 means unlimited.
uint32_t EffectiveMaxDepth(uint32_t a, uint32_t b) {
  if (a == 0) return b;
  if (b == 0) return a;
  return std::min(a, b);
}

// Owns a CURLU handle for the length of one URL parse.
struct UrlHandle {
  UrlHandle() : url(curl_url()) {}
  ~UrlHandle() { curl_url_cleanup(url); }
  UrlHandle(const UrlHandle&) = delete;
  UrlHandle& operator=(const UrlHandle&) = delete;

  // Returns the part, or nullopt when the URL has none.
  std::optional<std::string> Get(CURLUPart part, unsigned flags = 0) const {
    char* text = nullptr;
    if (curl_url_get(url, part, &text, flags) != CURLUE_OK || text == nullptr) return std::nullopt;
    std::string out = text;
    curl_free(text);
    return out;
  }

  CURLU* url;
};

struct DirTask {
  std::string path;
  uint32_t depth = 0;
  bool recursive = true;
  bool requested = false;  // named by the ScanRequest rather than found by the walk
};

// SkippedNames logs remote names the index cannot store, a few per scan.
class SkippedNames {
 public:
  explicit SkippedNames(const std::string& source) : source_(source) {}

  void Note(std::string_view dir, std::string_view name) {
    if (++count_ > kMaxLoggedSkippedNames) return;
    spdlog::warn("ftp entry skipped, its name cannot be indexed: source={} dir={} name={}",
                 source_, ToValidUtf8(dir), ToValidUtf8(name));
  }

  ~SkippedNames() {
    if (count_ > kMaxLoggedSkippedNames) {
      spdlog::warn("ftp entries skipped: source={} count={} (only the first {} were logged)",
                   source_, count_, kMaxLoggedSkippedNames);
    }
  }

 private:
  const std::string& source_;
  uint64_t count_ = 0;
};

// Returns the directories a scan starts from, without repeats and, for a
// recursive scan, without those inside another requested one, because each
// directory may appear in one listing per scan.
Result<std::vector<std::string>> RequestedDirs(const ScanRequest& request) {
  std::vector<std::string> requested;
  for (const std::string& dir : request.dirs) {
    std::string_view path = dir;
    while (path.starts_with('/')) path.remove_prefix(1);
    while (path.ends_with('/')) path.remove_suffix(1);
    Status valid = ValidateRelativePath(path);
    if (!valid.ok()) {
      return InvalidArgument("rescan directory '" + ToValidUtf8(dir) + "': " + valid.message());
    }
    requested.emplace_back(path);
  }
  if (requested.empty()) requested.emplace_back();
  std::sort(requested.begin(), requested.end());
  requested.erase(std::unique(requested.begin(), requested.end()), requested.end());
  if (!request.recursive) return requested;

  std::vector<std::string> outermost;
  for (std::string& path : requested) {
    bool inside = std::any_of(outermost.begin(), outermost.end(),
                              [&](const std::string& kept) { return IsAncestor(kept, path); });
    if (!inside) outermost.push_back(std::move(path));
  }
  return outermost;
}

// ScanRun is the state of one Scan call.
struct ScanRun {
  explicit ScanRun(const std::string& source) : skipped(source) {}

  std::vector<DirTask> stack;  // directories still to list, the next one last
  ScanTotals totals;
  SkippedNames skipped;
  std::unordered_set<std::string> listed_paths;
  // MLSD unique facts of the directories entered so far: a directory seen
  // again under another path is a loop (or a second mount) and is listed
  // only where it was found first.
  std::unordered_set<std::string> entered_uniques;
};

// SourceState is what Details reports, updated as a scan goes.
struct SourceState {
  bool connected = false;
  bool ever_connected = false;
  uint64_t connects = 0;
  FtpFeatures features;
  std::string last_error;
  std::string last_listing_path;
  double last_listing_seconds = 0;
  uint64_t last_listing_entries = 0;
  double last_scan_seconds = 0;
  uint64_t last_scan_dirs = 0;
};

class FtpSource final : public Source {
 public:
  FtpSource(FtpSettings settings, TimeZone zone, uint32_t max_depth)
      : description_(settings.Describe()),
        zone_(std::move(zone)),
        max_depth_(max_depth),
        connection_(std::move(settings)) {}

  Result<ScanTotals> Scan(const ScanRequest& request, ListingSink& sink,
                          const std::atomic<bool>& stop) override;
  std::string Describe() const override { return description_; }
  std::vector<SourceDetail> Details() const override;

 private:
  Status EnsureConnected(const std::atomic<bool>& stop);
  Result<std::vector<FtpEntry>> ListDirectory(const std::string& path,
                                              const std::atomic<bool>& stop);
  Result<std::vector<FtpEntry>> ListOnce(const std::string& path, ListingFormat format,
                                         const std::atomic<bool>& stop);
  // Reports a failed listing to `sink`, or replaces a requested directory
  // that is gone by its parent. Returns an error when the scan must end.
  Status HandleFailure(const DirTask& task, const Status& error, ListingSink& sink, ScanRun& run,
                       const std::atomic<bool>& stop);
  // Turns parsed entries into the listing for the index, skipping names it
  // cannot store, and collects the subdirectories to enter.
  DirListing BuildListing(const std::string& path, std::vector<FtpEntry>&& entries, ScanRun& run,
                          std::vector<std::string>* children);
  void NoteError(const Status& status);

  const std::string description_;
  const TimeZone zone_;
  const uint32_t max_depth_;

  std::mutex scan_mutex_;  // one scan at a time; guards connection_ and reconnect_error_
  FtpConnection connection_;

  // The failed reconnect of ListDirectory's retry, for HandleFailure, so
  // that an unreachable server is not tried twice in a row.
  Status reconnect_error_;

  mutable std::mutex state_mutex_;  // guards state_
  SourceState state_;
};

Status FtpSource::EnsureConnected(const std::atomic<bool>& stop) {
  if (connection_.connected()) return Status::Ok();
  Status status = connection_.Connect(stop);
  {
    std::lock_guard lock(state_mutex_);
    state_.connected = status.ok();
    state_.connects = connection_.connects();
    if (status.ok()) {
      state_.ever_connected = true;
      state_.features = connection_.features();
    } else {
      state_.last_error = status.ToString();
    }
  }
  if (!status.ok()) return status;
  const FtpFeatures& features = connection_.features();
  spdlog::info("ftp connected: source={} listing={} utf8={} auth_tls={} connects={}",
               description_, features.mlsd ? "MLSD" : "LIST", features.utf8,
               features.auth_tls, connection_.connects());
  return Status::Ok();
}

Result<std::vector<FtpEntry>> FtpSource::ListOnce(const std::string& path, ListingFormat format,
                                                  const std::atomic<bool>& stop) {
  ListingParser parser(format, ListTimeContext{NowSeconds(), &zone_});
  std::function<void(std::string_view)> on_data = [&parser](std::string_view data) {
    parser.Feed(data);
  };
  Status status = connection_.List(path, format, on_data, stop);
  if (!status.ok()) return status;
  auto entries = parser.Finish();
  if (!entries.ok()) {
    return Status(StatusCode::kIoError, std::string(ListingFormatName(format)) + " of '" +
                                            ToValidUtf8(path) + "' on " + description_ + ": " +
                                            entries.status().message());
  }
  return entries;
}

Result<std::vector<FtpEntry>> FtpSource::ListDirectory(const std::string& path,
                                                       const std::atomic<bool>& stop) {
  ListingFormat format = connection_.features().mlsd ? ListingFormat::kMlsd : ListingFormat::kList;
  auto listed = ListOnce(path, format, stop);
  if (!listed.ok() && connection_.last_failure_was_stale_connection()) {
    // The server may have closed the idle control connection between two
    // listings or scans; one fresh connection settles that. When it cannot
    // be opened, the listing's own error is the one to report.
    spdlog::info("ftp connection lost, reconnecting: source={} error={}", description_,
                 listed.status().ToString());
    Status reconnected = EnsureConnected(stop);
    if (!reconnected.ok()) {
      reconnect_error_ = reconnected;
      return listed;
    }
    listed = ListOnce(path, format, stop);
  }
  return listed;
}

void FtpSource::NoteError(const Status& status) {
  std::lock_guard lock(state_mutex_);
  state_.last_error = status.ToString();
  state_.connected = connection_.connected();
  state_.connects = connection_.connects();
}

Result<ScanTotals> FtpSource::Scan(const ScanRequest& request, ListingSink& sink,
                                   const std::atomic<bool>& stop) {
  std::lock_guard scan_lock(scan_mutex_);
  const auto scan_start = Clock::now();
  const uint32_t max_depth = EffectiveMaxDepth(request.max_depth, max_depth_);
  auto requested = RequestedDirs(request);
  if (!requested.ok()) return requested.status();

  ScanRun run(description_);
  for (auto it = requested->rbegin(); it != requested->rend(); ++it) {
    run.stack.push_back(DirTask{*it, PathDepth(*it), request.recursive, true});
  }
  Status connected = EnsureConnected(stop);
  if (!connected.ok()) return connected;

  while (!run.stack.empty()) {
    if (stop.load()) {
      return Status(StatusCode::kAborted, "scan of " + description_ + " stopped");
    }
    DirTask task = std::move(run.stack.back());
    run.stack.pop_back();
    if (!run.listed_paths.insert(task.path).second) continue;

    const auto listing_start = Clock::now();
    auto listed = ListDirectory(task.path, stop);
    if (!listed.ok()) {
      Status handled = HandleFailure(task, listed.status(), sink, run, stop);
      if (!handled.ok()) return handled;
      continue;
    }

    std::vector<std::string> children;
    DirListing listing = BuildListing(task.path, std::move(*listed), run, &children);
    {
      std::lock_guard lock(state_mutex_);
      state_.last_listing_path = task.path;
      state_.last_listing_seconds = SecondsSince(listing_start);
      state_.last_listing_entries = listing.entries.size();
      state_.connected = true;
      state_.connects = connection_.connects();
    }
    Status accepted = sink.Accept(std::move(listing));
    if (!accepted.ok()) return accepted;

    uint32_t child_depth = task.depth + 1;
    if (child_depth > kLoopGuardDepth && !children.empty()) {
      spdlog::warn("ftp directories not entered, deeper than {} levels: source={} dir={}",
                   kLoopGuardDepth, description_, ToValidUtf8(task.path));
      children.clear();
    }
    if (task.recursive && (max_depth == 0 || child_depth <= max_depth)) {
      // Pushed in reverse so the walk visits names in listing order.
      for (auto it = children.rbegin(); it != children.rend(); ++it) {
        run.stack.push_back(DirTask{std::move(*it), child_depth, true, false});
      }
    }
  }

  std::lock_guard lock(state_mutex_);
  state_.last_scan_seconds = SecondsSince(scan_start);
  state_.last_scan_dirs = run.totals.dirs;
  if (run.totals.failed_dirs == 0) state_.last_error.clear();
  return run.totals;
}

Status FtpSource::HandleFailure(const DirTask& task, const Status& error, ListingSink& sink,
                                ScanRun& run, const std::atomic<bool>& stop) {
  NoteError(error);
  Status reconnect_error = std::move(reconnect_error_);
  reconnect_error_ = Status::Ok();
  if (error.code() == StatusCode::kAborted) return error;
  if (task.requested && error.code() == StatusCode::kNotFound && !task.path.empty()) {
    // A requested directory that is gone: its parent's listing shows the
    // removal.
    std::string parent(ParentPath(task.path));
    spdlog::debug("ftp directory not found, listing its parent: source={} dir={}", description_,
                  ToValidUtf8(task.path));
    run.stack.push_back(DirTask{parent, PathDepth(parent), false, true});
    return Status::Ok();
  }

  // Without the root's listing the scan has nothing to report, so its
  // error becomes the scan's. Any other directory is reported as failed.
  const bool root = task.requested && task.path.empty();
  if (!root) {
    DirListing failed;
    failed.path = task.path;
    failed.status = error;
    ++run.totals.failed_dirs;
    Status accepted = sink.Accept(std::move(failed));
    if (!accepted.ok()) return accepted;
  }
  // A failure that cost the connection ends the scan, with the connect
  // error, when the server cannot be reached again. The directories not
  // visited keep their entries in the index.
  if (!connection_.connected()) {
    Status again = reconnect_error.ok() ? EnsureConnected(stop) : reconnect_error;
    if (!again.ok()) return again;
  }
  return root ? error : Status::Ok();
}

DirListing FtpSource::BuildListing(const std::string& path, std::vector<FtpEntry>&& entries,
                                   ScanRun& run, std::vector<std::string>* children) {
  DirListing listing;
  listing.path = path;
  listing.entries.reserve(entries.size());
  for (FtpEntry& item : entries) {
    ListedEntry& entry = item.entry;
    if (!IsValidEntryName(entry.name)) {
      run.skipped.Note(path, entry.name);
      continue;
    }
    // The MLSD unique fact is the server's identity of the file. Its hash
    // takes the place of the inode, so a rename pairs by identity as on a
    // local disk, and a name whose identity changed counts as modified.
    if (!item.unique.empty()) {
      entry.inode = DefaultHash(item.unique, 0) | 1;  // never 0, which means unknown
      entry.known |= kKnownInode;
    }
    if (entry.type == EntryType::kDir) {
      std::string child = JoinPath(path, entry.name);
      if (item.unique.empty() || run.entered_uniques.insert(item.unique).second) {
        children->push_back(std::move(child));
      } else {
        spdlog::warn("ftp directory not entered, the server showed it before under another "
                     "path: source={} dir={} unique={}",
                     description_, ToValidUtf8(child), ToValidUtf8(item.unique));
      }
    } else {
      ++run.totals.files;
      if (entry.known & kKnownSize) run.totals.bytes += entry.size;
    }
    listing.entries.push_back(std::move(entry));
  }
  ++run.totals.dirs;
  return listing;
}

std::vector<SourceDetail> FtpSource::Details() const {
  auto text = [](std::string key, std::string value) {
    return SourceDetail{std::move(key), std::move(value), 0, false};
  };
  auto number = [](std::string key, double value) {
    return SourceDetail{std::move(key), std::string(), value, true};
  };
  const FtpSettings& settings = connection_.settings();
  std::lock_guard lock(state_mutex_);
  auto feature = [&](bool offered) -> std::string {
    if (!state_.ever_connected) return "unknown";
    return offered ? "yes" : "no";
  };

  std::vector<SourceDetail> details;
  details.push_back(text("host", settings.host + ":" + std::to_string(settings.port)));
  details.push_back(text("tls", settings.tls ? "explicit (AUTH TLS)" : "off"));
  details.push_back(text("mlsd", feature(state_.features.mlsd)));
  details.push_back(text("utf8", feature(state_.features.utf8)));
  details.push_back(text("auth_tls", feature(state_.features.auth_tls)));
  details.push_back(text("listing_command", !state_.ever_connected ? "unknown"
                                            : state_.features.mlsd ? "MLSD"
                                                                   : "LIST"));
  details.push_back(text("server_timezone", zone_.name()));

  // The connection and the last listing and scan.
  details.push_back(text("connection", state_.connected         ? "connected"
                                       : state_.ever_connected ? "disconnected"
                                                               : "not connected yet"));
  details.push_back(number("connects", static_cast<double>(state_.connects)));
  details.push_back(text("last_listing_path", ToValidUtf8(state_.last_listing_path)));
  details.push_back(number("last_listing_seconds", state_.last_listing_seconds));
  details.push_back(number("last_listing_entries", static_cast<double>(state_.last_listing_entries)));
  details.push_back(number("last_scan_seconds", state_.last_scan_seconds));
  details.push_back(number("last_scan_dirs", static_cast<double>(state_.last_scan_dirs)));
  if (!state_.last_error.empty()) details.push_back(text("last_error", state_.last_error));
  return details;
}

}  // namespace

Result<FtpSettings> ParseFtpSettings(const RemoteOptions& options) {
  UrlHandle handle;
  if (handle.url == nullptr) return Internal("curl_url failed; libcurl is out of memory");
  // The URL is not quoted in these messages: it might carry a password.
  CURLUcode parsed = curl_url_set(handle.url, CURLUPART_URL, options.url.c_str(), 0);
  if (parsed != CURLUE_OK) {
    return InvalidArgument(std::string("source URL is not a valid URL (") +
                           curl_url_strerror(parsed) +
                           "); use ftp://user@host:port/path or ftps://...");
  }
  FtpSettings settings;
  std::string scheme = handle.Get(CURLUPART_SCHEME).value_or("");
  if (scheme != "ftp" && scheme != "ftps") {
    return InvalidArgument("source URL scheme '" + scheme + "' is not ftp or ftps");
  }
  settings.tls = scheme == "ftps";
  settings.host = handle.Get(CURLUPART_HOST).value_or("");
  if (settings.host.empty()) return InvalidArgument("source URL has no host");
  if (settings.host.find(':') != std::string::npos && !settings.host.starts_with('[')) {
    settings.host = "[" + settings.host + "]";
  }
  settings.user = handle.Get(CURLUPART_USER, CURLU_URLDECODE).value_or("");
  // The URL as messages may quote it: scheme, user and host only.
  std::string safe_url = scheme + "://" + (settings.user.empty() ? "" : settings.user + "@") +
                         settings.host;
  if (handle.Get(CURLUPART_PASSWORD)) {
    return InvalidArgument("source URL " + safe_url +
                           " contains a password; remove it and put it in the file named by "
                           "password_file");
  }
  if (handle.Get(CURLUPART_QUERY) || handle.Get(CURLUPART_FRAGMENT)) {
    return InvalidArgument("source URL " + safe_url + " has a query or fragment; remove it");
  }
  if (auto port = handle.Get(CURLUPART_PORT)) {
    settings.port = static_cast<uint16_t>(std::stoul(*port));  // libcurl checked 1..65535
  }

  // The path is relative to the login directory; "%2F" at its start makes
  // it absolute, as in RFC 1738.
  std::string path = handle.Get(CURLUPART_PATH, CURLU_URLDECODE).value_or("/");
  if (path.find_first_of(std::string_view("\0\r\n", 3)) != std::string::npos) {
    return InvalidArgument("source URL " + safe_url + " has a path with a NUL or line break");
  }
  if (path.starts_with('/')) path.erase(0, 1);
  while (path.size() > 1 && path.ends_with('/')) path.pop_back();
  settings.root_path = path;

  settings.password_file = options.password_file;
  if (settings.password_file.empty()) {
    if (settings.user == "anonymous" || settings.user == "ftp") {
      settings.user.clear();  // libcurl's anonymous login
    } else if (!settings.user.empty()) {
      return InvalidArgument("source URL " + safe_url + " names user '" + settings.user +
                             "' but password_file is not set; set it to a file that contains "
                             "the password");
    }
  }
  settings.ca_file = options.ca_file;
  if (!settings.ca_file.empty() && !settings.tls) {
    return InvalidArgument("ca_file is set but source URL " + safe_url +
                           " is plain ftp://; use ftps:// for TLS");
  }
  settings.connect_timeout = options.connect_timeout;
  settings.operation_timeout = options.operation_timeout;
  settings.keepalive_interval = options.keepalive_interval;
  return settings;
}

Result<std::unique_ptr<Source>> MakeFtpSource(const RemoteOptions& options) {
  auto settings = ParseFtpSettings(options);
  if (!settings.ok()) return settings.status();
  auto zone = TimeZone::Load(options.server_timezone.empty() ? "UTC" : options.server_timezone);
  if (!zone.ok()) return InvalidArgument("server_timezone: " + zone.status().message());
  std::unique_ptr<Source> source =
      std::make_unique<FtpSource>(std::move(*settings), std::move(*zone), options.max_depth);
  return source;
}

}  // namespace dirindex
