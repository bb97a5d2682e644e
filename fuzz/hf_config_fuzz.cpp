// libFuzzer target: config.json parsing on arbitrary text. An accepted config must also survive
// hf_config_to_json -> parse (what make-model relies on).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "formats/hf_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace seekserve;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  Result<ModelConfig> config = parse_hf_config(text, "fuzz.json");
  if (!config.ok()) return 0;
  Result<ModelConfig> again = parse_hf_config(hf_config_to_json(*config), "fuzz-out.json");
  if (!again.ok()) __builtin_trap();
  return 0;
}
