#include "api/handlers.h"

#include <utility>

#include "api/json.h"
#include "index/paths.h"

namespace dirindex {

namespace {

ApiResponse JsonResponse(unsigned status, std::string body) {
  ApiResponse response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

}  // namespace

ApiResponse ErrorResponse(unsigned status, std::string_view code,
                          std::string_view message) {
  return JsonResponse(status, ErrorJson(code, message));
}

ApiResponse StatusErrorResponse(const Status& status) {
  unsigned http_status = 500;
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
      http_status = 400;
      break;
    case StatusCode::kNotFound:
      http_status = 404;
      break;
    case StatusCode::kUnavailable:
    case StatusCode::kAborted:
    case StatusCode::kResourceExhausted:
      http_status = 503;
      break;
    case StatusCode::kTimedOut:
      http_status = 504;
      break;
    default:
      break;
  }
  return ErrorResponse(http_status, StatusCodeName(status.code()),
                       status.message());
}

Api::Api(Index& index, Scheduler& scheduler, std::vector<ServedRoot> roots)
    : index_(index), scheduler_(scheduler), roots_(std::move(roots)) {
  for (const ServedRoot& root : roots_) root_ids_[root.name] = root.id;
}

Result<uint32_t> Api::FindRoot(std::string_view root) const {
  auto it = root_ids_.find(std::string(root));
  if (it == root_ids_.end()) {
    return NotFound("root '" + ToValidUtf8(root) +
                    "' not found; GET /v1/roots lists the configured roots");
  }
  return it->second;
}

Result<RootStatus> Api::ReadRootStatus(std::string_view root) {
  Result<uint32_t> id = FindRoot(root);
  if (!id.ok()) return id.status();
  Result<RootInfo> info = index_.GetRoot(root);
  if (!info.ok()) return info.status();
  return RootStatus{std::move(*info), scheduler_.Runtime(root)};
}

ApiResponse Api::ListRoots(std::string_view query) {
  Status params = ParseEmptyQuery(query);
  if (!params.ok()) return StatusErrorResponse(params);

  std::vector<RootStatus> roots;
  for (const ServedRoot& served : roots_) {
    Result<RootStatus> root = ReadRootStatus(served.name);
    if (!root.ok()) return StatusErrorResponse(root.status());
    roots.push_back(std::move(*root));
  }
  return JsonResponse(200, RootsJson(roots));
}

ApiResponse Api::GetRoot(std::string_view root, std::string_view query) {
  Status params = ParseEmptyQuery(query);
  if (!params.ok()) return StatusErrorResponse(params);
  Result<RootStatus> status = ReadRootStatus(root);
  if (!status.ok()) return StatusErrorResponse(status.status());
  return JsonResponse(200, RootJson(*status));
}

Result<ChangesPoll> Api::PrepareChanges(std::string_view root,
                                        std::string_view query) {
  Result<uint32_t> id = FindRoot(root);
  if (!id.ok()) return id.status();
  Result<ChangesParams> params = ParseChangesQuery(query);
  if (!params.ok()) return params.status();
  return ChangesPoll{std::string(root), *id, std::move(*params)};
}

PollAttempt Api::ReadChanges(const ChangesPoll& poll, bool final) {
  // The sequence is read before the feed, so a commit that lands between
  // the two reads moves LastSeq past the baseline and the waiter, which
  // compares against LastSeq once it is registered, reads again.
  Result<uint64_t> baseline = index_.LastSeq(poll.root_id);
  if (!baseline.ok()) return {StatusErrorResponse(baseline.status()), 0};

  const ChangesParams& params = poll.params;
  Result<FeedPage> page = index_.ReadChanges(poll.root_id, params.since,
                                             params.limit, params.prefix);
  if (!page.ok()) return {StatusErrorResponse(page.status()), 0};

  bool nothing_new =
      page->changes.empty() && !page->fresh_instance && !page->more;
  if (nothing_new && !final) return {std::nullopt, *baseline};
  return {JsonResponse(200, ChangesJson(poll.root, *page)), *baseline};
}

ApiResponse Api::ListFiles(std::string_view root, std::string_view query) {
  Result<uint32_t> id = FindRoot(root);
  if (!id.ok()) return StatusErrorResponse(id.status());
  Result<FilesQuery> files_query = ParseFilesQuery(query);
  if (!files_query.ok()) return StatusErrorResponse(files_query.status());

  Result<FilesPage> page = index_.ListFiles(*id, *files_query);
  if (!page.ok()) return StatusErrorResponse(page.status());
  return JsonResponse(200, FilesJson(root, *page));
}

ApiResponse Api::StatPath(std::string_view root, std::string_view query) {
  Result<uint32_t> id = FindRoot(root);
  if (!id.ok()) return StatusErrorResponse(id.status());
  Result<std::string> path = ParseStatQuery(query);
  if (!path.ok()) return StatusErrorResponse(path.status());

  Result<std::optional<Entry>> entry = index_.Stat(*id, *path);
  if (!entry.ok()) return StatusErrorResponse(entry.status());
  if (!entry->has_value()) {
    return ErrorResponse(404, "not_found",
                         "path '" + ToValidUtf8(*path) +
                             "' not found in root '" + std::string(root) +
                             "'; GET /v1/roots/" + std::string(root) +
                             "/files lists the indexed paths");
  }
  return JsonResponse(200, EntryJson(**entry));
}

ApiResponse Api::Rescan(std::string_view root, std::string_view query) {
  Result<uint32_t> id = FindRoot(root);
  if (!id.ok()) return StatusErrorResponse(id.status());
  Result<bool> full = ParseRescanQuery(query);
  if (!full.ok()) return StatusErrorResponse(full.status());

  Result<uint64_t> rescan_id = scheduler_.RequestRescan(root, *full);
  if (!rescan_id.ok()) return StatusErrorResponse(rescan_id.status());
  return JsonResponse(202, RescanJson(root, *rescan_id, *full));
}

ApiResponse Api::Health(std::string_view query) {
  Status params = ParseEmptyQuery(query);
  if (!params.ok()) return StatusErrorResponse(params);
  // A failed commit that makes later writes untrustworthy leaves the index
  // stuck, so it fails the health check and a supervisor can restart.
  Status writes = index_.WriteHealth();
  if (!writes.ok()) {
    return ErrorResponse(503, "unavailable",
                         "index writes are failing: " + writes.message());
  }
  return JsonResponse(200, "{\"status\":\"ok\"}");
}

ApiResponse Api::Metrics(std::string_view query) {
  Status params = ParseEmptyQuery(query);
  if (!params.ok()) return StatusErrorResponse(params);

  std::vector<RootStatus> roots;
  for (const ServedRoot& served : roots_) {
    Result<RootStatus> root = ReadRootStatus(served.name);
    if (root.ok()) roots.push_back(std::move(*root));
  }

  std::string text;
  metrics_.AppendPrometheus(text);
  AppendGauge(text, "dirindex_long_polls_waiting",
              "Change requests waiting for a commit.",
              static_cast<int64_t>(waiters_.size()));
  AppendRootMetrics(text, roots);
  AppendIndexMetrics(text, index_.Stats());

  ApiResponse response = JsonResponse(200, std::move(text));
  response.content_type = "text/plain; version=0.0.4; charset=utf-8";
  return response;
}

}  // namespace dirindex
