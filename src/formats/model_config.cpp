#include "formats/model_config.h"

namespace seekserve {

const char* arch_name(Arch arch) {
  switch (arch) {
    case Arch::kDeepseekV3:
      return "deepseek_v3";
    case Arch::kDeepseekV2:
      return "deepseek_v2";
    case Arch::kQwen2:
      return "qwen2";
    case Arch::kLlama:
      return "llama";
  }
  return "unknown";
}

}  // namespace seekserve
