// A small blocking HTTP client for tests, on libcurl, plus helpers that
// start and stop the real dirindex binary.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace dirindex::testing {

struct HttpResponse {
  long status = 0;  // 0 when the request failed before a response
  std::string body;
  std::string error;  // libcurl's message when status is 0
};

// Sends one request to `url` with `method` ("GET" or "POST"). Extra
// headers are "Name: value" strings. `timeout_ms` bounds the whole request.
HttpResponse HttpRequest(const std::string& method, const std::string& url,
                         const std::vector<std::string>& headers = {},
                         long timeout_ms = 30'000);

inline HttpResponse HttpGet(const std::string& url, long timeout_ms = 30'000) {
  return HttpRequest("GET", url, {}, timeout_ms);
}

// Returns a TCP port on 127.0.0.1 that was free a moment ago.
int FreeLoopbackPort();

// Returns the path of the built dirindex binary ($DIRINDEX_BINARY).
std::string DirindexBinary();

// ServerProcess runs `dirindex serve` with the given arguments in a child
// process and stops it (SIGTERM, then SIGKILL) when destroyed.
class ServerProcess {
 public:
  ServerProcess() = default;
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Starts `dirindex serve ARGS...`, with stdout and stderr appended to
  // `log_path`, and waits up to `timeout_ms` for GET /healthz on `port` to
  // answer 200. Returns false when it did not come up.
  bool Start(const std::vector<std::string>& args, int port, const std::string& log_path,
             long timeout_ms = 20'000);
  // Sends `signal` and waits for the process to exit. Returns its wait status.
  int Stop(int signal);
  pid_t pid() const { return pid_; }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

// Runs `dirindex ARGS...` to completion and returns its exit code; stdout
// and stderr go to `output`.
int RunDirindex(const std::vector<std::string>& args, std::string* output);

}  // namespace dirindex::testing
