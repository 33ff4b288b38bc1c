// Remote sources: the factory that turns a root's sftp:// or ftp(s)://
// source URL and its options into a Source.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "index/source.h"
#include "index/status.h"

namespace dirindex {

// RemoteOptions are a remote root's settings from the configuration file.
// File paths name files that hold secrets; the secrets themselves are read
// when the source connects and are never logged.
struct RemoteOptions {
  std::string url;                 // sftp://user@host:port/path, ftp://..., ftps://...
  std::string identity_file;       // SFTP private key
  std::string passphrase_file;     // SFTP key passphrase
  std::string password_file;       // SFTP or FTP password
  std::string known_hosts;         // SFTP known_hosts file
  bool trust_on_first_use = false; // record an unknown SFTP host key instead of rejecting it
  std::string ca_file;             // FTPS certificate authorities
  std::string server_timezone = "UTC";  // FTP LIST times without a zone
  uint32_t max_depth = 0;          // 0 means unlimited
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds operation_timeout{30'000};
  std::chrono::milliseconds keepalive_interval{30'000};
};

// Returns true when `url` names a remote scheme this build lists.
inline bool IsRemoteUrl(std::string_view url) {
  return url.starts_with("sftp://") || url.starts_with("ftp://") ||
         url.starts_with("ftps://");
}

// Creates the source for `options.url`. Fails with kInvalidArgument naming
// the value when the URL or an option is malformed. Does not connect yet.
Result<std::unique_ptr<Source>> MakeRemoteSource(const RemoteOptions& options);

// The per-protocol factories behind MakeRemoteSource (sftp_source.cc and
// ftp_source.cc).
Result<std::unique_ptr<Source>> MakeSftpSource(const RemoteOptions& options);
Result<std::unique_ptr<Source>> MakeFtpSource(const RemoteOptions& options);

}  // namespace dirindex
