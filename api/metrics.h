// Metrics for GET /metrics in the Prometheus text exposition format
// (version 0.0.4): the HTTP server's own counters, plus renderers for the
// per-root and index figures read at scrape time.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api/json.h"
#include "index/index.h"

namespace dirindex {

// ServerMetrics counts requests and connections. All methods are safe to
// call from any thread.
class ServerMetrics {
 public:
  // Counts one request by its route template and response status.
  void CountRequest(std::string_view route, unsigned status);
  void ConnectionOpened();
  void ConnectionClosed();
  // Counts a connection closed at once because max_connections were open.
  void CountRejectedConnection();

  int64_t open_connections() const { return open_connections_.load(); }

  void AppendPrometheus(std::string& out) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, unsigned>, uint64_t> requests_;
  std::atomic<int64_t> open_connections_{0};
  std::atomic<uint64_t> rejected_connections_{0};
};

// Appends the families for each root: entries, files, bytes, last sequence,
// scans, failed scans, failed directories of the last scan, and error state.
void AppendRootMetrics(std::string& out, const std::vector<RootStatus>& roots);

// Appends the LMDB map size, used bytes, map resizes and commits.
void AppendIndexMetrics(std::string& out, const IndexStats& stats);

// Appends one gauge family with a single unlabeled sample.
void AppendGauge(std::string& out, std::string_view name, std::string_view help,
                 int64_t value);

}  // namespace dirindex
