#include "api/http_client.h"

#include <charconv>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace dirindex {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr uint64_t kMaxResponseBytes = uint64_t{1} << 30;

Status ClientError(const ServerUrl& server, std::string_view step,
                   const beast::error_code& error) {
  std::string where = "http://" + server.host + ":" + server.port;
  StatusCode code = error == beast::error::timeout ? StatusCode::kTimedOut
                                                   : StatusCode::kUnavailable;
  std::string hint = step == "connecting to"
                         ? "; check that `dirindex serve` runs there, or "
                           "pass --server"
                         : "";
  return Status(code, std::string(step) + " " + where +
                          " failed: " + error.message() + hint);
}

}  // namespace

Result<ServerUrl> ParseServerUrl(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    return InvalidArgument("server URL '" + std::string(url) +
                           "' must start with http://, such as "
                           "http://127.0.0.1:8750");
  }
  std::string_view rest = url.substr(kScheme.size());
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.empty() || rest.find('/') != std::string_view::npos) {
    return InvalidArgument("server URL '" + std::string(url) +
                           "' must be a host and port without a path, such "
                           "as http://127.0.0.1:8750");
  }

  ServerUrl server;
  size_t colon = rest.rfind(':');
  bool bracketed = !rest.empty() && rest.front() == '[';
  if (colon == std::string_view::npos ||
      (bracketed && rest.find(']') > colon)) {
    server.host = std::string(rest);
  } else {
    server.host = std::string(rest.substr(0, colon));
    server.port = std::string(rest.substr(colon + 1));
    unsigned port = 0;
    auto [end, error] = std::from_chars(
        server.port.data(), server.port.data() + server.port.size(), port);
    if (error != std::errc() ||
        end != server.port.data() + server.port.size() || port == 0 ||
        port > 65535) {
      return InvalidArgument("server URL '" + std::string(url) +
                             "' has an invalid port; use 1 to 65535");
    }
  }
  if (server.host.size() > 2 && server.host.front() == '[') {
    server.host = server.host.substr(1, server.host.size() - 2);
  }
  return server;
}

Result<HttpReply> SendHttpRequest(const ServerUrl& server,
                                  std::string_view method,
                                  std::string_view target,
                                  std::string_view token,
                                  std::chrono::milliseconds timeout) {
  asio::io_context ioc;
  tcp::resolver resolver(ioc);
  beast::tcp_stream stream(ioc);
  beast::error_code error;

  auto endpoints = resolver.resolve(server.host, server.port, error);
  if (error) return ClientError(server, "resolving", error);
  stream.expires_after(timeout);
  stream.connect(endpoints, error);
  if (error) return ClientError(server, "connecting to", error);

  http::request<http::empty_body> request(
      http::string_to_verb(beast::string_view(method.data(), method.size())),
      beast::string_view(target.data(), target.size()), 11);
  request.set(http::field::host, server.host);
  request.set(http::field::user_agent, "dirindex");
  if (!token.empty()) {
    request.set(http::field::authorization, "Bearer " + std::string(token));
  }
  http::write(stream, request, error);
  if (error) return ClientError(server, "sending a request to", error);

  // Beast (Boost 1.74) limits response bodies to 8 MB by default. A page
  // of 10,000 changes with long paths can exceed that, so allow far more.
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxResponseBytes);
  http::read(stream, buffer, parser, error);
  if (error) return ClientError(server, "reading the response of", error);
  http::response<http::string_body> response = parser.release();

  stream.socket().shutdown(tcp::socket::shutdown_both, error);
  return HttpReply{response.result_int(), std::move(response.body())};
}

}  // namespace dirindex
