// Status and Result<T>: the error values that index/, scan/, net/ and api/
// return instead of throwing. Both are [[nodiscard]] so a caller cannot drop
// a failure by accident.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace dirindex {

enum class StatusCode : uint8_t {
  kOk = 0,
  kInvalidArgument,  // a value supplied by a user or client is malformed
  kNotFound,
  kAlreadyExists,
  kPermissionDenied,
  kUnavailable,      // a source or server cannot be reached right now
  kTimedOut,
  kCorruption,       // stored data failed a consistency check
  kResourceExhausted,
  kIoError,
  kAborted,          // work stopped because the process is shutting down
  kInternal,
};

// Status is a code plus a message that names the value and the fix.
// It is a small value type and safe to copy between threads.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message)
      : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Returns "code: message", or "ok".
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

std::string_view StatusCodeName(StatusCode code);

// Converts an errno value into a Status whose message names the operation
// and the path it failed on.
Status ErrnoStatus(int err, std::string_view operation, std::string_view path);

inline Status InvalidArgument(std::string message) {
  return Status(StatusCode::kInvalidArgument, std::move(message));
}
inline Status NotFound(std::string message) {
  return Status(StatusCode::kNotFound, std::move(message));
}
inline Status Internal(std::string message) {
  return Status(StatusCode::kInternal, std::move(message));
}

// Result<T> contains either a value or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : data_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : data_(std::move(status)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(data_); }
  explicit operator bool() const { return ok(); }

  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(data_);
  }
  T& value() & { return std::get<T>(data_); }
  const T& value() const& { return std::get<T>(data_); }
  T&& value() && { return std::get<T>(std::move(data_)); }
  T& operator*() & { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> data_;
};

}  // namespace dirindex
