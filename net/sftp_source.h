// SftpSource: lists an sftp:// root over one SSH session that lives across
// scans, kept open between them with SSH keepalives and reopened with
// capped exponential back-off when it fails.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "index/source.h"
#include "net/remote_source.h"
#include "net/sftp_client.h"
#include "net/sftp_lister.h"

namespace dirindex {

// SftpUrl is a parsed sftp://user@host:port/path.
struct SftpUrl {
  std::string user;
  std::string host;  // an IPv6 address without its brackets
  uint16_t port = 22;
  // The root on the server. "/x" in the URL is absolute. "/~/x" means x in
  // the user's home folder, as in curl, and is stored as the relative path
  // "x" ("." for the home folder itself).
  std::string path;
};

// Parses an sftp:// URL. User name and path may be percent-encoded. A
// password in the URL is rejected, because URLs end up in logs; the
// message does not repeat it.
Result<SftpUrl> ParseSftpUrl(std::string_view url);

// SftpSourceOptions are RemoteOptions plus settings that tests, benchmarks
// and tools change.
struct SftpSourceOptions {
  RemoteOptions remote;
  SftpListerTuning tuning;
  // Connection attempts per scan before the scan fails. The back-off delay
  // doubles with every failed attempt in a row, across scans, from
  // retry_delay up to max_retry_delay, and resets after a success.
  uint32_t connect_attempts = 3;
  std::chrono::milliseconds retry_delay{500};
  std::chrono::milliseconds max_retry_delay{10'000};
};

// SftpStats counts what a source did since it was created.
struct SftpStats {
  uint64_t connects = 0;          // sessions opened
  uint64_t connect_failures = 0;  // failed attempts
  uint64_t scans = 0;
  uint64_t keepalives = 0;        // idle upkeep rounds that found the session alive
  uint64_t last_requests = 0;     // SFTP requests of the last scan
  uint64_t last_entries = 0;
  uint64_t last_dirs = 0;
  std::chrono::nanoseconds last_duration{0};  // the last scan, including any connect
  bool connected = false;
};

class SftpSource : public Source {
 public:
  // Checks the URL and the options; connects on the first scan.
  static Result<std::unique_ptr<SftpSource>> Create(const SftpSourceOptions& options);
  ~SftpSource() override;

  // Lists the tree with pipelined requests (see sftp_lister.cc). A session
  // that died while idle is replaced at once and the scan runs on the new
  // one. Depth counts path components below the root, as for local roots;
  // the smaller non-zero limit of RemoteOptions::max_depth and
  // request.max_depth applies.
  Result<ScanTotals> Scan(const ScanRequest& request, ListingSink& sink,
                          const std::atomic<bool>& stop) override;
  std::string Describe() const override;
  std::vector<SourceDetail> Details() const override;

  SftpStats stats() const;

 private:
  explicit SftpSource(const SftpSourceOptions& options, SftpUrl url);

  Status EnsureConnected(const std::atomic<bool>& stop);
  Status ConnectOnce(const std::atomic<bool>& stop);
  void DropConnection(const Status& reason);
  void KeepAliveLoop();
  void LogRejectedNames(const ListReport& report);

  const SftpSourceOptions options_;
  const SftpUrl url_;
  SftpClientOptions client_options_;

  // Held by a scan and by the keepalive thread while they use client_.
  std::mutex session_mutex_;
  std::unique_ptr<SftpClient> client_;
  uint64_t failures_in_a_row_ = 0;
  uint64_t last_rejected_names_ = 0;
  std::unordered_map<std::string, uint32_t> previous_replies_;

  // Guards what Details() and stats() read.
  mutable std::mutex state_mutex_;
  SftpStats stats_;
  std::string last_error_;
  std::string server_banner_;
  std::string algorithms_;
  std::string host_key_;
  std::string extensions_;
  uint64_t max_open_handles_ = 0;

  std::mutex wake_mutex_;
  std::condition_variable wake_;
  bool shutting_down_ = false;
  std::thread keepalive_thread_;
};

}  // namespace dirindex
