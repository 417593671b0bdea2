// distcache — singleflight: concurrent misses on one key share one load.
#ifndef DISTCACHE_CACHE_DETAIL_SINGLEFLIGHT_HPP
#define DISTCACHE_CACHE_DETAIL_SINGLEFLIGHT_HPP

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <distcache/cache/detail/hashed_key.hpp>
#include <distcache/clock.hpp>
#include <distcache/error.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace distcache::detail {

/// One caller waiting for a load. complete() is called exactly once: by the
/// load when it finishes, or by whoever abandons the waiter first (its timeout
/// or its cancellation), never both, because both first remove the waiter from
/// its flight under the flight's lock.
class waiter {
 public:
  waiter() = default;
  waiter(const waiter&) = delete;
  waiter& operator=(const waiter&) = delete;
  virtual ~waiter() = default;
  /// Delivers the outcome. Runs on the thread that finished the load or
  /// abandoned the waiter; implementations hand off to the caller's executor.
  virtual void complete(error_code ec, std::shared_ptr<const void> value) = 0;
  /// The loaded value's expiry, set by the flight before complete() (peers
  /// are sent the remaining time).
  time_point expires_at = never_expires;
};

/// The expiry a flight gives its waiters when a put() or remove() of its key
/// happened while it loaded: long past, so the value is sent to a peer with
/// 0 ms to live ("already expired: use it for this request, do not cache").
inline constexpr time_point superseded_expiry{};

/// Groups concurrent loads of one key into one flight.
///
/// The first caller of join() for a key becomes the leader and starts the load;
/// later callers only wait. finish() publishes the outcome (through a callback
/// run under the flight's lock, so that a put() or remove() of the same key
/// that invalidated the flight in the meantime can never be overwritten by the
/// older loaded value) and then completes every waiter outside any lock.
///
/// Thread safety: every member function may be called concurrently.
class singleflight {
 public:
  /// Adds `w` to the flight of `key`, creating it if needed. Returns true when
  /// the caller is the leader and must start the load.
  /// After abandon_all() the singleflight is closed: join() then completes
  /// `w` at once with the error abandon_all() was given and returns false.
  bool join(hashed_key key, std::shared_ptr<waiter> w) {
    shard& s = shard_for(key.hash);
    {
      std::lock_guard lock(s.mutex);
      if (!s.closed) {
        auto [it, created] = s.flights.try_emplace(stored_key{std::string(key.text), key.hash});
        it->second.waiters.add(std::move(w));
        if (created) active_.fetch_add(1);
        return created;
      }
    }
    w->complete(closed_with_, nullptr);
    return false;
  }

  /// Removes `w` from the flight of `key`. Returns true when it was still
  /// waiting (the caller must then complete it); false when the load already
  /// took it. The load itself runs on, for the other waiters.
  bool abandon(hashed_key key, const waiter* w) {
    shard& s = shard_for(key.hash);
    std::lock_guard lock(s.mutex);
    auto it = s.flights.find(key);
    if (it == s.flights.end()) return false;
    return it->second.waiters.remove(w);
  }

  /// Marks the flight of `key`, if any, so that its outcome is not published:
  /// a newer put() or remove() of the key happened while it loaded.
  void invalidate(hashed_key key) {
    // No flight anywhere (a put with no load in progress): no lock. A flight
    // created after this read is ordered after this invalidation, as it
    // would be after the lock.
    if (active_.load() == 0) return;  // seq_cst, as the counts are changed
    shard& s = shard_for(key.hash);
    std::lock_guard lock(s.mutex);
    auto it = s.flights.find(key);
    if (it != s.flights.end()) it->second.invalidated = true;
  }

  /// Starts a flight of `key` with no waiter (a background reload), unless
  /// one is in flight or the singleflight is closed. Returns true when the
  /// caller must start the load. Later callers join it as usual.
  bool lead(hashed_key key) {
    shard& s = shard_for(key.hash);
    std::lock_guard lock(s.mutex);
    if (s.closed) return false;
    const bool created = s.flights.try_emplace(stored_key{std::string(key.text), key.hash}).second;
    if (created) active_.fetch_add(1);
    return created;
  }

  /// Ends the flight of `key`: runs `publish()` under the lock unless the
  /// flight was invalidated (publish returns the error to deliver instead of
  /// `ec`, e.g. when the value does not fit), then completes every waiter with
  /// the outcome. Returns the number of waiters completed.
  ///
  /// The waiters of an invalidated flight still receive its value, but with
  /// `superseded_expiry` as its expiry: a newer write happened while it
  /// loaded, so a waiter that would keep it (a peer's request, which is told
  /// the remaining time to live) must not.
  template <class Publish>
  std::size_t finish(hashed_key key, error_code ec, const std::shared_ptr<const void>& value,
                     Publish&& publish, time_point expires_at = never_expires) {
    waiter_list waiters;
    if (!take(key, waiters, [&](bool invalidated) {
          if (invalidated) expires_at = superseded_expiry;
          if (!ec && !invalidated) ec = std::forward<Publish>(publish)();
        })) {
      return 0;
    }
    return waiters.for_each([&](waiter& w) {
      w.expires_at = expires_at;
      w.complete(ec, ec ? nullptr : value);
    });
  }

  /// Ends the flight of `key` with errc::not_found: runs `publish()` under
  /// the lock unless the flight was invalidated (to cache the answer, or to
  /// drop a value the source no longer has), then completes every waiter
  /// with not_found (with `superseded_expiry` as the expiry when the flight
  /// was invalidated, as finish()). Returns the number of waiters completed.
  template <class Publish>
  std::size_t finish_not_found(hashed_key key, Publish&& publish) {
    waiter_list waiters;
    time_point expires_at = never_expires;
    if (!take(key, waiters, [&](bool invalidated) {
          if (invalidated) expires_at = superseded_expiry;
          if (!invalidated) std::forward<Publish>(publish)();
        })) {
      return 0;
    }
    const error_code ec = make_error_code(errc::not_found);
    return waiters.for_each([&](waiter& w) {
      w.expires_at = expires_at;
      w.complete(ec, nullptr);
    });
  }

  /// Ends every flight at once and closes the singleflight: each waiter
  /// completes with `ec`, loads that still run publish nothing, and later
  /// joins fail with `ec` (used by stop()).
  void abandon_all(error_code ec) {
    std::vector<waiter_list> waiters;
    closed_with_ = ec;  // written before any shard is closed, read after
    for (auto& s : shards_) {
      std::lock_guard lock(s.mutex);
      s.closed = true;
      for (auto& [key, f] : s.flights) waiters.push_back(std::move(f.waiters));
      active_.fetch_sub(s.flights.size());
      s.flights.clear();
    }
    for (auto& list : waiters) list.for_each([&](waiter& w) { w.complete(ec, nullptr); });
  }

  /// Number of flights in progress (for tests and stats).
  [[nodiscard]] std::size_t in_flight() const {
    std::size_t n = 0;
    for (const auto& s : shards_) {
      std::lock_guard lock(s.mutex);
      n += s.flights.size();
    }
    return n;
  }

 private:
  // The waiters of one flight. Most flights have one, kept inline: a miss
  // costs no allocation for its list.
  class waiter_list {
   public:
    void add(std::shared_ptr<waiter> w) {
      if (!first_) {
        first_ = std::move(w);
      } else {
        more_.push_back(std::move(w));
      }
    }
    bool remove(const waiter* w) {
      if (first_.get() == w) {
        first_.reset();
        return true;
      }
      auto pos =
          std::find_if(more_.begin(), more_.end(), [w](const auto& p) { return p.get() == w; });
      if (pos == more_.end()) return false;
      more_.erase(pos);
      return true;
    }
    // Calls fn on every waiter; returns how many there were.
    template <class Fn>
    std::size_t for_each(Fn&& fn) {
      std::size_t n = 0;
      if (first_) {
        fn(*first_);
        ++n;
      }
      for (auto& w : more_) fn(*w);
      return n + more_.size();
    }

   private:
    std::shared_ptr<waiter> first_;
    std::vector<std::shared_ptr<waiter>> more_;
  };

  struct flight {
    waiter_list waiters;
    bool invalidated = false;
  };
  struct alignas(64) shard {
    mutable std::mutex mutex;
    std::unordered_map<stored_key, flight, key_hash, key_equal> flights;
    bool closed = false;
  };
  static constexpr std::size_t shard_count = 16;

  // Removes the flight of `key`, calling `under_lock(invalidated)` first and
  // moving its waiters to `out`; false when there is no such flight.
  template <class Fn>
  bool take(hashed_key key, waiter_list& out, Fn&& under_lock) {
    shard& s = shard_for(key.hash);
    std::lock_guard lock(s.mutex);
    auto it = s.flights.find(key);
    if (it == s.flights.end()) return false;
    std::forward<Fn>(under_lock)(it->second.invalidated);
    out = std::move(it->second.waiters);
    s.flights.erase(it);
    active_.fetch_sub(1);
    return true;
  }

  shard& shard_for(std::uint64_t hash) noexcept { return shards_[(hash >> 48) % shard_count]; }

  std::array<shard, shard_count> shards_;
  std::atomic<std::size_t> active_{0};  // flights in all shards (changed under their locks)
  error_code closed_with_;
};

}  // namespace distcache::detail

#endif  // DISTCACHE_CACHE_DETAIL_SINGLEFLIGHT_HPP
