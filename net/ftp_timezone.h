// Civil dates and IANA time zones for FTP LIST times, which servers print
// in their own local time without a zone.
//
// TimeZone reads a compiled zone file (TZif, RFC 8536) from the system's
// zoneinfo folder once and is immutable afterwards, so one object can be
// shared by any number of threads. This avoids setenv("TZ") with
// localtime_r, which changes process-wide state, and libstdc++ 12 has no
// std::chrono::locate_zone.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "index/status.h"

namespace dirindex {

constexpr int64_t kSecondsPerDay = 86'400;

// CivilDate is a day of the proleptic Gregorian calendar.
struct CivilDate {
  int64_t year = 1970;
  unsigned month = 1;  // 1..12
  unsigned day = 1;    // 1..31
};

bool IsLeapYear(int64_t year);
unsigned DaysInMonth(int64_t year, unsigned month);

// Days from 1970-01-01 to `date`, negative before it. `date` must be valid.
int64_t DaysFromCivil(const CivilDate& date);
CivilDate CivilFromDays(int64_t days);

// Floor division, also for negative `value`.
inline int64_t FloorDiv(int64_t value, int64_t divisor) {
  int64_t quotient = value / divisor;
  return (value % divisor < 0) ? quotient - 1 : quotient;
}

// TimeZone maps UTC instants to local time and back for one zone.
// Times are whole seconds since the Unix epoch; local seconds count from
// 1970-01-01 00:00 local time.
class TimeZone {
 public:
  // Returns a zone without offsets.
  static TimeZone Utc();

  // Loads the IANA zone `name` (for example "Europe/Warsaw") from $TZDIR
  // or /usr/share/zoneinfo. "UTC" works without the files. Fails with
  // kInvalidArgument when the name is malformed or no such zone exists.
  static Result<TimeZone> Load(std::string_view name);

  // Parses the bytes of a TZif file. `name` is only kept for messages.
  static Result<TimeZone> FromTzif(std::string_view name, std::string_view bytes);

  const std::string& name() const { return name_; }

  // Returns the offset from UTC in seconds (east positive) at `utc_seconds`.
  int32_t OffsetAt(int64_t utc_seconds) const;

  // Converts a local wall-clock time to UTC. A local time that occurs twice
  // (when clocks go back) maps to the earlier instant. A local time that
  // never occurs (when clocks go forward) is read with the offset in force
  // before the change, as mktime does, so 02:30 becomes 03:30 daylight time.
  int64_t LocalToUtc(int64_t local_seconds) const;

  // RuleDate is one date of a POSIX TZ rule ("M3.5.0/3", "J60", "59").
  struct RuleDate {
    enum class Kind : uint8_t { kJulianNoLeap, kZeroBasedDay, kMonthWeekDay };
    Kind kind = Kind::kMonthWeekDay;
    int day = 0;      // Jn: 1..365; n: 0..365
    int month = 1;    // Mm.w.d
    int week = 1;     // 1..5, 5 means the last such weekday of the month
    int weekday = 0;  // 0 is Sunday
    int32_t time = 7200;  // local seconds after midnight, -167h..167h
  };

  // PosixRule is the TZ string that a TZif file ends with. It gives the
  // offsets after the file's last transition.
  struct PosixRule {
    int32_t std_offset = 0;  // seconds east of UTC
    bool has_dst = false;
    int32_t dst_offset = 0;
    RuleDate dst_start;
    RuleDate dst_end;
  };

  // Parses a POSIX TZ string such as "CET-1CEST,M3.5.0,M10.5.0/3".
  static std::optional<PosixRule> ParsePosixRule(std::string_view text);

 private:
  int32_t RuleOffsetAt(int64_t utc_seconds) const;

  std::string name_;
  int32_t initial_offset_ = 0;         // before the first transition
  std::vector<int64_t> transitions_;   // UTC seconds, ascending
  std::vector<int32_t> offsets_;       // offset from transitions_[i] on
  std::optional<PosixRule> rule_;      // after the last transition
};

}  // namespace dirindex
