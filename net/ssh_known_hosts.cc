#include "net/ssh_known_hosts.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include <spdlog/spdlog.h>

#include "index/paths.h"

namespace dirindex {

namespace {

struct KnownHostsDeleter {
  void operator()(LIBSSH2_KNOWNHOSTS* hosts) const { libssh2_knownhost_free(hosts); }
};
using KnownHostsPtr = std::unique_ptr<LIBSSH2_KNOWNHOSTS, KnownHostsDeleter>;

// KeyType ties libssh2's host key type, its known_hosts type bits and the
// host key algorithms that use such a key, in the order tried.
struct KeyType {
  int hostkey_type;
  int knownhost_bits;
  const char* name;
  const char* methods;
};

constexpr KeyType kKeyTypes[] = {
    {LIBSSH2_HOSTKEY_TYPE_ED25519, LIBSSH2_KNOWNHOST_KEY_ED25519, "ssh-ed25519", "ssh-ed25519"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_256, LIBSSH2_KNOWNHOST_KEY_ECDSA_256, "ecdsa-sha2-nistp256",
     "ecdsa-sha2-nistp256"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_384, LIBSSH2_KNOWNHOST_KEY_ECDSA_384, "ecdsa-sha2-nistp384",
     "ecdsa-sha2-nistp384"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_521, LIBSSH2_KNOWNHOST_KEY_ECDSA_521, "ecdsa-sha2-nistp521",
     "ecdsa-sha2-nistp521"},
    {LIBSSH2_HOSTKEY_TYPE_RSA, LIBSSH2_KNOWNHOST_KEY_SSHRSA, "ssh-rsa",
     "rsa-sha2-512,rsa-sha2-256,ssh-rsa"},
    {LIBSSH2_HOSTKEY_TYPE_DSS, LIBSSH2_KNOWNHOST_KEY_SSHDSS, "ssh-dss", "ssh-dss"},
};

const KeyType* FindByHostkeyType(int type) {
  for (const KeyType& key_type : kKeyTypes) {
    if (key_type.hostkey_type == type) return &key_type;
  }
  return nullptr;
}

// Returns the name known_hosts uses for host:port: "host" for port 22,
// else "[host]:port", as OpenSSH writes it.
std::string KnownHostsName(const std::string& host, uint16_t port) {
  if (port == 22) return host;
  return "[" + host + "]:" + std::to_string(port);
}

std::string LastError(LIBSSH2_SESSION* session) {
  char* message = nullptr;
  libssh2_session_last_error(session, &message, nullptr, 0);
  return message != nullptr ? message : "unknown libssh2 error";
}

// Loads `path` into a fresh collection. A missing file loads as empty when
// `missing_ok`.
Result<KnownHostsPtr> LoadKnownHosts(LIBSSH2_SESSION* session, const std::string& path,
                                     bool missing_ok) {
  KnownHostsPtr hosts(libssh2_knownhost_init(session));
  if (hosts == nullptr) return Internal("libssh2_knownhost_init failed: " + LastError(session));
  struct stat info;
  if (stat(path.c_str(), &info) != 0) {
    if (errno == ENOENT && missing_ok) return hosts;
    return ErrnoStatus(errno, "reading known_hosts file", path);
  }
  if (libssh2_knownhost_readfile(hosts.get(), path.c_str(), LIBSSH2_KNOWNHOST_FILE_OPENSSH) < 0) {
    return Status(StatusCode::kInvalidArgument,
                  "known_hosts file '" + path + "' could not be parsed by libssh2: " +
                      LastError(session));
  }
  return hosts;
}

// Appends one line for `key` to the known_hosts file, creating the file
// when it is missing.
Status AppendKnownHost(LIBSSH2_SESSION* session, LIBSSH2_KNOWNHOSTS* hosts,
                       const HostKey& key, const KeyType& type, const std::string& path,
                       const std::string& host, uint16_t port) {
  std::string name = KnownHostsName(host, port);
  libssh2_knownhost* added = nullptr;
  int rc = libssh2_knownhost_addc(
      hosts, name.c_str(), nullptr, key.blob.data(), key.blob.size(), nullptr, 0,
      LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | type.knownhost_bits,
      &added);
  if (rc != 0) return Internal("libssh2_knownhost_addc failed: " + LastError(session));
  std::vector<char> line(key.blob.size() * 2 + name.size() + 256);
  size_t length = 0;
  rc = libssh2_knownhost_writeline(hosts, added, line.data(), line.size(), &length,
                                   LIBSSH2_KNOWNHOST_FILE_OPENSSH);
  if (rc != 0) return Internal("libssh2_knownhost_writeline failed: " + LastError(session));

  // Two roots on one host may record its key at the same moment, and the
  // lock keeps their lines whole. A duplicate line is harmless.
  static std::mutex append_mutex;
  std::lock_guard lock(append_mutex);
  int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoStatus(errno, "opening known_hosts file for writing", path);
  std::string text(line.data(), length);
  struct stat info;
  if (fstat(fd, &info) == 0 && info.st_size > 0) {
    // Start on a fresh line if the file does not end with one.
    char last = '\n';
    if (pread(fd, &last, 1, info.st_size - 1) == 1 && last != '\n') text.insert(0, "\n");
  }
  ssize_t written = write(fd, text.data(), text.size());
  int write_error = errno;
  bool closed = close(fd) == 0;
  if (written != static_cast<ssize_t>(text.size())) {
    return ErrnoStatus(written < 0 ? write_error : EIO, "writing known_hosts file", path);
  }
  if (!closed) return ErrnoStatus(errno, "closing known_hosts file", path);
  return Status::Ok();
}

std::string Describe(const HostKey& key, const std::string& host, uint16_t port) {
  return "host " + host + ":" + std::to_string(port) + " presented " + key.type_name +
         " key " + key.fingerprint;
}

}  // namespace

Result<HostKey> ReadHostKey(LIBSSH2_SESSION* session) {
  size_t length = 0;
  int type = LIBSSH2_HOSTKEY_TYPE_UNKNOWN;
  const char* blob = libssh2_session_hostkey(session, &length, &type);
  if (blob == nullptr) return Internal("the server's host key is not available: " + LastError(session));
  const char* hash = libssh2_hostkey_hash(session, LIBSSH2_HOSTKEY_HASH_SHA256);
  if (hash == nullptr) return Internal("libssh2 could not hash the server's host key");

  HostKey key;
  key.blob.assign(blob, length);
  key.libssh2_type = type;
  // OpenSSH prints the SHA256 fingerprint in base64 without padding.
  std::string digest = Base64Encode(std::string_view(hash, 32));
  while (!digest.empty() && digest.back() == '=') digest.pop_back();
  key.fingerprint = "SHA256:" + digest;
  // The key blob starts with the algorithm name as an SSH string.
  if (length >= 4) {
    uint32_t name_length = static_cast<uint8_t>(blob[0]) << 24 | static_cast<uint8_t>(blob[1]) << 16 |
                           static_cast<uint8_t>(blob[2]) << 8 | static_cast<uint8_t>(blob[3]);
    if (name_length <= length - 4 && name_length < 64) key.type_name.assign(blob + 4, name_length);
  }
  if (key.type_name.empty()) {
    const KeyType* known = FindByHostkeyType(type);
    key.type_name = known != nullptr ? known->name : "unknown";
  }
  return key;
}

std::string KnownHostKeyMethods(LIBSSH2_SESSION* session, const std::string& known_hosts_path,
                                const std::string& host, uint16_t port) {
  auto hosts = LoadKnownHosts(session, known_hosts_path, true);
  if (!hosts.ok()) return "";

  // Find the key types the file records for this host. Checking each
  // entry's own key against host:port finds them for hashed names too.
  bool recorded[std::size(kKeyTypes)] = {};
  libssh2_knownhost* entry = nullptr;
  while (libssh2_knownhost_get(hosts->get(), &entry, entry) == 0) {
    int bits = entry->typemask & LIBSSH2_KNOWNHOST_KEY_MASK;
    for (size_t i = 0; i < std::size(kKeyTypes); ++i) {
      if (kKeyTypes[i].knownhost_bits != bits || recorded[i]) continue;
      int check = libssh2_knownhost_checkp(
          hosts->get(), host.c_str(), port, entry->key, 0,
          LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_BASE64 | bits, nullptr);
      recorded[i] = check == LIBSSH2_KNOWNHOST_CHECK_MATCH;
    }
  }

  const char** supported = nullptr;
  int supported_count = libssh2_session_supported_algs(session, LIBSSH2_METHOD_HOSTKEY, &supported);
  auto is_supported = [&](std::string_view method) {
    for (int i = 0; i < supported_count; ++i) {
      if (method == supported[i]) return true;
    }
    return false;
  };
  std::string methods;
  for (size_t i = 0; i < std::size(kKeyTypes); ++i) {
    if (!recorded[i]) continue;
    std::string_view list = kKeyTypes[i].methods;
    while (!list.empty()) {
      size_t comma = list.find(',');
      std::string_view method = list.substr(0, comma);
      list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
      if (!is_supported(method)) continue;
      if (!methods.empty()) methods += ',';
      methods += method;
    }
  }
  if (supported_count > 0) libssh2_free(session, supported);
  return methods;
}

Status CheckHostKey(LIBSSH2_SESSION* session, const HostKey& key,
                    const std::string& known_hosts_path, const std::string& host,
                    uint16_t port, const std::string& recorded_methods,
                    bool trust_on_first_use) {
  const KeyType* type = FindByHostkeyType(key.libssh2_type);
  if (type == nullptr) {
    return Status(StatusCode::kPermissionDenied,
                  Describe(key, host, port) + ", a key type libssh2 cannot check against "
                  "known_hosts; configure the server to offer an Ed25519 or ECDSA host key");
  }
  auto hosts = LoadKnownHosts(session, known_hosts_path, trust_on_first_use);
  if (!hosts.ok()) {
    Status error = hosts.status();
    if (error.code() == StatusCode::kNotFound) {
      return Status(StatusCode::kPermissionDenied,
                    Describe(key, host, port) + ", which cannot be verified: known_hosts file '" +
                        known_hosts_path + "' does not exist. Check the fingerprint, then add "
                        "the key with ssh-keyscan, or set trust_on_first_use");
    }
    return error;
  }

  int check = libssh2_knownhost_checkp(
      hosts->get(), host.c_str(), port, key.blob.data(), key.blob.size(),
      LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | type->knownhost_bits, nullptr);
  switch (check) {
    case LIBSSH2_KNOWNHOST_CHECK_MATCH:
      return Status::Ok();
    case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
      return Status(StatusCode::kPermissionDenied,
                    Describe(key, host, port) + ", which does not match the " + key.type_name +
                        " key recorded in known_hosts file '" + known_hosts_path +
                        "'. The server was reinstalled or someone is intercepting the "
                        "connection; verify the new fingerprint before replacing the line");
    case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
      break;
    default:
      return Internal("checking the host key of " + host + " against '" + known_hosts_path +
                      "' failed: " + LastError(session));
  }

  if (!recorded_methods.empty()) {
    // Trust on first use covers a host seen for the first time, not a host
    // that suddenly offers a key type it did not have before.
    return Status(StatusCode::kPermissionDenied,
                  Describe(key, host, port) + ", but known_hosts file '" + known_hosts_path +
                      "' records only keys for the algorithms " + recorded_methods +
                      " for this host. Verify the new key before adding it");
  }
  if (!trust_on_first_use) {
    return Status(StatusCode::kPermissionDenied,
                  Describe(key, host, port) + ", which is not in known_hosts file '" +
                      known_hosts_path + "'. Check the fingerprint, then add the key with "
                      "ssh-keyscan, or set trust_on_first_use");
  }
  Status appended = AppendKnownHost(session, hosts->get(), key, *type, known_hosts_path, host, port);
  if (!appended.ok()) return appended;
  spdlog::warn("trusted on first use: {} key {} of {}:{} recorded in known_hosts file {}",
               key.type_name, key.fingerprint, host, port, known_hosts_path);
  return Status::Ok();
}

}  // namespace dirindex
