#pragma once
// Status and Result<T>: how errors cross module boundaries. No exception crosses a module
// boundary; a function that can fail returns one of these.

#include <optional>
#include <string>
#include <utility>

#include <fmt/format.h>

namespace seekserve {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,    // bad input from a user or client (a flag, a request field)
  kDataLoss,           // a malformed, truncated or hostile file
  kNotFound,           // a file, tensor, key or model that is not there
  kOutOfRange,         // an index or size beyond what is allowed
  kUnimplemented,      // a valid input this build does not handle yet
  kResourceExhausted,  // out of memory, KV blocks, queue slots
  kIoError,            // the operating system said no
  kInternal,           // a bug: an invariant did not hold
};

const char* status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok_status() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // True for errors caused by input (exit code 2, HTTP 4xx) rather than by the system.
  bool is_bad_input() const;

  // "message" or, for an ok status, "ok".
  std::string to_string() const;

  // A copy whose message is prefixed with `context: `.
  Status with_context(const std::string& context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

template <typename... Args>
Status invalid_argument(fmt::format_string<Args...> f, Args&&... args) {
  return Status(StatusCode::kInvalidArgument, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
Status data_loss(fmt::format_string<Args...> f, Args&&... args) {
  return Status(StatusCode::kDataLoss, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
Status not_found(fmt::format_string<Args...> f, Args&&... args) {
  return Status(StatusCode::kNotFound, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
Status out_of_range(fmt::format_string<Args...> f, Args&&... args) {
  return Status(StatusCode::kOutOfRange, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
Status unimplemented(fmt::format_string<Args...> f, Args&&... args) {
  return Status(StatusCode::kUnimplemented, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
Status io_error(fmt::format_string<Args...> f, Args&&... args) {
  return Status(StatusCode::kIoError, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
Status internal_error(fmt::format_string<Args...> f, Args&&... args) {
  return Status(StatusCode::kInternal, fmt::format(f, std::forward<Args>(args)...));
}

// A value or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {
    if (status_.ok()) status_ = Status(StatusCode::kInternal, "Result built from an ok Status");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }

  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace seekserve

#define SEEK_CONCAT_INNER(a, b) a##b
#define SEEK_CONCAT(a, b) SEEK_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function if `expr` (a Status) is not ok.
#define SEEK_RETURN_IF_ERROR(expr)               \
  do {                                           \
    ::seekserve::Status seek_status_ = (expr);   \
    if (!seek_status_.ok()) return seek_status_; \
  } while (0)

// `lhs = value of expr` (a Result<T>), or return its Status from the enclosing function.
#define SEEK_ASSIGN_OR_RETURN(lhs, expr) \
  SEEK_ASSIGN_OR_RETURN_IMPL(SEEK_CONCAT(seek_result_, __LINE__), lhs, expr)
#define SEEK_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()
