#include "net/remote_source.h"

namespace dirindex {

Result<std::unique_ptr<Source>> MakeFtpSource(const RemoteOptions& options) {
  return Status(StatusCode::kUnavailable, "source '" + options.url + "': FTP is not built yet");
}

}  // namespace dirindex
