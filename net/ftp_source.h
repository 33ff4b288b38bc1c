// The FTP and FTPS source: lists a root's directories over one reused
// control connection, with MLSD when the server's FEAT reply lists it and
// LIST otherwise. MakeFtpSource (declared in remote_source.h) creates it.
#pragma once

#include "index/status.h"
#include "net/ftp_connection.h"
#include "net/remote_source.h"

namespace dirindex {

// Checks a root's ftp:// or ftps:// URL and options and splits them into
// connection settings. Fails with kInvalidArgument naming the value: a
// scheme other than ftp or ftps, a missing host, a password inside the
// URL (it belongs in password_file), a user without password_file, a
// query or fragment, or ca_file on a plain ftp:// source.
Result<FtpSettings> ParseFtpSettings(const RemoteOptions& options);

}  // namespace dirindex
