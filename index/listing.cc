#include "index/listing.h"

namespace dirindex {

std::string_view EntryTypeName(EntryType type) {
  switch (type) {
    case EntryType::kFile: return "file";
    case EntryType::kDir: return "dir";
    case EntryType::kSymlink: return "symlink";
    case EntryType::kOther: return "other";
    case EntryType::kUnknown: break;
  }
  return "unknown";
}

int64_t PrecisionUnitNs(TimePrecision precision) {
  switch (precision) {
    case TimePrecision::kNanosecond: return 1;
    case TimePrecision::kSecond: return 1'000'000'000;
    case TimePrecision::kMinute: return 60'000'000'000;
    case TimePrecision::kDay: return 86'400'000'000'000;
  }
  return 1;
}

bool IsValidEntryName(std::string_view name) {
  if (name.empty() || name == "." || name == "..") return false;
  return name.find('/') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos;
}

}  // namespace dirindex
