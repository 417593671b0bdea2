// distcache — engine_core: the answers to peers. A request that came from a
// peer is answered from this node's caches or by a local load as owner; it
// is never forwarded again.
#ifndef DISTCACHE_CORE_IMPL_PEER_REQUESTS_IPP
#define DISTCACHE_CORE_IMPL_PEER_REQUESTS_IPP

#include <distcache/core/engine_core.hpp>
#include <distcache/detail/hash.hpp>

namespace distcache::detail {

bool engine_core::peer_requests::has_keyspace(std::string_view name) const {
  auto* slot = core_.slot_named(name);
  return slot != nullptr && slot->current.load(std::memory_order_acquire) != nullptr;
}

void engine_core::peer_requests::get(std::string_view keyspace, std::vector<std::string> keys,
                                     std::function<void(std::vector<transport::reply_item>)> done) {
  if (auto* slot = core_.slot_named(keyspace)) {
    return core_.serve_get(*slot, std::move(keys), std::move(done));
  }
  std::vector<transport::reply_item> items(keys.size(),
                                           transport::reply_item::failed(errc::keyspace_not_found));
  done(std::move(items));
}

error_code engine_core::peer_requests::set(std::string_view keyspace, std::string key,
                                           std::string value, std::int64_t ttl_ms) {
  auto* slot = core_.slot_named(keyspace);
  auto* rt = slot != nullptr ? slot->current.load(std::memory_order_acquire) : nullptr;
  if (rt == nullptr || core_.check_state()) return make_error_code(errc::keyspace_not_found);
  if (auto ec = core_.check_key(key)) return ec;
  auto decoded = rt->adapter->deserialize(value);
  if (!decoded) return make_error_code(errc::malformed_value);
  if (auto ec = core_.check_entry(*rt, key, decoded->bytes)) return ec;
  store_locally(*rt, {key, hash_key(key)}, decoded->value, decoded->bytes,
                core_.from_ttl_ms(ttl_ms));
  return {};
}

std::size_t engine_core::peer_requests::remove(std::string_view keyspace,
                                               const std::vector<std::string>& keys) {
  auto* slot = core_.slot_named(keyspace);
  auto* rt = slot != nullptr ? slot->current.load(std::memory_order_acquire) : nullptr;
  if (rt == nullptr) return 0;
  return core_.remove_here(*slot, *rt, keys);
}

void engine_core::peer_requests::invalidate(std::string_view keyspace,
                                            const std::vector<std::string>& keys) {
  auto* slot = core_.slot_named(keyspace);
  auto* rt = slot != nullptr ? slot->current.load(std::memory_order_acquire) : nullptr;
  if (rt == nullptr) return;
  for (const auto& k : keys) drop_locally(*rt, {k, hash_key(k)});
}

// Answers a peer's get as the owner: from the caches, else one local load
// per key shared with every other caller (never forwarded).
void engine_core::serve_get(keyspace_slot& slot, std::vector<std::string> keys,
                            std::function<void(std::vector<transport::reply_item>)> done) {
  auto* rt = slot.current.load(std::memory_order_acquire);
  auto item_of = [this, rt](error_code ec, const value_handle& v, time_point expires) {
    transport::reply_item item;
    if (ec == errc::not_found) {
      item.status = transport::reply_item::kind::not_found;
    } else if (ec) {
      item.status = transport::reply_item::kind::error;
      item.error = ec.category() == error_category() ? static_cast<errc>(ec.value())
                                                     : errc::data_source_failed;
    } else {
      item.status = transport::reply_item::kind::value;
      rt->adapter->serialize(v.get(), item.value);
      item.ttl_ms = to_ttl_ms(expires);
    }
    return item;
  };
  auto all = gather<transport::reply_item>::make(keys.size(), std::move(done));
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (auto ec = check_state(); ec || rt == nullptr) {
      all->set(i, item_of(ec ? ec : make_error_code(errc::keyspace_not_found), nullptr, {}));
      continue;
    }
    const std::uint64_t h = hash_key(keys[i]);
    time_point expires = never_expires;
    auto v = rt->main.get({keys[i], h}, &expires);
    if (!v) v = rt->hot.get({keys[i], h}, &expires);
    if (v) {
      slot.counters.cache_hits.add();
      all->set(i, item_of({}, v, expires));
      continue;
    }
    auto w = std::make_shared<callback_waiter>(
        ioc_.get_executor(), keys[i], h,
        [all, i, item_of](error_code ec, const value_handle& value, time_point exp) {
          all->set(i, item_of(ec, value, exp));
        });
    w->arm(rt->flights, rt->opts.read_timeout);
    if (rt->flights.join(w->key(), w)) {
      slot.counters.loads_deduped.add();
      load_locally(slot, *rt, keys[i], h);
    }
    slot.counters.loads.add();
  }
}

}  // namespace distcache::detail

#endif  // DISTCACHE_CORE_IMPL_PEER_REQUESTS_IPP
