#include "index/cursor.h"

#include <xxhash.h>

#include <cstring>

#include "index/paths.h"
#include "index/record.h"

namespace dirindex {

namespace {

constexpr uint8_t kCursorVersion = 1;
constexpr uint8_t kSnapshotFlag = 1;
constexpr size_t kLiveSize = 1 + 1 + 8 + 4 + 8 + 4;
constexpr size_t kSnapshotSize = kLiveSize + 16;
constexpr size_t kMaxCursorText = 64;

void AppendBigEndian(uint64_t v, int bytes, std::string* out) {
  for (int i = bytes - 1; i >= 0; --i) {
    out->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  }
}

uint32_t Checksum(std::string_view bytes) {
  return static_cast<uint32_t>(XXH3_64bits(bytes.data(), bytes.size()));
}

Status NotACursor(std::string_view text, std::string_view why) {
  std::string shown = ToValidUtf8(text.substr(0, kMaxCursorText));
  if (text.size() > kMaxCursorText) shown += "...";
  return InvalidArgument("since='" + shown + "' is not a cursor (" +
                         std::string(why) +
                         "); pass the cursor string from an earlier answer "
                         "unchanged, or omit since to start over");
}

}  // namespace

std::string EncodeCursor(const FeedCursor& cursor) {
  std::string raw;
  raw.push_back(static_cast<char>(kCursorVersion));
  raw.push_back(static_cast<char>(cursor.snapshot ? kSnapshotFlag : 0));
  AppendBigEndian(cursor.epoch, 8, &raw);
  AppendBigEndian(cursor.root, 4, &raw);
  AppendBigEndian(cursor.seq, 8, &raw);
  if (cursor.snapshot) {
    AppendBigEndian(cursor.dir_hash, 8, &raw);
    AppendBigEndian(cursor.name_hash, 8, &raw);
  }
  AppendBigEndian(Checksum(raw), 4, &raw);
  return Base64UrlEncode(raw);
}

Result<FeedCursor> DecodeCursor(std::string_view text) {
  if (text.size() > kMaxCursorText) return NotACursor(text, "too long");
  for (char c : text) {
    bool url_safe = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                    (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!url_safe) return NotACursor(text, "unexpected character");
  }
  std::optional<std::string> raw = Base64Decode(text);
  if (!raw) return NotACursor(text, "not base64");
  if (raw->size() != kLiveSize && raw->size() != kSnapshotSize) {
    return NotACursor(text, "wrong length");
  }
  const char* p = raw->data();
  size_t body = raw->size() - 4;
  if (LoadBigEndian32(p + body) != Checksum(std::string_view(p, body))) {
    return NotACursor(text, "checksum mismatch");
  }
  if (static_cast<uint8_t>(p[0]) != kCursorVersion) {
    return NotACursor(text, "unknown version");
  }
  FeedCursor cursor;
  cursor.snapshot = (p[1] & kSnapshotFlag) != 0;
  if (cursor.snapshot != (raw->size() == kSnapshotSize)) {
    return NotACursor(text, "inconsistent flags");
  }
  cursor.epoch = LoadBigEndian64(p + 2);
  cursor.root = LoadBigEndian32(p + 10);
  cursor.seq = LoadBigEndian64(p + 14);
  if (cursor.snapshot) {
    cursor.dir_hash = LoadBigEndian64(p + 22);
    cursor.name_hash = LoadBigEndian64(p + 30);
  }
  return cursor;
}

}  // namespace dirindex
