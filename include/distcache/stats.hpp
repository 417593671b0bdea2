// distcache — keyspace_stats: what a keyspace has done and holds.
#ifndef DISTCACHE_STATS_HPP
#define DISTCACHE_STATS_HPP

#include <cstddef>
#include <cstdint>
#include <distcache/clock.hpp>
#include <distcache/protection/circuit_breaker.hpp>
#include <string>

namespace distcache {

/// A snapshot of one keyspace's counters. Counters are cumulative over the
/// engine's life (they survive update_keyspace and delete_keyspace); the byte
/// and item figures describe the caches now. The meanings follow groupcache's.
struct keyspace_stats {
  std::uint64_t gets = 0;             ///< get requests, hits and misses, incl. each key of get_many
  std::uint64_t cache_hits = 0;       ///< gets answered from the main or hot cache
  std::uint64_t peer_loads = 0;       ///< misses answered by the owning peer
  std::uint64_t peer_errors = 0;      ///< requests to a peer that failed
  std::uint64_t peer_waits = 0;       ///< keys asked again: their owner answered "still loading"
  std::uint64_t loads = 0;            ///< misses (gets - cache_hits)
  std::uint64_t loads_deduped = 0;    ///< loads after singleflight: one per shared flight
  std::uint64_t local_loads = 0;      ///< data-source calls that returned a value
  std::uint64_t local_load_errs = 0;  ///< data-source calls that failed (not_found excluded)
  std::uint64_t remove_keys_requests = 0;  ///< remove and remove_many calls received
  std::uint64_t removed_keys = 0;          ///< keys that were present and removed
  // Freshness (docs/freshness.md).
  std::uint64_t negative_hits =
      0;  ///< gets answered not_found from a cached not_found (in cache_hits)
  std::uint64_t stale_served = 0;    ///< expired values served within max_stale (in cache_hits)
  std::uint64_t refreshes = 0;       ///< background reloads started (refresh-ahead and stale hits)
  std::uint64_t warmed_keys = 0;     ///< keys a warm-up loaded, moved to the main cache or pushed
  std::uint64_t pushes_refused = 0;  ///< peers' warm-up pushes not stored: the key was written here
                                     ///< lately, or the push was old
  std::int64_t main_cache_bytes = 0;  ///< bytes charged in the main cache now
  std::int64_t hot_cache_bytes = 0;   ///< bytes charged in the hot cache now
  std::size_t main_cache_items = 0;   ///< entries in the main cache now
  std::size_t hot_cache_items = 0;    ///< entries in the hot cache now
  std::uint64_t evictions = 0;  ///< entries evicted for room, main and hot, current definition
  std::uint64_t hot_refused =
      0;  ///< peers' values the hot cache's admission filter kept out, current definition
  // Protection of the current definition's data source (protection.md).
  std::uint64_t rate_limited = 0;  ///< loads refused by the rate limiter
  std::uint64_t overloaded = 0;    ///< loads refused at once: max_queued_fetches waited already
  protection::breaker_state circuit_state = protection::breaker_state::closed;  ///< breaker state
  time_point circuit_last_change{};    ///< when the breaker last changed state
  std::uint64_t circuit_rejected = 0;  ///< loads the open breaker refused
  std::size_t fetches_in_flight = 0;   ///< data-source calls running now
  std::size_t fetches_queued = 0;      ///< loads waiting for the concurrency limit
};

/// A key read often lately (basic_engine::hot_keys).
struct hot_key {
  std::string key;
  /// Its estimated reads since the sketch last halved, sampled (about one
  /// read in 64 is counted), 1..15: a rank, not a count.
  unsigned frequency = 0;
};

}  // namespace distcache

#endif  // DISTCACHE_STATS_HPP
