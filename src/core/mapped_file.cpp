#include "core/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace seekserve {

namespace {

constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kReadChunk = size_t{32} << 20;  // one pread (and page-cache drop) at a time

// Fills `out` [0, size) from fd with pread on `n_threads` threads taking 32 MiB chunks in turn;
// drops each chunk's page-cache pages after it is copied when asked. Returns 0 or an errno.
int read_parallel(int fd, uint8_t* out, size_t size, int n_threads, bool drop_cache) {
  const size_t n_chunks = (size + kReadChunk - 1) / kReadChunk;
  std::atomic<size_t> next{0};
  std::atomic<int> error{0};
  auto worker = [&] {
    for (size_t c; error.load() == 0 && (c = next.fetch_add(1)) < n_chunks;) {
      const size_t begin = c * kReadChunk, end = std::min(size, begin + kReadChunk);
      for (size_t off = begin; off < end;) {
        const ssize_t n = pread(fd, out + off, end - off, static_cast<off_t>(off));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {  // 0: the file shrank under us
          int expected = 0;
          error.compare_exchange_strong(expected, n < 0 ? errno : EIO);
          return;
        }
        off += static_cast<size_t>(n);
      }
      if (drop_cache) {
        posix_fadvise(fd, static_cast<off_t>(begin), static_cast<off_t>(end - begin),
                      POSIX_FADV_DONTNEED);
      }
    }
  };
  const int n = static_cast<int>(std::clamp<size_t>(n_chunks, 1, std::max(1, n_threads)));
  std::vector<std::thread> threads;
  for (int t = 1; t < n; ++t) threads.emplace_back(worker);
  worker();
  for (std::thread& t : threads) t.join();
  return error.load();
}

// Anonymous read-write memory of at least `size` bytes starting on a 2 MiB boundary (so that
// transparent huge pages can back all of it), advised MADV_HUGEPAGE; nullptr on failure.
uint8_t* map_aligned_anonymous(size_t size, size_t* mapped_bytes) {
  const size_t len = (size + kHugePage - 1) / kHugePage * kHugePage;
  void* raw = mmap(nullptr, len + kHugePage, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const auto base = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (base + kHugePage - 1) / kHugePage * kHugePage;
  if (aligned > base) munmap(raw, aligned - base);
  const uintptr_t tail = aligned + len, raw_end = base + len + kHugePage;
  if (raw_end > tail) munmap(reinterpret_cast<void*>(tail), raw_end - tail);
  madvise(reinterpret_cast<void*>(aligned), len, MADV_HUGEPAGE);  // advice: failure is harmless
  *mapped_bytes = len;
  return reinterpret_cast<uint8_t*>(aligned);
}

}  // namespace

MappedFile::MappedFile(MappedFile&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      mapped_bytes_(std::exchange(other.mapped_bytes_, 0)),
      mode_(other.mode_),
      path_(std::move(other.path_)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    mapped_bytes_ = std::exchange(other.mapped_bytes_, 0);
    mode_ = other.mode_;
    path_ = std::move(other.path_);
  }
  return *this;
}

MappedFile::~MappedFile() {
  release();
}

Status MappedFile::rewrite(const std::function<void(uint8_t* bytes)>& fn) {
  if (mode_ != MapMode::kCopy) return unimplemented("{}: a mapped file is never rewritten", path_);
  if (size_ == 0) return Status::ok_status();
  auto* p = const_cast<uint8_t*>(data_);  // our own anonymous pages
  if (mprotect(p, mapped_bytes_, PROT_READ | PROT_WRITE) != 0) {
    return io_error("{}: cannot make its copy writable: {}", path_, std::strerror(errno));
  }
  fn(p);
  mprotect(p, mapped_bytes_, PROT_READ);
  return Status::ok_status();
}

void MappedFile::release() {
  if (data_ != nullptr && mapped_bytes_ > 0) munmap(const_cast<uint8_t*>(data_), mapped_bytes_);
  data_ = nullptr;
  size_ = mapped_bytes_ = 0;
}

uint64_t available_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t kib = 0;
  std::string unit;
  while (in >> key >> kib >> unit) {
    if (key == "MemAvailable:") return kib * 1024;
  }
  return 0;
}

Result<MappedFile> MappedFile::open(const std::string& path, const MapOptions& options) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return not_found("{}: no such file", path);
    return io_error("{}: cannot open: {}", path, std::strerror(errno));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return io_error("{}: cannot stat: {}", path, std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return invalid_argument("{}: not a regular file", path);
  }
  MappedFile file;
  file.path_ = path;
  file.size_ = static_cast<size_t>(st.st_size);
  file.mode_ = options.mode;
  if (file.size_ > 0 && options.mode == MapMode::kCopy) {
    uint8_t* p = map_aligned_anonymous(file.size_, &file.mapped_bytes_);
    if (p == nullptr) {
      int err = errno;
      ::close(fd);
      return io_error("{}: cannot allocate {} bytes for its copy: {}", path, file.size_,
                      std::strerror(err));
    }
    file.data_ = p;  // owned from here: released by ~MappedFile on every return below
    const int err = read_parallel(fd, p, file.size_, options.read_threads, options.drop_page_cache);
    ::close(fd);
    if (err != 0) return io_error("{}: read failed: {}", path, std::strerror(err));
    mprotect(p, file.mapped_bytes_, PROT_READ);
    return file;
  }
  if (file.size_ > 0) {
    void* p = mmap(nullptr, file.size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      return io_error("{}: cannot map: {}", path, std::strerror(err));
    }
    file.data_ = static_cast<const uint8_t*>(p);
    file.mapped_bytes_ = file.size_;
  }
  ::close(fd);
  return file;
}

Result<std::string> read_text_file(const std::string& path) {
  SEEK_ASSIGN_OR_RETURN(MappedFile file, MappedFile::open(path));
  return std::string(reinterpret_cast<const char*>(file.data()), file.size());
}

Status write_file_atomic(const std::string& path, std::span<const uint8_t> data) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return io_error("{}: cannot create: {}", tmp, std::strerror(errno));
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return io_error("{}: write failed: {}", tmp, std::strerror(err));
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) return io_error("{}: close failed: {}", tmp, std::strerror(errno));
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return io_error("{}: rename failed: {}", path, std::strerror(err));
  }
  return Status::ok_status();
}

}  // namespace seekserve
