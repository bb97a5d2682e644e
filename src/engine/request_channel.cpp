#include "engine/request_channel.h"

namespace seekserve {

void RequestChannel::push(EngineEvent event) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    events_.push_back(std::move(event));
    if (notifier_) {
      notifier_();
      return;
    }
  }
  cv_.notify_one();
}

bool RequestChannel::push_quiet(EngineEvent event) {
  std::lock_guard<std::mutex> lock(mutex_);
  events_.push_back(std::move(event));
  const bool first = !notify_owed_;
  notify_owed_ = true;
  return first;
}

void RequestChannel::notify() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    notify_owed_ = false;
    if (notifier_) {
      notifier_();
      return;
    }
  }
  cv_.notify_one();
}

void RequestChannel::set_notifier(std::function<void()> notifier) {
  std::lock_guard<std::mutex> lock(mutex_);
  notifier_ = std::move(notifier);
}

bool RequestChannel::pop_all(std::vector<EngineEvent>& out, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!cv_.wait_for(lock, timeout, [this] { return !events_.empty(); })) return false;
  while (!events_.empty()) {
    out.push_back(std::move(events_.front()));
    events_.pop_front();
  }
  return true;
}

}  // namespace seekserve
