// Design: every connection is a Session on its own strand. A Session
// loops over four steps: wait for the first byte of a request (bounded by
// idle_timeout), read the whole request (bounded by request_timeout and
// the size limits), run its handler, and write the response (bounded by
// write_timeout). A change request with `wait` parks the Session on a
// steady_timer and registers it with the Api's CommitWaiters. A commit on
// its root cancels the timer through the strand, so the Session reads the
// feed again. Nothing blocks an io thread except the LMDB reads of the
// handlers themselves. While a long-poll waits, one read stays outstanding
// on the socket, so a client that hangs up ends the wait at once instead of
// holding its connection until the deadline.
#include "api/http_server.h"

#include <atomic>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "api/config.h"
#include "api/log_limiter.h"
#include "api/query.h"
#include "api/routes.h"

namespace dirindex {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// Bytes read while waiting for the first byte of a request.
constexpr size_t kFirstReadBytes = 1024;
// After an error response the server reads and discards what the client
// still sends, for at most this long and this many bytes, so that closing
// the socket does not reset the connection before the client has read
// the response.
constexpr auto kLingerTimeout = std::chrono::seconds(2);
constexpr size_t kMaxLingerBytes = 256 * 1024;

// ServerState is what every Session shares. It outlives the io_context.
struct ServerState {
  Api& api;
  HttpLimits limits;
  std::string token;
  LogLimiter access_log{20, std::chrono::seconds(60)};
  LogLimiter error_log{5, std::chrono::seconds(60)};
};

std::string_view ToStd(beast::string_view text) {
  return std::string_view(text.data(), text.size());
}

// Compares in time that depends only on the length of `expected`, so the
// time taken does not reveal how many leading bytes of a guess matched.
bool ConstantTimeEquals(std::string_view presented, std::string_view expected) {
  unsigned char difference = presented.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    char byte = i < presented.size() ? presented[i] : 0;
    difference |= static_cast<unsigned char>(byte ^ expected[i]);
  }
  return difference == 0;
}

bool IsAuthorized(std::string_view header, std::string_view token) {
  constexpr std::string_view kScheme = "bearer ";
  if (header.size() < kScheme.size()) return false;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    char c = header[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != kScheme[i]) return false;
  }
  return ConstantTimeEquals(header.substr(kScheme.size()), token);
}

std::string FormatEndpoint(const tcp::endpoint& endpoint) {
  std::string address = endpoint.address().to_string();
  if (endpoint.address().is_v6()) address = "[" + address + "]";
  return address + ":" + std::to_string(endpoint.port());
}

ApiResponse Unauthorized() {
  ApiResponse response = ErrorResponse(
      401, "unauthorized",
      "missing or wrong bearer token; send the header "
      "'Authorization: Bearer <token>' with the token from the server's "
      "token_file");
  response.authenticate = true;
  return response;
}

ApiResponse NoRoute(std::string_view path) {
  return ErrorResponse(404, "not_found",
                       "no route matches '" + std::string(path) +
                           "'; routes are /v1/roots, /v1/roots/{root}, "
                           "/v1/roots/{root}/changes, /files, /stat, "
                           "/rescan, /healthz and /metrics");
}

ApiResponse MethodNotAllowed(std::string_view method, Route route) {
  ApiResponse response =
      ErrorResponse(405, "method_not_allowed",
                    "method " + std::string(method) + " is not allowed on " +
                        std::string(RouteTemplate(route)) + "; use " +
                        std::string(RouteMethod(route)));
  response.allow = std::string(RouteMethod(route));
  return response;
}

// Runs the handler of every route but the change feed, which a Session
// drives itself because it may wait.
ApiResponse HandleRoute(Api& api, const RouteMatch& match,
                        std::string_view query) {
  switch (match.route) {
    case Route::kRoots:
      return api.ListRoots(query);
    case Route::kRoot:
      return api.GetRoot(match.root, query);
    case Route::kFiles:
      return api.ListFiles(match.root, query);
    case Route::kStat:
      return api.StatPath(match.root, query);
    case Route::kRescan:
      return api.Rescan(match.root, query);
    case Route::kHealthz:
      return api.Health(query);
    case Route::kMetrics:
      return api.Metrics(query);
    case Route::kChanges:
    case Route::kNone:
      break;
  }
  return NoRoute("");
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, ServerState& state)
      : stream_(std::move(socket)),
        buffer_(state.limits.max_header_bytes + state.limits.max_body_bytes +
                kFirstReadBytes),
        poll_timer_(stream_.get_executor()),
        state_(state) {
    beast::error_code error;
    tcp::endpoint endpoint = stream_.socket().remote_endpoint(error);
    peer_ = error ? "unknown" : FormatEndpoint(endpoint);
    peer_address_ = error ? "unknown" : endpoint.address().to_string();
    state_.api.metrics().ConnectionOpened();
  }

  ~Session() { state_.api.metrics().ConnectionClosed(); }

  // Both entry points move to the session's strand first, because the
  // acceptor calls them from its own executor.
  void Start() {
    asio::dispatch(stream_.get_executor(),
                   [self = shared_from_this()] { self->WaitForRequest(); });
  }

  // Sends a 503 response without reading a request, then closes.
  void RejectBusy() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      self->request_time_ = Clock::now();
      self->state_.api.metrics().CountRejectedConnection();
      self->Send(ErrorResponse(503, "unavailable",
                               "too many open connections; retry in a moment"),
                 true);
    });
  }

 private:
  void WaitForRequest();
  void OnFirstBytes(beast::error_code error, size_t bytes);
  void ReadRequest();
  void OnRequest(beast::error_code error);
  void OnReadError(beast::error_code error);
  void Dispatch();
  void StartChanges(const std::string& root, std::string_view query);
  void PollChanges();
  void WaitForCommit(uint64_t baseline_seq);
  void WatchForHangup();
  void OnWatchRead(beast::error_code error, size_t bytes);
  void Send(ApiResponse response, bool close_after);
  void OnWrite(beast::error_code error, bool close_after);
  void ContinueAfterResponse(bool close_after);
  void LogResponse(const ApiResponse& response);
  void LingerClose();
  void Drain();
  void Close();

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> response_;
  asio::steady_timer poll_timer_;
  ServerState& state_;

  std::string peer_;
  std::string peer_address_;
  std::string method_;
  std::string target_;
  Route route_ = Route::kNone;
  std::string root_;
  Clock::time_point request_time_;

  ChangesPoll poll_;
  Clock::time_point poll_deadline_;
  uint64_t waiter_id_ = 0;
  size_t lingered_bytes_ = 0;

  // The step after a long-poll's response, when the response was written
  // while the watch read was still outstanding. OnWatchRead takes it.
  enum class AfterWatch : uint8_t { kNothing, kNextRequest, kLingerClose };
  bool waiting_ = false;      // poll_timer_ runs for a waiting long-poll
  bool watching_ = false;     // the read of WatchForHangup is outstanding
  bool client_gone_ = false;  // the client hung up while the long-poll waited
  AfterWatch after_watch_ = AfterWatch::kNothing;
};

void Session::WaitForRequest() {
  // Pipelined bytes are already buffered, so the next request has begun.
  if (buffer_.size() > 0) {
    ReadRequest();
    return;
  }
  stream_.expires_after(state_.limits.idle_timeout);
  stream_.async_read_some(
      buffer_.prepare(kFirstReadBytes),
      [self = shared_from_this()](beast::error_code error, size_t bytes) {
        self->OnFirstBytes(error, bytes);
      });
}

void Session::OnFirstBytes(beast::error_code error, size_t bytes) {
  // An idle timeout or a client closing a keep-alive connection is the
  // normal end of a connection, so neither is logged.
  if (error) {
    Close();
    return;
  }
  buffer_.commit(bytes);
  ReadRequest();
}

void Session::ReadRequest() {
  parser_.emplace();
  parser_->header_limit(static_cast<uint32_t>(state_.limits.max_header_bytes));
  parser_->body_limit(state_.limits.max_body_bytes);
  stream_.expires_after(state_.limits.request_timeout);
  http::async_read(
      stream_, buffer_, *parser_,
      [self = shared_from_this()](beast::error_code error, size_t) {
        self->OnRequest(error);
      });
}

void Session::OnRequest(beast::error_code error) {
  request_time_ = Clock::now();
  route_ = Route::kNone;
  root_.clear();
  if (error) {
    OnReadError(error);
    return;
  }
  const auto& request = parser_->get();
  method_ = std::string(ToStd(request.method_string()));
  target_ = std::string(ToStd(request.target()));
  Dispatch();
}

void Session::OnReadError(beast::error_code error) {
  method_ = "-";
  target_ = "-";
  // The client closed the connection, between requests or in the middle
  // of one, so there is no one to send an error to.
  if (error == http::error::end_of_stream ||
      error == http::error::partial_message) {
    Close();
    return;
  }
  if (error == beast::error::timeout) {
    LogLimiter::LogDecision decision =
        state_.error_log.Check(peer_address_ + " timeout", Clock::now());
    if (decision.write) {
      spdlog::warn("http: request from {} timed out: not complete within {} ms",
                   peer_, state_.limits.request_timeout.count());
    }
    Close();
    return;
  }
  if (error == http::error::header_limit ||
      error == http::error::buffer_overflow) {
    Send(ErrorResponse(431, "header_too_large",
                       "request line and header fields exceed " +
                           std::to_string(state_.limits.max_header_bytes) +
                           " bytes; shorten the URL or the header fields"),
         true);
    return;
  }
  if (error == http::error::body_limit) {
    Send(ErrorResponse(413, "payload_too_large",
                       "request body exceeds " +
                           std::to_string(state_.limits.max_body_bytes) +
                           " bytes; no route reads a body, so send none"),
         true);
    return;
  }
  if (error.category() ==
      http::make_error_code(http::error::bad_target).category()) {
    Send(ErrorResponse(400, "bad_request",
                       "malformed HTTP request: " + error.message()),
         true);
    return;
  }
  Close();
}

void Session::Dispatch() {
  const auto& request = parser_->get();
  RequestTarget target = SplitTarget(target_);

  bool needs_token = !state_.token.empty() && target.path != "/healthz";
  if (needs_token &&
      !IsAuthorized(ToStd(request[http::field::authorization]), state_.token)) {
    Send(Unauthorized(), false);
    return;
  }

  RouteMatch match = MatchRoute(target.path);
  route_ = match.route;
  root_ = match.root;
  if (match.route == Route::kNone) {
    Send(NoRoute(target.path), false);
    return;
  }
  if (method_ != RouteMethod(match.route)) {
    Send(MethodNotAllowed(method_, match.route), false);
    return;
  }
  if (match.route == Route::kChanges) {
    StartChanges(match.root, target.query);
    return;
  }
  Send(HandleRoute(state_.api, match, target.query), false);
}

void Session::StartChanges(const std::string& root, std::string_view query) {
  Result<ChangesPoll> poll = state_.api.PrepareChanges(root, query);
  if (!poll.ok()) {
    Send(StatusErrorResponse(poll.status()), false);
    return;
  }
  poll_ = std::move(*poll);
  poll_deadline_ = Clock::now() + poll_.params.wait;
  PollChanges();
}

void Session::PollChanges() {
  bool final = Clock::now() >= poll_deadline_;
  PollAttempt attempt = state_.api.ReadChanges(poll_, final);
  if (attempt.response) {
    Send(std::move(*attempt.response), false);
    return;
  }
  WaitForCommit(attempt.baseline_seq);
}

void Session::WaitForCommit(uint64_t baseline_seq) {
  auto self = shared_from_this();
  CommitWaiters& waiters = state_.api.waiters();
  waiter_id_ = waiters.Add(poll_.root_id, baseline_seq, [self] {
    asio::post(self->stream_.get_executor(),
               [self] { self->poll_timer_.cancel(); });
  });

  // A commit that landed after the feed was read but before Add sent no
  // wake-up, so compare the sequence once more now that the waiter is in.
  Result<uint64_t> last_seq = state_.api.LastSeq(poll_.root_id);
  if (!last_seq.ok() || *last_seq != baseline_seq) {
    waiters.Remove(waiter_id_);
    asio::post(stream_.get_executor(), [self] { self->PollChanges(); });
    return;
  }

  // A wake-up cancels the timer, and the deadline fires it. Either way
  // the feed is read again, and only a non-empty page or the deadline
  // ends the wait, so a stray cancel costs one extra read. A client that
  // hangs up cancels it too, and then the session closes.
  waiting_ = true;
  poll_timer_.expires_at(poll_deadline_);
  poll_timer_.async_wait([self](beast::error_code) {
    self->waiting_ = false;
    self->state_.api.waiters().Remove(self->waiter_id_);
    if (self->client_gone_) {
      spdlog::debug("http: {} closed the connection during a long-poll of root {}",
                    self->peer_, self->root_);
      self->Close();
      return;
    }
    self->PollChanges();
  });
  WatchForHangup();
}

// Keeps one read outstanding while the long-poll waits. An HTTP client
// sends nothing while it waits for a response, so the read ends with an
// error only when the client closes or resets the connection. A half-close
// (shutdown of the client's sending side) counts as a hangup too. Bytes
// that do arrive are a pipelined request and stay in buffer_, and the
// watch goes on while buffer_ has room.
void Session::WatchForHangup() {
  if (watching_ || buffer_.size() + kFirstReadBytes > buffer_.max_size()) return;
  watching_ = true;
  // poll_timer_ bounds the wait, so the read needs no timeout of its own.
  stream_.expires_never();
  stream_.async_read_some(
      buffer_.prepare(kFirstReadBytes),
      [self = shared_from_this()](beast::error_code error, size_t bytes) {
        self->OnWatchRead(error, bytes);
      });
}

void Session::OnWatchRead(beast::error_code error, size_t bytes) {
  watching_ = false;
  if (!error) buffer_.commit(bytes);
  bool hung_up = error && error != asio::error::operation_aborted;
  if (waiting_) {
    if (!error) {
      WatchForHangup();
    } else if (hung_up) {
      client_gone_ = true;
      poll_timer_.cancel();
    }
    return;
  }
  // The wait has ended. When the response has been written meanwhile,
  // OnWrite cancelled this read and left the next step to this handler.
  AfterWatch after = std::exchange(after_watch_, AfterWatch::kNothing);
  if (after == AfterWatch::kNothing) return;
  if (hung_up) {
    Close();
    return;
  }
  ContinueAfterResponse(after == AfterWatch::kLingerClose);
}

void Session::Send(ApiResponse api_response, bool close_after) {
  bool have_request = parser_ && parser_->is_header_done() && !close_after;
  unsigned version = have_request ? parser_->get().version() : 11;
  bool keep_alive = have_request && parser_->get().keep_alive();

  response_ = {};
  response_.version(version);
  response_.result(api_response.status);
  response_.keep_alive(keep_alive);
  response_.set(http::field::server, "dirindex");
  response_.set(http::field::content_type, api_response.content_type);
  response_.set(http::field::cache_control, "no-store");
  if (!api_response.allow.empty()) {
    response_.set(http::field::allow, api_response.allow);
  }
  if (api_response.authenticate) {
    response_.set(http::field::www_authenticate, "Bearer realm=\"dirindex\"");
  }
  LogResponse(api_response);
  state_.api.metrics().CountRequest(RouteTemplate(route_), api_response.status);
  response_.body() = std::move(api_response.body);
  response_.prepare_payload();

  stream_.expires_after(state_.limits.write_timeout);
  http::async_write(stream_, response_,
                    [self = shared_from_this(), close_after = !keep_alive](
                        beast::error_code error, size_t) {
                      self->OnWrite(error, close_after);
                    });
}

void Session::OnWrite(beast::error_code error, bool close_after) {
  if (error) {
    Close();
    return;
  }
  if (watching_) {
    // A long-poll's watch read is still outstanding, and a stream takes
    // one read at a time, so the next step waits for that read to end.
    after_watch_ = close_after ? AfterWatch::kLingerClose : AfterWatch::kNextRequest;
    beast::error_code ignored;
    stream_.socket().cancel(ignored);
    return;
  }
  ContinueAfterResponse(close_after);
}

void Session::ContinueAfterResponse(bool close_after) {
  if (close_after) {
    LingerClose();
    return;
  }
  WaitForRequest();
}

void Session::LogResponse(const ApiResponse& response) {
  std::string_view route = RouteTemplate(route_);
  std::string key = peer_address_ + " " + std::string(route) + " " +
                    std::to_string(response.status);
  LogLimiter::LogDecision decision = state_.access_log.Check(key, Clock::now());
  if (!decision.write) return;

  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      Clock::now() - request_time_);
  std::string suppressed;
  if (decision.suppressed > 0) {
    suppressed = " (" + std::to_string(decision.suppressed) +
                 " similar lines suppressed)";
  }
  auto level =
      response.status >= 500 ? spdlog::level::err : spdlog::level::info;
  spdlog::log(level, "http: {} {} {} root={} status={} ms={}{}", peer_, method_,
              route, root_.empty() ? "-" : root_, response.status,
              elapsed.count(), suppressed);
  if (response.status >= 500) {
    spdlog::error("http: {} {} failed: {}", method_, route, response.body);
  }
}

void Session::LingerClose() {
  beast::error_code error;
  stream_.socket().shutdown(tcp::socket::shutdown_send, error);
  if (error) {
    Close();
    return;
  }
  lingered_bytes_ = 0;
  stream_.expires_after(kLingerTimeout);
  Drain();
}

void Session::Drain() {
  buffer_.consume(buffer_.size());
  stream_.async_read_some(
      buffer_.prepare(kFirstReadBytes),
      [self = shared_from_this()](beast::error_code error, size_t bytes) {
        self->lingered_bytes_ += bytes;
        if (error || self->lingered_bytes_ > kMaxLingerBytes) {
          self->Close();
          return;
        }
        self->Drain();
      });
}

void Session::Close() {
  beast::error_code ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream_.close();
}

}  // namespace

struct HttpServer::Impl {
  Impl(Api& api, const HttpServerOptions& options)
      : state{api, options.limits, options.token},
        ioc(static_cast<int>(options.limits.io_threads)),
        work(ioc.get_executor()),
        acceptor(ioc),
        accept_retry(ioc) {}

  Status Listen(const ListenAddress& address);
  void Accept();
  void OnAccept(beast::error_code error, tcp::socket socket);
  void RunIoThread();

  ServerState state;
  asio::io_context ioc;
  asio::executor_work_guard<asio::io_context::executor_type> work;
  tcp::acceptor acceptor;
  asio::steady_timer accept_retry;
  std::vector<std::thread> threads;
  std::atomic<bool> stopped{false};
  uint16_t port = 0;
  LogLimiter accept_log{5, std::chrono::seconds(60)};
};

Status HttpServer::Impl::Listen(const ListenAddress& address) {
  beast::error_code error;
  tcp::endpoint endpoint(asio::ip::make_address(address.host, error),
                         address.port);
  if (!error) acceptor.open(endpoint.protocol(), error);
  if (!error)
    acceptor.set_option(asio::socket_base::reuse_address(true), error);
  if (!error) acceptor.bind(endpoint, error);
  if (!error) acceptor.listen(asio::socket_base::max_listen_connections, error);
  if (!error) port = acceptor.local_endpoint(error).port();
  if (error) {
    return Status(StatusCode::kUnavailable,
                  "cannot listen on " + FormatEndpoint(endpoint) + ": " +
                      error.message() +
                      "; stop the process using it or choose another "
                      "address with --listen");
  }
  return Status::Ok();
}

void HttpServer::Impl::Accept() {
  acceptor.async_accept(asio::make_strand(ioc),
                        [this](beast::error_code error, tcp::socket socket) {
                          OnAccept(error, std::move(socket));
                        });
}

void HttpServer::Impl::OnAccept(beast::error_code error, tcp::socket socket) {
  if (error == asio::error::operation_aborted || !acceptor.is_open()) return;
  if (error) {
    // Running out of file descriptors is the likely cause. Accepting again
    // at once would spin, so wait a little first.
    if (accept_log.Check(error.message(), Clock::now()).write) {
      spdlog::error("http: accept failed: {}; retrying in 100 ms",
                    error.message());
    }
    accept_retry.expires_after(std::chrono::milliseconds(100));
    accept_retry.async_wait([this](beast::error_code wait_error) {
      if (!wait_error) Accept();
    });
    return;
  }

  auto session = std::make_shared<Session>(std::move(socket), state);
  auto open = static_cast<size_t>(state.api.metrics().open_connections());
  if (open > state.limits.max_connections) {
    session->RejectBusy();
  } else {
    session->Start();
  }
  Accept();
}

void HttpServer::Impl::RunIoThread() {
  // A handler that throws would end the thread and strand its sessions,
  // so log the exception and keep running.
  while (true) {
    try {
      ioc.run();
      return;
    } catch (const std::exception& exception) {
      spdlog::error("http: handler threw an exception: {}", exception.what());
    }
  }
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { Stop(); }

Result<std::unique_ptr<HttpServer>> HttpServer::Start(
    const HttpServerOptions& options, Api& api) {
  Result<ListenAddress> address = ParseListenAddress(options.listen);
  if (!address.ok()) return address.status();
  if (!address->loopback && options.token.empty()) {
    return InvalidArgument(
        "listen address " + options.listen +
        " is not a loopback address, and no token_file is configured; set "
        "token_file so that clients must authenticate, or listen on "
        "127.0.0.1");
  }

  auto impl = std::make_unique<Impl>(api, options);
  Status listening = impl->Listen(*address);
  if (!listening.ok()) return listening;
  impl->Accept();

  unsigned threads = std::max(1u, options.limits.io_threads);
  for (unsigned i = 0; i < threads; ++i) {
    impl->threads.emplace_back([raw = impl.get()] { raw->RunIoThread(); });
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

uint16_t HttpServer::port() const { return impl_->port; }

void HttpServer::NotifyCommit(uint32_t root_id, uint64_t last_seq) {
  if (impl_->stopped.load()) return;
  Api& api = impl_->state.api;
  asio::post(impl_->ioc, [&api, root_id, last_seq] {
    api.waiters().Notify(root_id, last_seq);
  });
}

void HttpServer::Stop() {
  if (impl_->stopped.exchange(true)) return;
  impl_->work.reset();
  impl_->ioc.stop();
  for (std::thread& thread : impl_->threads) thread.join();
  impl_->threads.clear();

  beast::error_code ignored;
  impl_->acceptor.close(ignored);
  // The waiter list still references waiting sessions. Dropping them here
  // lets the io_context destroy them while it still exists.
  impl_->state.api.waiters().Clear();
}

}  // namespace dirindex
