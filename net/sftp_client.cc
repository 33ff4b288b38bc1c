#include "net/sftp_client.h"

#include <spdlog/spdlog.h>

namespace dirindex {

namespace {

// Bytes asked of libssh2_channel_read at a time.
constexpr size_t kReadChunkBytes = 256 * 1024;

// The consumed front of the receive buffer is dropped once it is this
// large, so the buffer does not move for every small reply.
constexpr size_t kCompactBytes = 1 << 20;

// Receive stops after this many bytes, so replies are handled (and new
// requests sent) while a fast server keeps sending.
constexpr size_t kMaxReceiveBytes = 4 << 20;

}  // namespace

SftpClient::SftpClient(const SftpClientOptions& options, std::unique_ptr<SshConnection> ssh,
                       LIBSSH2_CHANNEL* channel)
    : options_(options), ssh_(std::move(ssh)), channel_(channel) {}

Result<std::unique_ptr<SftpClient>> SftpClient::Connect(const SftpClientOptions& options,
                                                       Deadline deadline,
                                                       const std::atomic<bool>& stop) {
  auto ssh = SshConnection::Open(options.ssh, deadline, stop);
  if (!ssh.ok()) return ssh.status();
  auto channel = (*ssh)->OpenSubsystem("sftp", options.window_bytes, deadline, stop);
  if (!channel.ok()) {
    (*ssh)->MarkBroken();
    return channel.status();
  }
  std::unique_ptr<SftpClient> client(new SftpClient(options, std::move(*ssh), *channel));
  Status initialized = client->Initialize(deadline, stop);
  if (!initialized.ok()) return initialized;
  return client;
}

Status SftpClient::Initialize(Deadline deadline, const std::atomic<bool>& stop) {
  const std::string endpoint = ssh_->Endpoint();
  sftp::AppendInit(send_buffer_);
  for (;;) {
    bool progress = false;
    Status status = Flush(&progress);
    if (status.ok()) status = Receive(&progress);
    if (!status.ok()) return status;

    std::string_view received(receive_buffer_);
    auto framed = sftp::FramePacket(received, options_.max_packet_bytes);
    if (!framed.ok()) return Fail(framed.status());
    if (*framed > 0) {
      auto reply = sftp::ParseReply(received.substr(0, *framed));
      if (!reply.ok()) return Fail(reply.status());
      auto version = sftp::ParseVersion(*reply);
      if (!version.ok()) return Fail(version.status());
      if (version->version != sftp::kProtocolVersion) {
        return Fail(Status(StatusCode::kUnavailable,
                           "the SFTP server on " + endpoint + " speaks protocol version " +
                               std::to_string(version->version) + "; only version 3 is supported"));
      }
      version_ = std::move(*version);
      receive_offset_ = *framed;
      return Status::Ok();
    }
    if (progress) continue;
    Status ready = ssh_->Wait(deadline, stop, true, "SFTP initialization with " + endpoint);
    if (!ready.ok()) return Fail(ready);
  }
}

uint32_t SftpClient::NextId(std::unordered_set<uint32_t>& waiting) {
  uint32_t id = next_id_++;
  if (next_id_ == 0) next_id_ = 1;
  waiting.insert(id);
  return id;
}

uint32_t SftpClient::SendOpendir(std::string_view path) {
  uint32_t id = NextId(outstanding_);
  sftp::AppendOpendir(send_buffer_, id, path);
  return id;
}

uint32_t SftpClient::SendReaddir(std::string_view handle) {
  uint32_t id = NextId(outstanding_);
  sftp::AppendReaddir(send_buffer_, id, handle);
  return id;
}

uint32_t SftpClient::SendExtended(std::string_view request) {
  uint32_t id = NextId(outstanding_);
  sftp::AppendExtended(send_buffer_, id, request);
  return id;
}

void SftpClient::SendClose(std::string_view handle) {
  sftp::AppendClose(send_buffer_, NextId(unawaited_), handle);
}

Status SftpClient::Fail(Status status) {
  broken_ = true;
  ssh_->MarkBroken();
  return status;
}

Status SftpClient::Flush(bool* progress) {
  while (send_offset_ < send_buffer_.size()) {
    ssize_t written = libssh2_channel_write(channel_, send_buffer_.data() + send_offset_,
                                            send_buffer_.size() - send_offset_);
    if (written == LIBSSH2_ERROR_EAGAIN) break;
    if (written < 0) {
      return Fail(Status(StatusCode::kUnavailable, "the SFTP session with " + ssh_->Endpoint() +
                                                       " failed: " + ssh_->DescribeFailure()));
    }
    send_offset_ += static_cast<size_t>(written);
    *progress = true;
  }
  if (send_offset_ == send_buffer_.size()) {
    send_buffer_.clear();
    send_offset_ = 0;
  }
  return Status::Ok();
}

Status SftpClient::Receive(bool* progress) {
  if (receive_offset_ == receive_buffer_.size()) {
    receive_buffer_.clear();
    receive_offset_ = 0;
  } else if (receive_offset_ >= kCompactBytes) {
    receive_buffer_.erase(0, receive_offset_);
    receive_offset_ = 0;
  }
  if (read_chunk_ == nullptr) read_chunk_ = std::make_unique<char[]>(kReadChunkBytes);
  size_t received = 0;
  while (received < kMaxReceiveBytes) {
    ssize_t got = libssh2_channel_read(channel_, read_chunk_.get(), kReadChunkBytes);
    if (got > 0) {
      receive_buffer_.append(read_chunk_.get(), static_cast<size_t>(got));
      received += static_cast<size_t>(got);
      *progress = true;
      continue;
    }
    if (got == LIBSSH2_ERROR_EAGAIN) return Status::Ok();
    if (got == 0) {
      if (libssh2_channel_eof(channel_)) {
        return Fail(Status(StatusCode::kUnavailable,
                           "the SFTP server on " + ssh_->Endpoint() + " closed the channel"));
      }
      return Status::Ok();
    }
    return Fail(Status(StatusCode::kUnavailable, "the SFTP session with " + ssh_->Endpoint() +
                                                     " failed: " + ssh_->DescribeFailure()));
  }
  return Status::Ok();
}

Status SftpClient::Dispatch(const ReplyHandler& handler, size_t* handled) {
  for (;;) {
    std::string_view pending(receive_buffer_);
    pending.remove_prefix(receive_offset_);
    auto framed = sftp::FramePacket(pending, options_.max_packet_bytes);
    if (!framed.ok()) return Fail(framed.status());
    if (*framed == 0) return Status::Ok();
    auto reply = sftp::ParseReply(pending.substr(0, *framed));
    if (!reply.ok()) return Fail(reply.status());
    if (unawaited_.erase(reply->id) == 1) {
      receive_offset_ += *framed;
      auto closed = sftp::ParseStatus(*reply);
      if (!closed.ok() || closed->code != sftp::kFxOk) {
        spdlog::debug("SFTP CLOSE failed on {}: {}", ssh_->Endpoint(),
                      closed.ok() ? std::string(sftp::FxCodeName(closed->code))
                                  : closed.status().ToString());
      }
      continue;
    }
    if (outstanding_.erase(reply->id) == 0) {
      return Fail(Status(StatusCode::kCorruption,
                         "the SFTP server on " + ssh_->Endpoint() + " sent a reply to request id " +
                             std::to_string(reply->id) + ", which is not outstanding"));
    }
    // The handler reads the reply in place, so the buffer moves on after it.
    Status handled_status = handler(*reply);
    receive_offset_ += *framed;
    ++*handled;
    if (!handled_status.ok()) return Fail(std::move(handled_status));
  }
}

Status SftpClient::Pump(std::chrono::milliseconds idle_timeout, const std::atomic<bool>& stop,
                        const ReplyHandler& handler) {
  if (broken_) {
    return Status(StatusCode::kUnavailable,
                  "the connection to " + ssh_->Endpoint() + " failed earlier");
  }
  auto last_progress = Clock::now();
  for (;;) {
    if (stop.load()) {
      return Fail(Status(StatusCode::kAborted, "SFTP listing on " + ssh_->Endpoint() + " stopped"));
    }
    bool progress = false;
    Status status = Flush(&progress);
    if (status.ok()) status = Receive(&progress);
    size_t handled = 0;
    if (status.ok()) status = Dispatch(handler, &handled);
    if (!status.ok()) return status;
    if (handled > 0) return Flush(&progress);
    if (outstanding_.empty() && send_buffer_.empty()) return Status::Ok();

    if (progress) {
      // Bytes moved but no reply is complete yet. Receive may have stopped
      // at its limit with more data inside libssh2, so read again before
      // waiting on the socket.
      last_progress = Clock::now();
      continue;
    }
    Status ready = ssh_->Wait(last_progress + idle_timeout, stop, true, "SFTP listing");
    if (ready.code() == StatusCode::kTimedOut) {
      return Fail(Status(StatusCode::kTimedOut,
                         "the SFTP server on " + ssh_->Endpoint() + " sent nothing for " +
                             std::to_string(idle_timeout.count()) + " ms while " +
                             std::to_string(outstanding_.size()) +
                             " requests were outstanding (operation_timeout)"));
    }
    if (!ready.ok()) return Fail(ready);
  }
}

Status SftpClient::KeepAlive() {
  if (broken_) {
    return Status(StatusCode::kUnavailable,
                  "the connection to " + ssh_->Endpoint() + " failed earlier");
  }
  Status sent = ssh_->SendKeepalive();
  if (!sent.ok()) return Fail(sent);
  bool progress = false;
  Status status = Flush(&progress);
  if (status.ok()) status = Receive(&progress);
  return status;
}

}  // namespace dirindex
