// distcache — striped counters: statistics written from many threads.
#ifndef DISTCACHE_CACHE_DETAIL_COUNTERS_HPP
#define DISTCACHE_CACHE_DETAIL_COUNTERS_HPP

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace distcache::detail {

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
  std::array<cell, stripes> cells_{};

 public:
  /// How many stripes a striped structure needs.
  static constexpr std::size_t stripe_count = stripes;
  /// The calling thread's stripe (shared by every striped structure).
  static std::size_t stripe() noexcept {
    thread_local const lease mine;
    return mine.index;
  }
};

/// The live counters of one keyspace.
struct keyspace_counters {
  // `gets` is derived: cache_hits + loads.
  striped_counter cache_hits, peer_loads, peer_errors, peer_waits, loads, loads_deduped,
      local_loads, local_load_errs, remove_keys_requests, removed_keys, negative_hits, stale_served,
      refreshes, warmed_keys, pushes_refused;
};

}  // namespace distcache::detail

#endif  // DISTCACHE_CACHE_DETAIL_COUNTERS_HPP
