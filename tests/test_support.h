// Helpers shared by the test suites: scratch folders, file creation,
// shell commands and listing summaries.
#pragma once

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "index/listing.h"

namespace dirindex::testing {

// ScratchDir is a fresh folder under $TMPDIR (or /tmp), removed with
// everything inside it when the object goes away.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }
  // Returns path() + "/" + relative.
  std::string Sub(std::string_view relative) const;

 private:
  std::string path_;
};

// Writes `content` to `path`, creating or truncating it. Aborts the test
// binary on failure because every caller needs the file to exist.
void WriteFile(const std::string& path, std::string_view content);

// Creates `path` and its missing parents.
void MakeDirs(const std::string& path);

// Removes `path` and everything beneath it, even past PATH_MAX.
void RemoveTree(const std::string& path);

// Returns the folder of the server scripts, tests/servers.
std::string ServersDir();

// Runs `command` in a shell and returns its exit status and its output,
// stderr included.
std::pair<int, std::string> RunCommand(const std::string& command);

// Returns the names of a listing's entries.
std::set<std::string> Names(const DirListing& listing);

// Returns the directory paths of listings kept by path.
std::set<std::string> Paths(const std::map<std::string, DirListing>& listings);

}  // namespace dirindex::testing
