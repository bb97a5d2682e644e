// libFuzzer target: the safetensors parser on arbitrary bytes. Every accepted tensor's first and
// last byte is read, so ASan sees any span that points outside the input.
#include <cstddef>
#include <cstdint>
#include <span>

#include "formats/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace seekserve;
  Result<SafetensorsModel> model =
      SafetensorsModel::parse(std::span<const uint8_t>(data, size), "fuzz.safetensors");
  if (!model.ok()) return 0;
  volatile uint8_t sink = 0;
  for (const SafetensorsTensor& t : model->tensors()) {
    if (!t.data.empty()) sink = sink ^ t.data.front() ^ t.data.back();
    if (model->find(t.name) != &t) __builtin_trap();
    Result<const SafetensorsTensor*> scale = model->scale_inv_for(t);
    if (scale.ok() && *scale != nullptr && !(*scale)->data.empty()) {
      sink = sink ^ (*scale)->data.back();
    }
  }
  return 0;
}
