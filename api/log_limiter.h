// LogLimiter: a per-key budget of log lines per time window, so that a
// client repeating the same request or the same mistake cannot flood the
// log. Lines over the budget are counted, and the first line of the next
// window reports how many were suppressed.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace dirindex {

class LogLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  LogLimiter(uint32_t lines_per_window, Clock::duration window)
      : lines_per_window_(lines_per_window), window_(window) {}

  // LogDecision is whether to write a line, and the number of lines of the
  // same key suppressed since the last one written.
  struct LogDecision {
    bool write = false;
    uint64_t suppressed = 0;
  };

  LogDecision Check(const std::string& key, Clock::time_point now);

 private:
  struct KeyState {
    Clock::time_point window_start;
    uint32_t written = 0;
    uint64_t suppressed = 0;
  };

  // Keys kept at most; past this all counts are dropped at once, which
  // only lets a few extra lines through.
  static constexpr size_t kMaxKeys = 4096;

  const uint32_t lines_per_window_;
  const Clock::duration window_;
  std::mutex mutex_;
  std::unordered_map<std::string, KeyState> keys_;
};

}  // namespace dirindex
