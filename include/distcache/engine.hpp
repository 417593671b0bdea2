// distcache — basic_engine / engine: the public operations.
#ifndef DISTCACHE_ENGINE_HPP
#define DISTCACHE_ENGINE_HPP

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/dispatch.hpp>
#include <cstddef>
#include <cstdint>
#include <distcache/cache/stats.hpp>
#include <distcache/clock.hpp>
#include <distcache/cluster/ring.hpp>
#include <distcache/config.hpp>
#include <distcache/detail/hash.hpp>
#include <distcache/detail/keyspace_runtime.hpp>
#include <distcache/detail/waiters.hpp>
#include <distcache/error.hpp>
#include <distcache/keyspace.hpp>
#include <distcache/policies.hpp>
#include <exception>
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

  /// Builds an engine. Throws config_error when `cfg` or a keyspace
  /// definition is invalid; its what() names the keyspace, field and value.
  explicit basic_engine(config cfg, KeySpaces... defs) : cfg_(std::move(cfg)) {
    if (auto why = detail::validate_engine(cfg_); !why.empty()) throw config_error(why);
    for (const auto& [name, options] : cfg_.keyspaces) {
      (void)options;
      if (!is_keyspace_name(name)) {
        throw config_error("config.keyspaces: '" + name +
                           "' is not one of this engine's keyspaces");
      }
    }
    if (!cfg_.log) cfg_.log = log_to_stderr;
    std::string why;
    auto install = [&]<std::size_t I>(std::integral_constant<std::size_t, I>, auto& def) {
      auto rt = make_runtime<I>(std::move(def), why);
      if (!rt) throw config_error(why);
      std::get<I>(slots_).replace(std::move(rt));
    };
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (install(std::integral_constant<std::size_t, I>{}, defs), ...);
    }(std::index_sequence_for<KeySpaces...>{});
    ring_ = std::make_shared<const ring>(std::vector<std::string>{self_name_}, 1, 1);
  }

  basic_engine(const basic_engine&) = delete;
  basic_engine& operator=(const basic_engine&) = delete;

  /// Stops the engine (see stop()).
  ~basic_engine() { (void)stop(); }

  /// Starts the engine's threads and loads the warm keys in the background.
  /// Errors: errc::stopped after stop(); starting twice is a no-op.
  result<void> start() {
    std::lock_guard lock(lifecycle_);
    const int s = state_.load();
    if (s == running) return {};
    if (s == stopped) return make_error_code(errc::stopped);
    const std::size_t fetch_threads = cfg_.fetch_threads != 0 ? cfg_.fetch_threads : 8;
    std::size_t threads = cfg_.threads;
    if (threads == 0) threads = std::max(1U, std::thread::hardware_concurrency());
    pool_ = std::make_unique<net::thread_pool>(fetch_threads);
    work_.emplace(ioc_.get_executor());
    for (std::size_t i = 0; i < threads; ++i) {
      threads_.emplace_back([this] {
        detail::current_engine = this;
        ioc_.run();
      });
    }
    state_.store(running);
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
    if (detail::current_engine == this) return make_error_code(errc::blocking_call_on_engine_thread);
    std::lock_guard lock(lifecycle_);
    int expected = running;
    if (!state_.compare_exchange_strong(expected, stopped)) return {};
    for_each_slot([&]<std::size_t I>(std::integral_constant<std::size_t, I>) {
      auto& slot = std::get<I>(slots_);
      std::lock_guard slot_lock(slot.mutex);
      for (auto& rt : slot.runtimes) rt->flights.abandon_all(make_error_code(errc::stopped));
    });
    pool_->join();
    work_.reset();
    for (auto& t : threads_) t.join();
    threads_.clear();
    return {};
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
    counters.gets.add();
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
    auto f = async_get_many<K>(keys, net::use_future);
    return wait_future(f);
  }

  /// Asynchronous get_many(); completes with
  /// `void(error_code, std::vector<result<value_ptr<value_type_of<K>>>>)`.
  template <class K, class Range,
            class CompletionToken = net::default_completion_token_t<executor_type>>
  auto async_get_many(const Range& keys, CompletionToken&& token =
                                              net::default_completion_token_t<executor_type>()) {
    using V = value_type_of<K>;
    using list = std::vector<result<value_ptr<V>>>;
    std::vector<std::string> owned;
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
  /// keyspace's default TTL. A load of the key in flight does not overwrite
  /// it afterwards. Errors: invalid_key, keyspace_not_found, value_too_large,
  /// not_started, stopped, blocking_call_on_engine_thread, invalid_config
  /// (negative ttl).
  template <class K>
  result<void> put(std::string_view key, value_type_of<K> value, duration ttl = duration::zero()) {
    if (auto ec = check_blocking_call()) return ec;
    return do_put<index_of<K>()>(key, std::move(value), ttl);
  }

  /// Asynchronous put(); completes with `void(error_code)`.
  template <class K, class CompletionToken = net::default_completion_token_t<executor_type>>
  auto async_put(std::string_view key, value_type_of<K> value, duration ttl = duration::zero(),
                 CompletionToken&& token = net::default_completion_token_t<executor_type>()) {
    return complete_now<void(error_code)>(
        std::forward<CompletionToken>(token),
        [this, key = std::string(key), value = std::move(value), ttl]() mutable {
          return std::make_tuple(
              to_error(do_put<index_of<K>()>(key, std::move(value), ttl)));
        });
  }

  /// Stores every (key, value) pair of `entries` (a range of pairs) with the
  /// same expiry rules as put(). All keys and sizes are checked first: on
  /// invalid_key or value_too_large nothing is stored.
  template <class K, class Range>
  result<void> put_many(const Range& entries, duration ttl = duration::zero()) {
    if (auto ec = check_blocking_call()) return ec;
    return do_put_many<index_of<K>(), false>(entries, ttl);
  }

  /// Asynchronous put_many(); `entries` is copied; completes with
  /// `void(error_code)`.
  template <class K, class Range,
            class CompletionToken = net::default_completion_token_t<executor_type>>
  auto async_put_many(const Range& entries, duration ttl = duration::zero(),
                      CompletionToken&& token = net::default_completion_token_t<executor_type>()) {
    std::vector<std::pair<std::string, value_type_of<K>>> owned;
    for (const auto& [k, v] : entries) owned.emplace_back(std::string_view(k), v);
    return complete_now<void(error_code)>(
        std::forward<CompletionToken>(token), [this, owned = std::move(owned), ttl]() mutable {
          return std::make_tuple(to_error(do_put_many<index_of<K>(), true>(owned, ttl)));
        });
  }

  // ---------------------------------------------------------------- remove

  /// Removes `key` from keyspace K's caches; a load of it in flight does not
  /// bring it back. Removing an absent key succeeds. Errors: invalid_key,
  /// keyspace_not_found, not_started, stopped, blocking_call_on_engine_thread.
  template <class K>
  result<void> remove(std::string_view key) {
    if (auto ec = check_blocking_call()) return ec;
    const std::string_view one[] = {key};  // NOLINT
    return do_remove_many<index_of<K>()>(one);
  }

  /// Asynchronous remove(); completes with `void(error_code)`.
  template <class K, class CompletionToken = net::default_completion_token_t<executor_type>>
  auto async_remove(std::string_view key,
                    CompletionToken&& token = net::default_completion_token_t<executor_type>()) {
    return complete_now<void(error_code)>(std::forward<CompletionToken>(token),
                                          [this, key = std::string(key)] {
                                            const std::string_view one[] = {key};  // NOLINT
                                            return std::make_tuple(
                                                to_error(do_remove_many<index_of<K>()>(one)));
                                          });
  }

  /// Removes every key of `keys`. All keys are checked first: on invalid_key
  /// nothing is removed.
  template <class K, class Range>
  result<void> remove_many(const Range& keys) {
    if (auto ec = check_blocking_call()) return ec;
    return do_remove_many<index_of<K>()>(keys);
  }

  /// Asynchronous remove_many(); completes with `void(error_code)`.
  template <class K, class Range,
            class CompletionToken = net::default_completion_token_t<executor_type>>
  auto async_remove_many(const Range& keys, CompletionToken&& token =
                                                net::default_completion_token_t<executor_type>()) {
    std::vector<std::string> owned;
    for (const auto& k : keys) owned.emplace_back(std::string_view(k));
    return complete_now<void(error_code)>(std::forward<CompletionToken>(token),
                                          [this, owned = std::move(owned)] {
                                            return std::make_tuple(
                                                to_error(do_remove_many<index_of<K>()>(owned)));
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
  auto async_delete_keyspace(std::string_view name, CompletionToken&& token =
                                                        net::default_completion_token_t<executor_type>()) {
    return complete_now<void(error_code)>(std::forward<CompletionToken>(token),
                                          [this, name = std::string(name)] {
                                            const std::string_view one[] = {name};  // NOLINT
                                            return std::make_tuple(
                                                to_error(do_delete_keyspaces(one)));
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
  auto async_delete_keyspaces(const Range& names, CompletionToken&& token =
                                                      net::default_completion_token_t<executor_type>()) {
    std::vector<std::string> owned;
    for (const auto& n : names) owned.emplace_back(std::string_view(n));
    return complete_now<void(error_code)>(
        std::forward<CompletionToken>(token),
        [this, owned = std::move(owned)] { return std::make_tuple(to_error(do_delete_keyspaces(owned))); });
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
  auto async_update_keyspace(K def, CompletionToken&& token =
                                        net::default_completion_token_t<executor_type>()) {
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
  template <std::size_t I>
  using runtime_at = detail::keyspace_runtime<keyspace_at<I>>;

  template <std::size_t I>
  static constexpr std::string_view name_of() {
    return keyspace_at<I>::name;
  }

  static bool is_keyspace_name(std::string_view name) {
    return ((name == std::string_view{KeySpaces::name}) || ...);
  }

  template <class F>
  void for_each_slot(F&& f) const {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (f(std::integral_constant<std::size_t, I>{}), ...);
    }(std::index_sequence_for<KeySpaces...>{});
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
    if (detail::current_engine == this) return make_error_code(errc::blocking_call_on_engine_thread);
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
  void join_load(runtime_at<I>& rt, const std::shared_ptr<detail::timed_waiter>& w) {
    w->arm(rt.flights, rt.opts.read_timeout);
    if (rt.flights.join(w->key(), w)) start_load<I>(rt, std::string(w->key().text), w->key().hash);
  }

  /// Runs the data source for one flight on the blocking pool and publishes
  /// the outcome. The owner is asked of the ring; with one node it is always
  /// this node, and remote owners arrive with the cluster transport.
  template <std::size_t I>
  void start_load(runtime_at<I>& rt, std::string key, std::uint64_t hash) {
    auto& counters = std::get<I>(slots_).counters;
    counters.loads_deduped.add();
    (void)ring_->owner_index(hash);  // always this node for now
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
      rt->flights.finish({key, hash}, ec, value, [&]() -> error_code {
        if (rt->retired.load(std::memory_order_acquire)) return {};
        if (expires != never_expires && expires <= now()) return {};  // already expired
        if (!rt->main.put({key, hash}, value, bytes, expires)) {
          return make_error_code(errc::value_too_large);
        }
        return {};
      });
    });
  }

  template <std::size_t I, class Handler>
  void start_get(std::string key, Handler handler) {
    using V = value_type_of<keyspace_at<I>>;
    auto rt = runtime_for<I>(key);
    if (!rt) return post_result(std::move(handler), rt.error(), value_ptr<V>{});
    auto& counters = std::get<I>(slots_).counters;
    counters.gets.add();
    const std::uint64_t h = detail::hash_key(key);
    if (auto v = lookup(**rt, {key, h})) {
      counters.cache_hits.add();
      return post_result(std::move(handler), error_code{},
                         std::static_pointer_cast<const V>(std::move(v)));
    }
    auto w = std::make_shared<detail::async_waiter<V, Handler>>(ioc_.get_executor(),
                                                                std::move(key), h,
                                                                std::move(handler));
    // Connected before joining: once joined, the load may complete (and take
    // the handler) on another thread at any moment.
    w->connect_cancellation((*rt)->flights);
    join_load<I>(**rt, w);
    counters.loads.add();  // after joining: `loads` callers are all in a flight
  }

  template <std::size_t I, class Handler>
  void start_get_many(std::vector<std::string> keys, Handler handler) {
    using V = value_type_of<keyspace_at<I>>;
    using list = std::vector<result<value_ptr<V>>>;
    if (auto ec = check_state()) return post_result(std::move(handler), ec, list{});
    if (std::get<I>(slots_).current.load(std::memory_order_acquire) == nullptr) {
      return post_result(std::move(handler), make_error_code(errc::keyspace_not_found), list{});
    }
    if (keys.empty()) return post_result(std::move(handler), error_code{}, list{});
    // Each key is an independent get; the last to finish completes the call.
    struct gather {
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
    };
    auto g = std::make_shared<gather>(keys.size(), std::move(handler), ioc_.get_executor());
    for (std::size_t i = 0; i < keys.size(); ++i) {
      start_get<I>(std::move(keys[i]),
                   net::bind_executor(ioc_.get_executor(), [g, i](error_code ec, value_ptr<V> v) {
                     if (ec) {
                       g->results[i] = ec;
                     } else {
                       g->results[i] = std::move(v);
                     }
                     if (g->remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) {
                       auto ex = net::get_associated_executor(g->handler, g->engine_ex);
                       net::dispatch(ex, [g] {
                         auto h = std::move(g->handler);
                         g->work.reset();
                         std::move(h)(error_code{}, std::move(g->results));
                       });
                     }
                   }));
    }
  }

  template <std::size_t I>
  result<void> do_put(std::string_view key, value_type_of<keyspace_at<I>> value, duration ttl) {
    std::pair<std::string_view, value_type_of<keyspace_at<I>>> one[] = {  // NOLINT
        {key, std::move(value)}};
    return do_put_many<I, true>(one, ttl);
  }

  /// Stores a range of (key, value) pairs; `Move` says whether the values
  /// may be moved from (the caller's range is left alone otherwise).
  template <std::size_t I, bool Move, class Range>
  result<void> do_put_many(Range& entries, duration ttl) {
    using V = value_type_of<keyspace_at<I>>;
    if (auto ec = check_state()) return ec;
    if (ttl < duration::zero()) {
      cfg_.log(log_level::warning, "put: ttl must be >= 0, got " + detail::format_duration(ttl));
      return make_error_code(errc::invalid_config);
    }
    auto* rt = std::get<I>(slots_).current.load(std::memory_order_acquire);
    if (rt == nullptr) return make_error_code(errc::keyspace_not_found);
    struct staged {
      std::string_view key;
      std::uint64_t hash;
      std::shared_ptr<const V> value;
      std::size_t bytes;
    };
    std::vector<staged> batch;
    for (auto&& [key, value] : entries) {
      const std::string_view k(key);
      if (auto ec = check_key(k)) return ec;
      const std::size_t bytes = detail::value_bytes(rt->def, value);
      if (static_cast<std::int64_t>(detail::lru_cache::charge(k.size(), bytes)) >
          rt->main.shard_budget()) {
        return make_error_code(errc::value_too_large);
      }
      auto ptr = Move ? std::make_shared<const V>(std::move(value)) : std::make_shared<const V>(value);
      batch.push_back({k, detail::hash_key(k), std::move(ptr), bytes});
    }
    for (auto& e : batch) {
      const detail::hashed_key hk{e.key, e.hash};
      rt->flights.invalidate(hk);
      rt->hot.remove(hk);
      rt->main.put(hk, std::move(e.value), e.bytes, expiry_for<I>(*rt, e.key, ttl));
    }
    return {};
  }

  template <std::size_t I, class Range>
  result<void> do_remove_many(const Range& keys) {
    if (auto ec = check_state()) return ec;
    auto& slot = std::get<I>(slots_);
    auto* rt = slot.current.load(std::memory_order_acquire);
    if (rt == nullptr) return make_error_code(errc::keyspace_not_found);
    for (const auto& k : keys) {
      if (auto ec = check_key(std::string_view(k))) return ec;
    }
    slot.counters.remove_keys_requests.add();
    for (const auto& k : keys) {
      const std::string_view key(k);
      const detail::hashed_key hk{key, detail::hash_key(key)};
      rt->flights.invalidate(hk);
      const bool in_main = rt->main.remove(hk);
      const bool in_hot = rt->hot.remove(hk);
      if (in_main || in_hot) slot.counters.removed_keys.add();
    }
    return {};
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
        cfg_.log(log_level::warning, "delete_keyspace: '" + std::string(std::string_view(n).substr(0, 128)) +
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
      start_get<I>(key, net::bind_executor(ioc_.get_executor(),
                                           [this, key](error_code ec, const auto&) {
                                             if (ec && ec != errc::stopped) {
                                               cfg_.log(log_level::warning,
                                                        "keyspace '" +
                                                            std::string(name_of<I>()) +
                                                            "': warm key '" + key +
                                                            "' failed: " + ec.message());
                                             }
                                           }));
    }
  }

  template <std::size_t I>
  keyspace_stats stats_of() const {
    const auto& slot = std::get<I>(slots_);
    const auto& c = slot.counters;
    keyspace_stats s;
    s.gets = c.gets.load();
    s.cache_hits = c.cache_hits.load();
    s.peer_loads = c.peer_loads.load();
    s.peer_errors = c.peer_errors.load();
    s.loads = c.loads.load();
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
  std::string self_name_ = "self";
  std::shared_ptr<const ring> ring_;
  std::tuple<detail::keyspace_slot<KeySpaces>...> slots_;
  std::atomic<int> state_{created};
  std::mutex lifecycle_;
  net::io_context ioc_;
  std::optional<net::executor_work_guard<executor_type>> work_;
  std::vector<std::thread> threads_;
  std::unique_ptr<net::thread_pool> pool_;
};

/// An engine over KeySpaces with the default policies.
template <class... KeySpaces>
using engine = basic_engine<default_policies, KeySpaces...>;

}  // namespace distcache

#endif  // DISTCACHE_ENGINE_HPP
