// A small blocking HTTP/1.1 client (Boost.Beast) for the commands that
// talk to a running server: `dirindex changes` and `dirindex status`.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "index/status.h"

namespace dirindex {

// ServerUrl is a parsed "http://HOST:PORT" base URL.
struct ServerUrl {
  std::string host;
  std::string port = "80";
};

// Parses an http:// base URL without a path, such as
// "http://127.0.0.1:8750". https is not supported.
Result<ServerUrl> ParseServerUrl(std::string_view url);

struct HttpReply {
  unsigned status = 0;
  std::string body;
};

// Sends one GET or POST to `target` (path and query) and reads the reply.
// A non-empty `token` is sent as a bearer token. Connection failures and
// the timeout come back as kUnavailable and kTimedOut.
Result<HttpReply> SendHttpRequest(const ServerUrl& server,
                                  std::string_view method,
                                  std::string_view target,
                                  std::string_view token,
                                  std::chrono::milliseconds timeout);

}  // namespace dirindex
