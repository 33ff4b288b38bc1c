#include "net/remote_source.h"

namespace dirindex {

Result<std::unique_ptr<Source>> MakeSftpSource(const RemoteOptions& options) {
  return Status(StatusCode::kUnavailable, "source '" + options.url + "': SFTP is not built yet");
}

}  // namespace dirindex
