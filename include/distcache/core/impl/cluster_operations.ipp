// distcache — engine_core: everything it does only in a cluster. It asks
// owners for keys (the one place a peer's answer reaches the caches), tells
// peers about writes, and answers peers: a request that came from a peer is
// answered from this node's caches or by a local load as owner, and is never
// forwarded again.
#ifndef DISTCACHE_CORE_IMPL_CLUSTER_OPERATIONS_IPP
#define DISTCACHE_CORE_IMPL_CLUSTER_OPERATIONS_IPP

#include <algorithm>
#include <distcache/core/engine_core.hpp>
#include <distcache/detail/hash.hpp>
#include <map>

namespace distcache::detail {

bool engine_core::cluster_operations_impl::has_keyspace(std::string_view name) const {
  auto* slot = core_.slot_named(name);
  return slot != nullptr && slot->current.load(std::memory_order_acquire) != nullptr;
}

void engine_core::cluster_operations_impl::on_peer_request(const transport::request_info& info) {
  if (core_.cluster_) core_.cluster_->ring_version_seen(info.from, info.ring_version);
}

void engine_core::cluster_operations_impl::get(
    std::string_view keyspace, std::vector<std::string> keys,
    std::function<void(std::vector<transport::reply_item>)> done) {
  get_from(keyspace, std::move(keys), transport::request_info{}, std::move(done));
}

// Answers a peer's get inside a server span that continues the sender's
// trace (its traceparent), when the engine traces.
void engine_core::cluster_operations_impl::get_from(
    std::string_view keyspace, std::vector<std::string> keys, const transport::request_info& info,
    std::function<void(std::vector<transport::reply_item>)> done) {
  auto* slot = core_.slot_named(keyspace);
  if (slot == nullptr) {
    std::vector<transport::reply_item> items(
        keys.size(), transport::reply_item::failed(errc::keyspace_not_found));
    return done(std::move(items));
  }
  // The asker waits info.wait_ms for the reply: a key still loading when
  // three quarters of it have passed is answered "loading", so that the
  // asker asks again instead of loading it too (a slow owner is not a dead
  // one). The load goes on.
  const duration answer_within =
      info.wait_ms == 0
          ? duration::zero()
          : std::max<duration>(std::chrono::milliseconds(info.wait_ms - info.wait_ms / 4),
                               std::chrono::milliseconds(1));
  auto scope = serve_scope(slot, telemetry::operation::peer_get, keys.size(), info);
  const telemetry::span_context parent = scope.context;
  if (!scope.active()) {
    return serve_get(*slot, std::move(keys), std::move(done), parent, answer_within);
  }
  serve_get(
      *slot, std::move(keys),
      [this, scope, from = std::string(info.from),
       done = std::move(done)](std::vector<transport::reply_item> items) mutable {
        core_.end_op(scope, {}, std::move(from));
        done(std::move(items));
      },
      parent, answer_within);
}

op_scope engine_core::cluster_operations_impl::serve_scope(keyspace_slot* slot,
                                                           telemetry::operation op,
                                                           std::size_t keys,
                                                           const transport::request_info& info) {
  if (!core_.telemetry_ || slot == nullptr) return {};
  const auto remote = telemetry::parse_traceparent(info.traceparent);
  const telemetry::span_context none;
  return core_.begin_op(*slot, op, keys, remote ? &*remote : &none, telemetry::span_kind::server,
                        true);
}

op_scope engine_core::cluster_operations_impl::client_scope(keyspace_slot& slot,
                                                            telemetry::operation op,
                                                            std::size_t keys,
                                                            const telemetry::span_context& parent,
                                                            std::string& traceparent) {
  auto scope = core_.begin_op(slot, op, keys, &parent, telemetry::span_kind::client, false);
  if (scope.context.valid()) traceparent = telemetry::format_traceparent(scope.context);
  return scope;
}

error_code engine_core::cluster_operations_impl::set_from(std::string_view keyspace,
                                                          std::string key, std::string value,
                                                          std::int64_t ttl_ms,
                                                          const transport::request_info& info) {
  auto scope = serve_scope(core_.slot_named(keyspace), telemetry::operation::peer_set, 1, info);
  if (info.push_read_ms == 0) pass_on_write(keyspace, {key}, info);
  const error_code ec = store_from_peer(keyspace, key, value, ttl_ms, info.push_read_ms);
  core_.end_op(scope, ec, std::string(info.from));
  return ec;
}

std::size_t engine_core::cluster_operations_impl::remove_from(std::string_view keyspace,
                                                              const std::vector<std::string>& keys,
                                                              const transport::request_info& info) {
  auto scope =
      serve_scope(core_.slot_named(keyspace), telemetry::operation::peer_remove, keys.size(), info);
  pass_on_write(keyspace, keys, info);
  const std::size_t n = remove(keyspace, keys);
  core_.end_op(scope, {}, std::string(info.from));
  return n;
}

void engine_core::cluster_operations_impl::invalidate_from(std::string_view keyspace,
                                                           const std::vector<std::string>& keys,
                                                           const transport::request_info& info) {
  auto scope = serve_scope(core_.slot_named(keyspace), telemetry::operation::peer_invalidate,
                           keys.size(), info);
  pass_on_write(keyspace, keys, info);
  invalidate(keyspace, keys);
  core_.end_op(scope, {}, std::string(info.from));
}

// Ring agreement for writes (docs/architecture.md): a sender whose ring
// differs from this node's may have left out a node that this one counts
// (one that joined, say), which then keeps an old value. The keys are passed
// on as an invalidation to every other node this one knows, with ring
// version 0 so that nobody passes them on again (a hop limit of 1).
void engine_core::cluster_operations_impl::pass_on_write(std::string_view keyspace,
                                                         const std::vector<std::string>& keys,
                                                         const transport::request_info& info) {
  if (!core_.cluster_ || info.ring_version == 0 || keys.empty()) return;
  auto* slot = core_.slot_named(keyspace);
  auto* rt = slot != nullptr ? slot->current.load(std::memory_order_acquire) : nullptr;
  if (rt == nullptr || info.ring_version == core_.cluster_->current()->version()) return;
  for (const auto& peer : core_.cluster_->alive_peers()) {
    if (peer == info.from) continue;
    core_.cluster_->client().invalidate(peer, slot->name, keys, 0, rt->opts.write_timeout,
                                        [this, peer, name = slot->name](error_code ec) {
                                          if (!ec) return;
                                          std::string line = "keyspace '";
                                          line += name;
                                          line += "': passing a write on to ";
                                          line += peer;
                                          line += " failed: ";
                                          line += ec.message();
                                          core_.cfg_.log(log_level::warning, line);
                                        });
  }
}

error_code engine_core::cluster_operations_impl::set(std::string_view keyspace, std::string key,
                                                     std::string value, std::int64_t ttl_ms) {
  return store_from_peer(keyspace, key, value, ttl_ms, 0);
}

// Stores a peer's value: a put's (always) or a warm-up push's (unless a
// write of the key reached this node lately, or the sender read it long
// ago: writes win over warm-up). A refused push is answered like a stored one.
error_code engine_core::cluster_operations_impl::store_from_peer(std::string_view keyspace,
                                                                 const std::string& key,
                                                                 const std::string& value,
                                                                 std::int64_t ttl_ms,
                                                                 std::uint64_t push_read_ms) {
  auto* slot = core_.slot_named(keyspace);
  auto* rt = slot != nullptr ? slot->current.load(std::memory_order_acquire) : nullptr;
  // A node that is still joining stores too: the caches exist from
  // construction, and the nodes already in the ring push it the keys it
  // takes over (warm join) as soon as they see it, which may be before its
  // start() returns.
  const bool joining = core_.starting_.load(std::memory_order_acquire);
  if (rt == nullptr || (core_.check_state() && !joining)) {
    return make_error_code(errc::keyspace_not_found);
  }
  if (auto ec = core_.check_key(key)) return ec;
  auto decoded = rt->adapter->deserialize(value);
  if (!decoded) return make_error_code(errc::malformed_value);
  if (auto ec = core_.check_entry(*rt, key, decoded->bytes)) return ec;
  const hashed_key hk{key, hash_key(key)};
  if (push_read_ms == 0) {
    core_.store_locally(*rt, hk, decoded->value, decoded->bytes, core_.from_ttl_ms(ttl_ms));
    return {};
  }
  if (!core_.push_admitted(*rt, hk.hash, push_read_ms)) {
    slot->counters.pushes_refused.add();
    return {};
  }
  core_.store_locally(*rt, hk, decoded->value, decoded->bytes, core_.from_ttl_ms(ttl_ms), false);
  // A write that came between the check and the store was remembered before
  // it touched the caches: seen now, it drops the pushed value.
  if (rt->writes.written(hk.hash, core_.now())) {
    core_.drop_locally(*rt, hk, false);
    slot->counters.pushes_refused.add();
  }
  return {};
}

std::size_t engine_core::cluster_operations_impl::remove(std::string_view keyspace,
                                                         const std::vector<std::string>& keys) {
  auto* slot = core_.slot_named(keyspace);
  auto* rt = slot != nullptr ? slot->current.load(std::memory_order_acquire) : nullptr;
  if (rt == nullptr) return 0;
  return core_.remove_here(*slot, *rt, keys);
}

void engine_core::cluster_operations_impl::invalidate(std::string_view keyspace,
                                                      const std::vector<std::string>& keys) {
  auto* slot = core_.slot_named(keyspace);
  auto* rt = slot != nullptr ? slot->current.load(std::memory_order_acquire) : nullptr;
  if (rt == nullptr) return;
  for (const auto& k : keys) core_.drop_locally(*rt, {k, hash_key(k)});
}

// Answers a peer's get as the owner: from the caches, else one local load
// per key shared with every other caller (never forwarded).
void engine_core::cluster_operations_impl::serve_get(
    keyspace_slot& slot, std::vector<std::string> keys,
    std::function<void(std::vector<transport::reply_item>)> done,
    const telemetry::span_context& parent, duration answer_within) {
  auto* rt = slot.current.load(std::memory_order_acquire);
  // What a key still loading at `answer_within` completes with (never a
  // distcache::errc, so no load's own outcome is mistaken for it).
  static const error_code still_loading = std::make_error_code(std::errc::operation_in_progress);
  // A not_found from a load that a put or remove overtook is not told as
  // such (the asker could cache it, and a not_found carries no time to
  // live): an asker that waits (DC-Wait-Ms) is told to ask again, and then
  // finds the newer state.
  const bool can_defer = answer_within > duration::zero();
  auto item_of = [this, rt, can_defer](error_code ec, const value_handle& v, time_point expires) {
    transport::reply_item item;
    if (ec == still_loading ||
        (can_defer && ec == errc::not_found && expires == superseded_expiry)) {
      item.status = transport::reply_item::kind::loading;
    } else if (ec == errc::not_found) {
      item.status = transport::reply_item::kind::not_found;
    } else if (ec) {
      item.status = transport::reply_item::kind::error;
      item.error = ec.category() == error_category() ? static_cast<errc>(ec.value())
                                                     : errc::data_source_failed;
    } else {
      item.status = transport::reply_item::kind::value;
      rt->adapter->serialize(v.get(), item.value);
      item.ttl_ms = core_.to_ttl_ms(expires);
    }
    return item;
  };
  auto all = gather<transport::reply_item>::make(keys.size(), std::move(done));
  std::shared_ptr<waiter_batch> batch;  // made at the first miss: one deadline for the request
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (auto ec = core_.check_state(); ec || rt == nullptr) {
      all->set(
          i, item_of(ec ? ec : make_error_code(errc::keyspace_not_found), nullptr, never_expires));
      continue;
    }
    const std::uint64_t h = hash_key(keys[i]);
    time_point expires = never_expires;
    if (auto v = core_.cached(slot, *rt, {keys[i], h}, &expires)) {
      slot.counters.cache_hits.add();
      if (is_negative(v)) {
        slot.counters.negative_hits.add();
        all->set(i, item_of(make_error_code(errc::not_found), nullptr, never_expires));
      } else {
        all->set(i, item_of({}, v, expires));
      }
      continue;
    }
    if (!batch) {
      const bool answer_early =
          answer_within > duration::zero() && answer_within < rt->opts.read_timeout;
      batch = waiter_batch::make(
          core_.ioc_.get_executor(), rt->flights, keys.size(),
          answer_early ? answer_within : rt->opts.read_timeout,
          [all, item_of](std::size_t index, error_code ec, const value_handle& value,
                         time_point exp) { all->set(index, item_of(ec, value, exp)); },
          answer_early ? still_loading : make_error_code(errc::timeout));
    }
    if (batch->join(i, keys[i], h) && !core_.settle_from_cache(*rt, {keys[i], h})) {
      slot.counters.loads_deduped.add();
      core_.load_locally(slot, *rt, keys[i], h, parent);
    }
    slot.counters.loads.add();
  }
  if (batch) batch->done_joining();
}

// ---------------------------------------------------------------- asking owners

duration engine_core::cluster_operations_impl::peer_read_timeout(const keyspace_runtime& rt) const {
  // min(cluster.peer_timeout, half the read timeout), so that a local load
  // after a peer failure still fits in the caller's read timeout.
  return std::min<duration>(core_.cfg_.cluster.peer_timeout, rt.opts.read_timeout / 2);
}

// Asks `owner` for the keys of flights this node leads, in one request. Each
// reply item ends its flight through accept_remote(); a key the owner could
// not answer (transport failure, garbage, "not serving") counts in
// peer_errors and is loaded here, so its callers still get a value. A key the
// owner answers "loading" is asked for again (ask_owner).
void engine_core::cluster_operations_impl::load_remotely(keyspace_slot& slot, keyspace_runtime& rt,
                                                         const std::string& owner,
                                                         std::uint64_t ring_version,
                                                         std::vector<pending_key> keys,
                                                         const telemetry::span_context& parent) {
  // The flight's deadline is real time, as every timer on the peer path.
  ask_owner(slot, rt, owner, ring_version, std::move(keys), parent,
            clock_type::now() + rt.opts.read_timeout);
}

void engine_core::cluster_operations_impl::ask_owner(
    keyspace_slot& slot, keyspace_runtime& rt, const std::string& owner, std::uint64_t ring_version,
    std::vector<pending_key> keys, const telemetry::span_context& parent, time_point deadline) {
  std::vector<std::string> names;
  names.reserve(keys.size());
  for (const auto& k : keys) names.push_back(k.key);
  // The request's own span (a client span, child of the operation), whose
  // id the owner receives in traceparent.
  std::string traceparent;
  auto scope = client_scope(slot, telemetry::operation::peer_get, keys.size(), parent, traceparent);
  const telemetry::span_context child = scope.context;
  const duration budget = std::max<duration>(
      std::min(peer_read_timeout(rt), deadline - clock_type::now()), std::chrono::milliseconds(10));
  core_.cluster_->client().get_traced(
      owner, slot.name, std::move(names), ring_version, budget, traceparent,
      [this, &slot, rt = rt.shared_from_this(), owner, keys = std::move(keys), scope, child, parent,
       deadline](error_code ec, std::vector<transport::reply_item> items) mutable {
        if (!ec && items.size() != keys.size()) ec = make_error_code(errc::peer_unavailable);
        core_.end_op(scope, ec, owner);
        if (ec) {
          slot.counters.peer_errors.add();
          // A peer that answers "not serving" is alive: it stays in the
          // ring (it may serve other keyspaces, or soon start).
          if (!transport::peer_not_serving(ec)) core_.cluster_->peer_failed(owner);
          core_.cfg_.log(log_level::warning, "keyspace '" + slot.name + "': peer " + owner +
                                                 " failed (" + ec.message() + "); loading locally");
          for (auto& k : keys) core_.load_locally(slot, *rt, std::move(k.key), k.hash, child);
          return;
        }
        bool answered = false;
        bool garbage = false;
        std::vector<pending_key> loading;
        for (std::size_t j = 0; j < keys.size(); ++j) {
          if (items[j].status == transport::reply_item::kind::loading) {
            answered = true;
            loading.push_back(std::move(keys[j]));
            continue;
          }
          if (accept_remote(slot, *rt, keys[j], items[j])) {
            answered = true;
            continue;
          }
          const bool alive = transport::peer_not_serving(items[j]);
          garbage = garbage || !alive;
          slot.counters.peer_errors.add();
          const error_code why =
              alive ? make_error_code(items[j].error) : make_error_code(errc::peer_unavailable);
          core_.cfg_.log(log_level::warning, "keyspace '" + slot.name + "': peer " + owner +
                                                 " failed (" + why.message() +
                                                 "); loading locally");
          core_.load_locally(slot, *rt, std::move(keys[j].key), keys[j].hash, child);
        }
        if (garbage) {
          core_.cluster_->peer_failed(owner);
        } else if (answered) {
          core_.cluster_->peer_ok(owner);
        }
        if (loading.empty()) return;
        // The owner is alive and loading these keys: wait for its load
        // rather than start a second one here, within the flight's time.
        slot.counters.peer_waits.add(loading.size());
        // Asked again only with time left for the owner to answer (it
        // answers at three quarters of the wait); a request that then times
        // out means a stalled owner, and the key is loaded here.
        error_code end = core_.check_state();
        const duration left = deadline - clock_type::now();
        if (!end &&
            left >= std::max<duration>(peer_read_timeout(*rt) / 4, std::chrono::milliseconds(10))) {
          ask_owner(slot, *rt, owner, core_.cluster_->current()->version(), std::move(loading),
                    parent, deadline);
          return;
        }
        if (!end) end = make_error_code(errc::timeout);
        for (auto& k : loading) {
          rt->flights.finish({k.key, k.hash}, end, nullptr, [] { return error_code{}; });
        }
      });
}

// Ends the flight of `key` with a peer's reply item; the value enters the
// hot cache. Returns false (and leaves the flight alone) when the owner
// cannot serve or the value does not decode. The one place a peer's answer
// reaches the caches, for get and get_many alike.
bool engine_core::cluster_operations_impl::accept_remote(keyspace_slot& slot, keyspace_runtime& rt,
                                                         const pending_key& key,
                                                         transport::reply_item& item) {
  const hashed_key hk{key.key, key.hash};
  if (transport::peer_not_serving(item)) return false;
  if (item.status != transport::reply_item::kind::value) {
    const error_code ec = item.status == transport::reply_item::kind::not_found
                              ? make_error_code(errc::not_found)
                              : make_error_code(item.error);
    slot.counters.peer_loads.add();  // counted before the waiters wake
    if (ec == errc::not_found) {
      // Cached in the hot cache for negative_ttl when that is set.
      rt.flights.finish_not_found(hk, [&] {
        if (rt.opts.negative_ttl > duration::zero() && !core_.write_in_flight(rt, hk.hash)) {
          core_.publish_not_found(rt, rt.hot, hk);
        }
      });
    } else {
      rt.flights.finish(hk, ec, nullptr, [] { return error_code{}; });
    }
    return true;
  }
  auto decoded = rt.adapter->deserialize(item.value);
  if (!decoded) return false;
  const time_point expires = core_.from_ttl_ms(item.ttl_ms);
  slot.counters.peer_loads.add();
  rt.flights.finish(
      hk, {}, decoded->value,
      [&]() -> error_code {
        if (rt.retired.load(std::memory_order_acquire)) return {};
        if (expires != never_expires && expires <= core_.now()) return {};
        if (core_.write_in_flight(rt, hk.hash)) return {};
        // A value too large for the hot cache, or kept out by the
        // admission filter (a key read less than the one it would evict),
        // is still handed out.
        (void)rt.hot.put(hk, decoded->value, decoded->bytes, lifetime::until(expires),
                         rt.sketch.get());
        return {};
      },
      expires);
  return true;
}

// ---------------------------------------------------------------- telling peers

// Stores each entry at its owner (here when this node owns it) and sends
// every other node in the ring one invalidation of the keys; completes when
// every request has (the invalidations' failures are logged, not returned).
void engine_core::cluster_operations_impl::put_remotely(keyspace_slot& slot, keyspace_runtime& rt,
                                                        std::vector<value_entry> entries,
                                                        std::vector<std::size_t> bytes,
                                                        duration ttl, write_done done,
                                                        const telemetry::span_context& parent) {
  // Plan every request first, so the fan-in knows how many to wait for.
  auto r = core_.cluster_->current();
  const auto peers = core_.cluster_->alive_peers();
  struct set_request {
    std::string owner;
    std::size_t entry;
    time_point expires;
  };
  std::vector<set_request> sets;
  std::map<std::string, std::vector<std::string>> invalidations;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const auto& e = entries[i];
    const hashed_key hk{e.key, hash_key(e.key)};
    const std::string& owner = r->nodes()[r->owner_index(hk.hash)];
    const time_point expires = core_.expiry_for(rt, e.key, ttl);
    for (const auto& p : peers) {
      if (p != owner) invalidations[p].push_back(e.key);
    }
    if (owner == core_.cluster_->self()) {
      core_.store_locally(rt, hk, e.value, bytes[i], expires);
    } else {
      core_.drop_locally(rt, hk);
      sets.push_back({owner, i, expires});
    }
  }
  auto all =
      gather<error_code>::make(sets.size() + invalidations.size(),
                               [done = std::move(done)](const std::vector<error_code>& outcomes) {
                                 done(first_error(outcomes));
                               });
  std::size_t part = 0;
  for (const auto& s : sets) {
    std::string encoded;
    rt.adapter->serialize(entries[s.entry].value.get(), encoded);
    std::string traceparent;
    auto scope = client_scope(slot, telemetry::operation::peer_set, 1, parent, traceparent);
    core_.cluster_->client().set_traced(
        s.owner, slot.name, entries[s.entry].key, std::move(encoded), core_.to_ttl_ms(s.expires),
        r->version(), rt.opts.write_timeout, traceparent,
        [this, &slot, all, i = part++, owner = s.owner, scope](error_code ec) mutable {
          core_.end_op(scope, ec, owner);
          if (ec) {
            slot.counters.peer_errors.add();
            core_.cluster_->peer_failed(owner);
            ec = ec == errc::value_too_large || ec == errc::malformed_value
                     ? ec
                     : make_error_code(errc::peer_unavailable);
          }
          all->set(i, ec);
        });
  }
  for (auto& [peer, keys] : invalidations) {
    std::string traceparent;
    auto scope =
        client_scope(slot, telemetry::operation::peer_invalidate, keys.size(), parent, traceparent);
    core_.cluster_->client().invalidate_traced(
        peer, slot.name, std::move(keys), r->version(), rt.opts.write_timeout, traceparent,
        [this, all, i = part++, peer = peer, scope](error_code ec) mutable {
          core_.end_op(scope, ec, peer);
          if (ec) {
            // The put landed; a node that missed the invalidation may serve
            // its hot copy until it expires or is evicted. Logged, not failed.
            core_.cfg_.log(log_level::warning,
                           "invalidate on " + peer + " failed: " + ec.message());
            core_.cluster_->peer_failed(peer);
          }
          all->set(i, error_code{});
        });
  }
}

// Removes `keys` on every other node in the ring, one request each.
void engine_core::cluster_operations_impl::remove_remotely(keyspace_slot& slot,
                                                           keyspace_runtime& rt,
                                                           std::vector<std::string> keys,
                                                           write_done done,
                                                           const telemetry::span_context& parent) {
  const auto version = core_.cluster_->current()->version();
  const auto peers = core_.cluster_->alive_peers();
  auto all = gather<error_code>::make(
      peers.size(),
      [done = std::move(done)](const std::vector<error_code>& out) { done(first_error(out)); });
  for (std::size_t i = 0; i < peers.size(); ++i) {
    std::string traceparent;
    auto scope =
        client_scope(slot, telemetry::operation::peer_remove, keys.size(), parent, traceparent);
    core_.cluster_->client().remove_traced(
        peers[i], slot.name, keys, version, rt.opts.write_timeout, traceparent,
        [this, &slot, all, i, peer = peers[i], scope](error_code ec, std::size_t) mutable {
          core_.end_op(scope, ec, peer);
          if (ec) {
            slot.counters.peer_errors.add();
            core_.cluster_->peer_failed(peer);
            ec = make_error_code(errc::peer_unavailable);
          }
          all->set(i, ec);
        });
  }
}

}  // namespace distcache::detail

#endif  // DISTCACHE_CORE_IMPL_CLUSTER_OPERATIONS_IPP
