#pragma once
// inspect: what seekserve sees in a model file or folder — architecture, hyper-parameters,
// tokenizer summary and a tensor table — for people or (--json) for machines.

#include <string>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "tools/command.h"

namespace seekserve {

// Reads FILE (.gguf or .safetensors) or DIR (an HF folder) and describes it as JSON:
// {"path", "format", "config": {...} | null, "tokenizer": {...} | null,
//  "tensors": [{"name", "dtype", "shape", "bytes"}], "n_params", "n_bytes"}.
Result<nlohmann::json> inspect_model(const std::string& path);

// The human-readable rendering of inspect_model's JSON.
std::string format_inspection(const nlohmann::json& info);

}  // namespace seekserve
