#pragma once
// A bounds-checked little-endian cursor over untrusted bytes (model files). Every read checks
// the remaining length first; a short read is a Status naming `what`, never a read past the end.

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "core/status.h"

namespace seekserve {

class ByteReader {
 public:
  explicit ByteReader(std::span<const uint8_t> bytes) : bytes_(bytes) {}

  size_t position() const { return pos_; }
  size_t remaining() const { return bytes_.size() - pos_; }
  size_t size() const { return bytes_.size(); }

  // Reads a trivially copyable little-endian value (this code runs on little-endian hosts only).
  template <typename T>
  Result<T> read(std::string_view what) {
    static_assert(std::is_trivially_copyable_v<T>);
    if (remaining() < sizeof(T)) return truncated(what, sizeof(T));
    T value;
    std::memcpy(&value, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }

  // A view of the next n bytes; the cursor moves past them.
  Result<std::span<const uint8_t>> read_bytes(uint64_t n, std::string_view what) {
    if (n > remaining()) return truncated(what, n);
    std::span<const uint8_t> out = bytes_.subspan(pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return out;
  }

  Status skip(uint64_t n, std::string_view what) {
    if (n > remaining()) return truncated(what, n);
    pos_ += static_cast<size_t>(n);
    return Status::ok_status();
  }

  Status seek(uint64_t offset, std::string_view what) {
    if (offset > bytes_.size()) {
      return data_loss("{}: offset {} beyond the end ({} bytes)", what, offset, bytes_.size());
    }
    pos_ = static_cast<size_t>(offset);
    return Status::ok_status();
  }

 private:
  Status truncated(std::string_view what, uint64_t wanted) const {
    return data_loss("{}: truncated (needs {} bytes at offset {}, {} left)", what, wanted, pos_,
                     remaining());
  }

  std::span<const uint8_t> bytes_;
  size_t pos_ = 0;
};

}  // namespace seekserve
