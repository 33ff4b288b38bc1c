// Index environment, roots and the commit path. The merge of listings is in
// merge.cc, the read side in feed.cc, the consistency check in verify.cc.
#include <spdlog/spdlog.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <xxhash.h>

#include <chrono>
#include <cstring>
#include <set>

#include "index/index_impl.h"
#include "index/paths.h"

namespace dirindex {

namespace {

constexpr std::string_view kSchemaKey = "schema_version";
constexpr std::string_view kEpochKey = "epoch";
constexpr std::string_view kNextRootKey = "next_root_id";
// Oldest changes removed per commit beyond the retention count, so one
// commit never turns into an unbounded delete.
constexpr uint64_t kMaxTrimPerCommit = 200'000;

std::string RootStateKey(uint32_t id) {
  std::string key = "root/";
  for (int i = 3; i >= 0; --i) key.push_back(static_cast<char>((id >> (8 * i)) & 0xFF));
  return key;
}

std::string ReconcileKey(uint32_t id) {
  std::string key = "reconcile/";
  for (int i = 3; i >= 0; --i) key.push_back(static_cast<char>((id >> (8 * i)) & 0xFF));
  return key;
}

std::string RootNameKey(std::string_view name) {
  return "name/" + std::string(name);
}

bool IsFatalCommitError(int rc) {
  return rc == MDB_PANIC || rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND ||
         rc == EIO || rc == MDB_BAD_TXN;
}

Status MakeDirs(const std::string& dir) {
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    std::string prefix = dir.substr(0, pos);
    if (mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) {
      return ErrnoStatus(errno, "mkdir", prefix);
    }
  }
  return Status::Ok();
}

}  // namespace

uint64_t DefaultHash(std::string_view bytes, uint64_t seed) {
  return seed == 0 ? XXH3_64bits(bytes.data(), bytes.size())
                   : XXH3_64bits_withSeed(bytes.data(), bytes.size(), seed);
}

std::string_view ChangeOpName(ChangeOp op) {
  switch (op) {
    case ChangeOp::kAdded: return "added";
    case ChangeOp::kModified: return "modified";
    case ChangeOp::kDeleted: return "deleted";
    case ChangeOp::kRenamed: return "renamed";
  }
  return "unknown";
}

int64_t WallClockNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void Batch::Append(Batch&& other) {
  int64_t offset = static_cast<int64_t>(changes.size());
  for (BucketOp& op : other.buckets) {
    for (int64_t& ref : op.change_refs) {
      if (ref >= 0) ref += offset;
    }
    buckets.push_back(std::move(op));
  }
  for (Change& change : other.changes) changes.push_back(std::move(change));
  for (DirOp& op : other.dirs) dirs.push_back(std::move(op));
  files_delta += other.files_delta;
  dirs_delta += other.dirs_delta;
  bytes_delta += other.bytes_delta;
}

Result<std::unique_ptr<Index>> Index::Open(const IndexOptions& options) {
  auto index = std::make_unique<IndexImpl>();
  Status status = index->OpenEnv(options);
  if (!status.ok()) return status;
  return std::unique_ptr<Index>(std::move(index));
}

IndexImpl::~IndexImpl() {
  if (env_ != nullptr) mdb_env_close(env_);
}

Status IndexImpl::OpenEnv(const IndexOptions& options) {
  options_ = options;
  name_hash_ = options.name_hash ? options.name_hash : DefaultHash;
  dir_hash_ = options.dir_hash ? options.dir_hash : DefaultHash;
  if (options.dir.empty()) return InvalidArgument("index directory is empty; set --index DIR");
  if (!options.read_only) {
    Status made = MakeDirs(options.dir);
    if (!made.ok()) return made;
  }

  int rc = mdb_env_create(&env_);
  if (rc != MDB_SUCCESS) return lmdb::ToStatus(rc, "mdb_env_create");
  mdb_env_set_maxdbs(env_, 8);
  mdb_env_set_maxreaders(env_, 1024);
  mdb_env_set_mapsize(env_, options.initial_map_size_bytes);
  unsigned flags = MDB_NOTLS;
  if (!options.durable) flags |= MDB_NOSYNC;
  if (options.read_only) flags |= MDB_RDONLY;
  rc = mdb_env_open(env_, options.dir.c_str(), flags, 0600);
  if (rc != MDB_SUCCESS) {
    Status status = lmdb::ToStatus(rc, "mdb_env_open");
    return Status(status.code(), "cannot open index at '" + options.dir +
                                     "': " + status.message());
  }
  MDB_envinfo info;
  mdb_env_info(env_, &info);
  map_size_ = info.me_mapsize;

  // Open the tables and read or create the meta keys in one transaction.
  auto txn = lmdb::Txn::Begin(env_, options.read_only ? MDB_RDONLY : 0);
  if (!txn.ok()) return txn.status();
  unsigned create = options.read_only ? 0 : MDB_CREATE;
  const std::pair<const char*, MDB_dbi*> tables[] = {
      {"entries", &entries_}, {"dirs", &dirs_}, {"changes", &changes_}, {"meta", &meta_}};
  for (auto [name, dbi] : tables) {
    rc = mdb_dbi_open(txn->get(), name, create, dbi);
    if (rc != MDB_SUCCESS) {
      return Status(StatusCode::kCorruption,
                    "index at '" + options.dir + "' has no table '" + name +
                        "' (" + mdb_strerror(rc) + "); it was not created by dirindex");
    }
  }

  MDB_val key = lmdb::ToVal(kSchemaKey), value;
  rc = mdb_get(txn->get(), meta_, &key, &value);
  if (rc == MDB_SUCCESS) {
    uint32_t version = 0;
    if (value.mv_size == 4) std::memcpy(&version, value.mv_data, 4);
    if (version != kSchemaVersion) {
      return Status(StatusCode::kCorruption,
                    "index at '" + options.dir + "' has schema version " +
                        std::to_string(version) + " but this dirindex reads version " +
                        std::to_string(kSchemaVersion) +
                        "; move the folder aside and let dirindex rebuild it");
    }
    MDB_val epoch_key = lmdb::ToVal(kEpochKey);
    rc = mdb_get(txn->get(), meta_, &epoch_key, &value);
    if (rc != MDB_SUCCESS || value.mv_size != 8) {
      return Status(StatusCode::kCorruption, "index at '" + options.dir + "' has no epoch id");
    }
    std::memcpy(&epoch_, value.mv_data, 8);
    // Commit even a read: table handles opened in an aborted transaction
    // are closed again.
    rc = txn->Commit();
    if (rc != MDB_SUCCESS) return lmdb::ToStatus(rc, "opening the index tables");
    spdlog::info("index opened: dir={} epoch={:016x} map_size={}", options.dir, epoch_,
                 map_size_.load());
    return Status::Ok();
  }
  if (options.read_only) {
    return NotFound("index at '" + options.dir + "' is empty; run dirindex serve first");
  }

  // A new index: choose a random epoch so cursors of an older index that
  // lived in the same folder are recognized as foreign.
  if (getrandom(&epoch_, sizeof(epoch_), 0) != sizeof(epoch_)) {
    return ErrnoStatus(errno, "getrandom", "epoch id");
  }
  uint32_t version = kSchemaVersion;
  MDB_val version_val{sizeof(version), &version};
  MDB_val epoch_key = lmdb::ToVal(kEpochKey);
  MDB_val epoch_val{sizeof(epoch_), &epoch_};
  if ((rc = mdb_put(txn->get(), meta_, &key, &version_val, 0)) != MDB_SUCCESS ||
      (rc = mdb_put(txn->get(), meta_, &epoch_key, &epoch_val, 0)) != MDB_SUCCESS ||
      (rc = txn->Commit()) != MDB_SUCCESS) {
    return lmdb::ToStatus(rc, "creating the index meta table");
  }
  spdlog::info("index created: dir={} epoch={:016x}", options.dir, epoch_);
  return Status::Ok();
}

Result<ReadTxn> IndexImpl::BeginRead() {
  for (int attempt = 0; attempt < 3; ++attempt) {
    ReadTxn read{std::shared_lock<std::shared_mutex>(map_mutex_), lmdb::Txn()};
    MDB_txn* txn = nullptr;
    int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
    if (rc == MDB_SUCCESS) {
      read.txn = lmdb::Txn(txn);
      return read;
    }
    if (rc != MDB_MAP_RESIZED) return lmdb::ToStatus(rc, "mdb_txn_begin (read)");
    // Another process grew the map; adopt its size and try again.
    read.hold.unlock();
    Status refreshed = RefreshMapSize();
    if (!refreshed.ok()) return refreshed;
  }
  return Internal("the index map kept being resized by another process");
}

Status IndexImpl::RefreshMapSize() {
  std::unique_lock<std::shared_mutex> exclusive(map_mutex_);
  int rc = mdb_env_set_mapsize(env_, 0);
  if (rc != MDB_SUCCESS) return lmdb::ToStatus(rc, "mdb_env_set_mapsize");
  MDB_envinfo info;
  mdb_env_info(env_, &info);
  map_size_ = info.me_mapsize;
  return Status::Ok();
}

Status IndexImpl::GrowMap() {
  std::unique_lock<std::shared_mutex> exclusive(map_mutex_);
  MDB_envinfo info;
  mdb_env_info(env_, &info);
  uint64_t current = info.me_mapsize;
  if (current >= options_.max_map_size_bytes) {
    return Status(StatusCode::kResourceExhausted,
                  "index map is full at " + std::to_string(current) +
                      " bytes, the configured maximum; raise max map size or "
                      "lower retention");
  }
  uint64_t next = std::min(current * 2, options_.max_map_size_bytes);
  int rc = mdb_env_set_mapsize(env_, next);
  if (rc != MDB_SUCCESS) return lmdb::ToStatus(rc, "mdb_env_set_mapsize");
  map_size_ = next;
  ++map_resizes_;
  spdlog::info("index map grown: dir={} from={} to={}", options_.dir, current, next);
  return Status::Ok();
}

Result<RootState> IndexImpl::LoadRootState(const lmdb::Txn& txn, uint32_t root_id) {
  std::string key = RootStateKey(root_id);
  MDB_val k = lmdb::ToVal(key), v;
  int rc = mdb_get(txn.get(), meta_, &k, &v);
  if (rc == MDB_NOTFOUND) return NotFound("root id " + std::to_string(root_id) + " is not in the index");
  if (rc != MDB_SUCCESS) return lmdb::ToStatus(rc, "reading root state");
  std::optional<RootState> state = DecodeRootState(lmdb::ToView(v));
  if (!state) {
    return Status(StatusCode::kCorruption,
                  "root id " + std::to_string(root_id) + " has a malformed state record");
  }
  return *state;
}

Result<uint32_t> IndexImpl::AddRoot(std::string_view name, std::string_view source) {
  std::lock_guard<std::mutex> write_lock(write_mutex_);
  if (!latched_failure_.ok()) return latched_failure_;
  for (int attempt = 0; attempt < 4; ++attempt) {
    std::shared_lock<std::shared_mutex> hold(map_mutex_);
    auto txn = lmdb::Txn::Begin(env_, 0);
    if (!txn.ok()) return txn.status();

    std::string name_key = RootNameKey(name);
    MDB_val k = lmdb::ToVal(name_key), v;
    int rc = mdb_get(txn->get(), meta_, &k, &v);
    RootState state;
    if (rc == MDB_SUCCESS && v.mv_size == 4) {
      uint32_t id;
      std::memcpy(&id, v.mv_data, 4);
      auto loaded = LoadRootState(*txn, id);
      if (!loaded.ok()) return loaded.status();
      if (loaded->source == source) return id;
      state = *loaded;
      spdlog::info("root source changed: root={} from={} to={}", name, state.source, source);
    } else if (rc == MDB_NOTFOUND) {
      MDB_val next_key = lmdb::ToVal(kNextRootKey), next_val;
      uint32_t next_id = 1;
      if (mdb_get(txn->get(), meta_, &next_key, &next_val) == MDB_SUCCESS &&
          next_val.mv_size == 4) {
        std::memcpy(&next_id, next_val.mv_data, 4);
      }
      state.id = next_id;
      state.name = std::string(name);
      uint32_t after = next_id + 1;
      MDB_val after_val{4, &after};
      MDB_val id_val{4, &state.id};
      if ((rc = mdb_put(txn->get(), meta_, &next_key, &after_val, 0)) != MDB_SUCCESS ||
          (rc = mdb_put(txn->get(), meta_, &k, &id_val, 0)) != MDB_SUCCESS) {
        if (rc == MDB_MAP_FULL) {
          txn->Abort();
          hold.unlock();
          Status grown = GrowMap();
          if (!grown.ok()) return grown;
          continue;
        }
        return lmdb::ToStatus(rc, "adding root");
      }
      spdlog::info("root added: root={} id={} source={}", name, state.id, source);
    } else {
      return lmdb::ToStatus(rc, "reading root name");
    }

    state.source = std::string(source);
    std::string state_key = RootStateKey(state.id);
    std::string encoded = EncodeRootState(state);
    MDB_val sk = lmdb::ToVal(state_key), sv = lmdb::ToVal(encoded);
    rc = mdb_put(txn->get(), meta_, &sk, &sv, 0);
    if (rc == MDB_SUCCESS) rc = txn->Commit();
    if (rc == MDB_SUCCESS) return state.id;
    if (rc != MDB_MAP_FULL) return lmdb::ToStatus(rc, "storing root state");
    txn->Abort();
    hold.unlock();
    Status grown = GrowMap();
    if (!grown.ok()) return grown;
  }
  return Internal("adding root '" + std::string(name) + "' kept hitting a full map");
}

RootInfo IndexImpl::MakeRootInfo(const lmdb::Txn& txn, const RootState& state) {
  RootInfo info;
  info.id = state.id;
  info.name = state.name;
  info.source = state.source;
  info.last_seq = state.last_seq;
  info.first_seq = state.first_seq;
  info.files = state.files;
  info.dirs = state.dirs;
  info.bytes = state.bytes;
  std::lock_guard<std::mutex> lock(runtime_mutex_);
  auto it = runtime_.find(state.id);
  if (it != runtime_.end()) {
    const ScanRuntime& rt = it->second;
    info.scans = rt.scans;
    info.last_scan_started_ns = rt.last_scan_started_ns;
    info.last_scan_finished_ns = rt.last_scan_finished_ns;
    info.last_scan_duration_ns = rt.last_scan_duration_ns;
    info.last_scan_entries = rt.last_scan_entries;
    info.last_scan_changes = rt.last_scan_changes;
    info.last_scan_failed_dirs = rt.last_scan_failed_dirs;
    info.last_good_scan_ns = rt.last_good_scan_ns;
    info.last_error = rt.last_error;
    info.last_error_ns = rt.last_error_ns;
  }
  if (auto settle = settle_.find(state.id); settle != settle_.end()) {
    info.unsettled = settle->second.waiting.size();
  }
  if (auto reconcile = reconcile_.find(state.id); reconcile != reconcile_.end()) {
    info.last_reconcile = reconcile->second.last;
    info.reconciles = reconcile->second.runs;
    info.drift_total = reconcile->second.drift;
  } else {
    // No full rescan since the process started: the stored report, if any.
    std::string key = ReconcileKey(state.id);
    MDB_val k = lmdb::ToVal(key), v;
    if (mdb_get(txn.get(), meta_, &k, &v) == MDB_SUCCESS) {
      std::optional<ReconcileReport> stored = DecodeReconcileReport(lmdb::ToView(v));
      if (stored) info.last_reconcile = *stored;
    }
  }
  return info;
}

Result<std::vector<RootInfo>> IndexImpl::ListRoots() {
  auto read = BeginRead();
  if (!read.ok()) return read.status();
  auto cursor = lmdb::Cursor::Open(read->txn, meta_);
  if (!cursor.ok()) return cursor.status();
  std::vector<RootInfo> roots;
  std::string prefix = "root/";
  MDB_val k = lmdb::ToVal(prefix), v;
  for (int rc = cursor->Get(&k, &v, MDB_SET_RANGE); rc == MDB_SUCCESS;
       rc = cursor->Get(&k, &v, MDB_NEXT)) {
    if (!lmdb::ToView(k).starts_with(prefix)) break;
    std::optional<RootState> state = DecodeRootState(lmdb::ToView(v));
    if (!state) return Status(StatusCode::kCorruption, "a root has a malformed state record");
    roots.push_back(MakeRootInfo(read->txn, *state));
  }
  return roots;
}

Result<RootInfo> IndexImpl::GetRoot(std::string_view name) {
  auto read = BeginRead();
  if (!read.ok()) return read.status();
  std::string name_key = RootNameKey(name);
  MDB_val k = lmdb::ToVal(name_key), v;
  int rc = mdb_get(read->txn.get(), meta_, &k, &v);
  if (rc == MDB_NOTFOUND || (rc == MDB_SUCCESS && v.mv_size != 4)) {
    return NotFound("root '" + ToValidUtf8(name) + "' is not configured; GET /v1/roots lists the roots");
  }
  if (rc != MDB_SUCCESS) return lmdb::ToStatus(rc, "reading root name");
  uint32_t id;
  std::memcpy(&id, v.mv_data, 4);
  auto state = LoadRootState(read->txn, id);
  if (!state.ok()) return state.status();
  return MakeRootInfo(read->txn, *state);
}

Result<uint64_t> IndexImpl::LastSeq(uint32_t root_id) {
  auto read = BeginRead();
  if (!read.ok()) return read.status();
  auto state = LoadRootState(read->txn, root_id);
  if (!state.ok()) return state.status();
  return state->last_seq;
}

std::unique_ptr<ScanSession> IndexImpl::BeginScan(uint32_t root_id, const ScanOptions& options) {
  SetSettleTime(root_id, options.settle);
  return MakeScanSession(*this, root_id, options);
}

void IndexImpl::SetSettleTime(uint32_t root_id, std::chrono::nanoseconds settle) {
  std::lock_guard<std::mutex> lock(runtime_mutex_);
  settle_[root_id].settle = settle;
}

bool IndexImpl::SettleObserve(uint32_t root_id, const std::string& path, bool changed,
                              std::chrono::steady_clock::time_point now) {
  std::lock_guard<std::mutex> lock(runtime_mutex_);
  SettleTracker& tracker = settle_[root_id];
  auto [it, inserted] = tracker.waiting.try_emplace(path, SettleWatch{now, 0});
  it->second.misses = 0;
  if (changed) it->second.since = now;
  if (inserted || changed) return false;
  return now - it->second.since >= tracker.settle;
}

void IndexImpl::SettleForget(uint32_t root_id, const std::string& path) {
  std::lock_guard<std::mutex> lock(runtime_mutex_);
  auto tracker = settle_.find(root_id);
  if (tracker != settle_.end()) tracker->second.waiting.erase(path);
}

void IndexImpl::SettleForgetBelow(uint32_t root_id, const std::string& dir) {
  std::lock_guard<std::mutex> lock(runtime_mutex_);
  auto tracker = settle_.find(root_id);
  if (tracker == settle_.end()) return;
  auto& waiting = tracker->second.waiting;
  std::string prefix = dir.empty() ? std::string() : dir + "/";
  auto it = waiting.lower_bound(prefix);
  while (it != waiting.end() && it->first.starts_with(prefix)) it = waiting.erase(it);
}

SettlePlan IndexImpl::PlanSettle(uint32_t root_id, std::chrono::steady_clock::time_point now) {
  // An entry not seen by this many looks at its directory is dropped.
  constexpr uint32_t kMaxMisses = 3;
  SettlePlan plan;
  std::lock_guard<std::mutex> lock(runtime_mutex_);
  auto found = settle_.find(root_id);
  if (found == settle_.end()) return plan;
  SettleTracker& tracker = found->second;
  std::set<std::string> dirs;
  for (auto it = tracker.waiting.begin(); it != tracker.waiting.end();) {
    SettleWatch& watch = it->second;
    auto due = watch.since + tracker.settle;
    if (due <= now) {
      if (watch.misses >= kMaxMisses) {
        spdlog::warn("settle: entry no longer seen, dropped from the watch: root_id={} path={}", root_id,
                     ToValidUtf8(it->first));
        it = tracker.waiting.erase(it);
        continue;
      }
      ++watch.misses;
      dirs.insert(std::string(ParentPath(it->first)));
      // Looked at again one settle time later if this look misses it.
      due = now + tracker.settle;
    }
    if (!plan.next_due || due < *plan.next_due) plan.next_due = due;
    ++it;
  }
  plan.pending = tracker.waiting.size();
  plan.due_dirs.assign(dirs.begin(), dirs.end());
  return plan;
}

void IndexImpl::RecordReconcile(uint32_t root_id, const ReconcileReport& report) {
  Status stored = PutMeta(ReconcileKey(root_id), EncodeReconcileReport(report));
  if (!stored.ok()) {
    spdlog::error("storing the full rescan report failed, it is kept in memory only: root_id={} error={}",
                  root_id, stored.ToString());
  }
  std::lock_guard<std::mutex> lock(runtime_mutex_);
  ReconcileTotals& totals = reconcile_[root_id];
  totals.last = report;
  ++totals.runs;
  totals.drift.added += report.added;
  totals.drift.modified += report.modified;
  totals.drift.deleted += report.deleted;
  totals.drift.renamed += report.renamed;
  totals.drift.entries_checked += report.entries_checked;
  totals.drift.duration_ns += report.duration_ns;
}

Status IndexImpl::PutMeta(const std::string& key, const std::string& value) {
  std::lock_guard<std::mutex> write_lock(write_mutex_);
  if (!latched_failure_.ok()) return latched_failure_;
  for (int attempt = 0; attempt < 4; ++attempt) {
    std::shared_lock<std::shared_mutex> hold(map_mutex_);
    auto txn = lmdb::Txn::Begin(env_, 0);
    if (!txn.ok()) return txn.status();
    MDB_val k = lmdb::ToVal(key), v = lmdb::ToVal(value);
    int rc = mdb_put(txn->get(), meta_, &k, &v, 0);
    if (rc == MDB_SUCCESS) rc = txn->Commit();
    if (rc == MDB_SUCCESS) return Status::Ok();
    if (rc != MDB_MAP_FULL) return lmdb::ToStatus(rc, "writing meta key '" + key.substr(0, key.find('/')) + "'");
    txn->Abort();
    hold.unlock();
    Status grown = GrowMap();
    if (!grown.ok()) return grown;
  }
  return Internal("writing meta data kept hitting a full map");
}

void IndexImpl::SetCommitListener(std::function<void(uint32_t, uint64_t)> listener) {
  std::lock_guard<std::mutex> lock(listener_mutex_);
  listener_ = std::move(listener);
}

IndexStats IndexImpl::Stats() {
  IndexStats stats;
  stats.map_size_bytes = map_size_.load();
  MDB_envinfo info;
  MDB_stat env_stat;
  mdb_env_info(env_, &info);
  mdb_env_stat(env_, &env_stat);
  stats.used_bytes = (info.me_last_pgno + 1) * uint64_t{env_stat.ms_psize};
  stats.map_resizes = map_resizes_.load();
  stats.commits = commits_.load();
  stats.failed_commits = failed_commits_.load();
  stats.last_txn_id = info.me_last_txnid;
  return stats;
}

Status IndexImpl::WriteHealth() {
  std::lock_guard<std::mutex> lock(write_mutex_);
  return latched_failure_;
}

void IndexImpl::NoteScan(uint32_t root_id, const ScanRuntime& update, bool finished, bool partial) {
  std::lock_guard<std::mutex> lock(runtime_mutex_);
  ScanRuntime& rt = runtime_[root_id];
  if (partial) {
    if (finished && !update.last_error.empty()) {
      rt.last_error = update.last_error;
      rt.last_error_ns = update.last_error_ns;
    }
    return;
  }
  if (!finished) {
    rt.last_scan_started_ns = update.last_scan_started_ns;
    return;
  }
  ++rt.scans;
  rt.last_scan_finished_ns = update.last_scan_finished_ns;
  rt.last_scan_duration_ns = update.last_scan_duration_ns;
  rt.last_scan_entries = update.last_scan_entries;
  rt.last_scan_changes = update.last_scan_changes;
  rt.last_scan_failed_dirs = update.last_scan_failed_dirs;
  if (update.last_error.empty()) {
    rt.last_good_scan_ns = update.last_scan_finished_ns;
    rt.last_error.clear();
  } else {
    rt.last_error = update.last_error;
    rt.last_error_ns = update.last_error_ns;
  }
}

Status IndexImpl::RecordRootError(uint32_t root_id, const Status& error) {
  std::lock_guard<std::mutex> lock(runtime_mutex_);
  ScanRuntime& rt = runtime_[root_id];
  rt.last_error = error.ToString();
  rt.last_error_ns = WallClockNs();
  return Status::Ok();
}

Status IndexImpl::ApplyBatch(const lmdb::Txn& txn, uint32_t root_id, Batch& batch,
                             uint64_t* last_seq) {
  auto loaded = LoadRootState(txn, root_id);
  if (!loaded.ok()) return loaded.status();
  RootState state = *loaded;
  uint64_t base = state.last_seq + 1;
  int rc;

  std::string value;
  for (size_t i = 0; i < batch.changes.size(); ++i) {
    batch.changes[i].seq = base + i;
    value.clear();
    EncodeChange(batch.changes[i], &value);
    std::string key = ChangeKey(root_id, base + i);
    MDB_val k = lmdb::ToVal(key), v = lmdb::ToVal(value);
    if ((rc = mdb_put(txn.get(), changes_, &k, &v, 0)) != MDB_SUCCESS) {
      return lmdb::ToStatus(rc, "writing a change");
    }
  }

  for (BucketOp& op : batch.buckets) {
    MDB_val k = lmdb::ToVal(op.key), v;
    if (op.records.empty()) {
      rc = mdb_del(txn.get(), entries_, &k, nullptr);
      if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) return lmdb::ToStatus(rc, "deleting an entry");
      continue;
    }
    value.clear();
    for (size_t i = 0; i < op.records.size(); ++i) {
      if (op.change_refs[i] >= 0) op.records[i].seq = base + op.change_refs[i];
      AppendEntryRecord(op.records[i], &value);
    }
    v = lmdb::ToVal(value);
    if ((rc = mdb_put(txn.get(), entries_, &k, &v, 0)) != MDB_SUCCESS) {
      return lmdb::ToStatus(rc, "writing an entry");
    }
  }

  for (const DirOp& op : batch.dirs) {
    MDB_val k = lmdb::ToVal(op.key), v = lmdb::ToVal(op.path);
    rc = op.put ? mdb_put(txn.get(), dirs_, &k, &v, 0) : mdb_del(txn.get(), dirs_, &k, nullptr);
    if (rc != MDB_SUCCESS && !(rc == MDB_NOTFOUND && !op.put)) {
      return lmdb::ToStatus(rc, "writing a directory record");
    }
  }

  state.last_seq += batch.changes.size();
  state.files = static_cast<uint64_t>(static_cast<int64_t>(state.files) + batch.files_delta);
  state.dirs = static_cast<uint64_t>(static_cast<int64_t>(state.dirs) + batch.dirs_delta);
  state.bytes = static_cast<uint64_t>(static_cast<int64_t>(state.bytes) + batch.bytes_delta);

  // Retention by count: drop the oldest changes beyond the limit.
  uint64_t retained = state.last_seq + 1 - state.first_seq;
  if (retained > options_.retention_changes) {
    uint64_t drop = std::min(retained - options_.retention_changes, kMaxTrimPerCommit);
    for (uint64_t seq = state.first_seq; seq < state.first_seq + drop; ++seq) {
      std::string key = ChangeKey(root_id, seq);
      MDB_val k = lmdb::ToVal(key);
      rc = mdb_del(txn.get(), changes_, &k, nullptr);
      if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) return lmdb::ToStatus(rc, "trimming the change log");
    }
    state.first_seq += drop;
  }

  std::string state_key = RootStateKey(root_id);
  std::string encoded = EncodeRootState(state);
  MDB_val sk = lmdb::ToVal(state_key), sv = lmdb::ToVal(encoded);
  if ((rc = mdb_put(txn.get(), meta_, &sk, &sv, 0)) != MDB_SUCCESS) {
    return lmdb::ToStatus(rc, "writing root state");
  }
  *last_seq = state.last_seq;
  return Status::Ok();
}

Result<uint64_t> IndexImpl::CommitBatch(uint32_t root_id, Batch& batch) {
  uint64_t last_seq = 0;
  {
    std::lock_guard<std::mutex> write_lock(write_mutex_);
    if (!latched_failure_.ok()) return latched_failure_;
    for (;;) {
      std::shared_lock<std::shared_mutex> hold(map_mutex_);
      auto txn = lmdb::Txn::Begin(env_, 0);
      if (!txn.ok()) return txn.status();
      Status applied = ApplyBatch(*txn, root_id, batch, &last_seq);
      int rc = MDB_SUCCESS;
      if (applied.ok()) {
        rc = txn->Commit();
        if (rc == MDB_SUCCESS) break;
        applied = lmdb::ToStatus(rc, "mdb_txn_commit");
      }
      txn->Abort();
      hold.unlock();
      if (applied.code() == StatusCode::kResourceExhausted &&
          applied.message().find("MDB_MAP_FULL") != std::string::npos) {
        Status grown = GrowMap();
        if (grown.ok()) continue;
        applied = grown;
      }
      ++failed_commits_;
      if (IsFatalCommitError(rc)) {
        latched_failure_ = Status(applied.code(), applied.message() +
                                                      "; index writes stopped, restart dirindex");
        spdlog::critical("index writes stopped: dir={} error={}", options_.dir,
                         applied.ToString());
      }
      spdlog::error("index commit failed: dir={} root_id={} changes={} error={}",
                    options_.dir, root_id, batch.changes.size(), applied.ToString());
      return applied;
    }
    ++commits_;
  }
  if (!batch.changes.empty()) {
    std::lock_guard<std::mutex> lock(listener_mutex_);
    if (listener_) listener_(root_id, last_seq);
  }
  return last_seq;
}

Result<DirSlot> IndexImpl::FindDirSlot(
    const lmdb::Txn& txn, uint32_t root_id, std::string_view path,
    const std::unordered_map<uint64_t, std::string>* pending) {
  std::optional<uint64_t> free_slot;
  for (uint64_t seed = 0; seed < kMaxDirProbes; ++seed) {
    uint64_t hash = dir_hash_(path, seed);
    if (pending != nullptr) {
      auto it = pending->find(hash);
      if (it != pending->end()) {
        if (it->second == path) return DirSlot{hash, true};
        continue;
      }
    }
    std::string key = DirKey(root_id, hash);
    MDB_val k = lmdb::ToVal(key), v;
    int rc = mdb_get(txn.get(), dirs_, &k, &v);
    if (rc == MDB_SUCCESS) {
      if (lmdb::ToView(v) == path) return DirSlot{hash, true};
      continue;  // another directory's path has this hash
    }
    if (rc != MDB_NOTFOUND) return lmdb::ToStatus(rc, "reading a directory record");
    // Probing goes on past a free slot: a colliding path may sit further
    // on if the path that once took this slot was deleted.
    if (!free_slot) free_slot = hash;
  }
  if (pending == nullptr) {
    return NotFound("directory '" + ToValidUtf8(path) + "' is not indexed");
  }
  if (!free_slot) {
    return Status(StatusCode::kResourceExhausted,
                  "directory '" + ToValidUtf8(path) + "': all " +
                      std::to_string(kMaxDirProbes) + " hash slots are taken by other paths");
  }
  return DirSlot{*free_slot, false};
}

Result<std::string> IndexImpl::DirPath(const lmdb::Txn& txn, uint32_t root_id, uint64_t slot) {
  std::string key = DirKey(root_id, slot);
  MDB_val k = lmdb::ToVal(key), v;
  int rc = mdb_get(txn.get(), dirs_, &k, &v);
  if (rc == MDB_NOTFOUND) {
    return Status(StatusCode::kCorruption, "entries exist for directory slot " +
                                               std::to_string(slot) + " without a directory record");
  }
  if (rc != MDB_SUCCESS) return lmdb::ToStatus(rc, "reading a directory record");
  return std::string(lmdb::ToView(v));
}

}  // namespace dirindex
