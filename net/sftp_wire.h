// SFTP version 3 wire format, as in draft-ietf-secsh-filexfer-02 (the
// version OpenSSH speaks): the requests the lister sends and the replies it
// decodes. Encoding and decoding only, no I/O.
//
// Every packet is uint32 length, byte type, then the body. Integers are
// big-endian; a string is a uint32 length followed by that many bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "index/listing.h"
#include "index/status.h"

namespace dirindex::sftp {

enum PacketType : uint8_t {
  kInit = 1,
  kVersion = 2,
  kClose = 4,
  kOpendir = 11,
  kReaddir = 12,
  kStatus = 101,
  kHandle = 102,
  kName = 104,
  kExtended = 200,
  kExtendedReply = 201,
};

// Codes of an SSH_FXP_STATUS reply.
enum FxCode : uint32_t {
  kFxOk = 0,
  kFxEof = 1,
  kFxNoSuchFile = 2,
  kFxPermissionDenied = 3,
  kFxFailure = 4,
  kFxBadMessage = 5,
  kFxNoConnection = 6,
  kFxConnectionLost = 7,
  kFxOpUnsupported = 8,
};

// Bits of the flags word that starts an ATTRS structure.
enum : uint32_t {
  kAttrSize = 0x00000001,
  kAttrUidGid = 0x00000002,
  kAttrPermissions = 0x00000004,
  kAttrAcModTime = 0x00000008,
  kAttrExtended = 0x80000000,
};

constexpr uint32_t kProtocolVersion = 3;

// Each Append function adds one complete packet to `out`.
void AppendInit(std::string& out);
void AppendOpendir(std::string& out, uint32_t id, std::string_view path);
void AppendReaddir(std::string& out, uint32_t id, std::string_view handle);
void AppendClose(std::string& out, uint32_t id, std::string_view handle);
void AppendExtended(std::string& out, uint32_t id, std::string_view request);

// Returns the size of the first packet in `buffer` including its 4-byte
// length field, or 0 when `buffer` does not hold all of it yet. Fails with
// kResourceExhausted when the length field exceeds `max_packet_bytes` and
// with kCorruption for an empty packet.
Result<size_t> FramePacket(std::string_view buffer, uint64_t max_packet_bytes);

// PacketReader reads the fields of one packet in order. A read past the end
// returns false, and ok() stays false from then on.
class PacketReader {
 public:
  explicit PacketReader(std::string_view bytes) : rest_(bytes) {}

  bool U8(uint8_t* value);
  bool U32(uint32_t* value);
  bool U64(uint64_t* value);
  bool String(std::string_view* value);
  bool ok() const { return ok_; }
  size_t remaining() const { return rest_.size(); }

 private:
  std::string_view rest_;
  bool ok_ = true;
};

// Reply is the header of one reply packet: its type, its request id, and
// the bytes after the id. SSH_FXP_VERSION has no id, so it reads as id 0
// with the version number left in `body`.
struct Reply {
  uint8_t type = 0;
  uint32_t id = 0;
  std::string_view body;
};

// Splits a framed packet (as sized by FramePacket) into its header and body.
Result<Reply> ParseReply(std::string_view packet);

// VersionInfo is the server's SSH_FXP_VERSION: its protocol version and the
// extensions it announces as (name, data) pairs.
struct VersionInfo {
  uint32_t version = 0;
  std::vector<std::pair<std::string, std::string>> extensions;

  bool HasExtension(std::string_view name) const;
};

Result<VersionInfo> ParseVersion(const Reply& reply);

// StatusReply is the body of SSH_FXP_STATUS.
struct StatusReply {
  uint32_t code = kFxOk;
  std::string message;  // the server's text, possibly empty
};

Result<StatusReply> ParseStatus(const Reply& reply);
Result<std::string> ParseHandle(const Reply& reply);

// Limits is the reply to the limits@openssh.com extension. Zero means the
// server sets no limit.
struct Limits {
  uint64_t max_packet_bytes = 0;
  uint64_t max_read_bytes = 0;
  uint64_t max_write_bytes = 0;
  uint64_t max_open_handles = 0;
};

Result<Limits> ParseLimits(const Reply& reply);

// Returns the standard name of an SSH_FX_* code, such as
// "SSH_FX_PERMISSION_DENIED".
std::string_view FxCodeName(uint32_t code);

// Converts a STATUS reply to `operation` on `path` into a Status with the
// matching code: kNotFound, kPermissionDenied or kIoError.
Status ToStatus(const StatusReply& reply, std::string_view operation,
                std::string_view path);

// NameBatch is the decoded entries of SSH_FXP_NAME replies. A name that
// cannot be indexed (empty, or containing '/' or NUL) goes to
// `rejected_names` instead of `entries`. "." and ".." are dropped silently,
// because servers send them in every directory.
struct NameBatch {
  std::vector<ListedEntry> entries;
  std::vector<std::string> rejected_names;
};

// Decodes the entries of a NAME reply and appends them to `batch`. Only
// attributes the server sent are marked known: no size without
// SSH_FILEXFER_ATTR_SIZE, no mtime without SSH_FILEXFER_ATTR_ACMODTIME. The
// type comes from the file-type bits of the permissions, and is kUnknown
// when the server sent no permissions or permissions without those bits.
Status ParseNames(const Reply& reply, NameBatch* batch);

}  // namespace dirindex::sftp
