#include "api/query.h"

#include <algorithm>
#include <charconv>

#include "index/paths.h"

namespace dirindex {

namespace {

// Shows a decoded value in a message: invalid UTF-8 replaced, long values
// cut, so an error body stays valid JSON text and small.
std::string Quote(std::string_view value) {
  constexpr size_t kMaxShown = 200;
  std::string shown = ToValidUtf8(value.substr(0, kMaxShown));
  if (value.size() > kMaxShown) shown += "...";
  return "'" + shown + "'";
}

const std::string* FindParam(const QueryParams& params, std::string_view name) {
  for (const auto& [key, value] : params) {
    if (key == name) return &value;
  }
  return nullptr;
}

std::string AllowedList(const std::vector<std::string_view>& allowed) {
  if (allowed.empty()) return "none";
  std::string out;
  for (std::string_view name : allowed) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

}  // namespace

std::string PercentEncode(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(bytes.size());
  for (char c : bytes) {
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                      (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                      c == '_' || c == '~';
    if (unreserved) {
      out.push_back(c);
      continue;
    }
    auto byte = static_cast<unsigned char>(c);
    out.push_back('%');
    out.push_back(kHex[byte >> 4]);
    out.push_back(kHex[byte & 0x0f]);
  }
  return out;
}

RequestTarget SplitTarget(std::string_view target) {
  size_t question = target.find('?');
  if (question == std::string_view::npos) return {target, {}};
  return {target.substr(0, question), target.substr(question + 1)};
}

Result<QueryParams> ParseQuery(std::string_view query,
                               const std::vector<std::string_view>& allowed) {
  QueryParams params;
  size_t start = 0;
  while (start < query.size()) {
    size_t end = query.find('&', start);
    if (end == std::string_view::npos) end = query.size();
    std::string_view pair = query.substr(start, end - start);
    start = end + 1;
    if (pair.empty()) continue;

    size_t equals = pair.find('=');
    std::string_view raw_name = pair.substr(0, equals);
    std::string_view raw_value = equals == std::string_view::npos
                                     ? std::string_view()
                                     : pair.substr(equals + 1);
    std::optional<std::string> name = PercentDecode(raw_name, true);
    std::optional<std::string> value = PercentDecode(raw_value, true);
    if (!name || !value) {
      return InvalidArgument("query parameter " + Quote(pair) +
                             " has a '%' not followed by two hex digits; "
                             "encode a literal '%' as %25");
    }
    if (std::find(allowed.begin(), allowed.end(), *name) == allowed.end()) {
      return InvalidArgument("query parameter " + Quote(*name) +
                             " is unknown; this route accepts " +
                             AllowedList(allowed));
    }
    if (FindParam(params, *name) != nullptr) {
      return InvalidArgument("query parameter " + Quote(*name) +
                             " is given twice; give it once");
    }
    params.emplace_back(std::move(*name), std::move(*value));
  }
  return params;
}

Result<size_t> ParseLimit(std::string_view text) {
  size_t limit = 0;
  auto [end, error] =
      std::from_chars(text.data(), text.data() + text.size(), limit);
  bool whole =
      error == std::errc() && end == text.data() + text.size() && !text.empty();
  if (!whole || limit < 1 || limit > kMaxLimit) {
    return InvalidArgument("limit " + Quote(text) +
                           " is invalid; use a whole number from 1 to " +
                           std::to_string(kMaxLimit));
  }
  return limit;
}

Result<std::chrono::milliseconds> ParseWait(std::string_view text) {
  auto invalid = [&] {
    return InvalidArgument(
        "wait " + Quote(text) + " is invalid; use seconds from 0 to " +
        std::to_string(kMaxWait.count()) + ", such as 30 or 0.5");
  };
  size_t dot = text.find('.');
  std::string_view whole = text.substr(0, dot);
  std::string_view fraction =
      dot == std::string_view::npos ? std::string_view() : text.substr(dot + 1);
  if (whole.empty() || fraction.size() > 3 ||
      (dot != std::string_view::npos && fraction.empty())) {
    return invalid();
  }
  auto all_digits = [](std::string_view s) {
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return c >= '0' && c <= '9'; });
  };
  if (!all_digits(whole) || !all_digits(fraction) || whole.size() > 6) {
    return invalid();
  }

  int64_t ms = 0;
  std::from_chars(whole.data(), whole.data() + whole.size(), ms);
  ms *= 1000;
  int64_t scale = 100;
  for (char c : fraction) {
    ms += (c - '0') * scale;
    scale /= 10;
  }
  if (ms > std::chrono::milliseconds(kMaxWait).count()) return invalid();
  return std::chrono::milliseconds(ms);
}

Status ValidatePrefix(std::string_view prefix) {
  std::string_view path = prefix;
  if (!path.empty() && path.back() == '/') path.remove_suffix(1);
  if (path.empty() && !prefix.empty()) {
    return InvalidArgument(
        "prefix '/' is absolute; give a path relative to "
        "the root, or leave prefix out for everything");
  }
  Status valid = ValidateRelativePath(path);
  if (!valid.ok()) return InvalidArgument("prefix: " + valid.message());
  return Status::Ok();
}

Result<ChangesParams> ParseChangesQuery(std::string_view query) {
  Result<QueryParams> params =
      ParseQuery(query, {"since", "limit", "wait", "prefix"});
  if (!params.ok()) return params.status();

  ChangesParams out;
  if (const std::string* since = FindParam(*params, "since")) {
    out.since = *since;
  }
  if (const std::string* limit = FindParam(*params, "limit")) {
    Result<size_t> parsed = ParseLimit(*limit);
    if (!parsed.ok()) return parsed.status();
    out.limit = *parsed;
  }
  if (const std::string* wait = FindParam(*params, "wait")) {
    Result<std::chrono::milliseconds> parsed = ParseWait(*wait);
    if (!parsed.ok()) return parsed.status();
    out.wait = *parsed;
  }
  if (const std::string* prefix = FindParam(*params, "prefix")) {
    Status valid = ValidatePrefix(*prefix);
    if (!valid.ok()) return valid;
    out.prefix = *prefix;
  }
  return out;
}

Result<FilesQuery> ParseFilesQuery(std::string_view query) {
  Result<QueryParams> params =
      ParseQuery(query, {"prefix", "glob", "after", "limit"});
  if (!params.ok()) return params.status();

  FilesQuery out;
  out.limit = kDefaultLimit;
  if (const std::string* prefix = FindParam(*params, "prefix")) {
    Status valid = ValidatePrefix(*prefix);
    if (!valid.ok()) return valid;
    out.prefix = *prefix;
  }
  if (const std::string* glob = FindParam(*params, "glob")) {
    if (glob->find('\0') != std::string::npos) {
      return InvalidArgument("glob contains a NUL byte; remove it");
    }
    out.glob = *glob;
  }
  if (const std::string* after = FindParam(*params, "after")) {
    out.after = *after;
  }
  if (const std::string* limit = FindParam(*params, "limit")) {
    Result<size_t> parsed = ParseLimit(*limit);
    if (!parsed.ok()) return parsed.status();
    out.limit = *parsed;
  }
  return out;
}

Result<std::string> ParseStatQuery(std::string_view query) {
  Result<QueryParams> params = ParseQuery(query, {"path", "path_b64"});
  if (!params.ok()) return params.status();

  const std::string* path = FindParam(*params, "path");
  const std::string* path_b64 = FindParam(*params, "path_b64");
  if ((path == nullptr) == (path_b64 == nullptr)) {
    return InvalidArgument(
        "give exactly one of path (percent-encoded) and "
        "path_b64 (base64 of the path bytes)");
  }
  std::string bytes;
  if (path != nullptr) {
    bytes = *path;
  } else {
    std::optional<std::string> decoded = Base64Decode(*path_b64);
    if (!decoded) {
      return InvalidArgument("path_b64 " + Quote(*path_b64) +
                             " is not valid base64; encode the path bytes "
                             "with standard or URL-safe base64");
    }
    bytes = std::move(*decoded);
  }
  if (bytes.empty()) {
    return InvalidArgument(
        "path is empty; give a path relative to the root, "
        "such as path=dir/file.xml");
  }
  Status valid = ValidateRelativePath(bytes);
  if (!valid.ok()) return valid;
  return bytes;
}

Result<bool> ParseRescanQuery(std::string_view query) {
  Result<QueryParams> params = ParseQuery(query, {"full"});
  if (!params.ok()) return params.status();
  const std::string* full = FindParam(*params, "full");
  if (full == nullptr) return false;
  if (*full == "1" || *full == "true") return true;
  if (*full == "0" || *full == "false") return false;
  return InvalidArgument("full " + Quote(*full) +
                         " is invalid; use full=1 or full=0");
}

Status ParseEmptyQuery(std::string_view query) {
  Result<QueryParams> params = ParseQuery(query, {});
  return params.status();
}

}  // namespace dirindex
