// Api: one handler per route of the HTTP API, independent of the HTTP
// library. Handlers take the root name and the raw query string, and return
// the status and JSON body to send. Errors come back as values, never as
// exceptions. The change feed takes two steps, so that the server can
// repeat the read of a long-poll without parsing the request again.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "api/long_poll.h"
#include "api/metrics.h"
#include "api/query.h"
#include "index/index.h"
#include "scan/scheduler.h"

namespace dirindex {

// ApiResponse is the status, body and special headers of one response.
struct ApiResponse {
  unsigned status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::string allow;          // the Allow header of a 405
  bool authenticate = false;  // send WWW-Authenticate: Bearer (a 401)
};

ApiResponse ErrorResponse(unsigned status, std::string_view code,
                          std::string_view message);

// Maps a Status to its HTTP status: invalid argument 400, not found 404,
// unavailable, aborted or resource exhausted 503, timed out 504, else 500.
ApiResponse StatusErrorResponse(const Status& status);

// ServedRoot is a root that the API serves.
struct ServedRoot {
  std::string name;
  uint32_t id = 0;
};

// ChangesPoll is a parsed change query of one root. A long-poll reads it
// again after each wake-up until it has changes or its time is up.
struct ChangesPoll {
  std::string root;
  uint32_t root_id = 0;
  ChangesParams params;
};

// PollAttempt is the result of one read of a ChangesPoll: the response to
// send, or, when nothing is new yet, the sequence to wait beyond.
struct PollAttempt {
  std::optional<ApiResponse> response;
  uint64_t baseline_seq = 0;
};

class Api {
 public:
  Api(Index& index, Scheduler& scheduler, std::vector<ServedRoot> roots);

  ApiResponse ListRoots(std::string_view query);
  ApiResponse GetRoot(std::string_view root, std::string_view query);
  ApiResponse ListFiles(std::string_view root, std::string_view query);
  ApiResponse StatPath(std::string_view root, std::string_view query);
  ApiResponse Rescan(std::string_view root, std::string_view query);
  ApiResponse Health(std::string_view query);
  ApiResponse Metrics(std::string_view query);

  // Parses a change query and resolves its root.
  Result<ChangesPoll> PrepareChanges(std::string_view root,
                                     std::string_view query);

  // Reads the feed once. With `final` false, an empty page that is not a
  // fresh instance returns no response but the sequence to wait beyond.
  PollAttempt ReadChanges(const ChangesPoll& poll, bool final);

  Result<uint64_t> LastSeq(uint32_t root_id) { return index_.LastSeq(root_id); }

  CommitWaiters& waiters() { return waiters_; }
  ServerMetrics& metrics() { return metrics_; }

 private:
  Result<uint32_t> FindRoot(std::string_view root) const;
  Result<RootStatus> ReadRootStatus(std::string_view root);

  Index& index_;
  Scheduler& scheduler_;
  std::vector<ServedRoot> roots_;
  std::unordered_map<std::string, uint32_t> root_ids_;
  CommitWaiters waiters_;
  ServerMetrics metrics_;
};

}  // namespace dirindex
