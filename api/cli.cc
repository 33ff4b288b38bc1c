#include "api/cli.h"

#include <signal.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <filesystem>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "api/commands.h"
#include "api/service.h"
#include "index/index.h"

namespace dirindex {

namespace {

void AddServeCommand(CLI::App& app, ServeFlags& flags) {
  CLI::App* serve = app.add_subcommand(
      "serve", "Index directory trees and serve their change feeds over HTTP");
  serve
      ->add_option("DIR", flags.dirs,
                   "Directory to index, as a root named after its last "
                   "component; repeat for more roots")
      ->type_name("");
  serve
      ->add_option("--listen", flags.listen,
                   "Address and port to listen on, as ADDRESS:PORT "
                   "(default 127.0.0.1:8750; overrides 'listen')")
      ->type_name("ADDR:PORT");
  serve
      ->add_option("--index", flags.index_dir,
                   "Directory of the index (default "
                   "$XDG_STATE_HOME/dirindex or ~/.local/state/dirindex; "
                   "overrides 'index')")
      ->type_name("DIR");
  serve
      ->add_option("--rescan-interval", flags.rescan_interval,
                   "Seconds between rescans of each DIR root, or a "
                   "duration such as 500ms or 2h (default 30)")
      ->type_name("SECONDS");
  serve
      ->add_option("--config", flags.config_file,
                   "TOML config file; the flags above override its "
                   "top-level keys")
      ->type_name("FILE");
}

void AddClientFlags(CLI::App* command, ClientFlags& flags) {
  command
      ->add_option("--server", flags.server,
                   "Base URL of the server (default "
                   "http://127.0.0.1:8750)")
      ->type_name("URL");
  command
      ->add_option("--token-file", flags.token_file,
                   "File with the bearer token, when the server "
                   "requires one")
      ->type_name("FILE");
}

void AddChangesCommand(CLI::App& app, ChangesFlags& flags) {
  CLI::App* changes = app.add_subcommand(
      "changes", "Print a root's changes from a running server as JSON");
  changes->add_option("ROOT", flags.root, "Name of the root")
      ->required()
      ->type_name("");
  changes
      ->add_option("--since", flags.since,
                   "Cursor from the previous response; without it the "
                   "response is the current listing (a fresh instance)")
      ->type_name("CURSOR");
  changes
      ->add_option("--wait", flags.wait,
                   "Seconds to wait for a change when there is none yet, "
                   "0 to 300 (default 0)")
      ->type_name("SECONDS");
  changes
      ->add_option("--limit", flags.limit,
                   "Maximum changes in the response, 1 to 10000 "
                   "(default 1000)")
      ->type_name("N");
  changes
      ->add_option("--prefix", flags.prefix,
                   "Only changes of paths under this relative path")
      ->type_name("PATH");
  AddClientFlags(changes, flags.client);
}

}  // namespace

void SetUpLogging(const std::string& level) {
  auto logger = spdlog::stderr_color_mt("dirindex");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  spdlog::set_level(spdlog::level::from_str(level));
}

int RunServe(const ServeFlags& flags) {
  Result<ParsedConfig> parsed = BuildServeConfig(flags);
  if (!parsed.ok()) {
    spdlog::error("serve: {}", parsed.status().message());
    return 1;
  }
  spdlog::set_level(spdlog::level::from_str(parsed->config.log_level));
  for (const std::string& warning : parsed->warnings)
    spdlog::warn("{}", warning);
  if (parsed->config.roots.empty()) {
    spdlog::warn(
        "serve: no roots configured; pass DIR arguments or a "
        "config file with [[root]] tables");
  }

  // Every thread the service starts inherits this mask, so SIGINT and
  // SIGTERM reach only the sigwait below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  Result<std::unique_ptr<Service>> service = Service::Start(parsed->config);
  if (!service.ok()) {
    spdlog::error("serve: {}", service.status().message());
    return 1;
  }
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  spdlog::info("received {}, stopping", strsignal(signal_number));
  (*service)->Stop();
  return 0;
}

int RunVerify(const std::string& index_dir) {
  IndexOptions options;
  options.dir = index_dir.empty() ? DefaultIndexDir() : index_dir;
  options.read_only = true;
  struct stat info {};
  if (stat((options.dir + "/data.mdb").c_str(), &info) != 0) {
    std::fprintf(stderr,
                 "verify: no index found in %s; pass --index with the "
                 "directory of the index\n",
                 options.dir.c_str());
    return 1;
  }

  Result<std::unique_ptr<Index>> index = Index::Open(options);
  if (!index.ok()) {
    std::fprintf(stderr, "verify: %s\n", index.status().message().c_str());
    return 1;
  }
  Result<VerifyReport> report = (*index)->Verify();
  if (!report.ok()) {
    std::fprintf(stderr, "verify: %s\n", report.status().message().c_str());
    return 1;
  }

  std::printf("roots: %llu\nentries: %llu\ndirectories: %llu\nchanges: %llu\n",
              static_cast<unsigned long long>(report->roots),
              static_cast<unsigned long long>(report->entries),
              static_cast<unsigned long long>(report->dirs),
              static_cast<unsigned long long>(report->changes));
  for (const std::string& problem : report->problems) {
    std::printf("problem: %s\n", problem.c_str());
  }
  std::printf("%zu problem(s) found\n", report->problems.size());
  return report->problems.empty() ? 0 : 1;
}

int RunCli(int argc, char** argv) {
  CLI::App app{
      "dirindex keeps an index of large directory trees and serves "
      "each root's change feed over HTTP."};
  app.require_subcommand(1);

  ServeFlags serve_flags;
  AddServeCommand(app, serve_flags);

  std::string scan_dir;
  CLI::App* scan = app.add_subcommand(
      "scan", "Walk a directory tree once and print how long it took");
  scan->add_option("DIR", scan_dir, "Directory to walk")
      ->required()
      ->type_name("");

  ChangesFlags changes_flags;
  AddChangesCommand(app, changes_flags);

  ClientFlags status_flags;
  CLI::App* status = app.add_subcommand(
      "status", "Print the roots of a running server as JSON");
  AddClientFlags(status, status_flags);

  std::string verify_index;
  CLI::App* verify = app.add_subcommand(
      "verify", "Check the index for consistency; exits 1 on any problem");
  verify
      ->add_option("--index", verify_index,
                   "Directory of the index (default "
                   "$XDG_STATE_HOME/dirindex or ~/.local/state/dirindex)")
      ->type_name("DIR");

  CLI11_PARSE(app, argc, argv);
  SetUpLogging("info");

  if (app.got_subcommand("serve")) return RunServe(serve_flags);
  if (app.got_subcommand(scan)) return RunScan(scan_dir);
  if (app.got_subcommand("changes")) return RunChanges(changes_flags);
  if (app.got_subcommand(status)) return RunStatus(status_flags);
  if (app.got_subcommand(verify)) return RunVerify(verify_index);
  return 1;
}

}  // namespace dirindex
