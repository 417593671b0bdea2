// distcache — engine_core: warm-up (docs/freshness.md#warm-up). When the
// ring changes, at start() and after update_keyspace(), a node looks at its
// warm keys and its hot keys and, for each, does what is cheapest for the
// cluster: nothing when it holds the key as owner; moves a hot copy into
// the main cache when it became the owner (no source call); pushes the value
// to the new owner when it held the key as the previous owner (warm join: no
// source call); loads it from the source, through the source guard, when it
// owns the key and nobody has it. At most `concurrency` operations run at
// once per keyspace, each bounded by its timeout.
#ifndef DISTCACHE_CORE_IMPL_WARM_UP_IPP
#define DISTCACHE_CORE_IMPL_WARM_UP_IPP

#include <algorithm>
#include <boost/asio/bind_executor.hpp>
#include <distcache/core/engine_core.hpp>
#include <distcache/detail/hash.hpp>
#include <set>

namespace distcache::detail {

/// One warm-up of one keyspace: its keys and its progress.
struct engine_core::warm_run {
  keyspace_slot* slot = nullptr;
  std::shared_ptr<keyspace_runtime> rt;
  std::vector<std::string> keys;  // the warm keys first, then the hot keys
  std::size_t warm_keys = 0;      // how many of `keys` are configured warm keys
  bool may_load_hot = true;       // hot keys may be loaded from the source
  std::string why;                // "start", "update_keyspace", "join of …"
  std::atomic<std::size_t> next{0};
  std::atomic<std::size_t> workers{0};
  std::atomic<bool> loads_stopped{false};  // a load failed: no more loads
  std::atomic<std::uint64_t> loaded{0}, promoted{0}, pushed{0}, failed{0}, skipped{0};
};

std::vector<std::string> engine_core::warm_candidates(const keyspace_runtime& rt) const {
  std::vector<std::string> out;
  if (!rt.sketch || rt.opts.warmup.max_hot_keys == 0) return out;
  for (auto& h : hot_keys_of(rt, rt.opts.warmup.max_hot_keys)) {
    if (h.frequency >= rt.opts.warmup.min_hits) out.push_back(std::move(h.key));
  }
  return out;
}

void engine_core::warm(std::size_t ks, std::vector<std::string> hot, std::string why) {
  auto& slot = *slots_[ks];
  auto* rt = slot.current.load(std::memory_order_acquire);
  if (rt == nullptr || !running_.load(std::memory_order_acquire)) return;
  auto run = std::make_shared<warm_run>();
  run->slot = &slot;
  run->rt = rt->shared_from_this();
  run->why = std::move(why);
  std::set<std::string, std::less<>> seen;
  for (const auto& k : rt->opts.warm_keys) {
    if (seen.insert(k).second) run->keys.push_back(k);
  }
  run->warm_keys = run->keys.size();
  for (auto& k : hot) {
    if (check_key(k)) continue;
    if (seen.insert(k).second) run->keys.push_back(std::move(k));
  }
  if (run->keys.empty()) return;
  // Protection (docs/freshness.md#warm-up): with a rate limiter, hot keys are
  // not loaded (the tokens are the callers'); with a breaker, fewer loads run
  // at once than the failures that open it, and loads stop at the first
  // failure, so a warm-up alone never opens it.
  std::size_t workers = std::min(rt->opts.warmup.concurrency, run->keys.size());
  run->may_load_hot = !rt->opts.rate_limiter.has_value();
  if (const auto& b = rt->opts.circuit_breaker) {
    if (b->failure_threshold <= 1) {
      run->may_load_hot = false;
    } else {
      workers = std::min(workers, static_cast<std::size_t>(b->failure_threshold - 1));
    }
  }
  run->workers = workers;
  for (std::size_t i = 0; i < workers; ++i) {
    net::post(ioc_, [this, run] { warm_step(run); });
  }
}

// Runs the next keys of `run` until one needs an asynchronous operation (its
// completion calls warm_step again) or none is left.
void engine_core::warm_step(const std::shared_ptr<warm_run>& run) {
  auto& slot = *run->slot;
  auto& rt = *run->rt;
  for (;;) {
    const std::size_t i = run->next.fetch_add(1);
    if (i >= run->keys.size() || !running_.load(std::memory_order_acquire) ||
        rt.retired.load(std::memory_order_acquire)) {
      if (run->workers.fetch_sub(1) == 1) {
        cfg_.log(log_level::info, "keyspace '" + slot.name + "': warm-up (" + run->why +
                                      ") done: " + std::to_string(run->loaded.load()) +
                                      " loaded, " + std::to_string(run->promoted.load()) +
                                      " promoted, " + std::to_string(run->pushed.load()) +
                                      " pushed, " + std::to_string(run->failed.load()) +
                                      " failed, " + std::to_string(run->skipped.load()) +
                                      " skipped");
      }
      return;
    }
    const std::string& key = run->keys[i];
    const hashed_key hk{key, hash_key(key)};
    const bool warm_key = i < run->warm_keys;
    std::string owner;
    if (cluster_) {
      auto r = cluster_->current();
      owner = r->nodes()[r->owner_index(hk.hash)];
      if (owner == cluster_->self()) owner.clear();
    }
    const duration timeout = std::min(rt.opts.warmup.timeout, rt.opts.read_timeout);
    time_point expires = never_expires;
    if (owner.empty()) {
      if (rt.main.get(hk)) {  // held here already (fresh or due for refresh)
        run->skipped.fetch_add(1);
        continue;
      }
      if (promote(rt, hk)) {
        run->promoted.fetch_add(1);
        slot.counters.warmed_keys.add();
        continue;
      }
    } else if (auto v = rt.main.get(hk, &expires); v && !is_negative(v)) {
      // This node held the key as its owner; the new owner gets the value,
      // unless a write of the key reaches it first (docs/reliability.md).
      const std::uint64_t read_ms = unix_ms();
      std::string encoded;
      rt.adapter->serialize(v.get(), encoded);
      cluster_->client().push(owner, slot.name, key, std::move(encoded), to_ttl_ms(expires),
                              cluster_->current()->version(), read_ms, timeout, std::string(),
                              [this, run, owner](error_code ec) {
                                if (ec) {
                                  run->failed.fetch_add(1);
                                  cfg_.log(log_level::warning, "keyspace '" + run->slot->name +
                                                                   "': warm-up push to " + owner +
                                                                   " failed: " + ec.message());
                                } else {
                                  run->pushed.fetch_add(1);
                                  run->slot->counters.warmed_keys.add();
                                }
                                warm_step(run);
                              });
      return;
    } else if (!warm_key) {
      run->skipped.fetch_add(1);  // the owner has it, or loads it when asked
      continue;
    }
    // Load it: here as its owner, or (a warm key owned elsewhere) at its owner.
    if (run->loads_stopped.load() || (!warm_key && !run->may_load_hot)) {
      run->skipped.fetch_add(1);
      continue;
    }
    keyspace_stats guard_state;
    rt.guard.fill_stats(guard_state);
    if (guard_state.circuit_state != protection::breaker_state::closed) {
      run->skipped.fetch_add(1);
      continue;
    }
    auto done = net::bind_executor(
        ioc_.get_executor(), [this, run, key](error_code ec, const value_handle&) {
          if (ec && ec != errc::not_found && ec != errc::stopped) {
            run->failed.fetch_add(1);
            run->loads_stopped.store(true);
            cfg_.log(log_level::warning, "keyspace '" + run->slot->name + "': warm key '" +
                                             key.substr(0, 64) + "' failed: " + ec.message() +
                                             "; this warm-up loads nothing more");
          } else if (!ec) {
            run->loaded.fetch_add(1);
            run->slot->counters.warmed_keys.add();
          }
          warm_step(run);
        });
    auto w = std::make_shared<async_waiter>(deadlines_, ioc_.get_executor(), key, hk.hash,
                                            async_waiter::handler_type(std::move(done)));
    w->arm(rt.flights, timeout);
    // Counted before joining: the load may complete on another thread at
    // once, and whoever sees it counted in `warmed_keys` sees it in `loads`.
    slot.counters.loads.add();
    join_load(slot, rt, w->key(), w, {});
    return;
  }
}

// Moves the hot copy of `key` into the main cache (this node became its
// owner), unless a write of the key comes first: the move is published by a
// flight, which a put or remove invalidates.
bool engine_core::promote(keyspace_runtime& rt, hashed_key key) {
  time_point expires = never_expires;
  auto v = rt.hot.get(key, &expires);
  if (!v || is_negative(v) || !rt.flights.lead(key)) return false;
  bool moved = false;
  rt.flights.finish(
      key, {}, v,
      [&]() -> error_code {
        if (rt.main.get(key)) return {};
        moved = rt.main.put(key, v, rt.adapter->value_bytes(v.get()), lifetime_of(rt, expires));
        if (moved) rt.hot.remove(key);
        return {};
      },
      expires);
  return moved;
}

void engine_core::on_membership(const peer_event& e) {
  if (!running_.load(std::memory_order_acquire)) return;
  if (e.kind != peer_event_kind::joined && e.kind != peer_event_kind::left) return;
  for (std::size_t ks = 0; ks < slots_.size(); ++ks) {
    auto* rt = slots_[ks]->current.load(std::memory_order_acquire);
    if (rt == nullptr) continue;
    const auto& w = rt->opts.warmup;
    if (e.kind == peer_event_kind::joined ? !w.warm_on_join : !w.warm_on_leave) continue;
    warm(ks, warm_candidates(*rt),
         std::string(e.kind == peer_event_kind::joined ? "join of " : "leave of ") + e.peer);
  }
}

}  // namespace distcache::detail

#endif  // DISTCACHE_CORE_IMPL_WARM_UP_IPP
