// distcache — engine_core: freshness (docs/freshness.md). What a hit does
// with a value past its refresh time or expired within max_stale, and how a
// not_found answer is cached.
#ifndef DISTCACHE_CORE_IMPL_FRESHNESS_IPP
#define DISTCACHE_CORE_IMPL_FRESHNESS_IPP

#include <distcache/core/engine_core.hpp>

namespace distcache::detail {

engine_core::value_handle engine_core::cached(keyspace_slot& slot, keyspace_runtime& rt,
                                              hashed_key key, time_point* expires) {
  freshness state = freshness::fresh;
  if (auto v = rt.main.get(key, expires, &state)) {
    if (state == freshness::fresh) return v;
    // Refresh-ahead or a stale hit: only the owner reloads (one source call
    // per key cluster-wide); a stale value it cannot reload is a miss here.
    const bool reloading = revalidate(slot, rt, key);
    if (state == freshness::refresh) return v;
    if (!reloading) return nullptr;
    slot.counters.stale_served.add();
    if (expires != nullptr) *expires = now();  // a peer does not keep it
    return v;
  }
  // Hot copies are fresh until their expiry and then gone.
  return rt.hot.get(key, expires);
}

bool engine_core::revalidate(keyspace_slot& slot, keyspace_runtime& rt, hashed_key key) {
  if (cluster_) {
    // A key this node kept from before a ring change is no longer its to load.
    auto r = cluster_->current();
    if (r->nodes()[r->owner_index(key.hash)] != cluster_->self()) return false;
  }
  // A reload in flight already (or a closed singleflight) is enough: the
  // value is served while it runs, whatever its outcome.
  if (rt.flights.lead(key)) {
    slot.counters.refreshes.add();
    load_locally(slot, rt, std::string(key.text), key.hash, {});
  }
  return true;
}

lifetime engine_core::lifetime_of(const keyspace_runtime& rt, time_point expires) const {
  lifetime life = lifetime::until(expires);
  if (rt.opts.refresh_after > duration::zero()) life.refresh_at = now() + rt.opts.refresh_after;
  if (expires != never_expires && rt.opts.max_stale > duration::zero()) {
    life.keep_until = expires + rt.opts.max_stale;
  }
  return life;
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

}  // namespace distcache::detail

#endif  // DISTCACHE_CORE_IMPL_FRESHNESS_IPP
