// distcache — what bounds the peer server under hostile or overloaded
// clients: a node-wide budget of bytes held by requests in flight, and a
// limit of connections per remote address (docs/security.md).
#ifndef DISTCACHE_TRANSPORT_DETAIL_HTTP_SERVER_LIMITS_HPP
#define DISTCACHE_TRANSPORT_DETAIL_HTTP_SERVER_LIMITS_HPP

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <distcache/clock.hpp>
#include <mutex>
#include <string>
#include <unordered_map>

namespace distcache::detail {

/// The bytes that requests being read or handled hold (bodies, and the
/// copy a set makes of its value), bounded node-wide. A reservation is made
/// before the memory is allocated, so the bound holds at every instant.
///
/// Thread safety: every member may be called concurrently.
class inflight_budget {
 public:
  explicit inflight_budget(std::size_t max_bytes) noexcept : max_(max_bytes) {}

  /// Reserves `n` bytes; false (and nothing reserved) when the bytes
  /// reserved would then pass `limit` (at most max()).
  bool try_reserve(std::size_t n, std::size_t limit) noexcept {
    std::size_t used = used_.load(std::memory_order_relaxed);
    do {
      if (used > limit || n > limit - used) return false;
    } while (!used_.compare_exchange_weak(used, used + n, std::memory_order_relaxed));
    return true;
  }
  void release(std::size_t n) noexcept { used_.fetch_sub(n, std::memory_order_relaxed); }

  /// Bytes reserved now.
  [[nodiscard]] std::size_t used() const noexcept { return used_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::size_t max() const noexcept { return max_; }

 private:
  const std::size_t max_;
  std::atomic<std::size_t> used_{0};
};

/// One connection's share of an inflight_budget: grows as its request needs
/// more, and gives everything back at once (or when destroyed).
class budget_share {
 public:
  /// Shares up to this size may use all of the budget.
  static constexpr std::size_t small_body = std::size_t{64} << 10;

  explicit budget_share(inflight_budget& budget) noexcept : budget_(budget) {}
  budget_share(const budget_share&) = delete;
  budget_share& operator=(const budget_share&) = delete;
  ~budget_share() { release_all(); }

  /// Makes the share at least `total` bytes; false when the budget is short
  /// (the share is then unchanged). A share over small_body may only take
  /// the budget to 7/8 of its bound: the last eighth is kept for small
  /// requests, so that large writes cannot starve gets.
  bool grow_to(std::size_t total) noexcept {
    if (total <= held_) return true;
    const std::size_t max = budget_.max();
    if (!budget_.try_reserve(total - held_, total > small_body ? max - max / 8 : max)) return false;
    held_ = total;
    return true;
  }
  void release_all() noexcept {
    budget_.release(held_);
    held_ = 0;
  }
  [[nodiscard]] std::size_t held() const noexcept { return held_; }

 private:
  inflight_budget& budget_;
  std::size_t held_ = 0;
};

/// Open connections per remote address, and when each address was last
/// logged as refused (one line per address per minute).
///
/// Thread safety: every member may be called concurrently.
class address_limits {
 public:
  explicit address_limits(std::size_t max_per_address) noexcept : max_(max_per_address) {}

  /// Counts a connection from `address`; false (nothing counted) when the
  /// address has max_per_address open already.
  bool try_add(const std::string& address) {
    std::lock_guard lock(mutex_);
    auto& n = open_[address];
    if (n >= max_) return false;
    ++n;
    return true;
  }
  void remove(const std::string& address) {
    std::lock_guard lock(mutex_);
    auto it = open_.find(address);
    if (it == open_.end()) return;
    if (--it->second == 0) open_.erase(it);
  }
  /// Whether a refusal of `address` at `now` should be logged: the first
  /// one, then at most one a minute. Forgets addresses not refused lately,
  /// so a flood of distinct addresses cannot grow the map without bound.
  bool should_log(const std::string& address, time_point now) {
    std::lock_guard lock(mutex_);
    constexpr auto quiet = std::chrono::minutes(1);
    if (logged_.size() >= max_logged) {
      std::erase_if(logged_, [&](const auto& kv) { return now - kv.second >= quiet; });
      if (logged_.size() >= max_logged) return false;  // a flood of addresses: stay quiet
    }
    auto [it, inserted] = logged_.try_emplace(address, now);
    if (inserted) return true;
    if (now - it->second < quiet) return false;
    it->second = now;
    return true;
  }
  [[nodiscard]] std::size_t max() const noexcept { return max_; }

 private:
  static constexpr std::size_t max_logged = 4096;
  const std::size_t max_;
  std::mutex mutex_;
  std::unordered_map<std::string, std::size_t> open_;   // by mutex_
  std::unordered_map<std::string, time_point> logged_;  // by mutex_
};

}  // namespace distcache::detail

#endif  // DISTCACHE_TRANSPORT_DETAIL_HTTP_SERVER_LIMITS_HPP
