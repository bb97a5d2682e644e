#pragma once
// Splits DeepSeek-R1 output into reasoning and answer: when the prompt opened "<think>", the
// text before "</think>" is reasoning_content and the rest is content. Works on streamed
// chunks: a tail that may be the start of "</think>" is held back until it is decided.
// Not thread-safe: one per response.

#include <string>
#include <string_view>

namespace seekserve {

class ReasoningSplitter {
 public:
  // starts_in_reasoning false: everything is content (a pass-through).
  explicit ReasoningSplitter(bool starts_in_reasoning) : in_reasoning_(starts_in_reasoning) {}

  struct Piece {
    std::string reasoning;
    std::string content;
  };
  Piece push(std::string_view text);
  Piece finish();  // whatever was held back

 private:
  bool in_reasoning_;
  std::string held_;
};

}  // namespace seekserve
