#include "core/mapped_file.h"

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace seekserve {
namespace {

namespace fs = std::filesystem;

std::string write_random_file(const std::string& name, size_t size) {
  const fs::path path = fs::temp_directory_path() / name;
  std::vector<char> bytes(size);
  std::mt19937 rng(5);
  for (char& b : bytes) b = static_cast<char>(rng());
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(size));
  return path.string();
}

// A copy holds the same bytes as the mapping, across several read chunks and threads and with an
// odd size, and the mapping mode is what was asked.
TEST(MappedFileTest, CopyEqualsMapping) {
  const size_t size = (size_t{65} << 20) + 13;  // three 32 MiB read chunks, the last one short
  const std::string path = write_random_file("seekserve_mapped_copy_test.bin", size);
  for (int threads : {1, 3}) {
    MapOptions copy;
    copy.mode = MapMode::kCopy;
    copy.read_threads = threads;
    auto a = MappedFile::open(path);
    auto b = MappedFile::open(path, copy);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->mode(), MapMode::kMmap);
    EXPECT_EQ(b->mode(), MapMode::kCopy);
    ASSERT_EQ(a->size(), size);
    ASSERT_EQ(b->size(), size);
    EXPECT_NE(a->data(), b->data());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b->data()) % (2 << 20), 0u) << "2 MiB aligned";
    EXPECT_TRUE(std::equal(a->bytes().begin(), a->bytes().end(), b->bytes().begin()));
    MappedFile moved = std::move(*b);  // ownership moves with the object
    EXPECT_EQ(moved.size(), size);
    EXPECT_EQ(moved.data()[size - 1], a->data()[size - 1]);
  }
  fs::remove(path);
}

TEST(MappedFileTest, CopyOfEmptyAndMissingFiles) {
  const std::string empty = write_random_file("seekserve_mapped_empty_test.bin", 0);
  MapOptions copy;
  copy.mode = MapMode::kCopy;
  auto e = MappedFile::open(empty, copy);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->size(), 0u);
  fs::remove(empty);
  auto missing = MappedFile::open("/nonexistent/seekserve/file.bin", copy);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace seekserve
