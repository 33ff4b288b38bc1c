// `dirindex changes` and `dirindex status`: clients of a running server
// that print the JSON body, or the error message and exit code 1.
#include <cstdio>
#include <string>

#include <rapidjson/document.h>

#include "api/commands.h"
#include "api/http_client.h"
#include "api/query.h"

namespace dirindex {

namespace {

// Time the server may take to respond, on top of a long-poll's wait.
constexpr std::chrono::seconds kResponseTimeout{30};

std::string ErrorMessageOf(const HttpReply& reply) {
  rapidjson::Document body;
  body.Parse(reply.body.c_str(), reply.body.size());
  if (!body.HasParseError() && body.IsObject() && body.HasMember("error")) {
    const rapidjson::Value& error = body["error"];
    if (error.IsObject() && error.HasMember("message") &&
        error["message"].IsString()) {
      return error["message"].GetString();
    }
  }
  return reply.body;
}

void AppendParam(std::string& query, std::string_view name,
                 const std::string& value) {
  if (value.empty()) return;
  query += query.empty() ? '?' : '&';
  query += name;
  query += '=';
  query += PercentEncode(value);
}

int Fetch(const ClientFlags& flags, const std::string& target,
          std::chrono::milliseconds timeout) {
  Result<ServerUrl> server = ParseServerUrl(flags.server);
  if (!server.ok()) {
    std::fprintf(stderr, "error: %s\n", server.status().message().c_str());
    return 1;
  }
  std::string token;
  if (!flags.token_file.empty()) {
    Result<std::string> read = ReadTokenFile(flags.token_file);
    if (!read.ok()) {
      std::fprintf(stderr, "error: %s\n", read.status().message().c_str());
      return 1;
    }
    token = std::move(*read);
  }

  Result<HttpReply> reply =
      SendHttpRequest(*server, "GET", target, token, timeout);
  if (!reply.ok()) {
    std::fprintf(stderr, "error: %s\n", reply.status().message().c_str());
    return 1;
  }
  if (reply->status < 200 || reply->status > 299) {
    std::fprintf(stderr, "error: HTTP %u: %s\n", reply->status,
                 ErrorMessageOf(*reply).c_str());
    return 1;
  }
  std::fwrite(reply->body.data(), 1, reply->body.size(), stdout);
  std::fputc('\n', stdout);
  return 0;
}

}  // namespace

int RunChanges(const ChangesFlags& flags) {
  std::string query;
  AppendParam(query, "since", flags.since);
  AppendParam(query, "limit", flags.limit);
  AppendParam(query, "wait", flags.wait);
  AppendParam(query, "prefix", flags.prefix);
  std::string target =
      "/v1/roots/" + PercentEncode(flags.root) + "/changes" + query;

  std::chrono::milliseconds timeout = kResponseTimeout;
  if (!flags.wait.empty()) {
    Result<std::chrono::milliseconds> wait = ParseWait(flags.wait);
    if (wait.ok()) timeout += *wait;
  }
  return Fetch(flags.client, target, timeout);
}

int RunStatus(const ClientFlags& flags) {
  return Fetch(flags, "/v1/roots", kResponseTimeout);
}

}  // namespace dirindex
