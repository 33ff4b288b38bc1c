// Verify: a full consistency check of the index, used by `dirindex verify`
// and by the crash tests.
#include <map>
#include <set>

#include "index/index_impl.h"
#include "index/paths.h"

namespace dirindex {

namespace {

struct RootTally {
  uint64_t files = 0;
  uint64_t dirs = 0;
  uint64_t bytes = 0;
  // Directory entries by path, to check every dirs record has one.
  std::set<std::string> dir_entries;
  std::set<uint64_t> slots_with_entries;
};

void Problem(VerifyReport* report, std::string text) {
  if (report->problems.size() < 1000) report->problems.push_back(std::move(text));
}

}  // namespace

Result<VerifyReport> IndexImpl::Verify() {
  VerifyReport report;
  auto roots = ListRoots();
  if (!roots.ok()) return roots.status();
  auto read = BeginRead();
  if (!read.ok()) return read.status();
  const lmdb::Txn& txn = read->txn;

  for (const RootInfo& root : *roots) {
    ++report.roots;
    std::string label = "root '" + root.name + "': ";
    RootTally tally;
    std::map<uint64_t, std::string> dir_paths;

    // Directory records.
    auto dirs = lmdb::Cursor::Open(txn, dirs_);
    if (!dirs.ok()) return dirs.status();
    std::string range = DirKey(root.id, 0).substr(0, 4);
    MDB_val k = lmdb::ToVal(range), v;
    for (int rc = dirs->Get(&k, &v, MDB_SET_RANGE); rc == MDB_SUCCESS; rc = dirs->Get(&k, &v, MDB_NEXT)) {
      std::string_view key = lmdb::ToView(k);
      if (!key.starts_with(range)) break;
      ++report.dirs;
      dir_paths[LoadBigEndian64(key.data() + 4)] = std::string(lmdb::ToView(v));
    }

    // Entries: decodable, under a known directory, hashed as stored.
    auto entries = lmdb::Cursor::Open(txn, entries_);
    if (!entries.ok()) return entries.status();
    k = lmdb::ToVal(range);
    for (int rc = entries->Get(&k, &v, MDB_SET_RANGE); rc == MDB_SUCCESS;
         rc = entries->Get(&k, &v, MDB_NEXT)) {
      std::string_view key = lmdb::ToView(k);
      if (!key.starts_with(range)) break;
      uint64_t slot = LoadBigEndian64(key.data() + 4);
      uint64_t name_hash = LoadBigEndian64(key.data() + 12);
      auto dir = dir_paths.find(slot);
      auto records = DecodeBucket(lmdb::ToView(v));
      if (!records) {
        Problem(&report, label + "malformed entry record");
        continue;
      }
      if (dir == dir_paths.end()) {
        Problem(&report, label + "entry '" + ToValidUtf8((*records)[0].name) +
                             "' has no directory record");
        continue;
      }
      tally.slots_with_entries.insert(slot);
      for (const EntryRecord& record : *records) {
        ++report.entries;
        std::string path = JoinPath(dir->second, record.name);
        if (NameHash(record.name) != name_hash) {
          Problem(&report, label + "entry '" + ToValidUtf8(path) + "' is stored under a wrong hash");
        }
        if (!IsValidEntryName(record.name)) {
          Problem(&report, label + "entry '" + ToValidUtf8(path) + "' has an invalid name");
        }
        if (record.seq > root.last_seq) {
          Problem(&report, label + "entry '" + ToValidUtf8(path) + "' has seq " +
                               std::to_string(record.seq) + " beyond last_seq " +
                               std::to_string(root.last_seq));
        }
        if (record.type == EntryType::kDir) {
          ++tally.dirs;
          tally.dir_entries.insert(path);
        } else {
          ++tally.files;
          if (record.type == EntryType::kFile && (record.known & kKnownSize)) tally.bytes += record.size;
        }
      }
    }

    // Every directory record other than the root's names an indexed
    // directory, in the slot its path hashes to.
    for (const auto& [slot, path] : dir_paths) {
      if (!path.empty() && !tally.dir_entries.contains(path)) {
        Problem(&report, label + "directory record '" + ToValidUtf8(path) +
                             "' has no directory entry in its parent");
      }
      bool slot_matches = false;
      for (uint64_t seed = 0; seed < kMaxDirProbes && !slot_matches; ++seed) {
        slot_matches = DirHash(path, seed) == slot;
      }
      if (!slot_matches) Problem(&report, label + "directory record '" + ToValidUtf8(path) + "' is in a wrong slot");
    }

    if (tally.files != root.files || tally.dirs != root.dirs || tally.bytes != root.bytes) {
      Problem(&report, label + "counts disagree: stored files=" + std::to_string(root.files) +
                           " dirs=" + std::to_string(root.dirs) + " bytes=" + std::to_string(root.bytes) +
                           ", counted files=" + std::to_string(tally.files) + " dirs=" +
                           std::to_string(tally.dirs) + " bytes=" + std::to_string(tally.bytes));
    }

    // The change log contains exactly the sequences first_seq..last_seq.
    auto changes = lmdb::Cursor::Open(txn, changes_);
    if (!changes.ok()) return changes.status();
    k = lmdb::ToVal(range);
    uint64_t expected = root.first_seq;
    for (int rc = changes->Get(&k, &v, MDB_SET_RANGE); rc == MDB_SUCCESS;
         rc = changes->Get(&k, &v, MDB_NEXT)) {
      std::string_view key = lmdb::ToView(k);
      if (!key.starts_with(range)) break;
      ++report.changes;
      uint64_t seq = LoadBigEndian64(key.data() + 4);
      if (seq != expected) {
        Problem(&report, label + "change log gap: expected seq " + std::to_string(expected) +
                             ", found " + std::to_string(seq));
      }
      expected = seq + 1;
      if (!DecodeChange(lmdb::ToView(v), seq)) {
        Problem(&report, label + "malformed change record at seq " + std::to_string(seq));
      }
    }
    if (expected != root.last_seq + 1 && !(root.last_seq == 0 && expected == root.first_seq)) {
      Problem(&report, label + "change log ends at seq " + std::to_string(expected - 1) +
                           " but last_seq is " + std::to_string(root.last_seq));
    }
  }
  return report;
}

}  // namespace dirindex
