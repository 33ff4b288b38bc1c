// The listing type: what every source (the local walker, SFTP, FTP) hands
// to the index. A source only lists directories; the index alone decides
// what changed by merging a listing with the directory's indexed entries.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "index/status.h"

namespace dirindex {

enum class EntryType : uint8_t {
  kUnknown = 0,
  kFile = 1,
  kDir = 2,
  kSymlink = 3,
  kOther = 4,  // device, fifo or socket
};

std::string_view EntryTypeName(EntryType type);

// TimePrecision is how finely a source reports an entry's mtime. A listed
// mtime t of precision p stands for the interval [t, t + p), and a stored
// and a listed mtime are the same when their intervals overlap. So a
// listing that only shows minutes never reports a change within the same
// minute, and one that only shows the day (FTP LIST for older files,
// local midnight) never reports a change within that day.
enum class TimePrecision : uint8_t {
  kNanosecond = 0,
  kSecond = 1,
  kMinute = 2,
  kDay = 3,
};

// Returns the length of one step of `precision` in nanoseconds.
int64_t PrecisionUnitNs(TimePrecision precision);

// Bits of ListedEntry::known: which optional facts the source supplied.
// A remote source that does not send a size leaves kKnownSize clear rather
// than inventing zero.
enum : uint8_t {
  kKnownSize = 1 << 0,
  kKnownMtime = 1 << 1,
  kKnownInode = 1 << 2,
  kKnownMode = 1 << 3,
};

// ListedEntry is one name in one directory listing.
struct ListedEntry {
  std::string name;  // one path component: no '/', no NUL, not "." or ".."
  EntryType type = EntryType::kUnknown;
  uint8_t known = 0;
  TimePrecision mtime_precision = TimePrecision::kNanosecond;
  uint32_t mode = 0;      // permission bits and file-type bits as in st_mode
  uint64_t size = 0;      // bytes; valid when kKnownSize is set
  int64_t mtime_ns = 0;   // ns since the Unix epoch; valid with kKnownMtime
  uint64_t inode = 0;     // valid with kKnownInode
  uint64_t device = 0;    // st_dev of local entries, 0 for remote ones
};

// DirListing is the complete content of one directory as read by a source,
// or the error that kept the source from reading all of it.
struct DirListing {
  // Path relative to the root, components joined by '/', "" for the root.
  std::string path;
  // Ok when `entries` is the whole directory. Any other status means the
  // listing is partial or missing, so the index keeps what it had and
  // reports the error on the root instead of deleting anything.
  Status status;
  std::vector<ListedEntry> entries;
};

// Returns true when `name` can be a single path component of an indexed
// entry: not empty, no '/', no NUL byte, and not "." or "..".
bool IsValidEntryName(std::string_view name);

}  // namespace dirindex
