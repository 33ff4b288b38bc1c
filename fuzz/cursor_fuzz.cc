// Fuzzes the cursor decoder: any text must decode or fail with
// kInvalidArgument, and a decoded cursor must encode back to a string that
// decodes to the same cursor.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "index/cursor.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto decoded = dirindex::DecodeCursor(text);
  if (!decoded.ok()) {
    if (decoded.status().code() != dirindex::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  auto again = dirindex::DecodeCursor(dirindex::EncodeCursor(*decoded));
  if (!again.ok() || again->seq != decoded->seq || again->epoch != decoded->epoch ||
      again->root != decoded->root || again->snapshot != decoded->snapshot) {
    std::abort();
  }
  return 0;
}
