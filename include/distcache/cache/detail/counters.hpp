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
/// of them. A thread that holds its stripe is its only writer and adds with a
/// plain load and store (no locked instruction: a hit's one count costs what
/// a non-atomic increment does); threads beyond `stripes` add to one shared
/// cell with fetch_add. The stripe passes to another thread only through the
/// lease's acquire/release, so no increment is lost.
class striped_counter {
 public:
  void add(std::uint64_t n = 1) noexcept {
    const lease& l = mine();
    if (l.owned) [[likely]] {
      auto& v = cells_[l.index].value;
      v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    } else {
      cells_[stripes].value.fetch_add(n, std::memory_order_relaxed);
    }
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
  std::array<cell, stripes + 1> cells_{};  // the last: threads that hold no stripe
  static const lease& mine() noexcept {
    thread_local const lease held;
    return held;
  }

 public:
  /// How many stripes a striped structure needs.
  static constexpr std::size_t stripe_count = stripes;
  /// The calling thread's stripe (shared by every striped structure).
  static std::size_t stripe() noexcept { return mine().index; }
};

/// A number of a shard's statistics: written under the shard's lock, read
/// without it (relaxed loads and stores: plain moves on x86), so statistics
/// never wait for a writer, who may be waiting for a reader.
template <class T>
class lock_written {
 public:
  lock_written& operator=(T v) noexcept {
    v_.store(v, std::memory_order_relaxed);
    return *this;
  }
  lock_written& operator+=(T d) noexcept { return *this = get() + d; }
  lock_written& operator-=(T d) noexcept { return *this = get() - d; }
  lock_written& operator++() noexcept { return *this += 1; }
  [[nodiscard]] T get() const noexcept { return v_.load(std::memory_order_relaxed); }
  operator T() const noexcept { return get(); }  // NOLINT(google-explicit-constructor)

 private:
  std::atomic<T> v_{0};
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
