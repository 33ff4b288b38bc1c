// The subcommands of the `dirindex` command line, one function each, with
// the flags that cli.cc parses for them. Each returns the exit code.
#pragma once

#include <string>
#include <vector>

#include "api/config.h"

namespace dirindex {

int RunServe(const ServeFlags& flags);

int RunScan(const std::string& dir);

// ClientFlags are the flags shared by the commands that talk to a server.
struct ClientFlags {
  std::string server = "http://127.0.0.1:8750";
  std::string token_file;
};

struct ChangesFlags {
  std::string root;
  std::string since;
  std::string wait;
  std::string limit;
  std::string prefix;
  ClientFlags client;
};

int RunChanges(const ChangesFlags& flags);
int RunStatus(const ClientFlags& flags);

int RunVerify(const std::string& index_dir);

// Sends log lines to stderr, so stdout carries only command output.
void SetUpLogging(const std::string& level);

}  // namespace dirindex
