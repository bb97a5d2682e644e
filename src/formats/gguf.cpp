#include "formats/gguf.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <limits>
#include <numeric>

#include <fmt/ranges.h>

#include "core/byte_reader.h"

namespace seekserve {
namespace {

constexpr uint8_t kMagic[4] = {'G', 'G', 'U', 'F'};
constexpr uint32_t kWriteVersion = 3;
constexpr uint64_t kMaxWriteAlignment = uint64_t{1} << 24;

bool is_valid_type(uint32_t t) {
  return t <= static_cast<uint32_t>(GgufType::kF64);
}

bool is_unsigned(GgufType t) {
  return t == GgufType::kU8 || t == GgufType::kU16 || t == GgufType::kU32 || t == GgufType::kU64;
}
bool is_signed(GgufType t) {
  return t == GgufType::kI8 || t == GgufType::kI16 || t == GgufType::kI32 || t == GgufType::kI64;
}
bool is_float(GgufType t) {
  return t == GgufType::kF32 || t == GgufType::kF64;
}

// The fewest bytes one value of type `t` can take in a file: what bounds a count read from it.
uint64_t min_value_bytes(GgufType t) {
  switch (t) {
    case GgufType::kU8:
    case GgufType::kI8:
    case GgufType::kBool:
      return 1;
    case GgufType::kU16:
    case GgufType::kI16:
      return 2;
    case GgufType::kU32:
    case GgufType::kI32:
    case GgufType::kF32:
      return 4;
    case GgufType::kU64:
    case GgufType::kI64:
    case GgufType::kF64:
    case GgufType::kString:  // u64 length
      return 8;
    case GgufType::kArray:  // u32 element type + u64 count
      return 12;
  }
  return 1;
}

// Smallest encodings of a key/value pair (1-byte key, u32 type, 1-byte value) and of a tensor
// info (1-byte name, u32 n_dims, one u64 dim, u32 type, u64 offset).
constexpr uint64_t kMinKvBytes = 8 + 1 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;

// x rounded up to a multiple of `alignment` (a power of two); nullopt on overflow.
std::optional<uint64_t> align_up(uint64_t x, uint64_t alignment) {
  uint64_t sum;
  if (__builtin_add_overflow(x, alignment - 1, &sum)) return std::nullopt;
  return sum & ~(alignment - 1);
}

void append_index(std::string& path, uint64_t i) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), i);
  (void)ec;
  path.push_back('[');
  path.append(buf, end);
  path.push_back(']');
}

// A key or tensor name as it appears in messages: quoted, control bytes escaped and long names
// cut, so a hostile name cannot break the one-line message format.
std::string quoted(std::string_view name) {
  constexpr size_t kMaxShown = 200;
  std::string out = "'";
  for (size_t i = 0; i < name.size() && i < kMaxShown; ++i) {
    unsigned char c = static_cast<unsigned char>(name[i]);
    if (c < 0x20 || c == 0x7f || c == '\\') {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  if (name.size() > kMaxShown) out += "...";
  out += "'";
  return out;
}

std::string type_description(const GgufValue& v) {
  if (v.type != GgufType::kArray) return std::string(gguf_type_name(v.type));
  return fmt::format("array of {}", gguf_type_name(v.array_type));
}

// Reads the header, metadata and tensor infos. Every error message is "<field>: <problem>"; the
// caller prefixes the file name.
class Parser {
 public:
  explicit Parser(std::span<const uint8_t> bytes) : bytes_(bytes), reader_(bytes) {}

  Status parse(uint32_t* version, uint64_t* alignment,
               std::vector<std::pair<std::string, GgufValue>>* metadata,
               std::map<std::string, size_t, std::less<>>* metadata_index,
               std::vector<GgufTensorInfo>* tensors,
               std::map<std::string, size_t, std::less<>>* tensor_index) {
    SEEK_ASSIGN_OR_RETURN(auto magic, reader_.read_bytes(4, "magic"));
    if (std::memcmp(magic.data(), kMagic, 4) != 0) {
      return data_loss("magic: expected \"GGUF\" (47 47 55 46), found {:02x} {:02x} {:02x} {:02x}",
                       magic[0], magic[1], magic[2], magic[3]);
    }
    SEEK_ASSIGN_OR_RETURN(*version, reader_.read<uint32_t>("version"));
    if (*version == 1) return data_loss("version: GGUF v1 is not supported (v2 and v3 are)");
    if (*version != 2 && *version != 3) {
      uint32_t swapped = __builtin_bswap32(*version);
      if (swapped == 2 || swapped == 3) {
        return data_loss("version: {} looks like a big-endian GGUF v{}, which is not supported",
                         *version, swapped);
      }
      return data_loss("version: unsupported version {} (v2 and v3 are supported)", *version);
    }

    SEEK_ASSIGN_OR_RETURN(uint64_t tensor_count, reader_.read<uint64_t>("tensor_count"));
    SEEK_ASSIGN_OR_RETURN(uint64_t kv_count, reader_.read<uint64_t>("kv_count"));
    // Bound both counts by what the rest of the file could hold before allocating anything.
    if (tensor_count > kGgufMaxTensors) {
      return data_loss("tensor_count: {} exceeds the limit of {}", tensor_count, kGgufMaxTensors);
    }
    if (tensor_count > reader_.remaining() / kMinTensorInfoBytes) {
      return data_loss("tensor_count: {} tensor infos cannot fit in the {} bytes left",
                       tensor_count, reader_.remaining());
    }
    uint64_t left_for_kv = reader_.remaining() - tensor_count * kMinTensorInfoBytes;
    if (kv_count > kGgufMaxMetadataValues) {
      return data_loss("kv_count: {} exceeds the limit of {}", kv_count, kGgufMaxMetadataValues);
    }
    if (kv_count > left_for_kv / kMinKvBytes) {
      return data_loss("kv_count: {} key/value pairs cannot fit in the {} bytes left", kv_count,
                       left_for_kv);
    }

    metadata->reserve(kv_count);
    std::string path;
    for (uint64_t i = 0; i < kv_count; ++i) {
      path = "kv";
      append_index(path, i);
      path += " key";
      std::string key;
      SEEK_RETURN_IF_ERROR(read_string(path, kGgufMaxNameBytes, &key));
      if (key.empty()) return data_loss("{}: empty key", path);
      path = "key " + quoted(key);
      if (metadata_index->contains(key)) return data_loss("{}: duplicate key", path);
      SEEK_ASSIGN_OR_RETURN(uint32_t type, reader_.read<uint32_t>(path + " type"));
      if (!is_valid_type(type)) return data_loss("{}: unknown value type {}", path, type);
      GgufValue value;
      SEEK_RETURN_IF_ERROR(read_value(static_cast<GgufType>(type), 0, path, &value));
      metadata_index->emplace(key, metadata->size());
      metadata->emplace_back(std::move(key), std::move(value));
    }

    *alignment = kGgufDefaultAlignment;
    if (auto it = metadata_index->find("general.alignment"); it != metadata_index->end()) {
      const GgufValue& v = (*metadata)[it->second].second;
      uint64_t a = 0;
      if (is_unsigned(v.type)) {
        a = v.u;
      } else if (is_signed(v.type) && v.i > 0) {
        a = static_cast<uint64_t>(v.i);
      } else if (!is_signed(v.type)) {
        return data_loss("key 'general.alignment': expected an integer, found {}",
                         type_description(v));
      }
      if (a == 0 || !std::has_single_bit(a)) {
        return data_loss("key 'general.alignment': {} is not a non-zero power of two",
                         is_signed(v.type) ? std::to_string(v.i) : std::to_string(a));
      }
      *alignment = a;
    }

    tensors->reserve(tensor_count);
    for (uint64_t i = 0; i < tensor_count; ++i) {
      GgufTensorInfo info;
      SEEK_RETURN_IF_ERROR(read_tensor_info(i, &info, tensor_index));
      tensor_index->emplace(info.name, tensors->size());
      tensors->push_back(std::move(info));
    }

    auto data_start = align_up(reader_.position(), *alignment);
    if (!data_start) return data_loss("general.alignment: data section start overflows");
    return place_tensors(*data_start, *alignment, tensors);
  }

 private:
  Status read_string(const std::string& path, uint64_t max_len, std::string* out) {
    SEEK_ASSIGN_OR_RETURN(uint64_t len, reader_.read<uint64_t>(path));
    if (len > reader_.remaining()) {
      return data_loss("{}: string length {} exceeds the {} bytes left", path, len,
                       reader_.remaining());
    }
    if (len > max_len)
      return data_loss("{}: length {} exceeds the limit of {}", path, len, max_len);
    SEEK_ASSIGN_OR_RETURN(auto bytes, reader_.read_bytes(len, path));
    out->assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    return Status::ok_status();
  }

  template <typename T>
  Result<T> read_scalar(const std::string& path) {
    return reader_.read<T>(path);
  }

  Status read_value(GgufType type, int depth, std::string& path, GgufValue* out) {
    if (++n_values_ > kGgufMaxMetadataValues) {
      return data_loss("{}: more than {} metadata values in the file", path,
                       kGgufMaxMetadataValues);
    }
    out->type = type;
    switch (type) {
      case GgufType::kU8: {
        SEEK_ASSIGN_OR_RETURN(out->u, read_scalar<uint8_t>(path));
        break;
      }
      case GgufType::kI8: {
        SEEK_ASSIGN_OR_RETURN(out->i, read_scalar<int8_t>(path));
        break;
      }
      case GgufType::kU16: {
        SEEK_ASSIGN_OR_RETURN(out->u, read_scalar<uint16_t>(path));
        break;
      }
      case GgufType::kI16: {
        SEEK_ASSIGN_OR_RETURN(out->i, read_scalar<int16_t>(path));
        break;
      }
      case GgufType::kU32: {
        SEEK_ASSIGN_OR_RETURN(out->u, read_scalar<uint32_t>(path));
        break;
      }
      case GgufType::kI32: {
        SEEK_ASSIGN_OR_RETURN(out->i, read_scalar<int32_t>(path));
        break;
      }
      case GgufType::kU64: {
        SEEK_ASSIGN_OR_RETURN(out->u, read_scalar<uint64_t>(path));
        break;
      }
      case GgufType::kI64: {
        SEEK_ASSIGN_OR_RETURN(out->i, read_scalar<int64_t>(path));
        break;
      }
      case GgufType::kF32: {
        SEEK_ASSIGN_OR_RETURN(out->f, read_scalar<float>(path));
        break;
      }
      case GgufType::kF64: {
        SEEK_ASSIGN_OR_RETURN(out->f, read_scalar<double>(path));
        break;
      }
      case GgufType::kBool: {
        SEEK_ASSIGN_OR_RETURN(uint8_t b, read_scalar<uint8_t>(path));
        if (b > 1) return data_loss("{}: bool value {} is neither 0 nor 1", path, b);
        out->b = b != 0;
        break;
      }
      case GgufType::kString:
        return read_string(path, std::numeric_limits<uint64_t>::max(), &out->str);
      case GgufType::kArray:
        return read_array(depth, path, out);
    }
    return Status::ok_status();
  }

  Status read_array(int depth, std::string& path, GgufValue* out) {
    if (depth >= kGgufMaxArrayDepth) {
      return data_loss("{}: arrays nested deeper than {}", path, kGgufMaxArrayDepth);
    }
    SEEK_ASSIGN_OR_RETURN(uint32_t elem_type, reader_.read<uint32_t>(path + " element type"));
    if (!is_valid_type(elem_type)) {
      return data_loss("{}: unknown array element type {}", path, elem_type);
    }
    out->array_type = static_cast<GgufType>(elem_type);
    SEEK_ASSIGN_OR_RETURN(uint64_t count, reader_.read<uint64_t>(path + " count"));
    uint64_t min_bytes = min_value_bytes(out->array_type);
    if (count > reader_.remaining() / min_bytes) {
      return data_loss("{}: array of {} {} values cannot fit in the {} bytes left", path, count,
                       gguf_type_name(out->array_type), reader_.remaining());
    }
    if (count > kGgufMaxMetadataValues - n_values_) {
      return data_loss("{}: array of {} values exceeds the limit of {} metadata values", path,
                       count, kGgufMaxMetadataValues);
    }
    out->array.resize(count);
    size_t base = path.size();
    for (uint64_t i = 0; i < count; ++i) {
      append_index(path, i);
      Status s = read_value(out->array_type, depth + 1, path, &out->array[i]);
      if (!s.ok()) return s;
      path.resize(base);
    }
    return Status::ok_status();
  }

  Status read_tensor_info(uint64_t index, GgufTensorInfo* info,
                          const std::map<std::string, size_t, std::less<>>* tensor_index) {
    std::string path = "tensor";
    append_index(path, index);
    path += " name";
    SEEK_RETURN_IF_ERROR(read_string(path, kGgufMaxNameBytes, &info->name));
    if (info->name.empty()) return data_loss("{}: empty tensor name", path);
    path = "tensor " + quoted(info->name);
    if (tensor_index->contains(info->name)) return data_loss("{}: duplicate tensor name", path);

    SEEK_ASSIGN_OR_RETURN(uint32_t n_dims, reader_.read<uint32_t>(path + " n_dims"));
    if (n_dims < 1 || n_dims > kGgufMaxDims) {
      return data_loss("{}: n_dims {} is outside 1..{}", path, n_dims, kGgufMaxDims);
    }
    info->dims.resize(n_dims);
    uint64_t n_elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      SEEK_ASSIGN_OR_RETURN(uint64_t dim, reader_.read<uint64_t>(path + " dims"));
      info->dims[d] = dim;
    }
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t dim = info->dims[d];
      if (dim == 0) return data_loss("{}: dimension {} is zero", path, d);
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
          __builtin_mul_overflow(n_elements, dim, &n_elements) ||
          n_elements > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return data_loss("{}: element count of dims [{}] overflows", path,
                         fmt::join(info->dims, ", "));
      }
    }
    info->n_elements = n_elements;

    SEEK_ASSIGN_OR_RETURN(uint32_t ggml_type, reader_.read<uint32_t>(path + " type"));
    auto dtype = dtype_from_ggml_type(ggml_type);
    if (!dtype) {
      return data_loss(
          "{}: unsupported ggml type {} ({}); seekserve reads f32, f16, bf16, q8_0, "
          "q4_0 and q4_k",
          path, ggml_type, ggml_type_name(ggml_type));
    }
    info->dtype = *dtype;
    const DTypeInfo& dinfo = dtype_info(*dtype);
    if (info->dims[0] % dinfo.block_elements != 0) {
      return data_loss("{}: innermost dimension {} is not a multiple of the {} block size {}", path,
                       info->dims[0], dinfo.name, dinfo.block_elements);
    }
    auto n_bytes = dtype_bytes(*dtype, n_elements);
    if (!n_bytes) return data_loss("{}: byte size of {} elements overflows", path, n_elements);
    info->n_bytes = *n_bytes;
    SEEK_ASSIGN_OR_RETURN(info->offset, reader_.read<uint64_t>(path + " offset"));
    return Status::ok_status();
  }

  Status place_tensors(uint64_t data_start, uint64_t alignment,
                       std::vector<GgufTensorInfo>* tensors) {
    for (GgufTensorInfo& t : *tensors) {
      if (t.offset % alignment != 0) {
        return data_loss("tensor {}: offset {} is not a multiple of the alignment {}",
                         quoted(t.name), t.offset, alignment);
      }
      uint64_t begin, end;
      if (__builtin_add_overflow(data_start, t.offset, &begin) ||
          __builtin_add_overflow(begin, t.n_bytes, &end) || end > bytes_.size()) {
        return data_loss(
            "tensor {}: {} bytes at offset {} (data section at {}) extend past the end of the "
            "file ({} bytes)",
            quoted(t.name), t.n_bytes, t.offset, data_start, bytes_.size());
      }
      t.data = bytes_.data() + begin;
    }
    std::vector<size_t> order(tensors->size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      // Ties broken by file order so the message names the later tensor, deterministically.
      return std::pair((*tensors)[a].offset, a) < std::pair((*tensors)[b].offset, b);
    });
    for (size_t k = 1; k < order.size(); ++k) {
      const GgufTensorInfo& prev = (*tensors)[order[k - 1]];
      const GgufTensorInfo& cur = (*tensors)[order[k]];
      if (prev.offset + prev.n_bytes > cur.offset) {  // no overflow: both end inside the file
        return data_loss("tensor {}: data at offset {} overlaps tensor {} (offset {}, {} bytes)",
                         quoted(cur.name), cur.offset, quoted(prev.name), prev.offset,
                         prev.n_bytes);
      }
    }
    return Status::ok_status();
  }

  std::span<const uint8_t> bytes_;
  ByteReader reader_;
  uint64_t n_values_ = 0;
};

// ---- writing ----

class Encoder {
 public:
  explicit Encoder(std::string* out) : out_(out) {}

  template <typename T>
  void put(T v) {
    out_->append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  void put_string(std::string_view s) {
    put<uint64_t>(s.size());
    out_->append(s);
  }

  Status put_value(const GgufValue& v, int depth, const std::string& key) {
    if (++n_values_ > kGgufMaxMetadataValues) {
      return invalid_argument("key '{}': more than {} metadata values", key,
                              kGgufMaxMetadataValues);
    }
    auto range_error = [&](auto value) {
      return invalid_argument("key '{}': value {} does not fit {}", key, value,
                              gguf_type_name(v.type));
    };
    switch (v.type) {
      case GgufType::kU8:
        if (v.u > std::numeric_limits<uint8_t>::max()) return range_error(v.u);
        put<uint8_t>(static_cast<uint8_t>(v.u));
        break;
      case GgufType::kI8:
        if (v.i < INT8_MIN || v.i > INT8_MAX) return range_error(v.i);
        put<int8_t>(static_cast<int8_t>(v.i));
        break;
      case GgufType::kU16:
        if (v.u > std::numeric_limits<uint16_t>::max()) return range_error(v.u);
        put<uint16_t>(static_cast<uint16_t>(v.u));
        break;
      case GgufType::kI16:
        if (v.i < INT16_MIN || v.i > INT16_MAX) return range_error(v.i);
        put<int16_t>(static_cast<int16_t>(v.i));
        break;
      case GgufType::kU32:
        if (v.u > std::numeric_limits<uint32_t>::max()) return range_error(v.u);
        put<uint32_t>(static_cast<uint32_t>(v.u));
        break;
      case GgufType::kI32:
        if (v.i < INT32_MIN || v.i > INT32_MAX) return range_error(v.i);
        put<int32_t>(static_cast<int32_t>(v.i));
        break;
      case GgufType::kU64:
        put<uint64_t>(v.u);
        break;
      case GgufType::kI64:
        put<int64_t>(v.i);
        break;
      case GgufType::kF32:
        put<float>(static_cast<float>(v.f));
        break;
      case GgufType::kF64:
        put<double>(v.f);
        break;
      case GgufType::kBool:
        put<uint8_t>(v.b ? 1 : 0);
        break;
      case GgufType::kString:
        put_string(v.str);
        break;
      case GgufType::kArray: {
        if (depth >= kGgufMaxArrayDepth) {
          return invalid_argument("key '{}': arrays nested deeper than {}", key,
                                  kGgufMaxArrayDepth);
        }
        if (!is_valid_type(static_cast<uint32_t>(v.array_type))) {
          return invalid_argument("key '{}': invalid array element type {}", key,
                                  static_cast<uint32_t>(v.array_type));
        }
        put<uint32_t>(static_cast<uint32_t>(v.array_type));
        put<uint64_t>(v.array.size());
        for (size_t i = 0; i < v.array.size(); ++i) {
          if (v.array[i].type != v.array_type) {
            return invalid_argument("key '{}': array element {} is {} in an array of {}", key, i,
                                    gguf_type_name(v.array[i].type), gguf_type_name(v.array_type));
          }
          SEEK_RETURN_IF_ERROR(put_value(v.array[i], depth + 1, key));
        }
        break;
      }
      default:
        return invalid_argument("key '{}': invalid value type {}", key,
                                static_cast<uint32_t>(v.type));
    }
    return Status::ok_status();
  }

 private:
  std::string* out_;
  uint64_t n_values_ = 0;
};

// Appends to a file descriptor, counting bytes; the first failure sticks.
class FileSink {
 public:
  FileSink(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}

  Status write(const void* data, size_t n) {
    const uint8_t* p = static_cast<const uint8_t*>(data);
    while (n > 0) {
      ssize_t w = ::write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        return io_error("{}: write failed: {}", path_, std::strerror(errno));
      }
      p += w;
      n -= static_cast<size_t>(w);
      written_ += static_cast<uint64_t>(w);
    }
    return Status::ok_status();
  }

  Status pad_to(uint64_t target) {
    static constexpr uint8_t kZeros[4096] = {};
    while (written_ < target) {
      SEEK_RETURN_IF_ERROR(write(kZeros, std::min<uint64_t>(sizeof(kZeros), target - written_)));
    }
    return Status::ok_status();
  }

  uint64_t written() const { return written_; }

 private:
  int fd_;
  std::string path_;
  uint64_t written_ = 0;
};

}  // namespace

// ---- names ----

std::string_view gguf_type_name(GgufType type) {
  switch (type) {
    case GgufType::kU8:
      return "u8";
    case GgufType::kI8:
      return "i8";
    case GgufType::kU16:
      return "u16";
    case GgufType::kI16:
      return "i16";
    case GgufType::kU32:
      return "u32";
    case GgufType::kI32:
      return "i32";
    case GgufType::kF32:
      return "f32";
    case GgufType::kBool:
      return "bool";
    case GgufType::kString:
      return "string";
    case GgufType::kArray:
      return "array";
    case GgufType::kU64:
      return "u64";
    case GgufType::kI64:
      return "i64";
    case GgufType::kF64:
      return "f64";
  }
  return "invalid";
}

std::optional<DType> dtype_from_ggml_type(uint32_t ggml_type) {
  switch (ggml_type) {
    case 0:
      return DType::kF32;
    case 1:
      return DType::kF16;
    case 2:
      return DType::kQ4_0;
    case 8:
      return DType::kQ8_0;
    case 12:
      return DType::kQ4_K;
    case 30:
      return DType::kBF16;
    default:
      return std::nullopt;
  }
}

std::optional<uint32_t> ggml_type_from_dtype(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return 0;
    case DType::kF16:
      return 1;
    case DType::kQ4_0:
      return 2;
    case DType::kQ8_0:
      return 8;
    case DType::kQ4_K:
      return 12;
    case DType::kBF16:
      return 30;
    default:
      return std::nullopt;
  }
}

std::string_view ggml_type_name(uint32_t ggml_type) {
  static constexpr std::string_view kNames[] = {
      "f32",
      "f16",
      "q4_0",
      "q4_1",
      "q4_2 (removed)",
      "q4_3 (removed)",
      "q5_0",
      "q5_1",
      "q8_0",
      "q8_1",
      "q2_k",
      "q3_k",
      "q4_k",
      "q5_k",
      "q6_k",
      "q8_k",
      "iq2_xxs",
      "iq2_xs",
      "iq3_xxs",
      "iq1_s",
      "iq4_nl",
      "iq3_s",
      "iq2_s",
      "iq4_xs",
      "i8",
      "i16",
      "i32",
      "i64",
      "f64",
      "iq1_m",
      "bf16",
  };
  if (ggml_type < std::size(kNames)) return kNames[ggml_type];
  if (ggml_type == 34) return "tq1_0";
  if (ggml_type == 35) return "tq2_0";
  if (ggml_type == 39) return "mxfp4";
  return "unknown";
}

// ---- GgufValue ----

std::optional<int64_t> GgufValue::as_int() const {
  if (is_unsigned(type)) {
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (is_signed(type)) return i;
  if (type == GgufType::kBool) return b ? 1 : 0;
  return std::nullopt;
}

std::optional<double> GgufValue::as_float() const {
  if (is_float(type)) return f;
  if (is_unsigned(type)) return static_cast<double>(u);
  if (is_signed(type)) return static_cast<double>(i);
  return std::nullopt;
}

GgufValue GgufValue::from_u32(uint32_t v) {
  GgufValue out;
  out.type = GgufType::kU32;
  out.u = v;
  return out;
}

GgufValue GgufValue::from_i32(int32_t v) {
  GgufValue out;
  out.type = GgufType::kI32;
  out.i = v;
  return out;
}

GgufValue GgufValue::from_u64(uint64_t v) {
  GgufValue out;
  out.type = GgufType::kU64;
  out.u = v;
  return out;
}

GgufValue GgufValue::from_f32(float v) {
  GgufValue out;
  out.type = GgufType::kF32;
  out.f = v;
  return out;
}

GgufValue GgufValue::from_bool(bool v) {
  GgufValue out;
  out.type = GgufType::kBool;
  out.b = v;
  return out;
}

GgufValue GgufValue::from_string(std::string v) {
  GgufValue out;
  out.type = GgufType::kString;
  out.str = std::move(v);
  return out;
}

GgufValue GgufValue::from_strings(std::vector<std::string> v) {
  GgufValue out;
  out.type = GgufType::kArray;
  out.array_type = GgufType::kString;
  out.array.reserve(v.size());
  for (std::string& s : v) out.array.push_back(from_string(std::move(s)));
  return out;
}

GgufValue GgufValue::from_i32s(const std::vector<int32_t>& v) {
  GgufValue out;
  out.type = GgufType::kArray;
  out.array_type = GgufType::kI32;
  out.array.reserve(v.size());
  for (int32_t x : v) out.array.push_back(from_i32(x));
  return out;
}

GgufValue GgufValue::from_f32s(const std::vector<float>& v) {
  GgufValue out;
  out.type = GgufType::kArray;
  out.array_type = GgufType::kF32;
  out.array.reserve(v.size());
  for (float x : v) out.array.push_back(from_f32(x));
  return out;
}

GgufValue GgufValue::array_of(GgufType element_type, std::vector<GgufValue> elements) {
  GgufValue out;
  out.type = GgufType::kArray;
  out.array_type = element_type;
  out.array = std::move(elements);
  return out;
}

// ---- GgufFile ----

Result<GgufFile> GgufFile::open(const std::string& path, const MapOptions& map) {
  SEEK_ASSIGN_OR_RETURN(MappedFile mapped, MappedFile::open(path, map));
  GgufFile file;
  file.name_ = path;
  file.file_ = std::move(mapped);
  SEEK_RETURN_IF_ERROR(file.parse_impl(file.file_.bytes()));
  return file;
}

Result<GgufFile> GgufFile::parse(std::span<const uint8_t> bytes, const std::string& name) {
  GgufFile file;
  file.name_ = name;
  SEEK_RETURN_IF_ERROR(file.parse_impl(bytes));
  return file;
}

Status GgufFile::parse_impl(std::span<const uint8_t> bytes) {
  file_size_ = bytes.size();
  Parser parser(bytes);
  Status s =
      parser.parse(&version_, &alignment_, &metadata_, &metadata_index_, &tensors_, &tensor_index_);
  if (!s.ok()) return Status(StatusCode::kDataLoss, fmt::format("{}: {}", name_, s.message()));
  return Status::ok_status();
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = metadata_index_.find(key);
  return it == metadata_index_.end() ? nullptr : &metadata_[it->second].second;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

Result<const GgufValue*> GgufFile::require(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return not_found("{}: key '{}': missing", name_, key);
  return v;
}

namespace {

Status wrong_type(const std::string& file, std::string_view key, std::string_view expected,
                  const GgufValue& v) {
  return data_loss("{}: key '{}': expected {}, found {}", file, key, expected, type_description(v));
}

Result<int64_t> int_of(const std::string& file, std::string_view key, const GgufValue& v) {
  if (auto x = v.as_int()) return *x;
  if (is_unsigned(v.type)) return data_loss("{}: key '{}': {} does not fit int64", file, key, v.u);
  return wrong_type(file, key, "an integer", v);
}

Result<double> float_of(const std::string& file, std::string_view key, const GgufValue& v) {
  if (auto x = v.as_float()) return *x;
  return wrong_type(file, key, "a number", v);
}

}  // namespace

Result<int64_t> GgufFile::get_int(std::string_view key) const {
  SEEK_ASSIGN_OR_RETURN(const GgufValue* v, require(key));
  return int_of(name_, key, *v);
}

Result<double> GgufFile::get_float(std::string_view key) const {
  SEEK_ASSIGN_OR_RETURN(const GgufValue* v, require(key));
  return float_of(name_, key, *v);
}

Result<bool> GgufFile::get_bool(std::string_view key) const {
  SEEK_ASSIGN_OR_RETURN(const GgufValue* v, require(key));
  if (v->type != GgufType::kBool) return wrong_type(name_, key, "a bool", *v);
  return v->b;
}

Result<std::string> GgufFile::get_string(std::string_view key) const {
  SEEK_ASSIGN_OR_RETURN(const GgufValue* v, require(key));
  if (v->type != GgufType::kString) return wrong_type(name_, key, "a string", *v);
  return v->str;
}

Result<std::vector<std::string>> GgufFile::get_string_array(std::string_view key) const {
  SEEK_ASSIGN_OR_RETURN(const GgufValue* v, require(key));
  if (v->type != GgufType::kArray || v->array_type != GgufType::kString) {
    return wrong_type(name_, key, "an array of string", *v);
  }
  std::vector<std::string> out;
  out.reserve(v->array.size());
  for (const GgufValue& e : v->array) out.push_back(e.str);
  return out;
}

Result<std::vector<int64_t>> GgufFile::get_int_array(std::string_view key) const {
  SEEK_ASSIGN_OR_RETURN(const GgufValue* v, require(key));
  if (v->type != GgufType::kArray || !(is_unsigned(v->array_type) || is_signed(v->array_type) ||
                                       v->array_type == GgufType::kBool)) {
    return wrong_type(name_, key, "an array of integers", *v);
  }
  std::vector<int64_t> out;
  out.reserve(v->array.size());
  for (const GgufValue& e : v->array) {
    SEEK_ASSIGN_OR_RETURN(int64_t x, int_of(name_, key, e));
    out.push_back(x);
  }
  return out;
}

Result<std::vector<float>> GgufFile::get_float_array(std::string_view key) const {
  SEEK_ASSIGN_OR_RETURN(const GgufValue* v, require(key));
  if (v->type != GgufType::kArray ||
      !(is_float(v->array_type) || is_unsigned(v->array_type) || is_signed(v->array_type))) {
    return wrong_type(name_, key, "an array of numbers", *v);
  }
  std::vector<float> out;
  out.reserve(v->array.size());
  for (const GgufValue& e : v->array) out.push_back(static_cast<float>(*e.as_float()));
  return out;
}

Result<int64_t> GgufFile::get_int_or(std::string_view key, int64_t fallback) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return fallback;
  return int_of(name_, key, *v);
}

Result<double> GgufFile::get_float_or(std::string_view key, double fallback) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return fallback;
  return float_of(name_, key, *v);
}

Result<bool> GgufFile::get_bool_or(std::string_view key, bool fallback) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return fallback;
  return get_bool(key);
}

Result<std::string> GgufFile::get_string_or(std::string_view key, std::string fallback) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return fallback;
  return get_string(key);
}

// ---- GgufWriter ----

void GgufWriter::set(const std::string& key, GgufValue value) {
  for (auto& [k, v] : metadata_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  metadata_.emplace_back(key, std::move(value));
}

Status GgufWriter::add_tensor(const std::string& name, DType dtype, std::vector<uint64_t> dims,
                              Fill fill) {
  if (name.empty()) return invalid_argument("GGUF tensor: empty name");
  if (name.size() > kGgufMaxNameBytes) {
    return invalid_argument("GGUF tensor '{}...': name longer than {} bytes", name.substr(0, 64),
                            kGgufMaxNameBytes);
  }
  for (const PendingTensor& t : tensors_) {
    if (t.name == name) return invalid_argument("GGUF tensor '{}': added twice", name);
  }
  if (tensors_.size() >= kGgufMaxTensors) {
    return invalid_argument("GGUF tensor '{}': more than {} tensors", name, kGgufMaxTensors);
  }
  if (!ggml_type_from_dtype(dtype)) {
    return invalid_argument("GGUF tensor '{}': type {} cannot be stored in GGUF", name,
                            dtype_name(dtype));
  }
  if (dims.empty() || dims.size() > kGgufMaxDims) {
    return invalid_argument("GGUF tensor '{}': {} dims, expected 1..{}", name, dims.size(),
                            kGgufMaxDims);
  }
  uint64_t n_elements = 1;
  for (uint64_t d : dims) {
    if (d == 0) return invalid_argument("GGUF tensor '{}': a dimension is zero", name);
    if (__builtin_mul_overflow(n_elements, d, &n_elements) ||
        n_elements > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return invalid_argument("GGUF tensor '{}': element count overflows", name);
    }
  }
  const DTypeInfo& info = dtype_info(dtype);
  if (dims[0] % info.block_elements != 0) {
    return invalid_argument(
        "GGUF tensor '{}': innermost dimension {} is not a multiple of the {} "
        "block size {}",
        name, dims[0], info.name, info.block_elements);
  }
  auto n_bytes = dtype_bytes(dtype, n_elements);
  if (!n_bytes) return invalid_argument("GGUF tensor '{}': byte size overflows", name);
  if (!fill) return invalid_argument("GGUF tensor '{}': no fill function", name);
  tensors_.push_back(PendingTensor{name, dtype, std::move(dims), *n_bytes, std::move(fill)});
  return Status::ok_status();
}

Status GgufWriter::write(const std::string& path) const {
  uint64_t alignment = kGgufDefaultAlignment;
  for (const auto& [key, value] : metadata_) {
    if (key != "general.alignment") continue;
    auto a = value.as_int();
    if (value.type == GgufType::kBool || !a || *a <= 0 ||
        !std::has_single_bit(static_cast<uint64_t>(*a)) ||
        static_cast<uint64_t>(*a) > kMaxWriteAlignment) {
      return invalid_argument("{}: general.alignment must be an integer power of two <= {}", path,
                              kMaxWriteAlignment);
    }
    alignment = static_cast<uint64_t>(*a);
  }

  // Header, metadata and tensor infos are small next to the data: build them in memory.
  std::string header;
  Encoder enc(&header);
  header.append(reinterpret_cast<const char*>(kMagic), 4);
  enc.put<uint32_t>(kWriteVersion);
  enc.put<uint64_t>(tensors_.size());
  enc.put<uint64_t>(metadata_.size());
  for (const auto& [key, value] : metadata_) {
    if (key.empty() || key.size() > kGgufMaxNameBytes) {
      return invalid_argument("{}: metadata key of {} bytes (must be 1..{})", path, key.size(),
                              kGgufMaxNameBytes);
    }
    enc.put_string(key);
    enc.put<uint32_t>(static_cast<uint32_t>(value.type));
    Status s = enc.put_value(value, 0, key);
    if (!s.ok()) return s.with_context(path);
  }
  std::vector<uint64_t> offsets;
  offsets.reserve(tensors_.size());
  uint64_t data_size = 0;
  for (const PendingTensor& t : tensors_) {
    offsets.push_back(data_size);
    enc.put_string(t.name);
    enc.put<uint32_t>(static_cast<uint32_t>(t.dims.size()));
    for (uint64_t d : t.dims) enc.put<uint64_t>(d);
    enc.put<uint32_t>(*ggml_type_from_dtype(t.dtype));
    enc.put<uint64_t>(data_size);
    auto next = align_up(data_size + t.n_bytes, alignment);
    if (!next || data_size + t.n_bytes < data_size) {
      return invalid_argument("{}: total tensor data size overflows", path);
    }
    data_size = *next;
  }
  uint64_t data_start = *align_up(header.size(), alignment);

  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return io_error("{}: cannot create: {}", tmp, std::strerror(errno));
  auto fail = [&](Status s) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  };
  FileSink sink(fd, tmp);
  if (Status s = sink.write(header.data(), header.size()); !s.ok()) return fail(s);
  header = std::string();  // the tokenizer arrays can make it a few MB: free before the data
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const PendingTensor& t = tensors_[i];
    if (Status s = sink.pad_to(data_start + offsets[i]); !s.ok()) return fail(s);
    std::vector<uint8_t> buffer(t.n_bytes);
    t.fill(std::span<uint8_t>(buffer));
    if (Status s = sink.write(buffer.data(), buffer.size()); !s.ok()) return fail(s);
  }
  if (::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return io_error("{}: close failed: {}", tmp, std::strerror(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return io_error("{}: rename failed: {}", path, std::strerror(err));
  }
  return Status::ok_status();
}

}  // namespace seekserve
