#include "net/sftp_wire.h"

#include <sys/stat.h>

#include <algorithm>

namespace dirindex::sftp {

namespace {

void PutU32(std::string& out, uint32_t value) {
  char bytes[4] = {static_cast<char>(value >> 24), static_cast<char>(value >> 16),
                   static_cast<char>(value >> 8), static_cast<char>(value)};
  out.append(bytes, 4);
}

void PutString(std::string& out, std::string_view value) {
  PutU32(out, static_cast<uint32_t>(value.size()));
  out.append(value);
}

uint32_t GetU32(const char* bytes) {
  auto byte = [bytes](int i) { return static_cast<uint32_t>(static_cast<uint8_t>(bytes[i])); };
  return byte(0) << 24 | byte(1) << 16 | byte(2) << 8 | byte(3);
}

// PacketBuilder writes one packet into `out`, filling in the length field
// when it goes out of scope.
class PacketBuilder {
 public:
  PacketBuilder(std::string& out, PacketType type) : out_(out), start_(out.size()) {
    PutU32(out_, 0);
    out_.push_back(static_cast<char>(type));
  }
  ~PacketBuilder() {
    uint32_t length = static_cast<uint32_t>(out_.size() - start_ - 4);
    std::string field;
    PutU32(field, length);
    out_.replace(start_, 4, field);
  }
  PacketBuilder(const PacketBuilder&) = delete;
  PacketBuilder& operator=(const PacketBuilder&) = delete;

 private:
  std::string& out_;
  size_t start_;
};

Status Malformed(std::string_view what) {
  return Status(StatusCode::kCorruption,
                "malformed SFTP " + std::string(what) + " from the server");
}

Status Unexpected(const Reply& reply, std::string_view expected) {
  return Status(StatusCode::kCorruption,
                "the SFTP server sent packet type " + std::to_string(reply.type) +
                    " for request " + std::to_string(reply.id) + " where " +
                    std::string(expected) + " was expected");
}

EntryType TypeFromMode(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return EntryType::kFile;
    case S_IFDIR: return EntryType::kDir;
    case S_IFLNK: return EntryType::kSymlink;
    case S_IFCHR:
    case S_IFBLK:
    case S_IFIFO:
    case S_IFSOCK: return EntryType::kOther;
    default: return EntryType::kUnknown;
  }
}

// Reads one ATTRS structure into the optional fields of `entry`.
bool ReadAttributes(PacketReader& reader, ListedEntry* entry) {
  uint32_t flags = 0;
  if (!reader.U32(&flags)) return false;
  if (flags & kAttrSize) {
    if (!reader.U64(&entry->size)) return false;
    entry->known |= kKnownSize;
  }
  if (flags & kAttrUidGid) {
    uint32_t uid = 0;
    uint32_t gid = 0;
    if (!reader.U32(&uid) || !reader.U32(&gid)) return false;
  }
  if (flags & kAttrPermissions) {
    if (!reader.U32(&entry->mode)) return false;
    entry->known |= kKnownMode;
    entry->type = TypeFromMode(entry->mode);
  }
  if (flags & kAttrAcModTime) {
    uint32_t atime = 0;
    uint32_t mtime = 0;
    if (!reader.U32(&atime) || !reader.U32(&mtime)) return false;
    // Version 3 sends whole seconds as an unsigned 32-bit count.
    entry->mtime_ns = static_cast<int64_t>(mtime) * 1'000'000'000;
    entry->known |= kKnownMtime;
  }
  if (flags & kAttrExtended) {
    uint32_t count = 0;
    if (!reader.U32(&count)) return false;
    for (uint32_t i = 0; i < count; ++i) {
      std::string_view type;
      std::string_view data;
      if (!reader.String(&type) || !reader.String(&data)) return false;
    }
  }
  return true;
}

}  // namespace

void AppendInit(std::string& out) {
  PacketBuilder packet(out, kInit);
  PutU32(out, kProtocolVersion);
}

void AppendOpendir(std::string& out, uint32_t id, std::string_view path) {
  PacketBuilder packet(out, kOpendir);
  PutU32(out, id);
  PutString(out, path);
}

void AppendReaddir(std::string& out, uint32_t id, std::string_view handle) {
  PacketBuilder packet(out, kReaddir);
  PutU32(out, id);
  PutString(out, handle);
}

void AppendClose(std::string& out, uint32_t id, std::string_view handle) {
  PacketBuilder packet(out, kClose);
  PutU32(out, id);
  PutString(out, handle);
}

void AppendExtended(std::string& out, uint32_t id, std::string_view request) {
  PacketBuilder packet(out, kExtended);
  PutU32(out, id);
  PutString(out, request);
}

Result<size_t> FramePacket(std::string_view buffer, uint64_t max_packet_bytes) {
  if (buffer.size() < 4) return size_t{0};
  uint32_t length = GetU32(buffer.data());
  if (length == 0) return Malformed("packet (length 0)");
  if (length > max_packet_bytes) {
    return Status(StatusCode::kResourceExhausted,
                  "the SFTP server sent a packet of " + std::to_string(length) +
                      " bytes, over the limit of " + std::to_string(max_packet_bytes) +
                      " bytes");
  }
  if (buffer.size() - 4 < length) return size_t{0};
  return size_t{length} + 4;
}

bool PacketReader::U8(uint8_t* value) {
  if (!ok_ || rest_.empty()) return ok_ = false;
  *value = static_cast<uint8_t>(rest_[0]);
  rest_.remove_prefix(1);
  return true;
}

bool PacketReader::U32(uint32_t* value) {
  if (!ok_ || rest_.size() < 4) return ok_ = false;
  *value = GetU32(rest_.data());
  rest_.remove_prefix(4);
  return true;
}

bool PacketReader::U64(uint64_t* value) {
  uint32_t high = 0;
  uint32_t low = 0;
  if (!U32(&high) || !U32(&low)) return false;
  *value = uint64_t{high} << 32 | low;
  return true;
}

bool PacketReader::String(std::string_view* value) {
  uint32_t length = 0;
  if (!U32(&length)) return false;
  if (rest_.size() < length) return ok_ = false;
  *value = rest_.substr(0, length);
  rest_.remove_prefix(length);
  return true;
}

Result<Reply> ParseReply(std::string_view packet) {
  PacketReader reader(packet.substr(4));
  Reply reply;
  if (!reader.U8(&reply.type)) return Malformed("packet");
  if (reply.type != kVersion && !reader.U32(&reply.id)) return Malformed("packet");
  reply.body = packet.substr(packet.size() - reader.remaining());
  return reply;
}

bool VersionInfo::HasExtension(std::string_view name) const {
  return std::any_of(extensions.begin(), extensions.end(),
                     [name](const auto& extension) { return extension.first == name; });
}

Result<VersionInfo> ParseVersion(const Reply& reply) {
  if (reply.type != kVersion) return Unexpected(reply, "SSH_FXP_VERSION");
  PacketReader reader(reply.body);
  VersionInfo info;
  if (!reader.U32(&info.version)) return Malformed("SSH_FXP_VERSION");
  while (reader.remaining() > 0) {
    std::string_view name;
    std::string_view data;
    if (!reader.String(&name) || !reader.String(&data)) return Malformed("SSH_FXP_VERSION");
    info.extensions.emplace_back(std::string(name), std::string(data));
  }
  return info;
}

Result<StatusReply> ParseStatus(const Reply& reply) {
  if (reply.type != kStatus) return Unexpected(reply, "SSH_FXP_STATUS");
  PacketReader reader(reply.body);
  StatusReply status;
  if (!reader.U32(&status.code)) return Malformed("SSH_FXP_STATUS");
  // Version 3 adds a message and a language tag, which very old servers omit.
  std::string_view message;
  if (reader.remaining() > 0 && reader.String(&message)) status.message = message;
  return status;
}

Result<std::string> ParseHandle(const Reply& reply) {
  if (reply.type != kHandle) return Unexpected(reply, "SSH_FXP_HANDLE");
  PacketReader reader(reply.body);
  std::string_view handle;
  if (!reader.String(&handle)) return Malformed("SSH_FXP_HANDLE");
  return std::string(handle);
}

Result<Limits> ParseLimits(const Reply& reply) {
  if (reply.type != kExtendedReply) return Unexpected(reply, "SSH_FXP_EXTENDED_REPLY");
  PacketReader reader(reply.body);
  Limits limits;
  if (!reader.U64(&limits.max_packet_bytes) || !reader.U64(&limits.max_read_bytes) ||
      !reader.U64(&limits.max_write_bytes) || !reader.U64(&limits.max_open_handles)) {
    return Malformed("limits@openssh.com reply");
  }
  return limits;
}

std::string_view FxCodeName(uint32_t code) {
  switch (code) {
    case kFxOk: return "SSH_FX_OK";
    case kFxEof: return "SSH_FX_EOF";
    case kFxNoSuchFile: return "SSH_FX_NO_SUCH_FILE";
    case kFxPermissionDenied: return "SSH_FX_PERMISSION_DENIED";
    case kFxFailure: return "SSH_FX_FAILURE";
    case kFxBadMessage: return "SSH_FX_BAD_MESSAGE";
    case kFxNoConnection: return "SSH_FX_NO_CONNECTION";
    case kFxConnectionLost: return "SSH_FX_CONNECTION_LOST";
    case kFxOpUnsupported: return "SSH_FX_OP_UNSUPPORTED";
    default: return "unknown SFTP status";
  }
}

Status ToStatus(const StatusReply& reply, std::string_view operation, std::string_view path) {
  StatusCode code = StatusCode::kIoError;
  if (reply.code == kFxNoSuchFile) code = StatusCode::kNotFound;
  if (reply.code == kFxPermissionDenied) code = StatusCode::kPermissionDenied;
  std::string message = std::string(operation) + " '" + std::string(path) +
                        "' failed on the SFTP server: " +
                        std::string(FxCodeName(reply.code)) + " (" +
                        std::to_string(reply.code) + ")";
  if (!reply.message.empty()) message += ", " + reply.message;
  return Status(code, std::move(message));
}

Status ParseNames(const Reply& reply, NameBatch* batch) {
  if (reply.type != kName) return Unexpected(reply, "SSH_FXP_NAME");
  PacketReader reader(reply.body);
  uint32_t count = 0;
  if (!reader.U32(&count)) return Malformed("SSH_FXP_NAME");
  // Each entry takes at least 12 bytes (two empty strings and the flags),
  // so a count the packet cannot hold is rejected before reserving memory.
  if (count > reader.remaining() / 12) return Malformed("SSH_FXP_NAME (count too large)");

  for (uint32_t i = 0; i < count; ++i) {
    std::string_view name;
    std::string_view long_name;
    ListedEntry entry;
    if (!reader.String(&name) || !reader.String(&long_name) ||
        !ReadAttributes(reader, &entry)) {
      return Malformed("SSH_FXP_NAME entry");
    }
    if (name == "." || name == "..") continue;
    if (!IsValidEntryName(name)) {
      batch->rejected_names.emplace_back(name);
      continue;
    }
    entry.name = name;
    entry.mtime_precision = TimePrecision::kSecond;
    batch->entries.push_back(std::move(entry));
  }
  return Status::Ok();
}

}  // namespace dirindex::sftp
