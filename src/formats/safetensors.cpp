#include "formats/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <tuple>
#include <utility>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "core/byte_reader.h"

namespace seekserve {
namespace {

using Json = nlohmann::json;

// The reference reader's limit on the JSON header.
constexpr uint64_t kMaxHeaderBytes = 100ull * 1000 * 1000;
// A valid header nests three deep (root, entry, shape). Anything much deeper is hostile; the
// limit keeps a header of a million '[' from costing gigabytes in the DOM parser.
constexpr int kMaxJsonDepth = 16;
constexpr const char* kIndexName = "model.safetensors.index.json";

struct DTypeName {
  DType dtype;
  std::string_view name;
};
constexpr DTypeName kDTypeNames[] = {
    {DType::kF32, "F32"}, {DType::kF16, "F16"}, {DType::kBF16, "BF16"}, {DType::kF8E4M3, "F8_E4M3"},
    {DType::kI8, "I8"},   {DType::kU8, "U8"},   {DType::kI16, "I16"},   {DType::kI32, "I32"},
    {DType::kI64, "I64"}, {DType::kF64, "F64"}, {DType::kBool, "BOOL"},
};
// Valid in the format, not handled here: named in the error so the user knows why.
constexpr std::string_view kKnownUnsupported[] = {"F8_E5M2", "F8_E8M0", "F4",  "F6_E2M3", "F6_E3M2",
                                                  "U16",     "U32",     "U64", "C64"};

// Rejects nesting deeper than kMaxJsonDepth before the DOM parser sees the text.
Status check_json_depth(std::string_view text, const std::string& name) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > kMaxJsonDepth) {
        return data_loss("{}: header JSON nests deeper than {} levels", name, kMaxJsonDepth);
      }
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return Status::ok_status();
}

// Parses the header, rejecting duplicate keys in any object (nlohmann would keep the last one
// silently; a repeated tensor name is a corrupt file).
Result<Json> parse_header_json(std::string_view text, const std::string& name) {
  SEEK_RETURN_IF_ERROR(check_json_depth(text, name));
  std::vector<std::set<std::string>> open_objects;
  std::string current_tensor;
  std::string duplicate_error;
  auto callback = [&](int /*depth*/, Json::parse_event_t event, Json& parsed) -> bool {
    switch (event) {
      case Json::parse_event_t::object_start:
        open_objects.emplace_back();
        break;
      case Json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case Json::parse_event_t::key: {
        if (open_objects.empty() || !parsed.is_string()) break;
        const std::string& key = parsed.get_ref<const std::string&>();
        if (open_objects.size() == 1) current_tensor = key;
        if (!open_objects.back().insert(key).second && duplicate_error.empty()) {
          duplicate_error =
              open_objects.size() == 1
                  ? fmt::format("tensor '{}' appears twice in the header", key)
                  : fmt::format("tensor '{}': key '{}' appears twice", current_tensor, key);
        }
        break;
      }
      default:
        break;
    }
    return true;
  };
  Json header;
  try {
    header = Json::parse(text.begin(), text.end(), callback);
  } catch (const Json::exception& e) {
    return data_loss("{}: header is not valid JSON: {}", name, e.what());
  }
  if (!duplicate_error.empty()) return data_loss("{}: {}", name, duplicate_error);
  if (!header.is_object()) return data_loss("{}: header JSON is not an object", name);
  return header;
}

// A non-negative JSON integer; nullopt for negative, fractional, non-numbers.
std::optional<uint64_t> json_u64(const Json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) {
    int64_t x = v.get<int64_t>();
    if (x >= 0) return static_cast<uint64_t>(x);
  }
  return std::nullopt;
}

struct ParsedFile {
  std::vector<SafetensorsTensor> tensors;  // data-offset order
  std::map<std::string, std::string> metadata;
};

Status parse_metadata(const Json& value, const std::string& name,
                      std::map<std::string, std::string>& out) {
  if (!value.is_object()) return data_loss("{}: __metadata__ is not an object", name);
  for (const auto& [key, v] : value.items()) {
    if (!v.is_string()) {
      return data_loss("{}: __metadata__ key '{}': value is not a string", name, key);
    }
    out[key] = v.get<std::string>();
  }
  return Status::ok_status();
}

struct Entry {
  SafetensorsTensor tensor;
  uint64_t begin = 0;
  uint64_t end = 0;
};

Result<Entry> parse_entry(const std::string& tensor_name, const Json& value,
                          const std::string& name, uint64_t data_size) {
  auto bad = [&](const std::string& what) {
    return data_loss("{}: tensor '{}': {}", name, tensor_name, what);
  };
  if (!value.is_object()) return bad("entry is not an object");
  Entry entry;
  entry.tensor.name = tensor_name;
  entry.tensor.file = name;

  auto dtype_it = value.find("dtype");
  if (dtype_it == value.end()) return bad("no dtype");
  if (!dtype_it->is_string()) return bad("dtype is not a string");
  const std::string& dtype_name = dtype_it->get_ref<const std::string&>();
  std::optional<DType> dtype = dtype_from_safetensors_name(dtype_name);
  if (!dtype) {
    bool known = std::find(std::begin(kKnownUnsupported), std::end(kKnownUnsupported),
                           dtype_name) != std::end(kKnownUnsupported);
    return bad(fmt::format("{} dtype '{}'", known ? "unsupported" : "unknown", dtype_name));
  }
  entry.tensor.dtype = *dtype;

  auto shape_it = value.find("shape");
  if (shape_it == value.end()) return bad("no shape");
  if (!shape_it->is_array()) return bad("shape is not an array");
  uint64_t n_elements = 1;
  for (const Json& dim : *shape_it) {
    std::optional<uint64_t> d = json_u64(dim);
    if (!d || *d > static_cast<uint64_t>(INT64_MAX)) {
      return bad(fmt::format("shape dim {} is not a non-negative integer", dim.dump()));
    }
    if (__builtin_mul_overflow(n_elements, *d, &n_elements)) {
      return bad(fmt::format("shape {} has too many elements", shape_it->dump()));
    }
    entry.tensor.shape.push_back(static_cast<int64_t>(*d));
  }
  std::optional<uint64_t> n_bytes = dtype_bytes(*dtype, n_elements);
  if (!n_bytes) return bad(fmt::format("shape {} has too many bytes", shape_it->dump()));

  auto offsets_it = value.find("data_offsets");
  if (offsets_it == value.end()) return bad("no data_offsets");
  if (!offsets_it->is_array() || offsets_it->size() != 2) {
    return bad("data_offsets is not an array of two integers");
  }
  std::optional<uint64_t> begin = json_u64((*offsets_it)[0]);
  std::optional<uint64_t> end = json_u64((*offsets_it)[1]);
  if (!begin || !end)
    return bad(fmt::format("data_offsets {} are not non-negative integers", offsets_it->dump()));
  if (*end < *begin) return bad(fmt::format("data_offsets end {} < begin {}", *end, *begin));
  if (*end - *begin != *n_bytes) {
    return bad(fmt::format("data_offsets [{}, {}) hold {} bytes but shape {} x {} needs {}", *begin,
                           *end, *end - *begin, shape_it->dump(), dtype_name, *n_bytes));
  }
  if (*end > data_size) {
    return bad(fmt::format("data_offsets [{}, {}) end beyond the data section ({} bytes)", *begin,
                           *end, data_size));
  }
  entry.begin = *begin;
  entry.end = *end;
  return entry;
}

Result<ParsedFile> parse_file(std::span<const uint8_t> bytes, const std::string& name) {
  ByteReader reader(bytes);
  Result<uint64_t> header_len = reader.read<uint64_t>("header length");
  if (!header_len.ok()) {
    return data_loss("{}: file of {} bytes is too short for the 8-byte header length", name,
                     bytes.size());
  }
  if (*header_len > kMaxHeaderBytes) {
    return data_loss("{}: header length {} exceeds the limit of {} bytes", name, *header_len,
                     kMaxHeaderBytes);
  }
  if (*header_len > reader.remaining()) {
    return data_loss("{}: header length {} runs past the end of the file ({} bytes)", name,
                     *header_len, bytes.size());
  }
  SEEK_ASSIGN_OR_RETURN(std::span<const uint8_t> header_bytes,
                        reader.read_bytes(*header_len, "header"));
  std::string_view header_text(reinterpret_cast<const char*>(header_bytes.data()),
                               header_bytes.size());
  SEEK_ASSIGN_OR_RETURN(Json header, parse_header_json(header_text, name));

  std::span<const uint8_t> data = bytes.subspan(reader.position());
  ParsedFile out;
  std::vector<Entry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      SEEK_RETURN_IF_ERROR(parse_metadata(value, name, out.metadata));
      continue;
    }
    SEEK_ASSIGN_OR_RETURN(Entry entry, parse_entry(key, value, name, data.size()));
    entries.push_back(std::move(entry));
  }

  // Like the reference reader: sorted by offset, the tensors must tile the data section.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
  });
  uint64_t expected = 0;
  const std::string* previous = nullptr;
  for (Entry& entry : entries) {
    if (entry.begin < expected) {
      return data_loss("{}: tensor '{}': data_offsets [{}, {}) overlap tensor '{}'", name,
                       entry.tensor.name, entry.begin, entry.end, *previous);
    }
    if (entry.begin > expected) {
      return data_loss("{}: tensor '{}': data_offsets [{}, {}) leave a gap of {} bytes before it",
                       name, entry.tensor.name, entry.begin, entry.end, entry.begin - expected);
    }
    entry.tensor.data = data.subspan(entry.begin, entry.end - entry.begin);
    expected = entry.end;
    previous = &entry.tensor.name;
  }
  if (expected != data.size()) {
    return data_loss("{}: {} bytes after the last tensor's data are not claimed by any tensor",
                     name, data.size() - expected);
  }
  out.tensors.reserve(entries.size());
  for (Entry& entry : entries) out.tensors.push_back(std::move(entry.tensor));
  return out;
}

// A shard name from the index must name a file inside the folder.
Status check_shard_name(const std::string& shard, const std::string& tensor,
                        const std::string& index_path) {
  if (shard.empty()) return data_loss("{}: tensor '{}': empty shard file name", index_path, tensor);
  std::filesystem::path p(shard);
  if (p.is_absolute() || shard.front() == '/') {
    return data_loss("{}: tensor '{}': shard '{}' is an absolute path", index_path, tensor, shard);
  }
  for (const auto& part : p) {
    if (part == "..") {
      return data_loss("{}: tensor '{}': shard '{}' leaves the model folder", index_path, tensor,
                       shard);
    }
  }
  return Status::ok_status();
}

}  // namespace

std::optional<DType> dtype_from_safetensors_name(std::string_view name) {
  for (const DTypeName& entry : kDTypeNames) {
    if (entry.name == name) return entry.dtype;
  }
  return std::nullopt;
}

std::string_view safetensors_name_from_dtype(DType dtype) {
  for (const DTypeName& entry : kDTypeNames) {
    if (entry.dtype == dtype) return entry.name;
  }
  return {};
}

Result<SafetensorsModel> SafetensorsModel::parse(std::span<const uint8_t> bytes,
                                                 const std::string& name) {
  SEEK_ASSIGN_OR_RETURN(ParsedFile parsed, parse_file(bytes, name));
  SafetensorsModel model;
  model.metadata_ = std::move(parsed.metadata);
  for (SafetensorsTensor& t : parsed.tensors) {
    model.by_name_[t.name] = model.tensors_.size();
    model.tensors_.push_back(std::move(t));
  }
  return model;
}

Result<SafetensorsModel> SafetensorsModel::open(const std::string& path, const MapOptions& map) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) return not_found("{}: no such file or folder", path);

  std::vector<std::string> shard_paths;
  // tensor -> shard path, from the index (empty without one).
  std::map<std::string, std::string> weight_map;
  std::string index_path;
  if (fs::is_directory(st)) {
    index_path = (fs::path(path) / kIndexName).string();
    if (fs::exists(index_path, ec)) {
      SEEK_ASSIGN_OR_RETURN(std::string text, read_text_file(index_path));
      Json index;
      try {
        index = Json::parse(text);
      } catch (const Json::exception& e) {
        return data_loss("{}: not valid JSON: {}", index_path, e.what());
      }
      auto wm = index.is_object() ? index.find("weight_map") : index.end();
      if (!index.is_object() || wm == index.end() || !wm->is_object()) {
        return data_loss("{}: weight_map: missing or not an object", index_path);
      }
      std::set<std::string> shards;
      for (const auto& [tensor, shard] : wm->items()) {
        if (!shard.is_string()) {
          return data_loss("{}: weight_map: tensor '{}': shard is not a string", index_path,
                           tensor);
        }
        const std::string& shard_name = shard.get_ref<const std::string&>();
        SEEK_RETURN_IF_ERROR(check_shard_name(shard_name, tensor, index_path));
        std::string shard_path = (fs::path(path) / shard_name).string();
        weight_map[tensor] = shard_path;
        shards.insert(shard_path);
      }
      if (shards.empty()) return data_loss("{}: weight_map names no tensors", index_path);
      shard_paths.assign(shards.begin(), shards.end());
    } else {
      index_path.clear();
      for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
        if (it->path().extension() == ".safetensors") shard_paths.push_back(it->path().string());
      }
      if (ec) return io_error("{}: cannot list: {}", path, ec.message());
      std::sort(shard_paths.begin(), shard_paths.end());
      if (shard_paths.empty()) {
        return not_found("{}: no {} and no *.safetensors files", path, kIndexName);
      }
    }
  } else {
    shard_paths.push_back(path);
  }

  SafetensorsModel model;
  for (const std::string& shard_path : shard_paths) {
    Result<MappedFile> mapped = MappedFile::open(shard_path, map);
    if (!mapped.ok()) {
      if (!index_path.empty()) return mapped.status().with_context(index_path + ": shard");
      return mapped.status();
    }
    auto file = std::make_unique<MappedFile>(std::move(mapped).value());
    SEEK_ASSIGN_OR_RETURN(ParsedFile parsed, parse_file(file->bytes(), shard_path));
    for (auto& [key, value] : parsed.metadata) model.metadata_.try_emplace(key, value);
    for (SafetensorsTensor& t : parsed.tensors) {
      auto [it, inserted] = model.by_name_.try_emplace(t.name, model.tensors_.size());
      if (!inserted) {
        return data_loss("{}: tensor '{}' is also in {}", shard_path, t.name,
                         model.tensors_[it->second].file);
      }
      model.tensors_.push_back(std::move(t));
    }
    model.files_.push_back(std::move(file));
  }

  for (const auto& [tensor, shard_path] : weight_map) {
    const SafetensorsTensor* t = model.find(tensor);
    if (t == nullptr) {
      return data_loss("{}: tensor '{}' is not in shard {}", index_path, tensor, shard_path);
    }
    if (t->file != shard_path) {
      return data_loss("{}: tensor '{}' is not in shard {} (found in {})", index_path, tensor,
                       shard_path, t->file);
    }
  }
  return model;
}

const SafetensorsTensor* SafetensorsModel::find(std::string_view name) const {
  auto it = by_name_.find(std::string(name));
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

Result<const SafetensorsTensor*> SafetensorsModel::scale_inv_for(
    const SafetensorsTensor& weight) const {
  if (weight.dtype != DType::kF8E4M3) return static_cast<const SafetensorsTensor*>(nullptr);
  const SafetensorsTensor* scale = find(weight.name + "_scale_inv");
  if (scale == nullptr) return scale;
  if (weight.shape.size() != 2) {
    return data_loss("{}: tensor '{}': FP8 weight with block scales must be 2-D, has {} dims",
                     weight.file, weight.name, weight.shape.size());
  }
  if (scale->dtype != DType::kF32) {
    return data_loss("{}: tensor '{}': dtype {} (block scales must be F32)", scale->file,
                     scale->name, safetensors_name_from_dtype(scale->dtype));
  }
  const int64_t rows = (weight.shape[0] + 127) / 128;
  const int64_t cols = (weight.shape[1] + 127) / 128;
  if (scale->shape != std::vector<int64_t>{rows, cols}) {
    return data_loss("{}: tensor '{}': shape [{}] but weight '{}' [{}, {}] needs [{}, {}]",
                     scale->file, scale->name, fmt::join(scale->shape, ", "), weight.name,
                     weight.shape[0], weight.shape[1], rows, cols);
  }
  return scale;
}

void SafetensorsWriter::set_metadata(const std::string& key, const std::string& value) {
  metadata_[key] = value;
}

Status SafetensorsWriter::add_tensor(const std::string& name, DType dtype,
                                     std::vector<int64_t> shape, Fill fill) {
  if (name.empty()) return invalid_argument("safetensors writer: empty tensor name");
  if (name == "__metadata__") {
    return invalid_argument("safetensors writer: '__metadata__' is reserved, not a tensor name");
  }
  for (const PendingTensor& t : tensors_) {
    if (t.name == name)
      return invalid_argument("safetensors writer: tensor '{}' added twice", name);
  }
  if (safetensors_name_from_dtype(dtype).empty()) {
    return invalid_argument("safetensors writer: tensor '{}': dtype {} has no safetensors name",
                            name, dtype_name(dtype));
  }
  uint64_t n_elements = 1;
  for (int64_t d : shape) {
    if (d < 0) return invalid_argument("safetensors writer: tensor '{}': negative dim {}", name, d);
    if (__builtin_mul_overflow(n_elements, static_cast<uint64_t>(d), &n_elements)) {
      return invalid_argument("safetensors writer: tensor '{}': too many elements", name);
    }
  }
  std::optional<uint64_t> n_bytes = dtype_bytes(dtype, n_elements);
  if (!n_bytes) return invalid_argument("safetensors writer: tensor '{}': too many bytes", name);
  tensors_.push_back({name, dtype, std::move(shape), *n_bytes, std::move(fill)});
  return Status::ok_status();
}

Status SafetensorsWriter::write(const std::string& path) const {
  Json header = Json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  uint64_t offset = 0;
  for (const PendingTensor& t : tensors_) {
    header[t.name] = {{"dtype", std::string(safetensors_name_from_dtype(t.dtype))},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.n_bytes}}};
    offset += t.n_bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t header_len = text.size();
  const uint64_t data_start = 8 + header_len;
  const uint64_t total = data_start + offset;

  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return io_error("{}: cannot create: {}", tmp, std::strerror(errno));
  auto fail = [&](Status status) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return status;
  };
  // Reserve every block up front: a full disk is an error here, not a SIGBUS in a mapping.
  if (total > 0) {
    int err = posix_fallocate(fd, 0, static_cast<off_t>(total));
    if (err != 0)
      return fail(io_error("{}: cannot reserve {} bytes: {}", tmp, total, std::strerror(err)));
  }
  std::string prefix(8, '\0');
  std::memcpy(prefix.data(), &header_len, 8);
  prefix += text;
  for (size_t done = 0; done < prefix.size();) {
    ssize_t n = ::pwrite(fd, prefix.data() + done, prefix.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail(io_error("{}: write failed: {}", tmp, std::strerror(errno)));
    done += static_cast<size_t>(n);
  }

  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  offset = data_start;
  for (const PendingTensor& t : tensors_) {
    if (t.n_bytes == 0) {
      if (t.fill) t.fill(std::span<uint8_t>());
      continue;
    }
    const uint64_t map_start = offset / page * page;
    const uint64_t map_len = offset + t.n_bytes - map_start;
    void* p = mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                   static_cast<off_t>(map_start));
    if (p == MAP_FAILED) {
      return fail(io_error("{}: cannot map tensor '{}': {}", tmp, t.name, std::strerror(errno)));
    }
    std::span<uint8_t> out(static_cast<uint8_t*>(p) + (offset - map_start), t.n_bytes);
    if (t.fill) t.fill(out);
    if (munmap(p, map_len) != 0) {
      return fail(io_error("{}: cannot unmap tensor '{}': {}", tmp, t.name, std::strerror(errno)));
    }
    offset += t.n_bytes;
  }
  if (::fsync(fd) != 0) return fail(io_error("{}: fsync failed: {}", tmp, std::strerror(errno)));
  if (::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return io_error("{}: close failed: {}", tmp, std::strerror(errno));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return io_error("{}: rename failed: {}", path, std::strerror(err));
  }
  return Status::ok_status();
}

}  // namespace seekserve
