// distcache — engine_core: the read path. A get travels top to bottom:
// cache → singleflight → owner (cluster_operations::load_remotely) or source (load_locally →
// source guard → fetch_on_pool) → flight → caller.
#ifndef DISTCACHE_CORE_IMPL_READ_PATH_IPP
#define DISTCACHE_CORE_IMPL_READ_PATH_IPP

#include <distcache/core/engine_core.hpp>
#include <distcache/detail/hash.hpp>
#include <exception>

namespace distcache::detail {

/// Ends an async get's scope when its waiter completes.
class scope_observer final : public completion_observer {
 public:
  scope_observer(engine_core& core, op_scope scope) : core_(core), scope_(scope) {}
  void completed(error_code ec) noexcept override { core_.end_op(scope_, ec); }

 private:
  engine_core& core_;
  op_scope scope_;
};

result<engine_core::value_handle> engine_core::get(std::size_t ks, std::string_view key) {
  if (auto ec = check_blocking_call()) return ec;
  auto rt = runtime_for(ks, key);
  if (!rt) return rt.error();
  auto& slot = *slots_[ks];
  auto scope = begin_op(ks, telemetry::operation::get, 1);
  const std::uint64_t h = hash_key(key);
  if (auto v = cached(slot, **rt, {key, h})) {
    slot.counters.cache_hits.add();
    if (is_negative(v)) {
      slot.counters.negative_hits.add();
      const auto nf = make_error_code(errc::not_found);
      end_op(scope, nf);
      return nf;
    }
    end_op(scope, {});
    return v;
  }
  auto w = std::make_shared<sync_waiter>(std::string(key), h);
  const bool here =
      join_load(slot, **rt, w->key(), w, scope.context, (*rt)->opts.fetch_on_caller_thread);
  slot.counters.loads.add();  // after joining: `loads` callers are all in a flight
  // Spin only for a load of this node's: a peer's answer takes a network
  // round trip, longer than any useful spin.
  auto [ec, value] =
      w->wait((*rt)->flights, (*rt)->opts.read_timeout, here ? cfg_.spin_wait : duration::zero());
  end_op(scope, ec);
  if (ec) return ec;
  return value;
}

engine_core::value_handle engine_core::peek(std::size_t ks, std::string_view key) const {
  if (check_state() || check_key(key)) return nullptr;
  auto* rt = slots_[ks]->current.load(std::memory_order_acquire);
  if (rt == nullptr) return nullptr;
  // Only a fresh value: a cached not_found, or a value due for a reload,
  // takes the general path, which answers and reloads.
  const hashed_key hk{key, hash_key(key)};
  rt->note_read(hk.hash);
  freshness state = freshness::fresh;
  auto v = rt->main.get(hk, nullptr, &state);
  if (!v) v = rt->hot.get(hk);
  if (!v || state != freshness::fresh || is_negative(v)) return nullptr;
  return v;
}

result<void> engine_core::read(std::size_t ks, std::string_view key, value_visitor visit) {
  if (auto ec = check_blocking_call()) return ec;
  auto rt = runtime_for(ks, key);
  if (!rt) return rt.error();
  auto& slot = *slots_[ks];
  const hashed_key hk{key, hash_key(key)};
  auto scope = begin_op(ks, telemetry::operation::get, 1);
  // A fresh value of the main cache, read in place; a cached not_found, a
  // value due for a reload and a hot copy take get()'s path. The hit is
  // counted and observed before fn runs, as get()'s is before it returns.
  const bool served = (*rt)->main.visit(hk, [&](const void* v) {
    if (is_negative(v)) return false;
    slot.counters.cache_hits.add();
    (*rt)->note_read(hk.hash);
    end_op(scope, {});
    const read_mark inside;
    visit.call(visit.context, v);
    return true;
  });
  if (served) return {};
  auto v = get(ks, key);  // counts and observes itself
  if (!v) return v.error();
  const read_mark inside;
  visit.call(visit.context, v->get());
  return {};
}

void engine_core::count_hits(std::size_t ks, std::uint64_t n) noexcept {
  slots_[ks]->counters.cache_hits.add(n);
}

void engine_core::async_get(std::size_t ks, std::string key, get_handler handler) {
  auto rt = runtime_for(ks, key);
  if (!rt) return post_result(std::move(handler), rt.error(), value_handle{});
  auto& slot = *slots_[ks];
  auto scope = begin_op(ks, telemetry::operation::get, 1);
  const std::uint64_t h = hash_key(key);
  if (auto v = cached(slot, **rt, {key, h})) {
    slot.counters.cache_hits.add();
    if (is_negative(v)) {
      slot.counters.negative_hits.add();
      const auto nf = make_error_code(errc::not_found);
      end_op(scope, nf);
      return post_result(std::move(handler), nf, value_handle{});
    }
    end_op(scope, {});
    return post_result(std::move(handler), error_code{}, std::move(v));
  }
  auto w = std::make_shared<async_waiter>(deadlines_, ioc_.get_executor(), std::move(key), h,
                                          std::move(handler));
  const telemetry::span_context parent = scope.context;
  if (scope.active()) w->observe(std::make_unique<scope_observer>(*this, scope));
  // Connected before joining: once joined, the load may complete (and take
  // the handler) on another thread at any moment.
  w->connect_cancellation((*rt)->flights);
  w->arm((*rt)->flights, (*rt)->opts.read_timeout);  // before joining: see timed_waiter
  join_load(slot, **rt, w->key(), w, parent);
  slot.counters.loads.add();  // after joining: `loads` callers are all in a flight
}

// Joins (or starts) the flight of `k` with `w` (whose deadline, if any, is
// already armed). The leader loads the key from its owner when that is
// another node, else from the data source.
bool engine_core::join_load(keyspace_slot& slot, keyspace_runtime& rt, hashed_key k,
                            std::shared_ptr<waiter> w, const telemetry::span_context& parent,
                            bool here) {
  std::shared_ptr<const ring> r;
  const std::string* owner = nullptr;  // null: this node
  if (cluster_) {
    r = cluster_->current();
    owner = &r->nodes()[r->owner_index(k.hash)];
    if (*owner == cluster_->self()) owner = nullptr;
  }
  if (!rt.flights.join(k, std::move(w))) return owner == nullptr;
  if (settle_from_cache(rt, k)) return owner == nullptr;
  slot.counters.loads_deduped.add();
  if (owner != nullptr) {
    remote_->load_remotely(slot, rt, *owner, r->version(), {{std::string(k.text), k.hash}}, parent);
    return false;
  }
  load_locally(slot, rt, std::string(k.text), k.hash, parent, here);
  return true;
}

// The miss and the join are two steps: a flight of the key that ended between
// them has published its value already (publish runs before a flight ends),
// and a new load would call the source a second time for nothing.
bool engine_core::settle_from_cache(keyspace_runtime& rt, hashed_key key) {
  time_point expires = never_expires;
  freshness state = freshness::fresh;
  auto v = rt.main.get(key, &expires, &state);
  if (v && state != freshness::fresh) return false;  // due for a reload: load it
  if (!v) v = rt.hot.get(key, &expires);
  if (!v || is_negative(v)) return false;
  rt.flights.finish(
      key, {}, v, [] { return error_code{}; }, expires);
  return true;
}

void engine_core::async_get_many(std::size_t ks, std::vector<std::string> keys,
                                 get_many_handler handler, op_scope scope) {
  // A call refused before it starts is not measured (as for every operation).
  if (auto ec = check_state()) return post_result(std::move(handler), ec, values{});
  auto& slot = *slots_[ks];
  auto* rt = slot.current.load(std::memory_order_acquire);
  if (rt == nullptr) {
    return post_result(std::move(handler), make_error_code(errc::keyspace_not_found), values{});
  }
  if (keys.empty()) {
    end_op(scope, {});
    return post_result(std::move(handler), error_code{}, values{});
  }
  auto work = tracked_executor(handler, ioc_.get_executor());
  const telemetry::span_context parent = scope.context;
  auto all = gather<result<value_handle>>::make(
      keys.size(), [this, scope, h = std::make_shared<get_many_handler>(std::move(handler)),
                    work](values results) mutable {
        end_op(scope, {});
        dispatch_job(work, make_job([h, results = std::move(results)]() mutable {
                       std::move (*h)(error_code{}, std::move(results));
                     }));
      });
  // Each key joins its flight as a single get would; the flights this call
  // leads for keys of another owner leave in one batch per owner.
  std::map<std::string, std::vector<pending_key>> batches;
  std::shared_ptr<waiter_batch> batch;  // made at the first miss: one deadline for the call
  const bool cluster = cluster_ != nullptr;
  auto r = cluster ? cluster_->current() : solo_ring_;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (auto ec = check_key(keys[i])) {
      all->set(i, ec);
      continue;
    }
    const std::uint64_t h = hash_key(keys[i]);
    if (auto v = cached(slot, *rt, {keys[i], h})) {
      slot.counters.cache_hits.add();
      if (is_negative(v)) {
        slot.counters.negative_hits.add();
        all->set(i, make_error_code(errc::not_found));
      } else {
        all->set(i, std::move(v));
      }
      continue;
    }
    if (!batch) {
      batch = waiter_batch::make(
          ioc_.get_executor(), rt->flights, keys.size(), rt->opts.read_timeout,
          [all](std::size_t index, error_code ec, const value_handle& v, time_point /*expires*/) {
            if (ec) {
              all->set(index, ec);
            } else {
              all->set(index, v);
            }
          });
    }
    const bool leader = batch->join(i, keys[i], h);
    slot.counters.loads.add();
    if (!leader || settle_from_cache(*rt, {keys[i], h})) continue;
    slot.counters.loads_deduped.add();
    const std::string* owner = cluster ? &r->nodes()[r->owner_index(h)] : nullptr;
    if (owner == nullptr || *owner == cluster_->self()) {
      load_locally(slot, *rt, std::move(keys[i]), h, parent);
    } else {
      batches[*owner].push_back({std::move(keys[i]), h});
    }
  }
  if (batch) batch->done_joining();
  for (auto& [owner, keys_of_owner] : batches) {
    remote_->load_remotely(slot, *rt, owner, r->version(), std::move(keys_of_owner), parent);
  }
}

// Loads one flight's key from the data source, through the source guard.
void engine_core::load_locally(keyspace_slot& slot, keyspace_runtime& rt, std::string key,
                               std::uint64_t hash, const telemetry::span_context& parent,
                               bool here) {
  if (rt.adapter->batches()) return load_batched(slot, rt, std::move(key), hash);
  guard_context ctx{&ioc_, pool_.get(), &running_, cfg_.clock.get(), here, &here_calls_};
  rt.guard.admit(ctx, [this, &slot, rt = rt.shared_from_this(), key = std::move(key), hash,
                       parent](error_code refused) {
    if (refused) {
      rt->flights.finish({key, hash}, refused, nullptr, [] { return error_code{}; });
      return;
    }
    fetch_on_pool(slot, *rt, key, hash, parent);
  });
}

// Calls the data source (on the blocking pool), gives the guard the outcome
// and publishes the value into the main cache.
void engine_core::fetch_on_pool(keyspace_slot& slot, keyspace_runtime& rt, const std::string& key,
                                std::uint64_t hash, const telemetry::span_context& parent) {
  if (!running_.load(std::memory_order_acquire)) {
    // stop() has answered this flight's callers: do not call the source for
    // nobody. Queued loads drain this way without waiting for the source.
    rt.guard.abandon();
    rt.flights.finish({key, hash}, make_error_code(errc::stopped), nullptr,
                      [] { return error_code{}; });
    return;
  }
  error_code ec;
  loaded_value loaded;
  auto scope = begin_op(slot, telemetry::operation::fetch, 1, &parent,
                        telemetry::span_kind::internal, false);
  {
    const engine_thread_mark mark(this);
    try {
      auto fetched = rt.adapter->fetch(key);
      if (fetched) {
        loaded = std::move(*fetched);
        slot.counters.local_loads.add();
      } else {
        ec = fetched.error();
        if (ec != errc::not_found) slot.counters.local_load_errs.add();
      }
    } catch (const std::exception& e) {
      ec = make_error_code(errc::data_source_failed);
      slot.counters.local_load_errs.add();
      cfg_.log(log_level::warning, "keyspace '" + slot.name + "': data source threw for key '" +
                                       key.substr(0, 64) + "': " + e.what());
    } catch (...) {
      ec = make_error_code(errc::data_source_failed);
      slot.counters.local_load_errs.add();
      cfg_.log(log_level::warning,
               "keyspace '" + slot.name + "': data source threw a non-standard exception");
    }
  }
  rt.guard.finish(ec);
  end_op(scope, ec);
  settle(rt, key, hash, ec, loaded);
}

void engine_core::settle(keyspace_runtime& rt, const std::string& key, std::uint64_t hash,
                         error_code ec, const loaded_value& loaded) {
  if (ec == errc::not_found) {
    rt.flights.finish_not_found({key, hash}, [&] { publish_not_found(rt, rt.main, {key, hash}); });
    return;
  }
  time_point expires = never_expires;
  if (!ec && loaded.expires_at != time_point::min()) {
    expires = loaded.expires_at;
  } else if (!ec) {
    try {
      expires = expiry_for(rt, key, duration::zero());  // calls the keyspace's expires_at()
    } catch (...) {
      ec = make_error_code(errc::data_source_failed);
      cfg_.log(log_level::warning, "keyspace '" + std::string(rt.adapter->name()) +
                                       "': expires_at threw for key '" + key.substr(0, 64) + "'");
    }
  }
  rt.flights.finish(
      {key, hash}, ec, loaded.value,
      [&]() -> error_code {
        if (rt.retired.load(std::memory_order_acquire)) return {};
        if (expires != never_expires && expires <= now()) return {};  // already expired
        if (!rt.main.put({key, hash}, loaded.value, loaded.bytes, lifetime_of(rt, expires))) {
          return make_error_code(errc::value_too_large);
        }
        return {};
      },
      expires);
}

}  // namespace distcache::detail

#endif  // DISTCACHE_CORE_IMPL_READ_PATH_IPP
