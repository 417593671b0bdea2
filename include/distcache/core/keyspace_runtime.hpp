// distcache — the live state of one keyspace definition, and the registry
// slot that holds a keyspace across its definitions.
#ifndef DISTCACHE_CORE_KEYSPACE_RUNTIME_HPP
#define DISTCACHE_CORE_KEYSPACE_RUNTIME_HPP

#include <atomic>
#include <cstdint>
#include <distcache/cache/detail/counters.hpp>
#include <distcache/cache/detail/frequency_sketch.hpp>
#include <distcache/cache/detail/recent_writes.hpp>
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

/// A key whose load waits to leave in one fetch_many call.
struct batched_key {
  std::string key;
  std::uint64_t hash;
};

/// The keys of a keyspace waiting for their fetch_many call (sources with
/// fetch_many only): a call leaves when fetch_batch_keys are waiting, or
/// fetch_batch_wait after the first of them arrived.
struct load_batch {
  std::mutex mutex;
  std::vector<batched_key> keys;
  bool armed = false;  // a timer will send what waits
};

/// One definition of a keyspace with its caches and in-flight loads.
/// update_keyspace() replaces the whole runtime, so a load that started under
/// the old definition publishes into the old (retired, cleared) caches and
/// can never bring an old value back.
struct keyspace_runtime : std::enable_shared_from_this<keyspace_runtime> {
  keyspace_runtime(std::unique_ptr<keyspace_adapter> a, resolved_keyspace o,
                   const clock_source* clock, const guard_policies& policies,
                   duration write_memory = std::chrono::seconds(10),
                   std::size_t write_memory_writes = 65536)
      : adapter(std::move(a)),
        opts(std::move(o)),
        guard(opts, clock, policies),
        main(opts.max_bytes,
             opts.shards != 0 ? opts.shards : value_cache::default_shards(opts.max_bytes), clock,
             opts.max_stale),
        hot(opts.hot_max_bytes,
            opts.shards != 0 ? opts.shards : value_cache::default_shards(opts.hot_max_bytes),
            clock),
        sketch(opts.track_hot_keys ? std::make_unique<frequency_sketch>(expected_keys(opts))
                                   : nullptr),
        writes(write_memory, write_memory_writes) {}

  /// Entries the caches hold when full of small values (a 100-byte value
  /// is charged about 300 bytes): what the frequency sketch is sized for.
  static std::size_t expected_keys(const resolved_keyspace& o) noexcept {
    return static_cast<std::size_t>((o.max_bytes + o.hot_max_bytes) / 256);
  }

  /// Counts a read of `hash` in the sketch, one read in sample_every chosen
  /// at random: the sketch sees a uniform sample of every read (hits,
  /// misses, peers' reads). A read costs a thread-local decrement; when the
  /// count runs out the read is sampled and the next gap is drawn at random
  /// from [1, 2 * sample_every - 1], so that a periodic access pattern (two
  /// keys read in turn) cannot alias with the sampling. A sampled read
  /// touches one word of the sketch, usually a miss of the CPU caches: that
  /// miss, not the decrement, is what tracking costs a hit
  /// (docs/performance.md).
  void note_read(std::uint64_t hash) noexcept {
    if (sketch) sample_read(hash);
  }
  void sample_read(std::uint64_t hash) noexcept {
    // Constant-initialized, so reaching them is a thread-pointer-relative
    // access (no TLS initialization guard).
    thread_local std::uint32_t countdown = 0;
    thread_local std::uint64_t x = 0;
    if (countdown > 1) [[likely]] {
      --countdown;
      return;
    }
    if (x == 0) [[unlikely]]
      x = sampling_seed();
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    countdown = 1 + static_cast<std::uint32_t>(x % (2 * sample_every - 1));
    sketch->increment(hash, x >> 16);
  }
  /// A distinct non-zero xorshift64 seed per thread.
  static std::uint64_t sampling_seed() noexcept {
    static std::atomic<std::uint64_t> next{0x9E3779B97F4A7C15ULL};
    const std::uint64_t s = next.fetch_add(0x6A09E667F3BCC909ULL, std::memory_order_relaxed);
    return s != 0 ? s : 1;
  }
  /// One read in this many is counted (a power of two).
  static constexpr std::uint32_t sample_every = 64;

  const std::unique_ptr<keyspace_adapter> adapter;  // the typed definition
  const resolved_keyspace opts;
  source_guard guard;  // rate limiter, circuit breaker, concurrency limit of the source
  value_cache main;    // keys this node owns
  value_cache hot;     // keys other nodes own, copied here because they are read often
  /// Reads of this keyspace's keys, sampled (null: track_hot_keys off). Admits
  /// values to the hot cache and names the hot keys.
  const std::unique_ptr<frequency_sketch> sketch;
  singleflight flights;
  /// Keys written here lately (in a cluster): a warm-up push of one is refused.
  recent_writes writes;
  load_batch batch;                  // sources with fetch_many
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
