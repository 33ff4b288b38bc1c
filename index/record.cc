#include "index/record.h"

#include <cstring>

namespace dirindex {

namespace {

void PutBigEndian32(uint32_t v, char* out) {
  for (int i = 3; i >= 0; --i) {
    out[i] = static_cast<char>(v & 0xFF);
    v >>= 8;
  }
}

void PutBigEndian64(uint64_t v, char* out) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<char>(v & 0xFF);
    v >>= 8;
  }
}

template <typename T>
void AppendFixed(T value, std::string* out) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out->append(bytes, sizeof(T));
}

// Reader walks a value and turns every overrun into a failed read.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}

  template <typename T>
  bool Fixed(T* value) {
    if (data_.size() < sizeof(T)) return false;
    std::memcpy(value, data_.data(), sizeof(T));
    data_.remove_prefix(sizeof(T));
    return true;
  }

  bool Bytes(size_t n, std::string* out) {
    if (data_.size() < n) return false;
    out->assign(data_.data(), n);
    data_.remove_prefix(n);
    return true;
  }

  bool LengthPrefixed(std::string* out) {
    uint32_t n = 0;
    return Fixed(&n) && Bytes(n, out);
  }

  bool empty() const { return data_.empty(); }

 private:
  std::string_view data_;
};

void AppendLengthPrefixed(std::string_view bytes, std::string* out) {
  AppendFixed(static_cast<uint32_t>(bytes.size()), out);
  out->append(bytes);
}

}  // namespace

uint32_t LoadBigEndian32(const char* bytes) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(bytes[i]);
  return v;
}

uint64_t LoadBigEndian64(const char* bytes) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(bytes[i]);
  return v;
}

std::string EntryKey(uint32_t root, uint64_t dir_hash, uint64_t name_hash) {
  std::string key(kEntryKeySize, '\0');
  PutBigEndian32(root, key.data());
  PutBigEndian64(dir_hash, key.data() + 4);
  PutBigEndian64(name_hash, key.data() + 12);
  return key;
}

std::string DirKey(uint32_t root, uint64_t dir_hash) {
  std::string key(kDirKeySize, '\0');
  PutBigEndian32(root, key.data());
  PutBigEndian64(dir_hash, key.data() + 4);
  return key;
}

std::string ChangeKey(uint32_t root, uint64_t seq) {
  std::string key(kChangeKeySize, '\0');
  PutBigEndian32(root, key.data());
  PutBigEndian64(seq, key.data() + 4);
  return key;
}

void AppendEntryRecord(const EntryRecord& record, std::string* out) {
  out->push_back(static_cast<char>(record.type));
  out->push_back(static_cast<char>(record.known));
  out->push_back(static_cast<char>(record.mtime_precision));
  out->push_back(static_cast<char>(record.settle));
  AppendFixed(record.mode, out);
  AppendFixed(record.size, out);
  AppendFixed(record.mtime_ns, out);
  AppendFixed(record.inode, out);
  AppendFixed(record.seq, out);
  AppendFixed(static_cast<uint16_t>(record.name.size()), out);
  out->append(record.name);
}

bool DecodeBucketInto(std::string_view value, std::vector<EntryRecord>* out) {
  size_t count = 0;
  Reader reader(value);
  while (!reader.empty()) {
    if (out->size() <= count) out->emplace_back();
    EntryRecord& record = (*out)[count];
    uint8_t type = 0, known = 0, precision = 0, settle = 0;
    uint16_t name_size = 0;
    if (!reader.Fixed(&type) || !reader.Fixed(&known) ||
        !reader.Fixed(&precision) || !reader.Fixed(&settle) ||
        !reader.Fixed(&record.mode) || !reader.Fixed(&record.size) ||
        !reader.Fixed(&record.mtime_ns) || !reader.Fixed(&record.inode) ||
        !reader.Fixed(&record.seq) || !reader.Fixed(&name_size) ||
        !reader.Bytes(name_size, &record.name)) {
      return false;
    }
    if (type > static_cast<uint8_t>(EntryType::kOther) ||
        precision > static_cast<uint8_t>(TimePrecision::kDay) ||
        settle > static_cast<uint8_t>(SettleState::kPendingModify)) {
      return false;
    }
    record.settle = static_cast<SettleState>(settle);
    record.type = static_cast<EntryType>(type);
    record.known = known;
    record.mtime_precision = static_cast<TimePrecision>(precision);
    ++count;
  }
  out->resize(count);
  return count > 0;
}

std::optional<std::vector<EntryRecord>> DecodeBucket(std::string_view value) {
  std::vector<EntryRecord> records;
  if (!DecodeBucketInto(value, &records)) return std::nullopt;
  return records;
}

void EncodeChange(const Change& change, std::string* out) {
  out->push_back(static_cast<char>(change.op));
  out->push_back(static_cast<char>(change.type));
  out->push_back(static_cast<char>(change.origin));
  out->push_back(static_cast<char>(change.inferred ? 1 : 0));
  out->push_back(static_cast<char>(change.known));
  AppendFixed(change.size, out);
  AppendFixed(change.mtime_ns, out);
  AppendLengthPrefixed(change.path, out);
  AppendLengthPrefixed(change.old_path, out);
}

std::optional<Change> DecodeChange(std::string_view value, uint64_t seq) {
  Change change;
  change.seq = seq;
  Reader reader(value);
  uint8_t op = 0, type = 0, origin = 0, inferred = 0;
  if (!reader.Fixed(&op) || !reader.Fixed(&type) || !reader.Fixed(&origin) ||
      !reader.Fixed(&inferred) || !reader.Fixed(&change.known) ||
      !reader.Fixed(&change.size) || !reader.Fixed(&change.mtime_ns) ||
      !reader.LengthPrefixed(&change.path) ||
      !reader.LengthPrefixed(&change.old_path) || !reader.empty()) {
    return std::nullopt;
  }
  if (op < 1 || op > 4 || type > 4 || origin > 1) return std::nullopt;
  change.op = static_cast<ChangeOp>(op);
  change.type = static_cast<EntryType>(type);
  change.origin = static_cast<ChangeOrigin>(origin);
  change.inferred = inferred != 0;
  return change;
}

std::string EncodeRootState(const RootState& state) {
  std::string out;
  out.push_back(1);  // layout version of this value
  AppendFixed(state.id, &out);
  AppendFixed(state.last_seq, &out);
  AppendFixed(state.first_seq, &out);
  AppendFixed(state.files, &out);
  AppendFixed(state.dirs, &out);
  AppendFixed(state.bytes, &out);
  AppendLengthPrefixed(state.name, &out);
  AppendLengthPrefixed(state.source, &out);
  return out;
}

std::optional<RootState> DecodeRootState(std::string_view value) {
  RootState state;
  Reader reader(value);
  uint8_t version = 0;
  if (!reader.Fixed(&version) || version != 1 || !reader.Fixed(&state.id) ||
      !reader.Fixed(&state.last_seq) || !reader.Fixed(&state.first_seq) ||
      !reader.Fixed(&state.files) || !reader.Fixed(&state.dirs) ||
      !reader.Fixed(&state.bytes) || !reader.LengthPrefixed(&state.name) ||
      !reader.LengthPrefixed(&state.source) || !reader.empty()) {
    return std::nullopt;
  }
  return state;
}

std::string EncodeReconcileReport(const ReconcileReport& report) {
  std::string out;
  out.push_back(1);  // layout version of this value
  AppendFixed(report.finished_ns, &out);
  AppendFixed(report.duration_ns, &out);
  AppendFixed(report.entries_checked, &out);
  AppendFixed(report.failed_dirs, &out);
  AppendFixed(report.added, &out);
  AppendFixed(report.modified, &out);
  AppendFixed(report.deleted, &out);
  AppendFixed(report.renamed, &out);
  AppendLengthPrefixed(report.error, &out);
  return out;
}

std::optional<ReconcileReport> DecodeReconcileReport(std::string_view value) {
  ReconcileReport report;
  Reader reader(value);
  uint8_t version = 0;
  if (!reader.Fixed(&version) || version != 1 || !reader.Fixed(&report.finished_ns) ||
      !reader.Fixed(&report.duration_ns) || !reader.Fixed(&report.entries_checked) ||
      !reader.Fixed(&report.failed_dirs) || !reader.Fixed(&report.added) ||
      !reader.Fixed(&report.modified) || !reader.Fixed(&report.deleted) ||
      !reader.Fixed(&report.renamed) || !reader.LengthPrefixed(&report.error) || !reader.empty()) {
    return std::nullopt;
  }
  return report;
}

}  // namespace dirindex
