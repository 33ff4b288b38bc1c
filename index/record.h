// On-disk encodings of keys and values. Keys are fixed-width big-endian so
// LMDB's byte order sorts them by root, then directory, then name hash (or
// sequence). Values use little-endian fixed fields followed by the bytes of
// names and paths; kSchemaVersion changes whenever a layout here changes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "index/index.h"

namespace dirindex {

inline constexpr uint32_t kSchemaVersion = 1;

inline constexpr size_t kEntryKeySize = 20;   // root, dir hash, name hash
inline constexpr size_t kDirKeySize = 12;     // root, dir slot hash
inline constexpr size_t kChangeKeySize = 12;  // root, sequence

std::string EntryKey(uint32_t root, uint64_t dir_hash, uint64_t name_hash);
std::string DirKey(uint32_t root, uint64_t dir_hash);
std::string ChangeKey(uint32_t root, uint64_t seq);

uint32_t LoadBigEndian32(const char* bytes);
uint64_t LoadBigEndian64(const char* bytes);

// SettleState records whether an entry's newest facts are announced in the
// change feed or still wait for the root's settle time to pass.
enum class SettleState : uint8_t {
  kSettled = 0,
  kPendingAdd = 1,     // never announced: the feed has not seen the name
  kPendingModify = 2,  // announced before; a modification waits
};

// EntryRecord is the stored state of one name in one directory.
struct EntryRecord {
  EntryType type = EntryType::kUnknown;
  uint8_t known = 0;
  TimePrecision mtime_precision = TimePrecision::kNanosecond;
  SettleState settle = SettleState::kSettled;
  uint32_t mode = 0;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  uint64_t inode = 0;
  uint64_t seq = 0;
  std::string name;
};

// Appends one record to `out`. A bucket value is one or more records
// back to back, sorted by name.
void AppendEntryRecord(const EntryRecord& record, std::string* out);

// Decodes every record of a bucket value. Returns nullopt when the value is
// truncated or malformed.
std::optional<std::vector<EntryRecord>> DecodeBucket(std::string_view value);

// Decodes a bucket into `out`, reusing its elements' storage. Returns false
// when the value is truncated or malformed.
bool DecodeBucketInto(std::string_view value, std::vector<EntryRecord>* out);

// Decodes a change value; `seq` comes from its key.
std::optional<Change> DecodeChange(std::string_view value, uint64_t seq);
void EncodeChange(const Change& change, std::string* out);

// RootState is the persisted part of RootInfo.
struct RootState {
  uint32_t id = 0;
  std::string name;
  std::string source;
  uint64_t last_seq = 0;
  uint64_t first_seq = 1;
  uint64_t files = 0;
  uint64_t dirs = 0;
  uint64_t bytes = 0;
};

std::string EncodeRootState(const RootState& state);
std::optional<RootState> DecodeRootState(std::string_view value);

// The newest full rescan report of a root, kept across restarts.
std::string EncodeReconcileReport(const ReconcileReport& report);
std::optional<ReconcileReport> DecodeReconcileReport(std::string_view value);

}  // namespace dirindex
