// distcache — engine_core: the write path. A put stores on the owner and
// drops the keys everywhere else; a remove drops them everywhere.
#ifndef DISTCACHE_CORE_IMPL_WRITE_PATH_IPP
#define DISTCACHE_CORE_IMPL_WRITE_PATH_IPP

#include <distcache/core/engine_core.hpp>
#include <distcache/detail/format.hpp>
#include <distcache/detail/hash.hpp>

namespace distcache::detail {

error_code engine_core::check_entry(const keyspace_runtime& rt, std::string_view key,
                                    std::size_t bytes) const {
  if (auto ec = check_key(key)) return ec;
  if (static_cast<std::int64_t>(value_cache::charge(key.size(), bytes)) >
      rt.main.max_entry_charge()) {
    return make_error_code(errc::value_too_large);
  }
  return {};
}

// A newer value wins over a load of the key in flight (invalidated) and
// over a hot copy of it.
void engine_core::store_locally(keyspace_runtime& rt, hashed_key key, const value_handle& value,
                                std::size_t bytes, time_point expires, bool write) {
  if (write) note_write(rt, key.hash);
  rt.flights.invalidate(key);
  rt.hot.remove(key);
  rt.main.put(key, value, bytes, lifetime_of(rt, expires));
}

void engine_core::drop_locally(keyspace_runtime& rt, hashed_key key, bool write) {
  if (write) note_write(rt, key.hash);
  rt.flights.invalidate(key);
  rt.main.remove(key);
  rt.hot.remove(key);
}

// Writes win over warm-up (docs/reliability.md#writes-win-over-warm-up): a
// write is remembered before it touches the caches, so that a push which
// stored its older value meanwhile sees it when it checks again.
void engine_core::note_write(keyspace_runtime& rt, std::uint64_t hash) {
  if (cluster_) rt.writes.note(hash, now());
}

bool engine_core::write_in_flight(const keyspace_runtime& rt, std::uint64_t hash) const {
  return cluster_ && rt.writes.written(hash, now(), rt.opts.write_timeout);
}

bool engine_core::push_admitted(const keyspace_runtime& rt, std::uint64_t hash,
                                std::uint64_t read_unix_ms) const {
  const std::uint64_t now_ms = unix_ms();
  const auto max_age = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(cfg_.cluster.write_memory / 2).count());
  if (now_ms > read_unix_ms && now_ms - read_unix_ms > max_age) return false;
  return !rt.writes.written(hash, now());
}

std::uint64_t engine_core::unix_ms() noexcept {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

// Validates and stores `entries`: on this node when it owns a key (or runs
// alone), else on the owner; then every other node in the ring drops the
// keys. All keys and sizes are checked before anything is stored.
engine_core::write_done engine_core::posting(write_handler handler) {
  return [this, h = std::make_shared<write_handler>(std::move(handler))](error_code ec) {
    post_result(std::move(*h), ec);
  };
}

void engine_core::async_put(std::size_t ks, std::vector<entry> entries, duration ttl,
                            write_handler handler, telemetry::operation op) {
  put(ks, std::move(entries), ttl, posting(std::move(handler)), op);
}

void engine_core::async_remove(std::size_t ks, std::vector<std::string> keys, write_handler handler,
                               telemetry::operation op) {
  remove(ks, std::move(keys), posting(std::move(handler)), op);
}

/// `done`, ending `scope` first when it is active.
inline engine_core::write_done measured_write(engine_core& core, op_scope scope,
                                              engine_core::write_done done) {
  if (!scope.active()) return done;
  return [&core, scope, done = std::move(done)](error_code ec) mutable {
    core.end_op(scope, ec);
    done(ec);
  };
}

std::optional<error_code> engine_core::put_now(std::size_t ks, std::string_view key,
                                               const value_handle& value, duration ttl) {
  if (cluster_ || observe_) return std::nullopt;
  if (auto ec = check_state()) return ec;
  if (ttl < duration::zero()) {
    cfg_.log(log_level::warning, "put: ttl must be >= 0, got " + format_duration(ttl));
    return make_error_code(errc::invalid_config);
  }
  auto* rt = slots_[ks]->current.load(std::memory_order_acquire);
  if (rt == nullptr) return make_error_code(errc::keyspace_not_found);
  const std::size_t bytes = rt->adapter->value_bytes(value.get());
  if (auto ec = check_entry(*rt, key, bytes)) return ec;
  store_locally(*rt, {key, hash_key(key)}, value, bytes, expiry_for(*rt, key, ttl));
  return error_code{};
}

void engine_core::put(std::size_t ks, std::vector<entry> entries, duration ttl, write_done done,
                      telemetry::operation op) {
  if (auto ec = check_state()) return done(ec);
  telemetry::span_context parent;
  if (observe_) {  // nothing more on the path of an engine that observes nothing
    const auto scope = begin_op(ks, op, entries.size());
    parent = scope.context;
    done = measured_write(*this, scope, std::move(done));
  }
  if (ttl < duration::zero()) {
    cfg_.log(log_level::warning, "put: ttl must be >= 0, got " + format_duration(ttl));
    return done(make_error_code(errc::invalid_config));
  }
  auto& slot = *slots_[ks];
  auto* rt = slot.current.load(std::memory_order_acquire);
  if (rt == nullptr) return done(make_error_code(errc::keyspace_not_found));
  std::vector<std::size_t> bytes;
  bytes.reserve(entries.size());
  for (const auto& e : entries) {
    bytes.push_back(rt->adapter->value_bytes(e.value.get()));
    if (auto ec = check_entry(*rt, e.key, bytes.back())) {
      return done(ec);
    }
  }
  if (!cluster_) {
    for (std::size_t i = 0; i < entries.size(); ++i) {
      const auto& e = entries[i];
      store_locally(*rt, {e.key, hash_key(e.key)}, e.value, bytes[i], expiry_for(*rt, e.key, ttl));
    }
    return done(error_code{});
  }
  remote_->put_remotely(slot, *rt, std::move(entries), std::move(bytes), ttl, std::move(done),
                        parent);
}

// Removes `keys` here and, in a cluster, on every node in the ring (one
// request each).
void engine_core::remove(std::size_t ks, std::vector<std::string> keys, write_done done,
                         telemetry::operation op) {
  if (auto ec = check_state()) return done(ec);
  telemetry::span_context parent;
  if (observe_) {  // nothing more on the path of an engine that observes nothing
    const auto scope = begin_op(ks, op, keys.size());
    parent = scope.context;
    done = measured_write(*this, scope, std::move(done));
  }
  auto& slot = *slots_[ks];
  auto* rt = slot.current.load(std::memory_order_acquire);
  if (rt == nullptr) return done(make_error_code(errc::keyspace_not_found));
  for (const auto& k : keys) {
    if (auto ec = check_key(k)) return done(ec);
  }
  remove_here(slot, *rt, keys);
  if (!cluster_) return done(error_code{});
  remote_->remove_remotely(slot, *rt, std::move(keys), std::move(done), parent);
}

// Removes `keys` from this node's caches and counts the request.
std::size_t engine_core::remove_here(keyspace_slot& slot, keyspace_runtime& rt,
                                     const std::vector<std::string>& keys) {
  slot.counters.remove_keys_requests.add();
  std::size_t removed = 0;
  for (const auto& k : keys) {
    const hashed_key hk{k, hash_key(k)};
    note_write(rt, hk.hash);
    rt.flights.invalidate(hk);
    const bool in_main = rt.main.remove(hk);
    const bool in_hot = rt.hot.remove(hk);
    if (in_main || in_hot) ++removed;
  }
  slot.counters.removed_keys.add(removed);
  return removed;
}

}  // namespace distcache::detail

#endif  // DISTCACHE_CORE_IMPL_WRITE_PATH_IPP
