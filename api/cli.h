// The `dirindex` command line: serve, scan, changes, status and verify.
#pragma once

namespace dirindex {

// Parses the arguments, runs the subcommand and returns the exit code.
int RunCli(int argc, char** argv);

}  // namespace dirindex
