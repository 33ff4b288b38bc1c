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
#include <mutex>

#include "index/index_impl.h"
#include "index/paths.h"

namespace dirindex {

namespace {

int64_t Truncate(int64_t ns, TimePrecision precision) {
  int64_t unit = 1;
  if (precision == TimePrecision::kSecond) unit = 1'000'000'000;
  if (precision == TimePrecision::kMinute) unit = 60'000'000'000;
  int64_t q = ns / unit;
  if (ns % unit < 0) --q;  // floor for times before 1970
  return q * unit;
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
  if (both & kKnownMtime) {
    TimePrecision coarse = std::max(record.mtime_precision, entry.mtime_precision);
    if (Truncate(record.mtime_ns, coarse) != Truncate(entry.mtime_ns, coarse)) return true;
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
  if (record.known & kKnownInode) change.inode = record.inode;
  return change;
}

bool IsBelow(std::string_view path, std::string_view dir) {
  return path.size() > dir.size() && path[dir.size()] == '/' && path.starts_with(dir);
}

// Turns each deletion and addition of the same inode and type in `batch`
// into one rename. Directories go first. A renamed directory's change moves
// to the front of the batch, and the paths of the other changes beneath it
// are rewritten to the new place. An entry that merely moved with it leaves
// the feed, or stays as a modification when it changed too. Files are
// paired after that. An inode deleted or added more than once (hard links)
// is left alone.
void PairRenames(Batch* batch) {
  std::vector<Change>& changes = batch->changes;
  std::vector<bool> dropped(changes.size(), false);

  // Finds deletion/addition pairs of `want_dirs` entries by inode.
  auto find_pairs = [&](bool want_dirs) {
    std::unordered_map<uint64_t, std::pair<int64_t, int>> deleted, added;  // (index, count)
    for (size_t i = 0; i < changes.size(); ++i) {
      const Change& change = changes[i];
      if (dropped[i] || change.inode == 0 || (change.type == EntryType::kDir) != want_dirs) continue;
      std::unordered_map<uint64_t, std::pair<int64_t, int>>* slot = nullptr;
      if (change.op == ChangeOp::kDeleted) slot = &deleted;
      if (change.op == ChangeOp::kAdded) slot = &added;
      if (slot == nullptr) continue;
      auto& [index, count] = (*slot)[change.inode];
      index = static_cast<int64_t>(i);
      ++count;
    }
    std::vector<std::pair<size_t, size_t>> pairs;  // (deletion, addition)
    for (const auto& [inode, add] : added) {
      auto del = deleted.find(inode);
      if (del == deleted.end() || del->second.second != 1 || add.second != 1) continue;
      size_t d = static_cast<size_t>(del->second.first), a = static_cast<size_t>(add.first);
      if (changes[d].type == changes[a].type && changes[d].path != changes[a].path) pairs.emplace_back(d, a);
    }
    return pairs;
  };
  auto make_rename = [&](size_t d, size_t a) {
    changes[a].op = ChangeOp::kRenamed;
    changes[a].old_path = changes[d].path;
    dropped[d] = true;
  };

  // Directories, outermost first, so nested renames see rewritten paths.
  std::vector<std::pair<size_t, size_t>> dir_pairs = find_pairs(true);
  std::sort(dir_pairs.begin(), dir_pairs.end(), [&](const auto& x, const auto& y) {
    return changes[x.first].path.size() < changes[y.first].path.size();
  });
  std::vector<size_t> front;
  for (auto [d, a] : dir_pairs) {
    if (dropped[d] || dropped[a]) continue;
    std::string old_dir = changes[d].path, new_dir = changes[a].path;
    make_rename(d, a);
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
      bool same = before.inode == change.inode && before.size == change.size &&
                  before.mtime_ns == change.mtime_ns && before.known == change.known;
      if (same || change.type == EntryType::kDir) {
        dropped[i] = true;
      } else {
        change.op = ChangeOp::kModified;
      }
    }
  }

  for (auto [d, a] : find_pairs(false)) make_rename(d, a);

  // Compact: renamed directories first, in the order found, then the rest;
  // entry records follow their changes to the new places.
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
    remap[i] = static_cast<int64_t>(kept.size());
    kept.push_back(std::move(changes[i]));
  }
  changes = std::move(kept);
  for (BucketOp& op : batch->buckets) {
    for (int64_t& ref : op.change_refs) {
      if (ref < 0) continue;
      // A record whose addition left the feed takes the sequence of the
      // batch's first change: the rename of the directory it moved with.
      int64_t moved = remap[static_cast<size_t>(ref)];
      ref = moved >= 0 ? moved : 0;
    }
  }
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
  ScanSessionImpl(IndexImpl& index, uint32_t root_id, ChangeOrigin origin)
      : index_(index), root_id_(root_id), origin_(origin), started_(std::chrono::steady_clock::now()) {
    ScanRuntime start;
    start.last_scan_started_ns = WallClockNs();
    index_.NoteScan(root_id_, start, false);
  }

  Status Accept(DirListing&& listing) override;
  Result<ScanSummary> Finish(const Status& scan_status) override;

 private:
  Status Merge(const DirListing& listing, Batch* out);
  Status DeleteSubtree(const lmdb::Txn& txn, const std::string& path, Batch* out,
                       std::vector<Change>* deletions, int depth);
  Status CommitPending(std::unique_lock<std::mutex>& lock);

  IndexImpl& index_;
  const uint32_t root_id_;
  const ChangeOrigin origin_;
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
};

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
    PairRenames(&pending_);
    deferring_ = false;
    return CommitPending(lock);
  }
  if (pending_size < index_.options().batch_changes) return Status::Ok();
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
  summary_.last_seq = *committed;
  return Status::Ok();
}

Result<ScanSummary> ScanSessionImpl::Finish(const Status& scan_status) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (failed_.ok() && !pending_.empty()) {
    if (deferring_) PairRenames(&pending_);
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
  index_.NoteScan(root_id_, done, true);
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

    // The common case on a rescan: one name, unchanged.
    if (old_records.size() == 1 && i - new_begin == 1 &&
        old_records[0].name == items[new_begin].entry->name &&
        !Differs(old_records[0], *items[new_begin].entry)) {
      continue;
    }

    // Merge the old and new names that share this hash (almost always at
    // most one of each).
    std::vector<EntryRecord> records;
    std::vector<int64_t> refs;
    bool changed = false;
    size_t o = 0, n = new_begin;
    while (o < old_records.size() || n < i) {
      int cmp = o == old_records.size() ? 1
                : n == i                ? -1
                                        : old_records[o].name.compare(items[n].entry->name);
      if (cmp < 0) {  // name gone
        const EntryRecord& gone = old_records[o];
        directs.push_back({MakeChange(ChangeOp::kDeleted, gone, JoinPath(listing.path, gone.name),
                                      origin_),
                           IsDir(gone.type)});
        CountEntry(gone, -1, out);
        changed = true;
        ++o;
      } else if (cmp > 0) {  // name new
        EntryRecord added = ToRecord(*items[n].entry);
        directs.push_back({MakeChange(ChangeOp::kAdded, added, JoinPath(listing.path, added.name),
                                      origin_),
                           false});
        CountEntry(added, +1, out);
        refs.push_back(static_cast<int64_t>(directs.size() - 1));
        records.push_back(std::move(added));
        changed = true;
        ++n;
      } else if (!Differs(old_records[o], *items[n].entry)) {
        records.push_back(std::move(old_records[o]));
        refs.push_back(-1);
        ++o, ++n;
      } else {
        const EntryRecord& before = old_records[o];
        EntryRecord after = ToRecord(*items[n].entry);
        std::string path = JoinPath(listing.path, after.name);
        if (before.type != after.type) {
          // A type change is a deletion and an addition, so clients never
          // see a directory "modified" into a file.
          directs.push_back({MakeChange(ChangeOp::kDeleted, before, path, origin_), IsDir(before.type)});
          directs.push_back({MakeChange(ChangeOp::kAdded, after, path, origin_), false});
        } else {
          directs.push_back({MakeChange(ChangeOp::kModified, after, path, origin_), false});
        }
        CountEntry(before, -1, out);
        CountEntry(after, +1, out);
        refs.push_back(static_cast<int64_t>(directs.size() - 1));
        records.push_back(std::move(after));
        changed = true;
        ++o, ++n;
      }
    }
    if (changed) add_bucket(hash, std::move(records), std::move(refs));
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
      deletions->push_back(MakeChange(ChangeOp::kDeleted, record, std::move(child), origin_));
    }
  }
  out->dirs.push_back(DirOp{DirKey(root_id_, slot.hash), path, false});
  return Status::Ok();
}

}  // namespace

std::unique_ptr<ScanSession> MakeScanSession(IndexImpl& index, uint32_t root_id,
                                             ChangeOrigin origin) {
  return std::make_unique<ScanSessionImpl>(index, root_id, origin);
}

}  // namespace dirindex
