// Service: the running `dirindex serve`. It opens the index, registers
// the configured roots, starts their scheduler and the HTTP server, and
// stops them in the reverse order.
#pragma once

#include <cstdint>
#include <memory>

#include "api/config.h"
#include "api/http_server.h"
#include "index/index.h"
#include "index/status.h"
#include "scan/scheduler.h"

namespace dirindex {

class Service {
 public:
  // Starts everything `config` describes. The first scan of each root
  // begins at once. `limits` bounds the HTTP clients.
  static Result<std::unique_ptr<Service>> Start(const Config& config,
                                                const HttpLimits& limits = {});

  ~Service();  // calls Stop

  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Stops accepting requests, stops the scheduler (which aborts running
  // scans) and closes the index. Safe to call more than once.
  void Stop();

  uint16_t port() const { return server_->port(); }
  Index& index() { return *index_; }
  Scheduler& scheduler() { return *scheduler_; }

 private:
  Service() = default;

  Status OpenIndex(const Config& config);
  Status AddRoots(const Config& config, std::vector<ServedRoot>& served);
  Status StartServer(const Config& config, const HttpLimits& limits);

  std::unique_ptr<Index> index_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<Api> api_;
  std::unique_ptr<HttpServer> server_;
  bool stopped_ = false;
};

}  // namespace dirindex
