#include <stdlib.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "api/config.h"
#include "tests/test_support.h"

namespace dirindex {
namespace {

using std::chrono::milliseconds;
using testing::ScratchDir;
using testing::WriteFile;

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(ParseDuration, AcceptsEveryUnit) {
  EXPECT_EQ(ParseDuration("500ms").value(), milliseconds(500));
  EXPECT_EQ(ParseDuration("30s").value(), milliseconds(30'000));
  EXPECT_EQ(ParseDuration("5m").value(), milliseconds(300'000));
  EXPECT_EQ(ParseDuration("2h").value(), milliseconds(7'200'000));
  EXPECT_EQ(ParseDuration("1d").value(), milliseconds(86'400'000));
  EXPECT_EQ(ParseDuration("0s").value(), milliseconds(0));
}

TEST(ParseDuration, MissingUnitSuggestsFix) {
  Result<milliseconds> parsed = ParseDuration("30");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(parsed.status().message(), "'30'"));
  EXPECT_TRUE(Contains(parsed.status().message(), "\"30s\""));
}

TEST(ParseDuration, RejectsMalformedValues) {
  for (const char* text : {"", "s", "-1s", "5x", "1.5s", "30 sec", "ms5",
                           "99999999999999999999s", "999999999d"}) {
    Result<milliseconds> parsed = ParseDuration(text);
    EXPECT_FALSE(parsed.ok()) << "accepted '" << text << "'";
    if (!parsed.ok()) {
      EXPECT_TRUE(
          Contains(parsed.status().message(), "'" + std::string(text) + "'"))
          << parsed.status().message();
    }
  }
}

TEST(ParseByteSize, AcceptsUnitsAndPlainCounts) {
  EXPECT_EQ(ParseByteSize("1048576").value(), 1048576u);
  EXPECT_EQ(ParseByteSize("1GiB").value(), uint64_t{1} << 30);
  EXPECT_EQ(ParseByteSize("512MiB").value(), uint64_t{512} << 20);
  EXPECT_EQ(ParseByteSize("4 KiB").value(), 4096u);
  EXPECT_EQ(ParseByteSize("2TiB").value(), uint64_t{2} << 40);
  EXPECT_EQ(ParseByteSize("10kB").value(), 10'000u);
  EXPECT_EQ(ParseByteSize("3GB").value(), 3'000'000'000u);
  EXPECT_EQ(ParseByteSize("7B").value(), 7u);
}

TEST(ParseByteSize, RejectsMalformedValues) {
  for (const char* text :
       {"", "GiB", "0", "1XB", "-1GiB", "1.5GiB", "99999999999TiB"}) {
    Result<uint64_t> parsed = ParseByteSize(text);
    EXPECT_FALSE(parsed.ok()) << "accepted '" << text << "'";
  }
}

TEST(ParseConfig, EmptyTextGivesDefaults) {
  Result<ParsedConfig> parsed = ParseConfig("", "empty.toml");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  const Config& config = parsed->config;
  EXPECT_EQ(config.listen, "127.0.0.1:8750");
  EXPECT_EQ(config.index_dir, "");
  EXPECT_EQ(config.map_size_bytes, uint64_t{256} << 20);
  EXPECT_EQ(config.retention_changes, 1'000'000u);
  EXPECT_EQ(config.token_file, "");
  EXPECT_EQ(config.log_level, "info");
  EXPECT_TRUE(config.roots.empty());
  EXPECT_TRUE(parsed->warnings.empty());
}

TEST(ParseConfig, ReadsEveryKey) {
  const char* text = R"(
listen = "127.0.0.1:9000"
index = "/var/lib/dirindex"
map_size = "1GiB"
retention = 5000
token_file = "/etc/dirindex/token"
log_level = "debug"

[[root]]
name = "invoices"
source = "file:///data/invoices"
rescan_interval = "15s"

[[root]]
name = "plain-path_1.x"
source = "/data/plain/"
)";
  Result<ParsedConfig> parsed = ParseConfig(text, "dirindex.toml");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  const Config& config = parsed->config;
  EXPECT_EQ(config.listen, "127.0.0.1:9000");
  EXPECT_EQ(config.index_dir, "/var/lib/dirindex");
  EXPECT_EQ(config.map_size_bytes, uint64_t{1} << 30);
  EXPECT_EQ(config.retention_changes, 5000u);
  EXPECT_EQ(config.token_file, "/etc/dirindex/token");
  EXPECT_EQ(config.log_level, "debug");
  ASSERT_EQ(config.roots.size(), 2u);
  EXPECT_EQ(config.roots[0].name, "invoices");
  EXPECT_EQ(config.roots[0].source, "file:///data/invoices");
  EXPECT_EQ(config.roots[0].local_path, "/data/invoices");
  EXPECT_EQ(config.roots[0].rescan_interval, milliseconds(15'000));
  EXPECT_EQ(config.roots[1].name, "plain-path_1.x");
  EXPECT_EQ(config.roots[1].local_path, "/data/plain");
  EXPECT_EQ(config.roots[1].rescan_interval, milliseconds(30'000));
}

TEST(ParseConfig, MapSizeAcceptsInteger) {
  Result<ParsedConfig> parsed = ParseConfig("map_size = 1048576", "a.toml");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->config.map_size_bytes, 1048576u);
}

TEST(ParseConfig, UnknownKeyNamesKeyFileAndLine) {
  Result<ParsedConfig> parsed =
      ParseConfig("listen = \"127.0.0.1:1\"\n\nlisten_port = 80\n", "my.toml");
  ASSERT_FALSE(parsed.ok());
  const std::string& message = parsed.status().message();
  EXPECT_TRUE(Contains(message, "my.toml:3")) << message;
  EXPECT_TRUE(Contains(message, "'listen_port'")) << message;
  EXPECT_TRUE(Contains(message, "unknown")) << message;
}

TEST(ParseConfig, UnknownRootKeyNamesKeyAndRoot) {
  const char* text =
      "[[root]]\nname = \"a\"\nsource = \"/a\"\nrescan = \"30s\"\n";
  Result<ParsedConfig> parsed = ParseConfig(text, "r.toml");
  ASSERT_FALSE(parsed.ok());
  const std::string& message = parsed.status().message();
  EXPECT_TRUE(Contains(message, "r.toml:4")) << message;
  EXPECT_TRUE(Contains(message, "'rescan'")) << message;
  EXPECT_TRUE(Contains(message, "root 'a'")) << message;
}

TEST(ParseConfig, BadDurationNamesValueAndLine) {
  const char* text =
      "[[root]]\nname = \"a\"\nsource = \"/a\"\nrescan_interval = \"30\"\n";
  Result<ParsedConfig> parsed = ParseConfig(text, "d.toml");
  ASSERT_FALSE(parsed.ok());
  const std::string& message = parsed.status().message();
  EXPECT_TRUE(Contains(message, "d.toml:4")) << message;
  EXPECT_TRUE(Contains(message, "'30'")) << message;
  EXPECT_TRUE(Contains(message, "\"30s\"")) << message;
}

TEST(ParseConfig, ZeroRescanIntervalRejected) {
  const char* text =
      "[[root]]\nname = \"a\"\nsource = \"/a\"\nrescan_interval = \"0s\"\n";
  Result<ParsedConfig> parsed = ParseConfig(text, "z.toml");
  ASSERT_FALSE(parsed.ok());
  EXPECT_TRUE(Contains(parsed.status().message(), "rescan_interval"));
}

TEST(ParseConfig, DuplicateRootNameRejected) {
  const char* text =
      "[[root]]\nname = \"a\"\nsource = \"/a\"\n\n"
      "[[root]]\nname = \"a\"\nsource = \"/b\"\n";
  Result<ParsedConfig> parsed = ParseConfig(text, "dup.toml");
  ASSERT_FALSE(parsed.ok());
  const std::string& message = parsed.status().message();
  EXPECT_TRUE(Contains(message, "dup.toml:5")) << message;
  EXPECT_TRUE(Contains(message, "'a' is used twice")) << message;
}

TEST(ParseConfig, InvalidRootNameRejected) {
  const char* text = "[[root]]\nname = \"my files\"\nsource = \"/a\"\n";
  Result<ParsedConfig> parsed = ParseConfig(text, "n.toml");
  ASSERT_FALSE(parsed.ok());
  EXPECT_TRUE(Contains(parsed.status().message(), "'my files'"));
  EXPECT_TRUE(Contains(parsed.status().message(), "n.toml:2"));
}

TEST(ParseConfig, MissingNameOrSourceRejected) {
  Result<ParsedConfig> no_name =
      ParseConfig("[[root]]\nsource = \"/a\"\n", "m.toml");
  ASSERT_FALSE(no_name.ok());
  EXPECT_TRUE(Contains(no_name.status().message(), "no 'name'"));

  Result<ParsedConfig> no_source =
      ParseConfig("[[root]]\nname = \"a\"\n", "m.toml");
  ASSERT_FALSE(no_source.ok());
  EXPECT_TRUE(Contains(no_source.status().message(), "no 'source'"));
}

TEST(ParseConfig, WrongTypeNamesType) {
  Result<ParsedConfig> parsed = ParseConfig("listen = 8750\n", "t.toml");
  ASSERT_FALSE(parsed.ok());
  const std::string& message = parsed.status().message();
  EXPECT_TRUE(Contains(message, "t.toml:1")) << message;
  EXPECT_TRUE(Contains(message, "must be a string")) << message;
  EXPECT_TRUE(Contains(message, "an integer")) << message;
}

TEST(ParseConfig, RootAsPlainTableRejected) {
  Result<ParsedConfig> parsed =
      ParseConfig("[root]\nname = \"a\"\nsource = \"/a\"\n", "p.toml");
  ASSERT_FALSE(parsed.ok());
  EXPECT_TRUE(Contains(parsed.status().message(), "[[root]]"));
}

TEST(ParseConfig, InvalidTomlReportsLine) {
  Result<ParsedConfig> parsed =
      ParseConfig("listen = \"a\"\nindex = \n", "bad.toml");
  ASSERT_FALSE(parsed.ok());
  EXPECT_TRUE(Contains(parsed.status().message(), "bad.toml:2"))
      << parsed.status().message();
  EXPECT_TRUE(Contains(parsed.status().message(), "invalid TOML"));
}

TEST(ParseConfig, InvalidListenAndLogLevelRejected) {
  Result<ParsedConfig> listen =
      ParseConfig("listen = \"127.0.0.1\"\n", "l.toml");
  ASSERT_FALSE(listen.ok());
  EXPECT_TRUE(Contains(listen.status().message(), "no port"));

  Result<ParsedConfig> level = ParseConfig("log_level = \"loud\"\n", "l.toml");
  ASSERT_FALSE(level.ok());
  EXPECT_TRUE(Contains(level.status().message(), "'loud'"));

  Result<ParsedConfig> index = ParseConfig("index = \"state\"\n", "l.toml");
  ASSERT_FALSE(index.ok());
  EXPECT_TRUE(Contains(index.status().message(), "absolute"));
}

TEST(ParseConfig, WebhookTablesWarnAndOthersDoNot) {
  const char* text = R"(
[[root]]
name = "invoices"
source = "file:///data/invoices"
settle = "5s"
include = ["*.xml"]
exclude = ["*.part", ".*"]
watch = true
full_rescan = "02:00"
identity_file = "/k"
known_hosts = "/h"
password_file = "/p"
server_timezone = "Europe/Warsaw"

[[root.webhook]]
url = "http://127.0.0.1:17010/hook"
)";
  Result<ParsedConfig> parsed = ParseConfig(text, "w.toml");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  // Only [[root.webhook]] is still a feature this version lacks.
  ASSERT_EQ(parsed->warnings.size(), 1u);
  EXPECT_TRUE(Contains(parsed->warnings[0], "'webhook'"));
  EXPECT_TRUE(Contains(parsed->warnings[0], "ignored"));
  EXPECT_TRUE(Contains(parsed->warnings[0], "w.toml:")) << parsed->warnings[0];
  EXPECT_TRUE(Contains(parsed->warnings[0], "root 'invoices'"));
}

TEST(ParseConfig, RootFeatureKeysDefault) {
  Result<ParsedConfig> parsed =
      ParseConfig("[[root]]\nname = \"a\"\nsource = \"/a\"\n", "d.toml");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  const RootConfig& root = parsed->config.roots.at(0);
  EXPECT_EQ(root.settle, milliseconds(0));
  EXPECT_TRUE(root.include.empty());
  EXPECT_TRUE(root.exclude.empty());
  EXPECT_TRUE(root.watch);
  EXPECT_EQ(root.max_watches, 0u);
  EXPECT_EQ(root.full_rescan.kind, FullRescanSchedule::Kind::kNone);
  EXPECT_EQ(root.full_rescan.text, "");
}

TEST(ParseConfig, ReadsRootFeatureKeys) {
  const char* text = R"(
[[root]]
name = "invoices"
source = "/data/invoices"
settle = "2s"
include = ["*.xml", "!*.part", "!.*"]
exclude = ["tmp", "archive/*/old"]
watch = false
max_watches = 50000
full_rescan = "6h"

[[root]]
name = "outbound"
source = "/data/outbound"
full_rescan = "23:59"
include = []
)";
  Result<ParsedConfig> parsed = ParseConfig(text, "f.toml");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_TRUE(parsed->warnings.empty());
  ASSERT_EQ(parsed->config.roots.size(), 2u);

  const RootConfig& invoices = parsed->config.roots[0];
  EXPECT_EQ(invoices.settle, milliseconds(2'000));
  EXPECT_EQ(invoices.include,
            (std::vector<std::string>{"*.xml", "!*.part", "!.*"}));
  EXPECT_EQ(invoices.exclude,
            (std::vector<std::string>{"tmp", "archive/*/old"}));
  EXPECT_FALSE(invoices.watch);
  EXPECT_EQ(invoices.max_watches, 50'000u);
  EXPECT_EQ(invoices.full_rescan.kind, FullRescanSchedule::Kind::kInterval);
  EXPECT_EQ(invoices.full_rescan.interval, milliseconds(6 * 3'600'000));
  EXPECT_EQ(invoices.full_rescan.text, "6h");

  const RootConfig& outbound = parsed->config.roots[1];
  EXPECT_EQ(outbound.full_rescan.kind, FullRescanSchedule::Kind::kDaily);
  EXPECT_EQ(outbound.full_rescan.minute_of_day, 23 * 60 + 59);
  EXPECT_EQ(outbound.full_rescan.text, "23:59");
  EXPECT_TRUE(outbound.include.empty());
  EXPECT_TRUE(outbound.watch);
}

TEST(ParseConfig, WatchOnRemoteRootAccepted) {
  const char* text =
      "[[root]]\nname = \"p\"\nsource = \"sftp://u@127.0.0.1/x\"\n"
      "watch = true\n"
      "[[root]]\nname = \"q\"\nsource = \"ftp://u@127.0.0.1/x\"\n"
      "watch = false\n";
  Result<ParsedConfig> parsed = ParseConfig(text, "r.toml");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_TRUE(parsed->warnings.empty());
  EXPECT_TRUE(parsed->config.roots[0].watch);
  EXPECT_FALSE(parsed->config.roots[1].watch);
}

// Parses one root with `line` as its fourth line and returns the error.
std::string RootKeyError(const std::string& line) {
  std::string text =
      "[[root]]\nname = \"a\"\nsource = \"/a\"\n" + line + "\n";
  Result<ParsedConfig> parsed = ParseConfig(text, "k.toml");
  EXPECT_FALSE(parsed.ok()) << "accepted: " << line;
  if (parsed.ok()) return "";
  EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(parsed.status().message(), "k.toml:4"))
      << parsed.status().message();
  return parsed.status().message();
}

TEST(ParseConfig, PatternStringInsteadOfArrayShowsArrayForm) {
  std::string message = RootKeyError("include = \"*.xml\"");
  EXPECT_TRUE(Contains(message, "'include'")) << message;
  EXPECT_TRUE(Contains(message, "must be an array of strings")) << message;
  EXPECT_TRUE(Contains(message, "include = [\"*.xml\"]")) << message;
  EXPECT_TRUE(Contains(message, "but is a string")) << message;

  message = RootKeyError("exclude = 5");
  EXPECT_TRUE(Contains(message, "'exclude'")) << message;
  EXPECT_TRUE(Contains(message, "exclude = [\"*.xml\"]")) << message;
  EXPECT_TRUE(Contains(message, "an integer")) << message;
}

TEST(ParseConfig, PatternArrayWithNonStringRejected) {
  std::string message = RootKeyError("exclude = [\"*.part\", 5]");
  EXPECT_TRUE(Contains(message, "'exclude'")) << message;
  EXPECT_TRUE(Contains(message, "element 2 is an integer")) << message;
}

TEST(ParseConfig, BadGlobNamesPatternRootAndLine) {
  std::string message = RootKeyError("include = [\"*.xml\", \"!\"]");
  EXPECT_TRUE(Contains(message, "'include'")) << message;
  EXPECT_TRUE(Contains(message, "root 'a'")) << message;
  EXPECT_TRUE(Contains(message, "pattern '!'")) << message;
  EXPECT_TRUE(Contains(message, "'!*.part'")) << message;

  message = RootKeyError("exclude = [\"\"]");
  EXPECT_TRUE(Contains(message, "exclude pattern ''")) << message;
  EXPECT_TRUE(Contains(message, "is empty")) << message;

  message = RootKeyError("exclude = [\"logs/**/*.gz\"]");
  EXPECT_TRUE(Contains(message, "'logs/**/*.gz'")) << message;
}

TEST(ParseConfig, SettleChecked) {
  for (const char* good : {"0s", "500ms", "2s", "1d", "24h"}) {
    std::string text = "[[root]]\nname = \"a\"\nsource = \"/a\"\nsettle = \"" +
                       std::string(good) + "\"\n";
    Result<ParsedConfig> parsed = ParseConfig(text, "s.toml");
    EXPECT_TRUE(parsed.ok()) << good << ": " << parsed.status().ToString();
  }

  std::string message = RootKeyError("settle = \"25h\"");
  EXPECT_TRUE(Contains(message, "'settle'")) << message;
  EXPECT_TRUE(Contains(message, "1 day")) << message;

  message = RootKeyError("settle = \"2\"");
  EXPECT_TRUE(Contains(message, "\"2s\"")) << message;

  message = RootKeyError("settle = 2");
  EXPECT_TRUE(Contains(message, "must be a string")) << message;
}

TEST(ParseConfig, WatchMustBeBoolean) {
  std::string message = RootKeyError("watch = \"no\"");
  EXPECT_TRUE(Contains(message, "'watch'")) << message;
  EXPECT_TRUE(Contains(message, "true or false")) << message;
  EXPECT_TRUE(Contains(message, "a string")) << message;

  message = RootKeyError("watch = 1");
  EXPECT_TRUE(Contains(message, "an integer")) << message;
}

TEST(ParseConfig, MaxWatchesChecked) {
  const std::string root = "[[root]]\nname = \"a\"\nsource = \"/a\"\n";
  Result<ParsedConfig> zero = ParseConfig(root + "max_watches = 0\n", "m.toml");
  ASSERT_TRUE(zero.ok()) << zero.status().ToString();
  EXPECT_EQ(zero->config.roots[0].max_watches, 0u);
  Result<ParsedConfig> top =
      ParseConfig(root + "max_watches = 4294967295\n", "m.toml");
  ASSERT_TRUE(top.ok()) << top.status().ToString();
  EXPECT_EQ(top->config.roots[0].max_watches, 4'294'967'295u);

  for (const char* line : {"max_watches = -1", "max_watches = 4294967296",
                           "max_watches = \"50000\"", "max_watches = 1.5"}) {
    std::string message = RootKeyError(line);
    EXPECT_TRUE(Contains(message, "'max_watches'")) << message;
    EXPECT_TRUE(Contains(message, "from 0")) << message;
  }
}

TEST(ParseConfig, FullRescanChecked) {
  std::string message = RootKeyError("full_rescan = \"25:00\"");
  EXPECT_TRUE(Contains(message, "'full_rescan'")) << message;
  EXPECT_TRUE(Contains(message, "root 'a'")) << message;
  EXPECT_TRUE(Contains(message, "'25:00'")) << message;

  message = RootKeyError("full_rescan = \"30s\"");
  EXPECT_TRUE(Contains(message, "1 minute")) << message;

  message = RootKeyError("full_rescan = 6");
  EXPECT_TRUE(Contains(message, "must be a string")) << message;
  EXPECT_TRUE(Contains(message, "\"02:00\"")) << message;

  Result<ParsedConfig> off = ParseConfig(
      "[[root]]\nname = \"a\"\nsource = \"/a\"\nfull_rescan = \"off\"\n",
      "o.toml");
  ASSERT_TRUE(off.ok()) << off.status().ToString();
  EXPECT_EQ(off->config.roots[0].full_rescan.kind,
            FullRescanSchedule::Kind::kNone);
  EXPECT_EQ(off->config.roots[0].full_rescan.text, "off");
}

TEST(ParseConfig, UnknownRootKeyListsFeatureKeys) {
  std::string message = RootKeyError("includes = [\"*.xml\"]");
  for (const char* key : {"settle", "include", "exclude", "watch",
                          "max_watches", "full_rescan", "webhook"}) {
    EXPECT_TRUE(Contains(message, key)) << key << ": " << message;
  }
}

TEST(ParseFullRescan, AcceptsIntervalsTimesAndOff) {
  using Kind = FullRescanSchedule::Kind;
  struct Case {
    const char* text;
    Kind kind;
    milliseconds interval;
    int minute_of_day;
  };
  for (const Case& c : std::vector<Case>{
           {"", Kind::kNone, milliseconds(0), 0},
           {"off", Kind::kNone, milliseconds(0), 0},
           {"OFF", Kind::kNone, milliseconds(0), 0},
           {"1m", Kind::kInterval, milliseconds(60'000), 0},
           {"60s", Kind::kInterval, milliseconds(60'000), 0},
           {"30m", Kind::kInterval, milliseconds(1'800'000), 0},
           {"6h", Kind::kInterval, milliseconds(21'600'000), 0},
           {"1d", Kind::kInterval, milliseconds(86'400'000), 0},
           {"00:00", Kind::kDaily, milliseconds(0), 0},
           {"02:00", Kind::kDaily, milliseconds(0), 120},
           {"2:30", Kind::kDaily, milliseconds(0), 150},
           {"23:59", Kind::kDaily, milliseconds(0), 1439},
       }) {
    Result<FullRescanSchedule> schedule = ParseFullRescan(c.text);
    ASSERT_TRUE(schedule.ok()) << c.text << ": " << schedule.status().ToString();
    EXPECT_EQ(schedule->kind, c.kind) << c.text;
    EXPECT_EQ(schedule->interval, c.interval) << c.text;
    EXPECT_EQ(schedule->minute_of_day, c.minute_of_day) << c.text;
    EXPECT_EQ(schedule->text, c.text);
  }
}

TEST(ParseFullRescan, RejectsMalformedValues) {
  for (const char* text :
       {"30s", "59999ms", "0m", "6", "-1h", "soon", "24:00", "12:60", "2:5",
        "123:00", ":30", "12:", "12:00:00", "1a:00", " 02:00", "offf"}) {
    Result<FullRescanSchedule> schedule = ParseFullRescan(text);
    ASSERT_FALSE(schedule.ok()) << "accepted '" << text << "'";
    EXPECT_EQ(schedule.status().code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(
        Contains(schedule.status().message(), "'" + std::string(text) + "'"))
        << schedule.status().message();
  }
}

TEST(ParseConfig, RemoteSourceReadsItsKeys) {
  std::string text =
      "[[root]]\nname = \"p\"\nsource = \"sftp://ingest@127.0.0.1:2222/out\"\n"
      "identity_file = \"/k/id\"\nknown_hosts = \"/k/kh\"\n"
      "trust_on_first_use = true\nmax_depth = 3\nconnect_timeout = \"5s\"\n"
      "[[root]]\nname = \"f\"\nsource = \"ftp://reader@127.0.0.1/drop\"\n"
      "password_file = \"/k/pw\"\nserver_timezone = \"Europe/Warsaw\"\n";
  Result<ParsedConfig> parsed = ParseConfig(text, "s.toml");
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  ASSERT_EQ(parsed->config.roots.size(), 2u);
  const RootConfig& sftp = parsed->config.roots[0];
  EXPECT_TRUE(sftp.remote);
  EXPECT_EQ(sftp.remote_options.url, "sftp://ingest@127.0.0.1:2222/out");
  EXPECT_EQ(sftp.remote_options.identity_file, "/k/id");
  EXPECT_EQ(sftp.remote_options.known_hosts, "/k/kh");
  EXPECT_TRUE(sftp.remote_options.trust_on_first_use);
  EXPECT_EQ(sftp.remote_options.max_depth, 3u);
  EXPECT_EQ(sftp.remote_options.connect_timeout.count(), 5000);
  const RootConfig& ftp = parsed->config.roots[1];
  EXPECT_TRUE(ftp.remote);
  EXPECT_EQ(ftp.remote_options.password_file, "/k/pw");
  EXPECT_EQ(ftp.remote_options.server_timezone, "Europe/Warsaw");
}

TEST(ParseConfig, RemoteKeyTypesChecked) {
  Result<ParsedConfig> parsed = ParseConfig(
      "[[root]]\nname = \"p\"\nsource = \"sftp://u@127.0.0.1/x\"\nmax_depth = -1\n",
      "s.toml");
  ASSERT_FALSE(parsed.ok());
  EXPECT_TRUE(Contains(parsed.status().message(), "max_depth")) << parsed.status().message();
}

TEST(LocalPathOfSource, AcceptsFileUrlsAndAbsolutePaths) {
  EXPECT_EQ(LocalPathOfSource("file:///data/in").value(), "/data/in");
  EXPECT_EQ(LocalPathOfSource("FILE:///data/in/").value(), "/data/in");
  EXPECT_EQ(LocalPathOfSource("file:///my%20dir").value(), "/my dir");
  EXPECT_EQ(LocalPathOfSource("/data/100%").value(), "/data/100%");
  EXPECT_EQ(LocalPathOfSource("/").value(), "/");
}

TEST(LocalPathOfSource, RejectsOtherForms) {
  for (const char* source : {"data/in", "", "file://host/data", "file://data",
                             "http://x/y", "s3://bucket/x", "file:///bad%zz"}) {
    Result<std::string> path = LocalPathOfSource(source);
    EXPECT_FALSE(path.ok()) << "accepted '" << source << "'";
  }
}

TEST(ValidateRootName, AcceptsOnlyUrlSafeNames) {
  for (const char* name : {"a", "invoices", "partner-in", "a.b_c-1", "A9"}) {
    EXPECT_TRUE(ValidateRootName(name).ok()) << name;
  }
  for (const char* name :
       {"", ".", "..", "a b", "a/b", "a%b", "caf\xc3\xa9", "a?b"}) {
    EXPECT_FALSE(ValidateRootName(name).ok()) << name;
  }
}

TEST(ParseListenAddress, ParsesHostsAndPorts) {
  ListenAddress v4 = ParseListenAddress("127.0.0.1:8750").value();
  EXPECT_EQ(v4.host, "127.0.0.1");
  EXPECT_EQ(v4.port, 8750);
  EXPECT_TRUE(v4.loopback);

  ListenAddress v6 = ParseListenAddress("[::1]:0").value();
  EXPECT_EQ(v6.host, "::1");
  EXPECT_EQ(v6.port, 0);
  EXPECT_TRUE(v6.loopback);

  ListenAddress any = ParseListenAddress("0.0.0.0:80").value();
  EXPECT_FALSE(any.loopback);
  EXPECT_FALSE(ParseListenAddress("[::]:80").value().loopback);
  EXPECT_TRUE(ParseListenAddress("127.1.2.3:80").value().loopback);
  EXPECT_EQ(ParseListenAddress("localhost:1").value().host, "127.0.0.1");
}

TEST(ParseListenAddress, RejectsMalformedAddresses) {
  for (const char* text :
       {"127.0.0.1", "example.com:80", ":80", "127.0.0.1:70000", "127.0.0.1:x",
        "::1:80", "[::1]80", "127.0.0.1:"}) {
    EXPECT_FALSE(ParseListenAddress(text).ok()) << text;
  }
}

TEST(ParseIntervalFlag, AcceptsSecondsAndDurations) {
  EXPECT_EQ(ParseIntervalFlag("30").value(), milliseconds(30'000));
  EXPECT_EQ(ParseIntervalFlag("500ms").value(), milliseconds(500));
  EXPECT_FALSE(ParseIntervalFlag("0").ok());
  EXPECT_FALSE(ParseIntervalFlag("-5").ok());
  EXPECT_FALSE(ParseIntervalFlag("soon").ok());
}

TEST(LoadConfigFile, ReadsFileAndNamesMissingOne) {
  ScratchDir scratch;
  std::string path = scratch.Sub("dirindex.toml");
  WriteFile(path, "listen = \"127.0.0.1:9\"\nbogus = 1\n");
  Result<ParsedConfig> parsed = LoadConfigFile(path);
  ASSERT_FALSE(parsed.ok());
  EXPECT_TRUE(Contains(parsed.status().message(), path + ":2"));

  Result<ParsedConfig> missing = LoadConfigFile(scratch.Sub("none.toml"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(missing.status().message(), "none.toml"));
}

TEST(ReadTokenFile, TrimsAndValidates) {
  ScratchDir scratch;
  WriteFile(scratch.Sub("good"), "  s3cret-token \n second line\n");
  EXPECT_EQ(ReadTokenFile(scratch.Sub("good")).value(), "s3cret-token");

  WriteFile(scratch.Sub("empty"), "\n");
  EXPECT_FALSE(ReadTokenFile(scratch.Sub("empty")).ok());

  WriteFile(scratch.Sub("space"), "two words\n");
  EXPECT_FALSE(ReadTokenFile(scratch.Sub("space")).ok());

  EXPECT_FALSE(ReadTokenFile(scratch.Sub("missing")).ok());
}

// Sets an environment variable for the life of the object, then restores
// the old value.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    const char* old = std::getenv(name);
    had_value_ = old != nullptr;
    if (had_value_) old_value_ = old;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (had_value_) {
      setenv(name_, old_value_.c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  bool had_value_ = false;
  std::string old_value_;
};

TEST(DefaultIndexDir, UsesXdgStateHome) {
  ScopedEnv home("HOME", "/home/someone");
  {
    ScopedEnv state("XDG_STATE_HOME", "/srv/state");
    EXPECT_EQ(DefaultIndexDir(), "/srv/state/dirindex");
  }
  ScopedEnv relative("XDG_STATE_HOME", "relative");
  EXPECT_EQ(DefaultIndexDir(), "/home/someone/.local/state/dirindex");
}

TEST(BuildServeConfig, NamesRootsAfterDirs) {
  ScratchDir scratch;
  testing::MakeDirs(scratch.Sub("in/invoices"));
  testing::MakeDirs(scratch.Sub("out"));
  ServeFlags flags;
  flags.dirs = {scratch.Sub("in/invoices"), scratch.Sub("out/")};
  flags.rescan_interval = "5";
  flags.listen = "127.0.0.1:0";
  flags.index_dir = scratch.Sub("index");

  Result<ParsedConfig> parsed = BuildServeConfig(flags);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  const Config& config = parsed->config;
  EXPECT_EQ(config.listen, "127.0.0.1:0");
  EXPECT_EQ(config.index_dir, scratch.Sub("index"));
  ASSERT_EQ(config.roots.size(), 2u);
  EXPECT_EQ(config.roots[0].name, "invoices");
  EXPECT_EQ(config.roots[1].name, "out");
  EXPECT_EQ(config.roots[1].rescan_interval, milliseconds(5'000));
  EXPECT_EQ(config.roots[0].local_path.front(), '/');
}

TEST(BuildServeConfig, DuplicateDirNamesRejected) {
  ScratchDir scratch;
  testing::MakeDirs(scratch.Sub("a/data"));
  testing::MakeDirs(scratch.Sub("b/data"));
  ServeFlags flags;
  flags.dirs = {scratch.Sub("a/data"), scratch.Sub("b/data")};
  Result<ParsedConfig> parsed = BuildServeConfig(flags);
  ASSERT_FALSE(parsed.ok());
  EXPECT_TRUE(Contains(parsed.status().message(), "'data' is used twice"));
  EXPECT_TRUE(Contains(parsed.status().message(), "--config"));
}

TEST(BuildServeConfig, FlagsOverrideFile) {
  ScratchDir scratch;
  std::string path = scratch.Sub("c.toml");
  WriteFile(path, "listen = \"127.0.0.1:1111\"\nindex = \"/from/file\"\n");
  ServeFlags flags;
  flags.config_file = path;
  flags.listen = "127.0.0.1:2222";
  Result<ParsedConfig> parsed = BuildServeConfig(flags);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->config.listen, "127.0.0.1:2222");
  EXPECT_EQ(parsed->config.index_dir, "/from/file");
}

TEST(BuildServeConfig, MissingDirRejected) {
  ScratchDir scratch;
  ServeFlags flags;
  flags.dirs = {scratch.Sub("absent")};
  Result<ParsedConfig> parsed = BuildServeConfig(flags);
  ASSERT_FALSE(parsed.ok());
  EXPECT_TRUE(Contains(parsed.status().message(), "absent"));
}

}  // namespace
}  // namespace dirindex
