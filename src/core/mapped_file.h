#pragma once
// A read-only memory mapping of a whole file. Move-only; unmaps on destruction.
// Model weights are read through this: never copied when the on-disk type is the compute type.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "core/status.h"

namespace seekserve {

class MappedFile {
 public:
  MappedFile() = default;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  ~MappedFile();

  // Maps `path` read-only. An empty file maps to an empty span. Not found / not a regular file /
  // unreadable are errors naming the path.
  static Result<MappedFile> open(const std::string& path);

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

// Reads a whole (small) file into a string: config.json, tokenizer.json, index files.
Result<std::string> read_text_file(const std::string& path);

// Writes `data` to `path` atomically (a temporary beside it, then rename).
Status write_file_atomic(const std::string& path, std::span<const uint8_t> data);

}  // namespace seekserve
