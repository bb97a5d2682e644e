#include "engine/text_output.h"

namespace seekserve {

TextOutput::TextOutput(const Tokenizer& tokenizer, std::vector<std::string> stop, bool skip_special)
    : decoder_(tokenizer, skip_special), stop_(std::move(stop)) {
  for (const std::string& s : stop_)
    if (!s.empty()) hold_ = std::max(hold_, s.size() - 1);
}

std::string TextOutput::push(int32_t id) {
  if (stopped_) return {};
  pending_ += decoder_.push(id);
  for (const std::string& s : stop_) {
    if (s.empty()) continue;
    if (size_t at = pending_.find(s); at != std::string::npos) {
      pending_.resize(at);
      stopped_ = true;
    }
  }
  if (stopped_) {
    std::string out = std::move(pending_);
    pending_.clear();
    return out;
  }
  if (pending_.size() <= hold_) return {};
  // Emit all but the tail that could still begin a stop string (at a UTF-8 boundary).
  size_t cut = pending_.size() - hold_;
  while (cut > 0 && cut < pending_.size() &&
         (static_cast<unsigned char>(pending_[cut]) & 0xC0) == 0x80)
    --cut;
  std::string out = pending_.substr(0, cut);
  pending_.erase(0, cut);
  return out;
}

std::string TextOutput::finish() {
  if (!stopped_) pending_ += decoder_.flush();
  std::string out = std::move(pending_);
  pending_.clear();
  return out;
}

}  // namespace seekserve
