// FeedCursor: the decoded form of the opaque cursor strings of the change
// feed. Clients treat the string as opaque; only the index reads it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "index/status.h"

namespace dirindex {

struct FeedCursor {
  uint64_t epoch = 0;
  uint32_t root = 0;
  // Live cursor: the last sequence the client has seen. Snapshot cursor:
  // the sequence the snapshot started at.
  uint64_t seq = 0;
  // A snapshot cursor points into a fresh-instance listing that is being
  // paged; the listing continues after entry key (dir_hash, name_hash).
  bool snapshot = false;
  uint64_t dir_hash = 0;
  uint64_t name_hash = 0;
};

// Encodes as URL-safe base64 of a versioned, checksummed binary form.
std::string EncodeCursor(const FeedCursor& cursor);

// Decodes a cursor string. Returns kInvalidArgument naming the value when
// it is not a cursor (bad alphabet, size, version or checksum).
Result<FeedCursor> DecodeCursor(std::string_view text);

}  // namespace dirindex
