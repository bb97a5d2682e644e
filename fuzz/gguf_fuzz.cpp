// Fuzzes GgufFile::parse: any input must either parse into something whose every tensor byte
// range and metadata value can be read, or be rejected with a kDataLoss naming the input.
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "core/quant.h"
#include "formats/gguf.h"
#include "formats/gguf_model.h"

namespace {

volatile uint64_t g_sink = 0;

void touch(const seekserve::GgufValue& v) {
  // No float-to-integer cast: a hostile value (NaN, 1e300) would make it undefined.
  g_sink = g_sink + static_cast<uint64_t>(v.as_int().value_or(0)) +
           (v.as_float().value_or(0.0) > 0.0 ? 1 : 0);
  if (const std::string* s = v.as_string(); s != nullptr && !s->empty()) {
    g_sink = g_sink + static_cast<uint8_t>(s->front()) + static_cast<uint8_t>(s->back());
  }
  for (const seekserve::GgufValue& e : v.array) {
    if (e.type != v.array_type) std::abort();  // arrays are homogeneous by construction
    touch(e);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace seekserve;
  auto file = GgufFile::parse(std::span<const uint8_t>(data, size), "fuzz.gguf");
  if (!file.ok()) {
    if (file.status().code() != StatusCode::kDataLoss) std::abort();
    if (file.status().message().rfind("fuzz.gguf: ", 0) != 0) std::abort();
    return 0;
  }
  if (file->alignment() == 0 || (file->alignment() & (file->alignment() - 1)) != 0) std::abort();
  for (const auto& [key, value] : file->metadata()) {
    if (file->find(key) != &value) std::abort();
    touch(value);
  }
  // The getters must answer (value or error) for every key without trouble.
  for (const auto& [key, value] : file->metadata()) {
    g_sink = g_sink + file->get_int(key).ok() + file->get_float(key).ok() +
             file->get_string(key).ok() + file->get_string_array(key).ok() +
             file->get_int_array(key).ok() + file->get_float_array(key).ok();
  }
  // The model and tokenizer readers on top must answer (value or a data-loss error naming the
  // file) for any parsed file.
  for (auto status :
       {model_config_from_gguf(*file).status(), tokenizer_data_from_gguf(*file).status()}) {
    if (!status.ok() && status.message().rfind("fuzz.gguf: ", 0) != 0) std::abort();
  }
  std::vector<float> row;
  for (const GgufTensorInfo& t : file->tensors()) {
    if (file->find_tensor(t.name) != &t) std::abort();
    if (t.n_bytes == 0 || t.data < data || t.data + t.n_bytes > data + size) std::abort();
    g_sink = g_sink + t.data[0] + t.data[t.n_bytes - 1];
    // Decode the first row: exercises the reference dequantisers on hostile block contents.
    row.resize(t.dims[0]);
    dequantize_row(t.dtype, t.data, row.data(), static_cast<int64_t>(t.dims[0]));
    g_sink = g_sink + static_cast<uint64_t>(row.front() != row.back());
  }
  return 0;
}
