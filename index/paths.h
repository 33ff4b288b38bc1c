// Helpers for the byte strings that name entries: relative path checks,
// UTF-8 validation and base64, shared by every folder.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "index/status.h"

namespace dirindex {

// Joins a directory path relative to the root ("" for the root) and a name.
std::string JoinPath(std::string_view dir, std::string_view name);

// Returns the parent of a relative path ("" for a top-level name).
std::string_view ParentPath(std::string_view path);

// Returns the last component of a relative path.
std::string_view BaseName(std::string_view path);

// Checks that `path` is a relative path inside a root: no leading '/', no
// empty, "." or ".." component, no NUL byte. "" (the root) is accepted.
// The error names the value and the rule it broke.
Status ValidateRelativePath(std::string_view path);

// Returns true when `bytes` is well-formed UTF-8 (no overlong forms, no
// surrogates, nothing above U+10FFFF).
bool IsValidUtf8(std::string_view bytes);

// Replaces each ill-formed UTF-8 sequence with U+FFFD.
std::string ToValidUtf8(std::string_view bytes);

// Standard base64 with padding (RFC 4648 section 4).
std::string Base64Encode(std::string_view bytes);
// Decodes standard or URL-safe base64, padding optional. Returns nullopt on
// any character outside the alphabet.
std::optional<std::string> Base64Decode(std::string_view text);
// Decodes %XX escapes into bytes. With `plus_is_space`, as in query
// strings, '+' becomes a space. Returns nullopt on a '%' that is not
// followed by two hex digits.
std::optional<std::string> PercentDecode(std::string_view text, bool plus_is_space);

// URL-safe base64 without padding (RFC 4648 section 5).
std::string Base64UrlEncode(std::string_view bytes);

}  // namespace dirindex
