// Tests of the `dirindex` binary ($DIRINDEX_BINARY) run as a child process:
// help, scan, serve with its client commands, and verify.
#include <signal.h>
#include <sys/wait.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/http_client.h"
#include "tests/test_support.h"

namespace dirindex {
namespace {

using testing::MakeDirs;
using testing::RunDirindex;
using testing::ScratchDir;
using testing::ServerProcess;
using testing::WriteFile;

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(CliHelp, ListsEverySubcommand) {
  std::string output;
  ASSERT_EQ(RunDirindex({"--help"}, &output), 0) << output;
  for (const char* command : {"serve", "scan", "changes", "status", "verify"}) {
    EXPECT_TRUE(Contains(output, command)) << command << "\n" << output;
  }
}

TEST(CliHelp, DescribesSubcommandFlags) {
  struct Case {
    const char* command;
    std::vector<const char*> flags;
  };
  for (const Case& c :
       {Case{"serve", {"--listen", "--index", "--rescan-interval", "--config"}},
        Case{"scan", {"DIR"}},
        Case{"changes", {"--since", "--wait", "--limit", "--server"}},
        Case{"status", {"--server"}}, Case{"verify", {"--index"}}}) {
    std::string output;
    ASSERT_EQ(RunDirindex({c.command, "--help"}, &output), 0) << output;
    for (const char* flag : c.flags) {
      EXPECT_TRUE(Contains(output, flag)) << c.command << " " << flag;
    }
  }
}

TEST(CliScan, PrintsSummary) {
  ScratchDir scratch;
  MakeDirs(scratch.Sub("tree/a/b"));
  WriteFile(scratch.Sub("tree/one"), "1234");
  WriteFile(scratch.Sub("tree/a/two"), "56");
  WriteFile(scratch.Sub("tree/a/b/three"), "");

  std::string output;
  ASSERT_EQ(RunDirindex({"scan", scratch.Sub("tree")}, &output), 0) << output;
  EXPECT_TRUE(Contains(output, "directories: 3\n")) << output;
  EXPECT_TRUE(Contains(output, "files: 3\n")) << output;
  EXPECT_TRUE(Contains(output, "bytes: 6\n")) << output;
  EXPECT_TRUE(Contains(output, "failed directories: 0\n")) << output;
  EXPECT_TRUE(Contains(output, "elapsed: ")) << output;
  EXPECT_TRUE(Contains(output, "files/s: ")) << output;
}

TEST(CliScan, MissingDirFails) {
  ScratchDir scratch;
  std::string output;
  EXPECT_EQ(RunDirindex({"scan", scratch.Sub("absent")}, &output), 1);
  EXPECT_TRUE(Contains(output, scratch.Sub("absent"))) << output;
}

TEST(CliServe, DuplicateRootNamesFail) {
  ScratchDir scratch;
  MakeDirs(scratch.Sub("a/data"));
  MakeDirs(scratch.Sub("b/data"));
  std::string output;
  EXPECT_EQ(
      RunDirindex({"serve", "--index", scratch.Sub("index"), "--listen",
                   "127.0.0.1:0", scratch.Sub("a/data"), scratch.Sub("b/data")},
                  &output),
      1);
  EXPECT_TRUE(Contains(output, "'data' is used twice")) << output;
}

TEST(CliServe, RemoteSourceConfigFails) {
  ScratchDir scratch;
  WriteFile(scratch.Sub("c.toml"),
            "[[root]]\nname = \"p\"\nsource = \"sftp:///x\"\n");
  std::string output;
  EXPECT_EQ(RunDirindex({"serve", "--config", scratch.Sub("c.toml")}, &output),
            1);
  EXPECT_TRUE(Contains(output, "sftp:///x")) << output;
}

TEST(CliServe, ClientsTalkToRunningServer) {
  ScratchDir scratch;
  MakeDirs(scratch.Sub("invoices"));
  WriteFile(scratch.Sub("invoices/a.xml"), "<a/>");
  int port = testing::FreeLoopbackPort();
  std::string server = "http://127.0.0.1:" + std::to_string(port);

  ServerProcess process;
  ASSERT_TRUE(process.Start(
      {"--listen", "127.0.0.1:" + std::to_string(port), "--index",
       scratch.Sub("index"), "--rescan-interval", "1", scratch.Sub("invoices")},
      port, scratch.Sub("serve.log")));

  std::string status;
  ASSERT_EQ(RunDirindex({"status", "--server", server}, &status), 0) << status;
  EXPECT_TRUE(Contains(status, "\"name\":\"invoices\"")) << status;

  // The first scan runs at start; poll until it has indexed the file.
  std::string changes;
  for (int i = 0; i < 100 && !Contains(changes, "a.xml"); ++i) {
    ASSERT_EQ(
        RunDirindex({"changes", "invoices", "--server", server, "--wait", "1"},
                    &changes),
        0)
        << changes;
  }
  EXPECT_TRUE(Contains(changes, "\"fresh_instance\":true")) << changes;
  EXPECT_TRUE(Contains(changes, "\"path\":\"a.xml\"")) << changes;

  std::string missing;
  EXPECT_EQ(RunDirindex({"changes", "nope", "--server", server}, &missing), 1);
  EXPECT_TRUE(Contains(missing, "HTTP 404")) << missing;
  EXPECT_TRUE(Contains(missing, "'nope'")) << missing;

  std::string bad_since;
  EXPECT_EQ(RunDirindex({"changes", "invoices", "--server", server, "--since",
                         "garbage"},
                        &bad_since),
            1);
  EXPECT_TRUE(Contains(bad_since, "HTTP 400")) << bad_since;

  int wait_status = process.Stop(SIGTERM);
  EXPECT_TRUE(WIFEXITED(wait_status)) << wait_status;
  EXPECT_EQ(WEXITSTATUS(wait_status), 0);

  std::string verify;
  EXPECT_EQ(RunDirindex({"verify", "--index", scratch.Sub("index")}, &verify),
            0)
      << verify;
  EXPECT_TRUE(Contains(verify, "0 problem(s) found")) << verify;
}

TEST(CliClient, UnreachableServerFails) {
  int port = testing::FreeLoopbackPort();
  std::string output;
  EXPECT_EQ(RunDirindex({"status", "--server",
                         "http://127.0.0.1:" + std::to_string(port)},
                        &output),
            1);
  EXPECT_TRUE(Contains(output, "connecting to")) << output;
}

TEST(CliVerify, MissingIndexFails) {
  ScratchDir scratch;
  std::string output;
  EXPECT_EQ(RunDirindex({"verify", "--index", scratch.Sub("none")}, &output),
            1);
  EXPECT_TRUE(Contains(output, "no index found")) << output;
}

}  // namespace
}  // namespace dirindex
