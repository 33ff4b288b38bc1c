// Move-only owners for LMDB handles, and the one place LMDB return codes
// become Status values.
//
// LMDB's rules, built into these types: a transaction handle is gone after
// commit or abort, even when commit fails, so Commit clears it first; a
// cursor must close before its transaction ends, so declare it after the
// transaction. Values that point into the map (MDB_val) stay valid only
// until the next write in the same transaction or the transaction's end.
#pragma once

#include <lmdb.h>

#include <string>
#include <string_view>

#include "index/status.h"

namespace dirindex::lmdb {

// Converts an LMDB or errno return code into a Status naming `operation`.
Status ToStatus(int rc, std::string_view operation);

inline MDB_val ToVal(std::string_view bytes) {
  return MDB_val{bytes.size(), const_cast<char*>(bytes.data())};
}

inline std::string_view ToView(const MDB_val& val) {
  return std::string_view(static_cast<const char*>(val.mv_data), val.mv_size);
}

class Txn {
 public:
  Txn() = default;
  explicit Txn(MDB_txn* txn) : txn_(txn) {}
  Txn(Txn&& other) noexcept : txn_(other.txn_) { other.txn_ = nullptr; }
  Txn& operator=(Txn&& other) noexcept;
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;
  ~Txn() { Abort(); }

  // Begins a transaction; `flags` is 0 or MDB_RDONLY.
  static Result<Txn> Begin(MDB_env* env, unsigned flags);

  MDB_txn* get() const { return txn_; }
  // Commits and releases the handle. Returns the LMDB error, if any.
  int Commit();
  void Abort();

 private:
  MDB_txn* txn_ = nullptr;
};

class Cursor {
 public:
  Cursor() = default;
  Cursor(Cursor&& other) noexcept : cursor_(other.cursor_) { other.cursor_ = nullptr; }
  Cursor(const Cursor&) = delete;
  Cursor& operator=(const Cursor&) = delete;
  ~Cursor() {
    if (cursor_ != nullptr) mdb_cursor_close(cursor_);
  }

  static Result<Cursor> Open(const Txn& txn, MDB_dbi dbi);

  // Wraps mdb_cursor_get; returns the LMDB code (0, MDB_NOTFOUND or error).
  int Get(MDB_val* key, MDB_val* value, MDB_cursor_op op) {
    return mdb_cursor_get(cursor_, key, value, op);
  }
  MDB_cursor* get() const { return cursor_; }

 private:
  MDB_cursor* cursor_ = nullptr;
};

}  // namespace dirindex::lmdb
