#include "net/ftp_connection.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>

#include <spdlog/spdlog.h>

#include "index/paths.h"

namespace dirindex {

namespace {

// A password file larger than this is a wrong path, not a password.
constexpr size_t kMaxPasswordBytes = 4096;

// The MLST facts the index uses, in the order OPTS MLST names them.
constexpr std::string_view kWantedFacts[] = {"type", "size", "modify", "unique", "unix.mode"};

char ToLowerAscii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = ToLowerAscii(c);
  return out;
}

void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

long Seconds(std::chrono::milliseconds duration) {
  auto seconds = std::chrono::ceil<std::chrono::seconds>(duration).count();
  return static_cast<long>(seconds < 1 ? 1 : seconds);
}

// Reads the password from `path`: the whole file without one trailing
// line break.
Result<std::string> ReadPasswordFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "open password_file", path);
  std::string password(kMaxPasswordBytes + 1, '\0');
  size_t used = 0;
  for (;;) {
    ssize_t got = read(fd, password.data() + used, password.size() - used);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      int error = errno;
      close(fd);
      return ErrnoStatus(error, "read password_file", path);
    }
    if (got == 0) break;
    used += static_cast<size_t>(got);
    if (used == password.size()) break;
  }
  close(fd);
  if (used > kMaxPasswordBytes) {
    explicit_bzero(password.data(), password.size());
    return InvalidArgument("password_file '" + path + "' is larger than 4096 bytes; it must " +
                           "contain only the password");
  }
  password.resize(used);
  if (!password.empty() && password.back() == '\n') password.pop_back();
  if (!password.empty() && password.back() == '\r') password.pop_back();
  return password;
}

bool IsConnectionError(CURLcode code) {
  switch (code) {
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_FTP_WEIRD_SERVER_REPLY:
    case CURLE_FTP_ACCEPT_FAILED:
    case CURLE_FTP_WEIRD_PASV_REPLY:
    case CURLE_FTP_WEIRD_227_FORMAT:
    case CURLE_FTP_CANT_GET_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
      return true;
    default:
      return false;
  }
}

}  // namespace

// FtpCallbacks are libcurl's callbacks; they reach the connection's
// transfer state through the user pointer.
struct FtpCallbacks {
  static size_t OnData(char* data, size_t size, size_t count, void* user) {
    auto* connection = static_cast<FtpConnection*>(user);
    size_t bytes = size * count;
    if (connection->on_data_ != nullptr) (*connection->on_data_)(std::string_view(data, bytes));
    return bytes;
  }

  // For FTP, libcurl passes every server reply line to the header callback.
  static size_t OnReply(char* data, size_t size, size_t count, void* user) {
    auto* connection = static_cast<FtpConnection*>(user);
    size_t bytes = size * count;
    std::string_view line(data, bytes);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
    connection->replies_.emplace_back(line);
    return bytes;
  }

  static int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    auto* connection = static_cast<FtpConnection*>(user);
    return connection->stop_ != nullptr && connection->stop_->load(std::memory_order_relaxed)
               ? 1
               : 0;
  }
};

std::string FtpSettings::Describe() const {
  std::string out = tls ? "ftps://" : "ftp://";
  if (!user.empty()) out += user + "@";
  out += host + ":" + std::to_string(port) + "/";
  // An absolute root shows as "/%2Fdata" in URLs; "//data" reads better.
  out += root_path;
  return out;
}

FtpFeatures ParseFeatReply(const std::vector<std::string>& replies) {
  FtpFeatures features;
  bool inside = false;
  for (const std::string& line : replies) {
    if (!inside) {
      if (line.starts_with("211-")) {
        inside = true;
        features.feat = true;
      } else if (line.starts_with("211 ")) {
        features.feat = true;  // a one-line reply lists no features
      }
      continue;
    }
    if (line.starts_with("211")) break;
    // Each feature line starts with a space; the name is case-insensitive.
    std::string_view text = line;
    while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    size_t space = text.find(' ');
    std::string name = Lower(text.substr(0, space));
    std::string_view argument =
        space == std::string_view::npos ? std::string_view() : text.substr(space + 1);
    if (name == "mlsd") {
      features.mlsd = true;
    } else if (name == "mlst") {
      features.mlsd = true;
      features.mlst_facts = std::string(argument);
    } else if (name == "utf8") {
      features.utf8 = true;
    } else if (name == "auth") {
      if (Lower(argument).find("tls") != std::string::npos) features.auth_tls = true;
    }
  }
  return features;
}

std::string MlstOptsArgument(std::string_view mlst_facts) {
  std::string argument;
  bool missing = false;
  size_t pos = 0;
  while (pos < mlst_facts.size()) {
    size_t end = mlst_facts.find(';', pos);
    std::string_view fact = mlst_facts.substr(pos, end == std::string_view::npos ? end : end - pos);
    pos = end == std::string_view::npos ? mlst_facts.size() : end + 1;
    bool enabled = !fact.empty() && fact.back() == '*';
    if (enabled) fact.remove_suffix(1);
    std::string name = Lower(fact);
    for (std::string_view wanted : kWantedFacts) {
      if (name != wanted) continue;
      argument += std::string(fact) + ";";
      if (!enabled) missing = true;
    }
  }
  return missing ? argument : std::string();
}

void FtpConnection::CurlDeleter::operator()(void* handle) const { curl_easy_cleanup(handle); }

FtpConnection::FtpConnection(FtpSettings settings)
    : settings_(std::move(settings)), error_buffer_(new char[CURL_ERROR_SIZE]) {
  InitCurlOnce();
  curl_.reset(curl_easy_init());
  error_buffer_[0] = '\0';
  SetTransferOptions();
}

FtpConnection::~FtpConnection() = default;

void FtpConnection::SetTransferOptions() {
  CURL* curl = curl_.get();
  if (curl == nullptr) return;
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "ftp");
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer_.get());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &FtpCallbacks::OnData);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, this);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &FtpCallbacks::OnReply);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, this);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &FtpCallbacks::OnProgress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, this);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  // One cached connection: a reconnect with CURLOPT_FRESH_CONNECT closes
  // the old one instead of keeping it for reuse without FEAT and OPTS.
  curl_easy_setopt(curl, CURLOPT_MAXCONNECTS, 1L);

  // Passive mode (EPSV, then PASV) is libcurl's default. The address in a
  // PASV reply is ignored for the control connection's, because servers
  // behind NAT send a wrong one and a hostile one could aim the data
  // connection elsewhere. libcurl does so by default only since 7.74.0.
  curl_easy_setopt(curl, CURLOPT_FTP_SKIP_PASV_IP, 1L);
  // List sends its own CWD before every listing (see there), so libcurl
  // changes no directory.
  curl_easy_setopt(curl, CURLOPT_FTP_FILEMETHOD, static_cast<long>(CURLFTPMETHOD_NOCWD));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(settings_.connect_timeout.count()));
  // operation_timeout bounds each wait for a reply and each stall of the
  // data connection, not a whole listing, which may be large.
  curl_easy_setopt(curl, CURLOPT_SERVER_RESPONSE_TIMEOUT, Seconds(settings_.operation_timeout));
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, Seconds(settings_.operation_timeout));
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPIDLE, Seconds(settings_.keepalive_interval));
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPINTVL, Seconds(settings_.keepalive_interval));

  if (settings_.tls) {
    // ftps:// means explicit TLS: AUTH TLS on the usual port, then PROT P
    // for the data connections. libcurl's own ftps:// is implicit TLS.
    curl_easy_setopt(curl, CURLOPT_USE_SSL, static_cast<long>(CURLUSESSL_ALL));
    curl_easy_setopt(curl, CURLOPT_FTPSSLAUTH, static_cast<long>(CURLFTPAUTH_TLS));
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!settings_.ca_file.empty()) {
      curl_easy_setopt(curl, CURLOPT_CAINFO, settings_.ca_file.c_str());
    }
  }
}

std::string FtpConnection::ServerUrl() const {
  // The trailing slash makes libcurl list a directory instead of fetching
  // a file.
  return "ftp://" + settings_.host + ":" + std::to_string(settings_.port) + "/";
}

std::string FtpConnection::DirectoryPath(std::string_view dir) const {
  std::string path = settings_.root_path.starts_with('/') ? std::string()
                                                          : entry_path_;
  auto append = [&path](std::string_view part) {
    if (part.empty()) return;
    if (!path.ends_with('/') && !part.starts_with('/')) path += '/';
    path += part;
  };
  append(settings_.root_path);
  append(dir);
  return path.empty() ? "/" : path;
}

std::string FtpConnection::LastReply() const {
  for (auto it = replies_.rbegin(); it != replies_.rend(); ++it) {
    if (it->starts_with('4') || it->starts_with('5')) return ToValidUtf8(*it);
  }
  return std::string();
}

Status FtpConnection::Connect(const std::atomic<bool>& stop) {
  CURL* curl = curl_.get();
  if (curl == nullptr) return Internal("curl_easy_init failed; libcurl is out of memory");
  connected_ = false;
  stale_failure_ = false;

  if (!settings_.user.empty()) {
    curl_easy_setopt(curl, CURLOPT_USERNAME, settings_.user.c_str());
    std::string password;
    if (!settings_.password_file.empty()) {
      auto read = ReadPasswordFile(settings_.password_file);
      if (!read.ok()) return read.status();
      password = std::move(*read);
    }
    // libcurl keeps its own copy; wipe ours.
    curl_easy_setopt(curl, CURLOPT_PASSWORD, password.c_str());
    explicit_bzero(password.data(), password.size());
  }

  // A new control connection, so that the session options below are the
  // ones in force for every listing on it.
  curl_slist* commands = curl_slist_append(nullptr, "*FEAT");
  commands = curl_slist_append(commands, "*OPTS UTF8 ON");
  curl_easy_setopt(curl, CURLOPT_FRESH_CONNECT, 1L);
  curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  curl_easy_setopt(curl, CURLOPT_QUOTE, commands);
  Status status = Perform(ServerUrl(), stop, "login");
  curl_easy_setopt(curl, CURLOPT_FRESH_CONNECT, 0L);
  curl_easy_setopt(curl, CURLOPT_QUOTE, nullptr);
  curl_slist_free_all(commands);
  if (status.ok()) {
    // Listings CWD to absolute paths, built on the directory the server
    // put the session in at login (PWD).
    char* entry = nullptr;
    curl_easy_getinfo(curl, CURLINFO_FTP_ENTRY_PATH, &entry);
    entry_path_ = entry != nullptr ? entry : "";
    if (entry_path_.empty() && !settings_.root_path.starts_with('/')) {
      status = Status(StatusCode::kUnavailable,
                      "login on " + settings_.Describe() + " gave no answer to PWD, so the " +
                          "relative root path cannot be resolved; give an absolute path " +
                          "(ftp://host/%2Fpath)");
    }
  }
  if (status.ok()) {
    features_ = ParseFeatReply(replies_);
    std::string facts = features_.mlsd ? MlstOptsArgument(features_.mlst_facts) : "";
    if (!facts.empty()) {
      std::string command = "*OPTS MLST " + facts;
      commands = curl_slist_append(nullptr, command.c_str());
      curl_easy_setopt(curl, CURLOPT_QUOTE, commands);
      status = Perform(ServerUrl(), stop, "OPTS MLST");
      curl_easy_setopt(curl, CURLOPT_QUOTE, nullptr);
      curl_slist_free_all(commands);
    }
  }
  curl_easy_setopt(curl, CURLOPT_NOBODY, 0L);
  if (!status.ok()) return status;
  connected_ = true;
  return Status::Ok();
}

Status FtpConnection::List(std::string_view dir, ListingFormat format,
                           const std::function<void(std::string_view)>& on_data,
                           const std::atomic<bool>& stop) {
  CURL* curl = curl_.get();
  if (curl == nullptr) return Internal("curl_easy_init failed; libcurl is out of memory");
  std::string operation =
      std::string(ListingFormatName(format)) + " of '" + ToValidUtf8(dir) + "'";

  // An explicit CWD before every listing: libcurl skips its own CWD when a
  // transfer has the same path as the one before, and a session whose
  // directory was deleted and created again would then list the old,
  // empty one.
  std::string cwd = "CWD " + DirectoryPath(dir);
  curl_slist* commands = curl_slist_append(nullptr, cwd.c_str());
  curl_easy_setopt(curl, CURLOPT_QUOTE, commands);
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, format == ListingFormat::kMlsd ? "MLSD" : nullptr);
  on_data_ = &on_data;
  Status status = Perform(ServerUrl(), stop, operation);
  on_data_ = nullptr;
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, nullptr);
  curl_easy_setopt(curl, CURLOPT_QUOTE, nullptr);
  curl_slist_free_all(commands);
  if (!status.ok()) return status;

  // Some servers cap listings and report it only in the reply that ends the
  // transfer, as pure-ftpd does with "226 Output truncated to 10000
  // matches". A cut listing must not be taken as the whole directory.
  for (size_t i = FinalReplyStart(); i < replies_.size(); ++i) {
    if (Lower(replies_[i]).find("truncated") != std::string::npos) {
      return Status(StatusCode::kIoError,
                    operation + " was truncated by the server ('" + ToValidUtf8(replies_[i]) +
                        "'); raise the server's listing limit (pure-ftpd: -L)");
    }
  }
  return Status::Ok();
}

size_t FtpConnection::FinalReplyStart() const {
  // The final reply follows the last preliminary (1xx) one.
  for (size_t i = replies_.size(); i > 0; --i) {
    if (replies_[i - 1].starts_with('1')) return i;
  }
  return replies_.size();
}

Status FtpConnection::Perform(const std::string& url, const std::atomic<bool>& stop,
                              std::string_view operation) {
  CURL* curl = curl_.get();
  replies_.clear();
  error_buffer_[0] = '\0';
  stop_ = &stop;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  CURLcode code = curl_easy_perform(curl);
  stop_ = nullptr;

  // Every new control connection starts with a 220 greeting. (libcurl's
  // CURLINFO_NUM_CONNECTS counts data connections as well.)
  uint64_t greetings = 0;
  for (const std::string& reply : replies_) {
    if (reply.starts_with("220 ")) ++greetings;
  }
  connects_ += greetings;
  stale_failure_ = code != CURLE_OK && greetings == 0 && IsConnectionError(code);
  if (code == CURLE_OK) return Status::Ok();
  // libcurl closes the control connection after most failures, and would
  // open the next one without FEAT and OPTS. Only a rejected CWD leaves it
  // in a known state.
  if (code != CURLE_QUOTE_ERROR && code != CURLE_REMOTE_ACCESS_DENIED) connected_ = false;
  return TransferStatus(code, operation);
}

Status FtpConnection::TransferStatus(int raw_code, std::string_view operation) const {
  auto code = static_cast<CURLcode>(raw_code);
  std::string detail = error_buffer_[0] != '\0' ? error_buffer_.get() : curl_easy_strerror(code);
  std::string reply = LastReply();
  if (!reply.empty()) detail += "; server replied '" + reply + "'";
  std::string where = std::string(operation) + " on " + settings_.Describe() + " failed: " + detail;

  switch (code) {
    case CURLE_ABORTED_BY_CALLBACK:
      return Status(StatusCode::kAborted, std::string(operation) + " stopped: shutting down");
    case CURLE_LOGIN_DENIED:
      return Status(StatusCode::kPermissionDenied,
                    where + "; check the user in the source URL and the password in "
                            "password_file '" + settings_.password_file + "'");
    case CURLE_QUOTE_ERROR:  // the CWD before a listing
    case CURLE_REMOTE_ACCESS_DENIED:
      return Status(StatusCode::kNotFound,
                    where + "; the directory is missing or the user may not enter it");
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
      return Status(StatusCode::kUnavailable,
                    where + "; check the host and port and that the server is running");
    case CURLE_OPERATION_TIMEDOUT:
      return Status(StatusCode::kTimedOut,
                    where + "; the server did not answer within connect_timeout or "
                            "operation_timeout");
    case CURLE_USE_SSL_FAILED:
      return Status(StatusCode::kUnavailable,
                    where + "; the server does not offer AUTH TLS, so ftps:// cannot be used");
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
      return Status(StatusCode::kPermissionDenied,
                    where + "; the server's TLS certificate is not trusted: set ca_file to the "
                            "PEM file of the authority that signed it");
    case CURLE_FTP_ACCEPT_FAILED:
    case CURLE_FTP_WEIRD_PASV_REPLY:
    case CURLE_FTP_WEIRD_227_FORMAT:
    case CURLE_FTP_CANT_GET_HOST:
      return Status(StatusCode::kUnavailable,
                    where + "; the passive data connection failed (a firewall or NAT may "
                            "block the server's passive ports)");
    default:
      return Status(StatusCode::kIoError, where);
  }
}

}  // namespace dirindex
