// CommitWaiters: the long-poll change requests that wait for a commit on
// their root. The HTTP server adds one per waiting request and feeds the
// index's commit notifications to Notify.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <unordered_map>

namespace dirindex {

class CommitWaiters {
 public:
  using WakeFunction = std::function<void()>;

  // Registers a waiter that Notify wakes once `root_id` has a change newer
  // than `baseline_seq`. Returns the id to pass to Remove.
  uint64_t Add(uint32_t root_id, uint64_t baseline_seq, WakeFunction wake);

  // Removes a waiter. Removing one that was woken or removed is a no-op.
  void Remove(uint64_t waiter_id);

  // Wakes and removes every waiter of `root_id` whose baseline is older
  // than `last_seq`. The wake functions run after the lock is released.
  void Notify(uint32_t root_id, uint64_t last_seq);

  // Removes every waiter without waking it, to break the reference cycles
  // of sessions still waiting when the server stops.
  void Clear();

  size_t size() const;

 private:
  struct Waiter {
    uint32_t root_id = 0;
    uint64_t baseline_seq = 0;
    WakeFunction wake;
  };

  mutable std::mutex mutex_;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, Waiter> waiters_;
};

}  // namespace dirindex
