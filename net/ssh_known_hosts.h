// Host key verification against an OpenSSH known_hosts file, through
// libssh2's knownhost API.
#pragma once

#include <libssh2.h>

#include <cstdint>
#include <string>

#include "index/status.h"

namespace dirindex {

// HostKey is the key a server presented during the handshake.
struct HostKey {
  std::string type_name;    // OpenSSH name, such as "ssh-ed25519"
  std::string fingerprint;  // "SHA256:" and unpadded base64, as OpenSSH prints it
  std::string blob;         // the key in SSH wire format
  int libssh2_type = LIBSSH2_HOSTKEY_TYPE_UNKNOWN;
};

// Reads the host key of a session whose handshake has finished.
Result<HostKey> ReadHostKey(LIBSSH2_SESSION* session);

// Returns the host key algorithms of the keys that `known_hosts_path`
// records for host:port, in libssh2's method list format ("ssh-ed25519,
// ecdsa-sha2-nistp256"), limited to what this libssh2 supports. Set before
// the handshake (ahead of the other algorithms), it makes the server present
// a key that can be checked, because libssh2 1.10 otherwise prefers ECDSA
// even when only an Ed25519 key is recorded. Returns "" when no key is
// recorded or the file is missing.
std::string KnownHostKeyMethods(LIBSSH2_SESSION* session,
                                const std::string& known_hosts_path,
                                const std::string& host, uint16_t port);

// Checks `key` of host:port against `known_hosts_path`. A recorded key that
// differs is always rejected, and so is a key of a type not recorded for a
// host that has keys of other types (`recorded_methods`, the result of
// KnownHostKeyMethods). A host with no key at all is rejected unless
// `trust_on_first_use`, which appends the key to the file (creating it with
// mode 0600 when missing). Rejections are kPermissionDenied and name the
// host, the key type and its SHA256 fingerprint.
Status CheckHostKey(LIBSSH2_SESSION* session, const HostKey& key,
                    const std::string& known_hosts_path,
                    const std::string& host, uint16_t port,
                    const std::string& recorded_methods,
                    bool trust_on_first_use);

}  // namespace dirindex
