// distcache — per-keyspace statistics.
#ifndef DISTCACHE_CACHE_STATS_HPP
#define DISTCACHE_CACHE_STATS_HPP

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <distcache/clock.hpp>
#include <distcache/protection/circuit_breaker.hpp>

namespace distcache {

/// A snapshot of one keyspace's counters. Counters are cumulative over the
/// engine's life (they survive update_keyspace and delete_keyspace); the byte
/// and item figures describe the caches now. The meanings follow groupcache's.
struct keyspace_stats {
  std::uint64_t gets = 0;             ///< get requests, hits and misses, incl. each key of get_many
  std::uint64_t cache_hits = 0;       ///< gets answered from the main or hot cache
  std::uint64_t peer_loads = 0;       ///< misses answered by the owning peer
  std::uint64_t peer_errors = 0;      ///< requests to a peer that failed
  std::uint64_t loads = 0;            ///< misses (gets - cache_hits)
  std::uint64_t loads_deduped = 0;    ///< loads after singleflight: one per shared flight
  std::uint64_t local_loads = 0;      ///< data-source calls that returned a value
  std::uint64_t local_load_errs = 0;  ///< data-source calls that failed (not_found excluded)
  std::uint64_t remove_keys_requests = 0;  ///< remove and remove_many calls received
  std::uint64_t removed_keys = 0;          ///< keys that were present and removed
  std::int64_t main_cache_bytes = 0;       ///< bytes charged in the main cache now
  std::int64_t hot_cache_bytes = 0;        ///< bytes charged in the hot cache now
  std::size_t main_cache_items = 0;        ///< entries in the main cache now
  std::size_t hot_cache_items = 0;         ///< entries in the hot cache now
  std::uint64_t evictions = 0;  ///< entries evicted for room, main and hot, current definition
  // Protection of the current definition's data source (protection.md).
  std::uint64_t rate_limited = 0;  ///< loads refused by the rate limiter
  protection::breaker_state circuit_state = protection::breaker_state::closed;  ///< breaker state
  time_point circuit_last_change{};    ///< when the breaker last changed state
  std::uint64_t circuit_rejected = 0;  ///< loads the open breaker refused
  std::size_t fetches_in_flight = 0;   ///< data-source calls running now
  std::size_t fetches_queued = 0;      ///< loads waiting for the concurrency limit
};

namespace detail {

/// A counter incremented from many threads without sharing a cache line:
/// each thread adds to its own stripe; load() sums the stripes.
///
/// A thread leases the lowest stripe no live thread holds and returns it at
/// thread exit, so the threads that run at the same time (io threads, fetch
/// threads, callers) get distinct stripes while there are at most `stripes`
/// of them; beyond that, stripes are shared.
class striped_counter {
 public:
  void add(std::uint64_t n = 1) noexcept {
    cells_[stripe()].value.fetch_add(n, std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint64_t load() const noexcept {
    std::uint64_t sum = 0;
    for (const auto& c : cells_) sum += c.value.load(std::memory_order_relaxed);
    return sum;
  }

 private:
  static constexpr std::size_t stripes = 16;
  struct alignas(64) cell {
    std::atomic<std::uint64_t> value{0};
  };
  struct lease {
    std::size_t index = 0;
    lease() noexcept {
      auto used = in_use().load(std::memory_order_relaxed);
      for (;;) {
        const auto free = static_cast<unsigned>(static_cast<std::uint16_t>(~used));
        if (free == 0) {  // every stripe held: share one
          static std::atomic<std::size_t> overflow{0};
          index = overflow.fetch_add(1, std::memory_order_relaxed) % stripes;
          owned = false;
          return;
        }
        index = static_cast<std::size_t>(__builtin_ctz(free));
        const auto want = static_cast<std::uint16_t>(used | (1U << index));
        if (in_use().compare_exchange_weak(used, want, std::memory_order_acq_rel)) {
          return;
        }
      }
    }
    ~lease() {
      if (owned) {
        in_use().fetch_and(static_cast<std::uint16_t>(~(1U << index)), std::memory_order_acq_rel);
      }
    }
    lease(const lease&) = delete;
    lease& operator=(const lease&) = delete;
    bool owned = true;
  };
  static std::atomic<std::uint16_t>& in_use() noexcept {
    static std::atomic<std::uint16_t> bits{0};
    return bits;
  }
  static std::size_t stripe() noexcept {
    thread_local const lease mine;
    return mine.index;
  }
  std::array<cell, stripes> cells_{};
};

/// The live counters of one keyspace.
struct keyspace_counters {
  // `gets` is derived: cache_hits + loads.
  striped_counter cache_hits, peer_loads, peer_errors, loads, loads_deduped, local_loads,
      local_load_errs, remove_keys_requests, removed_keys;
};

}  // namespace detail
}  // namespace distcache

#endif  // DISTCACHE_CACHE_STATS_HPP
