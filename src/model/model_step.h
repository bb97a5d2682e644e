#pragma once
// Per-forward bookkeeping shared by the layer implementations (private to src/model/).

#include <cstdint>
#include <span>
#include <vector>

#include "model/model.h"

namespace seekserve {

struct Model::Step {
  std::span<const SequenceInput> batch;
  int64_t n_tokens = 0;         // T: new tokens over the whole batch
  std::vector<int32_t> seq_of;  // [T] which sequence each new token belongs to
  std::vector<int64_t> pos_of;  // [T] its position in that sequence
};

}  // namespace seekserve
