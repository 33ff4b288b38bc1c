#include "api/long_poll.h"

#include <utility>
#include <vector>

namespace dirindex {

uint64_t CommitWaiters::Add(uint32_t root_id, uint64_t baseline_seq,
                            WakeFunction wake) {
  std::lock_guard lock(mutex_);
  uint64_t id = next_id_++;
  waiters_.emplace(id, Waiter{root_id, baseline_seq, std::move(wake)});
  return id;
}

void CommitWaiters::Remove(uint64_t waiter_id) {
  std::lock_guard lock(mutex_);
  waiters_.erase(waiter_id);
}

void CommitWaiters::Notify(uint32_t root_id, uint64_t last_seq) {
  std::vector<WakeFunction> woken;
  {
    std::lock_guard lock(mutex_);
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      const Waiter& waiter = it->second;
      if (waiter.root_id == root_id && waiter.baseline_seq < last_seq) {
        woken.push_back(std::move(it->second.wake));
        it = waiters_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (WakeFunction& wake : woken) wake();
}

void CommitWaiters::Clear() {
  std::unordered_map<uint64_t, Waiter> dropped;
  {
    std::lock_guard lock(mutex_);
    dropped.swap(waiters_);
  }
  // `dropped` releases the sessions here, outside the lock, because a
  // session's destructor may call Remove.
}

size_t CommitWaiters::size() const {
  std::lock_guard lock(mutex_);
  return waiters_.size();
}

}  // namespace dirindex
