// SshConnection: one authenticated libssh2 session over a non-blocking TCP
// socket. Every libssh2 call runs in non-blocking mode and waits in poll()
// against a deadline, so a stalled server costs a timeout, never a hang.
#pragma once

#include <libssh2.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "index/status.h"
#include "net/ssh_known_hosts.h"

namespace dirindex {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

// SshOptions are the settings of one connection. The *_file fields name
// files whose content is read on every connect and never logged.
struct SshOptions {
  std::string host;
  uint16_t port = 22;
  std::string user;
  std::string identity_file;    // private key, tried first when set
  std::string passphrase_file;  // passphrase of identity_file
  std::string password_file;    // password, also the keyboard-interactive response
  std::string known_hosts;
  bool trust_on_first_use = false;
  std::chrono::milliseconds keepalive_interval{30'000};  // 0 turns keepalives off
};

class SshConnection {
 public:
  // Connects to options.host:port, checks the host key and authenticates,
  // all before `deadline`. Errors: kUnavailable (name lookup, refused or
  // broken connection, handshake), kTimedOut, kPermissionDenied (host key
  // rejected, authentication failed), kInvalidArgument (an unreadable or
  // unusable key, passphrase or password file), kAborted when `stop` is set.
  static Result<std::unique_ptr<SshConnection>> Open(const SshOptions& options,
                                                     Deadline deadline,
                                                     const std::atomic<bool>& stop);

  // Sends SSH_MSG_DISCONNECT when the connection still works, then frees the
  // session (and with it every channel) and closes the socket.
  ~SshConnection();
  SshConnection(const SshConnection&) = delete;
  SshConnection& operator=(const SshConnection&) = delete;

  LIBSSH2_SESSION* session() const { return session_; }

  // Opens a "session" channel with the given receive window and starts
  // `subsystem` on it. The channel is freed with the session.
  Result<LIBSSH2_CHANNEL*> OpenSubsystem(const std::string& subsystem, uint32_t window_bytes,
                                         Deadline deadline, const std::atomic<bool>& stop);

  // Waits until the socket is ready for what libssh2 last blocked on, plus
  // reading when `want_read`. Returns ok on readiness, kTimedOut at
  // `deadline` (the message names `operation`), kAborted when `stop` is set.
  Status Wait(Deadline deadline, const std::atomic<bool>& stop, bool want_read,
              std::string_view operation) const;

  // Sends an SSH keepalive if the interval has passed since the last one.
  Status SendKeepalive();

  // Returns libssh2's message for its last error.
  std::string LastError() const;

  // Describes why the connection stopped working, from libssh2's last
  // error: a closed connection in plain words, anything else as libssh2
  // words it.
  std::string DescribeFailure() const;

  // Marks the connection as unusable, so the destructor skips the polite
  // disconnect.
  void MarkBroken() { broken_ = true; }
  bool broken() const { return broken_; }

  const HostKey& host_key() const { return host_key_; }
  const std::string& server_banner() const { return server_banner_; }
  // Negotiated algorithms, such as "curve25519-sha256 aes128-ctr hmac-sha2-256".
  const std::string& algorithms() const { return algorithms_; }
  // Name of "host:port", with IPv6 addresses in brackets.
  std::string Endpoint() const;

 private:
  SshConnection(const SshOptions& options, int socket_fd);

  Status Handshake(Deadline deadline, const std::atomic<bool>& stop);
  Status Authenticate(Deadline deadline, const std::atomic<bool>& stop);
  Status AuthenticateWithKey(Deadline deadline, const std::atomic<bool>& stop);
  Status AuthenticateWithPassword(const std::string& methods, Deadline deadline,
                                  const std::atomic<bool>& stop);

  SshOptions options_;
  int socket_ = -1;
  LIBSSH2_SESSION* session_ = nullptr;
  bool broken_ = false;
  HostKey host_key_;
  std::string server_banner_;
  std::string algorithms_;
};

// Returns "host:port", with an IPv6 address in brackets.
std::string FormatEndpoint(const std::string& host, uint16_t port);

}  // namespace dirindex
