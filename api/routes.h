// The route table of the HTTP API: which path is which route, with the
// method each accepts and the template used in logs and metrics.
#pragma once

#include <string>
#include <string_view>

namespace dirindex {

enum class Route {
  kNone,
  kRoots,    // GET  /v1/roots
  kRoot,     // GET  /v1/roots/{root}
  kChanges,  // GET  /v1/roots/{root}/changes
  kFiles,    // GET  /v1/roots/{root}/files
  kStat,     // GET  /v1/roots/{root}/stat
  kRescan,   // POST /v1/roots/{root}/rescan
  kHealthz,  // GET  /healthz
  kMetrics,  // GET  /metrics
};

struct RouteMatch {
  Route route = Route::kNone;
  std::string root;  // percent-decoded {root} segment, when the route has one
};

// Matches the path part of a request target (without the query).
RouteMatch MatchRoute(std::string_view path);

// Returns the path template, such as "/v1/roots/{root}/changes", or
// "unmatched" for kNone. Metrics and logs use it so that their label sets
// stay small.
std::string_view RouteTemplate(Route route);

// Returns the one method the route accepts: "GET" or "POST".
std::string_view RouteMethod(Route route);

}  // namespace dirindex
