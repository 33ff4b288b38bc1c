#include "index/lmdb.h"

#include <cstring>

namespace dirindex::lmdb {

Status ToStatus(int rc, std::string_view operation) {
  if (rc == MDB_SUCCESS) return Status::Ok();
  std::string message = "LMDB ";
  message += operation;
  message += " failed: ";
  message += mdb_strerror(rc);
  StatusCode code = StatusCode::kIoError;
  switch (rc) {
    case MDB_NOTFOUND: code = StatusCode::kNotFound; break;
    case MDB_MAP_FULL:
      code = StatusCode::kResourceExhausted;
      message += "; raise max_map_size or free disk space";
      break;
    case MDB_READERS_FULL:
      code = StatusCode::kResourceExhausted;
      message += "; too many concurrent readers";
      break;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_PANIC:
    case MDB_VERSION_MISMATCH:
    case MDB_INVALID:
      code = StatusCode::kCorruption;
      break;
    case EACCES:
    case EPERM: code = StatusCode::kPermissionDenied; break;
    case ENOSPC: code = StatusCode::kResourceExhausted; break;
    default: break;
  }
  return Status(code, std::move(message));
}

Txn& Txn::operator=(Txn&& other) noexcept {
  if (this != &other) {
    Abort();
    txn_ = other.txn_;
    other.txn_ = nullptr;
  }
  return *this;
}

Result<Txn> Txn::Begin(MDB_env* env, unsigned flags) {
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env, nullptr, flags, &txn);
  if (rc != MDB_SUCCESS) return ToStatus(rc, "mdb_txn_begin");
  return Txn(txn);
}

int Txn::Commit() {
  MDB_txn* txn = txn_;
  txn_ = nullptr;  // freed by LMDB whether or not the commit succeeds
  return txn == nullptr ? EINVAL : mdb_txn_commit(txn);
}

void Txn::Abort() {
  if (txn_ != nullptr) {
    mdb_txn_abort(txn_);
    txn_ = nullptr;
  }
}

Result<Cursor> Cursor::Open(const Txn& txn, MDB_dbi dbi) {
  Cursor cursor;
  int rc = mdb_cursor_open(txn.get(), dbi, &cursor.cursor_);
  if (rc != MDB_SUCCESS) return ToStatus(rc, "mdb_cursor_open");
  return cursor;
}

}  // namespace dirindex::lmdb
