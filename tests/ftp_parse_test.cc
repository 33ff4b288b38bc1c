// Unit tests of the FTP parsers (MLSD, Unix and DOS LIST), the TZif time
// zone reader, and the URL and FEAT handling of the FTP source. No server
// is involved; tests/ftp_test.cc runs the source against real ones.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstdlib>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "net/ftp_connection.h"
#include "net/ftp_parse.h"
#include "net/ftp_source.h"
#include "net/ftp_timezone.h"

namespace dirindex {
namespace {

constexpr int64_t kNs = 1'000'000'000;

int64_t Utc(int64_t year, unsigned month, unsigned day, int hour = 0, int minute = 0,
            int second = 0) {
  return DaysFromCivil({year, month, day}) * kSecondsPerDay + hour * 3600 + minute * 60 + second;
}

// 2026-12-04 17:01:51 UTC, the "now" of most LIST cases.
const int64_t kNow = Utc(2026, 12, 4, 17, 1, 51);

ListTimeContext UtcContext(int64_t now = kNow) { return ListTimeContext{now, nullptr}; }

FtpEntry ParseEntry(const Result<ParsedLine>& parsed) {
  EXPECT_TRUE(parsed.ok()) << parsed.status().ToString();
  if (!parsed.ok()) return {};
  EXPECT_EQ(parsed->kind, LineKind::kEntry);
  return parsed->entry;
}

// ---- MLSD

TEST(MlsdLineTest, PureFtpdFileLine) {
  FtpEntry item = ParseEntry(ParseMlsdLine(
      "type=file;size=1234;modify=20261204170149;UNIX.mode=0644;UNIX.uid=0;UNIX.gid=0;"
      "unique=fe00gd304dd; report 2026.xml"));
  const ListedEntry& entry = item.entry;
  EXPECT_EQ(entry.name, "report 2026.xml");
  EXPECT_EQ(entry.type, EntryType::kFile);
  EXPECT_EQ(entry.known, kKnownSize | kKnownMtime | kKnownMode);
  EXPECT_EQ(entry.size, 1234u);
  EXPECT_EQ(entry.mtime_ns, Utc(2026, 12, 4, 17, 1, 49) * kNs);
  EXPECT_EQ(entry.mtime_precision, TimePrecision::kSecond);
  EXPECT_EQ(entry.mode, S_IFREG | 0644u);
  EXPECT_EQ(item.unique, "fe00gd304dd");
}

TEST(MlsdLineTest, NameKeepsSpacesSemicolonsAndEquals) {
  FtpEntry item = ParseEntry(ParseMlsdLine("type=file;size=3;  a b;c=d.txt "));
  EXPECT_EQ(item.entry.name, " a b;c=d.txt ");
}

TEST(MlsdLineTest, FactNamesAndTypeAreCaseInsensitive) {
  FtpEntry item = ParseEntry(ParseMlsdLine("Type=DIR;MODIFY=20200101000000;Unique=X1; Sub"));
  EXPECT_EQ(item.entry.type, EntryType::kDir);
  EXPECT_EQ(item.entry.mtime_ns, Utc(2020, 1, 1) * kNs);
  EXPECT_EQ(item.unique, "X1");
}

TEST(MlsdLineTest, FractionalSecondsGiveNanoseconds) {
  FtpEntry item = ParseEntry(ParseMlsdLine("type=file;modify=20260102030405.123; f"));
  EXPECT_EQ(item.entry.mtime_ns, Utc(2026, 1, 2, 3, 4, 5) * kNs + 123'000'000);
  EXPECT_EQ(item.entry.mtime_precision, TimePrecision::kNanosecond);

  item = ParseEntry(ParseMlsdLine("type=file;modify=20260102030405.1234567899; f"));
  EXPECT_EQ(item.entry.mtime_ns, Utc(2026, 1, 2, 3, 4, 5) * kNs + 123'456'789);
}

TEST(MlsdLineTest, CdirAndPdirAreSkipped) {
  auto cdir = ParseMlsdLine("type=cdir;sizd=4096;modify=20261204170149; .");
  ASSERT_TRUE(cdir.ok());
  EXPECT_EQ(cdir->kind, LineKind::kSelfOrParent);
  auto pdir = ParseMlsdLine("type=PDIR; /home/x");
  ASSERT_TRUE(pdir.ok());
  EXPECT_EQ(pdir->kind, LineKind::kSelfOrParent);
  auto dot = ParseMlsdLine("type=dir; ..");
  ASSERT_TRUE(dot.ok());
  EXPECT_EQ(dot->kind, LineKind::kSelfOrParent);
}

TEST(MlsdLineTest, SymlinkAndDeviceTypes) {
  FtpEntry link = ParseEntry(ParseMlsdLine("type=OS.unix=slink:;size=17;UNIX.mode=0777; lnk"));
  EXPECT_EQ(link.entry.type, EntryType::kSymlink);
  EXPECT_EQ(link.entry.mode, S_IFLNK | 0777u);
  FtpEntry target = ParseEntry(ParseMlsdLine("type=OS.UNIX=symlink:/etc/x; lnk"));
  EXPECT_EQ(target.entry.type, EntryType::kSymlink);
  EXPECT_EQ(target.link_target, "/etc/x");
  FtpEntry device = ParseEntry(ParseMlsdLine("type=OS.unix=chr-1/3; null"));
  EXPECT_EQ(device.entry.type, EntryType::kOther);
}

TEST(MlsdLineTest, MissingFactsStayUnknown) {
  FtpEntry item = ParseEntry(ParseMlsdLine(" bare name"));
  EXPECT_EQ(item.entry.name, "bare name");
  EXPECT_EQ(item.entry.type, EntryType::kUnknown);
  EXPECT_EQ(item.entry.known, 0);
  EXPECT_TRUE(item.unique.empty());
}

TEST(MlsdLineTest, ValueWithSpaceIsReadWhole) {
  FtpEntry item = ParseEntry(ParseMlsdLine("UNIX.group=domain users;type=file;size=5; f"));
  EXPECT_EQ(item.entry.name, "f");
  EXPECT_EQ(item.entry.size, 5u);
}

TEST(MlsdLineTest, UnreadableModeStaysUnknown) {
  FtpEntry python = ParseEntry(ParseMlsdLine("type=file;unix.mode=0o644; f"));
  EXPECT_EQ(python.entry.mode, S_IFREG | 0644u);
  EXPECT_EQ(python.entry.known, kKnownMode);
  for (const char* line : {"type=file;UNIX.mode=0899; f", "type=file;UNIX.mode=17777; f",
                           "type=file;UNIX.mode=rw-r--r--; f"}) {
    FtpEntry item = ParseEntry(ParseMlsdLine(line));
    EXPECT_EQ(item.entry.known & kKnownMode, 0) << line;
  }
}

TEST(MlsdLineTest, TimeOutsideNanosecondRangeStaysUnknown) {
  FtpEntry item = ParseEntry(ParseMlsdLine("type=file;modify=99991231235959; far"));
  EXPECT_EQ(item.entry.known & kKnownMtime, 0);
}

TEST(MlsdLineTest, MalformedLinesFail) {
  const char* bad[] = {
      "type=file;size=12",                        // no name
      "type=file;size=12;",                       // no space and name
      "type=file;size=12; ",                      // empty name
      "garbage line",                             // no facts, no leading space
      "type=file;size=12x; f",                    // size not a number
      "type=file;size=99999999999999999999; f",   // size overflows
      "type=file;modify=20261304170149; f",       // month 13
      "type=file;modify=20260230000000; f",       // February 30
      "type=file;modify=2026020100000; f",        // 13 digits
      "type=file;modify=20260201000000.; f",      // empty fraction
      "=file; f",                                 // empty fact name
      "type file; f",                             // no '='
  };
  for (const char* line : bad) {
    EXPECT_FALSE(ParseMlsdLine(line).ok()) << line;
  }
}

// ---- Unix LIST

TEST(UnixListLineTest, PureFtpdFileLine) {
  FtpEntry item = ParseEntry(ParseUnixListLine(
      "-rw-r--r--    1 0          0                1234 Dec  4 17:01 f1", UtcContext()));
  const ListedEntry& entry = item.entry;
  EXPECT_EQ(entry.name, "f1");
  EXPECT_EQ(entry.type, EntryType::kFile);
  EXPECT_EQ(entry.size, 1234u);
  EXPECT_EQ(entry.mode, S_IFREG | 0644u);
  EXPECT_EQ(entry.known, kKnownSize | kKnownMtime | kKnownMode);
  EXPECT_EQ(entry.mtime_ns, Utc(2026, 12, 4, 17, 1) * kNs);
  EXPECT_EQ(entry.mtime_precision, TimePrecision::kMinute);
  EXPECT_FALSE(item.date_only);
}

TEST(UnixListLineTest, YearFormIsLocalMidnightDateOnly) {
  FtpEntry item = ParseEntry(ParseUnixListLine(
      "drwxr-xr-x    2 0          0                4096 Jan  5  2025 old dir", UtcContext()));
  EXPECT_EQ(item.entry.type, EntryType::kDir);
  EXPECT_EQ(item.entry.name, "old dir");
  EXPECT_EQ(item.entry.mtime_ns, Utc(2025, 1, 5) * kNs);
  EXPECT_EQ(item.entry.mtime_precision, TimePrecision::kDay);
  EXPECT_TRUE(item.date_only);
}

TEST(UnixListLineTest, YearlessDateIsWithinPastSixMonths) {
  struct Case {
    const char* date;
    int64_t now;
    int64_t expected;
  };
  const Case cases[] = {
      {"Dec  4 17:01", kNow, Utc(2026, 12, 4, 17, 1)},
      {"Jul  1 10:00", kNow, Utc(2026, 7, 1, 10, 0)},
      // More than the slack in the future: last year's.
      {"Dec 25 10:00", kNow, Utc(2025, 12, 25, 10, 0)},
      // Less than the slack ahead: a server clock running fast.
      {"Dec  5 09:00", kNow, Utc(2026, 12, 5, 9, 0)},
      // Just after New Year on our clock, the server lists last December.
      {"Dec 31 23:59", Utc(2027, 1, 1, 0, 1), Utc(2026, 12, 31, 23, 59)},
      // Our clock still in December, the server's already in January.
      {"Jan  1 00:05", Utc(2026, 12, 31, 23, 59), Utc(2027, 1, 1, 0, 5)},
      // February 29 picks the last leap year.
      {"Feb 29 12:00", Utc(2025, 3, 1), Utc(2024, 2, 29, 12, 0)},
  };
  for (const Case& c : cases) {
    std::string line = std::string("-rw-r--r-- 1 u g 1 ") + c.date + " f";
    FtpEntry item = ParseEntry(ParseUnixListLine(line, UtcContext(c.now)));
    EXPECT_EQ(item.entry.mtime_ns, c.expected * kNs) << line;
  }
}

TEST(UnixListLineTest, ServerTimeZoneApplies) {
  auto zone = TimeZone::Load("Europe/Warsaw");
  ASSERT_TRUE(zone.ok()) << zone.status().ToString();
  ListTimeContext context{kNow, &*zone};
  FtpEntry summer = ParseEntry(ParseUnixListLine("-rw-r--r-- 1 u g 1 Jul  1 10:00 f", context));
  EXPECT_EQ(summer.entry.mtime_ns, Utc(2026, 7, 1, 8, 0) * kNs);
  FtpEntry winter = ParseEntry(ParseUnixListLine("-rw-r--r-- 1 u g 1 Jan  5  2025 f", context));
  EXPECT_EQ(winter.entry.mtime_ns, Utc(2025, 1, 4, 23, 0) * kNs);
}

TEST(UnixListLineTest, GroupNamesWithSpaces) {
  FtpEntry item = ParseEntry(ParseUnixListLine(
      "-rw-r--r--    1 jan.kowalski domain users     1234 Apr 12 14:03 invoice.xml",
      UtcContext()));
  EXPECT_EQ(item.entry.name, "invoice.xml");
  EXPECT_EQ(item.entry.size, 1234u);
}

TEST(UnixListLineTest, ColumnsLeftOutOrNumeric) {
  FtpEntry no_group =
      ParseEntry(ParseUnixListLine("-rw-r--r--   1 ftp      77 Apr 12 14:03 x", UtcContext()));
  EXPECT_EQ(no_group.entry.size, 77u);
  FtpEntry numeric = ParseEntry(
      ParseUnixListLine("-rw-r--r-- 1 1000 1000 5 Apr 12 14:03 f", UtcContext()));
  EXPECT_EQ(numeric.entry.size, 5u);
  FtpEntry no_links =
      ParseEntry(ParseUnixListLine("drwxr-xr-x folder 0 Apr 12 14:03 d", UtcContext()));
  EXPECT_EQ(no_links.entry.type, EntryType::kDir);
  EXPECT_EQ(no_links.entry.name, "d");
}

TEST(UnixListLineTest, NamesKeepLeadingInnerAndTrailingSpaces) {
  const char* names[] = {" lead.txt", "sp  ace", "trail.txt ", " ", "-dash",
                         "Apr 12 14:03 looks like a date", "zażółć.txt", "semi;c=1"};
  for (const char* name : names) {
    std::string line = std::string("-rw-r--r--    1 0  0   0 Dec  4 17:03 ") + name;
    FtpEntry item = ParseEntry(ParseUnixListLine(line, UtcContext()));
    EXPECT_EQ(item.entry.name, name);
  }
}

TEST(UnixListLineTest, SymlinkArrowSplitsTarget) {
  FtpEntry item = ParseEntry(ParseUnixListLine(
      "lrwxrwxrwx    1 0   0   17 Dec  4 17:03 lnk -> target with space", UtcContext()));
  EXPECT_EQ(item.entry.type, EntryType::kSymlink);
  EXPECT_EQ(item.entry.name, "lnk");
  EXPECT_EQ(item.link_target, "target with space");
  // A file whose name has an arrow keeps it.
  FtpEntry file = ParseEntry(
      ParseUnixListLine("-rw-r--r--    1 0   0   0 Dec  4 17:03 a -> b", UtcContext()));
  EXPECT_EQ(file.entry.name, "a -> b");
}

TEST(UnixListLineTest, ModeLettersAndMarkers) {
  FtpEntry setuid = ParseEntry(
      ParseUnixListLine("-rwsr-sr-t+ 1 u g 1 Apr 12 14:03 f", UtcContext()));
  EXPECT_EQ(setuid.entry.mode, S_IFREG | S_ISUID | S_ISGID | S_ISVTX | 0755u);
  FtpEntry upper = ParseEntry(
      ParseUnixListLine("drwSr-Sr-T. 1 u g 1 Apr 12 14:03 d", UtcContext()));
  EXPECT_EQ(upper.entry.mode, S_IFDIR | S_ISUID | S_ISGID | S_ISVTX | 0644u);
  FtpEntry device = ParseEntry(
      ParseUnixListLine("crw-rw-rw-   1 root root   1,   3 Apr 12 14:03 null", UtcContext()));
  EXPECT_EQ(device.entry.type, EntryType::kOther);
  EXPECT_EQ(device.entry.known & kKnownSize, 0);
  FtpEntry fifo = ParseEntry(ParseUnixListLine("prw-r--r-- 1 u g 0 Apr 12 14:03 p", UtcContext()));
  EXPECT_EQ(fifo.entry.type, EntryType::kOther);
}

TEST(UnixListLineTest, LongIsoDates) {
  FtpEntry item = ParseEntry(ParseUnixListLine(
      "-rw-r--r-- 1 user group 42 2025-03-07 09:15 report.csv", UtcContext()));
  EXPECT_EQ(item.entry.name, "report.csv");
  EXPECT_EQ(item.entry.size, 42u);
  EXPECT_EQ(item.entry.mtime_ns, Utc(2025, 3, 7, 9, 15) * kNs);
}

TEST(UnixListLineTest, SummaryAndDotEntriesAreSkipped) {
  auto total = ParseListLine("total 123", UtcContext());
  ASSERT_TRUE(total.ok());
  EXPECT_EQ(total->kind, LineKind::kSummary);
  auto human = ParseListLine("total 1.2M", UtcContext());
  ASSERT_TRUE(human.ok());
  EXPECT_EQ(human->kind, LineKind::kSummary);
  auto dot = ParseListLine("drwxr-xr-x    3 0  0  266240 Dec  4 17:01 .", UtcContext());
  ASSERT_TRUE(dot.ok());
  EXPECT_EQ(dot->kind, LineKind::kSelfOrParent);
  auto blank = ParseListLine("", UtcContext());
  ASSERT_TRUE(blank.ok());
  EXPECT_EQ(blank->kind, LineKind::kBlank);
}

TEST(UnixListLineTest, MalformedLinesFail) {
  const char* bad[] = {
      "garbage line that is long enough",
      "-rw-r--r-- 1 a b c d e f g h",                    // no date
      "drwxr-xr-x 2 a b 4096 Foo 12 14:03 x",            // unknown month
      "-rw-r--r-- 1 u g 12 Apr 12 14:03",                // no name
      "-rw-r--r-- 1 u g 12 Apr 12 14:03 ",               // empty name
      "-rw-r--r-- 1 u g 12 Apr 32 14:03 x",              // day 32
      "-rw-r--r-- 1 u g 12 Apr 12 24:03 x",              // hour 24
      "-rw-r--r-- 1 u g 12 Feb 30  2024 x",              // February 30
      "xrw-r--r-- 1 u g 12 Apr 12 14:03 x",              // unknown type
      "-rwq------ 1 u g 12 Apr 12 14:03 x",              // unknown mode letter
      "-rw-r--r--1 u g 12 Apr 12 14:03 x",               // no space after the mode
      "-rw-r--r-- 1 u g 99999999999999999999 Apr 12 14:03 x",  // size overflows
      "total",
      "-rw-",
  };
  for (const char* line : bad) {
    EXPECT_FALSE(ParseListLine(line, UtcContext()).ok()) << line;
  }
}

// ---- DOS LIST

TEST(DosListLineTest, DirectoryAndFile) {
  FtpEntry dir = ParseEntry(
      ParseListLine("04-12-26  03:15PM       <DIR>          My Documents", UtcContext()));
  EXPECT_EQ(dir.entry.type, EntryType::kDir);
  EXPECT_EQ(dir.entry.name, "My Documents");
  EXPECT_EQ(dir.entry.mtime_ns, Utc(2026, 4, 12, 15, 15) * kNs);
  EXPECT_EQ(dir.entry.mtime_precision, TimePrecision::kMinute);
  EXPECT_EQ(dir.entry.known, kKnownMtime);

  FtpEntry file = ParseEntry(
      ParseListLine("04-12-26  03:15AM                 1234 a b.txt", UtcContext()));
  EXPECT_EQ(file.entry.type, EntryType::kFile);
  EXPECT_EQ(file.entry.name, "a b.txt");
  EXPECT_EQ(file.entry.size, 1234u);
  EXPECT_EQ(file.entry.known, kKnownSize | kKnownMtime);
  EXPECT_EQ(file.entry.mtime_ns, Utc(2026, 4, 12, 3, 15) * kNs);
}

TEST(DosListLineTest, ClockAndYearVariants) {
  struct Case {
    const char* line;
    int64_t expected;
  };
  const Case cases[] = {
      {"01-02-99  12:00AM  5 f", Utc(1999, 1, 2, 0, 0)},
      {"01-02-99  12:30PM  5 f", Utc(1999, 1, 2, 12, 30)},
      {"01-02-2031  11:59 PM  5 f", Utc(2031, 1, 2, 23, 59)},
      {"01/02/69  15:15  5 f", Utc(2069, 1, 2, 15, 15)},
      {"12-31-70  00:00  1,234,567 f", Utc(1970, 12, 31)},
  };
  for (const Case& c : cases) {
    FtpEntry item = ParseEntry(ParseListLine(c.line, UtcContext()));
    EXPECT_EQ(item.entry.mtime_ns, c.expected * kNs) << c.line;
    EXPECT_EQ(item.entry.name, "f") << c.line;
  }
  FtpEntry grouped = ParseEntry(ParseListLine("12-31-70  00:00  1,234,567 f", UtcContext()));
  EXPECT_EQ(grouped.entry.size, 1234567u);
}

TEST(DosListLineTest, FileNameKeepsLeadingSpace) {
  FtpEntry item = ParseEntry(ParseListLine("04-12-26  03:15PM   12  lead", UtcContext()));
  EXPECT_EQ(item.entry.name, " lead");
}

TEST(DosListLineTest, MalformedLinesFail) {
  const char* bad[] = {
      "13-01-26  03:15PM  <DIR>  x",   // month 13
      "02-30-26  03:15PM  <DIR>  x",   // February 30
      "04-12-26  13:15PM  <DIR>  x",   // 13 PM
      "04-12-26  03:15XM  <DIR>  x",   // not AM or PM
      "04-12-26  03:15PM  <JUNCTION>  x",
      "04-12-26  03:15PM  12",         // no name
      "04-12-26  03:15PM",
      "04-12-2026-1  03:15PM  1 x",
      "4  03:15PM  1 x",
  };
  for (const char* line : bad) {
    EXPECT_FALSE(ParseListLine(line, UtcContext()).ok()) << line;
  }
}

// ---- ListingParser

const char kUnixListing[] =
    "total 16\r\n"
    "drwxr-xr-x    3 0          0              266240 Dec  4 17:01 .\r\n"
    "drwxr-xr-x    3 0          0              266240 Dec  4 17:01 ..\r\n"
    "-rw-r--r--    1 0          0                   1 Dec  4 17:03 caf\xe9\r\n"
    "lrwxrwxrwx    1 0          0                  17 Dec  4 17:03 lnk -> target\r\n"
    "drwxr-xr-x    2 0          0                4096 Dec  4 17:03 sub dir\r\n"
    "-rw-r--r--    1 0          0                   0 Jan  5  2025 old.txt";

TEST(ListingParserTest, ParsesWholeListing) {
  ListingParser parser(ListingFormat::kList, UtcContext());
  parser.Feed(kUnixListing);
  auto entries = parser.Finish();
  ASSERT_TRUE(entries.ok()) << entries.status().ToString();
  ASSERT_EQ(entries->size(), 4u);
  EXPECT_EQ((*entries)[0].entry.name, "caf\xe9");
  EXPECT_EQ((*entries)[1].entry.name, "lnk");
  EXPECT_EQ((*entries)[2].entry.name, "sub dir");
  EXPECT_EQ((*entries)[3].entry.name, "old.txt");
  EXPECT_EQ(parser.skipped_lines(), 3u);
}

TEST(ListingParserTest, AnySplitGivesSameEntries) {
  auto whole = ParseListing(ListingFormat::kList, kUnixListing, UtcContext());
  ASSERT_TRUE(whole.ok());
  std::string_view text = kUnixListing;
  for (size_t split = 0; split <= text.size(); ++split) {
    for (size_t second = split; second <= text.size(); second += 7) {
      ListingParser parser(ListingFormat::kList, UtcContext());
      parser.Feed(text.substr(0, split));
      parser.Feed(text.substr(split, second - split));
      parser.Feed(text.substr(second));
      auto entries = parser.Finish();
      ASSERT_TRUE(entries.ok()) << "split at " << split << " and " << second;
      ASSERT_EQ(entries->size(), whole->size());
      for (size_t i = 0; i < entries->size(); ++i) {
        EXPECT_EQ((*entries)[i].entry.name, (*whole)[i].entry.name);
        EXPECT_EQ((*entries)[i].entry.mtime_ns, (*whole)[i].entry.mtime_ns);
      }
    }
  }
}

TEST(ListingParserTest, BadLineFailsWholeListing) {
  std::string listing =
      "type=file;size=1; a\n"
      "type=file;size=2; b\n"
      "this line is not MLSD\n"
      "type=file;size=3; c\n";
  auto entries = ParseListing(ListingFormat::kMlsd, listing, UtcContext());
  ASSERT_FALSE(entries.ok());
  const std::string& message = entries.status().message();
  EXPECT_NE(message.find("line 3 of the MLSD listing"), std::string::npos) << message;
  EXPECT_NE(message.find("'this line is not MLSD'"), std::string::npos) << message;
}

TEST(ListingParserTest, LongLineQuotedShort) {
  std::string listing = "-rw-r--r-- 1 u g " + std::string(1000, 'x') + "\n";
  auto entries = ParseListing(ListingFormat::kList, listing, UtcContext());
  ASSERT_FALSE(entries.ok());
  EXPECT_LT(entries.status().message().size(), 400u);
}

TEST(ListingParserTest, EndlessLineFails) {
  ListingParser parser(ListingFormat::kMlsd, UtcContext());
  std::string chunk(4096, 'x');
  for (int i = 0; i < 20; ++i) parser.Feed(chunk);
  auto entries = parser.Finish();
  ASSERT_FALSE(entries.ok());
  EXPECT_NE(entries.status().message().find("longer than"), std::string::npos);
}

TEST(ListingParserTest, EmptyListingHasNoEntries) {
  auto entries = ParseListing(ListingFormat::kMlsd, "", UtcContext());
  ASSERT_TRUE(entries.ok());
  EXPECT_TRUE(entries->empty());
}

// ---- Civil dates and time zones

TEST(CivilDateTest, KnownDaysAndRoundTrip) {
  EXPECT_EQ(DaysFromCivil({1970, 1, 1}), 0);
  EXPECT_EQ(DaysFromCivil({1969, 12, 31}), -1);
  EXPECT_EQ(DaysFromCivil({2000, 3, 1}), 11'017);
  EXPECT_EQ(DaysFromCivil({2026, 12, 4}), 20'791);
  for (int64_t days = -800'000; days <= 800'000; days += 13) {
    CivilDate date = CivilFromDays(days);
    ASSERT_EQ(DaysFromCivil(date), days);
    ASSERT_GE(date.day, 1u);
    ASSERT_LE(date.day, DaysInMonth(date.year, date.month));
  }
}

// Compares OffsetAt with glibc's localtime_r, which reads the same zone
// files. setenv("TZ") is safe here because the test runs on one thread.
TEST(TimeZoneTest, OffsetsMatchGlibc) {
  const char* zones[] = {"Europe/Warsaw",     "America/New_York", "Australia/Lord_Howe",
                         "Asia/Kathmandu",    "America/Sao_Paulo", "Pacific/Apia",
                         "America/Nuuk",      "Asia/Jerusalem",    "Africa/Casablanca",
                         "Pacific/Chatham",   "UTC"};
  const char* saved = std::getenv("TZ");
  std::string saved_tz = saved != nullptr ? saved : "";
  for (const char* name : zones) {
    auto zone = TimeZone::Load(name);
    ASSERT_TRUE(zone.ok()) << zone.status().ToString();
    setenv("TZ", (std::string(":") + name).c_str(), 1);
    tzset();
    // Every 3 days and 1 hour and 7 seconds from 1970 to 2100, past the
    // last stored transition so the TZ rule is checked as well.
    for (int64_t t = 0; t < Utc(2100, 1, 1); t += 3 * kSecondsPerDay + 3607) {
      time_t when = static_cast<time_t>(t);
      tm local{};
      ASSERT_NE(localtime_r(&when, &local), nullptr);
      ASSERT_EQ(zone->OffsetAt(t), local.tm_gmtoff) << name << " at " << t;
    }
  }
  if (saved != nullptr) {
    setenv("TZ", saved_tz.c_str(), 1);
  } else {
    unsetenv("TZ");
  }
  tzset();
}

TEST(TimeZoneTest, LocalToUtcRoundTrips) {
  const char* zones[] = {"Europe/Warsaw", "America/New_York", "Australia/Lord_Howe",
                         "Asia/Kathmandu", "Pacific/Apia"};
  std::mt19937_64 random(20261204);
  for (const char* name : zones) {
    auto zone = TimeZone::Load(name);
    ASSERT_TRUE(zone.ok()) << zone.status().ToString();
    for (int i = 0; i < 20'000; ++i) {
      int64_t utc = static_cast<int64_t>(random() % static_cast<uint64_t>(Utc(2090, 1, 1)));
      int64_t local = utc + zone->OffsetAt(utc);
      int64_t back = zone->LocalToUtc(local);
      ASSERT_EQ(back + zone->OffsetAt(back), local) << name << " at " << utc;
      ASSERT_LE(back, utc) << name << " at " << utc;  // the earlier of two readings
    }
  }
}

TEST(TimeZoneTest, SkippedAndRepeatedLocalTimes) {
  auto zone = TimeZone::Load("Europe/Warsaw");
  ASSERT_TRUE(zone.ok()) << zone.status().ToString();
  // 2026-03-29: clocks go from 02:00 CET to 03:00 CEST, so 02:30 is read
  // with the CET offset and lands at 03:30 CEST.
  EXPECT_EQ(zone->LocalToUtc(Utc(2026, 3, 29, 2, 30)), Utc(2026, 3, 29, 1, 30));
  // 2026-10-25: 02:30 happens twice; the CEST reading comes first.
  EXPECT_EQ(zone->LocalToUtc(Utc(2026, 10, 25, 2, 30)), Utc(2026, 10, 25, 0, 30));
  // 2050, beyond the stored transitions: the TZ rule decides.
  EXPECT_EQ(zone->LocalToUtc(Utc(2050, 7, 1, 12, 0)), Utc(2050, 7, 1, 10, 0));
  EXPECT_EQ(zone->LocalToUtc(Utc(2050, 12, 1, 12, 0)), Utc(2050, 12, 1, 11, 0));
}

TEST(TimeZoneTest, LoadRejectsBadNames) {
  const char* bad[] = {"", "../etc/passwd", "/etc/localtime", "Europe/../../etc/passwd",
                       "No/Such_Zone", "Europe/Warsaw/", "Europe//Warsaw", "Bad Name"};
  for (const char* name : bad) {
    auto zone = TimeZone::Load(name);
    ASSERT_FALSE(zone.ok()) << name;
    EXPECT_EQ(zone.status().code(), StatusCode::kInvalidArgument) << name;
  }
  auto utc = TimeZone::Load("UTC");
  ASSERT_TRUE(utc.ok());
  EXPECT_EQ(utc->OffsetAt(kNow), 0);
}

TEST(TimeZoneTest, FromTzifRejectsBrokenData) {
  EXPECT_FALSE(TimeZone::FromTzif("x", "").ok());
  EXPECT_FALSE(TimeZone::FromTzif("x", "TZif2").ok());
  EXPECT_FALSE(TimeZone::FromTzif("x", std::string(44, '\0')).ok());
  std::string header = "TZif2" + std::string(15, '\0');
  // Counts: isut, isstd, leap, time = 0; type = 1; char = 4; then too few bytes.
  header += std::string(16, '\0') + std::string("\0\0\0\1\0\0\0\4", 8);
  EXPECT_FALSE(TimeZone::FromTzif("x", header).ok());
}

TEST(PosixRuleTest, ParsesTzdataFooters) {
  auto cet = TimeZone::ParsePosixRule("CET-1CEST,M3.5.0,M10.5.0/3");
  ASSERT_TRUE(cet.has_value());
  EXPECT_EQ(cet->std_offset, 3600);
  EXPECT_EQ(cet->dst_offset, 7200);
  EXPECT_EQ(cet->dst_start.month, 3);
  EXPECT_EQ(cet->dst_start.week, 5);
  EXPECT_EQ(cet->dst_end.time, 3 * 3600);

  auto nepal = TimeZone::ParsePosixRule("<+0545>-5:45");
  ASSERT_TRUE(nepal.has_value());
  EXPECT_EQ(nepal->std_offset, 5 * 3600 + 45 * 60);
  EXPECT_FALSE(nepal->has_dst);

  auto us = TimeZone::ParsePosixRule("EST5EDT");
  ASSERT_TRUE(us.has_value());
  EXPECT_EQ(us->std_offset, -5 * 3600);
  EXPECT_EQ(us->dst_start.month, 3);

  auto nuuk = TimeZone::ParsePosixRule("<-02>2<-01>,M3.5.0/-1,M10.5.0/0");
  ASSERT_TRUE(nuuk.has_value());
  EXPECT_EQ(nuuk->dst_start.time, -3600);

  auto israel = TimeZone::ParsePosixRule("IST-2IDT,M3.4.4/26,M10.5.0");
  ASSERT_TRUE(israel.has_value());
  EXPECT_EQ(israel->dst_start.time, 26 * 3600);

  auto julian = TimeZone::ParsePosixRule("XXX3YYY,J60/0,300");
  ASSERT_TRUE(julian.has_value());
  EXPECT_EQ(julian->dst_start.kind, TimeZone::RuleDate::Kind::kJulianNoLeap);
  EXPECT_EQ(julian->dst_end.kind, TimeZone::RuleDate::Kind::kZeroBasedDay);

  const char* bad[] = {"", "CE-1", "CET", "CET-1CEST,M3.5.0", "CET-1CEST,M13.5.0,M10.5.0",
                       "CET-1CEST,M3.6.0,M10.5.0", "CET-1CEST,J0,J1", "<+01", "CET-1CEST,M3.5.0,M10.5.0x"};
  for (const char* text : bad) {
    EXPECT_FALSE(TimeZone::ParsePosixRule(text).has_value()) << text;
  }
}

// ---- FEAT, OPTS MLST, URLs and settings

TEST(FeatReplyTest, PureFtpdFeatures) {
  std::vector<std::string> replies = {
      "220 Welcome",
      "230 OK. Current directory is /",
      "211-Extensions supported:",
      " UTF8",
      " EPRT",
      " MLST type*;size*;sizd*;modify*;UNIX.mode*;UNIX.uid*;UNIX.gid*;unique*;",
      " MLSD",
      " AUTH TLS",
      " EPSV",
      "211 End.",
  };
  FtpFeatures features = ParseFeatReply(replies);
  EXPECT_TRUE(features.feat);
  EXPECT_TRUE(features.mlsd);
  EXPECT_TRUE(features.utf8);
  EXPECT_TRUE(features.auth_tls);
  EXPECT_EQ(MlstOptsArgument(features.mlst_facts), "");
}

TEST(FeatReplyTest, NoFeatReply) {
  FtpFeatures features = ParseFeatReply({"220 Hi", "500 Unknown command"});
  EXPECT_FALSE(features.feat);
  EXPECT_FALSE(features.mlsd);
}

TEST(FeatReplyTest, OptsMlstTurnsOnMissingFacts) {
  EXPECT_EQ(MlstOptsArgument("type*;perm*;size*;modify*;unique;unix.mode;unix.uid;"),
            "type;size;modify;unique;unix.mode;");
  EXPECT_EQ(MlstOptsArgument("Type*;Size;Modify*;"), "Type;Size;Modify;");
  EXPECT_EQ(MlstOptsArgument(""), "");
}

RemoteOptions Options(std::string url, std::string password_file = "/run/secret") {
  RemoteOptions options;
  options.url = std::move(url);
  options.password_file = std::move(password_file);
  return options;
}

TEST(FtpSettingsTest, SplitsUrl) {
  auto settings = ParseFtpSettings(Options("ftp://reader@ftp.example:2121/drop/in/"));
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_FALSE(settings->tls);
  EXPECT_EQ(settings->host, "ftp.example");
  EXPECT_EQ(settings->port, 2121);
  EXPECT_EQ(settings->user, "reader");
  EXPECT_EQ(settings->root_path, "drop/in");
  EXPECT_EQ(settings->Describe(), "ftp://reader@ftp.example:2121/drop/in");

  auto tls = ParseFtpSettings(Options("ftps://us%40er@[::1]/%2Fsrv/a%20b"));
  ASSERT_TRUE(tls.ok()) << tls.status().ToString();
  EXPECT_TRUE(tls->tls);
  EXPECT_EQ(tls->host, "[::1]");
  EXPECT_EQ(tls->port, 21);
  EXPECT_EQ(tls->user, "us@er");
  EXPECT_EQ(tls->root_path, "/srv/a b");

  auto anonymous = ParseFtpSettings(Options("ftp://ftp.example", ""));
  ASSERT_TRUE(anonymous.ok());
  EXPECT_EQ(anonymous->user, "");
  EXPECT_EQ(anonymous->root_path, "");
}

TEST(FtpSettingsTest, RejectsBadValues) {
  struct Case {
    RemoteOptions options;
    const char* expected;
  };
  RemoteOptions with_ca = Options("ftp://u@h/x");
  with_ca.ca_file = "/etc/ca.pem";
  const Case cases[] = {
      {Options("sftp://u@h/x"), "not ftp or ftps"},
      {Options("ftp://u:hunter2@h/x"), "contains a password"},
      {Options("ftp://u@h/x", ""), "password_file is not set"},
      {Options("ftp://u@h/x?type=d"), "query or fragment"},
      {Options("ftp://u@h:99999/x"), "not a valid URL"},
      {Options("not a url"), "not a valid URL"},
      {with_ca, "ca_file"},
  };
  for (const Case& c : cases) {
    auto settings = ParseFtpSettings(c.options);
    ASSERT_FALSE(settings.ok()) << c.options.url;
    EXPECT_EQ(settings.status().code(), StatusCode::kInvalidArgument) << c.options.url;
    const std::string& message = settings.status().message();
    EXPECT_NE(message.find(c.expected), std::string::npos) << message;
    EXPECT_EQ(message.find("hunter2"), std::string::npos) << message;
  }
}

TEST(FtpSettingsTest, UnknownTimeZoneRejected) {
  RemoteOptions options = Options("ftp://u@h/x");
  options.server_timezone = "Mars/Olympus";
  auto source = MakeFtpSource(options);
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(source.status().message().find("server_timezone"), std::string::npos);
}

}  // namespace
}  // namespace dirindex
