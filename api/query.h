// Request-target parsing for the HTTP API: splitting the target, decoding
// percent-escapes into raw bytes (file names need not be UTF-8), and the
// typed parameters of each route with their bounds.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "index/index.h"
#include "index/paths.h"  // PercentDecode
#include "index/status.h"

namespace dirindex {

inline constexpr size_t kDefaultLimit = 1000;
inline constexpr size_t kMaxLimit = 10'000;
inline constexpr std::chrono::seconds kMaxWait{300};

// Escapes every byte outside the URL "unreserved" set (A-Z a-z 0-9 - . _ ~)
// as %XX, so the result is safe as a query value or a path segment.
std::string PercentEncode(std::string_view bytes);

// RequestTarget is an origin-form target split at the first '?'.
struct RequestTarget {
  std::string_view path;
  std::string_view query;  // without the '?', empty when absent
};

RequestTarget SplitTarget(std::string_view target);

// QueryParams are the decoded name and value pairs of a query string, in
// request order.
using QueryParams = std::vector<std::pair<std::string, std::string>>;

// Decodes a query string. Rejects a malformed escape, a parameter that is
// not in `allowed` and a parameter given twice, naming it.
Result<QueryParams> ParseQuery(std::string_view query,
                               const std::vector<std::string_view>& allowed);

// ChangesParams are the parameters of GET /v1/roots/{root}/changes.
struct ChangesParams {
  std::string since;  // opaque cursor, empty for a fresh instance
  size_t limit = kDefaultLimit;
  std::chrono::milliseconds wait{0};  // long-poll time, 0 responds at once
  std::string prefix;                 // relative path prefix, raw bytes
};

Result<ChangesParams> ParseChangesQuery(std::string_view query);

// Parses GET /v1/roots/{root}/files parameters: prefix, glob, after, limit.
Result<FilesQuery> ParseFilesQuery(std::string_view query);

// Parses GET /v1/roots/{root}/stat parameters and returns the path bytes,
// given as `path` (percent-encoded) or `path_b64` (base64).
Result<std::string> ParseStatQuery(std::string_view query);

// Parses POST /v1/roots/{root}/rescan parameters and returns `full`.
Result<bool> ParseRescanQuery(std::string_view query);

// Checks that a route without parameters got none.
Status ParseEmptyQuery(std::string_view query);

// Parses `limit`: a whole number from 1 to kMaxLimit.
Result<size_t> ParseLimit(std::string_view text);

// Parses `wait`: seconds from 0 to kMaxWait, with up to three decimals.
Result<std::chrono::milliseconds> ParseWait(std::string_view text);

// Checks a path prefix: a relative path, optionally ending in '/'.
Status ValidatePrefix(std::string_view prefix);

}  // namespace dirindex
