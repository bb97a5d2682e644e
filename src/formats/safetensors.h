#pragma once
// safetensors reader (one file, or a sharded folder with model.safetensors.index.json) and
// writer. Layout: u64 header length N, N bytes of JSON {name: {dtype, shape, data_offsets}},
// optional "__metadata__", then the data. Like the reference reader, rejects a header over
// 100 MB, offsets that are out of bounds, overlapping or not contiguous, and byte sizes that do
// not equal shape x dtype size. Errors name the file and the tensor.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"
#include "core/status.h"

namespace seekserve {

// "F32", "F16", "BF16", "F8_E4M3", "I8", "U8", "I16", "I32", "I64", "F64", "BOOL" <-> DType.
// Exact (case-sensitive) names as the format defines them; nullopt for anything else, including
// valid safetensors dtypes this build does not handle (F8_E5M2, U16, U32, U64, ...).
std::optional<DType> dtype_from_safetensors_name(std::string_view name);
std::string_view safetensors_name_from_dtype(DType dtype);  // empty for block-quantised types

struct SafetensorsTensor {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;  // PyTorch order (outermost first), every dim >= 0
  // Exactly dtype_bytes(dtype, product of shape) bytes inside the mapping (or the caller's
  // buffer for parse()); valid while the SafetensorsModel lives. No alignment is promised.
  std::span<const uint8_t> data;
  std::string file;  // the shard it lives in (the path given to open, or parse's `name`)
};

class SafetensorsModel {
 public:
  // `path` is a .safetensors file, or a folder holding model.safetensors.index.json (sharded)
  // or *.safetensors files (all of them, in name order). Each shard is mapped once. A shard name
  // in the index must stay inside the folder (no absolute path, no ".." component); symlinks
  // are followed, as HF's cache layout needs. Every tensor the index names must be in the shard
  // it names; a tensor name found in two shards is an error. `map` says how the shards are held
  // (core/mapped_file.h: a mapping, or a private copy).
  static Result<SafetensorsModel> open(const std::string& path, const MapOptions& map = {});
  // Parses one file's bytes owned by the caller (fuzzer, tests).
  static Result<SafetensorsModel> parse(std::span<const uint8_t> bytes, const std::string& name);

  // Shard by shard (index order of shards: sorted by file name), each in data-offset order.
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const SafetensorsTensor* find(std::string_view name) const;
  // "__metadata__" of the file (for shards: merged, the first shard that sets a key wins).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // DeepSeek FP8 checkpoints: the float32 `<name>_scale_inv` of an F8_E4M3 weight, shape
  // [ceil(rows/128), ceil(cols/128)]. nullptr when the tensor is not FP8 or has none; an error
  // when present with the wrong dtype or shape.
  Result<const SafetensorsTensor*> scale_inv_for(const SafetensorsTensor& weight) const;

 private:
  std::vector<std::unique_ptr<MappedFile>> files_;
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, size_t> by_name_;
  std::map<std::string, std::string> metadata_;
};

// Writes one .safetensors file; tensor data is produced at write time by a fill callback.
// The header's keys are sorted (nlohmann's object order); data lies contiguously in the order
// tensors were added; the header is padded with spaces to a multiple of 8 bytes, as the
// reference writer does. write() reserves the whole file, then maps one tensor's range at a
// time and lets its fill callback write straight into the file (no second copy of a tensor in
// memory), then renames "<path>.tmp" over `path`.
class SafetensorsWriter {
 public:
  using Fill = std::function<void(std::span<uint8_t> out)>;

  void set_metadata(const std::string& key, const std::string& value);
  // shape in PyTorch order; `fill` receives exactly dtype_bytes(dtype, product) bytes, zeroed.
  // kInvalidArgument for an empty, reserved ("__metadata__") or repeated name, a dtype with no
  // safetensors name (block-quantised), a negative dim or a size that overflows.
  Status add_tensor(const std::string& name, DType dtype, std::vector<int64_t> shape, Fill fill);
  Status write(const std::string& path) const;

 private:
  struct PendingTensor {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    uint64_t n_bytes;
    Fill fill;
  };
  std::map<std::string, std::string> metadata_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace seekserve
