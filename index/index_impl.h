// Internal declarations shared by the files that implement Index. Not part
// of the public API.
#pragma once

#include <lmdb.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "index/index.h"
#include "index/lmdb.h"
#include "index/record.h"

namespace dirindex {

// Probes per directory path before giving up on free dirs slots. Each probe
// rehashes the path with the next seed.
inline constexpr uint64_t kMaxDirProbes = 8;

// ReadTxn is a read-only LMDB transaction plus a shared hold on the map,
// so the map cannot be resized under it. Declaration order matters: the
// transaction ends before the hold is released.
struct ReadTxn {
  std::shared_lock<std::shared_mutex> hold;
  lmdb::Txn txn;
};

// BucketOp replaces the value at one entries key. An empty `records`
// deletes the key. change_refs[i] is the index into Batch::changes whose
// sequence records[i] takes, or -1 to keep the record's own sequence.
struct BucketOp {
  std::string key;
  std::vector<EntryRecord> records;
  std::vector<int64_t> change_refs;
};

// DirOp creates or removes one dirs record.
struct DirOp {
  std::string key;
  std::string path;
  bool put = true;
};

// Batch is everything one write transaction applies for one root.
struct Batch {
  std::vector<Change> changes;
  std::vector<BucketOp> buckets;
  std::vector<DirOp> dirs;
  int64_t files_delta = 0;
  int64_t dirs_delta = 0;
  int64_t bytes_delta = 0;

  bool empty() const { return changes.empty() && buckets.empty() && dirs.empty(); }
  void Append(Batch&& other);
};

// ScanRuntime is the in-memory bookkeeping of a root's scans. It is not
// written to LMDB, so a scan that changes nothing writes nothing.
struct ScanRuntime {
  uint64_t scans = 0;
  int64_t last_scan_started_ns = 0;
  int64_t last_scan_finished_ns = 0;
  uint64_t last_scan_duration_ns = 0;
  uint64_t last_scan_entries = 0;
  uint64_t last_scan_changes = 0;
  uint64_t last_scan_failed_dirs = 0;
  int64_t last_good_scan_ns = 0;
  std::string last_error;
  int64_t last_error_ns = 0;
};

// SettleWatch is one entry that waits for its root's settle time: it has
// looked the same since `since`.
struct SettleWatch {
  std::chrono::steady_clock::time_point since;
  // Looks at its directory that did not see the entry. Past a few, the
  // entry is dropped from the watch, and the next full scan finds it.
  uint32_t misses = 0;
};

// SettleTracker contains a root's waiting entries, by path. It is in
// memory only. After a restart the records' settle state in the index
// remains, and the first scan that reads such a record watches it again.
struct SettleTracker {
  std::chrono::nanoseconds settle{0};
  std::map<std::string, SettleWatch> waiting;
};

// DirSlot is where a directory's entries live: the hash in their keys.
struct DirSlot {
  uint64_t hash = 0;
  bool exists = false;  // false: a free slot chosen for a new directory
};

int64_t WallClockNs();

class IndexImpl final : public Index {
 public:
  IndexImpl() = default;
  ~IndexImpl() override;

  Status OpenEnv(const IndexOptions& options);

  uint64_t epoch() const override { return epoch_; }
  Result<uint32_t> AddRoot(std::string_view name, std::string_view source) override;
  Result<std::vector<RootInfo>> ListRoots() override;
  Result<RootInfo> GetRoot(std::string_view name) override;
  std::unique_ptr<ScanSession> BeginScan(uint32_t root_id, const ScanOptions& options) override;
  SettlePlan PlanSettle(uint32_t root_id, std::chrono::steady_clock::time_point now) override;
  void RecordReconcile(uint32_t root_id, const ReconcileReport& report) override;
  Result<FeedPage> ReadChanges(uint32_t root_id, std::string_view since,
                               size_t limit, std::string_view prefix) override;
  Result<uint64_t> LastSeq(uint32_t root_id) override;
  Result<std::optional<Entry>> Stat(uint32_t root_id, std::string_view path) override;
  Result<FilesPage> ListFiles(uint32_t root_id, const FilesQuery& query) override;
  Result<VerifyReport> Verify() override;
  void SetCommitListener(
      std::function<void(uint32_t root_id, uint64_t last_seq)> listener) override;
  IndexStats Stats() override;
  Status RecordRootError(uint32_t root_id, const Status& error) override;
  Status WriteHealth() override;

  // Used by the scan, feed and verify code.
  Result<ReadTxn> BeginRead();
  Result<RootState> LoadRootState(const lmdb::Txn& txn, uint32_t root_id);
  // Finds the slot of directory `path`. With `pending` (slots chosen earlier
  // in the same scan and not committed yet) a missing path gets a free slot;
  // without it a missing path returns kNotFound.
  Result<DirSlot> FindDirSlot(const lmdb::Txn& txn, uint32_t root_id,
                              std::string_view path,
                              const std::unordered_map<uint64_t, std::string>* pending);
  Result<std::string> DirPath(const lmdb::Txn& txn, uint32_t root_id, uint64_t slot);
  // Applies `batch` in one write transaction, growing the map when full.
  // Returns the root's newest sequence afterwards.
  Result<uint64_t> CommitBatch(uint32_t root_id, Batch& batch);
  // Records the start (`finished` false) or the end of a scan. A partial
  // scan only adds an error it found.
  void NoteScan(uint32_t root_id, const ScanRuntime& update, bool finished, bool partial = false);

  // Settle bookkeeping of the merge. SettleObserve records that the entry
  // at `path` was seen waiting, with new facts when `changed`, and returns
  // true when it has looked the same for the settle time.
  void SetSettleTime(uint32_t root_id, std::chrono::nanoseconds settle);
  bool SettleObserve(uint32_t root_id, const std::string& path, bool changed,
                     std::chrono::steady_clock::time_point now);
  void SettleForget(uint32_t root_id, const std::string& path);
  // Forgets `dir` and every waiting entry below it.
  void SettleForgetBelow(uint32_t root_id, const std::string& dir);

  uint64_t NameHash(std::string_view name) const { return name_hash_(name, 0); }
  uint64_t DirHash(std::string_view path, uint64_t seed) const {
    return dir_hash_(path, seed);
  }
  const IndexOptions& options() const { return options_; }

  MDB_dbi entries_dbi() const { return entries_; }
  MDB_dbi dirs_dbi() const { return dirs_; }
  MDB_dbi changes_dbi() const { return changes_; }
  MDB_dbi meta_dbi() const { return meta_; }

 private:
  Status ApplyBatch(const lmdb::Txn& txn, uint32_t root_id, Batch& batch,
                    uint64_t* last_seq);
  Status GrowMap();
  Status RefreshMapSize();
  RootInfo MakeRootInfo(const lmdb::Txn& txn, const RootState& state);
  // Stores one meta value in its own write transaction, growing a full map.
  Status PutMeta(const std::string& key, const std::string& value);

  IndexOptions options_;
  MDB_env* env_ = nullptr;
  MDB_dbi entries_ = 0, dirs_ = 0, changes_ = 0, meta_ = 0;
  uint64_t epoch_ = 0;
  HashFunction name_hash_ = nullptr;
  HashFunction dir_hash_ = nullptr;

  // Shared by every transaction, exclusive while the map is resized: LMDB
  // allows mdb_env_set_mapsize only with no transaction active.
  std::shared_mutex map_mutex_;
  // Serializes write transactions, and guards latched_failure_.
  std::mutex write_mutex_;
  // Set when a commit failed in a way that makes later writes untrustworthy
  // (MDB_PANIC, I/O error); every later write returns it.
  Status latched_failure_;

  std::atomic<uint64_t> map_size_{0};
  std::atomic<uint64_t> map_resizes_{0};
  std::atomic<uint64_t> commits_{0};
  std::atomic<uint64_t> failed_commits_{0};

  std::mutex listener_mutex_;
  std::function<void(uint32_t, uint64_t)> listener_;

  std::mutex runtime_mutex_;  // guards the three maps below
  std::map<uint32_t, ScanRuntime> runtime_;
  std::map<uint32_t, SettleTracker> settle_;
  struct ReconcileTotals {
    ReconcileReport last;
    uint64_t runs = 0;
    ReconcileReport drift;
  };
  std::map<uint32_t, ReconcileTotals> reconcile_;
};

// Creates the ScanSession for BeginScan (merge.cc).
std::unique_ptr<ScanSession> MakeScanSession(IndexImpl& index, uint32_t root_id,
                                             const ScanOptions& options);

}  // namespace dirindex
