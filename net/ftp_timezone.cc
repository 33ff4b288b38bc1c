// TZif reading follows RFC 8536: a version 1 block with 32-bit times, and
// in version 2 and later a second block with 64-bit times followed by a
// POSIX TZ string for instants after the last stored transition. Debian's
// files list transitions up to 2037 and end with such a string; "slim"
// files elsewhere stop much earlier and rely on the string entirely.
#include "net/ftp_timezone.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

namespace dirindex {

namespace {

constexpr size_t kTzifHeaderBytes = 44;
constexpr size_t kMaxTzifBytes = size_t{1} << 20;
// RFC 8536 bounds offsets to 25 hours; one more hour of slack costs nothing.
constexpr int32_t kMaxOffsetSeconds = 26 * 3600;
constexpr int32_t kMaxRuleTimeSeconds = 167 * 3600;

uint32_t LoadBigEndian32(const char* bytes) {
  const auto* b = reinterpret_cast<const unsigned char*>(bytes);
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
}

int64_t LoadBigEndian64Signed(const char* bytes) {
  uint64_t high = LoadBigEndian32(bytes);
  uint64_t low = LoadBigEndian32(bytes + 4);
  return static_cast<int64_t>((high << 32) | low);
}

// TzifCounts are the six counts of a TZif header, in file order.
struct TzifCounts {
  uint32_t isutcnt = 0;
  uint32_t isstdcnt = 0;
  uint32_t leapcnt = 0;
  uint32_t timecnt = 0;
  uint32_t typecnt = 0;
  uint32_t charcnt = 0;

  // Bytes of the data block that follows the header.
  uint64_t DataBytes(size_t time_bytes) const {
    return uint64_t{timecnt} * time_bytes + timecnt + uint64_t{typecnt} * 6 + charcnt +
           uint64_t{leapcnt} * (time_bytes + 4) + isstdcnt + isutcnt;
  }
};

bool ReadCounts(std::string_view bytes, size_t offset, TzifCounts* counts) {
  if (bytes.size() < offset + kTzifHeaderBytes) return false;
  if (bytes.substr(offset, 4) != "TZif") return false;
  const char* p = bytes.data() + offset + 20;
  counts->isutcnt = LoadBigEndian32(p);
  counts->isstdcnt = LoadBigEndian32(p + 4);
  counts->leapcnt = LoadBigEndian32(p + 8);
  counts->timecnt = LoadBigEndian32(p + 12);
  counts->typecnt = LoadBigEndian32(p + 16);
  counts->charcnt = LoadBigEndian32(p + 20);
  // Real files have a few thousand transitions at most; the caps keep a
  // corrupt header from asking for gigabytes.
  return counts->typecnt >= 1 && counts->typecnt <= 256 && counts->timecnt <= 100'000 &&
         counts->leapcnt <= 10'000 && counts->charcnt <= 65'536 &&
         (counts->isstdcnt == 0 || counts->isstdcnt == counts->typecnt) &&
         (counts->isutcnt == 0 || counts->isutcnt == counts->typecnt);
}

int WeekdayOfDays(int64_t days) {
  // 1970-01-01 was a Thursday (weekday 4, Sunday being 0).
  int64_t weekday = (days + 4) % 7;
  return static_cast<int>(weekday < 0 ? weekday + 7 : weekday);
}

// Returns the local day (days since the epoch) of `date` in `year`.
int64_t RuleDay(int64_t year, const TimeZone::RuleDate& date) {
  using Kind = TimeZone::RuleDate::Kind;
  switch (date.kind) {
    case Kind::kJulianNoLeap: {
      // Jn counts 1..365 and never counts February 29.
      int64_t offset = date.day - 1;
      if (IsLeapYear(year) && date.day >= 60) ++offset;
      return DaysFromCivil({year, 1, 1}) + offset;
    }
    case Kind::kZeroBasedDay:
      return DaysFromCivil({year, 1, 1}) + date.day;
    case Kind::kMonthWeekDay: {
      int64_t first = DaysFromCivil({year, static_cast<unsigned>(date.month), 1});
      int64_t day = first + (date.weekday - WeekdayOfDays(first) + 7) % 7 + (date.week - 1) * 7;
      int64_t month_end = first + DaysInMonth(year, static_cast<unsigned>(date.month));
      while (day >= month_end) day -= 7;  // week 5 means the last one
      return day;
    }
  }
  return 0;
}

// PosixParser reads the grammar of a POSIX TZ string with the RFC 8536
// extensions (rule times from -167 to 167 hours).
class PosixParser {
 public:
  explicit PosixParser(std::string_view text) : text_(text) {}

  std::optional<TimeZone::PosixRule> Parse() {
    TimeZone::PosixRule rule;
    if (!Name()) return std::nullopt;
    auto std_offset = Hms(kMaxOffsetSeconds);
    if (!std_offset) return std::nullopt;
    rule.std_offset = -*std_offset;  // POSIX offsets are positive west of UTC
    if (AtEnd()) return rule;

    if (!Name()) return std::nullopt;
    rule.has_dst = true;
    rule.dst_offset = rule.std_offset + 3600;
    if (!AtEnd() && Peek() != ',') {
      auto dst_offset = Hms(kMaxOffsetSeconds);
      if (!dst_offset) return std::nullopt;
      rule.dst_offset = -*dst_offset;
    }
    if (AtEnd()) {
      // POSIX leaves the default rule to the implementation; this is the
      // United States rule that glibc and the tz code use.
      rule.dst_start = {TimeZone::RuleDate::Kind::kMonthWeekDay, 0, 3, 2, 0, 7200};
      rule.dst_end = {TimeZone::RuleDate::Kind::kMonthWeekDay, 0, 11, 1, 0, 7200};
      return rule;
    }
    if (!Consume(',') || !Date(&rule.dst_start) || !Consume(',') || !Date(&rule.dst_end)) {
      return std::nullopt;
    }
    if (!AtEnd()) return std::nullopt;
    return rule;
  }

 private:
  bool AtEnd() const { return pos_ >= text_.size(); }
  char Peek() const { return AtEnd() ? '\0' : text_[pos_]; }
  bool Consume(char c) {
    if (Peek() != c) return false;
    ++pos_;
    return true;
  }

  bool Name() {
    if (Consume('<')) {
      size_t close = text_.find('>', pos_);
      if (close == std::string_view::npos || close == pos_) return false;
      pos_ = close + 1;
      return true;
    }
    size_t start = pos_;
    while (!AtEnd() && ((Peek() >= 'A' && Peek() <= 'Z') || (Peek() >= 'a' && Peek() <= 'z'))) {
      ++pos_;
    }
    return pos_ - start >= 3;
  }

  std::optional<int> Number(int max) {
    size_t start = pos_;
    int value = 0;
    while (!AtEnd() && Peek() >= '0' && Peek() <= '9') {
      value = value * 10 + (Peek() - '0');
      if (value > max) return std::nullopt;
      ++pos_;
    }
    if (pos_ == start) return std::nullopt;
    return value;
  }

  // [+-]hh[:mm[:ss]] in seconds, with the sign as written.
  std::optional<int32_t> Hms(int32_t max_seconds) {
    int sign = 1;
    if (Consume('-')) {
      sign = -1;
    } else {
      Consume('+');
    }
    auto hours = Number(max_seconds / 3600);
    if (!hours) return std::nullopt;
    int32_t seconds = *hours * 3600;
    if (Consume(':')) {
      auto minutes = Number(59);
      if (!minutes) return std::nullopt;
      seconds += *minutes * 60;
      if (Consume(':')) {
        auto secs = Number(59);
        if (!secs) return std::nullopt;
        seconds += *secs;
      }
    }
    return sign * seconds;
  }

  bool Date(TimeZone::RuleDate* date) {
    using Kind = TimeZone::RuleDate::Kind;
    if (Consume('J')) {
      auto day = Number(365);
      if (!day || *day < 1) return false;
      date->kind = Kind::kJulianNoLeap;
      date->day = *day;
    } else if (Consume('M')) {
      auto month = Number(12);
      if (!month || *month < 1 || !Consume('.')) return false;
      auto week = Number(5);
      if (!week || *week < 1 || !Consume('.')) return false;
      auto weekday = Number(6);
      if (!weekday) return false;
      date->kind = Kind::kMonthWeekDay;
      date->month = *month;
      date->week = *week;
      date->weekday = *weekday;
    } else {
      auto day = Number(365);
      if (!day) return false;
      date->kind = Kind::kZeroBasedDay;
      date->day = *day;
    }
    date->time = 7200;
    if (Consume('/')) {
      auto time = Hms(kMaxRuleTimeSeconds);
      if (!time) return false;
      date->time = *time;
    }
    return true;
  }

  std::string_view text_;
  size_t pos_ = 0;
};

bool IsValidZoneName(std::string_view name) {
  if (name.empty() || name.size() > 255 || name.front() == '/' || name.back() == '/') {
    return false;
  }
  size_t start = 0;
  while (start <= name.size()) {
    size_t slash = name.find('/', start);
    std::string_view part =
        name.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (part.empty() || part == "." || part == "..") return false;
    for (char c : part) {
      bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                c == '_' || c == '-' || c == '+' || c == '.';
      if (!ok) return false;
    }
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return true;
}

}  // namespace

bool IsLeapYear(int64_t year) {
  return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

unsigned DaysInMonth(int64_t year, unsigned month) {
  static constexpr unsigned kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month < 1 || month > 12) return 0;
  return month == 2 && IsLeapYear(year) ? 29 : kDays[month - 1];
}

// Both conversions count in 400-year eras that start on March 1, so the
// leap day is the last day of each era-year and needs no special case.
int64_t DaysFromCivil(const CivilDate& date) {
  int64_t year = date.year - (date.month <= 2 ? 1 : 0);
  int64_t era = FloorDiv(year, 400);
  int64_t year_of_era = year - era * 400;                             // 0..399
  int64_t month_from_march = (date.month + 9) % 12;                   // March is 0
  int64_t day_of_year = (153 * month_from_march + 2) / 5 + date.day - 1;  // 0..365
  int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  // 719468 days lie between 0000-03-01 and 1970-01-01.
  return era * 146'097 + day_of_era - 719'468;
}

CivilDate CivilFromDays(int64_t days) {
  int64_t shifted = days + 719'468;
  int64_t era = FloorDiv(shifted, 146'097);
  int64_t day_of_era = shifted - era * 146'097;  // 0..146096
  int64_t year_of_era =
      (day_of_era - day_of_era / 1460 + day_of_era / 36'524 - day_of_era / 146'096) / 365;
  int64_t day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  int64_t month_from_march = (5 * day_of_year + 2) / 153;
  CivilDate date;
  date.day = static_cast<unsigned>(day_of_year - (153 * month_from_march + 2) / 5 + 1);
  date.month = static_cast<unsigned>(month_from_march < 10 ? month_from_march + 3
                                                           : month_from_march - 9);
  date.year = year_of_era + era * 400 + (date.month <= 2 ? 1 : 0);
  return date;
}

TimeZone TimeZone::Utc() {
  TimeZone zone;
  zone.name_ = "UTC";
  return zone;
}

Result<TimeZone> TimeZone::Load(std::string_view name) {
  if (!IsValidZoneName(name)) {
    return InvalidArgument("time zone '" + std::string(name) +
                           "' is not an IANA zone name; use one such as Europe/Warsaw or UTC");
  }
  const char* dir_env = std::getenv("TZDIR");
  std::string dir = dir_env != nullptr && *dir_env != '\0' ? dir_env : "/usr/share/zoneinfo";
  std::string path = dir + "/" + std::string(name);

  std::ifstream file(path, std::ios::binary);
  if (!file) {
    int error = errno;
    if (name == "UTC") return Utc();
    return InvalidArgument("time zone '" + std::string(name) + "' not found: cannot open '" +
                           path + "': " + std::strerror(error) +
                           "; use an IANA zone name such as Europe/Warsaw, or install tzdata");
  }
  std::string bytes;
  bytes.assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
  if (bytes.size() > kMaxTzifBytes) {
    return InvalidArgument("time zone file '" + path + "' is larger than 1 MiB");
  }
  return FromTzif(name, bytes);
}

Result<TimeZone> TimeZone::FromTzif(std::string_view name, std::string_view bytes) {
  auto invalid = [&](std::string_view why) {
    return InvalidArgument("time zone '" + std::string(name) + "': invalid TZif data: " +
                           std::string(why));
  };
  TzifCounts counts;
  if (!ReadCounts(bytes, 0, &counts)) return invalid("bad header");
  char version = bytes[4];

  // Version 2 and later repeat the data with 64-bit times after the first
  // block; only that second block and the footer are read.
  size_t time_bytes = 4;
  size_t data_start = kTzifHeaderBytes;
  if (version != '\0') {
    uint64_t second_header = kTzifHeaderBytes + counts.DataBytes(4);
    if (second_header > bytes.size() || !ReadCounts(bytes, second_header, &counts)) {
      return invalid("bad second header");
    }
    time_bytes = 8;
    data_start = second_header + kTzifHeaderBytes;
  }
  uint64_t data_end = data_start + counts.DataBytes(time_bytes);
  if (data_end > bytes.size()) return invalid("truncated data block");

  const char* times = bytes.data() + data_start;
  const char* indices = times + size_t{counts.timecnt} * time_bytes;
  const char* types = indices + counts.timecnt;

  std::vector<int32_t> type_offsets(counts.typecnt);
  for (uint32_t t = 0; t < counts.typecnt; ++t) {
    auto offset = static_cast<int32_t>(LoadBigEndian32(types + size_t{t} * 6));
    if (offset < -kMaxOffsetSeconds || offset > kMaxOffsetSeconds) {
      return invalid("UTC offset out of range");
    }
    type_offsets[t] = offset;
  }

  TimeZone zone;
  zone.name_ = std::string(name);
  zone.initial_offset_ = type_offsets[0];
  zone.transitions_.reserve(counts.timecnt);
  zone.offsets_.reserve(counts.timecnt);
  for (uint32_t i = 0; i < counts.timecnt; ++i) {
    int64_t when = time_bytes == 8
                       ? LoadBigEndian64Signed(times + size_t{i} * 8)
                       : static_cast<int32_t>(LoadBigEndian32(times + size_t{i} * 4));
    auto type = static_cast<unsigned char>(indices[i]);
    if (type >= counts.typecnt) return invalid("transition type index out of range");
    if (!zone.transitions_.empty() && when <= zone.transitions_.back()) {
      return invalid("transition times are not ascending");
    }
    zone.transitions_.push_back(when);
    zone.offsets_.push_back(type_offsets[type]);
  }

  if (version != '\0') {
    // The footer is "\n<TZ string>\n"; an empty string means the last
    // transition's offset stays in force.
    std::string_view footer = bytes.substr(data_end);
    if (footer.size() < 2 || footer.front() != '\n') return invalid("missing TZ string footer");
    size_t end = footer.find('\n', 1);
    if (end == std::string_view::npos) return invalid("unterminated TZ string footer");
    std::string_view text = footer.substr(1, end - 1);
    if (!text.empty()) {
      zone.rule_ = ParsePosixRule(text);
      if (!zone.rule_) return invalid("unreadable TZ string '" + std::string(text) + "'");
    }
  }
  return zone;
}

std::optional<TimeZone::PosixRule> TimeZone::ParsePosixRule(std::string_view text) {
  return PosixParser(text).Parse();
}

int32_t TimeZone::OffsetAt(int64_t utc_seconds) const {
  if (transitions_.empty()) return rule_ ? RuleOffsetAt(utc_seconds) : initial_offset_;
  if (utc_seconds < transitions_.front()) return initial_offset_;
  auto after = std::upper_bound(transitions_.begin(), transitions_.end(), utc_seconds);
  size_t index = static_cast<size_t>(after - transitions_.begin()) - 1;
  if (index + 1 == transitions_.size() && rule_) return RuleOffsetAt(utc_seconds);
  return offsets_[index];
}

int32_t TimeZone::RuleOffsetAt(int64_t utc_seconds) const {
  const PosixRule& rule = *rule_;
  if (!rule.has_dst) return rule.std_offset;
  int64_t year = CivilFromDays(FloorDiv(utc_seconds + rule.std_offset, kSecondsPerDay)).year;
  // Each rule time is local time as it reads just before the change.
  int64_t start = RuleDay(year, rule.dst_start) * kSecondsPerDay + rule.dst_start.time -
                  rule.std_offset;
  int64_t end = RuleDay(year, rule.dst_end) * kSecondsPerDay + rule.dst_end.time -
                rule.dst_offset;
  bool dst = start < end ? (start <= utc_seconds && utc_seconds < end)
                         : !(end <= utc_seconds && utc_seconds < start);  // southern hemisphere
  return dst ? rule.dst_offset : rule.std_offset;
}

int64_t TimeZone::LocalToUtc(int64_t local_seconds) const {
  // Offsets two days before and after cover both sides of any change near
  // this local time, because real zones change at most once in such a window.
  const int32_t before = OffsetAt(local_seconds - 2 * kSecondsPerDay);
  const int32_t candidates[3] = {before, OffsetAt(local_seconds),
                                 OffsetAt(local_seconds + 2 * kSecondsPerDay)};
  std::optional<int64_t> earliest;
  for (int32_t offset : candidates) {
    int64_t utc = local_seconds - offset;
    if (OffsetAt(utc) != offset) continue;
    if (!earliest || utc < *earliest) earliest = utc;
  }
  if (earliest) return *earliest;
  return local_seconds - before;  // a skipped local time
}

}  // namespace dirindex
