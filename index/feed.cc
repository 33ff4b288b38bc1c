// The read side: the change feed, fresh-instance snapshots, stat and the
// paged file listing. Every call reads in one LMDB read transaction.
#include <fnmatch.h>

#include "index/cursor.h"
#include "index/index_impl.h"
#include "index/paths.h"

namespace dirindex {

namespace {

// Records examined per request at most, so a filter that matches little
// cannot turn one request into a walk of the whole index.
constexpr size_t kMaxScannedPerRequest = 200'000;

bool MatchesPrefix(std::string_view path, std::string_view prefix) {
  if (prefix.empty()) return true;
  if (!path.starts_with(prefix)) return false;
  // "a/b" matches "a/b" and "a/b/c" but not "a/bc"; "a/b/" matches below it.
  return prefix.back() == '/' || path.size() == prefix.size() || path[prefix.size()] == '/';
}

bool MatchesGlob(std::string_view path, const std::string& glob) {
  if (glob.empty()) return true;
  std::string subject(glob.find('/') == std::string::npos ? BaseName(path) : path);
  return fnmatch(glob.c_str(), subject.c_str(), glob.find('/') == std::string::npos ? 0 : FNM_PATHNAME) == 0;
}

Change SnapshotChange(const EntryRecord& record, std::string path) {
  Change change;
  change.seq = record.seq;
  change.op = ChangeOp::kAdded;
  change.type = record.type;
  change.known = record.known & (kKnownSize | kKnownMtime);
  change.size = record.size;
  change.mtime_ns = record.mtime_ns;
  change.path = std::move(path);
  return change;
}

Entry MakeEntry(const EntryRecord& record, std::string path) {
  Entry entry;
  entry.path = std::move(path);
  entry.type = record.type;
  entry.known = record.known;
  entry.mode = record.mode;
  entry.size = record.size;
  entry.mtime_ns = record.mtime_ns;
  entry.inode = record.inode;
  entry.seq = record.seq;
  entry.stable = record.settle == SettleState::kSettled;
  return entry;
}

// EntryWalker visits a root's entries in key order from a position, with
// each record's full path. Directory paths are cached per slot.
class EntryWalker {
 public:
  EntryWalker(IndexImpl& index, const lmdb::Txn& txn, uint32_t root)
      : index_(index), txn_(txn), root_(root) {}

  // Calls visit(dir_hash, name_hash, record, path) for every record after
  // (dir_hash, name_hash), or from the start when `from_start`. Stops when
  // visit returns false or kMaxScannedPerRequest records were seen; then
  // *stopped_early is true and *last_key is the last visited key.
  template <typename Visit>
  Status Walk(bool from_start, uint64_t dir_hash, uint64_t name_hash, Visit visit,
              bool* stopped_early, std::pair<uint64_t, uint64_t>* last_key) {
    *stopped_early = false;
    auto cursor = lmdb::Cursor::Open(txn_, index_.entries_dbi());
    if (!cursor.ok()) return cursor.status();
    std::string range = DirKey(root_, 0).substr(0, 4);
    std::string start = from_start ? range : EntryKey(root_, dir_hash, name_hash);
    MDB_val k = lmdb::ToVal(start), v;
    int rc = cursor->Get(&k, &v, MDB_SET_RANGE);
    if (rc == MDB_SUCCESS && !from_start && lmdb::ToView(k) == start) {
      rc = cursor->Get(&k, &v, MDB_NEXT);  // the position itself was already returned
    }
    size_t scanned = 0;
    for (; rc == MDB_SUCCESS; rc = cursor->Get(&k, &v, MDB_NEXT)) {
      std::string_view key = lmdb::ToView(k);
      if (key.size() != kEntryKeySize || !key.starts_with(range)) break;
      uint64_t dir = LoadBigEndian64(key.data() + 4);
      uint64_t name = LoadBigEndian64(key.data() + 12);
      if (dir != cached_dir_ || !have_dir_) {
        auto path = index_.DirPath(txn_, root_, dir);
        if (!path.ok()) return path.status();
        dir_path_ = std::move(*path);
        cached_dir_ = dir;
        have_dir_ = true;
      }
      auto records = DecodeBucket(lmdb::ToView(v));
      if (!records) return Status(StatusCode::kCorruption, "malformed entry record in '" + ToValidUtf8(dir_path_) + "'");
      *last_key = {dir, name};
      bool more = true;
      for (const EntryRecord& record : *records) {
        if (!visit(record, JoinPath(dir_path_, record.name))) more = false;
      }
      if (!more || ++scanned >= kMaxScannedPerRequest) {
        *stopped_early = true;
        return Status::Ok();
      }
    }
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) return lmdb::ToStatus(rc, "reading entries");
    return Status::Ok();
  }

 private:
  IndexImpl& index_;
  const lmdb::Txn& txn_;
  uint32_t root_;
  uint64_t cached_dir_ = 0;
  bool have_dir_ = false;
  std::string dir_path_;
};

Result<FeedPage> ReadSnapshot(IndexImpl& index, const lmdb::Txn& txn, uint32_t root,
                              const FeedCursor& position, bool from_start, size_t limit,
                              std::string_view prefix) {
  FeedPage page;
  page.fresh_instance = true;
  EntryWalker walker(index, txn, root);
  bool stopped = false;
  std::pair<uint64_t, uint64_t> last_key{position.dir_hash, position.name_hash};
  Status walked = walker.Walk(
      from_start, position.dir_hash, position.name_hash,
      [&](const EntryRecord& record, std::string path) {
        // A name not announced yet is not part of the feed's state either.
        if (record.settle != SettleState::kPendingAdd && MatchesPrefix(path, prefix)) {
          page.changes.push_back(SnapshotChange(record, std::move(path)));
        }
        return page.changes.size() < limit;
      },
      &stopped, &last_key);
  if (!walked.ok()) return walked;

  FeedCursor next = position;
  if (stopped) {
    next.snapshot = true;
    next.dir_hash = last_key.first;
    next.name_hash = last_key.second;
    page.more = true;
  } else {
    // The listing is complete: continue with the changes committed since
    // it began. Any of them may repeat what the listing already showed.
    next.snapshot = false;
    next.dir_hash = next.name_hash = 0;
  }
  page.cursor = EncodeCursor(next);
  return page;
}

}  // namespace

Result<FeedPage> IndexImpl::ReadChanges(uint32_t root_id, std::string_view since, size_t limit,
                                        std::string_view prefix) {
  if (limit == 0) return InvalidArgument("limit must be at least 1");
  FeedCursor cursor;
  bool have_cursor = !since.empty();
  if (have_cursor) {
    auto decoded = DecodeCursor(since);
    if (!decoded.ok()) return decoded.status();
    cursor = *decoded;
    if (cursor.epoch == epoch_ && cursor.root != root_id) {
      return InvalidArgument("since='" + std::string(since) +
                             "' is a cursor of another root; use a cursor from this root's feed");
    }
  }

  auto read = BeginRead();
  if (!read.ok()) return read.status();
  auto state = LoadRootState(read->txn, root_id);
  if (!state.ok()) return state.status();

  // Start a fresh-instance listing when there is no usable position in the
  // change log: no cursor, another index's cursor, one older than the
  // retained log, or one from beyond the log's end (an index restored from
  // an older copy).
  bool foreign = have_cursor && cursor.epoch != epoch_;
  bool live_usable = have_cursor && !foreign && !cursor.snapshot &&
                     cursor.seq + 1 >= state->first_seq && cursor.seq <= state->last_seq;
  if (have_cursor && !foreign && cursor.snapshot) {
    if (cursor.seq > state->last_seq) {
      FeedCursor fresh{epoch_, root_id, state->last_seq};
      return ReadSnapshot(*this, read->txn, root_id, fresh, true, limit, prefix);
    }
    return ReadSnapshot(*this, read->txn, root_id, cursor, false, limit, prefix);
  }
  if (!live_usable) {
    FeedCursor fresh{epoch_, root_id, state->last_seq};
    return ReadSnapshot(*this, read->txn, root_id, fresh, true, limit, prefix);
  }

  FeedPage page;
  auto db_cursor = lmdb::Cursor::Open(read->txn, changes_);
  if (!db_cursor.ok()) return db_cursor.status();
  std::string start = ChangeKey(root_id, cursor.seq + 1);
  MDB_val k = lmdb::ToVal(start), v;
  uint64_t last_seen = cursor.seq;
  size_t scanned = 0;
  int rc = cursor.seq < state->last_seq ? db_cursor->Get(&k, &v, MDB_SET_RANGE) : MDB_NOTFOUND;
  for (; rc == MDB_SUCCESS; rc = db_cursor->Get(&k, &v, MDB_NEXT)) {
    std::string_view key = lmdb::ToView(k);
    if (key.size() != kChangeKeySize || LoadBigEndian32(key.data()) != root_id) break;
    uint64_t seq = LoadBigEndian64(key.data() + 4);
    if (page.changes.size() >= limit || scanned >= kMaxScannedPerRequest) {
      page.more = true;
      break;
    }
    ++scanned;
    auto change = DecodeChange(lmdb::ToView(v), seq);
    if (!change) return Status(StatusCode::kCorruption, "malformed change record at seq " + std::to_string(seq));
    last_seen = seq;
    if (MatchesPrefix(change->path, prefix) ||
        (!change->old_path.empty() && MatchesPrefix(change->old_path, prefix))) {
      page.changes.push_back(std::move(*change));
    }
  }
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) return lmdb::ToStatus(rc, "reading changes");
  page.cursor = EncodeCursor(FeedCursor{epoch_, root_id, last_seen});
  return page;
}

Result<std::optional<Entry>> IndexImpl::Stat(uint32_t root_id, std::string_view path) {
  Status valid = ValidateRelativePath(path);
  if (!valid.ok()) return valid;
  auto read = BeginRead();
  if (!read.ok()) return read.status();
  auto state = LoadRootState(read->txn, root_id);
  if (!state.ok()) return state.status();
  if (path.empty()) {
    Entry root;
    root.type = EntryType::kDir;
    return std::optional<Entry>(root);
  }

  auto slot = FindDirSlot(read->txn, root_id, ParentPath(path), nullptr);
  if (!slot.ok()) {
    if (slot.status().code() == StatusCode::kNotFound) return std::optional<Entry>();
    return slot.status();
  }
  std::string_view name = BaseName(path);
  std::string key = EntryKey(root_id, slot->hash, NameHash(name));
  MDB_val k = lmdb::ToVal(key), v;
  int rc = mdb_get(read->txn.get(), entries_, &k, &v);
  if (rc == MDB_NOTFOUND) return std::optional<Entry>();
  if (rc != MDB_SUCCESS) return lmdb::ToStatus(rc, "reading an entry");
  auto records = DecodeBucket(lmdb::ToView(v));
  if (!records) return Status(StatusCode::kCorruption, "malformed entry record for '" + ToValidUtf8(path) + "'");
  // The key is only a hash: the stored name decides.
  for (const EntryRecord& record : *records) {
    if (record.name == name) return std::optional<Entry>(MakeEntry(record, std::string(path)));
  }
  return std::optional<Entry>();
}

Result<FilesPage> IndexImpl::ListFiles(uint32_t root_id, const FilesQuery& query) {
  if (query.limit == 0) return InvalidArgument("limit must be at least 1");
  bool from_start = query.after.empty();
  uint64_t dir_hash = 0, name_hash = 0;
  if (!from_start) {
    std::optional<std::string> raw = Base64Decode(query.after);
    if (!raw || raw->size() != 16) {
      return InvalidArgument("after='" + ToValidUtf8(query.after.substr(0, 64)) +
                             "' is not a page token; pass the 'next' value of the previous page");
    }
    dir_hash = LoadBigEndian64(raw->data());
    name_hash = LoadBigEndian64(raw->data() + 8);
  }
  std::string prefix = query.prefix;
  auto read = BeginRead();
  if (!read.ok()) return read.status();
  auto state = LoadRootState(read->txn, root_id);
  if (!state.ok()) return state.status();

  FilesPage page;
  EntryWalker walker(*this, read->txn, root_id);
  bool stopped = false;
  std::pair<uint64_t, uint64_t> last_key{dir_hash, name_hash};
  Status walked = walker.Walk(
      from_start, dir_hash, name_hash,
      [&](const EntryRecord& record, std::string path) {
        if (MatchesPrefix(path, prefix) && MatchesGlob(path, query.glob)) {
          page.entries.push_back(MakeEntry(record, std::move(path)));
        }
        return page.entries.size() < query.limit;
      },
      &stopped, &last_key);
  if (!walked.ok()) return walked;
  if (stopped) {
    std::string raw = EntryKey(0, last_key.first, last_key.second).substr(4);
    page.next = Base64UrlEncode(raw);
  }
  return page;
}

}  // namespace dirindex
