#include "api/metrics.h"

#include <functional>

namespace dirindex {

namespace {

void AppendHeader(std::string& out, std::string_view name,
                  std::string_view help, std::string_view type) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

// Escapes a label value as the exposition format requires: backslash,
// double quote and line feed.
std::string EscapeLabel(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void AppendRootSample(std::string& out, std::string_view name,
                      std::string_view root, uint64_t value) {
  out += name;
  out += "{root=\"";
  out += EscapeLabel(root);
  out += "\"} ";
  out += std::to_string(value);
  out += '\n';
}

// RootFamily is one per-root metric: its name, help, type and how to read
// its value from a root.
struct RootFamily {
  std::string_view name;
  std::string_view help;
  std::string_view type;
  std::function<uint64_t(const RootStatus&)> value;
};

std::vector<RootFamily> RootFamilies() {
  return {
      {"dirindex_root_entries", "Indexed entries (files and directories).",
       "gauge", [](const RootStatus& r) { return r.info.files + r.info.dirs; }},
      {"dirindex_root_files", "Indexed non-directory entries.", "gauge",
       [](const RootStatus& r) { return r.info.files; }},
      {"dirindex_root_bytes", "Sum of the sizes of indexed files.", "gauge",
       [](const RootStatus& r) { return r.info.bytes; }},
      {"dirindex_root_last_seq", "Sequence number of the newest change.",
       "gauge", [](const RootStatus& r) { return r.info.last_seq; }},
      {"dirindex_root_scans_total", "Completed scans.", "counter",
       [](const RootStatus& r) { return r.info.scans; }},
      {"dirindex_root_failed_scans_total",
       "Scans that could not run or stopped early, since the process started.",
       "counter",
       [](const RootStatus& r) {
         return r.runtime ? r.runtime->scans_failed : 0;
       }},
      {"dirindex_root_last_scan_failed_dirs",
       "Directories the last scan could not read.", "gauge",
       [](const RootStatus& r) { return r.info.last_scan_failed_dirs; }},
      {"dirindex_root_error", "1 while the root has a last error, else 0.",
       "gauge",
       [](const RootStatus& r) -> uint64_t {
         return r.info.last_error.empty() ? 0 : 1;
       }},
      {"dirindex_root_scanning", "1 while a scan of the root runs, else 0.",
       "gauge",
       [](const RootStatus& r) -> uint64_t {
         return r.runtime && r.runtime->scanning ? 1 : 0;
       }},
      {"dirindex_root_unsettled_entries",
       "Entries whose newest state waits for the settle time.", "gauge",
       [](const RootStatus& r) { return r.info.unsettled; }},
      {"dirindex_root_targeted_scans_total",
       "Scans of single directories marked by watching or settling, since the process started.",
       "counter",
       [](const RootStatus& r) -> uint64_t {
         return r.runtime ? r.runtime->targeted_scans : 0;
       }},
      {"dirindex_root_watches", "Directories watched with inotify.", "gauge",
       [](const RootStatus& r) -> uint64_t {
         return r.runtime ? r.runtime->watch.watches : 0;
       }},
      {"dirindex_root_inotify_overflows_total",
       "inotify queue overflows, each followed by a rescan of the whole root.", "counter",
       [](const RootStatus& r) -> uint64_t {
         return r.runtime ? r.runtime->watch.overflows : 0;
       }},
      {"dirindex_root_overflow_rescans_total",
       "Whole-root rescans asked for by inotify queue overflows.", "counter",
       [](const RootStatus& r) -> uint64_t {
         return r.runtime ? r.runtime->watch.overflow_rescans : 0;
       }},
      {"dirindex_root_watch_failures_total",
       "Directories left unwatched (watch limit or error); periodic rescans cover them.",
       "counter",
       [](const RootStatus& r) -> uint64_t {
         return r.runtime ? r.runtime->watch.watch_failures : 0;
       }},
      {"dirindex_root_full_rescans_total",
       "Full rescans, with or without drift, since the process started.", "counter",
       [](const RootStatus& r) { return r.info.reconciles; }},
      {"dirindex_root_last_full_rescan_drift",
       "Changes the newest full rescan found that the other scans had missed.", "gauge",
       [](const RootStatus& r) { return r.info.last_reconcile.drift(); }},
  };
}

void AppendCounter(std::string& out, std::string_view name,
                   std::string_view help, uint64_t value) {
  AppendHeader(out, name, help, "counter");
  out += name;
  out += ' ';
  out += std::to_string(value);
  out += '\n';
}

}  // namespace

void ServerMetrics::CountRequest(std::string_view route, unsigned status) {
  std::lock_guard lock(mutex_);
  ++requests_[{std::string(route), status}];
}

void ServerMetrics::ConnectionOpened() { ++open_connections_; }

void ServerMetrics::ConnectionClosed() { --open_connections_; }

void ServerMetrics::CountRejectedConnection() { ++rejected_connections_; }

void ServerMetrics::AppendPrometheus(std::string& out) const {
  AppendHeader(out, "dirindex_http_requests_total",
               "HTTP requests by route template and response status.",
               "counter");
  {
    std::lock_guard lock(mutex_);
    for (const auto& [key, count] : requests_) {
      out += "dirindex_http_requests_total{route=\"";
      out += EscapeLabel(key.first);
      out += "\",status=\"";
      out += std::to_string(key.second);
      out += "\"} ";
      out += std::to_string(count);
      out += '\n';
    }
  }
  AppendGauge(out, "dirindex_http_connections_open", "Open HTTP connections.",
              open_connections_.load());
  AppendCounter(out, "dirindex_http_connections_rejected_total",
                "Connections closed at once because too many were open.",
                rejected_connections_.load());
}

void AppendRootMetrics(std::string& out, const std::vector<RootStatus>& roots) {
  for (const RootFamily& family : RootFamilies()) {
    AppendHeader(out, family.name, family.help, family.type);
    for (const RootStatus& root : roots) {
      AppendRootSample(out, family.name, root.info.name, family.value(root));
    }
  }
  constexpr std::string_view kDrift = "dirindex_root_drift_total";
  AppendHeader(out, kDrift,
               "Changes found by full rescans that the other scans had missed, by kind, since "
               "the process started.",
               "counter");
  for (const RootStatus& root : roots) {
    const ReconcileReport& drift = root.info.drift_total;
    std::pair<std::string_view, uint64_t> kinds[] = {
        {"added", drift.added}, {"modified", drift.modified}, {"deleted", drift.deleted}, {"renamed", drift.renamed}};
    for (const auto& [op, count] : kinds) {
      out += kDrift;
      out += "{root=\"";
      out += EscapeLabel(root.info.name);
      out += "\",op=\"";
      out += op;
      out += "\"} ";
      out += std::to_string(count);
      out += '\n';
    }
  }
}

void AppendIndexMetrics(std::string& out, const IndexStats& stats) {
  AppendGauge(out, "dirindex_index_map_size_bytes",
              "Size of the LMDB memory map.",
              static_cast<int64_t>(stats.map_size_bytes));
  AppendGauge(out, "dirindex_index_used_bytes", "Bytes of the LMDB map in use.",
              static_cast<int64_t>(stats.used_bytes));
  AppendCounter(out, "dirindex_index_map_resizes_total",
                "Times the LMDB map grew because it was full.",
                stats.map_resizes);
  AppendCounter(out, "dirindex_index_commits_total",
                "LMDB write transactions committed.", stats.commits);
  AppendCounter(out, "dirindex_index_failed_commits_total",
                "LMDB write transactions that failed.", stats.failed_commits);
}

void AppendGauge(std::string& out, std::string_view name, std::string_view help,
                 int64_t value) {
  AppendHeader(out, name, help, "gauge");
  out += name;
  out += ' ';
  out += std::to_string(value);
  out += '\n';
}

}  // namespace dirindex
