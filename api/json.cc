#include "api/json.h"

#include <cstdio>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "index/paths.h"

namespace dirindex {

namespace {

// JsonOut wraps a RapidJSON Writer with string_view overloads and the
// byte-path encoding shared by changes and entries.
class JsonOut {
 public:
  JsonOut() : writer_(buffer_) {}

  void Key(std::string_view key) {
    writer_.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
  }
  // Writes `text`, which the caller guarantees is valid UTF-8.
  void String(std::string_view text) {
    writer_.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
  }
  void Field(std::string_view key, std::string_view text) {
    Key(key);
    String(text);
  }
  void Field(std::string_view key, uint64_t value) {
    Key(key);
    writer_.Uint64(value);
  }
  void Field(std::string_view key, int64_t value) {
    Key(key);
    writer_.Int64(value);
  }
  void BoolField(std::string_view key, bool value) {
    Key(key);
    writer_.Bool(value);
  }
  void Number(double value) { writer_.Double(value); }
  void NullField(std::string_view key) {
    Key(key);
    writer_.Null();
  }

  // Writes `key` with the path as text and, when the bytes are not valid
  // UTF-8, `key`_b64 with the exact bytes.
  void PathField(std::string_view key, std::string_view bytes) {
    if (IsValidUtf8(bytes)) {
      Field(key, bytes);
      return;
    }
    Field(key, ToValidUtf8(bytes));
    Field(std::string(key) + "_b64", Base64Encode(bytes));
  }

  void StartObject() { writer_.StartObject(); }
  void EndObject() { writer_.EndObject(); }
  void StartArray(std::string_view key) {
    Key(key);
    writer_.StartArray();
  }
  void EndArray() { writer_.EndArray(); }

  std::string Take() const {
    return std::string(buffer_.GetString(), buffer_.GetSize());
  }

 private:
  rapidjson::StringBuffer buffer_;
  rapidjson::Writer<rapidjson::StringBuffer> writer_;
};

void WriteChange(JsonOut& out, const Change& change) {
  out.StartObject();
  out.Field("seq", change.seq);
  out.Field("op", ChangeOpName(change.op));
  out.PathField("path", change.path);
  out.Field("type", EntryTypeName(change.type));
  if (change.known & kKnownSize) out.Field("size", change.size);
  if (change.known & kKnownMtime) out.Field("mtime_ns", change.mtime_ns);
  if (change.op == ChangeOp::kRenamed) {
    out.PathField("old_path", change.old_path);
    if (change.inferred) out.BoolField("inferred", true);
  }
  if (change.origin == ChangeOrigin::kReconcile) out.Field("origin", "reconcile");
  out.EndObject();
}

void WriteEntry(JsonOut& out, const Entry& entry) {
  out.StartObject();
  out.PathField("path", entry.path);
  out.Field("type", EntryTypeName(entry.type));
  if (entry.known & kKnownSize) out.Field("size", entry.size);
  if (entry.known & kKnownMtime) out.Field("mtime_ns", entry.mtime_ns);
  if (entry.known & kKnownMode) {
    out.Field("mode", static_cast<uint64_t>(entry.mode));
  }
  out.Field("seq", entry.seq);
  out.BoolField("stable", entry.stable);
  out.EndObject();
}

std::string_view RootState(const RootStatus& root) {
  if (root.runtime && root.runtime->scanning) return "scanning";
  if (!root.info.last_error.empty()) return "error";
  if (root.info.scans == 0) return "pending";
  return "ready";
}

void WriteLastScan(JsonOut& out, const RootInfo& info) {
  if (info.scans == 0) {
    out.NullField("last_scan");
    return;
  }
  out.Key("last_scan");
  out.StartObject();
  out.Field("started_ns", info.last_scan_started_ns);
  out.Field("finished_ns", info.last_scan_finished_ns);
  out.Field("duration_ms", info.last_scan_duration_ns / 1'000'000);
  out.Field("entries", info.last_scan_entries);
  out.Field("changes", info.last_scan_changes);
  out.Field("failed_dirs", info.last_scan_failed_dirs);
  out.EndObject();
}

void WriteLastError(JsonOut& out, const RootInfo& info) {
  if (info.last_error.empty()) {
    out.NullField("last_error");
    return;
  }
  out.Key("last_error");
  out.StartObject();
  out.Field("message", ToValidUtf8(info.last_error));
  out.Field("time_ns", info.last_error_ns);
  out.EndObject();
}

void WriteStrings(JsonOut& out, std::string_view key, const std::vector<std::string>& items) {
  out.StartArray(key);
  for (const std::string& item : items) out.String(ToValidUtf8(item));
  out.EndArray();
}

void WriteReconcile(JsonOut& out, const RootInfo& info) {
  const ReconcileReport& report = info.last_reconcile;
  if (report.finished_ns == 0) {
    out.NullField("last_reconcile");
    return;
  }
  out.Key("last_reconcile");
  out.StartObject();
  out.Field("finished_ns", report.finished_ns);
  out.Field("duration_ms", report.duration_ns / 1'000'000);
  out.Field("entries_checked", report.entries_checked);
  out.Field("failed_dirs", report.failed_dirs);
  out.Key("drift");
  out.StartObject();
  out.Field("total", report.drift());
  out.Field("added", report.added);
  out.Field("modified", report.modified);
  out.Field("deleted", report.deleted);
  out.Field("renamed", report.renamed);
  out.EndObject();
  if (report.error.empty()) {
    out.NullField("error");
  } else {
    out.Field("error", ToValidUtf8(report.error));
  }
  out.EndObject();
}

// The root's workflow settings and their live state: settle time,
// filters, watching and full rescans.
void WriteWorkflow(JsonOut& out, const RootInfo& info, const RootRuntime& runtime) {
  out.Field("settle_ms", static_cast<uint64_t>(runtime.settle.count() / 1'000'000));
  out.Field("unsettled", info.unsettled);
  out.Key("filters");
  out.StartObject();
  WriteStrings(out, "include", runtime.include);
  WriteStrings(out, "exclude", runtime.exclude);
  out.EndObject();
  out.Field("targeted_scans", runtime.targeted_scans);

  out.Key("watch");
  out.StartObject();
  out.BoolField("enabled", runtime.watched);
  if (runtime.watched) {
    const WatchStats& watch = runtime.watch;
    out.BoolField("running", watch.running);
    out.Field("watches", watch.watches);
    out.Field("events", watch.events);
    out.Field("overflows", watch.overflows);
    out.Field("overflow_rescans", watch.overflow_rescans);
    out.Field("watch_failures", watch.watch_failures);
    if (watch.last_problem.empty()) {
      out.NullField("last_problem");
    } else {
      out.Field("last_problem", ToValidUtf8(watch.last_problem));
    }
  }
  out.EndObject();

  out.Key("full_rescan");
  out.StartObject();
  if (runtime.full_rescan_interval.count() > 0) {
    out.Field("interval_ms", static_cast<uint64_t>(runtime.full_rescan_interval.count()));
  }
  if (runtime.full_rescan_minute >= 0) {
    char at[16];
    std::snprintf(at, sizeof at, "%02d:%02d", runtime.full_rescan_minute / 60,
                  runtime.full_rescan_minute % 60);
    out.Field("daily_at", std::string_view(at));
  }
  if (runtime.next_full_rescan_ns != 0) {
    out.Field("next_ns", runtime.next_full_rescan_ns);
  } else {
    out.NullField("next_ns");
  }
  out.Field("runs", info.reconciles);
  out.EndObject();
  WriteReconcile(out, info);
}

void WriteRoot(JsonOut& out, const RootStatus& root) {
  const RootInfo& info = root.info;
  out.StartObject();
  out.Field("name", info.name);
  out.Field("source", ToValidUtf8(info.source));
  out.Field("state", RootState(root));
  out.Field("files", info.files);
  out.Field("dirs", info.dirs);
  out.Field("bytes", info.bytes);
  out.Field("last_seq", info.last_seq);
  out.Field("scans", info.scans);
  if (root.runtime) {
    out.Field("rescan_interval_ms",
              static_cast<uint64_t>(root.runtime->rescan_interval.count()));
  }
  WriteLastScan(out, info);
  if (info.last_good_scan_ns != 0) {
    out.Field("last_good_scan_ns", info.last_good_scan_ns);
  } else {
    out.NullField("last_good_scan_ns");
  }
  WriteLastError(out, info);
  if (root.runtime) WriteWorkflow(out, info, *root.runtime);
  if (root.runtime && !root.runtime->source_details.empty()) {
    out.Key("source_details");
    out.StartObject();
    for (const SourceDetail& detail : root.runtime->source_details) {
      if (detail.is_number) {
        out.Key(detail.key);
        out.Number(detail.number);
      } else {
        out.Field(detail.key, ToValidUtf8(detail.text));
      }
    }
    out.EndObject();
  }
  out.EndObject();
}

}  // namespace

std::string RootsJson(const std::vector<RootStatus>& roots) {
  JsonOut out;
  out.StartObject();
  out.StartArray("roots");
  for (const RootStatus& root : roots) WriteRoot(out, root);
  out.EndArray();
  out.EndObject();
  return out.Take();
}

std::string RootJson(const RootStatus& root) {
  JsonOut out;
  WriteRoot(out, root);
  return out.Take();
}

std::string ChangesJson(std::string_view root, const FeedPage& page) {
  JsonOut out;
  out.StartObject();
  out.Field("root", root);
  out.BoolField("fresh_instance", page.fresh_instance);
  out.StartArray("changes");
  for (const Change& change : page.changes) WriteChange(out, change);
  out.EndArray();
  out.Field("cursor", page.cursor);
  out.BoolField("more", page.more);
  out.EndObject();
  return out.Take();
}

std::string FilesJson(std::string_view root, const FilesPage& page) {
  JsonOut out;
  out.StartObject();
  out.Field("root", root);
  out.StartArray("entries");
  for (const Entry& entry : page.entries) WriteEntry(out, entry);
  out.EndArray();
  if (page.next.empty()) {
    out.NullField("next");
  } else {
    out.Field("next", page.next);
  }
  out.EndObject();
  return out.Take();
}

std::string EntryJson(const Entry& entry) {
  JsonOut out;
  WriteEntry(out, entry);
  return out.Take();
}

std::string RescanJson(std::string_view root, uint64_t rescan_id, bool full) {
  JsonOut out;
  out.StartObject();
  out.Field("root", root);
  out.Field("rescan_id", rescan_id);
  out.BoolField("full", full);
  out.EndObject();
  return out.Take();
}

std::string ErrorJson(std::string_view code, std::string_view message) {
  JsonOut out;
  out.StartObject();
  out.Key("error");
  out.StartObject();
  out.Field("code", code);
  out.Field("message", ToValidUtf8(message));
  out.EndObject();
  out.EndObject();
  return out.Take();
}

}  // namespace dirindex
