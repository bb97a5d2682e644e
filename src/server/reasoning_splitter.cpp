#include "server/reasoning_splitter.h"

namespace seekserve {

namespace {
constexpr std::string_view kClose = "</think>";
}

ReasoningSplitter::Piece ReasoningSplitter::push(std::string_view text) {
  Piece p;
  if (!in_reasoning_) {
    p.content = std::string(text);
    return p;
  }
  held_ += text;
  if (size_t at = held_.find(kClose); at != std::string::npos) {
    p.reasoning = held_.substr(0, at);
    p.content = held_.substr(at + kClose.size());
    held_.clear();
    in_reasoning_ = false;
    return p;
  }
  // Keep the longest tail that is a proper prefix of "</think>".
  size_t keep = 0;
  for (size_t n = std::min(held_.size(), kClose.size() - 1); n > 0; --n) {
    if (std::string_view(held_).substr(held_.size() - n) == kClose.substr(0, n)) {
      keep = n;
      break;
    }
  }
  p.reasoning = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return p;
}

ReasoningSplitter::Piece ReasoningSplitter::finish() {
  Piece p;
  p.reasoning = std::move(held_);
  held_.clear();
  return p;
}

}  // namespace seekserve
