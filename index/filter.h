// PathFilter: the include and exclude globs of one root, and FilteringSink,
// which applies them to the listings of a scan before the index receives
// them.
//
// Rules, in the order Admits applies them:
//   1. A pattern without '/' is matched against the entry's name. A pattern
//      with '/' is matched against the path relative to the root with
//      FNM_PATHNAME, so '*' and '?' never match a '/'. A leading '/' only
//      anchors the pattern at the root ("/tmp" matches the top-level "tmp"
//      alone), and a trailing '/' makes the pattern match directories only.
//   2. An entry that matches an exclude pattern is not admitted, whatever
//      its type. Nothing below an excluded directory is indexed.
//   3. A directory that is not excluded is admitted. Include patterns
//      apply to non-directories only, because otherwise nothing below the
//      root could be reached.
//   4. A non-directory is admitted when the include list is empty or one of
//      its patterns matches.
// Entries of type kUnknown count as non-directories.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "index/listing.h"
#include "index/source.h"
#include "index/status.h"

namespace dirindex {

// PathFilter is an immutable set of globs. Its const methods are safe to
// call from several threads at once.
class PathFilter {
 public:
  // Builds a filter that admits everything.
  PathFilter() = default;

  // Builds a filter from the `include` and `exclude` lists of a root. An
  // `include` entry that starts with '!' is an exclude pattern, so one list
  // such as ["*.xml", "!*.part"] can contain both. Returns InvalidArgument,
  // naming the pattern and the fix, for each of these:
  //   - an empty pattern, a bare "!", and "/" or "!/";
  //   - a pattern with a NUL byte, "**", an empty component or a "." or
  //     ".." component;
  //   - an include pattern that ends with '/', since include patterns
  //     never apply to directories.
  static Result<PathFilter> Create(const std::vector<std::string>& include,
                                   const std::vector<std::string>& exclude);

  // Returns true when the entry at `path` (relative to the root, its last
  // component being the entry's name) of type `type` is indexed. Checks
  // only the entry itself, not the directories above it.
  bool Admits(std::string_view path, EntryType type) const;

  // Returns true when the listing of the directory at `dir_path` (relative
  // to the root, "" for the root) is indexed: the directory and every
  // directory above it are admitted. The root is always admitted.
  bool AdmitsListing(std::string_view dir_path) const;

  // Returns true when the filter admits every entry.
  bool empty() const { return include_.empty() && exclude_.empty(); }

  // Returns the lists for logs and the API, such as
  // "include=[*.xml] exclude=[*.part, .*]".
  std::string Describe() const;

  // Include patterns, without the '!' entries of the include list.
  const std::vector<std::string>& include() const { return include_; }
  // Exclude patterns: those of the exclude list, then the '!' entries of
  // the include list with the '!' removed.
  const std::vector<std::string>& exclude() const { return exclude_; }

 private:
  // Pattern is one glob prepared for fnmatch(3).
  struct Pattern {
    std::string glob;        // without a leading or trailing '/'
    bool match_path = false;  // match the relative path, not the name
    bool dirs_only = false;   // written with a trailing '/'
  };

  static bool Matches(const Pattern& pattern, const char* path,
                      const char* name, EntryType type);
  static bool MatchesAny(const std::vector<Pattern>& patterns,
                         std::string_view path, EntryType type);

  std::vector<std::string> include_;
  std::vector<std::string> exclude_;
  std::vector<Pattern> include_patterns_;
  std::vector<Pattern> exclude_patterns_;
};

// FilteringSink passes the listings of a scan through a PathFilter to
// another sink. It drops each listing of a directory that
// PathFilter::AdmitsListing rejects, removes the entries the filter does
// not admit from the others, and forwards the rest. A listing with an error
// status is forwarded unchanged unless its directory is dropped. Accept is
// safe to call from several threads at once when `next` is. Both `next` and
// `filter` must outlive the sink.
class FilteringSink : public ListingSink {
 public:
  FilteringSink(ListingSink& next, const PathFilter& filter)
      : next_(next), filter_(filter) {}

  // Returns ok without calling `next` for a dropped listing, and otherwise
  // the status of `next`.
  Status Accept(DirListing&& listing) override;

 private:
  ListingSink& next_;
  const PathFilter& filter_;
};

}  // namespace dirindex
