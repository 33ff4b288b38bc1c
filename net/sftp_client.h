// SftpClient: the SFTP protocol spoken directly over a libssh2 channel, so
// that many requests can be in flight at once. libssh2's own SFTP API waits
// for each reply before the next request, and rejects any packet over 256
// KiB (LIBSSH2_SFTP_PACKET_MAXLEN in libssh2 1.10), which a NAME reply with
// thousands of entries can exceed.
//
// Requests are queued with the Send* methods and go out on the next Pump,
// which also reads replies and hands each one to a handler. One thread at a
// time may use a client.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>

#include "index/status.h"
#include "net/sftp_wire.h"
#include "net/ssh_connection.h"

namespace dirindex {

struct SftpClientOptions {
  SshOptions ssh;
  // SSH channel receive window. The server may send this much before it
  // waits for the client to read.
  uint32_t window_bytes = 8 << 20;
  // Largest SFTP reply accepted, as a guard against a corrupt length field.
  uint64_t max_packet_bytes = uint64_t{256} << 20;
};

class SftpClient {
 public:
  // Connects, opens the "sftp" subsystem and exchanges SSH_FXP_INIT and
  // SSH_FXP_VERSION, all before `deadline`. Errors as SshConnection::Open,
  // plus kUnavailable when the server has no SFTP subsystem.
  static Result<std::unique_ptr<SftpClient>> Connect(const SftpClientOptions& options,
                                                     Deadline deadline,
                                                     const std::atomic<bool>& stop);

  uint32_t SendOpendir(std::string_view path);
  uint32_t SendReaddir(std::string_view handle);
  uint32_t SendExtended(std::string_view request);
  // Queues an SSH_FXP_CLOSE without waiting for its reply. A later Pump
  // consumes the reply without calling a handler and logs a failure at
  // debug level, so a walk ends without a round trip for its last CLOSE.
  void SendClose(std::string_view handle);

  // Requests sent or queued whose reply a handler waits for.
  size_t outstanding() const { return outstanding_.size(); }

  using ReplyHandler = std::function<Status(const sftp::Reply&)>;

  // Sends queued requests and waits for replies, calling `handler` for each
  // reply as it completes. Returns once at least one reply was handled, or
  // at once when nothing is outstanding. Fails with kTimedOut when no byte
  // arrives for `idle_timeout` while requests are outstanding, kUnavailable
  // when the connection or channel is gone, kAborted when `stop` is set, or
  // with the first non-ok status `handler` returns. After any failure the
  // client is broken() and must be discarded.
  Status Pump(std::chrono::milliseconds idle_timeout, const std::atomic<bool>& stop,
              const ReplyHandler& handler);

  // Keeps an idle session alive between scans: sends an SSH keepalive when
  // one is due, sends what is still queued, and reads what the server sent,
  // so libssh2 replies to the server's own keepalives. Fails when the
  // connection is gone.
  Status KeepAlive();

  bool broken() const { return broken_; }
  const sftp::VersionInfo& version() const { return version_; }
  const SshConnection& ssh() const { return *ssh_; }

  // Server limits from limits@openssh.com, once the lister has asked.
  const std::optional<sftp::Limits>& limits() const { return limits_; }
  void set_limits(const sftp::Limits& limits) { limits_ = limits; }

  // Directory handles the server accepted open at once, learned from an
  // OPENDIR that failed while others were open. 0 until then.
  uint32_t open_dirs_cap() const { return open_dirs_cap_; }
  void set_open_dirs_cap(uint32_t cap) { open_dirs_cap_ = cap; }

 private:
  SftpClient(const SftpClientOptions& options, std::unique_ptr<SshConnection> ssh,
             LIBSSH2_CHANNEL* channel);

  uint32_t NextId(std::unordered_set<uint32_t>& waiting);
  Status Fail(Status status);
  // Writes queued bytes until libssh2 would block; sets *progress.
  Status Flush(bool* progress);
  // Reads what is available into the receive buffer; sets *progress.
  Status Receive(bool* progress);
  // Hands every complete reply in the receive buffer to `handler`.
  Status Dispatch(const ReplyHandler& handler, size_t* handled);
  // Reads and returns the SSH_FXP_VERSION reply during Connect.
  Status Initialize(Deadline deadline, const std::atomic<bool>& stop);

  SftpClientOptions options_;
  std::unique_ptr<SshConnection> ssh_;
  LIBSSH2_CHANNEL* channel_;  // freed with the session
  uint32_t next_id_ = 1;
  std::unordered_set<uint32_t> outstanding_;
  std::unordered_set<uint32_t> unawaited_;  // CLOSE requests without a reply yet
  std::string send_buffer_;
  size_t send_offset_ = 0;
  std::unique_ptr<char[]> read_chunk_;  // libssh2 reads land here first
  std::string receive_buffer_;
  size_t receive_offset_ = 0;
  bool broken_ = false;
  sftp::VersionInfo version_;
  std::optional<sftp::Limits> limits_;
  uint32_t open_dirs_cap_ = 0;
};

}  // namespace dirindex
