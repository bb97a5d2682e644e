#pragma once
// A whole file as read-only bytes in memory. Move-only; releases them on destruction.
//
// Two ways to hold the bytes (MapMode):
//   kMmap  a read-only MAP_PRIVATE mapping of the file: pages come from the page cache on first
//          touch and are shared with every other process mapping the file.
//   kCopy  a private anonymous copy: memory aligned to 2 MiB and advised MADV_HUGEPAGE, filled
//          with pread() by a few threads, then made read-only. The file's page-cache pages
//          are kept by default (the kernel reclaims them under pressure; a restarted replica
//          then loads from memory, not disk); drop_page_cache releases them (posix_fadvise
//          DONTNEED) behind the reads for a one-off load. Decode streams every weight once per
//          token: from 4 KiB page-cache pages it measured far below the machine's read bandwidth on
//          the reference VM, from 2 MiB anonymous pages close to it (docs/BENCHMARKS.md "Engine").
// Either way data() is valid until destruction, and the bytes change only inside rewrite().

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "core/status.h"

namespace seekserve {

enum class MapMode { kMmap, kCopy };

struct MapOptions {
  MapMode mode = MapMode::kMmap;
  bool drop_page_cache = false;  // kCopy: release the file's page-cache pages after reading them
  int read_threads = 2;          // kCopy: parallel pread()s (at load only; no kernel thread)
};

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
  static Result<MappedFile> open(const std::string& path, const MapOptions& options = {});

  const uint8_t* data() const { return data_; }
  MapMode mode() const { return mode_; }
  size_t size() const { return size_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

  // kCopy only: runs `fn` on the private copy, writable for the duration of the call (read-only
  // again after). Used once at load to repack weights in place, before any reader runs; a kMmap
  // file is the page cache's and is never written (unimplemented).
  Status rewrite(const std::function<void(uint8_t* bytes)>& fn);

 private:
  void release();

  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t mapped_bytes_ = 0;  // length of the mapping at data_ (kCopy: rounded up to 2 MiB)
  MapMode mode_ = MapMode::kMmap;
  std::string path_;
};

// MemAvailable from /proc/meminfo in bytes; 0 when unknown.
uint64_t available_memory_bytes();

// Reads a whole (small) file into a string: config.json, tokenizer.json, index files.
Result<std::string> read_text_file(const std::string& path);

// Writes `data` to `path` atomically (a temporary beside it, then rename).
Status write_file_atomic(const std::string& path, std::span<const uint8_t> data);

}  // namespace seekserve
