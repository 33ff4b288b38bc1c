#include "api/cli.h"

int main(int argc, char** argv) { return dirindex::RunCli(argc, argv); }
