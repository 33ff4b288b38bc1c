#include "api/routes.h"

#include <optional>

#include "api/query.h"

namespace dirindex {

namespace {

constexpr std::string_view kRootsPrefix = "/v1/roots/";

Route RouteOfAction(std::string_view action) {
  if (action == "changes") return Route::kChanges;
  if (action == "files") return Route::kFiles;
  if (action == "stat") return Route::kStat;
  if (action == "rescan") return Route::kRescan;
  return Route::kNone;
}

}  // namespace

RouteMatch MatchRoute(std::string_view path) {
  if (path == "/v1/roots") return {Route::kRoots, {}};
  if (path == "/healthz") return {Route::kHealthz, {}};
  if (path == "/metrics") return {Route::kMetrics, {}};
  if (path.substr(0, kRootsPrefix.size()) != kRootsPrefix) return {};

  std::string_view rest = path.substr(kRootsPrefix.size());
  size_t slash = rest.find('/');
  std::string_view segment = rest.substr(0, slash);
  std::optional<std::string> root = PercentDecode(segment, false);
  if (segment.empty() || !root) return {};
  if (slash == std::string_view::npos) return {Route::kRoot, std::move(*root)};

  Route route = RouteOfAction(rest.substr(slash + 1));
  if (route == Route::kNone) return {};
  return {route, std::move(*root)};
}

std::string_view RouteTemplate(Route route) {
  switch (route) {
    case Route::kRoots:
      return "/v1/roots";
    case Route::kRoot:
      return "/v1/roots/{root}";
    case Route::kChanges:
      return "/v1/roots/{root}/changes";
    case Route::kFiles:
      return "/v1/roots/{root}/files";
    case Route::kStat:
      return "/v1/roots/{root}/stat";
    case Route::kRescan:
      return "/v1/roots/{root}/rescan";
    case Route::kHealthz:
      return "/healthz";
    case Route::kMetrics:
      return "/metrics";
    case Route::kNone:
      break;
  }
  return "unmatched";
}

std::string_view RouteMethod(Route route) {
  return route == Route::kRescan ? "POST" : "GET";
}

}  // namespace dirindex
