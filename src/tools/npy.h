#pragma once
// NumPy .npy (format 1.0) writer for float32 arrays: what `seekserve logits` emits.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace seekserve {

// Writes data (row-major, shape given) as '<f4' C-order .npy.
Status write_npy_f32(const std::string& path, std::span<const float> data,
                     const std::vector<int64_t>& shape);

}  // namespace seekserve
