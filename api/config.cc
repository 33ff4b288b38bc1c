#include "api/config.h"

#include <arpa/inet.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <toml++/toml.h>

#include "api/query.h"
#include "index/filter.h"
#include "index/paths.h"

namespace dirindex {

namespace {

constexpr std::array<std::string_view, 7> kTopLevelKeys = {
    "listen",     "index",     "map_size", "retention",
    "token_file", "log_level", "root"};

// Root keys of features this version does not have yet ([[root.webhook]]
// tables). They are accepted with a warning, so that a config written for a
// later version still loads.
constexpr std::array<std::string_view, 1> kIgnoredRootKeys = {"webhook"};

// Root keys of filtering, settle time, watching and full rescans.
constexpr std::array<std::string_view, 6> kFeatureRootKeys = {
    "settle", "include", "exclude", "watch", "max_watches", "full_rescan"};

// Maximum settle time.
constexpr std::chrono::milliseconds kMaxSettle = std::chrono::hours(24);

// Root keys of remote sources whose value is a string.
constexpr std::array<std::string_view, 6> kRemoteStringKeys = {
    "identity_file", "passphrase_file", "password_file",
    "known_hosts",   "ca_file",         "server_timezone"};

constexpr std::array<std::string_view, 7> kLogLevels = {
    "trace", "debug", "info", "warn", "error", "critical", "off"};

template <size_t N>
bool Contains(const std::array<std::string_view, N>& list,
              std::string_view value) {
  for (std::string_view item : list) {
    if (item == value) return true;
  }
  return false;
}

template <size_t N>
std::string JoinList(const std::array<std::string_view, N>& list) {
  std::string out;
  for (std::string_view item : list) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}

std::string_view TomlTypeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

// KeyRef is one key of the file with where it was written, for messages.
struct KeyRef {
  std::string_view file;
  std::string_view name;
  const toml::node& node;
  uint32_t line = 0;

  std::string Where() const {
    return std::string(file) + ":" + std::to_string(line);
  }
  Status Invalid(std::string_view problem) const {
    return InvalidArgument(Where() + ": key '" + std::string(name) + "' " +
                           std::string(problem));
  }
};

Result<std::string> ReadString(const KeyRef& key, std::string_view example) {
  if (const auto* value = key.node.as_string()) return value->get();
  return key.Invalid("must be a string, such as " + std::string(example) +
                     ", but is " + std::string(TomlTypeName(key.node)));
}

Result<uint64_t> ReadPositiveInteger(const KeyRef& key) {
  const auto* value = key.node.as_integer();
  if (value == nullptr) {
    return key.Invalid("must be a whole number, but is " +
                       std::string(TomlTypeName(key.node)));
  }
  if (value->get() < 1) {
    return key.Invalid("must be at least 1, but is " +
                       std::to_string(value->get()));
  }
  return static_cast<uint64_t>(value->get());
}

Result<uint64_t> ReadByteSize(const KeyRef& key) {
  if (const auto* number = key.node.as_integer()) {
    if (number->get() < 1) {
      return key.Invalid("must be a positive byte count, but is " +
                         std::to_string(number->get()));
    }
    return static_cast<uint64_t>(number->get());
  }
  Result<std::string> text = ReadString(key, "\"1GiB\"");
  if (!text.ok()) return text.status();
  Result<uint64_t> bytes = ParseByteSize(*text);
  if (!bytes.ok()) return key.Invalid(bytes.status().message());
  return bytes;
}

Result<std::chrono::milliseconds> ReadDuration(const KeyRef& key) {
  Result<std::string> text = ReadString(key, "\"30s\"");
  if (!text.ok()) return text.status();
  Result<std::chrono::milliseconds> duration = ParseDuration(*text);
  if (!duration.ok()) return key.Invalid(duration.status().message());
  return duration;
}

// Writes `text` as a TOML basic string, for the examples in messages.
std::string TomlQuote(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// Reads a TOML array of strings, such as ["*.xml", "!*.part"].
Result<std::vector<std::string>> ReadStringArray(const KeyRef& key) {
  const toml::array* array = key.node.as_array();
  if (array == nullptr) {
    // A single pattern written without brackets is the likely mistake, so
    // show that value in the right form.
    const auto* text = key.node.as_string();
    std::string example = TomlQuote(text != nullptr ? text->get() : "*.xml");
    return key.Invalid("must be an array of strings, such as " +
                       std::string(key.name) + " = [" + example +
                       "], but is " + std::string(TomlTypeName(key.node)));
  }
  std::vector<std::string> values;
  for (size_t i = 0; i < array->size(); ++i) {
    const toml::node& element = *array->get(i);
    const auto* text = element.as_string();
    if (text == nullptr) {
      return key.Invalid("must contain only strings, but element " +
                         std::to_string(i + 1) + " is " +
                         std::string(TomlTypeName(element)) +
                         "; write each pattern in quotes, such as [\"*.xml\"]");
    }
    values.push_back(text->get());
  }
  return values;
}

Result<toml::table> ParseToml(std::string_view text, std::string_view file) {
  try {
    return toml::parse(text, file);
  } catch (const toml::parse_error& error) {
    return InvalidArgument(
        std::string(file) + ":" + std::to_string(error.source().begin.line) +
        ": invalid TOML: " + std::string(error.description()));
  }
}

// Reads the `name` of a [[root]] table ahead of its other keys, so that
// messages about those keys can name the root.
Result<std::string> ReadRootName(const toml::table& table,
                                 std::string_view file) {
  for (auto&& [key, node] : table) {
    if (key.str() != "name") continue;
    KeyRef ref{file, key.str(), node, key.source().begin.line};
    Result<std::string> name = ReadString(ref, "\"invoices\"");
    if (!name.ok()) return name.status();
    Status valid = ValidateRootName(*name);
    if (!valid.ok()) return ref.Invalid(valid.message());
    return name;
  }
  return InvalidArgument(std::string(file) + ":" +
                         std::to_string(table.source().begin.line) +
                         ": a [[root]] table has no 'name'; add a line such "
                         "as name = \"invoices\"");
}

Status ApplyRootSource(const KeyRef& key, RootConfig& root) {
  Result<std::string> source = ReadString(key, "\"file:///data/in\"");
  if (!source.ok()) return source.status();
  if (IsRemoteUrl(*source)) {
    root.source = *source;
    root.remote = true;
    root.remote_options.url = *source;
    return Status::Ok();
  }
  Result<std::string> path = LocalPathOfSource(*source);
  if (!path.ok()) {
    return key.Invalid("of root '" + root.name +
                       "' is invalid: " + path.status().message());
  }
  root.source = *source;
  root.local_path = *path;
  return Status::Ok();
}

// Reads `include` or `exclude` and checks every pattern with
// PathFilter::Create, so that a bad glob stops the config from loading.
Status ApplyPatterns(const KeyRef& key, RootConfig& root) {
  Result<std::vector<std::string>> patterns = ReadStringArray(key);
  if (!patterns.ok()) return patterns.status();
  const bool is_include = key.name == "include";
  Result<PathFilter> filter =
      is_include ? PathFilter::Create(*patterns, {})
                 : PathFilter::Create({}, *patterns);
  if (!filter.ok()) {
    return key.Invalid("of root '" + root.name +
                       "' is invalid: " + filter.status().message());
  }
  (is_include ? root.include : root.exclude) = std::move(*patterns);
  return Status::Ok();
}

Status ApplySettle(const KeyRef& key, RootConfig& root) {
  Result<std::chrono::milliseconds> settle = ReadDuration(key);
  if (!settle.ok()) return settle.status();
  if (*settle > kMaxSettle) {
    return key.Invalid("of root '" + root.name +
                       "' is longer than the maximum of 1 day; use at most "
                       "\"1d\", such as \"2s\"");
  }
  root.settle = *settle;
  return Status::Ok();
}

Status ApplyWatch(const KeyRef& key, RootConfig& root) {
  std::optional<bool> watch = key.node.value_exact<bool>();
  if (!watch) {
    return key.Invalid("must be true or false, such as watch = false, but is " +
                       std::string(TomlTypeName(key.node)));
  }
  root.watch = *watch;
  return Status::Ok();
}

Status ApplyMaxWatches(const KeyRef& key, RootConfig& root) {
  const auto* count = key.node.as_integer();
  constexpr int64_t kMax = std::numeric_limits<uint32_t>::max();
  if (count == nullptr || count->get() < 0 || count->get() > kMax) {
    std::string actual = count != nullptr ? std::to_string(count->get())
                                          : std::string(TomlTypeName(key.node));
    return key.Invalid("must be a whole number from 0 (no cap but the "
                       "kernel's) to " + std::to_string(kMax) +
                       ", such as max_watches = 50000, but is " + actual);
  }
  root.max_watches = static_cast<uint32_t>(count->get());
  return Status::Ok();
}

Status ApplyFullRescan(const KeyRef& key, RootConfig& root) {
  Result<std::string> text = ReadString(key, "\"02:00\" or \"6h\"");
  if (!text.ok()) return text.status();
  Result<FullRescanSchedule> schedule = ParseFullRescan(*text);
  if (!schedule.ok()) {
    return key.Invalid("of root '" + root.name +
                       "' is invalid: " + schedule.status().message());
  }
  root.full_rescan = std::move(*schedule);
  return Status::Ok();
}

// Applies one of kFeatureRootKeys.
Status ApplyFeatureRootKey(const KeyRef& key, RootConfig& root) {
  if (key.name == "include" || key.name == "exclude") {
    return ApplyPatterns(key, root);
  }
  if (key.name == "settle") return ApplySettle(key, root);
  if (key.name == "watch") return ApplyWatch(key, root);
  if (key.name == "max_watches") return ApplyMaxWatches(key, root);
  if (key.name == "full_rescan") return ApplyFullRescan(key, root);
  return Internal("root key '" + std::string(key.name) + "' has no parser");
}

Status ApplyRootKey(const KeyRef& key, RootConfig& root,
                    std::vector<std::string>& warnings) {
  if (key.name == "name") return Status::Ok();
  if (key.name == "source") return ApplyRootSource(key, root);
  if (key.name == "rescan_interval") {
    Result<std::chrono::milliseconds> interval = ReadDuration(key);
    if (!interval.ok()) return interval.status();
    if (interval->count() == 0) {
      return key.Invalid("must be longer than 0, such as \"30s\"");
    }
    root.rescan_interval = *interval;
    return Status::Ok();
  }
  if (Contains(kRemoteStringKeys, key.name)) {
    Result<std::string> text = ReadString(key, "\"/etc/dirindex/value\"");
    if (!text.ok()) return text.status();
    RemoteOptions& remote = root.remote_options;
    if (key.name == "identity_file") remote.identity_file = *text;
    if (key.name == "passphrase_file") remote.passphrase_file = *text;
    if (key.name == "password_file") remote.password_file = *text;
    if (key.name == "known_hosts") remote.known_hosts = *text;
    if (key.name == "ca_file") remote.ca_file = *text;
    if (key.name == "server_timezone") remote.server_timezone = *text;
    return Status::Ok();
  }
  if (key.name == "trust_on_first_use") {
    std::optional<bool> value = key.node.value<bool>();
    if (!value) return key.Invalid("must be true or false");
    root.remote_options.trust_on_first_use = *value;
    return Status::Ok();
  }
  if (key.name == "max_depth") {
    std::optional<int64_t> value = key.node.value<int64_t>();
    if (!value || *value < 0 || *value > 4096) {
      return key.Invalid("must be a whole number from 0 (unlimited) to 4096");
    }
    root.remote_options.max_depth = static_cast<uint32_t>(*value);
    return Status::Ok();
  }
  if (key.name == "connect_timeout" || key.name == "operation_timeout") {
    Result<std::chrono::milliseconds> timeout = ReadDuration(key);
    if (!timeout.ok()) return timeout.status();
    if (timeout->count() == 0) return key.Invalid("must be longer than 0, such as \"10s\"");
    auto& field = key.name == "connect_timeout" ? root.remote_options.connect_timeout
                                                : root.remote_options.operation_timeout;
    field = *timeout;
    return Status::Ok();
  }
  if (Contains(kFeatureRootKeys, key.name)) {
    return ApplyFeatureRootKey(key, root);
  }
  if (Contains(kIgnoredRootKeys, key.name)) {
    warnings.push_back(key.Where() + ": key '" + std::string(key.name) +
                       "' of root '" + root.name +
                       "' is ignored by this version of dirindex");
    return Status::Ok();
  }
  return key.Invalid("of root '" + root.name +
                     "' is unknown; valid keys are name, source, "
                     "rescan_interval, " + JoinList(kFeatureRootKeys) + ", " +
                     JoinList(kRemoteStringKeys) +
                     ", trust_on_first_use, max_depth, connect_timeout, "
                     "operation_timeout, " + JoinList(kIgnoredRootKeys));
}

Result<RootConfig> ParseRoot(const toml::table& table, std::string_view file,
                             std::vector<std::string>& warnings) {
  RootConfig root;
  Result<std::string> name = ReadRootName(table, file);
  if (!name.ok()) return name.status();
  root.name = *name;

  for (auto&& [key, node] : table) {
    KeyRef ref{file, key.str(), node, key.source().begin.line};
    Status applied = ApplyRootKey(ref, root, warnings);
    if (!applied.ok()) return applied;
  }

  if (root.source.empty()) {
    return InvalidArgument(std::string(file) + ":" +
                           std::to_string(table.source().begin.line) +
                           ": root '" + root.name +
                           "' has no 'source'; add a line such as "
                           "source = \"file:///data/in\"");
  }
  return root;
}

Status ApplyRoots(const KeyRef& key, ParsedConfig& parsed) {
  const toml::array* tables = key.node.as_array();
  if (tables == nullptr || !tables->is_array_of_tables()) {
    return key.Invalid("must be written as [[root]] tables, one per root");
  }
  std::set<std::string> names;
  for (const toml::node& element : *tables) {
    const toml::table& table = *element.as_table();
    Result<RootConfig> root = ParseRoot(table, key.file, parsed.warnings);
    if (!root.ok()) return root.status();
    if (!names.insert(root->name).second) {
      return InvalidArgument(std::string(key.file) + ":" +
                             std::to_string(table.source().begin.line) +
                             ": root name '" + root->name +
                             "' is used twice; give each root a unique name");
    }
    parsed.config.roots.push_back(std::move(*root));
  }
  return Status::Ok();
}

Status ApplyLogLevel(const KeyRef& key, Config& config) {
  Result<std::string> level = ReadString(key, "\"info\"");
  if (!level.ok()) return level.status();
  if (!Contains(kLogLevels, *level)) {
    return key.Invalid("has the unknown level '" + *level + "'; use one of " +
                       JoinList(kLogLevels));
  }
  config.log_level = *level;
  return Status::Ok();
}

Status ApplyTopLevelKey(const KeyRef& key, ParsedConfig& parsed) {
  Config& config = parsed.config;
  if (key.name == "root") return ApplyRoots(key, parsed);
  if (key.name == "log_level") return ApplyLogLevel(key, config);
  if (key.name == "map_size") {
    Result<uint64_t> bytes = ReadByteSize(key);
    if (bytes.ok()) config.map_size_bytes = *bytes;
    return bytes.status();
  }
  if (key.name == "retention") {
    Result<uint64_t> count = ReadPositiveInteger(key);
    if (count.ok()) config.retention_changes = *count;
    return count.status();
  }

  std::string* target = nullptr;
  std::string_view example;
  if (key.name == "listen") {
    target = &config.listen;
    example = "\"127.0.0.1:8750\"";
  } else if (key.name == "index") {
    target = &config.index_dir;
    example = "\"/var/lib/dirindex\"";
  } else if (key.name == "token_file") {
    target = &config.token_file;
    example = "\"/etc/dirindex/token\"";
  } else {
    return key.Invalid("is unknown; valid top-level keys are " +
                       JoinList(kTopLevelKeys));
  }
  Result<std::string> text = ReadString(key, example);
  if (!text.ok()) return text.status();
  *target = *text;
  return Status::Ok();
}

Status ValidateTopLevelValues(const Config& config, std::string_view file) {
  Result<ListenAddress> listen = ParseListenAddress(config.listen);
  if (!listen.ok()) {
    return InvalidArgument(std::string(file) + ": key 'listen' is invalid: " +
                           listen.status().message());
  }
  if (!config.index_dir.empty() && config.index_dir.front() != '/') {
    return InvalidArgument(std::string(file) + ": key 'index' is '" +
                           config.index_dir +
                           "', which is not an absolute path; write it "
                           "starting with '/'");
  }
  return Status::Ok();
}

// Splits "123unit" into the number and the unit. Rejects a missing number
// and one that does not fit 64 bits.
Result<std::pair<uint64_t, std::string_view>> SplitNumberAndUnit(
    std::string_view text, std::string_view kind, std::string_view example) {
  uint64_t number = 0;
  auto [end, error] =
      std::from_chars(text.data(), text.data() + text.size(), number);
  if (error == std::errc::result_out_of_range) {
    return InvalidArgument(std::string(kind) + " '" + std::string(text) +
                           "' is too large");
  }
  if (error != std::errc() || end == text.data()) {
    return InvalidArgument(std::string(kind) + " '" + std::string(text) +
                           "' must start with a whole number, such as " +
                           std::string(example));
  }
  std::string_view unit(end, text.data() + text.size() - end);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  return std::pair<uint64_t, std::string_view>(number, unit);
}

std::string LowerAscii(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace

Result<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  auto split = SplitNumberAndUnit(text, "duration", "\"30s\"");
  if (!split.ok()) return split.status();
  auto [number, unit] = *split;

  struct UnitFactor {
    std::string_view unit;
    uint64_t ms;
  };
  constexpr std::array<UnitFactor, 5> kUnits = {{{"ms", 1},
                                                 {"s", 1000},
                                                 {"m", 60'000},
                                                 {"h", 3'600'000},
                                                 {"d", 86'400'000}}};
  if (unit.empty()) {
    return InvalidArgument(
        "duration '" + std::string(text) + "' has no unit; write it as \"" +
        std::to_string(number) + "s\" (units: ms, s, m, h, d)");
  }
  for (const UnitFactor& entry : kUnits) {
    if (entry.unit != unit) continue;
    // Bounded to 100 years, far beyond any useful interval, so adding the
    // duration to a steady_clock time point cannot overflow.
    constexpr uint64_t kMaxMs = uint64_t{100} * 365 * 86'400'000;
    if (number > kMaxMs / entry.ms) {
      return InvalidArgument("duration '" + std::string(text) +
                             "' is too large; the maximum is 100 years");
    }
    return std::chrono::milliseconds(number * entry.ms);
  }
  return InvalidArgument("duration '" + std::string(text) +
                         "' has the unknown unit '" + std::string(unit) +
                         "'; use ms, s, m, h or d, such as \"30s\"");
}

Result<FullRescanSchedule> ParseFullRescan(std::string_view text) {
  FullRescanSchedule schedule;
  schedule.text = std::string(text);
  if (text.empty() || LowerAscii(text) == "off") return schedule;

  const std::string quoted = "'" + ToValidUtf8(text) + "'";
  const size_t colon = text.find(':');
  if (colon != std::string_view::npos) {
    auto is_digits = [](std::string_view part) {
      return std::all_of(part.begin(), part.end(),
                         [](char c) { return c >= '0' && c <= '9'; });
    };
    std::string_view hours = text.substr(0, colon);
    std::string_view minutes = text.substr(colon + 1);
    if (hours.empty() || hours.size() > 2 || minutes.size() != 2 ||
        !is_digits(hours) || !is_digits(minutes)) {
      return InvalidArgument("full rescan time " + quoted +
                             " is not HH:MM; write a 24-hour local time "
                             "such as \"02:00\" or \"23:59\"");
    }
    auto to_int = [](std::string_view digits) {
      int number = 0;
      for (char c : digits) number = number * 10 + (c - '0');
      return number;
    };
    const int hour = to_int(hours);
    const int minute = to_int(minutes);
    if (hour > 23 || minute > 59) {
      return InvalidArgument("full rescan time " + quoted +
                             " is out of range; use 00:00 to 23:59, so "
                             "midnight is \"00:00\"");
    }
    schedule.kind = FullRescanSchedule::Kind::kDaily;
    schedule.minute_of_day = hour * 60 + minute;
    return schedule;
  }

  Result<std::chrono::milliseconds> interval = ParseDuration(text);
  if (!interval.ok()) {
    return InvalidArgument(interval.status().message() +
                           "; a full rescan schedule may also be a daily "
                           "local time such as \"02:00\", or \"off\"");
  }
  if (*interval < std::chrono::minutes(1)) {
    return InvalidArgument("full rescan interval " + quoted +
                           " is shorter than 1 minute; use at least \"1m\", "
                           "such as \"6h\", or \"off\" for none");
  }
  schedule.kind = FullRescanSchedule::Kind::kInterval;
  schedule.interval = *interval;
  return schedule;
}

Result<uint64_t> ParseByteSize(std::string_view text) {
  auto split = SplitNumberAndUnit(text, "size", "\"1GiB\"");
  if (!split.ok()) return split.status();
  auto [number, unit] = *split;

  struct UnitFactor {
    std::string_view unit;
    uint64_t bytes;
  };
  constexpr std::array<UnitFactor, 10> kUnits = {{
      {"", 1},
      {"b", 1},
      {"kib", uint64_t{1} << 10},
      {"mib", uint64_t{1} << 20},
      {"gib", uint64_t{1} << 30},
      {"tib", uint64_t{1} << 40},
      {"kb", 1'000},
      {"mb", 1'000'000},
      {"gb", 1'000'000'000},
      {"tb", 1'000'000'000'000},
  }};
  std::string lower = LowerAscii(unit);
  for (const UnitFactor& entry : kUnits) {
    if (entry.unit != lower) continue;
    if (number > std::numeric_limits<uint64_t>::max() / entry.bytes) {
      return InvalidArgument("size '" + std::string(text) + "' is too large");
    }
    if (number == 0) {
      return InvalidArgument("size '" + std::string(text) +
                             "' must be larger than 0, such as \"1GiB\"");
    }
    return number * entry.bytes;
  }
  return InvalidArgument("size '" + std::string(text) +
                         "' has the unknown unit '" + std::string(unit) +
                         "'; use B, KiB, MiB, GiB, TiB, kB, MB, GB or TB, "
                         "such as \"1GiB\"");
}

Status ValidateRootName(std::string_view name) {
  auto valid_char = [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  };
  bool all_valid = !name.empty();
  for (char c : name) all_valid = all_valid && valid_char(c);
  if (!all_valid || name == "." || name == "..") {
    return InvalidArgument("root name '" + ToValidUtf8(name) +
                           "' is invalid; use letters, digits, '.', '_' and "
                           "'-' only, such as \"invoices\"");
  }
  return Status::Ok();
}

Result<std::string> LocalPathOfSource(std::string_view source) {
  std::string path;
  size_t scheme_end = source.find("://");
  if (scheme_end == std::string_view::npos) {
    path = std::string(source);
  } else {
    std::string scheme = LowerAscii(source.substr(0, scheme_end));
    std::string_view rest = source.substr(scheme_end + 3);
    if (scheme == "sftp" || scheme == "ftp" || scheme == "ftps") {
      return InvalidArgument("source '" + std::string(source) + "' uses " +
                             scheme +
                             "://, which is not supported in this build yet; "
                             "use a local path or a file:/// URL");
    }
    if (scheme != "file") {
      return InvalidArgument("source '" + std::string(source) +
                             "' has the unknown scheme '" + scheme +
                             "'; use a local path or a file:/// URL");
    }
    if (rest.empty() || rest.front() != '/') {
      return InvalidArgument("source '" + std::string(source) +
                             "' names a host; only local files are "
                             "supported, so write file:///absolute/path");
    }
    std::optional<std::string> decoded = PercentDecode(rest, false);
    if (!decoded) {
      return InvalidArgument("source '" + std::string(source) +
                             "' has a '%' not followed by two hex digits; "
                             "write a literal '%' as %25");
    }
    path = std::move(*decoded);
  }

  if (path.empty() || path.front() != '/') {
    return InvalidArgument("source '" + std::string(source) +
                           "' is not an absolute path; write it starting "
                           "with '/' or as file:///absolute/path");
  }
  if (path.find('\0') != std::string::npos) {
    return InvalidArgument("source '" + ToValidUtf8(source) +
                           "' contains a NUL byte; remove it");
  }
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

Status ValidateRoots(const std::vector<RootConfig>& roots) {
  std::set<std::string> names;
  for (const RootConfig& root : roots) {
    Status valid = ValidateRootName(root.name);
    if (!valid.ok()) return valid;
    if (!names.insert(root.name).second) {
      return InvalidArgument("root name '" + root.name +
                             "' is used twice; give each root a unique name");
    }
  }
  return Status::Ok();
}

Result<RootConfig> RootConfigForDir(const std::string& dir,
                                    std::chrono::milliseconds rescan_interval) {
  char* resolved = realpath(dir.c_str(), nullptr);
  if (resolved == nullptr) return ErrnoStatus(errno, "resolving", dir);
  std::string path(resolved);
  std::free(resolved);

  RootConfig root;
  root.name = std::string(BaseName(path));
  root.source = path;
  root.local_path = path;
  root.rescan_interval = rescan_interval;
  if (path == "/") {
    return InvalidArgument(
        "directory '/' has no name to use as the root "
        "name; use --config with a [[root]] table that "
        "names it");
  }
  Status valid = ValidateRootName(root.name);
  if (!valid.ok()) {
    return InvalidArgument("directory '" + dir + "': " + valid.message() +
                           "; or use --config with a [[root]] table that "
                           "names it");
  }
  return root;
}

Result<std::chrono::milliseconds> ParseIntervalFlag(std::string_view text) {
  bool all_digits = !text.empty();
  for (char c : text) all_digits = all_digits && c >= '0' && c <= '9';
  std::string with_unit(text);
  if (all_digits) with_unit += "s";

  Result<std::chrono::milliseconds> interval = ParseDuration(with_unit);
  if (!interval.ok()) {
    return InvalidArgument("--rescan-interval: " + interval.status().message());
  }
  if (interval->count() == 0) {
    return InvalidArgument(
        "--rescan-interval must be longer than 0, such "
        "as 30 (seconds)");
  }
  return interval;
}

Result<ListenAddress> ParseListenAddress(std::string_view text) {
  auto invalid = [&](std::string_view why) {
    return InvalidArgument("listen address '" + std::string(text) + "' " +
                           std::string(why));
  };
  ListenAddress address;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find("]:");
    if (close == std::string_view::npos) {
      return invalid("must have the form [IPv6]:PORT, such as [::1]:8750");
    }
    address.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return invalid(
          "has no port; write it as ADDRESS:PORT, such as "
          "127.0.0.1:8750");
    }
    if (text.find(':') != colon) {
      return invalid(
          "must put an IPv6 address in brackets, such as "
          "[::1]:8750");
    }
    address.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }

  unsigned port = 0;
  auto [end, error] = std::from_chars(
      port_text.data(), port_text.data() + port_text.size(), port);
  if (error != std::errc() || end != port_text.data() + port_text.size() ||
      port_text.empty() || port > 65535) {
    return invalid("has an invalid port; use a number from 0 to 65535");
  }
  address.port = static_cast<uint16_t>(port);

  if (address.host == "localhost") address.host = "127.0.0.1";
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET, address.host.c_str(), &v4) == 1) {
    address.loopback = (ntohl(v4.s_addr) >> 24) == 127;
  } else if (inet_pton(AF_INET6, address.host.c_str(), &v6) == 1) {
    address.loopback = IN6_IS_ADDR_LOOPBACK(&v6);
  } else {
    return invalid(
        "does not start with an IP address; use an IPv4 or "
        "IPv6 literal or localhost, such as 127.0.0.1:8750");
  }
  return address;
}

std::string DefaultIndexDir() {
  const char* state_home = std::getenv("XDG_STATE_HOME");
  if (state_home != nullptr && state_home[0] == '/') {
    return std::string(state_home) + "/dirindex";
  }
  const char* home = std::getenv("HOME");
  if (home == nullptr || home[0] != '/') {
    const passwd* user = getpwuid(getuid());
    home = user != nullptr ? user->pw_dir : "/tmp";
  }
  return std::string(home) + "/.local/state/dirindex";
}

Result<std::string> ReadTokenFile(const std::string& path) {
  std::ifstream file(path);
  if (!file) return ErrnoStatus(errno, "opening the token file", path);
  std::string line;
  std::getline(file, line);

  auto is_space = [](char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
  };
  while (!line.empty() && is_space(line.back())) line.pop_back();
  size_t start = 0;
  while (start < line.size() && is_space(line[start])) ++start;
  line.erase(0, start);

  if (line.empty()) {
    return InvalidArgument("token file '" + path +
                           "' is empty; write a random token into it, such "
                           "as the output of `openssl rand -hex 32`");
  }
  for (char c : line) {
    if (c < 0x21 || c > 0x7e) {
      return InvalidArgument("token in '" + path +
                             "' contains a space or a byte outside visible "
                             "ASCII; use letters, digits and punctuation");
    }
  }
  return line;
}

Result<ParsedConfig> ParseConfig(std::string_view text,
                                 std::string_view file_name) {
  Result<toml::table> table = ParseToml(text, file_name);
  if (!table.ok()) return table.status();

  ParsedConfig parsed;
  for (auto&& [key, node] : *table) {
    KeyRef ref{file_name, key.str(), node, key.source().begin.line};
    Status applied = ApplyTopLevelKey(ref, parsed);
    if (!applied.ok()) return applied;
  }
  Status valid = ValidateTopLevelValues(parsed.config, file_name);
  if (!valid.ok()) return valid;
  return parsed;
}

Result<ParsedConfig> LoadConfigFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return ErrnoStatus(errno, "opening the config file", path);
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad()) return ErrnoStatus(errno, "reading the config file", path);
  return ParseConfig(text.str(), path);
}

Result<ParsedConfig> BuildServeConfig(const ServeFlags& flags) {
  ParsedConfig parsed;
  if (!flags.config_file.empty()) {
    Result<ParsedConfig> loaded = LoadConfigFile(flags.config_file);
    if (!loaded.ok()) return loaded.status();
    parsed = std::move(*loaded);
  }
  Config& config = parsed.config;

  if (!flags.listen.empty()) {
    Result<ListenAddress> address = ParseListenAddress(flags.listen);
    if (!address.ok()) {
      return InvalidArgument("--listen: " + address.status().message());
    }
    config.listen = flags.listen;
  }
  if (!flags.index_dir.empty()) {
    config.index_dir = std::filesystem::absolute(flags.index_dir).string();
  }

  std::chrono::milliseconds interval{30'000};
  if (!flags.rescan_interval.empty()) {
    Result<std::chrono::milliseconds> parsed_interval =
        ParseIntervalFlag(flags.rescan_interval);
    if (!parsed_interval.ok()) return parsed_interval.status();
    interval = *parsed_interval;
  }
  for (const std::string& dir : flags.dirs) {
    Result<RootConfig> root = RootConfigForDir(dir, interval);
    if (!root.ok()) return root.status();
    config.roots.push_back(std::move(*root));
  }

  Status names = ValidateRoots(config.roots);
  if (!names.ok()) {
    return InvalidArgument(names.message() +
                           "; a DIR root is named after the last component "
                           "of its path, so use --config to name roots "
                           "yourself");
  }
  return parsed;
}

}  // namespace dirindex
