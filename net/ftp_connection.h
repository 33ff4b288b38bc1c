// FtpConnection: one FTP or FTPS control connection, kept open across
// directory listings and scans. It wraps one libcurl easy handle, whose
// connection cache keeps the control connection between transfers, so a
// listing costs a CWD, a passive data connection and the MLSD or LIST
// command, without a new login.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "index/status.h"
#include "net/ftp_parse.h"

namespace dirindex {

// FtpSettings are a root's connection settings, checked and split out of
// its URL. They hold the password file's path, never the password.
struct FtpSettings {
  bool tls = false;          // ftps://: explicit TLS (AUTH TLS), data channel protected too
  std::string host;          // as in the URL; an IPv6 address keeps its brackets
  uint16_t port = 21;
  std::string user;          // decoded; empty means anonymous
  std::string password_file;
  // The root directory, decoded: relative to the login directory, or
  // absolute when it starts with '/' ("ftp://host/%2Fdata" in the URL).
  // No trailing '/'; "" is the login directory itself.
  std::string root_path;
  std::string ca_file;       // PEM bundle that verifies the server's certificate
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds operation_timeout{30'000};
  std::chrono::milliseconds keepalive_interval{30'000};

  // Returns "ftp://user@host:port/root" (or ftps://) for logs and the API.
  std::string Describe() const;
};

// FtpFeatures are the extensions the server's FEAT reply lists (RFC 2389).
struct FtpFeatures {
  bool feat = false;      // the server sent a FEAT reply at all
  bool mlsd = false;      // MLSD or MLST listed
  bool utf8 = false;
  bool auth_tls = false;
  std::string mlst_facts;  // the MLST fact list as sent, "type*;size*;modify*;"
};

// Reads the FEAT reply out of the server replies of one transfer (each a
// line without its line break). Returns features.feat false when no 211
// reply is among them.
FtpFeatures ParseFeatReply(const std::vector<std::string>& replies);

// Returns the argument for "OPTS MLST" that turns on the facts the index
// uses (type, size, modify, unique, UNIX.mode) among those in
// `mlst_facts`, or "" when the server already sends all of them by
// default (marked '*').
std::string MlstOptsArgument(std::string_view mlst_facts);

class FtpConnection {
 public:
  explicit FtpConnection(FtpSettings settings);
  ~FtpConnection();
  FtpConnection(const FtpConnection&) = delete;
  FtpConnection& operator=(const FtpConnection&) = delete;

  // Opens a new control connection and logs in, reading the password file
  // now so a changed password is picked up. Then sends FEAT, OPTS UTF8 ON
  // and, when needed, OPTS MLST. Fails with kPermissionDenied for a
  // rejected login or certificate, kUnavailable when the server cannot be
  // reached, kTimedOut, or kAborted when `stop` was set.
  Status Connect(const std::atomic<bool>& stop);

  // Lists `dir` (relative to the root, "" for the root) with MLSD or LIST
  // and passes the bytes to `on_data` as they arrive. Only an ok return
  // means the server confirmed a complete listing: a transfer cut off,
  // timed out or marked as truncated by the server fails.
  Status List(std::string_view dir, ListingFormat format,
              const std::function<void(std::string_view)>& on_data,
              const std::atomic<bool>& stop);

  // True after a failed List whose error is a broken connection on a
  // control connection opened before that List: the server may just have
  // dropped an idle connection, so one reconnect and retry is worth it.
  bool last_failure_was_stale_connection() const { return stale_failure_; }

  // True while the last transfer left the control connection usable.
  bool connected() const { return connected_; }
  const FtpFeatures& features() const { return features_; }
  // Control connections opened so far.
  uint64_t connects() const { return connects_; }
  const FtpSettings& settings() const { return settings_; }

 private:
  struct CurlDeleter {
    void operator()(void* handle) const;
  };

  void SetTransferOptions();
  Status Perform(const std::string& url, const std::atomic<bool>& stop,
                 std::string_view operation);
  Status TransferStatus(int code, std::string_view operation) const;
  std::string ServerUrl() const;
  // The absolute path of `dir` for CWD.
  std::string DirectoryPath(std::string_view dir) const;
  // The last error reply (4xx or 5xx) of the transfer, or "".
  std::string LastReply() const;
  // Index into replies_ of the first line of the transfer's final reply.
  size_t FinalReplyStart() const;

  friend struct FtpCallbacks;  // libcurl's callbacks, in ftp_connection.cc

  FtpSettings settings_;
  std::unique_ptr<void, CurlDeleter> curl_;
  FtpFeatures features_;
  std::string entry_path_;  // the login directory, from PWD
  bool connected_ = false;
  bool stale_failure_ = false;
  uint64_t connects_ = 0;

  // State of the transfer in progress.
  std::vector<std::string> replies_;
  const std::function<void(std::string_view)>* on_data_ = nullptr;
  const std::atomic<bool>* stop_ = nullptr;
  std::unique_ptr<char[]> error_buffer_;
};

}  // namespace dirindex
