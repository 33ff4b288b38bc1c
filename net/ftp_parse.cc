// Column rules of the LIST parsers.
//
// Unix lines look like
//   drwxr-xr-x    2 owner    domain users     4096 Apr 12 14:03 name
// with a ten-character mode, a link count, an owner and a group, a size, a
// date and the name. Owner and group names may contain spaces, and some
// servers leave out the group or the link count, so the columns are not
// counted from the left. Instead the parser looks for the first run of
// tokens that reads as size, month, day, and time or year (or as size,
// YYYY-MM-DD, HH:MM from `ls --time-style=long-iso`). The name starts after
// exactly one space behind that run, so leading and inner spaces of a name
// are kept. A symlink's "name -> target" is split at the first " -> ".
//
// DOS/IIS lines look like
//   04-12-26  03:15PM       <DIR>          name
//   04-12-26  03:15PM                 1234 name
// A file name starts after exactly one space behind its size. A directory
// name starts after the padding behind <DIR>, whose width differs between
// servers, so leading spaces of a directory name are lost.
#include "net/ftp_parse.h"

#include <sys/stat.h>

#include <array>
#include <cstring>
#include <limits>

#include "index/paths.h"

namespace dirindex {

namespace {

// A line longer than this is not a listing line: it stops a server that
// sends no line breaks from growing the buffer without bound.
constexpr size_t kMaxLineBytes = 64 * 1024;
// Line text quoted in an error is cut to this many bytes.
constexpr size_t kQuotedLineBytes = 200;
// A year-less LIST date may lie this far past the current time before it
// is read as last year's: it absorbs a server clock that runs ahead, and
// time zone slips, without confusing it with a date six months old.
constexpr int64_t kFutureSlackSeconds = 2 * kSecondsPerDay;

Status Malformed(std::string reason) {
  return Status(StatusCode::kIoError, std::move(reason));
}

char ToLower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ToLower(a[i]) != ToLower(b[i])) return false;
  }
  return true;
}

bool StartsWithIgnoreCase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && EqualsIgnoreCase(text.substr(0, prefix.size()), prefix);
}

// Parses a non-empty run of decimal digits that fits in uint64_t.
bool ParseDecimal(std::string_view text, uint64_t* out) {
  if (text.empty()) return false;
  uint64_t value = 0;
  for (char c : text) {
    if (!IsDigit(c)) return false;
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10) return false;
    value = value * 10 + digit;
  }
  *out = value;
  return true;
}

// Parses exactly `text.size()` digits into a small number.
bool ParseFixedDigits(std::string_view text, int* out) {
  if (text.empty() || text.size() > 9) return false;
  int value = 0;
  for (char c : text) {
    if (!IsDigit(c)) return false;
    value = value * 10 + (c - '0');
  }
  *out = value;
  return true;
}

std::string Quote(std::string_view text) {
  return "'" + ToValidUtf8(text) + "'";
}

// Stores `seconds` (UTC, whole seconds) plus `nanos` as the entry's mtime,
// unless it does not fit in int64 nanoseconds (before 1678 or after 2262):
// then the mtime stays unknown rather than wrapped.
void SetMtime(int64_t seconds, int64_t nanos, TimePrecision precision, ListedEntry* entry) {
  constexpr int64_t kLimit = std::numeric_limits<int64_t>::max() / 1'000'000'000 - 1;
  if (seconds < -kLimit || seconds > kLimit) return;
  entry->mtime_ns = seconds * 1'000'000'000 + nanos;
  entry->mtime_precision = precision;
  entry->known |= kKnownMtime;
}

uint32_t TypeBits(EntryType type) {
  switch (type) {
    case EntryType::kFile: return S_IFREG;
    case EntryType::kDir: return S_IFDIR;
    case EntryType::kSymlink: return S_IFLNK;
    case EntryType::kOther:
    case EntryType::kUnknown: break;
  }
  return 0;
}

bool IsSelfOrParent(std::string_view name) { return name == "." || name == ".."; }

// ---- MLSD

// Parses "YYYYMMDDHHMMSS" with an optional ".fraction", in UTC.
Status ParseMlsdTime(std::string_view value, ListedEntry* entry) {
  auto bad = [&] {
    return Malformed("modify fact " + Quote(value) + " is not YYYYMMDDHHMMSS[.fraction]");
  };

  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (value.size() < 14 || !ParseFixedDigits(value.substr(0, 4), &year) ||
      !ParseFixedDigits(value.substr(4, 2), &month) ||
      !ParseFixedDigits(value.substr(6, 2), &day) ||
      !ParseFixedDigits(value.substr(8, 2), &hour) ||
      !ParseFixedDigits(value.substr(10, 2), &minute) ||
      !ParseFixedDigits(value.substr(12, 2), &second)) {
    return bad();
  }
  // Second 60 is a leap second; it reads as the first second of the next
  // minute.
  if (month < 1 || month > 12 || day < 1 ||
      day > static_cast<int>(DaysInMonth(year, static_cast<unsigned>(month))) || hour > 23 ||
      minute > 59 || second > 60) {
    return bad();
  }

  int64_t nanos = 0;
  TimePrecision precision = TimePrecision::kSecond;
  if (value.size() > 14) {
    std::string_view fraction = value.substr(15);
    if (value[14] != '.' || fraction.empty()) return bad();
    int64_t scale = 100'000'000;
    for (char c : fraction) {
      if (!IsDigit(c)) return bad();
      nanos += (c - '0') * scale;  // digits past the ninth add zero
      scale /= 10;
    }
    precision = TimePrecision::kNanosecond;
  }

  int64_t days =
      DaysFromCivil({year, static_cast<unsigned>(month), static_cast<unsigned>(day)});
  SetMtime(days * kSecondsPerDay + hour * 3600 + minute * 60 + second, nanos, precision, entry);
  return Status::Ok();
}

// Maps an MLSD type value; returns false for cdir and pdir.
bool MapMlsdType(std::string_view value, FtpEntry* out) {
  ListedEntry& entry = out->entry;
  if (EqualsIgnoreCase(value, "file")) {
    entry.type = EntryType::kFile;
  } else if (EqualsIgnoreCase(value, "dir")) {
    entry.type = EntryType::kDir;
  } else if (EqualsIgnoreCase(value, "cdir") || EqualsIgnoreCase(value, "pdir")) {
    return false;
  } else if (StartsWithIgnoreCase(value, "os.unix=slink") ||
             StartsWithIgnoreCase(value, "os.unix=symlink")) {
    // pure-ftpd sends "OS.unix=slink:" and some servers add the target
    // after the colon.
    entry.type = EntryType::kSymlink;
    size_t colon = value.find(':');
    if (colon != std::string_view::npos) out->link_target = std::string(value.substr(colon + 1));
  } else {
    // Devices, fifos, sockets ("OS.unix=chr-5/1", "OS.unix=fifo") and
    // vendor types of other systems.
    entry.type = EntryType::kOther;
  }
  return true;
}

// ---- LIST, Unix

constexpr std::array<std::string_view, 12> kMonths = {"jan", "feb", "mar", "apr", "may", "jun",
                                                      "jul", "aug", "sep", "oct", "nov", "dec"};

int MonthNumber(std::string_view token) {
  if (token.size() != 3) return 0;
  for (size_t i = 0; i < kMonths.size(); ++i) {
    if (EqualsIgnoreCase(token, kMonths[i])) return static_cast<int>(i) + 1;
  }
  return 0;
}

// Parses "H:MM" or "HH:MM".
bool ParseClock(std::string_view token, int* hour, int* minute) {
  size_t colon = token.find(':');
  if (colon == std::string_view::npos || colon < 1 || colon > 2 || token.size() != colon + 3) {
    return false;
  }
  return ParseFixedDigits(token.substr(0, colon), hour) &&
         ParseFixedDigits(token.substr(colon + 1), minute) && *hour <= 23 && *minute <= 59;
}

bool ValidDate(int64_t year, int month, int day) {
  return month >= 1 && month <= 12 && day >= 1 &&
         day <= static_cast<int>(DaysInMonth(year, static_cast<unsigned>(month)));
}

int64_t LocalSeconds(int64_t year, int month, int day, int hour, int minute) {
  int64_t days =
      DaysFromCivil({year, static_cast<unsigned>(month), static_cast<unsigned>(day)});
  return days * kSecondsPerDay + hour * 3600 + minute * 60;
}

int64_t ToUtc(int64_t local_seconds, const ListTimeContext& context) {
  return context.zone != nullptr ? context.zone->LocalToUtc(local_seconds) : local_seconds;
}

// Picks the year of a year-less LIST date. Servers print the time of day
// instead of the year for dates in the last six months, so the date is the
// latest one that is not in the future, give or take kFutureSlackSeconds.
// The year after the current one is tried too, for a server whose clock
// has already passed New Year's Eve.
bool ResolveYear(int month, int day, int hour, int minute, const ListTimeContext& context,
                 int64_t* local_seconds) {
  int32_t offset = context.zone != nullptr ? context.zone->OffsetAt(context.now_seconds) : 0;
  int64_t now_local = context.now_seconds + offset;
  int64_t this_year = CivilFromDays(FloorDiv(now_local, kSecondsPerDay)).year;
  for (int64_t year = this_year + 1; year >= this_year - 1; --year) {
    if (!ValidDate(year, month, day)) continue;
    int64_t candidate = LocalSeconds(year, month, day, hour, minute);
    if (candidate <= now_local + kFutureSlackSeconds) {
      *local_seconds = candidate;
      return true;
    }
  }
  return false;
}

struct Token {
  size_t begin = 0;
  size_t end = 0;  // one past the last byte
};

// UnixDate is a date column found in a Unix line.
struct UnixDate {
  size_t size_token = 0;     // index into the token window
  size_t name_start = 0;     // offset of the name in the line
  int64_t local_seconds = 0;
  bool date_only = false;
};

// Reads tokens [size, month, day, time-or-year] ending at the last token.
bool MatchMonthDate(std::string_view line, const Token* t, const ListTimeContext& context,
                    UnixDate* date) {
  auto text = [&](const Token& token) { return line.substr(token.begin, token.end - token.begin); };
  uint64_t size = 0;
  int month = MonthNumber(text(t[1]));
  int day = 0;
  if (!ParseDecimal(text(t[0]), &size) || month == 0 || text(t[2]).size() > 2 ||
      !ParseFixedDigits(text(t[2]), &day)) {
    return false;
  }
  std::string_view last = text(t[3]);
  int hour = 0, minute = 0, year = 0;
  if (ParseClock(last, &hour, &minute)) {
    if (!ResolveYear(month, day, hour, minute, context, &date->local_seconds)) return false;
  } else if (last.size() == 4 && ParseFixedDigits(last, &year) && year >= 1000) {
    if (!ValidDate(year, month, day)) return false;
    date->local_seconds = LocalSeconds(year, month, day, 0, 0);
    date->date_only = true;
  } else {
    return false;
  }
  date->name_start = t[3].end + 1;
  return true;
}

// Reads tokens [size, YYYY-MM-DD, HH:MM] ending at the last token.
bool MatchIsoDate(std::string_view line, const Token* t, UnixDate* date) {
  auto text = [&](const Token& token) { return line.substr(token.begin, token.end - token.begin); };
  uint64_t size = 0;
  std::string_view ymd = text(t[1]);
  int year = 0, month = 0, day = 0, hour = 0, minute = 0;
  if (!ParseDecimal(text(t[0]), &size) || ymd.size() != 10 || ymd[4] != '-' || ymd[7] != '-' ||
      !ParseFixedDigits(ymd.substr(0, 4), &year) || !ParseFixedDigits(ymd.substr(5, 2), &month) ||
      !ParseFixedDigits(ymd.substr(8, 2), &day) || !ValidDate(year, month, day) ||
      !ParseClock(text(t[2]), &hour, &minute)) {
    return false;
  }
  date->local_seconds = LocalSeconds(year, month, day, hour, minute);
  date->name_start = t[2].end + 1;
  return true;
}

// Maps the type letter of an `ls -l` mode.
bool MapUnixType(char letter, EntryType* type) {
  switch (letter) {
    case '-': *type = EntryType::kFile; return true;
    case 'd': *type = EntryType::kDir; return true;
    case 'l': *type = EntryType::kSymlink; return true;
    case 'c':  // character device
    case 'b':  // block device
    case 'p':  // fifo
    case 's':  // socket
    case 'D':  // Solaris door
      *type = EntryType::kOther;
      return true;
    default: return false;
  }
}

// Reads the nine permission letters ("rwxr-x--T") into mode bits.
bool ParsePermissions(std::string_view letters, uint32_t* mode) {
  uint32_t bits = 0;
  for (size_t who = 0; who < 3; ++who) {
    char read = letters[who * 3];
    char write = letters[who * 3 + 1];
    char exec = letters[who * 3 + 2];
    uint32_t shift = static_cast<uint32_t>(6 - who * 3);
    if (read == 'r') {
      bits |= 4u << shift;
    } else if (read != '-') {
      return false;
    }
    if (write == 'w') {
      bits |= 2u << shift;
    } else if (write != '-') {
      return false;
    }
    // The third letter also carries set-user-ID, set-group-ID and sticky:
    // lower case when the execute bit is set too, upper case when not.
    uint32_t special = who == 0 ? S_ISUID : who == 1 ? S_ISGID : S_ISVTX;
    char special_set = who == 2 ? 't' : 's';
    if (exec == 'x') {
      bits |= 1u << shift;
    } else if (exec == special_set) {
      bits |= (1u << shift) | special;
    } else if (exec == special_set - ('a' - 'A')) {
      bits |= special;
    } else if (who == 1 && (exec == 'l' || exec == 'L')) {
      bits |= S_ISGID;  // mandatory locking on old systems
    } else if (exec != '-') {
      return false;
    }
  }
  *mode = bits;
  return true;
}

bool IsTotalLine(std::string_view line) {
  if (!StartsWithIgnoreCase(line, "total ")) return false;
  std::string_view rest = line.substr(6);
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  // "total 1234", or "total 1.2M" from `ls -lh`.
  return !rest.empty() && IsDigit(rest.front()) && rest.find(' ') == std::string_view::npos;
}

// ---- LIST, DOS

// Parses "MM-DD-YY", "MM-DD-YYYY" or the same with '/'.
bool ParseDosDate(std::string_view token, int64_t* year, int* month, int* day) {
  size_t first = token.find_first_of("-/");
  if (first == std::string_view::npos) return false;
  size_t second = token.find(token[first], first + 1);
  if (second == std::string_view::npos) return false;
  std::string_view month_text = token.substr(0, first);
  std::string_view day_text = token.substr(first + 1, second - first - 1);
  std::string_view year_text = token.substr(second + 1);
  int year_value = 0;
  if (month_text.size() > 2 || day_text.size() > 2 ||
      (year_text.size() != 2 && year_text.size() != 4) ||
      !ParseFixedDigits(month_text, month) || !ParseFixedDigits(day_text, day) ||
      !ParseFixedDigits(year_text, &year_value)) {
    return false;
  }
  // Two-digit years: 70..99 are 1970..1999, 00..69 are 2000..2069, the
  // same window as POSIX strptime's %y.
  if (year_text.size() == 2) year_value += year_value < 70 ? 2000 : 1900;
  *year = year_value;
  return ValidDate(*year, *month, *day);
}

// Parses "03:15PM", "03:15" (24-hour) or "03:15" followed by an "AM"/"PM"
// token; `meridiem` is that separate token or empty.
bool ParseDosTime(std::string_view token, std::string_view meridiem, int* hour, int* minute) {
  std::string_view suffix = meridiem;
  if (token.size() > 2 && (EqualsIgnoreCase(token.substr(token.size() - 2), "am") ||
                           EqualsIgnoreCase(token.substr(token.size() - 2), "pm"))) {
    if (!meridiem.empty()) return false;
    suffix = token.substr(token.size() - 2);
    token.remove_suffix(2);
  }
  if (!ParseClock(token, hour, minute)) return false;
  if (suffix.empty()) return true;
  if (*hour < 1 || *hour > 12) return false;
  bool pm = EqualsIgnoreCase(suffix, "pm");
  if (*hour == 12) *hour = 0;
  if (pm) *hour += 12;
  return true;
}

// Splits off the next space-separated token of `line` starting at `*pos`.
bool NextToken(std::string_view line, size_t* pos, Token* token) {
  while (*pos < line.size() && line[*pos] == ' ') ++*pos;
  if (*pos >= line.size()) return false;
  token->begin = *pos;
  while (*pos < line.size() && line[*pos] != ' ') ++*pos;
  token->end = *pos;
  return true;
}

}  // namespace

Result<ParsedLine> ParseMlsdLine(std::string_view line) {
  ParsedLine parsed;
  if (line.empty()) return parsed;
  FtpEntry& out = parsed.entry;
  ListedEntry& entry = out.entry;

  // Facts run up to the first space that starts a fact, so a value with a
  // space in it (sent by some servers against RFC 3659) is still read whole.
  std::string_view type, size, modify, mode, unique;
  bool has_unique = false;
  size_t pos = 0;
  while (pos < line.size() && line[pos] != ' ') {
    size_t semicolon = line.find(';', pos);
    if (semicolon == std::string_view::npos) {
      return Malformed("facts do not end with ';' and a space before the name");
    }
    std::string_view fact = line.substr(pos, semicolon - pos);
    size_t equals = fact.find('=');
    if (equals == std::string_view::npos || equals == 0 ||
        fact.substr(0, equals).find(' ') != std::string_view::npos) {
      return Malformed("fact " + Quote(fact) + " is not name=value");
    }
    std::string_view name = fact.substr(0, equals);
    std::string_view value = fact.substr(equals + 1);
    if (EqualsIgnoreCase(name, "type")) {
      type = value;
    } else if (EqualsIgnoreCase(name, "size")) {
      size = value;
    } else if (EqualsIgnoreCase(name, "modify")) {
      modify = value;
    } else if (EqualsIgnoreCase(name, "unix.mode")) {
      mode = value;
    } else if (EqualsIgnoreCase(name, "unique")) {
      unique = value;
      has_unique = true;
    }
    pos = semicolon + 1;
  }
  if (pos + 1 >= line.size()) return Malformed("no name after the facts");
  std::string_view name = line.substr(pos + 1);

  if (!type.empty() && !MapMlsdType(type, &out)) {
    parsed.kind = LineKind::kSelfOrParent;
    return parsed;
  }
  if (IsSelfOrParent(name)) {
    parsed.kind = LineKind::kSelfOrParent;
    return parsed;
  }
  entry.name = std::string(name);

  if (!size.empty()) {
    if (!ParseDecimal(size, &entry.size)) {
      return Malformed("size fact " + Quote(size) + " is not a decimal number");
    }
    entry.known |= kKnownSize;
  }
  if (!modify.empty()) {
    Status time = ParseMlsdTime(modify, &entry);
    if (!time.ok()) return time;
  }
  if (!mode.empty()) {
    // pyftpdlib writes Python's "0o644". A mode that cannot be read stays
    // unknown instead of failing the directory: the index compares modes
    // but needs sizes and times far more.
    uint32_t bits = 0;
    if (StartsWithIgnoreCase(mode, "0o")) mode.remove_prefix(2);
    bool octal = !mode.empty() && mode.size() <= 6;
    for (char c : mode) {
      if (c < '0' || c > '7') octal = false;
      if (octal) bits = bits * 8 + static_cast<uint32_t>(c - '0');
    }
    if (octal && bits <= 07777) {
      entry.mode = TypeBits(entry.type) | bits;
      entry.known |= kKnownMode;
    }
  }
  if (has_unique) out.unique = std::string(unique);
  parsed.kind = LineKind::kEntry;
  return parsed;
}

Result<ParsedLine> ParseUnixListLine(std::string_view line, const ListTimeContext& context) {
  ParsedLine parsed;
  if (line.empty()) return parsed;
  if (IsTotalLine(line)) {
    parsed.kind = LineKind::kSummary;
    return parsed;
  }
  if (line.size() < 12) return Malformed("too short for a Unix LIST line");

  ListedEntry& entry = parsed.entry.entry;
  uint32_t permissions = 0;
  if (!MapUnixType(line[0], &entry.type) || !ParsePermissions(line.substr(1, 9), &permissions)) {
    return Malformed("does not start with a mode such as 'drwxr-xr-x'");
  }
  size_t pos = 10;
  // '+' marks an ACL, '.' an SELinux context and '@' extended attributes.
  if (line[pos] == '+' || line[pos] == '.' || line[pos] == '@') ++pos;
  if (pos >= line.size() || line[pos] != ' ') return Malformed("no space after the mode");

  // Slide a window of the last four tokens along the line until it ends in
  // a size and date. The tokens after that are never read.
  std::array<Token, 4> window;
  size_t count = 0;
  UnixDate date;
  bool found = false;
  Token token;
  while (!found && NextToken(line, &pos, &token)) {
    if (count == window.size()) {
      std::copy(window.begin() + 1, window.end(), window.begin());
      --count;
    }
    window[count++] = token;
    if (count >= 3 && MatchIsoDate(line, &window[count - 3], &date)) {
      date.size_token = count - 3;
      found = true;
    } else if (count == 4 && MatchMonthDate(line, window.data(), context, &date)) {
      date.size_token = 0;
      found = true;
    }
  }
  if (!found) return Malformed("no size, date and time columns found");
  if (date.name_start >= line.size()) return Malformed("no name after the date");

  std::string_view name = line.substr(date.name_start);
  if (entry.type == EntryType::kSymlink) {
    // NOTE: a symlink whose own name contains " -> " is split at the wrong
    // place; the line gives no way to tell.
    size_t arrow = name.find(" -> ");
    if (arrow != std::string_view::npos) {
      parsed.entry.link_target = std::string(name.substr(arrow + 4));
      name = name.substr(0, arrow);
    }
  }
  if (name.empty()) return Malformed("empty name");
  if (IsSelfOrParent(name)) {
    parsed.kind = LineKind::kSelfOrParent;
    return parsed;
  }
  entry.name = std::string(name);

  // Device lines show "major, minor" where the size would be, so only the
  // other types get a size.
  const Token& size_token = window[date.size_token];
  if (line[0] != 'c' && line[0] != 'b') {
    if (!ParseDecimal(line.substr(size_token.begin, size_token.end - size_token.begin),
                      &entry.size)) {
      return Malformed("size is not a decimal number that fits 64 bits");
    }
    entry.known |= kKnownSize;
  }
  entry.mode = TypeBits(entry.type) | permissions;
  entry.known |= kKnownMode;
  SetMtime(ToUtc(date.local_seconds, context), 0,
           date.date_only ? TimePrecision::kDay : TimePrecision::kMinute, &entry);
  parsed.entry.date_only = date.date_only;
  parsed.kind = LineKind::kEntry;
  return parsed;
}

Result<ParsedLine> ParseDosListLine(std::string_view line, const ListTimeContext& context) {
  ParsedLine parsed;
  if (line.empty()) return parsed;
  ListedEntry& entry = parsed.entry.entry;

  size_t pos = 0;
  Token date_token, time_token, next;
  if (!NextToken(line, &pos, &date_token) || !NextToken(line, &pos, &time_token) ||
      !NextToken(line, &pos, &next)) {
    return Malformed("too few columns for a DOS LIST line");
  }
  auto text = [&](const Token& token) { return line.substr(token.begin, token.end - token.begin); };
  std::string_view meridiem;
  if (EqualsIgnoreCase(text(next), "am") || EqualsIgnoreCase(text(next), "pm")) {
    meridiem = text(next);
    if (!NextToken(line, &pos, &next)) return Malformed("no size or <DIR> column");
  }
  int64_t year = 0;
  int month = 0, day = 0, hour = 0, minute = 0;
  if (!ParseDosDate(text(date_token), &year, &month, &day)) {
    return Malformed("date is not MM-DD-YY or MM-DD-YYYY");
  }
  if (!ParseDosTime(text(time_token), meridiem, &hour, &minute)) {
    return Malformed("time is not HH:MM with an optional AM or PM");
  }

  size_t name_start = 0;
  if (EqualsIgnoreCase(text(next), "<DIR>")) {
    entry.type = EntryType::kDir;
    name_start = next.end;
    while (name_start < line.size() && line[name_start] == ' ') ++name_start;
  } else {
    // Sizes may be grouped with commas ("1,234,567").
    std::string digits;
    for (char c : text(next)) {
      if (c != ',') digits.push_back(c);
    }
    if (!ParseDecimal(digits, &entry.size)) {
      return Malformed("size column is neither <DIR> nor a decimal number");
    }
    entry.type = EntryType::kFile;
    entry.known |= kKnownSize;
    name_start = next.end + 1;
  }
  if (name_start >= line.size()) return Malformed("no name after the size column");
  std::string_view name = line.substr(name_start);
  if (IsSelfOrParent(name)) {
    parsed.kind = LineKind::kSelfOrParent;
    return parsed;
  }
  entry.name = std::string(name);
  SetMtime(ToUtc(LocalSeconds(year, month, day, hour, minute), context), 0,
           TimePrecision::kMinute, &entry);
  parsed.kind = LineKind::kEntry;
  return parsed;
}

Result<ParsedLine> ParseListLine(std::string_view line, const ListTimeContext& context) {
  if (line.empty()) return ParsedLine{};
  if (IsDigit(line.front())) return ParseDosListLine(line, context);
  return ParseUnixListLine(line, context);
}

std::string_view ListingFormatName(ListingFormat format) {
  return format == ListingFormat::kMlsd ? "MLSD" : "LIST";
}

ListingParser::ListingParser(ListingFormat format, const ListTimeContext& context)
    : format_(format), context_(context) {}

void ListingParser::Feed(std::string_view data) {
  if (!error_.ok()) return;
  size_t pos = 0;
  while (pos < data.size()) {
    const void* found = std::memchr(data.data() + pos, '\n', data.size() - pos);
    if (found == nullptr) break;
    size_t newline = static_cast<size_t>(static_cast<const char*>(found) - data.data());
    if (partial_.empty()) {
      ParseLine(data.substr(pos, newline - pos));
    } else {
      partial_.append(data.substr(pos, newline - pos));
      ParseLine(partial_);
      partial_.clear();
    }
    if (!error_.ok()) return;
    pos = newline + 1;
  }
  partial_.append(data.substr(pos));
  if (partial_.size() > kMaxLineBytes) {
    error_ = Malformed("line " + std::to_string(line_number_ + 1) + " of the " +
                       std::string(ListingFormatName(format_)) + " listing is longer than " +
                       std::to_string(kMaxLineBytes) + " bytes");
  }
}

void ListingParser::ParseLine(std::string_view line) {
  ++line_number_;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  auto parsed = format_ == ListingFormat::kMlsd ? ParseMlsdLine(line)
                                                : ParseListLine(line, context_);
  if (!parsed.ok()) {
    std::string quoted = Quote(line.substr(0, kQuotedLineBytes));
    if (line.size() > kQuotedLineBytes) quoted += "...";
    error_ = Malformed("line " + std::to_string(line_number_) + " of the " +
                       std::string(ListingFormatName(format_)) + " listing is not understood (" +
                       parsed.status().message() + "): " + quoted);
    return;
  }
  if (parsed->kind != LineKind::kEntry) {
    ++skipped_lines_;
    return;
  }
  entries_.push_back(std::move(parsed->entry));
}

Result<std::vector<FtpEntry>> ListingParser::Finish() {
  if (error_.ok() && !partial_.empty()) {
    std::string last = std::move(partial_);
    partial_.clear();
    ParseLine(last);
  }
  if (!error_.ok()) return error_;
  return std::move(entries_);
}

Result<std::vector<FtpEntry>> ParseListing(ListingFormat format, std::string_view data,
                                           const ListTimeContext& context) {
  ListingParser parser(format, context);
  parser.Feed(data);
  return parser.Finish();
}

}  // namespace dirindex
