// distcache — the live state of one keyspace definition.
#ifndef DISTCACHE_DETAIL_KEYSPACE_RUNTIME_HPP
#define DISTCACHE_DETAIL_KEYSPACE_RUNTIME_HPP

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <distcache/cache/lru_cache.hpp>
#include <distcache/cache/singleflight.hpp>
#include <distcache/cache/stats.hpp>
#include <distcache/config.hpp>
#include <distcache/keyspace.hpp>
#include <distcache/protection/bulkhead.hpp>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace distcache::detail {

/// Bytes a decoded value holds: its object plus what it owns on the heap.
/// A keyspace may state it exactly with `std::size_t value_bytes(const
/// value_type&) const`; otherwise strings and byte vectors count their
/// capacity, trivially-copyable values their size, and other types their
/// encoded size (computed once, when the value enters the cache).
template <class K>
std::size_t value_bytes(const K& def, const typename K::value_type& v) {
  using V = typename K::value_type;
  if constexpr (requires {
                  { def.value_bytes(v) } -> std::convertible_to<std::size_t>;
                }) {
    return sizeof(V) + def.value_bytes(v);
  } else if constexpr (std::is_same_v<V, std::string>) {
    // Short strings live inside the object (small-string optimisation).
    return sizeof(V) + (v.capacity() > 15 ? v.capacity() + 1 : 0);
  } else if constexpr (std::is_same_v<V, bytes>) {
    return sizeof(V) + v.capacity();
  } else if constexpr (std::is_trivially_copyable_v<V>) {
    return sizeof(V);
  } else {
    std::string encoded;
    keyspace_serializer_t<K>{}.serialize(v, encoded);
    return sizeof(V) + encoded.size();
  }
}

/// One definition of keyspace K with its caches and in-flight loads.
/// update_keyspace() replaces the whole runtime, so a load that started under
/// the old definition publishes into the old (retired, cleared) caches and
/// can never bring an old value back.
template <class K, class Guards>
struct keyspace_runtime : std::enable_shared_from_this<keyspace_runtime<K, Guards>> {
  keyspace_runtime(K d, resolved_keyspace o, const clock_source* clock)
      : def(std::move(d)),
        opts(std::move(o)),
        guards(opts, clock),
        main(opts.max_bytes,
             opts.shards != 0 ? opts.shards : lru_cache::default_shards(opts.max_bytes), clock),
        hot(opts.hot_max_bytes,
            opts.shards != 0 ? opts.shards : lru_cache::default_shards(opts.hot_max_bytes), clock) {
  }

  K def;  // source.fetch() runs concurrently on the blocking pool
  const resolved_keyspace opts;
  Guards guards;   // rate limiter, circuit breaker, concurrency limit of the source
  lru_cache main;  // keys this node owns
  lru_cache hot;   // keys other nodes own, copied here because they are read often
  singleflight flights;
  std::atomic<bool> retired{false};  // set when replaced; loads then skip publishing
};

/// Everything the engine keeps for keyspace K across its definitions.
/// The protection around one keyspace definition's data source. An absent
/// setting means no limiter (or breaker) at all, whatever the policy type.
template <class RateLimiter, class CircuitBreaker>
struct source_guards {
  source_guards(const resolved_keyspace& o, const clock_source* clock)
      : fetches(o.max_concurrent_fetches) {
    if (o.rate_limiter) limiter.emplace(*o.rate_limiter, clock);
    if (o.circuit_breaker) breaker.emplace(*o.circuit_breaker, clock);
  }
  std::optional<RateLimiter> limiter;
  std::optional<CircuitBreaker> breaker;
  protection::bulkhead fetches;
  striped_counter rate_limited;  // calls refused or timed out by the limiter
};

template <class K, class Guards>
struct keyspace_slot {
  /// The live definition; null when the keyspace is deleted. Readers load it
  /// without a lock; runtimes are never destroyed before the engine, so a
  /// reader's pointer stays valid.
  std::atomic<keyspace_runtime<K, Guards>*> current{nullptr};
  std::mutex mutex;  // serializes update and delete
  std::vector<std::shared_ptr<keyspace_runtime<K, Guards>>> runtimes;  // live and retired
  keyspace_counters counters;

  /// Makes `next` the live definition (null deletes); clears the previous
  /// one's caches. Returns false when deleting an already deleted keyspace.
  bool replace(std::shared_ptr<keyspace_runtime<K, Guards>> next) {
    std::lock_guard lock(mutex);
    keyspace_runtime<K, Guards>* prev = current.load(std::memory_order_acquire);
    if (next == nullptr && prev == nullptr) return false;
    current.store(next.get(), std::memory_order_release);
    if (next) runtimes.push_back(std::move(next));
    if (prev != nullptr) {
      prev->retired.store(true, std::memory_order_release);
      prev->main.clear();
      prev->hot.clear();
    }
    return true;
  }
};

}  // namespace distcache::detail

#endif  // DISTCACHE_DETAIL_KEYSPACE_RUNTIME_HPP
