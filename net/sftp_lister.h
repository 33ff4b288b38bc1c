// The pipelined directory walk of an SFTP root: OPENDIR, READDIR and CLOSE
// requests for many directories in flight at once over one SftpClient.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "index/source.h"
#include "net/sftp_client.h"

namespace dirindex {

// SftpListerTuning bounds the requests in flight. The defaults come from
// the loopback and 10 ms relay measurements in docs/sftp.md.
struct SftpListerTuning {
  // Directory handles open at once. A server that announces
  // limits@openssh.com lowers this to half its max-open-handles. A server
  // that fails an OPENDIR while others are open lowers it to the number it
  // accepted, and the directory is retried.
  uint32_t max_open_dirs = 64;
  // READDIR requests queued on a handle as soon as it opens. Two finish a
  // directory of up to one reply (100 entries from OpenSSH) in one round trip.
  uint32_t initial_readdirs = 2;
  // Each NAME reply adds one READDIR to its directory's queue, up to this
  // many, so a large directory's queue doubles every round trip.
  uint32_t max_readdirs_per_dir = 64;
  // Requests of all kinds in flight at once.
  uint32_t max_outstanding = 256;
};

// ListTarget is one directory to list.
struct ListTarget {
  std::string path;  // relative to the root, "" for the root
  uint32_t depth = 0;  // path components below the root
  bool recursive = true;
  // Named by the scan request: when missing, its nearest existing parent is
  // listed without recursion instead, so the index learns of the removal.
  bool requested = false;
  // Queued again after its OPENDIR failed while other handles were open.
  bool retried = false;
};

// ListJob is everything one walk needs besides the connection.
struct ListJob {
  std::string root_path;  // the root's path on the server
  std::vector<ListTarget> targets;
  uint32_t max_depth = 0;  // 0 means unlimited
  std::chrono::milliseconds operation_timeout{30'000};
  SftpListerTuning tuning;
  // NAME replies per directory in the previous walk (ListReport::replies).
  // A directory known to need n replies starts with n + 1 READDIRs queued
  // (within the tuning's bounds), skipping the queue's growth.
  const std::unordered_map<std::string, uint32_t>* previous_replies = nullptr;
};

// ListReport counts what one walk did.
struct ListReport {
  ScanTotals totals;
  uint64_t entries = 0;       // entries in listings handed to the sink
  uint64_t requests = 0;      // SFTP requests sent
  uint64_t rejected_names = 0;
  // Up to kMaxRejectedExamples rejected names as (directory, name).
  std::vector<std::pair<std::string, std::string>> rejected_examples;
  bool emitted = false;  // at least one listing reached the sink
  // NAME replies of each directory that needed more than one.
  std::unordered_map<std::string, uint32_t> replies;
  // Directories open or queued when the connection failed.
  std::vector<std::string> unfinished;
};

constexpr size_t kMaxRejectedExamples = 10;

// Lists `job.targets` and hands each directory's listing to `sink`.
// Returns:
//  - ok when every directory was listed or its failure was handed to the
//    sink as a listing with an error status;
//  - kNotFound when the root path does not exist;
//  - the connection's error (kTimedOut, kUnavailable), with the
//    directories not yet listed in report->unfinished;
//  - kAborted when `stop` was set, or the sink's error when it failed.
// After any non-ok return other than kNotFound the client is broken.
Status ListTree(SftpClient& client, const ListJob& job, ListingSink& sink,
                const std::atomic<bool>& stop, ListReport* report);

// Hands each directory of report->unfinished to `sink` as a listing that
// failed with `cause`, so the index keeps their entries and shows the
// error. Returns the sink's error, if any.
Status FailUnfinished(const Status& cause, ListingSink& sink, ListReport* report);

}  // namespace dirindex
