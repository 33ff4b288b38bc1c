// Index: the LMDB environment that stores every root's entries and change
// log, and the only place that decides what changed.
//
// Tables (named LMDB databases), keys fixed-width and big-endian:
//   entries  (root u32, XXH3 of parent dir path u64, XXH3 of name u64)
//            -> one or more entry records (more than one only when names
//               in the same directory share a hash); each stores its name,
//               which every lookup compares.
//   dirs     (root u32, dir slot hash u64) -> the directory's path; a path
//            whose hash is taken by another path probes further seeds.
//   changes  (root u32, seq u64) -> change record.
//   meta     text keys -> schema version, epoch id, per-root state.
//
// Thread safety: all methods may be called from any thread. Reads run in
// their own LMDB read transactions, so they do not wait for writers. Writes of
// scans are serialized inside the Index.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "index/listing.h"
#include "index/source.h"
#include "index/status.h"

namespace dirindex {

// Hash used for names and directory paths. Tests pass a deliberately weak
// one to force collisions.
using HashFunction = uint64_t (*)(std::string_view bytes, uint64_t seed);

uint64_t DefaultHash(std::string_view bytes, uint64_t seed);

struct IndexOptions {
  std::string dir;  // folder holding data.mdb and lock.mdb; created if missing
  uint64_t initial_map_size_bytes = uint64_t{256} << 20;
  // The map doubles on MDB_MAP_FULL up to this size.
  uint64_t max_map_size_bytes = uint64_t{1} << 40;
  // Changes kept per root. Cursors older than the oldest kept change get a
  // fresh-instance response.
  uint64_t retention_changes = 1'000'000;
  // Changes committed per write transaction while a scan runs.
  uint64_t batch_changes = 10'000;
  // A scan holds back the changes it finds, up to this many, and commits
  // them when it ends, so that a deletion and an addition of the same inode
  // anywhere in the tree become one rename. Past this many it commits as it
  // goes and pairs renames only within what it held. 0 turns pairing off.
  uint64_t rename_window_changes = 100'000;
  // false trades durability on power loss for speed (MDB_NOSYNC). A crash
  // of the process alone never loses a commit either way.
  bool durable = true;
  bool read_only = false;
  HashFunction name_hash = nullptr;  // nullptr means DefaultHash
  HashFunction dir_hash = nullptr;   // nullptr means DefaultHash
};

enum class ChangeOp : uint8_t {
  kAdded = 1,
  kModified = 2,
  kDeleted = 3,
  kRenamed = 4,
};

std::string_view ChangeOpName(ChangeOp op);

enum class ChangeOrigin : uint8_t {
  kScan = 0,       // found by an ordinary or targeted rescan
  kReconcile = 1,  // found by a scheduled full rescan: drift
};

// Change is one record of a root's change feed.
struct Change {
  uint64_t seq = 0;
  ChangeOp op = ChangeOp::kAdded;
  EntryType type = EntryType::kUnknown;
  ChangeOrigin origin = ChangeOrigin::kScan;
  bool inferred = false;  // a rename guessed from size and mtime
  uint8_t known = 0;      // kKnownSize and kKnownMtime bits
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  std::string path;      // relative to the root
  std::string old_path;  // set for kRenamed
  // The entry's inode while a scan pairs deletions with additions into
  // renames; 0 when unknown. Not stored in the change log.
  uint64_t inode = 0;
  // True while a scan keeps the change back because the entry has not
  // settled. It can still become part of a rename. Never committed.
  bool pending = false;
  // How finely the source reported mtime_ns; renames are inferred only
  // from mtimes finer than a minute. Not stored in the change log.
  TimePrecision mtime_precision = TimePrecision::kNanosecond;
};

// Entry is one indexed name with its full path.
struct Entry {
  std::string path;
  EntryType type = EntryType::kUnknown;
  uint8_t known = 0;
  uint32_t mode = 0;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  uint64_t inode = 0;
  uint64_t seq = 0;  // sequence of the entry's last change
  // false while the entry's newest size and mtime wait for the root's
  // settle time before they are announced.
  bool stable = true;
};

// ReconcileReport is what one full rescan found: changes the ordinary
// scans and watching had missed (drift), by kind.
struct ReconcileReport {
  int64_t finished_ns = 0;  // wall clock, ns since the epoch; 0 = never ran
  uint64_t duration_ns = 0;
  uint64_t entries_checked = 0;
  uint64_t failed_dirs = 0;
  uint64_t added = 0;
  uint64_t modified = 0;
  uint64_t deleted = 0;
  uint64_t renamed = 0;
  std::string error;  // the scan's error, empty when it ran cleanly

  uint64_t drift() const { return added + modified + deleted + renamed; }
};

// RootInfo is the stored state of one root.
struct RootInfo {
  uint32_t id = 0;
  std::string name;
  std::string source;
  uint64_t last_seq = 0;   // newest committed change, 0 when none
  uint64_t first_seq = 1;  // oldest retained change
  uint64_t files = 0;      // indexed non-directory entries
  uint64_t dirs = 0;       // indexed directories, the root not counted
  uint64_t bytes = 0;      // sum of file sizes
  uint64_t scans = 0;      // completed scans
  int64_t last_scan_started_ns = 0;   // wall clock, ns since the epoch
  int64_t last_scan_finished_ns = 0;
  uint64_t last_scan_duration_ns = 0;
  uint64_t last_scan_entries = 0;
  uint64_t last_scan_changes = 0;
  uint64_t last_scan_failed_dirs = 0;
  int64_t last_good_scan_ns = 0;      // last scan with no failed directory
  std::string last_error;             // empty after a clean scan
  int64_t last_error_ns = 0;
  uint64_t unsettled = 0;             // entries waiting for the settle time
  ReconcileReport last_reconcile;     // the newest full rescan's report
  uint64_t reconciles = 0;            // full rescans since the process started
  ReconcileReport drift_total;        // drift summed over those full rescans
};

// ScanSummary is what one finished scan did to the index.
struct ScanSummary {
  uint64_t listings = 0;
  uint64_t entries = 0;
  uint64_t changes = 0;
  uint64_t commits = 0;
  uint64_t failed_dirs = 0;
  uint64_t last_seq = 0;
  // Committed changes by kind.
  uint64_t added = 0;
  uint64_t modified = 0;
  uint64_t deleted = 0;
  uint64_t renamed = 0;
};

// ScanOptions are the settings of one scan.
struct ScanOptions {
  ScanOptions(ChangeOrigin origin = ChangeOrigin::kScan) : origin(origin) {}  // NOLINT(google-explicit-constructor)

  ChangeOrigin origin;
  // A new or changed non-directory is announced only once its size and
  // mtime have stayed the same this long. 0 announces at once.
  std::chrono::nanoseconds settle{0};
  // The scan lists only some directories (a targeted scan). It can report
  // new errors on the root but never clears one, since it did not look at
  // the rest, and it leaves the root's last-scan figures alone.
  bool partial = false;
};

// SettlePlan lists the directories with entries that wait for the settle
// time, and when the next of them is due for another look.
struct SettlePlan {
  uint64_t pending = 0;  // entries waiting
  std::optional<std::chrono::steady_clock::time_point> next_due;
  std::vector<std::string> due_dirs;  // due at the time asked about
};

// ScanSession merges the listings of one scan of one root. Create it with
// Index::BeginScan, feed it as a ListingSink (from several threads if the
// source wants), then call Finish once. Dropping it without Finish commits
// nothing more and leaves the index consistent.
class ScanSession : public ListingSink {
 public:
  ~ScanSession() override = default;
  Status Accept(DirListing&& listing) override = 0;

  // Commits what is pending and records the scan on the root. `scan_status`
  // is the source's overall result; a non-ok one is shown as the root's
  // last error.
  virtual Result<ScanSummary> Finish(const Status& scan_status) = 0;

  // Returns the directories that listings accepted since the last call
  // added to the index, renamed ones included. A scan that did not list
  // recursively lists them next, in the same session, so that their
  // content arrives and a directory moved in pairs with its old place.
  virtual std::vector<std::string> TakeAddedDirs() = 0;
};

// FeedPage is one response of the change feed.
struct FeedPage {
  bool fresh_instance = false;
  std::vector<Change> changes;
  std::string cursor;  // pass as `since` to continue
  bool more = false;   // true when the caller should ask again at once
};

// FilesQuery selects a page of the current listing.
struct FilesQuery {
  std::string prefix;  // relative path prefix, "" for everything
  std::string glob;    // fnmatch pattern on the name, or on the path if it has '/'
  std::string after;   // page token from the previous FilesPage::next
  size_t limit = 1000;
};

struct FilesPage {
  std::vector<Entry> entries;
  std::string next;  // page token, empty when this is the last page
};

// VerifyReport is the result of a consistency check of the whole index.
struct VerifyReport {
  uint64_t roots = 0;
  uint64_t entries = 0;
  uint64_t dirs = 0;
  uint64_t changes = 0;
  std::vector<std::string> problems;  // empty when the index is consistent
};

struct IndexStats {
  uint64_t map_size_bytes = 0;
  uint64_t used_bytes = 0;
  uint64_t map_resizes = 0;
  uint64_t commits = 0;
  uint64_t failed_commits = 0;
  // LMDB's id of the newest committed write transaction; it stays the same
  // across work that writes nothing.
  uint64_t last_txn_id = 0;
};

class Index {
 public:
  virtual ~Index() = default;

  // Opens or creates the index in options.dir.
  static Result<std::unique_ptr<Index>> Open(const IndexOptions& options);

  // The random id chosen when the index was created. Cursors from another
  // epoch get a fresh-instance response.
  virtual uint64_t epoch() const = 0;

  // Returns the id of the root called `name`, creating it if needed. A root
  // whose source changed keeps its id and entries, and records the new source.
  virtual Result<uint32_t> AddRoot(std::string_view name,
                                   std::string_view source) = 0;
  virtual Result<std::vector<RootInfo>> ListRoots() = 0;
  // Returns kNotFound for an unknown name.
  virtual Result<RootInfo> GetRoot(std::string_view name) = 0;

  // Starts merging a scan of `root_id`. Only one scan per root may run at a
  // time; the scheduler guarantees that.
  virtual std::unique_ptr<ScanSession> BeginScan(uint32_t root_id,
                                                 const ScanOptions& options) = 0;

  // Returns the directories of `root_id` whose waiting entries are due for
  // another look at `now`, and when the next one falls due. Waiting
  // entries are kept in memory; after a restart the first scan finds them
  // again in the index.
  virtual SettlePlan PlanSettle(uint32_t root_id,
                                std::chrono::steady_clock::time_point now) = 0;

  // Stores the report of a full rescan of `root_id`, shown by GetRoot.
  virtual void RecordReconcile(uint32_t root_id,
                               const ReconcileReport& report) = 0;

  // Reads the change feed after cursor `since` (empty: from the start, as a
  // fresh instance). Returns kInvalidArgument when `since` is not a cursor of
  // this root, naming the value. `prefix` filters paths.
  virtual Result<FeedPage> ReadChanges(uint32_t root_id, std::string_view since,
                                       size_t limit,
                                       std::string_view prefix) = 0;

  // Returns the sequence of the newest committed change of `root_id`.
  virtual Result<uint64_t> LastSeq(uint32_t root_id) = 0;

  // Looks up one relative path. Returns an empty optional when absent.
  virtual Result<std::optional<Entry>> Stat(uint32_t root_id,
                                            std::string_view path) = 0;

  virtual Result<FilesPage> ListFiles(uint32_t root_id,
                                      const FilesQuery& query) = 0;

  // Checks that entries, directories, counts and the change log agree.
  virtual Result<VerifyReport> Verify() = 0;

  // Registers a function called after every commit that added changes, with
  // the root and its newest sequence. It runs on the committing thread and
  // must not block.
  virtual void SetCommitListener(
      std::function<void(uint32_t root_id, uint64_t last_seq)> listener) = 0;

  virtual IndexStats Stats() = 0;

  // Records an error that kept a scan from starting (source unreachable)
  // on the root, without touching its entries.
  virtual Status RecordRootError(uint32_t root_id, const Status& error) = 0;

  // Returns ok while writes work. After a commit failed in a way that makes
  // later writes untrustworthy (MDB_PANIC, an I/O error) it returns that
  // failure for good, and every later write fails with it.
  virtual Status WriteHealth() = 0;
};

}  // namespace dirindex
