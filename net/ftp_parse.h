// Parsers for FTP directory listings: MLSD (RFC 3659) and the two LIST
// formats servers use in practice, Unix `ls -l` and DOS/IIS. They are pure
// functions of the listing bytes, the current time and the server's time
// zone, with no I/O, so they are unit-tested and fuzzed on their own.
//
// A line that cannot be parsed makes the whole listing fail: the caller
// then reports the directory as unreadable and the index keeps its last
// known entries, instead of dropping the names it could not read.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "index/listing.h"
#include "index/status.h"
#include "net/ftp_timezone.h"

namespace dirindex {

// FtpEntry is one directory entry read from a listing. `entry` carries
// only the facts the server sent, and its `known` bits mark which.
struct FtpEntry {
  ListedEntry entry;
  // The MLSD "unique" fact: the server's identity of the file, which stays
  // the same across a rename on servers that derive it from the inode.
  // Empty when not sent and always empty for LIST.
  std::string unique;
  // The target of a symlink shown by LIST as "name -> target".
  std::string link_target;
  // LIST showed a date with a year and no time of day ("Jan  5  2025"), so
  // the mtime is local midnight and only the day is known (kDay). When a
  // file turns six months old and its LIST date changes from "Jan  5 14:03"
  // to "Jan  5  2025", the two mtimes overlap and no change is reported.
  bool date_only = false;
};

enum class LineKind : uint8_t {
  kEntry,         // the line describes `entry`
  kBlank,         // an empty line
  kSummary,       // a LIST "total 1234" line
  kSelfOrParent,  // MLSD type=cdir or type=pdir, or an entry named "." or ".."
};

struct ParsedLine {
  LineKind kind = LineKind::kBlank;
  FtpEntry entry;
};

// ListTimeContext is what LIST times are read against: LIST shows local
// times of the server without a zone, and recent ones without a year.
struct ListTimeContext {
  int64_t now_seconds = 0;         // the current UTC time
  const TimeZone* zone = nullptr;  // the server's zone; nullptr means UTC
};

// Parses one MLSD line ("fact=value;fact=value; name"). Fact names and the
// type value are case-insensitive, unknown facts are ignored, and the name
// is everything after the first space that follows the facts, so it may
// contain spaces, ';' and '='. `modify` is UTC with optional fractional
// seconds: kNanosecond precision with a fraction, kSecond without.
// Fails with kIoError naming the fact that is malformed.
Result<ParsedLine> ParseMlsdLine(std::string_view line);

// Parses one Unix `ls -l` line. See ftp_parse.cc for the column rules.
Result<ParsedLine> ParseUnixListLine(std::string_view line, const ListTimeContext& context);

// Parses one DOS/IIS line ("04-12-26  03:15PM  <DIR>  name").
Result<ParsedLine> ParseDosListLine(std::string_view line, const ListTimeContext& context);

// Parses one LIST line in either format: DOS when it starts with a digit,
// Unix otherwise. Blank lines and "total N" lines are skipped.
Result<ParsedLine> ParseListLine(std::string_view line, const ListTimeContext& context);

enum class ListingFormat : uint8_t { kMlsd, kList };

std::string_view ListingFormatName(ListingFormat format);

// ListingParser parses a listing as its bytes arrive, so parsing overlaps
// the transfer. Lines end with "\n" or "\r\n"; the last line may lack one.
// After the first bad line it ignores the rest and Finish returns that
// line's error.
class ListingParser {
 public:
  ListingParser(ListingFormat format, const ListTimeContext& context);

  void Feed(std::string_view data);

  // Parses what is left after the last line break and returns every
  // entry, or the first error, naming the line by number and text.
  Result<std::vector<FtpEntry>> Finish();

  // Lines skipped as blank, "total" or "." and "..": counted so a test can
  // check them.
  uint64_t skipped_lines() const { return skipped_lines_; }

 private:
  void ParseLine(std::string_view line);

  ListingFormat format_;
  ListTimeContext context_;
  std::string partial_;  // bytes after the last line break seen so far
  std::vector<FtpEntry> entries_;
  uint64_t line_number_ = 0;
  uint64_t skipped_lines_ = 0;
  Status error_;
};

// Parses a whole listing at once; the same as one Feed and Finish.
Result<std::vector<FtpEntry>> ParseListing(ListingFormat format, std::string_view data,
                                           const ListTimeContext& context);

}  // namespace dirindex
