// Source: the interface the scheduler drives for every kind of root. The
// local walker (scan/) and the remote listers (net/) implement it, so the
// scheduler never needs to know which one it runs.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "index/listing.h"
#include "index/status.h"

namespace dirindex {

class PathFilter;

// ListingSink receives the directory listings of one scan. Sources may call
// Accept from several threads at once.
class ListingSink {
 public:
  virtual ~ListingSink() = default;

  // Takes one directory's listing. A non-ok return stops the scan: it means
  // the index can no longer store results (for example a failed commit).
  virtual Status Accept(DirListing&& listing) = 0;
};

// ScanRequest is the part of a root that one scan covers.
struct ScanRequest {
  // Directories to list, relative to the root. Empty means the whole tree.
  std::vector<std::string> dirs;
  // List subdirectories of `dirs` too.
  bool recursive = true;
  // Maximum depth below the root that is listed; 0 means unlimited.
  uint32_t max_depth = 0;
  // Directories that this filter does not admit need not be listed, nor
  // anything below them. Sources may ignore it, because the caller removes
  // what the filter rejects from the listings anyway (see FilteringSink),
  // so honouring it only saves work. Null means no filter. It must outlive
  // the Scan call.
  const PathFilter* filter = nullptr;
};

// ScanTotals is the summary a source returns after a scan.
struct ScanTotals {
  uint64_t dirs = 0;
  uint64_t files = 0;    // every non-directory entry
  uint64_t bytes = 0;
  uint64_t failed_dirs = 0;
};

// SourceDetail is one named fact about a source, shown by the API.
struct SourceDetail {
  std::string key;
  std::string text;     // used when is_number is false
  double number = 0;    // used when is_number is true
  bool is_number = false;
};

// Source lists the directories of one root. One scan runs at a time per
// source; implementations may use threads inside Scan.
class Source {
 public:
  virtual ~Source() = default;

  // Lists what `request` covers and hands each directory to `sink`.
  // Returns a non-ok status only when the scan could not run at all (the
  // root is missing or the server unreachable) or `sink` failed; errors on
  // single directories travel inside their DirListing. Stops early when
  // `stop` becomes true and returns StatusCode::kAborted.
  virtual Result<ScanTotals> Scan(const ScanRequest& request,
                                  ListingSink& sink,
                                  const std::atomic<bool>& stop) = 0;

  // Names the source for logs and the API, without secrets.
  virtual std::string Describe() const = 0;

  // Returns facts about the source for GET /v1/roots/{root}: for remote
  // sources the host, detected protocol features, connection state and the
  // last listing's duration and entry count. Never secrets.
  virtual std::vector<SourceDetail> Details() const { return {}; }
};

}  // namespace dirindex
