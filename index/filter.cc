#include "index/filter.h"

#include <fnmatch.h>

#include <algorithm>

#include "index/paths.h"

namespace dirindex {

namespace {

// Quotes a pattern for a message, with invalid UTF-8 replaced and a NUL
// byte written as \0, so the message stays one printable line.
std::string QuotePattern(std::string_view pattern) {
  std::string escaped;
  for (char c : ToValidUtf8(pattern)) {
    if (c == '\0') {
      escaped += "\\0";
    } else {
      escaped += c;
    }
  }
  return "'" + escaped + "'";
}

// Checks one glob as written, after the '!' of an include entry has been
// removed. `list` is "include" or "exclude", for the message.
Status ValidateGlob(std::string_view list, std::string_view written,
                    std::string_view glob) {
  auto invalid = [&](std::string_view problem) {
    return InvalidArgument(std::string(list) + " pattern " +
                           QuotePattern(written) + " " + std::string(problem));
  };
  if (written.empty()) {
    return invalid("is empty; remove it or write a glob such as '*.xml'");
  }
  if (glob.empty()) {
    return invalid("has no glob after the '!'; write one, such as '!*.part'");
  }
  if (glob.find('\0') != std::string_view::npos) {
    return invalid("contains a NUL byte, which no path contains; remove it");
  }
  if (glob.find("**") != std::string_view::npos) {
    return invalid(
        "contains '**', which fnmatch treats as '*', so it never matches "
        "across '/'; a pattern without '/', such as '*.gz', already matches "
        "names at every depth");
  }

  // fnmatch reads a '[' without its closing ']' as a literal '[', which is
  // seldom what was meant. A ']' right after '[' or '[!' belongs to the set.
  for (size_t i = 0; i < glob.size(); ++i) {
    if (glob[i] == '\\') {
      ++i;
      continue;
    }
    if (glob[i] != '[') continue;
    size_t close = i + 1;
    if (close < glob.size() && glob[close] == '!') ++close;
    if (close < glob.size() && glob[close] == ']') ++close;
    close = glob.find(']', close);
    if (close == std::string_view::npos) {
      return invalid(
          "has a '[' without a closing ']'; close the set, such as '[0-9]', "
          "or write '\\[' to match a '[' itself");
    }
    i = close;
  }

  std::string_view body = glob;
  if (body.front() == '/') body.remove_prefix(1);
  if (!body.empty() && body.back() == '/') body.remove_suffix(1);
  if (body.empty()) {
    return invalid(
        "matches only the root, which is never filtered; remove it");
  }
  for (size_t start = 0; start <= body.size();) {
    size_t end = std::min(body.find('/', start), body.size());
    std::string_view component = body.substr(start, end - start);
    if (component.empty()) {
      return invalid(
          "has an empty path component; separate components with one '/', "
          "such as 'in/*.xml'");
    }
    if (component == "." || component == "..") {
      return invalid(
          "has a '.' or '..' component, which no path relative to the root "
          "has; write the path from the root down, such as 'in/*.xml'");
    }
    start = end + 1;
  }
  return Status::Ok();
}

}  // namespace

Result<PathFilter> PathFilter::Create(const std::vector<std::string>& include,
                                      const std::vector<std::string>& exclude) {
  PathFilter filter;
  std::vector<std::string> negated;  // '!' entries of `include`, without '!'

  for (const std::string& written : include) {
    const bool is_negated = !written.empty() && written.front() == '!';
    std::string_view glob = written;
    if (is_negated) glob.remove_prefix(1);
    Status valid = ValidateGlob("include", written, glob);
    if (!valid.ok()) return valid;
    if (is_negated) {
      negated.emplace_back(glob);
    } else if (glob.back() == '/') {
      return InvalidArgument(
          "include pattern " + QuotePattern(written) +
          " ends with '/', so it could match directories only, but include "
          "patterns apply to non-directories; remove the '/' or write the "
          "pattern with a leading '!' or in exclude");
    } else {
      filter.include_.push_back(written);
    }
  }
  for (const std::string& written : exclude) {
    Status valid = ValidateGlob("exclude", written, written);
    if (!valid.ok()) return valid;
    filter.exclude_.push_back(written);
  }
  filter.exclude_.insert(filter.exclude_.end(), negated.begin(), negated.end());

  auto prepare = [](const std::string& glob) {
    Pattern pattern;
    std::string_view body = glob;
    if (body.front() == '/') body.remove_prefix(1);
    if (body.back() == '/') {
      body.remove_suffix(1);
      pattern.dirs_only = true;
    }
    // A leading '/' anchors a single name at the root, so it, too, makes
    // the pattern match the whole relative path.
    pattern.match_path =
        glob.front() == '/' || body.find('/') != std::string_view::npos;
    pattern.glob = std::string(body);
    return pattern;
  };
  for (const std::string& glob : filter.include_) {
    filter.include_patterns_.push_back(prepare(glob));
  }
  for (const std::string& glob : filter.exclude_) {
    filter.exclude_patterns_.push_back(prepare(glob));
  }
  return filter;
}

// NOTE: fnmatch(3) follows the LC_CTYPE locale. dirindex never calls
// setlocale, so that is the "C" locale, where '?' and '*' match single bytes
// and a multi-byte UTF-8 character counts as several.
bool PathFilter::Matches(const Pattern& pattern, const char* path,
                         const char* name, EntryType type) {
  if (pattern.dirs_only && type != EntryType::kDir) return false;
  if (pattern.match_path) {
    return fnmatch(pattern.glob.c_str(), path, FNM_PATHNAME) == 0;
  }
  return fnmatch(pattern.glob.c_str(), name, 0) == 0;
}

bool PathFilter::MatchesAny(const std::vector<Pattern>& patterns,
                            std::string_view path, EntryType type) {
  if (patterns.empty()) return false;
  // fnmatch needs NUL-terminated strings. The name is the tail of the
  // path, so one copy serves both.
  const std::string subject(path);
  const char* name = subject.c_str() + (path.size() - BaseName(path).size());
  return std::any_of(patterns.begin(), patterns.end(),
                     [&](const Pattern& pattern) {
                       return Matches(pattern, subject.c_str(), name, type);
                     });
}

bool PathFilter::Admits(std::string_view path, EntryType type) const {
  if (MatchesAny(exclude_patterns_, path, type)) return false;
  if (type == EntryType::kDir || include_patterns_.empty()) return true;
  return MatchesAny(include_patterns_, path, type);
}

bool PathFilter::AdmitsListing(std::string_view dir_path) const {
  if (dir_path.empty() || exclude_patterns_.empty()) return true;
  // Check "a", then "a/b", then "a/b/c": each directory from the top down.
  for (size_t slash = dir_path.find('/');; slash = dir_path.find('/', slash + 1)) {
    if (!Admits(dir_path.substr(0, slash), EntryType::kDir)) return false;
    if (slash == std::string_view::npos) return true;
  }
}

std::string PathFilter::Describe() const {
  auto join = [](const std::vector<std::string>& globs) {
    std::string out = "[";
    for (const std::string& glob : globs) {
      if (out.size() > 1) out += ", ";
      out += ToValidUtf8(glob);
    }
    return out + "]";
  };
  return "include=" + join(include_) + " exclude=" + join(exclude_);
}

Status FilteringSink::Accept(DirListing&& listing) {
  if (filter_.empty()) return next_.Accept(std::move(listing));
  if (!filter_.AdmitsListing(listing.path)) return Status::Ok();
  if (listing.status.ok()) {
    std::erase_if(listing.entries, [&](const ListedEntry& entry) {
      return !filter_.Admits(JoinPath(listing.path, entry.name), entry.type);
    });
  }
  return next_.Accept(std::move(listing));
}

}  // namespace dirindex
