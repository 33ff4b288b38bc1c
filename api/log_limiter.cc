#include "api/log_limiter.h"

namespace dirindex {

LogLimiter::LogDecision LogLimiter::Check(const std::string& key,
                                          Clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (keys_.size() >= kMaxKeys && keys_.find(key) == keys_.end()) {
    keys_.clear();
  }
  KeyState& state = keys_[key];
  if (state.written == 0 || now - state.window_start >= window_) {
    state.window_start = now;
    state.written = 0;
  }
  if (state.written >= lines_per_window_) {
    ++state.suppressed;
    return {false, 0};
  }
  ++state.written;
  LogDecision decision{true, state.suppressed};
  state.suppressed = 0;
  return decision;
}

}  // namespace dirindex
