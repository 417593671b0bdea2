// distcache — basic_engine / engine: the public operations.
#ifndef DISTCACHE_ENGINE_HPP
#define DISTCACHE_ENGINE_HPP

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <distcache/cache/stats.hpp>
#include <distcache/clock.hpp>
#include <distcache/cluster/membership.hpp>
#include <distcache/cluster/ring.hpp>
#include <distcache/config.hpp>
#include <distcache/detail/hash.hpp>
#include <distcache/detail/keyspace_runtime.hpp>
#include <distcache/detail/waiters.hpp>
#include <distcache/discovery/provider.hpp>
#include <distcache/error.hpp>
#include <distcache/keyspace.hpp>
#include <distcache/policies.hpp>
#include <distcache/transport/http.hpp>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace distcache {

namespace net = boost::asio;

/// A shared read-only handle to a cached value. A cache hit hands out the
/// decoded object itself, without copying or re-parsing it.
template <class T>
using value_ptr = std::shared_ptr<const T>;

namespace detail {

/// The engine whose thread this is (io_context threads and fetches on the
/// blocking pool), to detect blocking calls that would deadlock.
inline thread_local const void* current_engine = nullptr;

template <class... K>
consteval bool unique_names() {
  constexpr std::string_view names[] = {std::string_view{K::name}...};  // NOLINT
  for (std::size_t i = 0; i < sizeof...(K); ++i) {
    if (names[i].empty()) return false;
    for (std::size_t j = i + 1; j < sizeof...(K); ++j) {
      if (names[i] == names[j]) return false;
    }
  }
  return true;
}

}  // namespace detail

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
  /// cfg.cluster.enabled).
  basic_engine(config cfg, discovery_type discovery, KeySpaces... defs)
      : cfg_(std::move(cfg)), discovery_(std::move(discovery)) {
    if (auto why = detail::validate_engine(cfg_); !why.empty()) throw config_error(why);
    for (const auto& [name, options] : cfg_.keyspaces) {
      (void)options;
      if (!is_keyspace_name(name)) {
        throw config_error("config.keyspaces: '" + name +
                           "' is not one of this engine's keyspaces");
      }
    }
    if (!cfg_.log) cfg_.log = log_to_stderr;
    check_protection_policies();
    std::string why;
    auto install = [&]<std::size_t I>(std::integral_constant<std::size_t, I>, auto& def) {
      auto rt = make_runtime<I>(std::move(def), why);
      if (!rt) throw config_error(why);
      std::get<I>(slots_).replace(std::move(rt));
    };
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (install(std::integral_constant<std::size_t, I>{}, defs), ...);
    }
    (std::index_sequence_for<KeySpaces...>{});
    members_ = std::make_unique<detail::membership>(self_name_, cfg_.cluster.virtual_nodes,
                                                    cfg_.cluster.failure_threshold);
  }

  basic_engine(const basic_engine&) = delete;
  basic_engine& operator=(const basic_engine&) = delete;

  /// Stops the engine (see stop()).
  ~basic_engine() {
    try {
      (void)stop();
    } catch (...) {  // a throwing logger or discovery provider must not end the process here
    }
  }

  /// Starts the engine's threads; in a cluster also the peer server,
  /// discovery and membership: start() returns once at least
  /// cluster.minimum_peers_quorum nodes (this one included) answer, or fails
  /// with errc::cluster_quorum after max_join_attempts rounds or
  /// bootstrap_timeout, having released everything it started (start() may be
  /// called again). Loads the warm keys in the background.
  /// Errors: stopped after stop(), cluster_quorum, the server's bind error,
  /// blocking_call_on_engine_thread. Starting twice is a no-op.
  result<void> start() {
    if (auto ec = check_blocking_call()) return ec;
    std::lock_guard lock(lifecycle_);
    const int s = state_.load();
    if (s == running) return {};
    if (s == stopped) return make_error_code(errc::stopped);
    const std::size_t fetch_threads = cfg_.fetch_threads != 0 ? cfg_.fetch_threads : 8;
    std::size_t threads = cfg_.threads;
    if (threads == 0) threads = std::max(1U, std::thread::hardware_concurrency());
    ioc_.restart();
    pool_ = std::make_unique<net::thread_pool>(fetch_threads);
    work_.emplace(ioc_.get_executor());
    for (std::size_t i = 0; i < threads; ++i) {
      threads_.emplace_back([this] {
        detail::current_engine = this;
        ioc_.run();
      });
    }
    if (cfg_.cluster.enabled) {
      if (auto ec = start_cluster()) {
        shutdown_threads();
        return ec;
      }
    }
    state_.store(running);
    if (cfg_.cluster.enabled) {
      schedule_probe();
      schedule_discovery();
    }
    for_each_slot([&]<std::size_t I>(std::integral_constant<std::size_t, I>) { warm<I>(); });
    return {};
  }

  /// Starts the engine; completes with `void(error_code)`.
  template <class CompletionToken = net::default_completion_token_t<executor_type>>
  auto async_start(CompletionToken&& token = net::default_completion_token_t<executor_type>()) {
    return complete_now<void(error_code)>(std::forward<CompletionToken>(token), [this] {
      auto r = start();
      return std::make_tuple(r ? error_code{} : r.error());
    });
  }

  /// Stops the engine: new operations fail with errc::stopped, waiting
  /// callers complete with errc::stopped, running fetches are waited for,
  /// pending handlers on the engine's executor run, and the threads end.
  /// Stopping twice, or before start(), is a no-op that returns success.
  result<void> stop() {
    if (detail::current_engine == this)
      return make_error_code(errc::blocking_call_on_engine_thread);
    std::lock_guard lock(lifecycle_);
    int expected = running;
    if (!state_.compare_exchange_strong(expected, stopped)) return {};
    if (cfg_.cluster.enabled) stop_cluster();
    for_each_slot([&]<std::size_t I>(std::integral_constant<std::size_t, I>) {
      auto& slot = std::get<I>(slots_);
      std::lock_guard slot_lock(slot.mutex);
      for (auto& rt : slot.runtimes) rt->flights.abandon_all(make_error_code(errc::stopped));
    });
    shutdown_threads();
    return {};
  }

  /// This node's name, "host:port": its peer address in a cluster (known
  /// after start() when cluster.port is 0), "self" otherwise.
  [[nodiscard]] std::string self_name() const {
    std::lock_guard lock(lifecycle_);
    return self_name_;
  }

  /// The peers in the ring now (this node excluded).
  [[nodiscard]] std::vector<std::string> cluster_peers() const { return members()->alive_peers(); }

  /// The node that owns `key` now ("host:port", or self_name()).
  [[nodiscard]] std::string owner_of(std::string_view key) const {
    auto r = members()->current();
    const auto i = r->owner_index(detail::hash_key(key));
    return r->nodes()[i];
  }

  /// The version of the ring now (a hash of its member list).
  [[nodiscard]] std::uint64_t ring_version() const { return members()->current()->version(); }

  /// Calls `on_event` for every membership change (peer joined or left), in
  /// order, on the engine's blocking pool, one event at a time per
  /// subscriber: a slow subscriber delays its own later events and holds one
  /// fetch thread, never a network thread. Blocking engine calls are refused
  /// inside it, as in a data source. Subscribe before start() to see the
  /// peers found while joining.
  void subscribe(std::function<void(const peer_event&)> on_event) {
    std::lock_guard lock(subscribers_mutex_);
    subscribers_.push_back(std::make_shared<subscriber>(std::move(on_event)));
  }

  /// The executor of the engine's io_context.
  [[nodiscard]] executor_type get_executor() noexcept { return ioc_.get_executor(); }

  // ---------------------------------------------------------------- get

  /// The value of `key` in keyspace K: from the cache, or loaded once from
  /// the data source on a miss (concurrent misses share one load).
  /// Errors: invalid_key, keyspace_not_found, not_found, data_source_failed,
  /// timeout (read_timeout passed; the load runs on for others),
  /// value_too_large (loaded but cannot be cached), not_started, stopped,
  /// blocking_call_on_engine_thread.
  template <class K>
  result<value_ptr<value_type_of<K>>> get(std::string_view key) {
    constexpr std::size_t I = index_of<K>();
    if (auto ec = check_blocking_call()) return ec;
    auto rt = runtime_for<I>(key);
    if (!rt) return rt.error();
    auto& counters = std::get<I>(slots_).counters;
    const std::uint64_t h = detail::hash_key(key);
    if (auto v = lookup(**rt, {key, h})) {
      counters.cache_hits.add();
      return std::static_pointer_cast<const value_type_of<K>>(std::move(v));
    }
    auto w = std::make_shared<detail::sync_waiter>(ioc_.get_executor(), std::string(key), h);
    join_load<I>(**rt, w);
    counters.loads.add();  // after joining: `loads` callers are all in a flight
    auto [ec, value] = w->wait();
    if (ec) return ec;
    return std::static_pointer_cast<const value_type_of<K>>(std::move(value));
  }

  /// Asynchronous get(); completes with
  /// `void(error_code, value_ptr<value_type_of<K>>)`. Per-operation
  /// cancellation (any type) ends this caller's wait with
  /// net::error::operation_aborted; the shared load continues.
  template <class K, class CompletionToken = net::default_completion_token_t<executor_type>>
  auto async_get(std::string_view key,
                 CompletionToken&& token = net::default_completion_token_t<executor_type>()) {
    using V = value_type_of<K>;
    return net::async_initiate<CompletionToken, void(error_code, value_ptr<V>)>(
        [self = this](auto handler, std::string key) {
          self->template start_get<index_of<K>()>(std::move(key), std::move(handler));
        },
        token, std::string(key));
  }

  /// The values of `keys` (any range of string-like keys), in the order of
  /// the keys; each has its own result, so one key's error loses no other
  /// key's value. The outer error is for the whole call (keyspace_not_found,
  /// not_started, stopped, blocking_call_on_engine_thread).
  template <class K, class Range>
  result<std::vector<result<value_ptr<value_type_of<K>>>>> get_many(const Range& keys) {
    if (auto ec = check_blocking_call()) return ec;
    if (auto hits = all_hits<index_of<K>()>(keys)) return std::move(*hits);
    auto f = async_get_many<K>(keys, net::use_future);
    return wait_future(f);
  }

  /// Asynchronous get_many(); completes with
  /// `void(error_code, std::vector<result<value_ptr<value_type_of<K>>>>)`.
  template <class K, class Range,
            class CompletionToken = net::default_completion_token_t<executor_type>>
  auto async_get_many(const Range& keys,
                      CompletionToken&& token = net::default_completion_token_t<executor_type>()) {
    using V = value_type_of<K>;
    using list = std::vector<result<value_ptr<V>>>;
    std::vector<std::string> owned;
    if constexpr (std::ranges::sized_range<const decltype(keys)&>) {
      owned.reserve(std::ranges::size(keys));
    }
    for (const auto& k : keys) owned.emplace_back(std::string_view(k));
    return net::async_initiate<CompletionToken, void(error_code, list)>(
        [self = this](auto handler, std::vector<std::string> keys) {
          self->template start_get_many<index_of<K>()>(std::move(keys), std::move(handler));
        },
        token, std::move(owned));
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
    if (auto ec = check_blocking_call()) return ec;
    std::vector<std::pair<std::string, value_type_of<K>>> one;
    one.emplace_back(std::string(key), std::move(value));
    return wait_op([&](auto done) { put_op<index_of<K>()>(std::move(one), ttl, std::move(done)); });
  }

  /// Asynchronous put(); completes with `void(error_code)`.
  template <class K, class CompletionToken = net::default_completion_token_t<executor_type>>
  auto async_put(std::string_view key, value_type_of<K> value, duration ttl = duration::zero(),
                 CompletionToken&& token = net::default_completion_token_t<executor_type>()) {
    std::vector<std::pair<std::string, value_type_of<K>>> one;
    one.emplace_back(std::string(key), std::move(value));
    return initiate_op(std::forward<CompletionToken>(token),
                       [self = this, one = std::move(one), ttl](auto done) mutable {
                         self->template put_op<index_of<K>()>(std::move(one), ttl, std::move(done));
                       });
  }

  /// Stores every (key, value) pair of `entries` (a range of pairs; copied)
  /// with the same expiry rules as put(). All keys and sizes are checked
  /// first: on invalid_key or value_too_large nothing is stored.
  template <class K, class Range>
  result<void> put_many(const Range& entries, duration ttl = duration::zero()) {
    if (auto ec = check_blocking_call()) return ec;
    auto owned = copy_entries<K>(entries);
    return wait_op(
        [&](auto done) { put_op<index_of<K>()>(std::move(owned), ttl, std::move(done)); });
  }

  /// Asynchronous put_many(); `entries` is copied; completes with
  /// `void(error_code)`.
  template <class K, class Range,
            class CompletionToken = net::default_completion_token_t<executor_type>>
  auto async_put_many(const Range& entries, duration ttl = duration::zero(),
                      CompletionToken&& token = net::default_completion_token_t<executor_type>()) {
    return initiate_op(std::forward<CompletionToken>(token),
                       [self = this, owned = copy_entries<K>(entries), ttl](auto done) mutable {
                         self->template put_op<index_of<K>()>(std::move(owned), ttl,
                                                              std::move(done));
                       });
  }

  // ---------------------------------------------------------------- remove

  /// Removes `key` from keyspace K's caches, on every node of a cluster; a
  /// load of it in flight does not bring it back. Removing an absent key
  /// succeeds. Errors: invalid_key, keyspace_not_found, peer_unavailable (a
  /// node in the ring did not confirm), not_started, stopped,
  /// blocking_call_on_engine_thread.
  template <class K>
  result<void> remove(std::string_view key) {
    if (auto ec = check_blocking_call()) return ec;
    return wait_op([&](auto done) {
      remove_op<index_of<K>()>(std::vector<std::string>{std::string(key)}, std::move(done));
    });
  }

  /// Asynchronous remove(); completes with `void(error_code)`.
  template <class K, class CompletionToken = net::default_completion_token_t<executor_type>>
  auto async_remove(std::string_view key,
                    CompletionToken&& token = net::default_completion_token_t<executor_type>()) {
    return initiate_op(
        std::forward<CompletionToken>(token),
        [self = this, keys = std::vector<std::string>{std::string(key)}](auto done) mutable {
          self->template remove_op<index_of<K>()>(std::move(keys), std::move(done));
        });
  }

  /// Removes every key of `keys`, one request per node. All keys are checked
  /// first: on invalid_key nothing is removed.
  template <class K, class Range>
  result<void> remove_many(const Range& keys) {
    if (auto ec = check_blocking_call()) return ec;
    return wait_op([&](auto done) { remove_op<index_of<K>()>(copy_keys(keys), std::move(done)); });
  }

  /// Asynchronous remove_many(); completes with `void(error_code)`.
  template <class K, class Range,
            class CompletionToken = net::default_completion_token_t<executor_type>>
  auto async_remove_many(const Range& keys, CompletionToken&& token =
                                                net::default_completion_token_t<executor_type>()) {
    return initiate_op(std::forward<CompletionToken>(token),
                       [self = this, owned = copy_keys(keys)](auto done) mutable {
                         self->template remove_op<index_of<K>()>(std::move(owned), std::move(done));
                       });
  }

  // ---------------------------------------------------------------- keyspaces

  /// Deletes the keyspace named `name`: its cache is dropped and operations
  /// on it fail with keyspace_not_found until update_keyspace() defines it
  /// again. Errors: keyspace_not_found (unknown or already deleted),
  /// not_started, stopped, blocking_call_on_engine_thread.
  result<void> delete_keyspace(std::string_view name) {
    if (auto ec = check_blocking_call()) return ec;
    const std::string_view one[] = {name};  // NOLINT
    return do_delete_keyspaces(one);
  }

  /// Asynchronous delete_keyspace(); completes with `void(error_code)`.
  template <class CompletionToken = net::default_completion_token_t<executor_type>>
  auto async_delete_keyspace(
      std::string_view name,
      CompletionToken&& token = net::default_completion_token_t<executor_type>()) {
    return complete_now<void(error_code)>(
        std::forward<CompletionToken>(token), [this, name = std::string(name)] {
          const std::string_view one[] = {name};  // NOLINT
          return std::make_tuple(to_error(do_delete_keyspaces(one)));
        });
  }

  /// Deletes every keyspace named in `names`. All names are checked first:
  /// when one is unknown or already deleted, nothing is deleted.
  template <class Range>
  result<void> delete_keyspaces(const Range& names) {
    if (auto ec = check_blocking_call()) return ec;
    return do_delete_keyspaces(names);
  }

  /// Asynchronous delete_keyspaces(); completes with `void(error_code)`.
  template <class Range, class CompletionToken = net::default_completion_token_t<executor_type>>
  auto async_delete_keyspaces(
      const Range& names,
      CompletionToken&& token = net::default_completion_token_t<executor_type>()) {
    std::vector<std::string> owned;
    if constexpr (std::ranges::sized_range<const decltype(names)&>) {
      owned.reserve(std::ranges::size(names));
    }
    for (const auto& n : names) owned.emplace_back(std::string_view(n));
    return complete_now<void(error_code)>(
        std::forward<CompletionToken>(token), [this, owned = std::move(owned)] {
          return std::make_tuple(to_error(do_delete_keyspaces(owned)));
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
    if (auto ec = check_blocking_call()) return ec;
    return do_update<index_of<K>()>(std::move(def));
  }

  /// Asynchronous update_keyspace(); completes with `void(error_code)`.
  template <class K, class CompletionToken = net::default_completion_token_t<executor_type>>
  auto async_update_keyspace(
      K def, CompletionToken&& token = net::default_completion_token_t<executor_type>()) {
    return complete_now<void(error_code)>(
        std::forward<CompletionToken>(token), [this, def = std::move(def)]() mutable {
          return std::make_tuple(to_error(do_update<index_of<K>()>(std::move(def))));
        });
  }

  /// The names of the live (not deleted) keyspaces, in declaration order.
  [[nodiscard]] std::vector<std::string> keyspaces() const {
    std::vector<std::string> out;
    for_each_slot([&]<std::size_t I>(std::integral_constant<std::size_t, I>) {
      if (std::get<I>(slots_).current.load(std::memory_order_acquire) != nullptr) {
        out.emplace_back(name_of<I>());
      }
    });
    return out;
  }

  /// A snapshot of keyspace K's statistics (see keyspace_stats).
  template <class K>
  [[nodiscard]] keyspace_stats stats() const {
    return stats_of<index_of<K>()>();
  }

  /// A snapshot of the statistics of the keyspace named `name`; errors:
  /// keyspace_not_found for a name that is not one of the engine's keyspaces.
  [[nodiscard]] result<keyspace_stats> stats(std::string_view name) const {
    result<keyspace_stats> out = make_error_code(errc::keyspace_not_found);
    for_each_slot([&]<std::size_t I>(std::integral_constant<std::size_t, I>) {
      if (name_of<I>() == name) out = stats_of<I>();
    });
    return out;
  }

 private:
  enum : int { created = 0, running = 1, stopped = 2 };

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

  template <std::size_t I>
  using keyspace_at = std::tuple_element_t<I, std::tuple<KeySpaces...>>;
  using guards_type = detail::source_guards<typename Policies::rate_limiter_type,
                                            typename Policies::circuit_breaker_type>;
  template <std::size_t I>
  using runtime_at = detail::keyspace_runtime<keyspace_at<I>, guards_type>;

  template <std::size_t I>
  static constexpr std::string_view name_of() {
    return keyspace_at<I>::name;
  }

  /// A configured limiter or breaker needs a policy that implements it;
  /// silently ignoring the setting would leave the source unprotected.
  void check_protection_policies() const {
    bool wants_limiter = cfg_.rate_limiter.has_value();
    bool wants_breaker = cfg_.circuit_breaker.has_value();
    for (const auto& [name, o] : cfg_.keyspaces) {
      wants_limiter = wants_limiter || o.rate_limiter.has_value();
      wants_breaker = wants_breaker || o.circuit_breaker.has_value();
    }
    if (wants_limiter &&
        std::is_same_v<typename Policies::rate_limiter_type, protection::no_rate_limiter>) {
      throw config_error(
          "config.rate_limiter: set, but the engine's RateLimiter policy is "
          "protection::no_rate_limiter; build the engine with policies<..., "
          "protection::token_bucket>");
    }
    if (wants_breaker &&
        std::is_same_v<typename Policies::circuit_breaker_type, protection::no_circuit_breaker>) {
      throw config_error(
          "config.circuit_breaker: set, but the engine's CircuitBreaker policy is "
          "protection::no_circuit_breaker; build the engine with policies<..., "
          "protection::circuit_breaker>");
    }
  }

  static bool is_keyspace_name(std::string_view name) {
    return ((name == std::string_view{KeySpaces::name}) || ...);
  }

  template <class F>
  void for_each_slot(F&& f) const {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (f(std::integral_constant<std::size_t, I>{}), ...);
    }
    (std::index_sequence_for<KeySpaces...>{});
  }

  template <std::size_t I>
  std::shared_ptr<runtime_at<I>> make_runtime(keyspace_at<I> def, std::string& why) {
    detail::resolved_keyspace opts;
    if (!detail::resolve_keyspace(cfg_, name_of<I>(), static_cast<std::int64_t>(def.max_bytes),
                                  opts, why)) {
      return nullptr;
    }
    return std::make_shared<runtime_at<I>>(std::move(def), std::move(opts), cfg_.clock.get());
  }

  error_code check_blocking_call() const noexcept {
    if (detail::current_engine == this)
      return make_error_code(errc::blocking_call_on_engine_thread);
    return {};
  }

  error_code check_state() const noexcept {
    const int s = state_.load(std::memory_order_acquire);
    if (s == running) return {};
    return make_error_code(s == created ? errc::not_started : errc::stopped);
  }

  error_code check_key(std::string_view key) const noexcept {
    if (key.empty() || key.size() > cfg_.max_key_bytes) return make_error_code(errc::invalid_key);
    return {};
  }

  /// The live runtime of keyspace I after checking the state and the key.
  template <std::size_t I>
  result<runtime_at<I>*> runtime_for(std::string_view key) const {
    if (auto ec = check_state()) return ec;
    if (auto ec = check_key(key)) return ec;
    auto* rt = std::get<I>(slots_).current.load(std::memory_order_acquire);
    if (rt == nullptr) return make_error_code(errc::keyspace_not_found);
    return rt;
  }

  /// The values of `keys` when every one is a valid key cached on this
  /// node, looked up inline (the common case of a blocking get_many); empty
  /// otherwise, and the caller takes the general path, which looks up again
  /// and counts. Nothing is counted unless every key hits.
  template <std::size_t I, class Range>
  std::optional<std::vector<result<value_ptr<value_type_of<keyspace_at<I>>>>>> all_hits(
      const Range& keys) {
    using V = value_type_of<keyspace_at<I>>;
    if (check_state()) return std::nullopt;
    auto* rt = std::get<I>(slots_).current.load(std::memory_order_acquire);
    if (rt == nullptr) return std::nullopt;
    std::vector<result<value_ptr<V>>> out;
    if constexpr (std::ranges::sized_range<const Range&>) out.reserve(std::ranges::size(keys));
    for (const auto& k : keys) {
      const std::string_view key(k);
      if (check_key(key)) return std::nullopt;
      auto v = lookup(*rt, {key, detail::hash_key(key)});
      if (!v) return std::nullopt;
      out.emplace_back(std::static_pointer_cast<const V>(std::move(v)));
    }
    std::get<I>(slots_).counters.cache_hits.add(out.size());
    return out;
  }

  template <class Runtime>
  static std::shared_ptr<const void> lookup(Runtime& rt, detail::hashed_key key) {
    if (auto v = rt.main.get(key)) return v;
    return rt.hot.get(key);
  }

  time_point now() const noexcept { return cfg_.clock ? cfg_.clock->now() : clock_type::now(); }

  /// The expiry of a value stored now: `ttl` when > 0, else K::expires_at,
  /// else the keyspace's default TTL, else never.
  template <std::size_t I>
  time_point expiry_for(const runtime_at<I>& rt, std::string_view key, duration ttl) const {
    if (ttl > duration::zero()) return now() + ttl;
    if constexpr (has_expires_at<keyspace_at<I>>) {
      return rt.def.expires_at(key);
    } else {
      if (rt.opts.default_ttl > duration::zero()) return now() + rt.opts.default_ttl;
      return never_expires;
    }
  }

  /// Joins (or starts) the flight of w's key and arms w's deadline.
  template <std::size_t I>
  void join_load(runtime_at<I>& rt, const std::shared_ptr<detail::timed_waiter>& w,
                 bool local_only = false) {
    w->arm(rt.flights, rt.opts.read_timeout);
    if (rt.flights.join(w->key(), w)) {
      start_load<I>(rt, std::string(w->key().text), w->key().hash, local_only);
    }
  }

  /// Loads one flight's key: from its owner when that is another node (a
  /// request from a peer never reaches here with a remote owner: peers are
  /// answered by load_locally), else from the data source.
  template <std::size_t I>
  void start_load(runtime_at<I>& rt, std::string key, std::uint64_t hash, bool local_only = false) {
    std::get<I>(slots_).counters.loads_deduped.add();
    if (cfg_.cluster.enabled && !local_only) {
      auto r = members()->current();
      const std::string& owner = r->nodes()[r->owner_index(hash)];
      if (owner != self_name_) {
        remote_load<I>(rt, std::move(key), hash, owner, r->version());
        return;
      }
    }
    load_locally<I>(rt, std::move(key), hash);
  }

  /// Asks `owner` for the key; the value enters the hot cache. A peer that
  /// fails (transport error, timeout, garbage) counts in peer_errors, is
  /// suspected, and the key is loaded locally so the caller still gets it.
  template <std::size_t I>
  void remote_load(runtime_at<I>& rt, std::string key, std::uint64_t hash, const std::string& owner,
                   std::uint64_t version) {
    auto keys = std::vector<std::string>{key};
    client_->get(owner, name_of<I>(), std::move(keys), version, peer_read_timeout(rt),
                 [this, rt = rt.shared_from_this(), key = std::move(key), hash, owner](
                     error_code ec, std::vector<transport::reply_item> items) mutable {
                   auto& counters = std::get<I>(slots_).counters;
                   bool alive = false;  // it answered, but cannot serve this key now
                   if (!ec && items.size() == 1) {
                     if (accept_remote<I>(*rt, key, hash, items[0])) {
                       publish(members()->on_success(owner));
                       return;
                     }
                     alive = peer_not_serving(items[0]);
                     ec = alive ? make_error_code(items[0].error)
                                : make_error_code(errc::peer_unavailable);
                   }
                   alive = alive || peer_not_serving(ec);
                   counters.peer_errors.add();
                   // A peer that answers "not serving" is alive: it stays in
                   // the ring (it may serve other keyspaces, or soon start).
                   if (!alive) publish(members()->on_failure(owner));
                   cfg_.log(log_level::warning, "keyspace '" + std::string(name_of<I>()) +
                                                    "': peer " + owner + " failed (" +
                                                    ec.message() + "); loading locally");
                   load_locally<I>(*rt, std::move(key), hash);
                 });
  }

  /// True when a peer's answer says it cannot serve now (it is still
  /// joining, stopping, or lacks the keyspace): treated like a peer failure,
  /// so the key is loaded locally instead of failing the caller.
  static bool peer_not_serving(const transport::reply_item& item) noexcept {
    return item.status == transport::reply_item::kind::error &&
           peer_not_serving(make_error_code(item.error));
  }
  static bool peer_not_serving(const error_code& ec) noexcept {
    return ec == errc::not_started || ec == errc::stopped || ec == errc::keyspace_not_found ||
           ec == errc::blocking_call_on_engine_thread;
  }

  /// How long a get waits for the owner: min(cluster.peer_timeout, half the
  /// read timeout), so that a local load after a peer failure still fits in
  /// the caller's read timeout.
  template <class Runtime>
  duration peer_read_timeout(const Runtime& rt) const {
    return std::min<duration>(cfg_.cluster.peer_timeout, rt.opts.read_timeout / 2);
  }

  /// Ends the flight of `key` with a peer's reply item. Returns false (and
  /// leaves the flight alone) when the item's value does not decode.
  template <std::size_t I>
  bool accept_remote(runtime_at<I>& rt, const std::string& key, std::uint64_t hash,
                     transport::reply_item& item) {
    using V = value_type_of<keyspace_at<I>>;
    const detail::hashed_key hk{key, hash};
    if (peer_not_serving(item)) return false;
    auto& counters = std::get<I>(slots_).counters;
    if (item.status == transport::reply_item::kind::not_found) {
      counters.peer_loads.add();  // counted before the waiters wake
      rt.flights.finish(hk, make_error_code(errc::not_found), nullptr, [] { return error_code{}; });
      return true;
    }
    if (item.status == transport::reply_item::kind::error) {
      counters.peer_loads.add();
      rt.flights.finish(hk, make_error_code(item.error), nullptr, [] { return error_code{}; });
      return true;
    }
    auto decoded = keyspace_serializer_t<keyspace_at<I>>{}.deserialize(item.value);
    if (!decoded) return false;
    const time_point expires = from_ttl_ms(item.ttl_ms);
    const std::size_t bytes = detail::value_bytes(rt.def, *decoded);
    auto value = std::make_shared<const V>(std::move(*decoded));
    counters.peer_loads.add();
    rt.flights.finish(
        hk, {}, value,
        [&]() -> error_code {
          if (rt.retired.load(std::memory_order_acquire)) return {};
          if (expires != never_expires && expires <= now()) return {};
          // A value too large for the hot cache is still handed out.
          (void)rt.hot.put(hk, value, bytes, expires);
          return {};
        },
        expires);
    return true;
  }

  /// Loads one flight's key from the data source, through the protection:
  /// circuit breaker, then rate limiter (waiting up to its wait_timeout on a
  /// timer, never on a network thread), then the concurrency limit (queued up
  /// to the read timeout), then fetch on the blocking pool.
  template <std::size_t I>
  void load_locally(runtime_at<I>& rt, std::string key, std::uint64_t hash) {
    auto& g = rt.guards;
    if (g.breaker && !g.breaker->allow()) {
      rt.flights.finish({key, hash}, make_error_code(errc::data_source_circuit_open), nullptr,
                        [] { return error_code{}; });
      return;
    }
    const duration wait =
        g.limiter && rt.opts.rate_limiter ? rt.opts.rate_limiter->wait_timeout : duration::zero();
    acquire_token<I>(&rt, std::move(key), hash, now() + wait,
                     clock_type::now() + wait + rt.opts.read_timeout);
  }

  /// Takes a rate-limiter token, waiting for one until `deadline` (on the
  /// configured clock; `real_deadline` bounds the wait should that clock stand
  /// still), then enters the concurrency limit.
  template <std::size_t I>
  void acquire_token(runtime_at<I>* rt, std::string key, std::uint64_t hash, time_point deadline,
                     clock_type::time_point real_deadline) {
    auto& g = rt->guards;
    if (g.limiter) {
      const duration wait = g.limiter->try_acquire();
      if (wait > duration::zero()) {
        if (now() + wait > deadline || clock_type::now() >= real_deadline) {
          g.rate_limited.add();
          if (g.breaker) g.breaker->on_neutral();
          rt->flights.finish({key, hash}, make_error_code(errc::data_source_rate_limited), nullptr,
                             [] { return error_code{}; });
          return;
        }
        // Re-check at least every 10 ms, so a clock that jumps (a manual
        // clock in tests, a suspended VM) is noticed promptly.
        auto timer = std::make_shared<net::steady_timer>(
            ioc_, std::min<duration>(wait, std::chrono::milliseconds(10)));
        timer->async_wait([this, timer, rt, key = std::move(key), hash, deadline,
                           real_deadline](error_code ec) mutable {
          if (ec || state_.load() != running) return;  // stop() ended the waiters
          acquire_token<I>(rt, std::move(key), hash, deadline, real_deadline);
        });
        return;
      }
    }
    g.fetches.submit(
        [this, rt, key = std::move(key), hash, queued_at = clock_type::now()]() mutable {
          if (clock_type::now() - queued_at > rt->opts.read_timeout) {
            // Waited longer than any caller would: do not call the source.
            rt->guards.fetches.release();
            if (rt->guards.breaker) rt->guards.breaker->on_neutral();
            rt->flights.finish({key, hash}, make_error_code(errc::timeout), nullptr,
                               [] { return error_code{}; });
            return;
          }
          fetch_on_pool<I>(*rt, std::move(key), hash);
        });
  }

  /// Calls the data source on the blocking pool, records the outcome in the
  /// circuit breaker, leaves the concurrency limit and publishes the value
  /// into the main cache.
  template <std::size_t I>
  void fetch_on_pool(runtime_at<I>& rt, std::string key, std::uint64_t hash) {
    auto& counters = std::get<I>(slots_).counters;
    net::post(*pool_, [this, rt = rt.shared_from_this(), key = std::move(key), hash, &counters] {
      using V = value_type_of<keyspace_at<I>>;
      const void* previous = std::exchange(detail::current_engine, this);
      error_code ec;
      std::shared_ptr<const V> value;
      time_point expires = never_expires;
      std::size_t bytes = 0;
      try {
        fetch_result<V> fr = rt->def.source.fetch(key);
        if (fr.has_value()) {
          bytes = detail::value_bytes(rt->def, fr.value());
          expires = fr.has_expiry() ? fr.expires_at() : expiry_for<I>(*rt, key, duration::zero());
          value = std::make_shared<const V>(std::move(fr.value()));
          counters.local_loads.add();
        } else {
          ec = fr.error();
          if (!fr.is_not_found()) counters.local_load_errs.add();
        }
      } catch (const std::exception& e) {
        ec = make_error_code(errc::data_source_failed);
        counters.local_load_errs.add();
        cfg_.log(log_level::warning, "keyspace '" + std::string(name_of<I>()) +
                                         "': data source threw for key '" + key.substr(0, 64) +
                                         "': " + e.what());
      } catch (...) {
        ec = make_error_code(errc::data_source_failed);
        counters.local_load_errs.add();
        cfg_.log(log_level::warning, "keyspace '" + std::string(name_of<I>()) +
                                         "': data source threw a non-standard exception");
      }
      detail::current_engine = previous;
      if (rt->guards.breaker) {
        if (!ec || ec == errc::not_found) {
          rt->guards.breaker->on_success();  // the source answered
        } else {
          rt->guards.breaker->on_failure();
        }
      }
      rt->guards.fetches.release();
      rt->flights.finish(
          {key, hash}, ec, value,
          [&]() -> error_code {
            if (rt->retired.load(std::memory_order_acquire)) return {};
            if (expires != never_expires && expires <= now()) return {};  // already expired
            if (!rt->main.put({key, hash}, value, bytes, expires)) {
              return make_error_code(errc::value_too_large);
            }
            return {};
          },
          expires);
    });
  }

  /// `local_only`: the owner already failed for this key (get_many's batch),
  /// so a miss loads here instead of asking it again.
  template <std::size_t I, class Handler>
  void start_get(std::string key, Handler handler, bool local_only = false) {
    using V = value_type_of<keyspace_at<I>>;
    auto rt = runtime_for<I>(key);
    if (!rt) return post_result(std::move(handler), rt.error(), value_ptr<V>{});
    auto& counters = std::get<I>(slots_).counters;
    const std::uint64_t h = detail::hash_key(key);
    if (auto v = lookup(**rt, {key, h})) {
      counters.cache_hits.add();
      return post_result(std::move(handler), error_code{},
                         std::static_pointer_cast<const V>(std::move(v)));
    }
    auto w = std::make_shared<detail::async_waiter<V, Handler>>(ioc_.get_executor(), std::move(key),
                                                                h, std::move(handler));
    // Connected before joining: once joined, the load may complete (and take
    // the handler) on another thread at any moment.
    w->connect_cancellation((*rt)->flights);
    join_load<I>(**rt, w, local_only);
    counters.loads.add();  // after joining: `loads` callers are all in a flight
  }

  template <std::size_t I, class Handler>
  void start_get_many(std::vector<std::string> keys, Handler handler) {
    using V = value_type_of<keyspace_at<I>>;
    using list = std::vector<result<value_ptr<V>>>;
    if (auto ec = check_state()) return post_result(std::move(handler), ec, list{});
    auto* rt = std::get<I>(slots_).current.load(std::memory_order_acquire);
    if (rt == nullptr) {
      return post_result(std::move(handler), make_error_code(errc::keyspace_not_found), list{});
    }
    if (keys.empty()) return post_result(std::move(handler), error_code{}, list{});
    // Each key completes one slot; the last to finish completes the call.
    struct gather : std::enable_shared_from_this<gather> {
      gather(std::size_t n, Handler h, executor_type ex)
          : results(n, result<value_ptr<V>>(make_error_code(errc::timeout))),
            remaining(n),
            handler(std::move(h)),
            engine_ex(ex),
            work(net::get_associated_executor(handler, ex)) {}
      list results;
      std::atomic<std::size_t> remaining;
      Handler handler;
      executor_type engine_ex;
      net::executor_work_guard<net::associated_executor_t<Handler, executor_type>> work;
      void set(std::size_t i, error_code ec, value_ptr<V> v) {
        if (ec) {
          results[i] = ec;
        } else {
          results[i] = std::move(v);
        }
        if (remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) {
          auto ex = net::get_associated_executor(handler, engine_ex);
          net::dispatch(ex, [self = this->shared_from_this()] {
            auto h = std::move(self->handler);
            self->work.reset();
            std::move(h)(error_code{}, std::move(self->results));
          });
        }
      }
    };
    auto g = std::make_shared<gather>(keys.size(), std::move(handler), ioc_.get_executor());
    auto one = [this, g](std::size_t i, std::string key, bool local_only = false) {
      start_get<I>(std::move(key),
                   net::bind_executor(
                       ioc_.get_executor(),
                       [g, i](error_code ec, value_ptr<V> v) { g->set(i, ec, std::move(v)); }),
                   local_only);
    };
    if (!cfg_.cluster.enabled) {
      for (std::size_t i = 0; i < keys.size(); ++i) one(i, std::move(keys[i]));
      return;
    }
    // Cached keys and keys this node owns go the single-key way; the misses
    // owned by each other node go in one batched request to that node.
    auto r = members()->current();
    std::map<std::string, std::vector<std::size_t>> by_owner;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      const std::string_view k = keys[i];
      if (check_key(k)) {
        one(i, std::move(keys[i]));
        continue;
      }
      const std::uint64_t h = detail::hash_key(k);
      const std::string& owner = r->nodes()[r->owner_index(h)];
      if (owner == self_name_ || lookup(*rt, {k, h}) != nullptr) {
        one(i, std::move(keys[i]));
      } else {
        by_owner[owner].push_back(i);
      }
    }
    // Named copies, not structured bindings: lambdas capture them (Clang 14).
    for (auto& entry : by_owner) {
      const std::string owner = entry.first;
      std::vector<std::size_t> indexes = std::move(entry.second);
      std::vector<std::string> batch;
      batch.reserve(indexes.size());
      for (auto i : indexes) batch.push_back(keys[i]);
      auto& counters = std::get<I>(slots_).counters;
      counters.loads.add(indexes.size());
      auto request_keys = batch;  // the callback keeps `batch`; argument order is unspecified
      client_->get(
          owner, name_of<I>(), std::move(request_keys), r->version(), peer_read_timeout(*rt),
          [this, g, one, owner, indexes = std::move(indexes), batch = std::move(batch),
           rt = rt->shared_from_this()](error_code ec,
                                        std::vector<transport::reply_item> items) mutable {
            auto& counters = std::get<I>(slots_).counters;
            if (ec || items.size() != batch.size()) {
              // The owner failed: each key goes the single-key way, which
              // falls back to a local load.
              counters.peer_errors.add();
              publish(members()->on_failure(owner));
              for (std::size_t j = 0; j < indexes.size(); ++j) {
                one(indexes[j], std::move(batch[j]), true);
              }
              return;
            }
            publish(members()->on_success(owner));
            for (std::size_t j = 0; j < indexes.size(); ++j) {
              auto& item = items[j];
              if (peer_not_serving(item)) {
                counters.peer_errors.add();
                one(indexes[j], std::move(batch[j]), true);
                continue;
              }
              if (item.status == transport::reply_item::kind::not_found) {
                counters.peer_loads.add();
                g->set(indexes[j], make_error_code(errc::not_found), nullptr);
              } else if (item.status == transport::reply_item::kind::error) {
                counters.peer_loads.add();
                g->set(indexes[j], make_error_code(item.error), nullptr);
              } else if (auto v = keyspace_serializer_t<keyspace_at<I>>{}.deserialize(item.value)) {
                const time_point expires = from_ttl_ms(item.ttl_ms);
                const std::size_t bytes = detail::value_bytes(rt->def, *v);
                auto value = std::make_shared<const V>(std::move(*v));
                const std::string& k = batch[j];
                if (expires == never_expires || expires > now()) {
                  (void)rt->hot.put({k, detail::hash_key(k)}, value, bytes, expires);
                }
                counters.peer_loads.add();
                g->set(indexes[j], {}, std::move(value));
              } else {
                counters.peer_errors.add();
                one(indexes[j], std::move(batch[j]), true);
              }
            }
          });
    }
  }

  /// A staged entry of a put: validated, decoded once, and its charge known.
  template <class V>
  struct staged_entry {
    std::string key;
    std::uint64_t hash = 0;
    std::shared_ptr<const V> value;
    std::size_t bytes = 0;
  };

  /// Validates and stores `entries`: on this node when it owns a key (or
  /// runs alone), else on the owner; then every other node in the ring drops
  /// the keys. Calls `done` exactly once.
  template <std::size_t I>
  void put_op(std::vector<std::pair<std::string, value_type_of<keyspace_at<I>>>> entries,
              duration ttl, std::function<void(error_code)> done) {
    using V = value_type_of<keyspace_at<I>>;
    if (auto ec = check_state()) return done(ec);
    if (ttl < duration::zero()) {
      cfg_.log(log_level::warning, "put: ttl must be >= 0, got " + detail::format_duration(ttl));
      return done(make_error_code(errc::invalid_config));
    }
    auto* rt = std::get<I>(slots_).current.load(std::memory_order_acquire);
    if (rt == nullptr) return done(make_error_code(errc::keyspace_not_found));
    std::vector<staged_entry<V>> batch;
    batch.reserve(entries.size());
    for (auto& [key, value] : entries) {
      if (auto ec = check_key(key)) return done(ec);
      const std::size_t bytes = detail::value_bytes(rt->def, value);
      if (static_cast<std::int64_t>(detail::lru_cache::charge(key.size(), bytes)) >
          rt->main.shard_budget()) {
        return done(make_error_code(errc::value_too_large));
      }
      const std::uint64_t h = detail::hash_key(key);
      batch.push_back({std::move(key), h, std::make_shared<const V>(std::move(value)), bytes});
    }
    if (!cfg_.cluster.enabled) {
      for (auto& e : batch) store_locally<I>(*rt, e, expiry_for<I>(*rt, e.key, ttl));
      return done({});
    }
    auto r = members()->current();
    auto peers = members()->alive_peers();
    auto fan = detail::make_fan_in(std::move(done));
    std::map<std::string, std::vector<std::string>> invalidations;
    for (auto& e : batch) {
      const std::string& owner = r->nodes()[r->owner_index(e.hash)];
      const time_point expires = expiry_for<I>(*rt, e.key, ttl);
      for (const auto& p : peers) {
        if (p != owner) invalidations[p].push_back(e.key);
      }
      if (owner == self_name_) {
        store_locally<I>(*rt, e, expires);
        continue;
      }
      drop_locally(*rt, {e.key, e.hash});
      std::string bytes;
      keyspace_serializer_t<keyspace_at<I>>{}.serialize(*e.value, bytes);
      fan->add();
      client_->set(owner, name_of<I>(), e.key, std::move(bytes), to_ttl_ms(expires), r->version(),
                   rt->opts.write_timeout, [this, fan, owner](error_code ec) {
                     if (ec) {
                       std::get<I>(slots_).counters.peer_errors.add();
                       publish(members()->on_failure(owner));
                       fan->fail(ec == errc::value_too_large || ec == errc::malformed_value
                                     ? ec
                                     : make_error_code(errc::peer_unavailable));
                     }
                     fan->finish_one();
                   });
    }
    for (auto& entry : invalidations) {
      const std::string peer = entry.first;
      std::vector<std::string> keys = std::move(entry.second);
      fan->add();
      client_->invalidate(peer, name_of<I>(), std::move(keys), r->version(), rt->opts.write_timeout,
                          [this, fan, peer](error_code ec) {
                            if (ec) {
                              // The put landed; a node that missed the
                              // invalidation may serve its hot copy until it
                              // expires or is evicted. Logged, not failed.
                              cfg_.log(log_level::warning,
                                       "invalidate on " + peer + " failed: " + ec.message());
                              publish(members()->on_failure(peer));
                            }
                            fan->finish_one();
                          });
    }
    fan->finish_one();  // the initial reference
  }

  template <std::size_t I>
  void store_locally(runtime_at<I>& rt, const staged_entry<value_type_of<keyspace_at<I>>>& e,
                     time_point expires) {
    const detail::hashed_key hk{e.key, e.hash};
    rt.flights.invalidate(hk);
    rt.hot.remove(hk);
    rt.main.put(hk, e.value, e.bytes, expires);
  }

  template <class Runtime>
  static void drop_locally(Runtime& rt, detail::hashed_key hk) {
    rt.flights.invalidate(hk);
    rt.main.remove(hk);
    rt.hot.remove(hk);
  }

  /// Removes `keys` here and, in a cluster, on every node in the ring (one
  /// request each). Calls `done` exactly once.
  template <std::size_t I>
  void remove_op(std::vector<std::string> keys, std::function<void(error_code)> done) {
    if (auto ec = check_state()) return done(ec);
    auto& slot = std::get<I>(slots_);
    auto* rt = slot.current.load(std::memory_order_acquire);
    if (rt == nullptr) return done(make_error_code(errc::keyspace_not_found));
    for (const auto& k : keys) {
      if (auto ec = check_key(k)) return done(ec);
    }
    remove_here<I>(*rt, keys);
    if (!cfg_.cluster.enabled) return done({});
    auto fan = detail::make_fan_in(std::move(done));
    const auto version = members()->current()->version();
    for (const auto& peer : members()->alive_peers()) {
      fan->add();
      client_->remove(peer, name_of<I>(), keys, version, rt->opts.write_timeout,
                      [this, fan, peer](error_code ec, std::size_t /*removed*/) {
                        if (ec) {
                          std::get<I>(slots_).counters.peer_errors.add();
                          publish(members()->on_failure(peer));
                          fan->fail(make_error_code(errc::peer_unavailable));
                        }
                        fan->finish_one();
                      });
    }
    fan->finish_one();
  }

  /// Removes `keys` from this node's caches and counts the request.
  template <std::size_t I, class Keys>
  std::size_t remove_here(runtime_at<I>& rt, const Keys& keys) {
    auto& counters = std::get<I>(slots_).counters;
    counters.remove_keys_requests.add();
    std::size_t removed = 0;
    for (const auto& k : keys) {
      const std::string_view key(k);
      const detail::hashed_key hk{key, detail::hash_key(key)};
      rt.flights.invalidate(hk);
      const bool in_main = rt.main.remove(hk);
      const bool in_hot = rt.hot.remove(hk);
      if (in_main || in_hot) ++removed;
    }
    counters.removed_keys.add(removed);
    return removed;
  }

  template <class Range>
  result<void> do_delete_keyspaces(const Range& names) {
    if (auto ec = check_state()) return ec;
    for (const auto& n : names) {
      bool live = false;
      for_each_slot([&]<std::size_t I>(std::integral_constant<std::size_t, I>) {
        if (name_of<I>() == std::string_view(n)) {
          live = std::get<I>(slots_).current.load(std::memory_order_acquire) != nullptr;
        }
      });
      if (!live) {
        cfg_.log(log_level::warning, "delete_keyspace: '" +
                                         std::string(std::string_view(n).substr(0, 128)) +
                                         "' is not a live keyspace of this engine");
        return make_error_code(errc::keyspace_not_found);
      }
    }
    for (const auto& n : names) {
      for_each_slot([&]<std::size_t I>(std::integral_constant<std::size_t, I>) {
        if (name_of<I>() == std::string_view(n)) std::get<I>(slots_).replace(nullptr);
      });
    }
    return {};
  }

  template <std::size_t I>
  result<void> do_update(keyspace_at<I> def) {
    if (auto ec = check_state()) return ec;
    std::string why;
    auto rt = make_runtime<I>(std::move(def), why);
    if (!rt) {
      cfg_.log(log_level::error, "update_keyspace: " + why);
      return make_error_code(errc::invalid_config);
    }
    std::get<I>(slots_).replace(std::move(rt));
    warm<I>();
    return {};
  }

  /// Loads keyspace I's warm keys in the background.
  template <std::size_t I>
  void warm() {
    auto* rt = std::get<I>(slots_).current.load(std::memory_order_acquire);
    if (rt == nullptr) return;
    for (const auto& key : rt->opts.warm_keys) {
      start_get<I>(
          key, net::bind_executor(ioc_.get_executor(), [this, key](error_code ec, const auto&) {
            if (ec && ec != errc::stopped) {
              cfg_.log(log_level::warning, "keyspace '" + std::string(name_of<I>()) +
                                               "': warm key '" + key + "' failed: " + ec.message());
            }
          }));
    }
  }

  // ---------------------------------------------------------------- cluster

  struct subscriber {
    explicit subscriber(std::function<void(const peer_event&)> f) : on_event(std::move(f)) {}
    std::function<void(const peer_event&)> on_event;
    std::optional<net::strand<net::thread_pool::executor_type>> strand;
  };

  [[nodiscard]] detail::membership* members() const noexcept { return members_.get(); }

  static time_point from_ttl_ms_at(std::int64_t ttl_ms, time_point at) {
    if (ttl_ms < 0) return never_expires;
    return at + std::chrono::milliseconds(ttl_ms);
  }
  time_point from_ttl_ms(std::int64_t ttl_ms) const { return from_ttl_ms_at(ttl_ms, now()); }
  std::int64_t to_ttl_ms(time_point expires) const {
    if (expires == never_expires) return -1;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(expires - now());
    return std::max<std::int64_t>(0, left.count());
  }

  /// Delivers membership events to every subscriber, in order per
  /// subscriber, on the blocking pool.
  void publish(const std::vector<peer_event>& events) {
    if (events.empty()) return;
    for (const auto& e : events) {
      cfg_.log(log_level::info, std::string("peer ") + e.peer +
                                    (e.kind == peer_event_kind::joined ? " joined" : " left") +
                                    " the ring");
    }
    std::lock_guard lock(subscribers_mutex_);
    if (!pool_) return;
    for (auto& s : subscribers_) {
      if (!s->strand) s->strand.emplace(net::make_strand(pool_->get_executor()));
      net::post(*s->strand, [this, s, events] {
        const void* previous = std::exchange(detail::current_engine, this);
        for (const auto& e : events) s->on_event(e);
        detail::current_engine = previous;
      });
    }
  }

  /// Starts the server, joins the cluster and waits for the quorum. On
  /// failure everything started here is released.
  error_code start_cluster() {
    const auto& k = cfg_.cluster;
    transport::server_options so;
    so.bind_address = k.bind_address;
    so.port = k.port;
    so.read_timeout = cfg_.read_timeout;
    so.limits.max_key_bytes = cfg_.max_key_bytes;
    server_ =
        std::make_unique<typename transport_type::server_type>(ioc_, peer_adapter_, so, cfg_.log);
    if (auto r = server_->start(); !r) {
      server_.reset();
      return r.error();
    }
    {
      const std::string host = k.advertise_address.empty() ? k.bind_address : k.advertise_address;
      const bool v6 = host.find(':') != std::string::npos;
      self_name_ = (v6 ? "[" + host + "]" : host) + ":" + std::to_string(server_->port());
    }
    members_->reset(self_name_);
    transport::client_options co;
    co.self_name = self_name_;
    co.connect_timeout = k.peer_timeout;
    co.limits.max_key_bytes = cfg_.max_key_bytes;
    client_ = std::make_unique<typename transport_type::client_type>(ioc_, co, cfg_.log);
    error_code ec;
    if (auto r = discovery_.initialize(); !r) ec = r.error();
    if (!ec) {
      if (auto r = discovery_.register_node(self_name_); !r) ec = r.error();
    }
    if (!ec) ec = bootstrap();
    if (ec) {
      cfg_.log(log_level::error, "start: cannot join the cluster: " + ec.message());
      (void)discovery_.deregister_node(self_name_);
      discovery_.close();
      teardown_transport();
      return ec;
    }
    return {};
  }

  /// Discovery rounds until minimum_peers_quorum nodes answer.
  error_code bootstrap() {
    const auto& k = cfg_.cluster;
    const auto deadline = clock_type::now() + k.bootstrap_timeout;
    for (int attempt = 1;; ++attempt) {
      if (auto peers = discovery_.discover_peers()) {
        publish(members()->on_discovered(*peers));
      } else {
        cfg_.log(log_level::warning, "discovery failed: " + peers.error().message());
      }
      probe_all_and_wait(std::min<duration>(k.peer_timeout, deadline - clock_type::now()));
      const std::size_t have = 1 + members()->alive_peers().size();
      if (have >= k.minimum_peers_quorum) return {};
      if (attempt >= k.max_join_attempts || clock_type::now() >= deadline) {
        cfg_.log(log_level::error, "start: " + std::to_string(have) + " of the " +
                                       std::to_string(k.minimum_peers_quorum) +
                                       " nodes of minimum_peers_quorum answer after " +
                                       std::to_string(attempt) + " discovery rounds");
        return make_error_code(errc::cluster_quorum);
      }
      // Bounded by the bootstrap deadline; start() is a blocking call.
      std::this_thread::sleep_for(
          std::min<duration>(k.join_retry_interval, deadline - clock_type::now()));
    }
  }

  /// Probes every known peer once and waits for the answers (bootstrap).
  void probe_all_and_wait(duration limit) {
    auto peers = members()->known_peers();
    if (peers.empty() || limit <= duration::zero()) return;
    auto left = std::make_shared<std::atomic<std::size_t>>(peers.size());
    auto done = std::make_shared<std::promise<void>>();
    auto finished = done->get_future();
    for (const auto& p : peers) {
      client_->health(p, limit, [this, p, left, done](error_code ec) {
        publish(ec ? members()->on_failure(p) : members()->on_success(p));
        if (left->fetch_sub(1) == 1) done->set_value();
      });
    }
    finished.wait_for(limit + std::chrono::milliseconds(100));
  }

  void schedule_probe() {
    probe_timer_.emplace(cluster_strand_);
    arm_probe();
  }
  void arm_probe() {
    probe_timer_->expires_after(cfg_.cluster.probe_interval);
    probe_timer_->async_wait([this](error_code ec) {
      if (ec || state_.load() != running) return;
      for (const auto& p : members()->known_peers()) {
        client_->health(p, cfg_.cluster.peer_timeout, [this, p](error_code e) {
          publish(e ? members()->on_failure(p) : members()->on_success(p));
        });
      }
      arm_probe();
    });
  }

  void schedule_discovery() {
    discovery_timer_.emplace(cluster_strand_);
    arm_discovery();
  }
  void arm_discovery() {
    discovery_timer_->expires_after(cfg_.cluster.discovery_interval);
    discovery_timer_->async_wait([this](error_code ec) {
      if (ec || state_.load() != running) return;
      // The provider may block: ask it on the pool, then re-arm on the strand.
      net::post(*pool_, [this] {
        auto peers = discovery_.discover_peers();
        if (peers) {
          publish(members()->on_discovered(*peers));
        } else {
          cfg_.log(log_level::warning, "discovery failed: " + peers.error().message());
        }
        net::post(cluster_strand_, [this] {
          if (state_.load() == running) arm_discovery();
        });
      });
    });
  }

  void stop_cluster() {
    // Timers live on the strand: cancel them there, and wait for it.
    std::promise<void> cancelled;
    net::post(cluster_strand_, [&] {
      if (probe_timer_) probe_timer_->cancel();
      if (discovery_timer_) discovery_timer_->cancel();
      cancelled.set_value();
    });
    cancelled.get_future().wait();
    (void)discovery_.deregister_node(self_name_);
    discovery_.close();
    teardown_transport();
  }

  void teardown_transport() {
    if (server_) server_->stop();
    if (client_) client_->close();
  }

  /// Joins the blocking pool and the io_context threads. Server and client
  /// objects are destroyed here, after their last handler ran.
  void shutdown_threads() {
    if (pool_) pool_->join();
    work_.reset();
    for (auto& t : threads_) t.join();
    threads_.clear();
    probe_timer_.reset();
    discovery_timer_.reset();
    server_.reset();
    client_.reset();
    {
      std::lock_guard lock(subscribers_mutex_);
      for (auto& s : subscribers_) s->strand.reset();
      pool_.reset();
    }
  }

  // ---------------------------------------------------------------- peer_service

  /// Answers the peer server's requests with this engine's caches.
  class peer_adapter final : public transport::peer_service {
   public:
    explicit peer_adapter(basic_engine& e) : e_(e) {}
    bool has_keyspace(std::string_view name) const override { return e_.peer_has_keyspace(name); }
    void get(std::string_view keyspace, std::vector<std::string> keys,
             std::function<void(std::vector<transport::reply_item>)> done) override {
      e_.peer_get(keyspace, std::move(keys), std::move(done));
    }
    error_code set(std::string_view keyspace, std::string key, std::string value,
                   std::int64_t ttl_ms) override {
      return e_.peer_set(keyspace, std::move(key), std::move(value), ttl_ms);
    }
    std::size_t remove(std::string_view keyspace, const std::vector<std::string>& keys) override {
      return e_.peer_remove(keyspace, keys);
    }
    void invalidate(std::string_view keyspace, const std::vector<std::string>& keys) override {
      e_.peer_invalidate(keyspace, keys);
    }

   private:
    basic_engine& e_;
  };

  bool peer_has_keyspace(std::string_view name) const {
    bool live = false;
    for_each_slot([&]<std::size_t I>(std::integral_constant<std::size_t, I>) {
      if (name_of<I>() == name) {
        live = std::get<I>(slots_).current.load(std::memory_order_acquire) != nullptr;
      }
    });
    return live;
  }

  void peer_get(std::string_view keyspace, std::vector<std::string> keys,
                std::function<void(std::vector<transport::reply_item>)> done) {
    bool found = false;
    for_each_slot([&]<std::size_t I>(std::integral_constant<std::size_t, I>) {
      if (!found && name_of<I>() == keyspace) {
        found = true;
        serve_get<I>(std::move(keys), std::move(done));
      }
    });
    if (!found) {
      std::vector<transport::reply_item> items(keys.size());
      for (auto& it : items) {
        it.status = transport::reply_item::kind::error;
        it.error = errc::keyspace_not_found;
      }
      done(std::move(items));
    }
  }

  error_code peer_set(std::string_view keyspace, std::string key, std::string value,
                      std::int64_t ttl_ms) {
    error_code result = make_error_code(errc::keyspace_not_found);
    for_each_slot([&]<std::size_t I>(std::integral_constant<std::size_t, I>) {
      if (name_of<I>() != keyspace) return;
      using V = value_type_of<keyspace_at<I>>;
      auto* rt = std::get<I>(slots_).current.load(std::memory_order_acquire);
      if (rt == nullptr || check_state()) return;
      if (auto ec = check_key(key)) {
        result = ec;
        return;
      }
      auto decoded = keyspace_serializer_t<keyspace_at<I>>{}.deserialize(value);
      if (!decoded) {
        result = make_error_code(errc::malformed_value);
        return;
      }
      const std::size_t bytes = detail::value_bytes(rt->def, *decoded);
      if (static_cast<std::int64_t>(detail::lru_cache::charge(key.size(), bytes)) >
          rt->main.shard_budget()) {
        result = make_error_code(errc::value_too_large);
        return;
      }
      const std::uint64_t h = detail::hash_key(key);
      staged_entry<V> e{std::move(key), h, std::make_shared<const V>(std::move(*decoded)), bytes};
      store_locally<I>(*rt, e, from_ttl_ms(ttl_ms));
      result = {};
    });
    return result;
  }

  std::size_t peer_remove(std::string_view keyspace, const std::vector<std::string>& keys) {
    std::size_t removed = 0;
    for_each_slot([&]<std::size_t I>(std::integral_constant<std::size_t, I>) {
      if (name_of<I>() != keyspace) return;
      if (auto* rt = std::get<I>(slots_).current.load(std::memory_order_acquire)) {
        removed = remove_here<I>(*rt, keys);
      }
    });
    return removed;
  }

  void peer_invalidate(std::string_view keyspace, const std::vector<std::string>& keys) {
    for_each_slot([&]<std::size_t I>(std::integral_constant<std::size_t, I>) {
      if (name_of<I>() != keyspace) return;
      if (auto* rt = std::get<I>(slots_).current.load(std::memory_order_acquire)) {
        for (const auto& k : keys) drop_locally(*rt, {k, detail::hash_key(k)});
      }
    });
  }

  /// Answers a peer's get as the owner: from the caches, else one local load
  /// per key shared with every other caller (never forwarded).
  template <std::size_t I>
  void serve_get(std::vector<std::string> keys,
                 std::function<void(std::vector<transport::reply_item>)>
                     done) {  // NOLINT(performance-unnecessary-value-param): moved into `gather`
    using V = value_type_of<keyspace_at<I>>;
    struct gather {
      std::vector<transport::reply_item> items;
      std::atomic<std::size_t> remaining;
      std::function<void(std::vector<transport::reply_item>)> done;
      void finish_one() {
        if (remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) done(std::move(items));
      }
    };
    auto g = std::make_shared<gather>();
    g->items.resize(keys.size());
    g->remaining.store(keys.size() + 1);
    g->done = std::move(done);
    auto make_item = [this](error_code ec, const std::shared_ptr<const void>& v,
                            time_point expires) {
      transport::reply_item item;
      if (ec == errc::not_found) {
        item.status = transport::reply_item::kind::not_found;
      } else if (ec) {
        item.status = transport::reply_item::kind::error;
        item.error = ec.category() == error_category() ? static_cast<errc>(ec.value())
                                                       : errc::data_source_failed;
      } else {
        item.status = transport::reply_item::kind::value;
        keyspace_serializer_t<keyspace_at<I>>{}.serialize(*std::static_pointer_cast<const V>(v),
                                                          item.value);
        item.ttl_ms = to_ttl_ms(expires);
      }
      return item;
    };
    auto* rt = std::get<I>(slots_).current.load(std::memory_order_acquire);
    auto& counters = std::get<I>(slots_).counters;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (auto ec = check_state(); ec || rt == nullptr) {
        g->items[i] = make_item(ec ? ec : make_error_code(errc::keyspace_not_found), nullptr, {});
        g->finish_one();
        continue;
      }
      const std::uint64_t h = detail::hash_key(keys[i]);
      time_point expires = never_expires;
      auto v = rt->main.get({keys[i], h}, &expires);
      if (!v) v = rt->hot.get({keys[i], h}, &expires);
      if (v) {
        counters.cache_hits.add();
        g->items[i] = make_item({}, v, expires);
        g->finish_one();
        continue;
      }
      auto w = std::make_shared<detail::callback_waiter>(
          ioc_.get_executor(), keys[i], h,
          [g, i, make_item](error_code ec, std::shared_ptr<const void> value, time_point exp) {
            g->items[i] = make_item(ec, value, exp);
            g->finish_one();
          });
      w->arm(rt->flights, rt->opts.read_timeout);
      if (rt->flights.join(w->key(), w)) {
        counters.loads_deduped.add();
        load_locally<I>(*rt, keys[i], h);
      }
      counters.loads.add();
    }
    g->finish_one();
  }

  // ---------------------------------------------------------------- helpers

  /// Runs `op(done)` and blocks until it calls done(ec).
  template <class Op>
  static result<void> wait_op(Op&& op) {
    auto p = std::make_shared<std::promise<error_code>>();
    auto f = p->get_future();
    op(std::function<void(error_code)>([p](error_code ec) { p->set_value(ec); }));
    const error_code ec = f.get();
    if (ec) return ec;
    return {};
  }

  /// An async operation with signature void(error_code) whose work is
  /// `op(done)`; the handler runs through post_result().
  template <class CompletionToken, class Op>
  auto initiate_op(CompletionToken&& token, Op op) {
    return net::async_initiate<CompletionToken, void(error_code)>(
        [this](auto handler, Op op) {
          auto h = std::make_shared<decltype(handler)>(std::move(handler));
          op(std::function<void(error_code)>(
              [this, h](error_code ec) { post_result(std::move(*h), ec); }));
        },
        token, std::move(op));
  }

  template <class K, class Range>
  static std::vector<std::pair<std::string, value_type_of<K>>> copy_entries(const Range& entries) {
    std::vector<std::pair<std::string, value_type_of<K>>> owned;
    if constexpr (std::ranges::sized_range<const decltype(entries)&>) {
      owned.reserve(std::ranges::size(entries));
    }
    for (const auto& [k, v] : entries) owned.emplace_back(std::string(std::string_view(k)), v);
    return owned;
  }

  template <class Range>
  static std::vector<std::string> copy_keys(const Range& keys) {
    std::vector<std::string> owned;
    if constexpr (std::ranges::sized_range<const decltype(keys)&>) {
      owned.reserve(std::ranges::size(keys));
    }
    for (const auto& k : keys) owned.emplace_back(std::string_view(k));
    return owned;
  }

  template <std::size_t I>
  keyspace_stats stats_of() const {
    const auto& slot = std::get<I>(slots_);
    const auto& c = slot.counters;
    keyspace_stats s;
    s.cache_hits = c.cache_hits.load();
    s.loads = c.loads.load();
    // Every get is a hit or a miss; counting it once keeps the hit path to
    // one shared-counter write.
    s.gets = s.cache_hits + s.loads;
    s.peer_loads = c.peer_loads.load();
    s.peer_errors = c.peer_errors.load();
    s.loads_deduped = c.loads_deduped.load();
    s.local_loads = c.local_loads.load();
    s.local_load_errs = c.local_load_errs.load();
    s.remove_keys_requests = c.remove_keys_requests.load();
    s.removed_keys = c.removed_keys.load();
    if (auto* rt = slot.current.load(std::memory_order_acquire)) {
      s.main_cache_bytes = rt->main.bytes();
      s.hot_cache_bytes = rt->hot.bytes();
      s.main_cache_items = rt->main.size();
      s.hot_cache_items = rt->hot.size();
      s.evictions = rt->main.evictions() + rt->hot.evictions();
      s.rate_limited = rt->guards.rate_limited.load();
      if (rt->guards.breaker) {
        s.circuit_state = rt->guards.breaker->state();
        s.circuit_last_change = rt->guards.breaker->last_change();
        s.circuit_rejected = rt->guards.breaker->rejected();
      }
      s.fetches_in_flight = rt->guards.fetches.running();
      s.fetches_queued = rt->guards.fetches.queued();
    }
    return s;
  }

  static error_code to_error(const result<void>& r) { return r ? error_code{} : r.error(); }

  /// Completes `handler` with `args` without invoking it from the initiating
  /// function: posted to its associated executor (default: the engine's
  /// while running, the system executor otherwise).
  template <class Handler, class... Args>
  void post_result(Handler handler, Args... args) {
    if (state_.load(std::memory_order_acquire) == running) {
      auto ex = net::get_associated_executor(handler, ioc_.get_executor());
      net::post(ex, [h = std::move(handler), ... a = std::move(args)]() mutable {
        std::move(h)(std::move(a)...);
      });
    } else {
      auto ex = net::get_associated_executor(handler, net::system_executor());
      net::post(ex, [h = std::move(handler), ... a = std::move(args)]() mutable {
        std::move(h)(std::move(a)...);
      });
    }
  }

  /// An async operation whose work `f` is done at once in the initiating
  /// function (local, lock-only work); `f` returns the completion arguments
  /// as a tuple, delivered through post_result().
  template <class Signature, class CompletionToken, class F>
  auto complete_now(CompletionToken&& token, F f) {
    return net::async_initiate<CompletionToken, Signature>(
        [this](auto handler, F f) {
          std::apply([&](auto&&... args) { post_result(std::move(handler), std::move(args)...); },
                     f());
        },
        token, std::move(f));
  }

  template <class Future>
  static auto wait_future(Future& f) -> result<decltype(f.get())> {
    try {
      return f.get();
    } catch (const boost::system::system_error& e) {
      return e.code();
    }
  }

  config cfg_;
  discovery_type discovery_;
  std::string self_name_ = "self";
  std::unique_ptr<detail::membership> members_;
  std::tuple<detail::keyspace_slot<KeySpaces, guards_type>...> slots_;
  std::atomic<int> state_{created};
  mutable std::mutex lifecycle_;
  net::io_context ioc_;
  net::strand<executor_type> cluster_strand_{ioc_.get_executor()};
  std::optional<net::steady_timer> probe_timer_;
  std::optional<net::steady_timer> discovery_timer_;
  std::unique_ptr<typename transport_type::server_type> server_;
  std::unique_ptr<typename transport_type::client_type> client_;
  std::mutex subscribers_mutex_;
  std::vector<std::shared_ptr<subscriber>> subscribers_;
  peer_adapter peer_adapter_{*this};
  std::optional<net::executor_work_guard<executor_type>> work_;
  std::vector<std::thread> threads_;
  std::unique_ptr<net::thread_pool> pool_;
};

/// An engine over KeySpaces with the default policies.
template <class... KeySpaces>
using engine = basic_engine<default_policies, KeySpaces...>;

}  // namespace distcache

#endif  // DISTCACHE_ENGINE_HPP
