#pragma once
// The one registry of model shapes that make-model and estimate share: the tiny test presets,
// the benchmark presets, and the published shapes of the models seekserve serves.

#include <span>
#include <string>
#include <string_view>

#include "core/status.h"
#include "formats/model_config.h"

namespace seekserve {

struct ModelPreset {
  std::string_view name;         // "tiny-v3", "r1-qwen-1.5b", "deepseek-v3", ...
  std::string_view description;  // one line for --help and inspect
  bool makeable;                 // make-model can write it (the full-size published shapes are
                                 // for planning only)
  ModelConfig config;
};

// Every preset, in a stable order.
std::span<const ModelPreset> model_presets();

// Looks a preset up by name (case-sensitive); the error lists the known names.
Result<ModelPreset> find_model_preset(std::string_view name);

}  // namespace seekserve
