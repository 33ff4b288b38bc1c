// HttpServer: the HTTP/1.1 front of the Api, on Boost.Beast with
// asynchronous I/O. A small pool of threads runs every connection, so an
// idle keep-alive connection or a waiting long-poll costs a socket and a
// timer but no thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "api/handlers.h"
#include "index/status.h"

namespace dirindex {

// HttpLimits bound what one client may cost the server.
struct HttpLimits {
  size_t max_header_bytes = 8 * 1024;  // request line and fields; 431 past it
  size_t max_body_bytes = 4 * 1024;    // 413 past it; no route reads a body
  // Time from the first byte of a request to its last. A client slower
  // than that is disconnected.
  std::chrono::milliseconds request_timeout{10'000};
  // Time a keep-alive connection may wait for its next request.
  std::chrono::milliseconds idle_timeout{60'000};
  // Time to send one response.
  std::chrono::milliseconds write_timeout{30'000};
  // Connections open at once. Further ones get a 503 response and are closed.
  size_t max_connections = 1024;
  unsigned io_threads = 2;
};

struct HttpServerOptions {
  std::string listen = "127.0.0.1:8750";  // ADDRESS:PORT; port 0 picks one
  // Bearer token every route except /healthz requires. Empty means no
  // authentication, which is allowed only on a loopback address.
  std::string token;
  HttpLimits limits;
};

class HttpServer {
 public:
  // Binds the listen address and starts the io threads. Rejects a
  // non-loopback address without a token. `api` must outlive the server.
  static Result<std::unique_ptr<HttpServer>> Start(
      const HttpServerOptions& options, Api& api);

  ~HttpServer();  // calls Stop

  // Returns the bound port, useful after listening on port 0.
  uint16_t port() const;

  // Wakes the long-polls of `root_id` that wait for a sequence below
  // `last_seq`. Safe to call from any thread. It only posts a task onto the
  // io_context, so it suits Index::SetCommitListener.
  void NotifyCommit(uint32_t root_id, uint64_t last_seq);

  // Stops accepting, drops open connections and waiting long-polls, and
  // joins the io threads. Safe to call more than once.
  void Stop();

 private:
  struct Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dirindex
