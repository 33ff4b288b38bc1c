// Fuzzes the configuration parser and the value parsers it uses: any text
// must give a configuration or an error, never a crash or a hang.
#include <cstdint>
#include <string_view>

#include "api/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)dirindex::ParseConfig(text, "fuzz.toml");
  (void)dirindex::ParseDuration(text);
  (void)dirindex::ParseByteSize(text);
  (void)dirindex::ParseListenAddress(text);
  (void)dirindex::ValidateRootName(text);
  return 0;
}
