// Config: the settings of `dirindex serve`, read from a TOML file or built
// from the command line, and the parsers for their value formats
// (durations, byte sizes, listen addresses, sources).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "index/status.h"
#include "net/remote_source.h"

namespace dirindex {

// FullRescanSchedule is when a root gets a full rescan, whose changes are
// recorded as drift that the ordinary scans missed.
struct FullRescanSchedule {
  enum class Kind : uint8_t {
    kNone,      // no scheduled full rescan
    kInterval,  // every `interval`
    kDaily,     // once a day at `minute_of_day`
  };
  Kind kind = Kind::kNone;
  std::chrono::milliseconds interval{0};  // kInterval only; at least 1 minute
  int minute_of_day = 0;  // kDaily only: local time, 0 (00:00) to 1439 (23:59)
  std::string text;       // the value as written in the config, for the API
};

// Parses a full rescan schedule: an interval of at least one minute ("30m",
// "6h", "1d"), a daily local time as HH:MM on a 24-hour clock ("02:00",
// "23:59"), or "off" or "" for none. "off" is case-insensitive.
Result<FullRescanSchedule> ParseFullRescan(std::string_view text);

// RootConfig is one [[root]] table: a named tree and where to list it.
struct RootConfig {
  std::string name;
  std::string source;      // as written in the config, stored on the root
  std::string local_path;  // absolute path of a local (file://) source
  std::chrono::milliseconds rescan_interval{30'000};
  bool remote = false;         // an sftp://, ftp:// or ftps:// source
  RemoteOptions remote_options;  // settings of a remote source
  // Time a new or changed file must keep its size and mtime before the feed
  // announces it, at most one day. 0 announces at once.
  std::chrono::milliseconds settle{0};
  // Globs of the root's PathFilter, as written. ParseConfig has checked
  // that PathFilter::Create accepts them.
  std::vector<std::string> include;
  std::vector<std::string> exclude;
  // Watch a local root with inotify. A remote root is never watched, so
  // true is ignored there.
  bool watch = true;
  // Maximum inotify watches for this root; 0 means only the kernel's
  // fs.inotify.max_user_watches limits them.
  uint32_t max_watches = 0;
  FullRescanSchedule full_rescan;
};

struct Config {
  std::string listen = "127.0.0.1:8750";
  std::string index_dir;  // empty means DefaultIndexDir()
  uint64_t map_size_bytes = uint64_t{256} << 20;  // initial LMDB map size
  uint64_t retention_changes = 1'000'000;         // changes kept per root
  std::string token_file;  // bearer token for every route but /healthz
  std::string log_level = "info";
  std::vector<RootConfig> roots;
};

// ParsedConfig is a parsed file plus one warning per key that this version
// accepts but ignores ([[root.webhook]] tables).
struct ParsedConfig {
  Config config;
  std::vector<std::string> warnings;
};

// Parses the TOML text of a config file. `file_name` appears in every
// error and warning, together with the line of the offending key.
Result<ParsedConfig> ParseConfig(std::string_view text,
                                 std::string_view file_name);

// Reads and parses the config file at `path`.
Result<ParsedConfig> LoadConfigFile(const std::string& path);

// Parses a duration with a unit: "500ms", "30s", "5m", "2h", "1d".
Result<std::chrono::milliseconds> ParseDuration(std::string_view text);

// Parses a byte size: a plain count ("1048576") or a count with a unit,
// binary ("KiB", "MiB", "GiB", "TiB") or decimal ("kB", "MB", "GB", "TB").
Result<uint64_t> ParseByteSize(std::string_view text);

// Checks a root name: one or more of A-Z, a-z, 0-9, '.', '_' and '-', and
// not "." or "..", so that it fits into a URL path unescaped.
Status ValidateRootName(std::string_view name);

// Checks a source and returns the absolute local path it names. Accepts
// "file:///abs/path" (percent-escapes decoded) and "/abs/path" (taken
// literally). Remote schemes are recognized and rejected as not supported
// by this build.
Result<std::string> LocalPathOfSource(std::string_view source);

// Checks root names for validity and uniqueness.
Status ValidateRoots(const std::vector<RootConfig>& roots);

// Builds the root for `dirindex serve DIR`: DIR resolved to an absolute
// path without symlinks, named after its last component.
Result<RootConfig> RootConfigForDir(const std::string& dir,
                                    std::chrono::milliseconds rescan_interval);

// Parses the --rescan-interval flag: whole seconds ("30") or a duration
// with a unit ("500ms", "2h"). Zero is rejected.
Result<std::chrono::milliseconds> ParseIntervalFlag(std::string_view text);

// ListenAddress is a parsed "ADDRESS:PORT" or "[IPv6]:PORT".
struct ListenAddress {
  std::string host;  // IP literal without brackets
  uint16_t port = 0;
  bool loopback = false;  // 127.0.0.0/8 or ::1
};

// Parses a listen address. The host must be an IP literal or "localhost"
// (read as 127.0.0.1). With port 0 the kernel picks a free port.
Result<ListenAddress> ParseListenAddress(std::string_view text);

// Returns $XDG_STATE_HOME/dirindex, or ~/.local/state/dirindex when
// XDG_STATE_HOME is unset or not absolute.
std::string DefaultIndexDir();

// ServeFlags are the arguments of `dirindex serve`. An empty string means
// the flag was not given.
struct ServeFlags {
  std::vector<std::string> dirs;
  std::string listen;
  std::string index_dir;
  std::string rescan_interval;
  std::string config_file;
};

// Builds the config of `dirindex serve`: the file (if any), overridden by
// the flags, plus one root per DIR argument.
Result<ParsedConfig> BuildServeConfig(const ServeFlags& flags);

// Reads a bearer token file: the first line, without surrounding
// whitespace. An empty token is an error.
Result<std::string> ReadTokenFile(const std::string& path);

}  // namespace dirindex
