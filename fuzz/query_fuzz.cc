// Fuzzes the HTTP query parsers with arbitrary query strings. Every parser
// must return a value or an error; a path it accepts must be relative and
// stay inside the root.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "api/query.h"
#include "index/paths.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view query(reinterpret_cast<const char*>(data), size);
  (void)dirindex::ParseChangesQuery(query);
  (void)dirindex::ParseFilesQuery(query);
  (void)dirindex::ParseRescanQuery(query);
  (void)dirindex::ParseEmptyQuery(query);
  (void)dirindex::ParseLimit(query);
  (void)dirindex::ParseWait(query);
  auto path = dirindex::ParseStatQuery(query);
  if (path.ok() && !dirindex::ValidateRelativePath(*path).ok()) std::abort();
  auto decoded = dirindex::PercentDecode(query, true);
  if (decoded && dirindex::PercentDecode(dirindex::PercentEncode(*decoded), true) != decoded) {
    std::abort();
  }
  return 0;
}
