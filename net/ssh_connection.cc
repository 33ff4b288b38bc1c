#include "net/ssh_connection.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <spdlog/spdlog.h>

namespace dirindex {

namespace {

// Secret files larger than this are rejected as a likely configuration
// mistake (a key file given as password_file, for example).
constexpr off_t kMaxSecretBytes = 64 * 1024;

// poll() wakes at least this often to notice `stop`.
constexpr std::chrono::milliseconds kStopCheckInterval{100};

Status InitLibssh2Once() {
  static std::once_flag once;
  static int result = 0;
  std::call_once(once, [] { result = libssh2_init(0); });
  if (result != 0) return Internal("libssh2_init failed with code " + std::to_string(result));
  return Status::Ok();
}

// SecretText is the content of a secret file, overwritten with zeros when
// it goes out of scope.
class SecretText {
 public:
  explicit SecretText(std::string text) : text_(std::move(text)) {}
  SecretText(SecretText&& other) noexcept : text_(std::move(other.text_)) { other.text_.clear(); }
  SecretText& operator=(SecretText&&) = delete;
  ~SecretText() { explicit_bzero(text_.data(), text_.size()); }

  const std::string& text() const { return text_; }

 private:
  std::string text_;
};

// Reads a secret file and drops one trailing line break.
Result<SecretText> ReadSecretFile(const std::string& path, std::string_view option) {
  auto unreadable = [&](int error) {
    return Status(StatusCode::kInvalidArgument, std::string(option) + " '" + path +
                                                    "' cannot be read: " + std::strerror(error));
  };

  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return unreadable(errno);
  struct stat info;
  if (fstat(fd, &info) != 0) {
    int error = errno;
    close(fd);
    return unreadable(error);
  }
  if (info.st_size > kMaxSecretBytes) {
    close(fd);
    return Status(StatusCode::kInvalidArgument,
                  std::string(option) + " '" + path + "' has " + std::to_string(info.st_size) +
                      " bytes; a secret file may hold at most " +
                      std::to_string(kMaxSecretBytes) + " bytes");
  }

  std::string text(static_cast<size_t>(info.st_size), '\0');
  ssize_t got = read(fd, text.data(), text.size());
  int error = errno;
  close(fd);
  if (got < 0) {
    explicit_bzero(text.data(), text.size());
    return unreadable(error);
  }
  text.resize(static_cast<size_t>(got));

  if (!text.empty() && text.back() == '\n') text.pop_back();
  if (!text.empty() && text.back() == '\r') text.pop_back();
  return SecretText(std::move(text));
}

Status WaitFd(int fd, short events, Deadline deadline, const std::atomic<bool>& stop,
              std::string_view operation) {
  for (;;) {
    if (stop.load()) return Status(StatusCode::kAborted, std::string(operation) + " stopped");
    auto now = Clock::now();
    if (now >= deadline) {
      return Status(StatusCode::kTimedOut, std::string(operation) + " timed out");
    }
    auto slice = std::min<Clock::duration>(deadline - now, kStopCheckInterval);
    auto slice_ms = std::chrono::ceil<std::chrono::milliseconds>(slice).count();
    pollfd poller{fd, events, 0};
    int ready = poll(&poller, 1, static_cast<int>(slice_ms));
    if (ready > 0) return Status::Ok();
    if (ready < 0 && errno != EINTR) return ErrnoStatus(errno, "poll", operation);
  }
}

// Resolves host:port on a thread of its own, so that `deadline` and `stop`
// bound the wait even when the resolver hangs. A lookup given up on frees
// its result when it ends.
Result<addrinfo*> Resolve(const std::string& host, uint16_t port, Deadline deadline,
                          const std::atomic<bool>& stop) {
  struct Lookup {
    std::mutex mu;
    std::condition_variable done_cv;
    bool done = false;
    bool abandoned = false;
    int rc = 0;
    addrinfo* result = nullptr;
  };
  auto lookup = std::make_shared<Lookup>();
  std::thread([lookup, host, service = std::to_string(port)] {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &found);
    std::lock_guard lock(lookup->mu);
    if (lookup->abandoned) {
      if (rc == 0) freeaddrinfo(found);
      return;
    }
    lookup->rc = rc;
    lookup->result = found;
    lookup->done = true;
    lookup->done_cv.notify_all();
  }).detach();

  std::unique_lock lock(lookup->mu);
  while (!lookup->done) {
    if (stop.load() || Clock::now() >= deadline) {
      lookup->abandoned = true;
      if (stop.load()) return Status(StatusCode::kAborted, "resolving host '" + host + "' stopped");
      return Status(StatusCode::kTimedOut,
                    "resolving host '" + host + "' timed out; check the name and the DNS "
                    "server, or raise connect_timeout");
    }
    lookup->done_cv.wait_for(lock, std::min<Clock::duration>(deadline - Clock::now(), kStopCheckInterval));
  }
  if (lookup->rc != 0) {
    return Status(StatusCode::kUnavailable,
                  "resolving host '" + host + "' failed: " + gai_strerror(lookup->rc));
  }
  return lookup->result;
}

// Connects a non-blocking TCP socket to host:port, trying each address the
// name resolves to.
Result<int> ConnectTcp(const std::string& host, uint16_t port, Deadline deadline,
                       const std::atomic<bool>& stop) {
  const std::string endpoint = FormatEndpoint(host, port);
  Result<addrinfo*> resolved = Resolve(host, port, deadline, stop);
  if (!resolved.ok()) return resolved.status();
  addrinfo* found = *resolved;
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> addresses(found, freeaddrinfo);

  Status last_error(StatusCode::kUnavailable, "host '" + host + "' has no address");
  for (addrinfo* address = found; address != nullptr; address = address->ai_next) {
    int fd = socket(address->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last_error = ErrnoStatus(errno, "socket", endpoint);
      continue;
    }
    int error = 0;
    if (connect(fd, address->ai_addr, address->ai_addrlen) != 0) {
      error = errno;
      if (error == EINPROGRESS) {
        Status ready = WaitFd(fd, POLLOUT, deadline, stop, "TCP connect to " + endpoint);
        if (!ready.ok()) {
          close(fd);
          return ready;
        }
        socklen_t length = sizeof(error);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
      }
    }
    if (error != 0) {
      last_error = Status(StatusCode::kUnavailable,
                          "TCP connect to " + endpoint + " failed: " + std::strerror(error));
      close(fd);
      continue;
    }
    // Requests are small and pipelined; Nagle's algorithm would hold them
    // back until earlier ones are acknowledged.
    int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    return fd;
  }
  return last_error;
}

bool HasMethod(std::string_view methods, std::string_view method) {
  while (!methods.empty()) {
    size_t comma = methods.find(',');
    if (methods.substr(0, comma) == method) return true;
    if (comma == std::string_view::npos) break;
    methods.remove_prefix(comma + 1);
  }
  return false;
}

// Answers keyboard-interactive prompts that do not echo (the password
// prompt) with the password that `abstract` points to.
// NOTE: libssh2 frees the copies handed to it without overwriting them.
LIBSSH2_USERAUTH_KBDINT_RESPONSE_FUNC(AnswerWithPassword) {
  (void)name;
  (void)name_len;
  (void)instruction;
  (void)instruction_len;
  const std::string* password = static_cast<const std::string*>(*abstract);
  for (int i = 0; i < num_prompts; ++i) {
    responses[i].text = nullptr;
    responses[i].length = 0;
    if (prompts[i].echo || password == nullptr) continue;
    char* copy = static_cast<char*>(std::malloc(password->size() + 1));
    if (copy == nullptr) continue;
    std::memcpy(copy, password->data(), password->size() + 1);
    responses[i].text = copy;
    responses[i].length = static_cast<unsigned int>(password->size());
  }
}

}  // namespace

std::string FormatEndpoint(const std::string& host, uint16_t port) {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

SshConnection::SshConnection(const SshOptions& options, int socket_fd)
    : options_(options), socket_(socket_fd) {}

SshConnection::~SshConnection() {
  if (session_ != nullptr) {
    if (!broken_) {
      // One try: the message is a courtesy to the server, and a full send
      // buffer only means the server stopped reading anyway.
      libssh2_session_disconnect(session_, "dirindex closes the connection");
    }
    // With the socket shut down, every send or receive inside
    // libssh2_session_free fails at once, so freeing never waits for a
    // stalled server.
    shutdown(socket_, SHUT_RDWR);
    for (int attempt = 0; attempt < 100; ++attempt) {
      if (libssh2_session_free(session_) != LIBSSH2_ERROR_EAGAIN) break;
    }
  }
  if (socket_ >= 0) close(socket_);
}

std::string SshConnection::Endpoint() const { return FormatEndpoint(options_.host, options_.port); }

std::string SshConnection::LastError() const {
  char* message = nullptr;
  libssh2_session_last_error(session_, &message, nullptr, 0);
  return message != nullptr ? message : "unknown libssh2 error";
}

std::string SshConnection::DescribeFailure() const {
  switch (libssh2_session_last_errno(session_)) {
    case LIBSSH2_ERROR_SOCKET_DISCONNECT:
      return "the server closed the connection";
    case LIBSSH2_ERROR_SOCKET_RECV:
    case LIBSSH2_ERROR_SOCKET_SEND:
      return "the connection broke (" + LastError() + ")";
    default:
      return LastError();
  }
}

Status SshConnection::Wait(Deadline deadline, const std::atomic<bool>& stop, bool want_read,
                           std::string_view operation) const {
  int directions = libssh2_session_block_directions(session_);
  short events = 0;
  if (want_read || (directions & LIBSSH2_SESSION_BLOCK_INBOUND)) events |= POLLIN;
  if (directions & LIBSSH2_SESSION_BLOCK_OUTBOUND) events |= POLLOUT;
  if (events == 0) events = POLLIN;
  return WaitFd(socket_, events, deadline, stop, operation);
}

Result<std::unique_ptr<SshConnection>> SshConnection::Open(const SshOptions& options,
                                                           Deadline deadline,
                                                           const std::atomic<bool>& stop) {
  Status initialized = InitLibssh2Once();
  if (!initialized.ok()) return initialized;
  auto fd = ConnectTcp(options.host, options.port, deadline, stop);
  if (!fd.ok()) return fd.status();
  std::unique_ptr<SshConnection> connection(new SshConnection(options, *fd));

  connection->session_ = libssh2_session_init_ex(nullptr, nullptr, nullptr, nullptr);
  if (connection->session_ == nullptr) return Internal("libssh2_session_init failed");
  libssh2_session_set_blocking(connection->session_, 0);

  Status status = connection->Handshake(deadline, stop);
  if (status.ok()) status = connection->Authenticate(deadline, stop);
  if (!status.ok()) {
    connection->MarkBroken();
    return status;
  }
  if (options.keepalive_interval.count() > 0) {
    // Without want_reply: libssh2 1.10 is reported to leak memory on every
    // reply to a keepalive that requests one, and the traffic alone keeps
    // the server's ClientAliveInterval and NAT entries satisfied.
    auto seconds = std::chrono::ceil<std::chrono::seconds>(options.keepalive_interval).count();
    libssh2_keepalive_config(connection->session_, 0, static_cast<unsigned>(seconds));
  }
  return connection;
}

Status SshConnection::Handshake(Deadline deadline, const std::atomic<bool>& stop) {
  const std::string endpoint = Endpoint();
  const std::string recorded_methods =
      KnownHostKeyMethods(session_, options_.known_hosts, options_.host, options_.port);
  if (!recorded_methods.empty()) {
    // Offer the recorded key types first and every other type after them,
    // so a server without them still gets a clear host key error below.
    std::string methods = recorded_methods;
    const char** supported = nullptr;
    int count = libssh2_session_supported_algs(session_, LIBSSH2_METHOD_HOSTKEY, &supported);
    for (int i = 0; i < count; ++i) {
      if (!HasMethod(recorded_methods, supported[i])) methods += std::string(",") + supported[i];
    }
    if (count > 0) libssh2_free(session_, supported);
    libssh2_session_method_pref(session_, LIBSSH2_METHOD_HOSTKEY, methods.c_str());
  }

  for (;;) {
    int rc = libssh2_session_handshake(session_, socket_);
    if (rc == 0) break;
    if (rc != LIBSSH2_ERROR_EAGAIN) {
      return Status(StatusCode::kUnavailable,
                    "SSH handshake with " + endpoint + " failed: " + LastError());
    }
    Status ready = Wait(deadline, stop, false, "SSH handshake with " + endpoint);
    if (!ready.ok()) return ready;
  }

  const char* banner = libssh2_session_banner_get(session_);
  if (banner != nullptr) server_banner_ = banner;
  for (int method : {LIBSSH2_METHOD_KEX, LIBSSH2_METHOD_HOSTKEY, LIBSSH2_METHOD_CRYPT_SC,
                     LIBSSH2_METHOD_MAC_SC}) {
    const char* name = libssh2_session_methods(session_, method);
    if (name == nullptr) continue;
    if (!algorithms_.empty()) algorithms_ += ' ';
    algorithms_ += name;
  }

  auto key = ReadHostKey(session_);
  if (!key.ok()) return key.status();
  host_key_ = std::move(*key);
  return CheckHostKey(session_, host_key_, options_.known_hosts, options_.host, options_.port,
                      recorded_methods, options_.trust_on_first_use);
}

Status SshConnection::Authenticate(Deadline deadline, const std::atomic<bool>& stop) {
  const std::string endpoint = Endpoint();
  const std::string& user = options_.user;
  std::string methods;
  for (;;) {
    char* list = libssh2_userauth_list(session_, user.c_str(), static_cast<unsigned>(user.size()));
    if (list != nullptr) {
      methods = list;
      break;
    }
    if (libssh2_userauth_authenticated(session_)) return Status::Ok();
    if (libssh2_session_last_errno(session_) != LIBSSH2_ERROR_EAGAIN) {
      return Status(StatusCode::kUnavailable, "asking " + endpoint +
                                                  " for its authentication methods failed: " +
                                                  LastError());
    }
    Status ready = Wait(deadline, stop, false, "SSH authentication with " + endpoint);
    if (!ready.ok()) return ready;
  }

  if (!options_.identity_file.empty()) {
    if (HasMethod(methods, "publickey")) {
      Status with_key = AuthenticateWithKey(deadline, stop);
      if (with_key.ok() || options_.password_file.empty() ||
          with_key.code() != StatusCode::kPermissionDenied) {
        return with_key;
      }
      spdlog::info("{}: key of identity_file {} rejected for user {}, trying password_file",
                   endpoint, options_.identity_file, user);
    } else if (options_.password_file.empty()) {
      return Status(StatusCode::kPermissionDenied,
                    endpoint + " does not offer public key authentication to user '" + user +
                        "' (it offers: " + methods + "); set password_file instead");
    }
  }
  return AuthenticateWithPassword(methods, deadline, stop);
}

Status SshConnection::AuthenticateWithKey(Deadline deadline, const std::atomic<bool>& stop) {
  const std::string endpoint = Endpoint();
  const std::string& key_file = options_.identity_file;
  if (access(key_file.c_str(), R_OK) != 0) {
    return Status(StatusCode::kInvalidArgument,
                  "identity_file '" + key_file + "' cannot be read: " + std::strerror(errno));
  }
  std::optional<SecretText> passphrase;
  if (!options_.passphrase_file.empty()) {
    auto read = ReadSecretFile(options_.passphrase_file, "passphrase_file");
    if (!read.ok()) return read.status();
    passphrase.emplace(std::move(*read));
  }

  for (;;) {
    int rc = libssh2_userauth_publickey_fromfile_ex(
        session_, options_.user.c_str(), static_cast<unsigned>(options_.user.size()), nullptr,
        key_file.c_str(), passphrase ? passphrase->text().c_str() : nullptr);
    if (rc == 0) return Status::Ok();
    if (rc == LIBSSH2_ERROR_EAGAIN) {
      Status ready = Wait(deadline, stop, false, "SSH authentication with " + endpoint);
      if (!ready.ok()) return ready;
      continue;
    }
    if (rc == LIBSSH2_ERROR_FILE || rc == LIBSSH2_ERROR_KEYFILE_AUTH_FAILED) {
      return Status(StatusCode::kInvalidArgument,
                    "identity_file '" + key_file + "' could not be loaded: " + LastError() +
                        ". Check passphrase_file; libssh2 1.10 reads Ed25519, ECDSA and RSA "
                        "keys in OpenSSH or PEM format");
    }
    if (rc == LIBSSH2_ERROR_AUTHENTICATION_FAILED || rc == LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED) {
      return Status(StatusCode::kPermissionDenied,
                    endpoint + " rejected the key in identity_file '" + key_file +
                        "' for user '" + options_.user +
                        "'; check the user's authorized_keys on the server (an RSA key needs "
                        "a server that accepts ssh-rsa SHA-1 signatures, the only kind "
                        "libssh2 1.10 makes)");
    }
    return Status(StatusCode::kUnavailable,
                  "public key authentication with " + endpoint + " failed: " + LastError());
  }
}

Status SshConnection::AuthenticateWithPassword(const std::string& methods, Deadline deadline,
                                               const std::atomic<bool>& stop) {
  const std::string endpoint = Endpoint();
  const std::string& user = options_.user;
  if (options_.password_file.empty()) {
    return Status(StatusCode::kInvalidArgument,
                  "no credentials for " + endpoint + ": set identity_file or password_file");
  }
  bool use_password = HasMethod(methods, "password");
  if (!use_password && !HasMethod(methods, "keyboard-interactive")) {
    return Status(StatusCode::kPermissionDenied,
                  endpoint + " offers neither password nor keyboard-interactive "
                  "authentication to user '" + user + "' (it offers: " + methods +
                      "); set identity_file instead");
  }
  auto password = ReadSecretFile(options_.password_file, "password_file");
  if (!password.ok()) return password.status();
  const std::string& secret = password->text();

  // The keyboard-interactive callback finds the password through the
  // session's abstract pointer, which is cleared again before returning.
  void** abstract = libssh2_session_abstract(session_);
  *abstract = const_cast<std::string*>(&secret);
  int rc = 0;
  for (;;) {
    if (use_password) {
      rc = libssh2_userauth_password_ex(session_, user.c_str(), static_cast<unsigned>(user.size()),
                                        secret.c_str(), static_cast<unsigned>(secret.size()),
                                        nullptr);
    } else {
      rc = libssh2_userauth_keyboard_interactive_ex(
          session_, user.c_str(), static_cast<unsigned>(user.size()), AnswerWithPassword);
    }
    if (rc != LIBSSH2_ERROR_EAGAIN) break;
    Status ready = Wait(deadline, stop, false, "SSH authentication with " + endpoint);
    if (!ready.ok()) {
      *abstract = nullptr;
      return ready;
    }
  }
  *abstract = nullptr;

  if (rc == 0) return Status::Ok();
  if (rc == LIBSSH2_ERROR_AUTHENTICATION_FAILED || rc == LIBSSH2_ERROR_PASSWORD_EXPIRED) {
    return Status(StatusCode::kPermissionDenied,
                  endpoint + " rejected the password in password_file '" +
                      options_.password_file + "' for user '" + user + "'" +
                      (rc == LIBSSH2_ERROR_PASSWORD_EXPIRED ? ": the password has expired" : ""));
  }
  return Status(StatusCode::kUnavailable,
                "password authentication with " + endpoint + " failed: " + LastError());
}

Result<LIBSSH2_CHANNEL*> SshConnection::OpenSubsystem(const std::string& subsystem,
                                                      uint32_t window_bytes, Deadline deadline,
                                                      const std::atomic<bool>& stop) {
  const std::string operation = "opening the " + subsystem + " subsystem on " + Endpoint();
  LIBSSH2_CHANNEL* channel = nullptr;
  for (;;) {
    channel = libssh2_channel_open_ex(session_, "session", sizeof("session") - 1, window_bytes,
                                      LIBSSH2_CHANNEL_PACKET_DEFAULT, nullptr, 0);
    if (channel != nullptr) break;
    if (libssh2_session_last_errno(session_) != LIBSSH2_ERROR_EAGAIN) {
      return Status(StatusCode::kUnavailable, operation + " failed: " + LastError());
    }
    Status ready = Wait(deadline, stop, false, operation);
    if (!ready.ok()) return ready;
  }
  // The subsystem's stderr is dropped, so it cannot fill the window.
  libssh2_channel_handle_extended_data2(channel, LIBSSH2_CHANNEL_EXTENDED_DATA_IGNORE);
  for (;;) {
    int rc = libssh2_channel_process_startup(channel, "subsystem", sizeof("subsystem") - 1,
                                             subsystem.data(),
                                             static_cast<unsigned>(subsystem.size()));
    if (rc == 0) return channel;
    if (rc != LIBSSH2_ERROR_EAGAIN) {
      return Status(StatusCode::kUnavailable, operation + " failed: " + LastError());
    }
    Status ready = Wait(deadline, stop, false, operation);
    if (!ready.ok()) return ready;
  }
}

Status SshConnection::SendKeepalive() {
  int next_seconds = 0;
  int rc = libssh2_keepalive_send(session_, &next_seconds);
  if (rc == 0 || rc == LIBSSH2_ERROR_EAGAIN) return Status::Ok();
  MarkBroken();
  return Status(StatusCode::kUnavailable,
                "sending an SSH keepalive to " + Endpoint() + " failed: " + LastError());
}

}  // namespace dirindex
