#include "formats/safetensors.h"

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace seekserve {
namespace {

namespace fs = std::filesystem;

// A fresh folder per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "seekserve_st_XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp " << pattern;
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (fs::path(path_) / name).string(); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A file from a header text and `data_size` bytes of data (byte i = i & 0xff).
std::vector<uint8_t> make_file(const std::string& header, size_t data_size) {
  std::vector<uint8_t> out(8 + header.size() + data_size);
  uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  if (!header.empty()) std::memcpy(out.data() + 8, header.data(), header.size());
  for (size_t i = 0; i < data_size; ++i) out[8 + header.size() + i] = static_cast<uint8_t>(i);
  return out;
}

SafetensorsWriter::Fill fill_pattern(uint8_t seed) {
  return [seed](std::span<uint8_t> out) {
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(seed + i * 7);
  };
}

const DType kAllDtypes[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kF8E4M3,
                            DType::kI8,  DType::kU8,  DType::kI16,  DType::kI32,
                            DType::kI64, DType::kF64, DType::kBool};

TEST(Safetensors, DtypeNames) {
  for (DType d : kAllDtypes) {
    std::string_view name = safetensors_name_from_dtype(d);
    ASSERT_FALSE(name.empty());
    EXPECT_EQ(dtype_from_safetensors_name(name), d) << name;
  }
  EXPECT_EQ(safetensors_name_from_dtype(DType::kQ8_0), "");
  EXPECT_FALSE(dtype_from_safetensors_name("F8_E5M2").has_value());
  EXPECT_FALSE(dtype_from_safetensors_name("f32").has_value());  // names are case-sensitive
}

TEST(Safetensors, RoundTripsEveryDtype) {
  TempDir dir;
  SafetensorsWriter writer;
  writer.set_metadata("format", "pt");
  writer.set_metadata("note", "round trip");
  uint8_t seed = 1;
  for (DType d : kAllDtypes) {
    ASSERT_TRUE(writer
                    .add_tensor(std::string("t_") + std::string(dtype_name(d)), d, {3, 5},
                                fill_pattern(seed++))
                    .ok());
  }
  ASSERT_TRUE(writer.add_tensor("empty", DType::kF32, {0, 4}, nullptr).ok());
  ASSERT_TRUE(writer.add_tensor("scalar", DType::kF64, {}, fill_pattern(99)).ok());
  const std::string path = dir.file("all.safetensors");
  ASSERT_TRUE(writer.write(path).ok());
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  std::vector<uint8_t> raw = read_bytes(path);
  uint64_t header_len;
  std::memcpy(&header_len, raw.data(), 8);
  EXPECT_EQ(header_len % 8, 0u) << "header padded to a multiple of 8";
  EXPECT_EQ(raw[8], '{');

  Result<SafetensorsModel> model = SafetensorsModel::open(path);
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  EXPECT_EQ(model->tensors().size(), std::size(kAllDtypes) + 2);
  EXPECT_EQ(model->metadata().at("format"), "pt");
  EXPECT_EQ(model->metadata().at("note"), "round trip");
  seed = 1;
  const uint8_t* last = nullptr;
  for (DType d : kAllDtypes) {
    std::string name = std::string("t_") + std::string(dtype_name(d));
    const SafetensorsTensor* t = model->find(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t->dtype, d);
    EXPECT_EQ(t->shape, (std::vector<int64_t>{3, 5}));
    EXPECT_EQ(t->file, path);
    ASSERT_EQ(t->data.size(), *dtype_bytes(d, 15)) << name;
    std::vector<uint8_t> expected(t->data.size());
    fill_pattern(seed++)(expected);
    EXPECT_TRUE(std::equal(expected.begin(), expected.end(), t->data.begin())) << name;
    // Data is laid out in insertion order.
    if (last != nullptr) {
      EXPECT_EQ(t->data.data(), last);
    }
    last = t->data.data() + t->data.size();
  }
  const SafetensorsTensor* empty = model->find("empty");
  ASSERT_NE(empty, nullptr);
  EXPECT_EQ(empty->shape, (std::vector<int64_t>{0, 4}));
  EXPECT_TRUE(empty->data.empty());
  const SafetensorsTensor* scalar = model->find("scalar");
  ASSERT_NE(scalar, nullptr);
  EXPECT_TRUE(scalar->shape.empty());
  EXPECT_EQ(scalar->data.size(), 8u);
  EXPECT_EQ(model->find("missing"), nullptr);
}

TEST(Safetensors, WritesAnEmptyFile) {
  TempDir dir;
  SafetensorsWriter writer;
  ASSERT_TRUE(writer.write(dir.file("e.safetensors")).ok());
  std::vector<uint8_t> raw = read_bytes(dir.file("e.safetensors"));
  EXPECT_EQ(raw.size(), 16u);  // "{}" padded to 8
  Result<SafetensorsModel> model = SafetensorsModel::open(dir.file("e.safetensors"));
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  EXPECT_TRUE(model->tensors().empty());
}

TEST(Safetensors, WriterRejectsBadTensors) {
  SafetensorsWriter writer;
  ASSERT_TRUE(writer.add_tensor("a", DType::kF32, {2}, nullptr).ok());
  Status dup = writer.add_tensor("a", DType::kF32, {2}, nullptr);
  EXPECT_EQ(dup.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(dup.message().find("'a'"), std::string::npos) << dup.message();
  EXPECT_EQ(writer.add_tensor("__metadata__", DType::kF32, {1}, nullptr).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(writer.add_tensor("", DType::kF32, {1}, nullptr).code(), StatusCode::kInvalidArgument);
  Status q = writer.add_tensor("q", DType::kQ8_0, {32}, nullptr);
  EXPECT_EQ(q.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(q.message().find("q8_0"), std::string::npos) << q.message();
  EXPECT_EQ(writer.add_tensor("neg", DType::kF32, {2, -1}, nullptr).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(
      writer.add_tensor("huge", DType::kF32, {int64_t{1} << 40, int64_t{1} << 40}, nullptr).code(),
      StatusCode::kInvalidArgument);
}

TEST(Safetensors, WriteFailsCleanlyIntoAMissingFolder) {
  SafetensorsWriter writer;
  ASSERT_TRUE(writer.add_tensor("a", DType::kF32, {2}, nullptr).ok());
  Status s = writer.write("/nonexistent_seekserve_dir/x.safetensors");
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_NE(s.message().find("/nonexistent_seekserve_dir/x.safetensors"), std::string::npos);
}

// Writes a one-file shard holding `names`, each an F32 [2] tensor.
void write_shard(const std::string& path, const std::vector<std::string>& names) {
  SafetensorsWriter writer;
  for (const std::string& n : names) {
    ASSERT_TRUE(writer.add_tensor(n, DType::kF32, {2}, fill_pattern(3)).ok());
  }
  ASSERT_TRUE(writer.write(path).ok());
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

TEST(Safetensors, OpensAShardedFolderThroughItsIndex) {
  TempDir dir;
  write_shard(dir.file("model-00001-of-00002.safetensors"), {"a.weight", "b.weight"});
  write_shard(dir.file("model-00002-of-00002.safetensors"), {"c.weight"});
  write_text(dir.file("model.safetensors.index.json"),
             R"({"metadata": {"total_size": 24}, "weight_map": {
                 "a.weight": "model-00001-of-00002.safetensors",
                 "b.weight": "model-00001-of-00002.safetensors",
                 "c.weight": "model-00002-of-00002.safetensors"}})");
  Result<SafetensorsModel> model = SafetensorsModel::open(dir.path());
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  ASSERT_EQ(model->tensors().size(), 3u);
  EXPECT_EQ(model->find("a.weight")->file, dir.file("model-00001-of-00002.safetensors"));
  EXPECT_EQ(model->find("c.weight")->file, dir.file("model-00002-of-00002.safetensors"));
  EXPECT_EQ(model->find("c.weight")->data.size(), 8u);
}

TEST(Safetensors, ShardedIndexErrorsNameTensorAndShard) {
  TempDir dir;
  write_shard(dir.file("s1.safetensors"), {"a"});
  write_shard(dir.file("s2.safetensors"), {"b"});
  struct Case {
    std::string weight_map;
    std::vector<std::string> expected;  // substrings of the message
  };
  const Case cases[] = {
      {R"({"a": "s1.safetensors", "zz": "s1.safetensors"})", {"'zz'", "s1.safetensors"}},
      {R"({"a": "s1.safetensors", "b": "s1.safetensors"})", {"'b'", "s1.safetensors"}},
      {R"({"a": "../s1.safetensors"})", {"'a'", "leaves the model folder"}},
      {R"({"a": "sub/../../s1.safetensors"})", {"leaves the model folder"}},
      {R"({"a": "/etc/passwd"})", {"absolute path"}},
      {R"({"a": "missing.safetensors"})", {"missing.safetensors", "no such file"}},
      {R"({"a": 5})", {"'a'", "not a string"}},
      {R"([])", {"weight_map"}},
  };
  for (const Case& c : cases) {
    write_text(dir.file("model.safetensors.index.json"), R"({"weight_map": )" + c.weight_map + "}");
    Result<SafetensorsModel> model = SafetensorsModel::open(dir.path());
    ASSERT_FALSE(model.ok()) << c.weight_map;
    EXPECT_TRUE(model.status().is_bad_input()) << model.status().to_string();
    for (const std::string& e : c.expected) {
      EXPECT_NE(model.status().message().find(e), std::string::npos)
          << c.weight_map << " -> " << model.status().message();
    }
  }
  // A tensor the index places in s1 but that lives in s2 (both shards opened).
  write_text(dir.file("model.safetensors.index.json"),
             R"({"weight_map": {"a": "s1.safetensors", "b": "s1.safetensors",
                                "x": "s2.safetensors"}})");
  Result<SafetensorsModel> model = SafetensorsModel::open(dir.path());
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("tensor 'b' is not in shard"), std::string::npos)
      << model.status().message();
  EXPECT_NE(model.status().message().find("found in"), std::string::npos);
}

TEST(Safetensors, FolderWithoutIndexReadsEveryShard) {
  TempDir dir;
  write_shard(dir.file("b.safetensors"), {"y"});
  write_shard(dir.file("a.safetensors"), {"x"});
  write_text(dir.file("notes.txt"), "not a shard");
  Result<SafetensorsModel> model = SafetensorsModel::open(dir.path());
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  ASSERT_EQ(model->tensors().size(), 2u);
  EXPECT_EQ(model->tensors()[0].name, "x");  // a.safetensors first
  EXPECT_EQ(model->tensors()[1].name, "y");

  write_shard(dir.file("c.safetensors"), {"x"});
  Result<SafetensorsModel> dup = SafetensorsModel::open(dir.path());
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(dup.status().message().find("'x'"), std::string::npos);
  EXPECT_NE(dup.status().message().find("a.safetensors"), std::string::npos);
  EXPECT_NE(dup.status().message().find("c.safetensors"), std::string::npos);

  TempDir empty;
  EXPECT_EQ(SafetensorsModel::open(empty.path()).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(SafetensorsModel::open(empty.file("nope.safetensors")).status().code(),
            StatusCode::kNotFound);
}

TEST(Safetensors, PairsFp8WeightsWithTheirBlockScales) {
  TempDir dir;
  SafetensorsWriter writer;
  // 300 x 200 -> ceil(300/128) = 3, ceil(200/128) = 2.
  ASSERT_TRUE(writer.add_tensor("l.weight", DType::kF8E4M3, {300, 200}, fill_pattern(1)).ok());
  ASSERT_TRUE(writer.add_tensor("l.weight_scale_inv", DType::kF32, {3, 2}, fill_pattern(2)).ok());
  ASSERT_TRUE(writer.add_tensor("bad_shape.weight", DType::kF8E4M3, {256, 129}, nullptr).ok());
  ASSERT_TRUE(writer.add_tensor("bad_shape.weight_scale_inv", DType::kF32, {2, 1}, nullptr).ok());
  ASSERT_TRUE(writer.add_tensor("bad_dtype.weight", DType::kF8E4M3, {128, 128}, nullptr).ok());
  ASSERT_TRUE(writer.add_tensor("bad_dtype.weight_scale_inv", DType::kBF16, {1, 1}, nullptr).ok());
  ASSERT_TRUE(writer.add_tensor("noscale.weight", DType::kF8E4M3, {128, 128}, nullptr).ok());
  ASSERT_TRUE(writer.add_tensor("norm.weight", DType::kF32, {128}, nullptr).ok());
  ASSERT_TRUE(writer.add_tensor("norm.weight_scale_inv", DType::kF32, {1}, nullptr).ok());
  ASSERT_TRUE(writer.write(dir.file("fp8.safetensors")).ok());
  Result<SafetensorsModel> model = SafetensorsModel::open(dir.file("fp8.safetensors"));
  ASSERT_TRUE(model.ok()) << model.status().to_string();

  Result<const SafetensorsTensor*> scale = model->scale_inv_for(*model->find("l.weight"));
  ASSERT_TRUE(scale.ok()) << scale.status().to_string();
  ASSERT_NE(*scale, nullptr);
  EXPECT_EQ((*scale)->name, "l.weight_scale_inv");
  EXPECT_EQ((*scale)->shape, (std::vector<int64_t>{3, 2}));

  Result<const SafetensorsTensor*> bad = model->scale_inv_for(*model->find("bad_shape.weight"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(bad.status().message().find("bad_shape.weight_scale_inv"), std::string::npos);
  EXPECT_NE(bad.status().message().find("needs [2, 2]"), std::string::npos)
      << bad.status().message();

  bad = model->scale_inv_for(*model->find("bad_dtype.weight"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("bad_dtype.weight_scale_inv"), std::string::npos);
  EXPECT_NE(bad.status().message().find("F32"), std::string::npos);

  Result<const SafetensorsTensor*> none = model->scale_inv_for(*model->find("noscale.weight"));
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, nullptr);
  none = model->scale_inv_for(*model->find("norm.weight"));  // not FP8: no pairing
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, nullptr);
}

TEST(Safetensors, EveryTruncationIsRejected) {
  SafetensorsWriter writer;
  writer.set_metadata("format", "pt");
  ASSERT_TRUE(writer.add_tensor("a", DType::kBF16, {3, 2}, fill_pattern(1)).ok());
  ASSERT_TRUE(writer.add_tensor("b", DType::kI64, {2}, fill_pattern(2)).ok());
  TempDir dir;
  ASSERT_TRUE(writer.write(dir.file("t.safetensors")).ok());
  std::vector<uint8_t> raw = read_bytes(dir.file("t.safetensors"));
  ASSERT_TRUE(SafetensorsModel::parse(raw, "t.safetensors").ok());
  for (size_t n = 0; n < raw.size(); ++n) {
    Result<SafetensorsModel> model =
        SafetensorsModel::parse(std::span<const uint8_t>(raw.data(), n), "t.safetensors");
    ASSERT_FALSE(model.ok()) << "prefix of " << n << " bytes accepted";
    EXPECT_EQ(model.status().code(), StatusCode::kDataLoss) << n;
    EXPECT_EQ(model.status().message().rfind("t.safetensors: ", 0), 0u) << model.status().message();
    EXPECT_EQ(model.status().message().find('\n'), std::string::npos);
  }
  // And as a file on disk.
  raw.resize(raw.size() - 1);
  write_bytes(dir.file("short.safetensors"), raw);
  Result<SafetensorsModel> model = SafetensorsModel::open(dir.file("short.safetensors"));
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("short.safetensors"), std::string::npos);
  EXPECT_NE(model.status().message().find("'b'"), std::string::npos) << model.status().message();
}

TEST(Safetensors, RejectsBadHeaderLengths) {
  std::vector<uint8_t> raw = make_file("{}", 0);
  uint64_t huge = 100'000'001;
  std::memcpy(raw.data(), &huge, 8);
  raw.resize(200);
  Result<SafetensorsModel> model = SafetensorsModel::parse(raw, "h.safetensors");
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("exceeds the limit"), std::string::npos);
  uint64_t past = 1000;
  std::memcpy(raw.data(), &past, 8);
  model = SafetensorsModel::parse(raw, "h.safetensors");
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("past the end"), std::string::npos);
  uint64_t max = ~uint64_t{0};
  std::memcpy(raw.data(), &max, 8);
  EXPECT_FALSE(SafetensorsModel::parse(raw, "h.safetensors").ok());
}

TEST(Safetensors, RejectsHostileHeaders) {
  struct Case {
    const char* header;
    size_t data_size;
    const char* expected;  // substring of the message
  };
  const std::string deep = std::string(100, '[') + std::string(100, ']');
  const Case cases[] = {
      {"", 0, "not valid JSON"},
      {"{", 0, "not valid JSON"},
      {R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}} trailing)", 4,
       "not valid JSON"},
      {"[1, 2]", 0, "not an object"},
      {deep.c_str(), 0, "nests deeper"},
      {R"({"a": 5})", 0, "tensor 'a': entry is not an object"},
      {R"({"a": {"shape": [1], "data_offsets": [0, 4]}})", 4, "tensor 'a': no dtype"},
      {R"({"a": {"dtype": 3, "shape": [1], "data_offsets": [0, 4]}})", 4, "dtype is not a string"},
      {R"({"a": {"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}})", 4,
       "tensor 'a': unknown dtype 'F33'"},
      {R"({"a": {"dtype": "F8_E5M2", "shape": [1], "data_offsets": [0, 1]}})", 1,
       "tensor 'a': unsupported dtype 'F8_E5M2'"},
      {R"({"a": {"dtype": "f32", "shape": [1], "data_offsets": [0, 4]}})", 4, "unknown dtype"},
      {R"({"a": {"dtype": "F32", "data_offsets": [0, 4]}})", 4, "tensor 'a': no shape"},
      {R"({"a": {"dtype": "F32", "shape": 4, "data_offsets": [0, 4]}})", 4, "not an array"},
      {R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4,
       "tensor 'a': shape dim -1 is not a non-negative integer"},
      {R"({"a": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})", 4, "shape dim 1.5"},
      {R"({"a": {"dtype": "F32", "shape": [1.0], "data_offsets": [0, 4]}})", 4, "shape dim 1.0"},
      {R"({"a": {"dtype": "F32", "shape": ["1"], "data_offsets": [0, 4]}})", 4, "shape dim"},
      {R"({"a": {"dtype": "F32", "shape": [18446744073709551615], "data_offsets": [0, 4]}})", 4,
       "not a non-negative integer"},
      {R"({"a": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 4]}})", 4,
       "too many elements"},
      {R"({"a": {"dtype": "F32", "shape": [4611686018427387904], "data_offsets": [0, 4]}})", 4,
       "too many bytes"},
      {R"({"a": {"dtype": "F32", "shape": [1]}})", 4, "tensor 'a': no data_offsets"},
      {R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})", 4, "two integers"},
      {R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}})", 4, "two integers"},
      {R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}})", 4,
       "not non-negative integers"},
      {R"({"a": {"dtype": "F32", "shape": [0], "data_offsets": [4, 0]}})", 4,
       "tensor 'a': data_offsets end 0 < begin 4"},
      {R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}})", 4,
       "tensor 'a': data_offsets [0, 4) hold 4 bytes but shape [2] x F32 needs 8"},
      {R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 3,
       "tensor 'a': data_offsets [0, 4) end beyond the data section (3 bytes)"},
      {R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", 8,
       "tensor 'a': data_offsets [4, 8) leave a gap of 4 bytes"},
      {R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
           "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
       8, "tensor 'b': data_offsets [4, 8) overlap tensor 'a'"},
      {R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
           "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})",
       4, "overlap tensor 'a'"},
      {R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 6,
       "2 bytes after the last tensor"},
      {R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
           "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
       8, "tensor 'a' appears twice"},
      {R"({"a": {"dtype": "F32", "dtype": "F16", "shape": [1], "data_offsets": [0, 4]}})", 4,
       "tensor 'a': key 'dtype' appears twice"},
      {R"({"__metadata__": {"k": 1}})", 0, "__metadata__ key 'k': value is not a string"},
      {R"({"__metadata__": ["x"]})", 0, "__metadata__ is not an object"},
      {"{\"a\xff\": 1}", 0, "not valid JSON"},
  };
  for (const Case& c : cases) {
    std::vector<uint8_t> raw = make_file(c.header, c.data_size);
    Result<SafetensorsModel> model = SafetensorsModel::parse(raw, "bad.safetensors");
    ASSERT_FALSE(model.ok()) << c.header;
    EXPECT_EQ(model.status().code(), StatusCode::kDataLoss) << c.header;
    EXPECT_EQ(model.status().message().rfind("bad.safetensors: ", 0), 0u)
        << model.status().message();
    EXPECT_NE(model.status().message().find(c.expected), std::string::npos)
        << c.header << "\n  -> " << model.status().message();
  }
}

TEST(Safetensors, AcceptsWhatTheReferenceAccepts) {
  // Tensors listed out of offset order, extra keys, space padding, a zero-size tensor at the end.
  const std::string header =
      R"({"b": {"dtype": "U8", "shape": [2], "data_offsets": [4, 6], "extra": 1},
          "a": {"dtype": "I16", "shape": [2], "data_offsets": [0, 4]},
          "z": {"dtype": "BOOL", "shape": [0, 3], "data_offsets": [6, 6]},
          "__metadata__": {"format": "pt"}}     )";
  std::vector<uint8_t> raw = make_file(header, 6);
  Result<SafetensorsModel> model = SafetensorsModel::parse(raw, "ok.safetensors");
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  ASSERT_EQ(model->tensors().size(), 3u);
  EXPECT_EQ(model->tensors()[0].name, "a");  // offset order
  EXPECT_EQ(model->find("b")->data[0], 4);
  EXPECT_EQ(model->find("b")->data[1], 5);
  EXPECT_EQ(model->find("a")->dtype, DType::kI16);
  EXPECT_EQ(model->metadata().at("format"), "pt");
}

// The values of the fixture that tests/formats/safetensors_numpy_test.sh reads with numpy; the
// script computes the same formulas. Element i of every tensor (row-major):
double fixture_value(DType d, int64_t i) {
  switch (d) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
    case DType::kF8E4M3:
      return static_cast<double>(i) * 0.5 - 1.0;
    case DType::kI8:
      return static_cast<double>(i - 3);
    case DType::kU8:
      return static_cast<double>(i * 40);
    case DType::kI16:
      return static_cast<double>(i * 1000 - 3000);
    case DType::kI32:
      return static_cast<double>(i * 100000 - 7);
    case DType::kI64:
      return static_cast<double>(i) * 1e12 - 5;
    case DType::kF64:
      return static_cast<double>(i) / 3.0;
    case DType::kBool:
      return static_cast<double>(i % 2);
    default:
      return 0;
  }
}

template <typename T>
void store(std::span<uint8_t> out, int64_t i, T v) {
  std::memcpy(out.data() + i * sizeof(T), &v, sizeof(T));
}

SafetensorsWriter::Fill fixture_fill(DType d) {
  return [d](std::span<uint8_t> out) {
    const int64_t n = static_cast<int64_t>(out.size() / *dtype_bytes(d, 1));
    for (int64_t i = 0; i < n; ++i) {
      double v = fixture_value(d, i);
      switch (d) {
        case DType::kF32:
          store(out, i, static_cast<float>(v));
          break;
        case DType::kF16:
          store(out, i, f32_to_f16(static_cast<float>(v)));
          break;
        case DType::kBF16:
          store(out, i, f32_to_bf16(static_cast<float>(v)));
          break;
        case DType::kF8E4M3:
          store(out, i, f32_to_fp8_e4m3(static_cast<float>(v)));
          break;
        case DType::kI8:
          store(out, i, static_cast<int8_t>(v));
          break;
        case DType::kU8:
          store(out, i, static_cast<uint8_t>(v));
          break;
        case DType::kI16:
          store(out, i, static_cast<int16_t>(v));
          break;
        case DType::kI32:
          store(out, i, static_cast<int32_t>(v));
          break;
        case DType::kI64:
          store(out, i, static_cast<int64_t>(i) * 1000000000000 - 5);
          break;
        case DType::kF64:
          store(out, i, v);
          break;
        case DType::kBool:
          store(out, i, static_cast<uint8_t>(v));
          break;
        default:
          break;
      }
    }
  };
}

double read_back(const SafetensorsTensor& t, int64_t i) {
  auto load = [&]<typename T>(T) {
    T v;
    std::memcpy(&v, t.data.data() + i * sizeof(T), sizeof(T));
    return v;
  };
  switch (t.dtype) {
    case DType::kF32:
      return load(float{});
    case DType::kF16:
      return f16_to_f32(load(uint16_t{}));
    case DType::kBF16:
      return bf16_to_f32(load(uint16_t{}));
    case DType::kF8E4M3:
      return fp8_e4m3_to_f32(load(uint8_t{}));
    case DType::kI8:
      return load(int8_t{});
    case DType::kU8:
      return load(uint8_t{});
    case DType::kI16:
      return load(int16_t{});
    case DType::kI32:
      return load(int32_t{});
    case DType::kI64:
      return static_cast<double>(load(int64_t{}));
    case DType::kF64:
      return load(double{});
    case DType::kBool:
      return load(uint8_t{});
    default:
      return NAN;
  }
}

// Writes the cross-check fixture to $SEEKSERVE_SAFETENSORS_FIXTURE (the numpy script test sets
// it) or a temporary file, and checks it reads back through our own reader.
TEST(SafetensorsNumpy, WritesTheCrossCheckFixture) {
  TempDir dir;
  const char* env = std::getenv("SEEKSERVE_SAFETENSORS_FIXTURE");
  const std::string path = env != nullptr ? env : dir.file("fixture.safetensors");
  const std::pair<DType, std::vector<int64_t>> tensors[] = {
      {DType::kF32, {2, 3}},    {DType::kF16, {4}},    {DType::kBF16, {1, 2, 3}},
      {DType::kF8E4M3, {3, 2}}, {DType::kI8, {5}},     {DType::kU8, {2, 2}},
      {DType::kI16, {3}},       {DType::kI32, {2, 2}}, {DType::kI64, {3}},
      {DType::kF64, {2, 2}},    {DType::kBool, {6}},
  };
  SafetensorsWriter writer;
  writer.set_metadata("format", "pt");
  for (const auto& [d, shape] : tensors) {
    ASSERT_TRUE(
        writer.add_tensor(std::string(safetensors_name_from_dtype(d)), d, shape, fixture_fill(d))
            .ok());
  }
  ASSERT_TRUE(writer.add_tensor("EMPTY", DType::kF32, {0, 4}, nullptr).ok());
  ASSERT_TRUE(writer.write(path).ok());

  Result<SafetensorsModel> model = SafetensorsModel::open(path);
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  for (const auto& [d, shape] : tensors) {
    const SafetensorsTensor* t = model->find(safetensors_name_from_dtype(d));
    ASSERT_NE(t, nullptr);
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    for (int64_t i = 0; i < n; ++i) {
      double expected = d == DType::kF64
                            ? fixture_value(d, i)
                            : static_cast<double>(static_cast<float>(fixture_value(d, i)));
      if (d == DType::kI64) expected = static_cast<double>(i * 1000000000000 - 5);
      EXPECT_EQ(read_back(*t, i), expected) << dtype_name(d) << " " << i;
    }
  }
}

}  // namespace
}  // namespace seekserve
