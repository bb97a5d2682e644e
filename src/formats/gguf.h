#pragma once
// GGUF (v2, v3) reader and writer. Little-endian. Layout: magic "GGUF", u32 version,
// u64 tensor_count, u64 kv_count, kv pairs, tensor infos, padding to general.alignment
// (default 32), tensor data. Every offset, size, count, dimension and string length read from a
// file is checked against the file before use: a bad file is a kDataLoss Status
// "<file>: <field or tensor>: <what is wrong>", never a crash or an out-of-bounds read.
//
// Limits beyond the spec, so a hostile file cannot make us allocate far more than its own size:
// at most kGgufMaxMetadataValues metadata values in all (array elements included; real models
// hold < 1M), at most kGgufMaxTensors tensors, arrays nested at most kGgufMaxArrayDepth deep, keys
// and tensor names at most kGgufMaxNameBytes bytes. Tensor infos must have 1..4 dims, each >= 1,
// the innermost a whole number of blocks of the tensor's type, and tensors must not overlap.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"
#include "core/status.h"

namespace seekserve {

inline constexpr uint64_t kGgufDefaultAlignment = 32;
inline constexpr uint64_t kGgufMaxMetadataValues = uint64_t{1} << 22;
inline constexpr int kGgufMaxArrayDepth = 8;
inline constexpr uint64_t kGgufMaxNameBytes = 65535;
inline constexpr uint64_t kGgufMaxTensors = uint64_t{1} << 20;
inline constexpr uint32_t kGgufMaxDims = 4;

// Metadata value types as numbered in the GGUF spec.
enum class GgufType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};

// Lower-case name of a metadata type ("u32", "string", "array"), for messages.
std::string_view gguf_type_name(GgufType type);

// ggml tensor type ids used in tensor infos (only the ones seekserve reads: F32 0, F16 1,
// Q4_0 2, Q8_0 8, Q4_K 12, BF16 30).
std::optional<DType> dtype_from_ggml_type(uint32_t ggml_type);
std::optional<uint32_t> ggml_type_from_dtype(DType dtype);
// ggml's name for any type id ("q5_k", "iq2_xs"), or "unknown"; for messages.
std::string_view ggml_type_name(uint32_t ggml_type);

// One metadata value. Scalars keep their exact type; integers are widened into `u`/`i`, floats
// into `f`. Arrays hold elements of one `array_type` (nested arrays allowed by the spec).
struct GgufValue {
  GgufType type = GgufType::kU32;
  GgufType array_type = GgufType::kU8;  // meaningful when type == kArray
  uint64_t u = 0;                       // kU8, kU16, kU32, kU64
  int64_t i = 0;                        // kI8, kI16, kI32, kI64
  double f = 0.0;                       // kF32, kF64
  bool b = false;                       // kBool
  std::string str;                      // kString
  std::vector<GgufValue> array;         // kArray

  // Any integer type (or bool) as int64 if it fits; nullopt otherwise.
  std::optional<int64_t> as_int() const;
  // Any integer or float type as double.
  std::optional<double> as_float() const;
  const std::string* as_string() const { return type == GgufType::kString ? &str : nullptr; }

  static GgufValue from_u32(uint32_t v);
  static GgufValue from_i32(int32_t v);
  static GgufValue from_u64(uint64_t v);
  static GgufValue from_f32(float v);
  static GgufValue from_bool(bool v);
  static GgufValue from_string(std::string v);
  static GgufValue from_strings(std::vector<std::string> v);
  static GgufValue from_i32s(const std::vector<int32_t>& v);
  static GgufValue from_f32s(const std::vector<float>& v);
  // An array of `element_type`; every element must have that type (write() checks).
  static GgufValue array_of(GgufType element_type, std::vector<GgufValue> elements);
};

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> dims;  // innermost first (the reverse of the PyTorch shape); 1..4 dims
  DType dtype = DType::kF32;
  uint64_t offset = 0;  // from the start of the data section; a multiple of the alignment
  uint64_t n_elements = 0;
  uint64_t n_bytes = 0;
  const uint8_t* data = nullptr;  // into the mapping; valid while the GgufFile lives
};

class GgufFile {
 public:
  // Maps and parses `path`. The tensor data stays memory-mapped (or, as `map` asks, in a private
  // copy: core/mapped_file.h).
  static Result<GgufFile> open(const std::string& path, const MapOptions& map = {});
  // Parses bytes owned by the caller (used by the fuzzer and tests); `name` is used in errors.
  static Result<GgufFile> parse(std::span<const uint8_t> bytes, const std::string& name);

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  const std::string& name() const { return name_; }
  uint64_t file_size() const { return file_size_; }
  MapMode map_mode() const { return file_.mode(); }

  // A private copy (MapMode::kCopy) only: runs `fn` with the file's bytes writable (`bytes` is
  // the address tensors' data point into; MappedFile::rewrite).
  Status rewrite(const std::function<void(uint8_t* bytes)>& fn) { return file_.rewrite(fn); }

  // Metadata in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }
  const GgufValue* find(std::string_view key) const;
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;

  // Typed getters for metadata. A missing key is kNotFound, a value of the wrong type (or an
  // integer that does not fit) kDataLoss; both messages name the file and the key.
  // get_int accepts any integer type or bool; get_float any integer or float type.
  Result<int64_t> get_int(std::string_view key) const;
  Result<double> get_float(std::string_view key) const;
  Result<bool> get_bool(std::string_view key) const;
  Result<std::string> get_string(std::string_view key) const;
  Result<std::vector<std::string>> get_string_array(std::string_view key) const;
  Result<std::vector<int64_t>> get_int_array(std::string_view key) const;
  Result<std::vector<float>> get_float_array(std::string_view key) const;
  // The same, but a missing key gives `fallback` (a present key of the wrong type is still an
  // error).
  Result<int64_t> get_int_or(std::string_view key, int64_t fallback) const;
  Result<double> get_float_or(std::string_view key, double fallback) const;
  Result<bool> get_bool_or(std::string_view key, bool fallback) const;
  Result<std::string> get_string_or(std::string_view key, std::string fallback) const;

 private:
  Result<const GgufValue*> require(std::string_view key) const;
  Status parse_impl(std::span<const uint8_t> bytes);

  MappedFile file_;
  std::string name_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t file_size_ = 0;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> metadata_index_;  // key -> index in metadata_
  std::map<std::string, size_t, std::less<>> tensor_index_;    // name -> index in tensors_
};

// Writes a GGUF v3 file. Tensor data is produced at write time by a fill callback so a
// multi-gigabyte model never has to sit in memory twice.
class GgufWriter {
 public:
  using Fill = std::function<void(std::span<uint8_t> out)>;

  // Sets (or replaces, keeping its position) a metadata key. The value is validated by write().
  void set(const std::string& key, GgufValue value);
  // dims innermost first (1..4, each >= 1, dims[0] a whole number of blocks). `fill` receives
  // exactly dtype_bytes(dtype, product of dims) zeroed bytes to fill, once, during write(); its
  // buffer is freed before the next tensor's is made. kInvalidArgument for a bad name (empty,
  // duplicate, too long), bad dims or a dtype GGUF cannot hold (FP8).
  Status add_tensor(const std::string& name, DType dtype, std::vector<uint64_t> dims, Fill fill);
  // Writes header, metadata, tensor infos and aligned data (tensors in the order added) to
  // `path` through a temporary file beside it that is renamed over `path` only once complete.
  // Alignment: general.alignment if set (an integer power of two, at most 2^24), else 32.
  // kInvalidArgument for a metadata value that cannot be written (mismatched array element
  // types, an integer out of its type's range); kIoError when the system refuses.
  Status write(const std::string& path) const;

 private:
  struct PendingTensor {
    std::string name;
    DType dtype;
    std::vector<uint64_t> dims;
    uint64_t n_bytes;
    Fill fill;
  };
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace seekserve
