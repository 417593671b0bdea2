// distcache — basic_engine / engine: the public operations.
//
// The typed front of the engine: each operation checks its keyspace type at
// compile time, turns typed values into the core's type-erased form and
// back, and forwards to detail::engine_core (core/engine_core.hpp), which is
// compiled once whatever the keyspaces.
#ifndef DISTCACHE_ENGINE_HPP
#define DISTCACHE_ENGINE_HPP

#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <distcache/clock.hpp>
#include <distcache/cluster/peer_event.hpp>
#include <distcache/config.hpp>
#include <distcache/core/engine_core.hpp>
#include <distcache/core/keyspace_adapter.hpp>
#include <distcache/detail/config.hpp>
#include <distcache/detail/engine_support.hpp>
#include <distcache/detail/handlers.hpp>
#include <distcache/error.hpp>
#include <distcache/keyspace.hpp>
#include <distcache/policies.hpp>
#include <distcache/stats.hpp>
#include <distcache/value.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <ranges>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace distcache {

/// A read-through cache engine over the keyspaces KeySpaces, built with the
/// compile-time `Policies` (see policies.hpp).
///
/// Lifecycle: construct (validates the configuration, throws config_error),
/// start(), operations, stop(). Operations before start() fail with
/// errc::not_started, after stop() with errc::stopped. The destructor stops.
///
/// Every operation has a blocking form returning result<T> and an async_ form
/// taking an Asio completion token. Blocking forms must not be called on the
/// engine's own threads (io_context threads, or inside a data source's fetch):
/// they return errc::blocking_call_on_engine_thread there.
///
/// Async completion handlers run on their associated executor, or on the
/// engine's executor when they have none (before start() and after stop(): on
/// net::system_executor). They are never invoked from inside the initiating
/// function.
///
/// Thread safety: all member functions may be called concurrently, except
/// that start(), stop() and destruction must not race with each other.
template <class Policies, class... KeySpaces>
class basic_engine {
  static_assert(sizeof...(KeySpaces) > 0, "distcache: an engine needs at least one keyspace");
  static_assert((detail::check_keyspace<KeySpaces>() && ...),
                "distcache: every engine template argument must model distcache::keyspace");
  static_assert(detail::unique_names<KeySpaces...>(),
                "distcache: keyspace names must be non-empty and unique within an engine");
  static_assert(detail::complete_type<typename Policies::transport_type>,
                "distcache: this engine's Transport policy is transport::http; include "
                "<distcache/transport/http.hpp> (or <distcache/distcache.hpp>)");
  static_assert(detail::complete_type<typename Policies::telemetry_type>,
                "distcache: this engine's Telemetry policy is telemetry::otlp; include "
                "<distcache/telemetry/otlp.hpp>");
  static_assert(
      telemetry::telemetry_policy<typename Policies::telemetry_type>,
      "distcache: the Telemetry policy must be telemetry::none or provide static "
      "make(const telemetry_options&, const logger&) -> std::unique_ptr<telemetry::sink>");
  static_assert(transport::transport_policy<typename Policies::transport_type>,
                "distcache: the Transport policy must model distcache::transport::transport_policy "
                "(static make_server and make_client)");

 public:
  /// The executor of the engine's io_context.
  using executor_type = net::io_context::executor_type;
  /// The value type of keyspace K.
  template <class K>
  using value_type_of = typename K::value_type;
  /// The discovery provider type (Policies::discovery_type).
  using discovery_type = typename Policies::discovery_type;
  /// The transport policy type (Policies::transport_type).
  using transport_type = typename Policies::transport_type;

  /// Builds an engine with a default-constructed discovery provider. Throws
  /// config_error when `cfg` or a keyspace definition is invalid; its what()
  /// names the keyspace, field and value.
  explicit basic_engine(config cfg, KeySpaces... defs)
      : basic_engine(std::move(cfg), discovery_type{}, std::move(defs)...) {}

  /// Builds an engine that finds its peers through `discovery` (used when
  /// cfg.cluster.enabled). cluster.enabled with transport::none throws.
  basic_engine(config cfg, discovery_type discovery, KeySpaces... defs)
      : core_(std::move(cfg), detail::erase_policies<Policies>(std::move(discovery)),
              adapters(std::move(defs)...)) {}

  basic_engine(const basic_engine&) = delete;
  basic_engine& operator=(const basic_engine&) = delete;
  /// Stops the engine (see stop()).
  ~basic_engine() = default;

  /// Starts the engine's threads; in a cluster also the peer server,
  /// discovery and membership: start() returns once at least
  /// cluster.minimum_peers_quorum nodes (this one included) answer, or fails
  /// with errc::cluster_quorum after max_join_attempts rounds or
  /// bootstrap_timeout, having released everything it started (start() may be
  /// called again). Loads the warm keys in the background.
  /// Errors: stopped after stop(), cluster_quorum, the server's bind error,
  /// blocking_call_on_engine_thread. Starting twice is a no-op.
  result<void> start() { return core_.start(); }

  /// Starts the engine; completes with `void(error_code)`.
  template <class CompletionToken = net::default_completion_token_t<executor_type>>
  auto async_start(CompletionToken&& token = net::default_completion_token_t<executor_type>()) {
    return initiate<void(error_code)>(token, [](detail::engine_core& c, auto h) {
      c.post_result(detail::engine_core::write_handler(std::move(h)), to_error(c.start()));
    });
  }

  /// Stops the engine: new operations fail with errc::stopped, waiting
  /// callers complete with errc::stopped, running fetches are waited for,
  /// pending handlers on the engine's executor run, and the threads end.
  /// Stopping twice, or before start(), is a no-op that returns success.
  result<void> stop() { return core_.stop(); }

  /// This node's name, "host:port": its peer address in a cluster (known
  /// after start() when cluster.port is 0), "self" otherwise.
  [[nodiscard]] std::string self_name() const { return core_.self_name(); }
  /// The peers in the ring now (this node excluded).
  [[nodiscard]] std::vector<std::string> cluster_peers() const { return core_.cluster_peers(); }
  /// The node that owns `key` now ("host:port", or self_name()).
  [[nodiscard]] std::string owner_of(std::string_view key) const { return core_.owner_of(key); }
  /// The version of the ring now (a hash of its member list).
  [[nodiscard]] std::uint64_t ring_version() const { return core_.ring_version(); }
  /// The peer server's counters: connections open, accepted and refused
  /// (cluster.max_connections_per_address), requests refused for memory
  /// (cluster.max_inflight_bytes) and the bytes in flight now. All zero
  /// when the node serves no peers (not started, stopped, or alone).
  [[nodiscard]] transport::server_stats peer_server_stats() const {
    return core_.peer_server_stats();
  }
  /// The peer client's counters (TLS handshakes, resumed sessions, failed
  /// handshakes, certificate reloads); all zero when the node talks to no
  /// peers or without TLS.
  [[nodiscard]] transport::client_stats peer_client_stats() const {
    return core_.peer_client_stats();
  }
  /// Loads the TLS certificates, keys and CAs of the peer transport
  /// (config.cluster.tls) and of the admin server (config.admin.tls) again,
  /// as a change of the files does after tls.reload_interval. Connections
  /// opened from then on use them; open ones keep theirs, so no request
  /// fails. Errors: errc::invalid_config when a file does not load (the
  /// log says which and why; the certificates in use stay),
  /// errc::blocking_call_on_engine_thread from an engine thread. Does nothing for a part
  /// that is not running or has no TLS; waits while start() or stop() runs.
  result<void> reload_tls() { return core_.reload_tls(); }
  /// The port of the admin server (config.admin, docs/operations.md); 0 when
  /// it does not run (not enabled, or before the first start()).
  [[nodiscard]] std::uint16_t admin_port() const { return core_.admin_port(); }
  /// The Telemetry policy's exporter counters (spans exported and dropped,
  /// failed exports); all zero for telemetry::none.
  [[nodiscard]] telemetry::exporter_stats telemetry_stats() const noexcept {
    return core_.telemetry_stats();
  }

  /// Calls `on_event` for every membership change (peer joined or left), in
  /// order, on the engine's blocking pool, one event at a time per
  /// subscriber: a slow subscriber delays its own later events and holds one
  /// fetch thread, never a network thread. Blocking engine calls are refused
  /// inside it, as in a data source. Subscribe before start() to see the
  /// peers found while joining.
  void subscribe(std::function<void(const peer_event&)> on_event) {
    core_.subscribe(std::move(on_event));
  }

  /// The executor of the engine's io_context.
  [[nodiscard]] executor_type get_executor() noexcept { return core_.get_executor(); }

  // ---------------------------------------------------------------- get

  /// The value of `key` in keyspace K: from the cache, or loaded once from
  /// the data source on a miss (concurrent misses share one load).
  /// Errors: invalid_key, keyspace_not_found, not_found, data_source_failed,
  /// data_source_rate_limited, data_source_circuit_open, timeout
  /// (read_timeout passed; the load runs on for others), value_too_large
  /// (loaded but cannot be cached), not_started, stopped,
  /// blocking_call_on_engine_thread.
  template <class K>
  result<value_ptr<value_type_of<K>>> get(std::string_view key) {
    auto r = core_.get(index_of<K>(), key);
    if (!r) return r.error();
    return detail::as_value<value_type_of<K>>{}(std::move(*r));
  }

  /// Calls `fn(const V&)` with the value of `key` in keyspace K (V its
  /// value type) and returns what fn returns. A fresh value cached on this
  /// node is read in place: no handle is made, so a hit writes no line that
  /// another core reads (get()'s handle is a reference count every reader of
  /// the key shares). Any other case (a miss, a cached not_found, a value
  /// due for a reload or served stale, a hot copy of a peer's key) is get()
  /// and then fn on the value, with get()'s errors and counts.
  ///
  /// fn runs on the calling thread, for an in-place hit on the read side of
  /// the shard's lock: keep it short and never block in it (every write to
  /// that shard waits until it returns, and every read of the shard waits
  /// behind such a writer); copy out what must outlive it. Inside fn this
  /// thread is refused by every engine for every operation on a cache or on
  /// the engine's state (get, read, get_many, put, remove, their _many and
  /// async_ forms, start, stop, update_keyspace, delete_keyspace(s),
  /// reload_tls) with errc::call_inside_read, and hot_keys() is empty;
  /// stats() and the accessors answer. An exception thrown by fn propagates
  /// out of read(); nothing is undone (a miss's value stays cached).
  /// Returns result<R> (R what fn returns; result<void> when fn returns
  /// nothing). Errors: those of get(), and call_inside_read.
  template <class K, std::invocable<const value_type_of<K>&> Fn>
  auto read(std::string_view key, Fn&& fn) {
    using V = value_type_of<K>;
    using R = std::invoke_result_t<Fn&, const V&>;
    static_assert(!std::is_reference_v<R>,
                  "read(): fn must return by value; the value may be gone once fn returns");
    if constexpr (std::is_void_v<R>) {
      auto call = [&fn](const void* v) { std::invoke(fn, *static_cast<const V*>(v)); };
      return core_.read(index_of<K>(), key, detail::visitor_of(call));
    } else {
      std::optional<R> out;
      auto call = [&fn, &out](const void* v) {
        out.emplace(std::invoke(fn, *static_cast<const V*>(v)));
      };
      if (auto r = core_.read(index_of<K>(), key, detail::visitor_of(call)); !r) {
        return result<R>(boost::system::in_place_error, r.error());
      }
      return result<R>(boost::system::in_place_value, std::move(*out));
    }
  }

  /// Asynchronous get(); completes with
  /// `void(error_code, value_ptr<value_type_of<K>>)`. Per-operation
  /// cancellation (any type) ends this caller's wait with
  /// net::error::operation_aborted; the shared load continues.
  template <class K, class CompletionToken = net::default_completion_token_t<executor_type>>
  auto async_get(std::string_view key,
                 CompletionToken&& token = net::default_completion_token_t<executor_type>()) {
    using V = value_type_of<K>;
    return initiate<void(error_code, value_ptr<V>)>(
        token, [key = std::string(key)](detail::engine_core& c, auto h) mutable {
          c.async_get(index_of<K>(), std::move(key),
                      detail::converting_handler<detail::as_value<V>, decltype(h)>{std::move(h)});
        });
  }

  /// The values of `keys` (any range of string-like keys), in the order of
  /// the keys; each has its own result, so one key's error loses no other
  /// key's value. The outer error is for the whole call (keyspace_not_found,
  /// not_started, stopped, blocking_call_on_engine_thread).
  template <class K, class Range>
  result<std::vector<result<value_ptr<value_type_of<K>>>>> get_many(const Range& keys) {
    using V = value_type_of<K>;
    if (auto ec = core_.check_blocking_call()) return ec;
    auto scope = core_.begin_op(index_of<K>(), telemetry::operation::get_many, 0);
    // The common case, every key cached here, is answered inline.
    std::vector<result<value_ptr<V>>> hits;
    if constexpr (std::ranges::sized_range<const Range&>) hits.reserve(std::ranges::size(keys));
    for (const auto& k : keys) {
      auto v = core_.peek(index_of<K>(), std::string_view(k));
      if (!v) break;
      hits.emplace_back(detail::as_value<V>{}(std::move(v)));
    }
    if (!hits.empty() && hits.size() == static_cast<std::size_t>(std::ranges::distance(keys))) {
      core_.count_hits(index_of<K>(), hits.size());
      scope.keys = static_cast<std::uint32_t>(hits.size());
      core_.end_op(scope, {});
      return hits;
    }
    auto owned = detail::copy_keys(keys);
    scope.keys = static_cast<std::uint32_t>(owned.size());
    auto values = get_many_erased(index_of<K>(), std::move(owned), scope);
    if (!values) return values.error();
    return detail::as_values<V>{}(std::move(*values));
  }

  /// Asynchronous get_many(); completes with
  /// `void(error_code, std::vector<result<value_ptr<value_type_of<K>>>>)`.
  template <class K, class Range,
            class CompletionToken = net::default_completion_token_t<executor_type>>
  auto async_get_many(const Range& keys,
                      CompletionToken&& token = net::default_completion_token_t<executor_type>()) {
    using V = value_type_of<K>;
    return initiate<void(error_code, std::vector<result<value_ptr<V>>>)>(
        token, [keys = detail::copy_keys(keys)](detail::engine_core& c, auto h) mutable {
          auto scope = c.begin_op(index_of<K>(), telemetry::operation::get_many, keys.size());
          c.async_get_many(
              index_of<K>(), std::move(keys),
              detail::converting_handler<detail::as_values<V>, decltype(h)>{std::move(h)}, scope);
        });
  }

  // ---------------------------------------------------------------- put

  /// Stores `value` under `key`, replacing any cached value, with expiry
  /// `ttl` when > 0, else K::expires_at(key) when declared, else the
  /// keyspace's default TTL. In a cluster the value is stored on the key's
  /// owner and every other node drops the key from its caches. A load of the
  /// key in flight does not overwrite it afterwards. Errors: invalid_key,
  /// keyspace_not_found, value_too_large, invalid_config (negative ttl),
  /// peer_unavailable (the owner did not take it), not_started, stopped,
  /// blocking_call_on_engine_thread.
  template <class K>
  result<void> put(std::string_view key, value_type_of<K> value, duration ttl = duration::zero()) {
    if (auto ec = core_.check_blocking_call()) return ec;
    auto v = std::make_shared<const value_type_of<K>>(std::move(value));
    // A node alone stores on this thread: no entry list, no completion.
    if (auto now = core_.put_now(index_of<K>(), key, v, ttl)) return to_result(*now);
    entries e;
    e.push_back({std::string(key), std::move(v)});
    return put_entries(index_of<K>(), std::move(e), ttl, telemetry::operation::put);
  }

  /// Asynchronous put(); completes with `void(error_code)`.
  template <class K, class CompletionToken = net::default_completion_token_t<executor_type>>
  auto async_put(std::string_view key, value_type_of<K> value, duration ttl = duration::zero(),
                 CompletionToken&& token = net::default_completion_token_t<executor_type>()) {
    return async_put_entries<K>(one_entry<K>(key, std::move(value)), ttl, token,
                                telemetry::operation::put);
  }

  /// Stores every (key, value) pair of `entries` (a range of pairs; copied)
  /// with the same expiry rules as put(). All keys and sizes are checked
  /// first: on invalid_key or value_too_large nothing is stored.
  template <class K, class Range>
  result<void> put_many(const Range& entries, duration ttl = duration::zero()) {
    return put_entries(index_of<K>(), copy_entries<K>(entries), ttl,
                       telemetry::operation::put_many);
  }

  /// Asynchronous put_many(); `entries` is copied; completes with
  /// `void(error_code)`.
  template <class K, class Range,
            class CompletionToken = net::default_completion_token_t<executor_type>>
  auto async_put_many(const Range& entries, duration ttl = duration::zero(),
                      CompletionToken&& token = net::default_completion_token_t<executor_type>()) {
    return async_put_entries<K>(copy_entries<K>(entries), ttl, token,
                                telemetry::operation::put_many);
  }

  // ---------------------------------------------------------------- remove

  /// Removes `key` from keyspace K's caches, on every node of a cluster; a
  /// load of it in flight does not bring it back. Removing an absent key
  /// succeeds. Errors: invalid_key, keyspace_not_found, peer_unavailable (a
  /// node in the ring did not confirm), not_started, stopped,
  /// blocking_call_on_engine_thread.
  template <class K>
  result<void> remove(std::string_view key) {
    return remove_keys(index_of<K>(), {std::string(key)}, telemetry::operation::remove);
  }

  /// Asynchronous remove(); completes with `void(error_code)`.
  template <class K, class CompletionToken = net::default_completion_token_t<executor_type>>
  auto async_remove(std::string_view key,
                    CompletionToken&& token = net::default_completion_token_t<executor_type>()) {
    return async_remove_keys<K>({std::string(key)}, token, telemetry::operation::remove);
  }

  /// Removes every key of `keys`, one request per node. All keys are checked
  /// first: on invalid_key nothing is removed.
  template <class K, class Range>
  result<void> remove_many(const Range& keys) {
    return remove_keys(index_of<K>(), detail::copy_keys(keys), telemetry::operation::remove_many);
  }

  /// Asynchronous remove_many(); completes with `void(error_code)`.
  template <class K, class Range,
            class CompletionToken = net::default_completion_token_t<executor_type>>
  auto async_remove_many(const Range& keys, CompletionToken&& token =
                                                net::default_completion_token_t<executor_type>()) {
    return async_remove_keys<K>(detail::copy_keys(keys), token, telemetry::operation::remove_many);
  }

  // ---------------------------------------------------------------- keyspaces

  /// Deletes the keyspace named `name`: its cache is dropped and operations
  /// on it fail with keyspace_not_found until update_keyspace() defines it
  /// again. Errors: keyspace_not_found (unknown or already deleted),
  /// not_started, stopped, blocking_call_on_engine_thread.
  result<void> delete_keyspace(std::string_view name) {
    const std::string_view one[] = {name};  // NOLINT
    return delete_keyspaces(one);
  }

  /// Asynchronous delete_keyspace(); completes with `void(error_code)`.
  template <class CompletionToken = net::default_completion_token_t<executor_type>>
  auto async_delete_keyspace(
      std::string_view name,
      CompletionToken&& token = net::default_completion_token_t<executor_type>()) {
    const std::string_view one[] = {name};  // NOLINT
    return async_delete_keyspaces(one, token);
  }

  /// Deletes every keyspace named in `names`. All names are checked first:
  /// when one is unknown or already deleted, nothing is deleted.
  template <class Range>
  result<void> delete_keyspaces(const Range& names) {
    if (auto ec = core_.check_blocking_call()) return ec;
    return core_.delete_keyspaces(detail::copy_keys(names));
  }

  /// Asynchronous delete_keyspaces(); completes with `void(error_code)`.
  template <class Range, class CompletionToken = net::default_completion_token_t<executor_type>>
  auto async_delete_keyspaces(
      const Range& names,
      CompletionToken&& token = net::default_completion_token_t<executor_type>()) {
    return initiate<void(error_code)>(
        token, [names = detail::copy_keys(names)](detail::engine_core& c, auto h) {
          c.post_result(detail::engine_core::write_handler(std::move(h)),
                        to_error(c.delete_keyspaces(names)));
        });
  }

  /// Replaces the definition of keyspace K (data source, budget, expiry) at
  /// runtime, or defines it again after delete_keyspace(). The old cache
  /// content is dropped; loads in flight under the old definition complete
  /// for their callers but are not cached; the warm keys are loaded again.
  /// Errors: invalid_config (the log names the field), not_started, stopped,
  /// blocking_call_on_engine_thread.
  template <class K>
  result<void> update_keyspace(K def) {
    if (auto ec = core_.check_blocking_call()) return ec;
    return core_.update_keyspace(index_of<K>(), adapter(std::move(def)));
  }

  /// Asynchronous update_keyspace(); completes with `void(error_code)`.
  template <class K, class CompletionToken = net::default_completion_token_t<executor_type>>
  auto async_update_keyspace(
      K def, CompletionToken&& token = net::default_completion_token_t<executor_type>()) {
    return initiate<void(error_code)>(
        token, [def = std::make_shared<K>(std::move(def))](detail::engine_core& c, auto h) {
          c.post_result(detail::engine_core::write_handler(std::move(h)),
                        to_error(c.update_keyspace(index_of<K>(), adapter(std::move(*def)))));
        });
  }

  /// The names of the live (not deleted) keyspaces, in declaration order.
  [[nodiscard]] std::vector<std::string> keyspaces() const { return core_.keyspaces(); }

  /// A snapshot of keyspace K's statistics (see keyspace_stats).
  template <class K>
  [[nodiscard]] keyspace_stats stats() const {
    return core_.stats(index_of<K>());
  }

  /// The `n` keys of keyspace K read most often lately on this node (its own
  /// callers' reads and, on the owner, its peers'), most frequent first,
  /// among the keys its caches hold now; empty when the keyspace tracks no
  /// hot keys (track_hot_keys false) or is deleted. See
  /// docs/freshness.md#hot-keys.
  template <class K>
  [[nodiscard]] std::vector<hot_key> hot_keys(std::size_t n) const {
    return core_.hot_keys(index_of<K>(), n);
  }

  /// A snapshot of the statistics of the keyspace named `name`; errors:
  /// keyspace_not_found for a name that is not one of the engine's keyspaces.
  [[nodiscard]] result<keyspace_stats> stats(std::string_view name) const {
    return core_.stats(name);
  }

 private:
  template <class K>
  static consteval std::size_t index_of() {
    constexpr bool found = (std::is_same_v<K, KeySpaces> || ...);
    static_assert(found,
                  "distcache: this keyspace type is not one of this engine's keyspaces; add it to "
                  "the engine's template arguments");
    std::size_t i = 0;
    (void)((std::is_same_v<K, KeySpaces> ? false : (++i, true)) && ...);
    return found ? i : 0;
  }

  using entries = std::vector<detail::engine_core::entry>;

  template <class K>
  static std::unique_ptr<detail::keyspace_adapter> adapter(K def) {
    return std::make_unique<detail::keyspace_adapter_for<K>>(std::move(def));
  }

  static std::vector<std::unique_ptr<detail::keyspace_adapter>> adapters(KeySpaces... defs) {
    std::vector<std::unique_ptr<detail::keyspace_adapter>> out;
    out.reserve(sizeof...(KeySpaces));
    (out.push_back(adapter(std::move(defs))), ...);
    return out;
  }

  template <class K>
  static entries one_entry(std::string_view key, value_type_of<K> value) {
    entries out;
    out.push_back({std::string(key), std::make_shared<const value_type_of<K>>(std::move(value))});
    return out;
  }

  template <class K, class Range>
  static entries copy_entries(const Range& in) {
    entries out;
    if constexpr (std::ranges::sized_range<const Range&>) out.reserve(std::ranges::size(in));
    for (const auto& [k, v] : in) {
      out.push_back(
          {std::string(std::string_view(k)), std::make_shared<const value_type_of<K>>(v)});
    }
    return out;
  }

  static error_code to_error(const result<void>& r) { return r ? error_code{} : r.error(); }
  static result<void> to_result(error_code ec) {
    if (ec) return ec;
    return {};
  }

  /// An asynchronous operation of completion signature `Signature` whose
  /// initiation is `op(core, handler)`.
  template <class Signature, class CompletionToken, class Op>
  auto initiate(CompletionToken& token, Op op) {
    return net::async_initiate<CompletionToken, Signature>(
        [core = &core_](auto handler, Op o) { std::move(o)(*core, std::move(handler)); }, token,
        std::move(op));
  }

  // The blocking forms take the keyspace's index, not its type: compiled
  // once per engine type, whatever the number of keyspaces.
  result<void> put_entries(std::size_t ks, entries e, duration ttl, telemetry::operation op) {
    if (auto ec = core_.check_blocking_call()) return ec;
    auto [ec] = detail::block_on<error_code>([this, ks, e = std::move(e), ttl, op](auto h) mutable {
      core_.put(ks, std::move(e), ttl, std::move(h), op);
    });
    return to_result(ec);
  }

  result<detail::engine_core::values> get_many_erased(std::size_t ks, std::vector<std::string> keys,
                                                      detail::op_scope scope) {
    auto [ec, values] = detail::block_on<error_code, detail::engine_core::values>(
        [this, ks, keys = std::move(keys), scope](auto h) mutable {
          core_.async_get_many(ks, std::move(keys), std::move(h), scope);
        });
    if (ec) return ec;
    return std::move(values);
  }

  template <class K, class CompletionToken>
  auto async_put_entries(entries e, duration ttl, CompletionToken& token, telemetry::operation op) {
    return initiate<void(error_code)>(
        token, [e = std::move(e), ttl, op](detail::engine_core& c, auto h) mutable {
          c.async_put(index_of<K>(), std::move(e), ttl, std::move(h), op);
        });
  }

  result<void> remove_keys(std::size_t ks, std::vector<std::string> keys, telemetry::operation op) {
    if (auto ec = core_.check_blocking_call()) return ec;
    auto [ec] =
        detail::block_on<error_code>([this, ks, keys = std::move(keys), op](auto h) mutable {
          core_.remove(ks, std::move(keys), std::move(h), op);
        });
    return to_result(ec);
  }

  template <class K, class CompletionToken>
  auto async_remove_keys(std::vector<std::string> keys, CompletionToken& token,
                         telemetry::operation op) {
    return initiate<void(error_code)>(
        token, [keys = std::move(keys), op](detail::engine_core& c, auto h) mutable {
          c.async_remove(index_of<K>(), std::move(keys), std::move(h), op);
        });
  }

  detail::engine_core core_;
};

/// An engine over KeySpaces with the default policies.
template <class... KeySpaces>
using engine = basic_engine<default_policies, KeySpaces...>;

}  // namespace distcache

#endif  // DISTCACHE_ENGINE_HPP
