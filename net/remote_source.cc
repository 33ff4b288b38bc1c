#include "net/remote_source.h"

#include <string_view>

namespace dirindex {

Result<std::unique_ptr<Source>> MakeRemoteSource(const RemoteOptions& options) {
  std::string_view url = options.url;
  if (url.starts_with("sftp://")) return MakeSftpSource(options);
  if (url.starts_with("ftp://") || url.starts_with("ftps://")) return MakeFtpSource(options);
  return InvalidArgument("source '" + options.url +
                         "' has an unknown scheme; use file://, sftp://, ftp:// or ftps://");
}

}  // namespace dirindex
