// distcache — engine_core: freshness (docs/freshness.md). What a hit does
// with a value past its refresh time or expired within max_stale, and how a
// not_found answer is cached.
#ifndef DISTCACHE_CORE_IMPL_FRESHNESS_IPP
#define DISTCACHE_CORE_IMPL_FRESHNESS_IPP

#include <algorithm>
#include <distcache/core/engine_core.hpp>

namespace distcache::detail {

engine_core::value_handle engine_core::cached(keyspace_slot& slot, keyspace_runtime& rt,
                                              hashed_key key, time_point* expires) {
  rt.note_read(key.hash);
  freshness state = freshness::fresh;
  if (auto v = rt.main.get(key, expires, &state)) {
    if (state == freshness::fresh) [[likely]]
      return v;
    return not_fresh(slot, rt, key, std::move(v), state, expires);
  }
  // Hot copies are fresh until their expiry and then gone.
  return rt.hot.get(key, expires);
}

engine_core::value_handle engine_core::not_fresh(keyspace_slot& slot, keyspace_runtime& rt,
                                                 hashed_key key, value_handle v, freshness state,
                                                 time_point* expires) {
  // A cached not_found is never served stale: past negative_ttl it is a miss.
  if (state == freshness::stale && is_negative(v)) return nullptr;
  // Refresh-ahead or a stale hit: only the owner reloads (one source call
  // per key cluster-wide); a stale value it cannot reload is a miss here.
  const bool reloading = revalidate(slot, rt, key);
  if (state == freshness::refresh) return v;
  if (!reloading) return nullptr;
  slot.counters.stale_served.add();
  if (expires != nullptr) *expires = now();  // a peer does not keep it
  return v;
}

bool engine_core::revalidate(keyspace_slot& slot, keyspace_runtime& rt, hashed_key key) {
  if (cluster_) {
    // A key this node kept from before a ring change is no longer its to load.
    auto r = cluster_->current();
    if (r->nodes()[r->owner_index(key.hash)] != cluster_->self()) return false;
  }
  // A reload in flight already (or a closed singleflight) is enough: the
  // value is served while it runs, whatever its outcome.
  if (!rt.flights.lead(key)) return true;
  // A reload that ended between this hit and lead() has replaced the value
  // already: end this flight with the fresh answer instead of loading again.
  freshness state = freshness::fresh;
  time_point expires = never_expires;
  if (auto v = rt.main.get(key, &expires, &state); v && state == freshness::fresh) {
    if (is_negative(v)) {
      rt.flights.finish_not_found(key, [] {});
    } else {
      rt.flights.finish(
          key, {}, v, [] { return error_code{}; }, expires);
    }
    return true;
  }
  slot.counters.refreshes.add();
  load_locally(slot, rt, std::string(key.text), key.hash, {});
  return true;
}

lifetime engine_core::lifetime_of(const keyspace_runtime& rt, time_point expires) const {
  lifetime life = lifetime::until(expires);
  if (rt.opts.refresh_after > duration::zero()) life.refresh_at = now() + rt.opts.refresh_after;
  return life;  // the stale window is the main cache's (max_stale)
}

void engine_core::publish_not_found(keyspace_runtime& rt, value_cache& cache,
                                    hashed_key key) const {
  if (rt.retired.load(std::memory_order_acquire)) return;
  if (rt.opts.negative_ttl > duration::zero()) {
    // Charged for its key and the entry, like an empty value.
    (void)cache.put(key, negative_value(), 0, now() + rt.opts.negative_ttl);
  } else {
    cache.remove(key);  // a stale value the source no longer has is not served again
  }
}

std::vector<hot_key> engine_core::hot_keys(std::size_t ks, std::size_t n) const {
  // Inside a read() function the walk could wait for a writer that waits
  // for that read.
  if (reads_in_progress != 0) return {};
  auto* rt = slots_[ks]->current.load(std::memory_order_acquire);
  if (rt == nullptr) return {};
  return hot_keys_of(*rt, n);
}

std::vector<hot_key> engine_core::hot_keys_of(const keyspace_runtime& runtime, std::size_t n) {
  const auto* rt = &runtime;
  if (!rt->sketch || n == 0) return {};
  // The n most frequent of the cached keys: a min-heap of n, so memory
  // stays O(n) whatever the cache holds.
  std::vector<hot_key> heap;
  const auto rarer = [](const hot_key& a, const hot_key& b) { return a.frequency > b.frequency; };
  const auto consider = [&](std::string_view key, std::uint64_t hash) {
    const unsigned f = rt->sketch->estimate(hash);
    if (f == 0) return;
    if (heap.size() < n) {
      heap.push_back({std::string(key), f});
      std::push_heap(heap.begin(), heap.end(), rarer);
    } else if (f > heap.front().frequency) {
      std::pop_heap(heap.begin(), heap.end(), rarer);
      heap.back() = {std::string(key), f};
      std::push_heap(heap.begin(), heap.end(), rarer);
    }
  };
  rt->main.for_each_key(consider);
  rt->hot.for_each_key(consider);
  std::sort_heap(heap.begin(), heap.end(), rarer);  // most frequent first
  return heap;
}

}  // namespace distcache::detail

#endif  // DISTCACHE_CORE_IMPL_FRESHNESS_IPP
