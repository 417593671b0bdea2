// distcache — engine_core: the write path. A put stores on the owner and
// drops the keys everywhere else; a remove drops them everywhere.
#ifndef DISTCACHE_CORE_IMPL_WRITE_PATH_IPP
#define DISTCACHE_CORE_IMPL_WRITE_PATH_IPP

#include <boost/asio/bind_executor.hpp>
#include <distcache/core/engine_core.hpp>
#include <distcache/detail/format.hpp>
#include <distcache/detail/hash.hpp>

namespace distcache::detail {

error_code engine_core::check_entry(const keyspace_runtime& rt, std::string_view key,
                                    std::size_t bytes) const {
  if (auto ec = check_key(key)) return ec;
  if (static_cast<std::int64_t>(lru_cache::charge(key.size(), bytes)) > rt.main.shard_budget()) {
    return make_error_code(errc::value_too_large);
  }
  return {};
}

// A newer value wins over a load of the key in flight (invalidated) and
// over a hot copy of it.
void engine_core::store_locally(keyspace_runtime& rt, hashed_key key, const value_handle& value,
                                std::size_t bytes, time_point expires) {
  rt.flights.invalidate(key);
  rt.hot.remove(key);
  rt.main.put(key, value, bytes, expires);
}

void engine_core::drop_locally(keyspace_runtime& rt, hashed_key key) {
  rt.flights.invalidate(key);
  rt.main.remove(key);
  rt.hot.remove(key);
}

// Validates and stores `entries`: on this node when it owns a key (or runs
// alone), else on the owner; then every other node in the ring drops the
// keys. All keys and sizes are checked before anything is stored.
void engine_core::async_put(std::size_t ks, std::vector<entry> entries, duration ttl,
                            write_handler handler) {
  if (auto ec = check_state()) return post_result(std::move(handler), ec);
  if (ttl < duration::zero()) {
    cfg_.log(log_level::warning, "put: ttl must be >= 0, got " + format_duration(ttl));
    return post_result(std::move(handler), make_error_code(errc::invalid_config));
  }
  auto& slot = *slots_[ks];
  auto* rt = slot.current.load(std::memory_order_acquire);
  if (rt == nullptr)
    return post_result(std::move(handler), make_error_code(errc::keyspace_not_found));
  std::vector<std::size_t> bytes;
  bytes.reserve(entries.size());
  for (const auto& e : entries) {
    bytes.push_back(rt->adapter->value_bytes(e.value.get()));
    if (auto ec = check_entry(*rt, e.key, bytes.back())) {
      return post_result(std::move(handler), ec);
    }
  }
  if (!cluster_) {
    for (std::size_t i = 0; i < entries.size(); ++i) {
      const auto& e = entries[i];
      store_locally(*rt, {e.key, hash_key(e.key)}, e.value, bytes[i], expiry_for(*rt, e.key, ttl));
    }
    return post_result(std::move(handler), error_code{});
  }
  // Plan every request first, so the fan-in knows how many to wait for.
  auto r = cluster_->current();
  const auto peers = cluster_->alive_peers();
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
    const time_point expires = expiry_for(*rt, e.key, ttl);
    for (const auto& p : peers) {
      if (p != owner) invalidations[p].push_back(e.key);
    }
    if (owner == cluster_->self()) {
      store_locally(*rt, hk, e.value, bytes[i], expires);
    } else {
      drop_locally(*rt, hk);
      sets.push_back({owner, i, expires});
    }
  }
  auto h = std::make_shared<write_handler>(std::move(handler));
  auto all = gather<error_code>::make(sets.size() + invalidations.size(),
                                      [this, h](const std::vector<error_code>& outcomes) {
                                        post_result(std::move(*h), first_error(outcomes));
                                      });
  std::size_t part = 0;
  for (const auto& s : sets) {
    std::string encoded;
    rt->adapter->serialize(entries[s.entry].value.get(), encoded);
    cluster_->client().set(s.owner, slot.name, entries[s.entry].key, std::move(encoded),
                          to_ttl_ms(s.expires), r->version(), rt->opts.write_timeout,
                          [this, &slot, all, i = part++, owner = s.owner](error_code ec) {
                            if (ec) {
                              slot.counters.peer_errors.add();
                              cluster_->peer_failed(owner);
                              ec = ec == errc::value_too_large || ec == errc::malformed_value
                                       ? ec
                                       : make_error_code(errc::peer_unavailable);
                            }
                            all->set(i, ec);
                          });
  }
  for (auto& [peer, keys] : invalidations) {
    cluster_->client().invalidate(
        peer, slot.name, std::move(keys), r->version(), rt->opts.write_timeout,
        [this, all, i = part++, peer = peer](error_code ec) {
          if (ec) {
            // The put landed; a node that missed the invalidation may serve
            // its hot copy until it expires or is evicted. Logged, not failed.
            cfg_.log(log_level::warning, "invalidate on " + peer + " failed: " + ec.message());
            cluster_->peer_failed(peer);
          }
          all->set(i, error_code{});
        });
  }
}

// Removes `keys` here and, in a cluster, on every node in the ring (one
// request each).
void engine_core::async_remove(std::size_t ks, std::vector<std::string> keys,
                               write_handler handler) {
  if (auto ec = check_state()) return post_result(std::move(handler), ec);
  auto& slot = *slots_[ks];
  auto* rt = slot.current.load(std::memory_order_acquire);
  if (rt == nullptr)
    return post_result(std::move(handler), make_error_code(errc::keyspace_not_found));
  for (const auto& k : keys) {
    if (auto ec = check_key(k)) return post_result(std::move(handler), ec);
  }
  remove_here(slot, *rt, keys);
  if (!cluster_) return post_result(std::move(handler), error_code{});
  const auto version = cluster_->current()->version();
  const auto peers = cluster_->alive_peers();
  auto h = std::make_shared<write_handler>(std::move(handler));
  auto all = gather<error_code>::make(peers.size(), [this, h](const std::vector<error_code>& out) {
    post_result(std::move(*h), first_error(out));
  });
  for (std::size_t i = 0; i < peers.size(); ++i) {
    cluster_->client().remove(peers[i], slot.name, keys, version, rt->opts.write_timeout,
                             [this, &slot, all, i, peer = peers[i]](error_code ec, std::size_t) {
                               if (ec) {
                                 slot.counters.peer_errors.add();
                                 cluster_->peer_failed(peer);
                                 ec = make_error_code(errc::peer_unavailable);
                               }
                               all->set(i, ec);
                             });
  }
}

// Removes `keys` from this node's caches and counts the request.
std::size_t engine_core::remove_here(keyspace_slot& slot, keyspace_runtime& rt,
                                     const std::vector<std::string>& keys) {
  slot.counters.remove_keys_requests.add();
  std::size_t removed = 0;
  for (const auto& k : keys) {
    const hashed_key hk{k, hash_key(k)};
    rt.flights.invalidate(hk);
    const bool in_main = rt.main.remove(hk);
    const bool in_hot = rt.hot.remove(hk);
    if (in_main || in_hot) ++removed;
  }
  slot.counters.removed_keys.add(removed);
  return removed;
}

// Loads keyspace ks's warm keys in the background.
void engine_core::warm(std::size_t ks) {
  auto& slot = *slots_[ks];
  auto* rt = slot.current.load(std::memory_order_acquire);
  if (rt == nullptr) return;
  for (const auto& key : rt->opts.warm_keys) {
    async_get(ks, key,
              net::bind_executor(
                  ioc_.get_executor(), [this, &slot, key](error_code ec, const value_handle&) {
                    if (ec && ec != errc::stopped) {
                      cfg_.log(log_level::warning, "keyspace '" + slot.name + "': warm key '" +
                                                       key + "' failed: " + ec.message());
                    }
                  }));
  }
}

}  // namespace distcache::detail

#endif  // DISTCACHE_CORE_IMPL_WRITE_PATH_IPP
