// distcache — the live state of one keyspace definition, and the registry
// slot that holds a keyspace across its definitions.
#ifndef DISTCACHE_CORE_KEYSPACE_RUNTIME_HPP
#define DISTCACHE_CORE_KEYSPACE_RUNTIME_HPP

#include <atomic>
#include <distcache/cache/detail/counters.hpp>
#include <distcache/cache/detail/singleflight.hpp>
#include <distcache/cache/detail/value_cache.hpp>
#include <distcache/config.hpp>
#include <distcache/core/keyspace_adapter.hpp>
#include <distcache/protection/source_guard.hpp>
#include <distcache/telemetry/detail/histogram.hpp>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace distcache::detail {

/// One definition of a keyspace with its caches and in-flight loads.
/// update_keyspace() replaces the whole runtime, so a load that started under
/// the old definition publishes into the old (retired, cleared) caches and
/// can never bring an old value back.
struct keyspace_runtime : std::enable_shared_from_this<keyspace_runtime> {
  keyspace_runtime(std::unique_ptr<keyspace_adapter> a, resolved_keyspace o,
                   const clock_source* clock, const guard_policies& policies)
      : adapter(std::move(a)),
        opts(std::move(o)),
        guard(opts, clock, policies),
        main(opts.max_bytes,
             opts.shards != 0 ? opts.shards : value_cache::default_shards(opts.max_bytes), clock),
        hot(opts.hot_max_bytes,
            opts.shards != 0 ? opts.shards : value_cache::default_shards(opts.hot_max_bytes),
            clock) {}

  const std::unique_ptr<keyspace_adapter> adapter;  // the typed definition
  const resolved_keyspace opts;
  source_guard guard;  // rate limiter, circuit breaker, concurrency limit of the source
  value_cache main;    // keys this node owns
  value_cache hot;     // keys other nodes own, copied here because they are read often
  singleflight flights;
  std::atomic<bool> retired{false};  // set when replaced; loads then skip publishing
};

/// Everything the engine keeps for one keyspace across its definitions.
struct keyspace_slot {
  explicit keyspace_slot(std::string n) : name(std::move(n)) {}

  const std::string name;
  /// The live definition; null when the keyspace is deleted. Readers load it
  /// without a lock; runtimes are never destroyed before the engine, so a
  /// reader's pointer stays valid.
  std::atomic<keyspace_runtime*> current{nullptr};
  std::mutex mutex;                                         // serializes update and delete
  std::vector<std::shared_ptr<keyspace_runtime>> runtimes;  // live and retired
  keyspace_counters counters;
  /// Latency of each operation (kept while the engine observes: admin
  /// server or telemetry).
  telemetry::detail::operation_metrics latency;

  /// Makes `next` the live definition (null deletes); clears the previous
  /// one's caches. Returns false when deleting an already deleted keyspace.
  bool replace(std::shared_ptr<keyspace_runtime> next) {
    std::lock_guard lock(mutex);
    keyspace_runtime* prev = current.load(std::memory_order_acquire);
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

#endif  // DISTCACHE_CORE_KEYSPACE_RUNTIME_HPP
