// JSON bodies of the HTTP API, written with RapidJSON's streaming Writer.
// Paths are bytes: text fields hold valid UTF-8 (ill-formed sequences
// replaced with U+FFFD), and a path that is not valid UTF-8 also gets a
// "<field>_b64" field with its exact bytes in base64.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "index/index.h"
#include "scan/scheduler.h"

namespace dirindex {

// RootStatus is what GET /v1/roots shows of one root: its stored state and,
// when the scheduler runs it, its live scanning state.
struct RootStatus {
  RootInfo info;
  std::optional<RootRuntime> runtime;
};

std::string RootsJson(const std::vector<RootStatus>& roots);
std::string RootJson(const RootStatus& root);

// {"root", "fresh_instance", "changes": [...], "cursor", "more"}.
std::string ChangesJson(std::string_view root, const FeedPage& page);

// {"root", "entries": [...], "next"}; "next" is null on the last page.
std::string FilesJson(std::string_view root, const FilesPage& page);

// One entry of the current listing, as GET /v1/roots/{root}/stat returns it.
std::string EntryJson(const Entry& entry);

std::string RescanJson(std::string_view root, uint64_t rescan_id, bool full);

// {"error": {"code", "message"}}.
std::string ErrorJson(std::string_view code, std::string_view message);

}  // namespace dirindex
