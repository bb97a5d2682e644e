#include "formats/gguf.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>

#include <gtest/gtest.h>

namespace seekserve {
namespace {

namespace fs = std::filesystem;

// ---- an independent hand encoder of the GGUF layout (MODELS.md §6), for building valid and
// hostile files byte by byte ----

std::string le32(uint32_t v) {
  return std::string(reinterpret_cast<const char*>(&v), 4);
}
std::string le64(uint64_t v) {
  return std::string(reinterpret_cast<const char*>(&v), 8);
}
std::string gstr(std::string_view s) {
  return le64(s.size()) + std::string(s);
}

// A key/value pair: key, then u32 type and the value's bytes.
struct RawKv {
  std::string key;
  uint32_t type;
  std::string value;
  std::optional<std::string> raw_key = std::nullopt;  // replaces gstr(key) when set
};

struct RawTensor {
  std::string name;
  std::vector<uint64_t> dims;
  uint32_t type;
  uint64_t offset;
  std::optional<uint32_t> n_dims;  // overrides dims.size() in the info
};

struct RawFile {
  std::string magic = "GGUF";
  uint32_t version = 3;
  std::optional<uint64_t> tensor_count;  // overrides tensors.size()
  std::optional<uint64_t> kv_count;      // overrides kvs.size()
  std::vector<RawKv> kvs;
  std::vector<RawTensor> tensors;
  uint64_t layout_alignment = 32;  // where the data section starts
  std::string data;

  std::string bytes() const {
    std::string out = magic + le32(version) + le64(tensor_count.value_or(tensors.size())) +
                      le64(kv_count.value_or(kvs.size()));
    for (const RawKv& kv : kvs) out += kv.raw_key.value_or(gstr(kv.key)) + le32(kv.type) + kv.value;
    for (const RawTensor& t : tensors) {
      out += gstr(t.name) + le32(t.n_dims.value_or(static_cast<uint32_t>(t.dims.size())));
      for (uint64_t d : t.dims) out += le64(d);
      out += le32(t.type) + le64(t.offset);
    }
    out.resize((out.size() + layout_alignment - 1) / layout_alignment * layout_alignment, '\0');
    return out + data;
  }
};

// A valid file: three kvs (string, u32 alignment, array of strings), an f32 [4, 2] tensor at 0
// and a q8_0 [32] tensor at 32.
RawFile valid_raw() {
  RawFile f;
  f.kvs.push_back({"general.architecture", 8, gstr("test")});
  f.kvs.push_back({"general.alignment", 4, le32(32)});
  f.kvs.push_back({"tokens", 9, le32(8) + le64(2) + gstr("a") + gstr("bb")});
  f.tensors.push_back({"a", {4, 2}, 0, 0, std::nullopt});
  f.tensors.push_back({"b", {32}, 8, 32, std::nullopt});
  for (int i = 0; i < 32 + 34; ++i) f.data.push_back(static_cast<char>(i));
  return f;
}

std::span<const uint8_t> as_span(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

Result<GgufFile> parse_string(const std::string& s) {
  return GgufFile::parse(as_span(s), "hostile.gguf");
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::path(::testing::TempDir()) /
            fmt::format("gguf_test_{}_{}", ::getpid(),
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

uint8_t pattern_byte(size_t tensor, size_t i) {
  return static_cast<uint8_t>(i * 7 + tensor * 31 + 1);
}

// ---- reading ----

TEST(GgufRead, ParsesHandEncodedFile) {
  std::string bytes = valid_raw().bytes();
  auto file = parse_string(bytes);
  ASSERT_TRUE(file.ok()) << file.status().message();
  EXPECT_EQ(file->version(), 3u);
  EXPECT_EQ(file->alignment(), 32u);
  EXPECT_EQ(file->file_size(), bytes.size());
  ASSERT_EQ(file->metadata().size(), 3u);
  EXPECT_EQ(file->metadata()[0].first, "general.architecture");
  EXPECT_EQ(*file->get_string("general.architecture"), "test");
  EXPECT_EQ(*file->get_string_array("tokens"), (std::vector<std::string>{"a", "bb"}));

  ASSERT_EQ(file->tensors().size(), 2u);
  const GgufTensorInfo* a = file->find_tensor("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->dims, (std::vector<uint64_t>{4, 2}));
  EXPECT_EQ(a->dtype, DType::kF32);
  EXPECT_EQ(a->n_elements, 8u);
  EXPECT_EQ(a->n_bytes, 32u);
  size_t data_start = bytes.size() - 66;
  EXPECT_EQ(a->data, as_span(bytes).data() + data_start);
  const GgufTensorInfo* b = file->find_tensor("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->dtype, DType::kQ8_0);
  EXPECT_EQ(b->n_bytes, 34u);
  EXPECT_EQ(b->offset, 32u);
  EXPECT_EQ(b->data[0], 32);   // the pattern byte at data offset 32
  EXPECT_EQ(b->data[33], 65);  // and its last byte, the last of the file
  EXPECT_EQ(file->find_tensor("c"), nullptr);
  EXPECT_EQ(file->find("missing"), nullptr);
}

TEST(GgufRead, AcceptsVersion2AndEmptyFiles) {
  RawFile f = valid_raw();
  f.version = 2;
  auto v2 = parse_string(f.bytes());
  ASSERT_TRUE(v2.ok()) << v2.status().message();
  EXPECT_EQ(v2->version(), 2u);

  // No kvs, no tensors: 24 bytes, data section past the end is fine with nothing in it.
  RawFile empty;
  empty.layout_alignment = 1;
  std::string bytes = empty.bytes();
  EXPECT_EQ(bytes.size(), 24u);
  auto e = parse_string(bytes);
  ASSERT_TRUE(e.ok()) << e.status().message();
  EXPECT_TRUE(e->tensors().empty());
  EXPECT_TRUE(e->metadata().empty());
}

TEST(GgufRead, MissingFileIsNotFound) {
  auto file = GgufFile::open("/nonexistent/dir/model.gguf");
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), StatusCode::kNotFound);
  EXPECT_NE(file.status().message().find("/nonexistent/dir/model.gguf"), std::string::npos);
}

TEST(GgufRead, TruncationAtEveryByteIsRejected) {
  std::string bytes = valid_raw().bytes();
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto file = parse_string(bytes.substr(0, n));
    ASSERT_FALSE(file.ok()) << "truncated to " << n << " bytes was accepted";
    EXPECT_EQ(file.status().code(), StatusCode::kDataLoss) << n;
    EXPECT_EQ(file.status().message().rfind("hostile.gguf: ", 0), 0u)
        << n << ": " << file.status().message();
  }
}

struct HostileCase {
  std::string name;
  std::function<void(RawFile&)> mutate;
  std::string expected;  // a substring of the message: the field or tensor and the problem
};

TEST(GgufRead, HostileFilesAreRejectedWithAClearMessage) {
  const uint64_t kHuge = uint64_t{1} << 40;
  std::vector<HostileCase> cases = {
      {"bad magic", [](RawFile& f) { f.magic = "GGUG"; }, "magic: expected \"GGUF\""},
      {"version 1", [](RawFile& f) { f.version = 1; }, "version: GGUF v1 is not supported"},
      {"version 4", [](RawFile& f) { f.version = 4; }, "version: unsupported version 4"},
      {"big-endian", [](RawFile& f) { f.version = 0x03000000; }, "big-endian"},
      {"huge tensor_count", [&](RawFile& f) { f.tensor_count = kHuge; },
       "tensor_count: 1099511627776 exceeds the limit"},
      {"tensor_count beyond the file", [](RawFile& f) { f.tensor_count = 100; },
       "tensor_count: 100 tensor infos cannot fit"},
      {"huge kv_count", [&](RawFile& f) { f.kv_count = kHuge; }, "kv_count: 1099511627776"},
      {"kv_count beyond the file", [](RawFile& f) { f.kv_count = 1000; },
       "kv_count: 1000 key/value pairs cannot fit"},
      {"empty key", [&](RawFile& f) { f.kvs[1].key = std::string(); }, "kv[1] key: empty key"},
      {"huge key length", [&](RawFile& f) { f.kvs[1].raw_key = le64(kHuge) + "general"; },
       "kv[1] key: string length 1099511627776 exceeds"},
      {"key longer than the limit", [&](RawFile& f) { f.kvs[1].key = std::string(65536, 'k'); },
       "kv[1] key: length 65536 exceeds the limit of 65535"},
      {"huge string value length", [&](RawFile& f) { f.kvs[0].value = le64(kHuge) + "test"; },
       "key 'general.architecture': string length 1099511627776 exceeds"},
      {"string length just past the end",
       [&](RawFile& f) { f.kvs[0].value = le64(100000) + "test"; },
       "key 'general.architecture': string length 100000 exceeds"},
      {"huge array count",
       [&](RawFile& f) { f.kvs[2].value = le32(8) + le64(kHuge) + gstr("a") + gstr("bb"); },
       "key 'tokens': array of 1099511627776 string values cannot fit"},
      {"huge u8 array count", [&](RawFile& f) { f.kvs[2].value = le32(0) + le64(kHuge); },
       "key 'tokens': array of 1099511627776 u8 values cannot fit"},
      {"bad string inside an array",
       [&](RawFile& f) { f.kvs[2].value = le32(8) + le64(2) + gstr("a") + le64(kHuge); },
       "key 'tokens'[1]: string length"},
      {"unknown array element type", [&](RawFile& f) { f.kvs[2].value = le32(13) + le64(1); },
       "key 'tokens': unknown array element type 13"},
      {"arrays nested too deep",
       [&](RawFile& f) {
         std::string v;
         for (int i = 0; i < 20; ++i) v += le32(9) + le64(1);
         f.kvs[2].value = v;
       },
       "arrays nested deeper than 8"},
      {"unknown value type", [](RawFile& f) { f.kvs[0].type = 13; },
       "key 'general.architecture': unknown value type 13"},
      {"bool that is not 0 or 1",
       [](RawFile& f) {
         f.kvs.push_back({"flag", 7, std::string(1, '\x02')});
       },
       "key 'flag': bool value 2 is neither 0 nor 1"},
      {"duplicate key", [](RawFile& f) { f.kvs.push_back(f.kvs[0]); },
       "key 'general.architecture': duplicate key"},
      {"alignment zero", [](RawFile& f) { f.kvs[1].value = le32(0); },
       "key 'general.alignment': 0 is not a non-zero power of two"},
      {"alignment not a power of two", [](RawFile& f) { f.kvs[1].value = le32(48); },
       "key 'general.alignment': 48 is not a non-zero power of two"},
      {"negative alignment",
       [](RawFile& f) {
         f.kvs[1].type = 5;
         f.kvs[1].value = le32(static_cast<uint32_t>(-32));
       },
       "key 'general.alignment': -32 is not"},
      {"alignment of the wrong type",
       [](RawFile& f) {
         f.kvs[1].type = 8;
         f.kvs[1].value = gstr("32");
       },
       "key 'general.alignment': expected an integer, found string"},
      {"empty tensor name", [](RawFile& f) { f.tensors[1].name = ""; },
       "tensor[1] name: empty tensor name"},
      {"huge tensor name length", [&](RawFile& f) { f.tensors[1].name = std::string(70000, 'x'); },
       "tensor[1] name: length 70000 exceeds the limit of 65535"},
      {"duplicate tensor name", [](RawFile& f) { f.tensors[1].name = "a"; },
       "tensor 'a': duplicate tensor name"},
      {"n_dims 5",
       [](RawFile& f) {
         f.tensors[0].dims = {4, 2, 1, 1, 1};
       },
       "tensor 'a': n_dims 5 is outside 1..4"},
      {"n_dims 0", [](RawFile& f) { f.tensors[0].dims = {}; },
       "tensor 'a': n_dims 0 is outside 1..4"},
      {"huge n_dims", [](RawFile& f) { f.tensors[0].n_dims = 0xffffffff; },
       "tensor 'a': n_dims 4294967295 is outside 1..4"},
      {"zero dimension",
       [](RawFile& f) {
         f.tensors[0].dims = {4, 0};
       },
       "tensor 'a': dimension 1 is zero"},
      {"overflowing dims",
       [](RawFile& f) {
         f.tensors[0].dims = {uint64_t{1} << 32, uint64_t{1} << 32};
       },
       "tensor 'a': element count of dims [4294967296, 4294967296] overflows"},
      {"dimension beyond int64", [](RawFile& f) { f.tensors[0].dims = {uint64_t{1} << 63}; },
       "tensor 'a': element count"},
      {"unknown type id", [](RawFile& f) { f.tensors[1].type = 7; },
       "tensor 'b': unsupported ggml type 7 (q5_1)"},
      {"type id out of any table", [](RawFile& f) { f.tensors[1].type = 1000; },
       "tensor 'b': unsupported ggml type 1000 (unknown)"},
      {"partial block", [](RawFile& f) { f.tensors[1].dims = {33}; },
       "tensor 'b': innermost dimension 33 is not a multiple of the q8_0 block size 32"},
      {"rows of partial blocks",
       [](RawFile& f) {
         f.tensors[1].dims = {16, 2};
       },
       "tensor 'b': innermost dimension 16 is not a multiple"},
      {"control bytes in a tensor name",
       [](RawFile& f) {
         f.tensors[1].name = "b\nc";
         f.tensors[1].dims = {33};
       },
       "tensor 'b\\x0ac': innermost dimension 33"},
      {"misaligned offset", [](RawFile& f) { f.tensors[1].offset = 33; },
       "tensor 'b': offset 33 is not a multiple of the alignment 32"},
      {"overlapping tensors", [](RawFile& f) { f.tensors[1].offset = 0; },
       "tensor 'b': data at offset 0 overlaps tensor 'a' (offset 0, 32 bytes)"},
      {"offset past the end", [](RawFile& f) { f.tensors[1].offset = 1 << 20; },
       "tensor 'b': 34 bytes at offset 1048576 (data section at"},
      {"offset that overflows", [](RawFile& f) { f.tensors[1].offset = ~uint64_t{31}; },
       "tensor 'b': 34 bytes at offset 18446744073709551584"},
      {"tensor bytes past the end", [](RawFile& f) { f.tensors[1].dims = {64}; },
       "tensor 'b': 68 bytes at offset 32"},
  };
  for (const HostileCase& c : cases) {
    RawFile f = valid_raw();
    c.mutate(f);
    auto file = parse_string(f.bytes());
    ASSERT_FALSE(file.ok()) << c.name << " was accepted";
    EXPECT_EQ(file.status().code(), StatusCode::kDataLoss) << c.name;
    const std::string& msg = file.status().message();
    EXPECT_EQ(msg.rfind("hostile.gguf: ", 0), 0u) << c.name << ": " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << c.name << ": not one line: " << msg;
    EXPECT_NE(msg.find(c.expected), std::string::npos)
        << c.name << ": expected \"" << c.expected << "\" in \"" << msg << "\"";
  }
}

TEST(GgufRead, OverlapIsFoundWhateverTheInfoOrder) {
  RawFile f = valid_raw();
  // In data order b [0, 34) comes first, then a [32, 64): a's first two bytes are b's last.
  f.tensors[1].offset = 0;
  f.tensors[0].offset = 32;
  f.data.resize(64);
  auto file = parse_string(f.bytes());
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.status().message().find(
                "tensor 'a': data at offset 32 overlaps tensor 'b' (offset 0, 34 bytes)"),
            std::string::npos)
      << file.status().message();
}

TEST(GgufRead, UsesTheFileAlignment) {
  RawFile f = valid_raw();
  f.kvs[1].value = le32(64);
  f.layout_alignment = 64;
  f.tensors[1].offset = 64;
  f.data.resize(64 + 34);
  f.data[64] = 'B';
  std::string bytes = f.bytes();
  auto file = parse_string(bytes);
  ASSERT_TRUE(file.ok()) << file.status().message();
  EXPECT_EQ(file->alignment(), 64u);
  const GgufTensorInfo* b = file->find_tensor("b");
  EXPECT_EQ(b->data[0], 'B');
  EXPECT_EQ((b->data - as_span(bytes).data()) % 64, 0);

  f.tensors[1].offset = 32;  // aligned to the default 32 but not to this file's 64
  auto misaligned = parse_string(f.bytes());
  ASSERT_FALSE(misaligned.ok());
  EXPECT_NE(misaligned.status().message().find(
                "tensor 'b': offset 32 is not a multiple of the alignment 64"),
            std::string::npos)
      << misaligned.status().message();
}

// ---- typed getters ----

TEST(GgufGetters, ReadTypedValuesAndNameTheKeyOnErrors) {
  RawFile f;
  f.layout_alignment = 1;
  f.kvs.push_back({"u32", 4, le32(7)});
  f.kvs.push_back({"i64", 11, le64(static_cast<uint64_t>(-5))});
  f.kvs.push_back({"big", 10, le64(~uint64_t{0})});
  float third = 1.0f / 3.0f;
  f.kvs.push_back({"f32", 6, std::string(reinterpret_cast<const char*>(&third), 4)});
  f.kvs.push_back({"flag", 7, std::string(1, '\x01')});
  f.kvs.push_back({"name", 8, gstr("deepseek2")});
  f.kvs.push_back(
      {"ids", 9, le32(5) + le64(3) + le32(1) + le32(static_cast<uint32_t>(-2)) + le32(3)});
  f.kvs.push_back(
      {"scores", 9, le32(6) + le64(1) + std::string(reinterpret_cast<const char*>(&third), 4)});
  std::string bytes = f.bytes();
  auto file = GgufFile::parse(as_span(bytes), "m.gguf");
  ASSERT_TRUE(file.ok()) << file.status().message();

  EXPECT_EQ(*file->get_int("u32"), 7);
  EXPECT_EQ(*file->get_int("i64"), -5);
  EXPECT_EQ(*file->get_int("flag"), 1);
  EXPECT_EQ(*file->get_float("f32"), static_cast<double>(third));
  EXPECT_EQ(*file->get_float("u32"), 7.0);
  EXPECT_TRUE(*file->get_bool("flag"));
  EXPECT_EQ(*file->get_string("name"), "deepseek2");
  EXPECT_EQ(*file->get_int_array("ids"), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(*file->get_float_array("scores"), (std::vector<float>{third}));
  EXPECT_EQ(*file->get_float_array("ids"), (std::vector<float>{1, -2, 3}));
  EXPECT_EQ(*file->get_int_or("absent", 42), 42);
  EXPECT_EQ(*file->get_int_or("u32", 42), 7);
  EXPECT_EQ(*file->get_float_or("absent", 0.5), 0.5);
  EXPECT_FALSE(*file->get_bool_or("absent", false));
  EXPECT_EQ(*file->get_string_or("absent", "x"), "x");

  auto missing = file->get_int("deepseek2.block_count");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "m.gguf: key 'deepseek2.block_count': missing");

  auto wrong = file->get_int("name");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(wrong.status().message(), "m.gguf: key 'name': expected an integer, found string");

  auto too_big = file->get_int("big");
  ASSERT_FALSE(too_big.ok());
  EXPECT_NE(too_big.status().message().find("key 'big': 18446744073709551615 does not fit"),
            std::string::npos);

  auto not_strings = file->get_string_array("ids");
  ASSERT_FALSE(not_strings.ok());
  EXPECT_EQ(not_strings.status().message(),
            "m.gguf: key 'ids': expected an array of string, found array of i32");
  EXPECT_FALSE(file->get_string("u32").ok());
  EXPECT_FALSE(file->get_bool("u32").ok());
  EXPECT_FALSE(file->get_float("name").ok());
  EXPECT_FALSE(file->get_int_array("name").ok());
  EXPECT_FALSE(file->get_int_or("name", 1).ok());  // present but wrong: still an error
}

// ---- writing ----

GgufValue scalar(GgufType type, uint64_t u, int64_t i, double f) {
  GgufValue v;
  v.type = type;
  v.u = u;
  v.i = i;
  v.f = f;
  return v;
}

// Every metadata type, an empty array, nested arrays (of i32 arrays and of string arrays).
std::vector<std::pair<std::string, GgufValue>> every_metadata_type() {
  std::vector<std::pair<std::string, GgufValue>> kv;
  kv.emplace_back("u8", scalar(GgufType::kU8, 250, 0, 0));
  kv.emplace_back("i8", scalar(GgufType::kI8, 0, -100, 0));
  kv.emplace_back("u16", scalar(GgufType::kU16, 65000, 0, 0));
  kv.emplace_back("i16", scalar(GgufType::kI16, 0, -30000, 0));
  kv.emplace_back("u32", GgufValue::from_u32(4000000000u));
  kv.emplace_back("i32", GgufValue::from_i32(-2000000000));
  kv.emplace_back("f32", GgufValue::from_f32(0.1f));
  kv.emplace_back("bool", GgufValue::from_bool(true));
  kv.emplace_back("string", GgufValue::from_string(std::string("h\xc3\xa9llo\n\0x", 9)));
  kv.emplace_back("u64", GgufValue::from_u64(~uint64_t{0}));
  kv.emplace_back("i64", scalar(GgufType::kI64, 0, std::numeric_limits<int64_t>::min(), 0));
  kv.emplace_back("f64", scalar(GgufType::kF64, 0, 0, 0.1));
  kv.emplace_back("strings", GgufValue::from_strings({"a", "", "ccc"}));
  kv.emplace_back("i32s", GgufValue::from_i32s({1, -2, 3}));
  kv.emplace_back("f32s", GgufValue::from_f32s({0.5f, -1.5f}));
  kv.emplace_back("u8s", GgufValue::array_of(GgufType::kU8, {scalar(GgufType::kU8, 1, 0, 0),
                                                             scalar(GgufType::kU8, 255, 0, 0)}));
  kv.emplace_back("bools", GgufValue::array_of(GgufType::kBool, {GgufValue::from_bool(false),
                                                                 GgufValue::from_bool(true)}));
  kv.emplace_back("f64s", GgufValue::array_of(GgufType::kF64, {scalar(GgufType::kF64, 0, 0, 2.5)}));
  kv.emplace_back("empty", GgufValue::array_of(GgufType::kU64, {}));
  kv.emplace_back("nested", GgufValue::array_of(GgufType::kArray, {GgufValue::from_i32s({1, 2}),
                                                                   GgufValue::from_i32s({}),
                                                                   GgufValue::from_i32s({3})}));
  kv.emplace_back("nested_strings",
                  GgufValue::array_of(
                      GgufType::kArray,
                      {GgufValue::array_of(GgufType::kArray, {GgufValue::from_strings({"x", "y"})}),
                       GgufValue::array_of(GgufType::kArray, {})}));
  return kv;
}

void expect_same_value(const GgufValue& got, const GgufValue& want, const std::string& where) {
  ASSERT_EQ(got.type, want.type) << where;
  switch (want.type) {
    case GgufType::kU8:
    case GgufType::kU16:
    case GgufType::kU32:
    case GgufType::kU64:
      EXPECT_EQ(got.u, want.u) << where;
      break;
    case GgufType::kI8:
    case GgufType::kI16:
    case GgufType::kI32:
    case GgufType::kI64:
      EXPECT_EQ(got.i, want.i) << where;
      break;
    case GgufType::kF32:
      EXPECT_EQ(got.f, static_cast<double>(static_cast<float>(want.f))) << where;
      break;
    case GgufType::kF64:
      EXPECT_EQ(got.f, want.f) << where;
      break;
    case GgufType::kBool:
      EXPECT_EQ(got.b, want.b) << where;
      break;
    case GgufType::kString:
      EXPECT_EQ(got.str, want.str) << where;
      break;
    case GgufType::kArray:
      ASSERT_EQ(got.array_type, want.array_type) << where;
      ASSERT_EQ(got.array.size(), want.array.size()) << where;
      for (size_t i = 0; i < want.array.size(); ++i) {
        expect_same_value(got.array[i], want.array[i], where + "[" + std::to_string(i) + "]");
      }
      break;
  }
}

struct TensorSpec {
  std::string name;
  DType dtype;
  std::vector<uint64_t> dims;
};

const std::vector<TensorSpec>& every_tensor_type() {
  static const std::vector<TensorSpec> specs = {
      {"f32", DType::kF32, {3, 5}},     {"f16", DType::kF16, {7}},
      {"q4_0", DType::kQ4_0, {64, 2}},  {"q8_0", DType::kQ8_0, {32, 3, 1}},
      {"q4_k", DType::kQ4_K, {256, 2}}, {"bf16", DType::kBF16, {2, 2, 2, 3}},
  };
  return specs;
}

void add_every_tensor(GgufWriter& w, int* fill_calls) {
  const auto& specs = every_tensor_type();
  for (size_t t = 0; t < specs.size(); ++t) {
    uint64_t expected = *dtype_bytes(specs[t].dtype, [&] {
      uint64_t n = 1;
      for (uint64_t d : specs[t].dims) n *= d;
      return n;
    }());
    ASSERT_TRUE(w.add_tensor(specs[t].name, specs[t].dtype, specs[t].dims,
                             [t, expected, fill_calls](std::span<uint8_t> out) {
                               ++*fill_calls;
                               EXPECT_EQ(out.size(), expected);
                               for (size_t i = 0; i < out.size(); ++i) {
                                 EXPECT_EQ(out[i], 0) << "buffer not zeroed";
                                 out[i] = pattern_byte(t, i);
                               }
                             })
                    .ok());
  }
}

TEST(GgufWrite, RoundTripsEveryMetadataTypeAndTensorType) {
  TempDir dir;
  std::string path = dir.file("model.gguf");
  GgufWriter w;
  auto kv = every_metadata_type();
  for (const auto& [k, v] : kv) w.set(k, v);
  int fill_calls = 0;
  add_every_tensor(w, &fill_calls);
  Status s = w.write(path);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(fill_calls, 6);
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  auto file = GgufFile::open(path);
  ASSERT_TRUE(file.ok()) << file.status().message();
  EXPECT_EQ(file->version(), 3u);
  EXPECT_EQ(file->alignment(), 32u);
  EXPECT_EQ(file->name(), path);
  ASSERT_EQ(file->metadata().size(), kv.size());
  for (size_t i = 0; i < kv.size(); ++i) {
    EXPECT_EQ(file->metadata()[i].first, kv[i].first);  // file order kept
    expect_same_value(file->metadata()[i].second, kv[i].second, kv[i].first);
  }
  const auto& specs = every_tensor_type();
  ASSERT_EQ(file->tensors().size(), specs.size());
  for (size_t t = 0; t < specs.size(); ++t) {
    const GgufTensorInfo& info = file->tensors()[t];
    EXPECT_EQ(info.name, specs[t].name);
    EXPECT_EQ(info.dtype, specs[t].dtype) << info.name;
    EXPECT_EQ(info.dims, specs[t].dims) << info.name;
    EXPECT_EQ(info.offset % 32, 0u) << info.name;
    for (size_t i = 0; i < info.n_bytes; ++i) {
      ASSERT_EQ(info.data[i], pattern_byte(t, i)) << info.name << " byte " << i;
    }
  }
  EXPECT_EQ(file->find_tensor("q4_k")->n_bytes, 288u);
  EXPECT_EQ(file->find_tensor("q4_0")->n_bytes, 72u);  // 4 blocks of 18
}

TEST(GgufWrite, MatchesTheHandEncodedLayoutByteForByte) {
  TempDir dir;
  GgufWriter w;
  w.set("general.architecture", GgufValue::from_string("test"));
  w.set("general.alignment", GgufValue::from_u32(32));
  w.set("tokens", GgufValue::from_strings({"a", "bb"}));
  RawFile want = valid_raw();
  ASSERT_TRUE(w.add_tensor("a", DType::kF32, {4, 2}, [&](std::span<uint8_t> out) {
                 std::memcpy(out.data(), want.data.data(), 32);
               }).ok());
  ASSERT_TRUE(w.add_tensor("b", DType::kQ8_0, {32}, [&](std::span<uint8_t> out) {
                 std::memcpy(out.data(), want.data.data() + 32, 34);
               }).ok());
  ASSERT_TRUE(w.write(dir.file("m.gguf")).ok());
  EXPECT_EQ(read_all(dir.file("m.gguf")), want.bytes());
}

TEST(GgufWrite, HonoursAlignmentOtherThan32) {
  for (uint32_t alignment : {1u, 8u, 64u, 4096u}) {
    TempDir dir;
    std::string path = dir.file("aligned.gguf");
    GgufWriter w;
    w.set("general.alignment", GgufValue::from_u32(alignment));
    int fill_calls = 0;
    add_every_tensor(w, &fill_calls);
    ASSERT_TRUE(w.write(path).ok());
    std::string bytes = read_all(path);
    auto file = GgufFile::parse(as_span(bytes), "aligned.gguf");
    ASSERT_TRUE(file.ok()) << file.status().message();
    EXPECT_EQ(file->alignment(), alignment);
    for (const GgufTensorInfo& t : file->tensors()) {
      size_t position = static_cast<size_t>(t.data - as_span(bytes).data());
      EXPECT_EQ(position % alignment, 0u) << alignment << " " << t.name;
      EXPECT_EQ(t.offset % alignment, 0u) << alignment << " " << t.name;
    }
  }
}

TEST(GgufWrite, SetReplacesKeepingPosition) {
  TempDir dir;
  GgufWriter w;
  w.set("a", GgufValue::from_u32(1));
  w.set("b", GgufValue::from_u32(2));
  w.set("a", GgufValue::from_string("again"));
  ASSERT_TRUE(w.write(dir.file("s.gguf")).ok());
  auto file = GgufFile::open(dir.file("s.gguf"));
  ASSERT_TRUE(file.ok());
  ASSERT_EQ(file->metadata().size(), 2u);
  EXPECT_EQ(file->metadata()[0].first, "a");
  EXPECT_EQ(*file->get_string("a"), "again");
}

TEST(GgufWrite, RejectsWhatCannotBeWritten) {
  GgufWriter w;
  auto fill = [](std::span<uint8_t>) {};
  EXPECT_EQ(w.add_tensor("fp8", DType::kF8E4M3, {4}, fill).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(w.add_tensor("", DType::kF32, {4}, fill).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(w.add_tensor("z", DType::kF32, {4, 0}, fill).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(w.add_tensor("d5", DType::kF32, {1, 1, 1, 1, 1}, fill).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(w.add_tensor("q", DType::kQ8_0, {16, 2}, fill).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(w.add_tensor("big", DType::kF32, {uint64_t{1} << 40, uint64_t{1} << 40}, fill).code(),
            StatusCode::kInvalidArgument);
  ASSERT_TRUE(w.add_tensor("ok", DType::kF32, {4}, fill).ok());
  Status dup = w.add_tensor("ok", DType::kF32, {4}, fill);
  EXPECT_EQ(dup.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(dup.message().find("'ok'"), std::string::npos);

  TempDir dir;
  auto expect_write_fails = [&](const std::string& key, GgufValue v, const std::string& what) {
    GgufWriter bad;
    bad.set(key, std::move(v));
    Status s = bad.write(dir.file("bad.gguf"));
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << key;
    EXPECT_NE(s.message().find(what), std::string::npos) << s.message();
    EXPECT_FALSE(fs::exists(dir.file("bad.gguf")));
    EXPECT_FALSE(fs::exists(dir.file("bad.gguf.tmp")));
  };
  expect_write_fails("general.alignment", GgufValue::from_u32(48), "general.alignment");
  expect_write_fails("general.alignment", GgufValue::from_string("32"), "general.alignment");
  GgufValue mixed = GgufValue::from_i32s({1, 2});
  mixed.array[1] = GgufValue::from_string("two");
  expect_write_fails("mixed", mixed, "key 'mixed': array element 1 is string in an array of i32");
  expect_write_fails("u8", scalar(GgufType::kU8, 300, 0, 0), "key 'u8': value 300 does not fit u8");
  expect_write_fails("", GgufValue::from_u32(1), "metadata key of 0 bytes");
}

TEST(GgufWrite, UnwritableDirectoryIsAnIoError) {
  GgufWriter w;
  w.set("a", GgufValue::from_u32(1));
  Status s = w.write("/nonexistent/dir/out.gguf");
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_NE(s.message().find("/nonexistent/dir/out.gguf"), std::string::npos);
}

// ---- the fuzzer's seed corpus ----

// The seeds in fuzz/corpus/gguf_fuzz/, each made by the writer. The test checks the committed
// bytes are what the writer makes today; SEEKSERVE_REGENERATE_SEEDS=1 rewrites them instead.
std::vector<std::pair<std::string, GgufWriter>> seed_files() {
  std::vector<std::pair<std::string, GgufWriter>> seeds;
  auto fill_pattern = [](std::span<uint8_t> out) {
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(i * 13 + 5);
  };
  {
    GgufWriter w;
    seeds.emplace_back("empty.gguf", std::move(w));
  }
  {
    GgufWriter w;
    for (auto& [k, v] : every_metadata_type()) w.set(k, v);
    seeds.emplace_back("every_metadata_type.gguf", std::move(w));
  }
  {
    GgufWriter w;
    w.set("general.architecture", GgufValue::from_string("llama"));
    for (const TensorSpec& t : every_tensor_type()) {
      EXPECT_TRUE(w.add_tensor(t.name, t.dtype, t.dims, fill_pattern).ok());
    }
    seeds.emplace_back("every_tensor_type.gguf", std::move(w));
  }
  {
    GgufWriter w;
    w.set("general.alignment", GgufValue::from_u32(64));
    EXPECT_TRUE(w.add_tensor("x", DType::kQ8_0, {32, 2}, fill_pattern).ok());
    EXPECT_TRUE(w.add_tensor("y", DType::kF16, {3}, fill_pattern).ok());
    seeds.emplace_back("alignment_64.gguf", std::move(w));
  }
  {
    GgufWriter w;
    w.set("general.architecture", GgufValue::from_string("deepseek2"));
    w.set("deepseek2.block_count", GgufValue::from_u32(1));
    w.set("deepseek2.rope.freq_base", GgufValue::from_f32(10000.0f));
    w.set("tokenizer.ggml.model", GgufValue::from_string("gpt2"));
    w.set("tokenizer.ggml.tokens", GgufValue::from_strings({"a", "b", "ab", "<s>"}));
    w.set("tokenizer.ggml.merges", GgufValue::from_strings({"a b"}));
    w.set("tokenizer.ggml.token_type", GgufValue::from_i32s({1, 1, 1, 3}));
    w.set("tokenizer.ggml.add_bos_token", GgufValue::from_bool(true));
    EXPECT_TRUE(w.add_tensor("token_embd.weight", DType::kQ4_0, {32, 4}, fill_pattern).ok());
    EXPECT_TRUE(w.add_tensor("blk.0.ffn_down.weight", DType::kQ4_K, {256, 1}, fill_pattern).ok());
    seeds.emplace_back("tiny_deepseek2.gguf", std::move(w));
  }
  return seeds;
}

TEST(GgufFuzzSeeds, CommittedSeedsAreTheWritersOutput) {
  const std::string corpus = std::string(SEEKSERVE_SOURCE_DIR) + "/fuzz/corpus/gguf_fuzz";
  const bool regenerate = std::getenv("SEEKSERVE_REGENERATE_SEEDS") != nullptr;
  TempDir dir;
  for (auto& [name, writer] : seed_files()) {
    std::string path = regenerate ? corpus + "/" + name : dir.file(name);
    ASSERT_TRUE(writer.write(path).ok()) << name;
    std::string made = read_all(path);
    EXPECT_LT(made.size(), 4096u) << name;
    auto parsed = GgufFile::parse(as_span(made), name);
    EXPECT_TRUE(parsed.ok()) << parsed.status().message();
    EXPECT_EQ(read_all(corpus + "/" + name), made)
        << name << " differs from the writer's output: rerun with SEEKSERVE_REGENERATE_SEEDS=1";
  }
}

}  // namespace
}  // namespace seekserve
