// distcache — which keys of a keyspace were written on this node lately
// (puts, removes, invalidations): a warm-up push of such a key carries a
// value read before the write, and is refused (docs/reliability.md#writes-win-over-warm-up).
#ifndef DISTCACHE_CACHE_DETAIL_RECENT_WRITES_HPP
#define DISTCACHE_CACHE_DETAIL_RECENT_WRITES_HPP

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <distcache/clock.hpp>
#include <mutex>
#include <unordered_map>
#include <utility>

namespace distcache::detail {

/// The keys (by hash) written within the last `window`, at most `capacity`
/// of them. When more were written within a window, the memory cannot tell
/// which keys were: written() then answers true for every key until a whole
/// window has passed since the overflow (a push is an optimization; refusing
/// one costs a load, accepting a stale one costs a wrong value).
///
/// Thread safety: every member may be called concurrently (one mutex; it is
/// taken on writes, warm-up pushes and owners' answers, never on a cache hit).
class recent_writes {
 public:
  recent_writes(duration window, std::size_t capacity) : window_(window), capacity_(capacity) {}

  /// Records a write of the key with `hash` at `now`.
  void note(std::uint64_t hash, time_point now) {
    std::lock_guard lock(mutex_);
    forget_before(now - window_);
    if (order_.size() >= capacity_) {
      overflowed_at_ = now;
      overflowed_ = true;
      forget_oldest();
    }
    last_[hash] = now;
    order_.emplace_back(hash, now);
  }

  /// Whether the key with `hash` was written within the window before `now`
  /// (or may have been: see the class comment); with `within`, within the
  /// shorter of the two.
  [[nodiscard]] bool written(std::uint64_t hash, time_point now,
                             duration within = duration::max()) const {
    const duration span = std::min(within, window_);
    std::lock_guard lock(mutex_);
    if (overflowed_ && now - overflowed_at_ < window_) return true;
    auto it = last_.find(hash);
    return it != last_.end() && now - it->second < span;
  }

  /// Keys remembered now (tests and stats).
  [[nodiscard]] std::size_t size() const {
    std::lock_guard lock(mutex_);
    return last_.size();
  }

 private:
  void forget_before(time_point limit) {
    while (!order_.empty() && order_.front().second <= limit) forget_oldest();
  }
  void forget_oldest() {
    const auto [hash, at] = order_.front();
    order_.pop_front();
    // A later write of the same key is still in the order; keep its time.
    if (auto it = last_.find(hash); it != last_.end() && it->second == at) last_.erase(it);
  }

  const duration window_;
  const std::size_t capacity_;
  mutable std::mutex mutex_;
  std::unordered_map<std::uint64_t, time_point> last_;
  std::deque<std::pair<std::uint64_t, time_point>> order_;
  time_point overflowed_at_{};
  bool overflowed_ = false;
};

}  // namespace distcache::detail

#endif  // DISTCACHE_CACHE_DETAIL_RECENT_WRITES_HPP
