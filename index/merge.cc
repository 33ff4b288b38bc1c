// The merge diff: a fresh directory listing against the directory's key
// range in the entries table.
//
// Both sides are walked in key order (the listing sorted by name hash, the
// range read with one LMDB cursor), so a directory of n entries costs
// O(n log n) to sort and O(n) to compare. The comparison runs in a read
// transaction on the caller's thread. Only a directory with differences
// adds operations to the scan's pending batch, and each batch commits in
// one write transaction. A directory with nothing new therefore
// costs one read transaction and writes nothing.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <tuple>
#include <utility>

#include "index/index_impl.h"
#include "index/paths.h"

namespace dirindex {

namespace {

// Returns true when two mtimes, each standing for [t, t + its unit), can be
// the same instant.
bool SameMtime(int64_t a, TimePrecision a_precision, int64_t b, TimePrecision b_precision) {
  return a < b + PrecisionUnitNs(b_precision) && b < a + PrecisionUnitNs(a_precision);
}

bool IsDir(EntryType type) { return type == EntryType::kDir; }

EntryRecord ToRecord(const ListedEntry& entry) {
  EntryRecord record;
  record.type = entry.type;
  record.known = entry.known;
  record.mtime_precision = entry.mtime_precision;
  record.mode = entry.mode;
  record.size = entry.size;
  record.mtime_ns = entry.mtime_ns;
  record.inode = entry.inode;
  record.name = entry.name;
  return record;
}

// Returns true when `entry` differs from the stored `record` in anything a
// client sees or that signals new content. Only facts known on both sides
// are compared, and mtimes at the coarser of the two precisions.
bool Differs(const EntryRecord& record, const ListedEntry& entry) {
  if (record.type != entry.type) return true;
  uint8_t both = record.known & entry.known;
  if ((both & kKnownMode) && (record.mode & 07777) != (entry.mode & 07777)) return true;
  if ((both & kKnownInode) && record.inode != entry.inode) return true;
  if (IsDir(entry.type)) return false;  // a directory's size and mtime follow its names
  if ((both & kKnownSize) && record.size != entry.size) return true;
  if ((both & kKnownMtime) &&
      !SameMtime(record.mtime_ns, record.mtime_precision, entry.mtime_ns, entry.mtime_precision)) {
    return true;
  }
  // A fact that became known, or stopped being known, is news too.
  return (record.known & (kKnownSize | kKnownMtime)) != (entry.known & (kKnownSize | kKnownMtime));
}

Change MakeChange(ChangeOp op, const EntryRecord& record, std::string path,
                  ChangeOrigin origin) {
  Change change;
  change.op = op;
  change.type = record.type;
  change.origin = origin;
  change.known = record.known & (kKnownSize | kKnownMtime);
  change.size = record.size;
  change.mtime_ns = record.mtime_ns;
  change.path = std::move(path);
  change.mtime_precision = record.mtime_precision;
  if (record.known & kKnownInode) change.inode = record.inode;
  return change;
}

// remap value of a change that stays back because its entry has not settled.
constexpr int64_t kStillPending = -2;

bool IsBelow(std::string_view path, std::string_view dir) {
  return path.size() > dir.size() && path[dir.size()] == '/' && path.starts_with(dir);
}

// Facts a rename must keep for the renamed entry to count as settled.
bool SameFacts(const Change& a, const Change& b) {
  return a.known == b.known && a.size == b.size && a.mtime_ns == b.mtime_ns;
}

// Turns each deletion and addition of the same inode and type in `batch`
// into one rename. Directories go first. A renamed directory's change moves
// to the front of the batch, and the paths of the other changes beneath it
// are rewritten to the new place. An entry that merely moved with it leaves
// the feed, or stays as a modification when it changed too. Files are
// paired after that, by inode, and then, for sources without inodes, by
// name gone and name new in the same directory with the same type, size
// and mtime (an inferred rename). An inode or a (directory, size, mtime)
// seen more than once on either side is left alone.
//
// Pending changes (entries that have not settled) take part in pairing; a
// rename of a settled entry is announced at once. Pending changes left
// unpaired leave the batch. Returns the paths whose records settled by
// being paired.
std::vector<std::string> PairRenames(Batch* batch, bool pair) {
  std::vector<Change>& changes = batch->changes;
  std::vector<bool> dropped(changes.size(), false);
  // The settle state a pending change's record takes after pairing; -1
  // keeps the state the merge gave it.
  std::vector<int> record_state(changes.size(), -1);
  std::vector<std::string> settled;
  auto settle = [&](size_t i, SettleState state) {
    if (!changes[i].pending) return;
    changes[i].pending = false;
    record_state[i] = static_cast<int>(state);
    if (state == SettleState::kSettled) settled.push_back(changes[i].path);
  };

  // Finds unique deletion/addition pairs among `want_dirs` entries by `key`,
  // which returns nullopt for changes that cannot pair.
  auto find_pairs = [&](bool want_dirs, auto key) {
    using Key = typename decltype(key(changes[0]))::value_type;
    std::map<Key, std::pair<size_t, int>> deleted, added;  // (index, count)
    for (size_t i = 0; i < changes.size(); ++i) {
      const Change& change = changes[i];
      if (dropped[i] || (change.type == EntryType::kDir) != want_dirs) continue;
      std::map<Key, std::pair<size_t, int>>* side = nullptr;
      // A pending deletion never happens: only additions wait.
      if (change.op == ChangeOp::kDeleted) side = &deleted;
      if (change.op == ChangeOp::kAdded) side = &added;
      if (side == nullptr) continue;
      auto k = key(change);
      if (!k) continue;
      auto& [index, count] = (*side)[*k];
      index = i;
      ++count;
    }
    std::vector<std::pair<size_t, size_t>> pairs;  // (deletion, addition)
    for (const auto& [k, add] : added) {
      auto del = deleted.find(k);
      if (del == deleted.end() || del->second.second != 1 || add.second != 1) continue;
      size_t d = del->second.first, a = add.first;
      if (changes[d].type == changes[a].type && changes[d].path != changes[a].path) pairs.emplace_back(d, a);
    }
    return pairs;
  };
  auto by_inode = [](const Change& change) -> std::optional<uint64_t> {
    if (change.inode == 0) return std::nullopt;
    return change.inode;
  };
  // File systems reuse the inode of a deleted file for the next one
  // created. A rename keeps the file's mtime and a new file has its own, so
  // a file pairs only when its mtime, where known on both sides, is the same.
  auto same_file = [&](size_t d, size_t a) {
    const Change& before = changes[d];
    const Change& after = changes[a];
    return before.type == EntryType::kDir || !(before.known & after.known & kKnownMtime) ||
           before.mtime_ns == after.mtime_ns;
  };
  auto make_rename = [&](size_t d, size_t a, bool inferred) {
    Change& change = changes[a];
    change.op = ChangeOp::kRenamed;
    change.old_path = changes[d].path;
    change.inferred = inferred;
    // Renamed and changed: the rename is news now, the new content once it
    // settles.
    settle(a, SameFacts(changes[d], change) ? SettleState::kSettled : SettleState::kPendingModify);
    dropped[d] = true;
  };

  std::vector<size_t> front;
  if (pair) {
    // Directories, outermost first, so nested renames see rewritten paths.
    std::vector<std::pair<size_t, size_t>> dir_pairs = find_pairs(true, by_inode);
    std::sort(dir_pairs.begin(), dir_pairs.end(), [&](const auto& x, const auto& y) {
      return changes[x.first].path.size() < changes[y.first].path.size();
    });
    for (auto [d, a] : dir_pairs) {
      if (dropped[d] || dropped[a]) continue;
      std::string old_dir = changes[d].path, new_dir = changes[a].path;
      make_rename(d, a, false);
      front.push_back(a);
      auto rewrite = [&](std::string& path) {
        if (IsBelow(path, old_dir)) path = new_dir + path.substr(old_dir.size());
      };
      std::unordered_map<std::string, size_t> moved_away;  // deletions now below new_dir
      for (size_t i = 0; i < changes.size(); ++i) {
        if (dropped[i] || i == a) continue;
        bool was_below = IsBelow(changes[i].path, old_dir);
        rewrite(changes[i].path);
        rewrite(changes[i].old_path);
        if (was_below && changes[i].op == ChangeOp::kDeleted) moved_away.emplace(changes[i].path, i);
      }
      // An entry that moved with the directory shows up as a deletion and an
      // addition of the same path now: keep at most a modification.
      for (size_t i = 0; i < changes.size(); ++i) {
        Change& change = changes[i];
        if (dropped[i] || change.op != ChangeOp::kAdded) continue;
        auto match = moved_away.find(change.path);
        if (match == moved_away.end() || dropped[match->second]) continue;
        const Change& before = changes[match->second];
        if (before.type != change.type) continue;
        dropped[match->second] = true;
        bool same = before.inode == change.inode && SameFacts(before, change);
        if (same || change.type == EntryType::kDir) {
          settle(i, SettleState::kSettled);
          dropped[i] = true;
        } else if (change.pending) {
          // Known to clients through the directory's rename; the new
          // content waits to settle.
          settle(i, SettleState::kPendingModify);
          dropped[i] = true;
        } else {
          change.op = ChangeOp::kModified;
        }
      }
    }

    for (auto [d, a] : find_pairs(false, by_inode)) {
      if (same_file(d, a)) make_rename(d, a, false);
    }
    auto by_facts = [](const Change& change) -> std::optional<std::tuple<std::string, int, uint64_t, int64_t>> {
      if (change.inode != 0 || (change.known & (kKnownSize | kKnownMtime)) != (kKnownSize | kKnownMtime) ||
          change.mtime_precision >= TimePrecision::kMinute) {
        return std::nullopt;
      }
      return std::tuple(std::string(ParentPath(change.path)), static_cast<int>(change.type), change.size,
                        change.mtime_ns);
    };
    for (auto [d, a] : find_pairs(false, by_facts)) make_rename(d, a, true);
  }

  // Compact: renamed directories first, in the order found, then the rest,
  // without pending changes; entry records follow their changes to the new
  // places.
  std::vector<int64_t> remap(changes.size(), -1);
  std::vector<Change> kept;
  kept.reserve(changes.size());
  for (size_t i : front) {
    remap[i] = static_cast<int64_t>(kept.size());
    kept.push_back(std::move(changes[i]));
    dropped[i] = true;
  }
  for (size_t i = 0; i < changes.size(); ++i) {
    if (dropped[i]) continue;
    if (changes[i].pending) {
      remap[i] = kStillPending;
      continue;
    }
    remap[i] = static_cast<int64_t>(kept.size());
    kept.push_back(std::move(changes[i]));
  }
  changes = std::move(kept);
  for (BucketOp& op : batch->buckets) {
    for (size_t r = 0; r < op.change_refs.size(); ++r) {
      int64_t& ref = op.change_refs[r];
      if (ref < 0) continue;
      size_t was = static_cast<size_t>(ref);
      if (record_state[was] >= 0) op.records[r].settle = static_cast<SettleState>(record_state[was]);
      int64_t moved = remap[was];
      if (moved == kStillPending) {
        ref = -1;  // the record keeps its sequence and waits
        continue;
      }
      // A record whose addition left the feed takes the sequence of the
      // batch's first change: the rename of the directory it moved with.
      ref = moved >= 0 ? moved : 0;
    }
  }
  return settled;
}

void CountEntry(const EntryRecord& record, int sign, Batch* batch) {
  if (IsDir(record.type)) {
    batch->dirs_delta += sign;
  } else {
    batch->files_delta += sign;
    if (record.type == EntryType::kFile && (record.known & kKnownSize)) {
      batch->bytes_delta += sign * static_cast<int64_t>(record.size);
    }
  }
}

// DirectChange is a change to a name in the listed directory itself, before
// it gets its place in the batch.
struct DirectChange {
  Change change;
  bool deletes_subtree = false;  // a directory went away or became a non-directory
};

class ScanSessionImpl final : public ScanSession {
 public:
  ScanSessionImpl(IndexImpl& index, uint32_t root_id, const ScanOptions& options)
      : index_(index),
        root_id_(root_id),
        origin_(options.origin),
        settle_(options.settle),
        partial_(options.partial),
        started_(std::chrono::steady_clock::now()) {
    // A root with no entries yet has nothing a rename could come from, so
    // its first build commits as it goes instead of holding changes back.
    if (deferring_) {
      auto read = index_.BeginRead();
      if (read.ok()) {
        auto state = index_.LoadRootState(read->txn, root_id_);
        if (state.ok() && state->files == 0 && state->dirs == 0) deferring_ = false;
      }
    }
    if (!partial_) {
      ScanRuntime start;
      start.last_scan_started_ns = WallClockNs();
      index_.NoteScan(root_id_, start, false);
    }
  }

  Status Accept(DirListing&& listing) override;
  Result<ScanSummary> Finish(const Status& scan_status) override;
  std::vector<std::string> TakeAddedDirs() override;

 private:
  // Returns true when a new or changed non-directory with these facts
  // waits for the settle time: a settle time is set, and the mtime is not
  // already that old. An mtime at least one settle time in the past shows
  // that the file has not been written for that long.
  bool MustWait(const ListedEntry& entry) const;
  void FinishBatch(Batch* batch, bool pair);

  Status Merge(const DirListing& listing, Batch* out);
  Status DeleteSubtree(const lmdb::Txn& txn, const std::string& path, Batch* out,
                       std::vector<Change>* deletions, int depth);
  Status CommitPending(std::unique_lock<std::mutex>& lock);

  IndexImpl& index_;
  const uint32_t root_id_;
  const ChangeOrigin origin_;
  const std::chrono::nanoseconds settle_;
  const bool partial_;
  const std::chrono::steady_clock::time_point started_;

  std::mutex mutex_;  // guards everything below
  Batch pending_;
  // Slots chosen for directories whose records are not committed yet.
  std::unordered_map<uint64_t, std::string> pending_slots_;
  ScanSummary summary_;
  std::string first_error_;
  Status failed_;  // a commit failed: every later Accept returns it
  // True while the scan keeps its changes back to pair renames.
  bool deferring_ = index_.options().rename_window_changes > 0;
  // Directories added by merges since the last TakeAddedDirs.
  std::vector<std::string> added_dirs_;
};

bool ScanSessionImpl::MustWait(const ListedEntry& entry) const {
  if (settle_.count() <= 0 || IsDir(entry.type)) return false;
  if (!(entry.known & kKnownMtime)) return true;
  // A coarse mtime may be up to one unit older than the last write.
  return WallClockNs() - (entry.mtime_ns + PrecisionUnitNs(entry.mtime_precision)) < settle_.count();
}

void ScanSessionImpl::FinishBatch(Batch* batch, bool pair) {
  for (const std::string& path : PairRenames(batch, pair)) index_.SettleForget(root_id_, path);
}

std::vector<std::string> ScanSessionImpl::TakeAddedDirs() {
  std::lock_guard<std::mutex> lock(mutex_);
  return std::exchange(added_dirs_, {});
}

Status ScanSessionImpl::Accept(DirListing&& listing) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!failed_.ok()) return failed_;
    ++summary_.listings;
  }
  if (!listing.status.ok()) {
    // A partial listing must never turn into deletions: keep every stored
    // entry of this directory and report the error on the root.
    spdlog::warn("directory not listed, entries kept: root_id={} path={} error={}", root_id_,
                 ToValidUtf8(listing.path), listing.status.ToString());
    std::lock_guard<std::mutex> lock(mutex_);
    ++summary_.failed_dirs;
    if (first_error_.empty()) {
      first_error_ = "'" + ToValidUtf8(listing.path) + "': " + listing.status.ToString();
    }
    return Status::Ok();
  }

  Batch batch;
  Status merged = Merge(listing, &batch);
  std::unique_lock<std::mutex> lock(mutex_);
  if (!merged.ok()) {
    ++summary_.failed_dirs;
    if (first_error_.empty()) first_error_ = merged.ToString();
    spdlog::error("merge failed, entries kept: root_id={} path={} error={}", root_id_,
                  ToValidUtf8(listing.path), merged.ToString());
    return Status::Ok();
  }
  summary_.entries += listing.entries.size();
  if (batch.empty()) return Status::Ok();
  pending_.Append(std::move(batch));
  size_t pending_size = pending_.changes.size() + pending_.buckets.size();
  if (deferring_) {
    // Hold changes back so renames across directories can be paired.
    if (pending_size < index_.options().rename_window_changes) return Status::Ok();
    spdlog::info("rename window full, committing as the scan goes: root_id={} changes={}",
                 root_id_, pending_.changes.size());
    FinishBatch(&pending_, true);
    deferring_ = false;
    return CommitPending(lock);
  }
  if (pending_size < index_.options().batch_changes) return Status::Ok();
  FinishBatch(&pending_, false);
  return CommitPending(lock);
}

Status ScanSessionImpl::CommitPending(std::unique_lock<std::mutex>& lock) {
  Batch batch = std::move(pending_);
  pending_ = Batch();
  // The commit runs with the session unlocked so other walker threads keep
  // merging into the next batch. The index serializes commits itself, and
  // each directory appears in one listing per scan, so batches never touch
  // the same keys out of order.
  lock.unlock();
  auto committed = index_.CommitBatch(root_id_, batch);
  lock.lock();
  if (!committed.ok()) {
    failed_ = committed.status();
    return failed_;
  }
  ++summary_.commits;
  summary_.changes += batch.changes.size();
  for (const Change& change : batch.changes) {
    switch (change.op) {
      case ChangeOp::kAdded: ++summary_.added; break;
      case ChangeOp::kModified: ++summary_.modified; break;
      case ChangeOp::kDeleted: ++summary_.deleted; break;
      case ChangeOp::kRenamed: ++summary_.renamed; break;
    }
  }
  if (!batch.changes.empty()) summary_.last_seq = *committed;
  return Status::Ok();
}

Result<ScanSummary> ScanSessionImpl::Finish(const Status& scan_status) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (failed_.ok() && !pending_.empty()) {
    FinishBatch(&pending_, deferring_);
    Status committed = CommitPending(lock);
    (void)committed;  // kept in failed_
  }
  ScanRuntime done;
  done.last_scan_finished_ns = WallClockNs();
  done.last_scan_duration_ns = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                           started_)
          .count());
  done.last_scan_entries = summary_.entries;
  done.last_scan_changes = summary_.changes;
  done.last_scan_failed_dirs = summary_.failed_dirs;
  if (!failed_.ok()) {
    done.last_error = failed_.ToString();
  } else if (!scan_status.ok()) {
    done.last_error = scan_status.ToString();
  } else if (!first_error_.empty()) {
    done.last_error = std::to_string(summary_.failed_dirs) +
                      " directories could not be listed; first: " + first_error_;
  }
  done.last_error_ns = done.last_scan_finished_ns;
  index_.NoteScan(root_id_, done, true, partial_);
  if (!failed_.ok()) return failed_;
  return summary_;
}

Status ScanSessionImpl::Merge(const DirListing& listing, Batch* out) {
  Status valid = ValidateRelativePath(listing.path);
  if (!valid.ok()) return valid;

  // Sort the listing by (name hash, name), dropping names that could escape
  // the root and repeated names.
  struct Item {
    uint64_t hash;
    const ListedEntry* entry;
  };
  std::vector<Item> items;
  items.reserve(listing.entries.size());
  for (const ListedEntry& entry : listing.entries) {
    if (!IsValidEntryName(entry.name)) {
      spdlog::warn("entry name rejected: root_id={} dir={} name={}", root_id_,
                   ToValidUtf8(listing.path), ToValidUtf8(entry.name));
      continue;
    }
    items.push_back(Item{index_.NameHash(entry.name), &entry});
  }
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    return a.hash != b.hash ? a.hash < b.hash : a.entry->name < b.entry->name;
  });
  items.erase(std::unique(items.begin(), items.end(),
                          [](const Item& a, const Item& b) {
                            return a.hash == b.hash && a.entry->name == b.entry->name;
                          }),
              items.end());

  auto read = index_.BeginRead();
  if (!read.ok()) return read.status();
  const lmdb::Txn& txn = read->txn;

  DirSlot slot;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = index_.FindDirSlot(txn, root_id_, listing.path, &pending_slots_);
    if (!found.ok()) return found.status();
    slot = *found;
    if (!slot.exists) {
      pending_slots_.emplace(slot.hash, listing.path);
      out->dirs.push_back(DirOp{DirKey(root_id_, slot.hash), listing.path, true});
    }
  }

  auto cursor = lmdb::Cursor::Open(txn, index_.entries_dbi());
  if (!cursor.ok()) return cursor.status();
  std::string range = DirKey(root_id_, slot.hash);
  std::string start = EntryKey(root_id_, slot.hash, 0);
  MDB_val k = lmdb::ToVal(start), v;
  int rc = slot.exists ? cursor->Get(&k, &v, MDB_SET_RANGE) : MDB_NOTFOUND;

  std::vector<DirectChange> directs;
  std::vector<std::string> new_dirs;
  const auto now = std::chrono::steady_clock::now();
  std::vector<int64_t> bucket_direct_refs;  // per BucketOp record: index into directs
  std::vector<std::pair<size_t, size_t>> bucket_ref_spans;  // (first ref, count)
  size_t i = 0;
  std::vector<EntryRecord> old_records;  // reused across buckets

  auto add_bucket = [&](uint64_t hash, std::vector<EntryRecord> records,
                        std::vector<int64_t> refs) {
    bucket_ref_spans.emplace_back(bucket_direct_refs.size(), refs.size());
    bucket_direct_refs.insert(bucket_direct_refs.end(), refs.begin(), refs.end());
    out->buckets.push_back(BucketOp{EntryKey(root_id_, slot.hash, hash), std::move(records), {}});
  };

  for (;;) {
    bool have_old = rc == MDB_SUCCESS && k.mv_size == kEntryKeySize &&
                    lmdb::ToView(k).starts_with(range);
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) return lmdb::ToStatus(rc, "reading entries");
    uint64_t old_hash = have_old ? LoadBigEndian64(static_cast<const char*>(k.mv_data) + 12) : 0;
    bool have_new = i < items.size();
    if (!have_old && !have_new) break;

    uint64_t hash = !have_old ? items[i].hash
                    : !have_new ? old_hash
                                : std::min(old_hash, items[i].hash);
    if (have_old && old_hash == hash) {
      if (!DecodeBucketInto(lmdb::ToView(v), &old_records)) {
        return Status(StatusCode::kCorruption,
                      "malformed entry record in directory '" + ToValidUtf8(listing.path) + "'");
      }
      rc = cursor->Get(&k, &v, MDB_NEXT);
    } else {
      old_records.clear();
    }
    size_t new_begin = i;
    while (i < items.size() && items[i].hash == hash) ++i;

    // The common case on a rescan: one settled name, unchanged.
    if (old_records.size() == 1 && i - new_begin == 1 &&
        old_records[0].settle == SettleState::kSettled &&
        old_records[0].name == items[new_begin].entry->name &&
        !Differs(old_records[0], *items[new_begin].entry)) {
      continue;
    }

    // Merge the old and new names that share this hash (almost always at
    // most one of each).
    std::vector<EntryRecord> records;
    std::vector<int64_t> refs;
    bool changed = false;
    auto announce = [&](ChangeOp op, const EntryRecord& record, std::string path, bool pending) {
      Change change = MakeChange(op, record, std::move(path), origin_);
      change.pending = pending;
      directs.push_back({std::move(change), false});
      refs.push_back(static_cast<int64_t>(directs.size() - 1));
    };
    size_t o = 0, n = new_begin;
    while (o < old_records.size() || n < i) {
      int cmp = o == old_records.size() ? 1
                : n == i                ? -1
                                        : old_records[o].name.compare(items[n].entry->name);
      if (cmp < 0) {  // name gone
        const EntryRecord& gone = old_records[o];
        std::string path = JoinPath(listing.path, gone.name);
        if (gone.settle != SettleState::kSettled) index_.SettleForget(root_id_, path);
        // A name never announced leaves without a word.
        if (gone.settle != SettleState::kPendingAdd) {
          directs.push_back({MakeChange(ChangeOp::kDeleted, gone, std::move(path), origin_), IsDir(gone.type)});
        }
        CountEntry(gone, -1, out);
        changed = true;
        ++o;
      } else if (cmp > 0) {  // name new
        EntryRecord added = ToRecord(*items[n].entry);
        std::string path = JoinPath(listing.path, added.name);
        bool wait = MustWait(*items[n].entry);
        if (wait) {
          added.settle = SettleState::kPendingAdd;
          index_.SettleObserve(root_id_, path, true, now);
        }
        if (IsDir(added.type)) new_dirs.push_back(path);
        announce(ChangeOp::kAdded, added, std::move(path), wait);
        CountEntry(added, +1, out);
        records.push_back(std::move(added));
        changed = true;
        ++n;
      } else if (!Differs(old_records[o], *items[n].entry)) {
        EntryRecord& same = old_records[o];
        std::string path;
        if (same.settle != SettleState::kSettled) path = JoinPath(listing.path, same.name);
        if (same.settle != SettleState::kSettled && index_.SettleObserve(root_id_, path, false, now)) {
          // Unchanged for the settle time: announce it now.
          ChangeOp op = same.settle == SettleState::kPendingAdd ? ChangeOp::kAdded : ChangeOp::kModified;
          same.settle = SettleState::kSettled;
          index_.SettleForget(root_id_, path);
          announce(op, same, std::move(path), false);
          changed = true;
        } else {
          refs.push_back(-1);
        }
        records.push_back(std::move(same));
        ++o, ++n;
      } else {
        const EntryRecord& before = old_records[o];
        EntryRecord after = ToRecord(*items[n].entry);
        std::string path = JoinPath(listing.path, after.name);
        bool wait = MustWait(*items[n].entry);
        if (wait) {
          index_.SettleObserve(root_id_, path, true, now);
        } else if (before.settle != SettleState::kSettled) {
          index_.SettleForget(root_id_, path);
        }
        // A directory with another inode is another directory (the old one
        // was moved away or removed and a new one made under its name), so
        // its subtree must not carry over.
        bool other_dir = IsDir(before.type) && IsDir(after.type) &&
                         (before.known & after.known & kKnownInode) && before.inode != after.inode;
        if (before.type != after.type || other_dir) {
          // A type change is a deletion and an addition, so clients never
          // see a directory "modified" into a file.
          if (before.settle != SettleState::kPendingAdd) {
            directs.push_back({MakeChange(ChangeOp::kDeleted, before, path, origin_), IsDir(before.type)});
          }
          if (wait) after.settle = SettleState::kPendingAdd;
          if (IsDir(after.type)) new_dirs.push_back(path);
          announce(ChangeOp::kAdded, after, std::move(path), wait);
        } else {
          // Until its first announcement a name is still an addition.
          bool unannounced = before.settle == SettleState::kPendingAdd;
          if (wait) {
            after.settle = unannounced ? SettleState::kPendingAdd : SettleState::kPendingModify;
            after.seq = before.seq;
          }
          announce(unannounced ? ChangeOp::kAdded : ChangeOp::kModified, after, std::move(path), wait);
        }
        CountEntry(before, -1, out);
        CountEntry(after, +1, out);
        records.push_back(std::move(after));
        changed = true;
        ++o, ++n;
      }
    }
    if (changed) add_bucket(hash, std::move(records), std::move(refs));
  }
  if (!new_dirs.empty()) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (std::string& dir : new_dirs) added_dirs_.push_back(std::move(dir));
  }
  if (directs.empty()) return Status::Ok();

  // Order the changes by name. A removed directory's descendants are
  // deleted just before the directory itself.
  std::vector<size_t> order(directs.size());
  for (size_t d = 0; d < order.size(); ++d) order[d] = d;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return directs[a].change.path < directs[b].change.path;
  });
  std::vector<int64_t> final_index(directs.size(), -1);
  for (size_t d : order) {
    if (directs[d].deletes_subtree) {
      Status deleted = DeleteSubtree(txn, directs[d].change.path, out, &out->changes, 0);
      if (!deleted.ok()) return deleted;
    }
    final_index[d] = static_cast<int64_t>(out->changes.size());
    out->changes.push_back(std::move(directs[d].change));
  }
  for (size_t b = 0; b < bucket_ref_spans.size(); ++b) {
    auto [first, count] = bucket_ref_spans[b];
    BucketOp& op = out->buckets[b];
    op.change_refs.resize(count);
    for (size_t r = 0; r < count; ++r) {
      int64_t direct = bucket_direct_refs[first + r];
      op.change_refs[r] = direct < 0 ? -1 : final_index[static_cast<size_t>(direct)];
    }
  }
  return Status::Ok();
}

Status ScanSessionImpl::DeleteSubtree(const lmdb::Txn& txn, const std::string& path, Batch* out,
                                      std::vector<Change>* deletions, int depth) {
  // Directory depth is bounded by path length, but guard the recursion
  // against a corrupt loop of records all the same.
  if (depth > 4096) return Status(StatusCode::kCorruption, "directory nesting too deep under '" + ToValidUtf8(path) + "'");
  DirSlot slot;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = index_.FindDirSlot(txn, root_id_, path, &pending_slots_);
    if (!found.ok()) return found.status();
    slot = *found;
    if (!slot.exists) return Status::Ok();  // never listed: nothing beneath it is indexed
    pending_slots_.erase(slot.hash);
  }
  auto cursor = lmdb::Cursor::Open(txn, index_.entries_dbi());
  if (!cursor.ok()) return cursor.status();
  std::string range = DirKey(root_id_, slot.hash);
  std::string start = EntryKey(root_id_, slot.hash, 0);
  MDB_val k = lmdb::ToVal(start), v;
  for (int rc = cursor->Get(&k, &v, MDB_SET_RANGE); rc == MDB_SUCCESS;
       rc = cursor->Get(&k, &v, MDB_NEXT)) {
    if (!lmdb::ToView(k).starts_with(range)) break;
    auto records = DecodeBucket(lmdb::ToView(v));
    if (!records) return Status(StatusCode::kCorruption, "malformed entry under '" + ToValidUtf8(path) + "'");
    out->buckets.push_back(BucketOp{std::string(lmdb::ToView(k)), {}, {}});
    for (const EntryRecord& record : *records) {
      std::string child = JoinPath(path, record.name);
      if (IsDir(record.type)) {
        Status deleted = DeleteSubtree(txn, child, out, deletions, depth + 1);
        if (!deleted.ok()) return deleted;
      }
      CountEntry(record, -1, out);
      if (record.settle != SettleState::kPendingAdd) {
        deletions->push_back(MakeChange(ChangeOp::kDeleted, record, std::move(child), origin_));
      }
    }
  }
  index_.SettleForgetBelow(root_id_, path);
  out->dirs.push_back(DirOp{DirKey(root_id_, slot.hash), path, false});
  return Status::Ok();
}

}  // namespace

std::unique_ptr<ScanSession> MakeScanSession(IndexImpl& index, uint32_t root_id,
                                             const ScanOptions& options) {
  return std::make_unique<ScanSessionImpl>(index, root_id, options);
}

}  // namespace dirindex
