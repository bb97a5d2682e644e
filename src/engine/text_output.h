#pragma once
// Turns one sequence's generated ids into the text a client sees: UTF-8-safe chunks (through
// StreamDecoder) with stop strings cut out. Text that could still be the start of a stop string
// is held back until it cannot; a stop string ends the output and is never emitted.
// Shared by Session (the CLI) and the serving engine. Not thread-safe: one per sequence.

#include <cstdint>
#include <string>
#include <vector>

#include "formats/tokenizer.h"

namespace seekserve {

class TextOutput {
 public:
  // skip_special: control tokens (BOS/EOS, …) add no text. The tokenizer must outlive this.
  TextOutput(const Tokenizer& tokenizer, std::vector<std::string> stop, bool skip_special = true);

  // Adds one generated id; returns the text now safe to emit (possibly empty). After a stop
  // string is seen, stopped() is true and nothing more is emitted.
  std::string push(int32_t id);
  // The held-back rest at the end of generation (empty after a stop).
  std::string finish();
  bool stopped() const { return stopped_; }

 private:
  StreamDecoder decoder_;
  std::vector<std::string> stop_;
  size_t hold_ = 0;  // longest stop string - 1: bytes that may begin one
  std::string pending_;
  bool stopped_ = false;
};

}  // namespace seekserve
