// libFuzzer target for the FTP listing parsers and the TZif reader. The
// first input byte picks the mode; the rest is the listing or zone file.
//
//   mode % 4 == 0  MLSD listing
//   mode % 4 == 1  LIST listing in the UTC zone
//   mode % 4 == 2  LIST listing in Europe/Warsaw, when the zone loads
//   mode % 4 == 3  TZif file, then conversions at a spread of instants
//
// For listings, the bytes are also fed in pieces whose length the second
// byte sets, and the result must equal that of a single Feed, because
// parsing may not depend on how the network splits the data.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "net/ftp_parse.h"
#include "net/ftp_timezone.h"

namespace {

using dirindex::FtpEntry;
using dirindex::ListingFormat;
using dirindex::ListingParser;
using dirindex::ListTimeContext;
using dirindex::TimeZone;

// 2026-12-04 17:01:51 UTC, so year-less LIST dates resolve the same way in
// every run.
constexpr int64_t kNow = 1'796'403'711;

bool SameEntry(const FtpEntry& a, const FtpEntry& b) {
  return a.entry.name == b.entry.name && a.entry.type == b.entry.type &&
         a.entry.known == b.entry.known && a.entry.size == b.entry.size &&
         a.entry.mtime_ns == b.entry.mtime_ns && a.entry.mode == b.entry.mode &&
         a.entry.mtime_precision == b.entry.mtime_precision && a.unique == b.unique &&
         a.link_target == b.link_target && a.date_only == b.date_only;
}

void FuzzListing(ListingFormat format, const ListTimeContext& context, uint8_t cut,
                 std::string_view data) {
  auto whole = dirindex::ParseListing(format, data, context);

  ListingParser pieces(format, context);
  size_t step = cut % 64 + 1;
  for (size_t pos = 0; pos < data.size(); pos += step) pieces.Feed(data.substr(pos, step));
  auto split = pieces.Finish();

  if (whole.ok() != split.ok()) std::abort();
  if (!whole.ok()) {
    if (whole.status().message() != split.status().message()) std::abort();
    return;
  }
  if (whole->size() != split->size()) std::abort();
  for (size_t i = 0; i < whole->size(); ++i) {
    const FtpEntry& item = (*whole)[i];
    if (!SameEntry(item, (*split)[i])) std::abort();
    // A parsed entry always has a name; "." and ".." are never entries.
    if (item.entry.name.empty() || item.entry.name == "." || item.entry.name == "..") {
      std::abort();
    }
  }
}

void FuzzTzif(std::string_view data) {
  auto zone = TimeZone::FromTzif("fuzz", data);
  if (!zone.ok()) return;
  for (int64_t t = -4'000'000'000; t <= 8'000'000'000; t += 123'456'789) {
    int32_t offset = zone->OffsetAt(t);
    if (offset < -26 * 3600 || offset > 26 * 3600) std::abort();
    int64_t back = zone->LocalToUtc(t + offset);
    (void)back;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  if (size < 2) return 0;
  uint8_t mode = bytes[0];
  uint8_t cut = bytes[1];
  std::string_view data(reinterpret_cast<const char*>(bytes + 2), size - 2);

  static const auto warsaw = TimeZone::Load("Europe/Warsaw");
  switch (mode % 4) {
    case 0:
      FuzzListing(ListingFormat::kMlsd, ListTimeContext{kNow, nullptr}, cut, data);
      break;
    case 1:
      FuzzListing(ListingFormat::kList, ListTimeContext{kNow, nullptr}, cut, data);
      break;
    case 2:
      if (warsaw.ok()) {
        FuzzListing(ListingFormat::kList, ListTimeContext{kNow, &*warsaw}, cut, data);
      }
      break;
    case 3:
      FuzzTzif(data);
      break;
  }
  return 0;
}
