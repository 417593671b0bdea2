// distcache — the engine core: everything an engine does that does not need
// a keyspace's type. Compiled once (see detail/config.hpp), whatever the
// keyspaces and policies of the engines that use it.
#ifndef DISTCACHE_CORE_ENGINE_CORE_HPP
#define DISTCACHE_CORE_ENGINE_CORE_HPP

#include <atomic>
#include <boost/asio/any_completion_executor.hpp>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cstddef>
#include <cstdint>
#include <distcache/admin/admin_service.hpp>
#include <distcache/cluster/controller.hpp>
#include <distcache/cluster/ring.hpp>
#include <distcache/config.hpp>
#include <distcache/core/keyspace_adapter.hpp>
#include <distcache/core/keyspace_runtime.hpp>
#include <distcache/detail/config.hpp>
#include <distcache/detail/current_engine.hpp>
#include <distcache/detail/fetch_pool.hpp>
#include <distcache/detail/waiters.hpp>
#include <distcache/error.hpp>
#include <distcache/protection/source_guard.hpp>
#include <distcache/stats.hpp>
#include <distcache/telemetry/telemetry.hpp>
#include <distcache/transport/peer.hpp>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace distcache::detail {

class engine_core;

/// A value to store, already type-erased.
struct value_entry {
  std::string key;
  std::shared_ptr<const void> value;
};

/// A key whose load this node leads, on its way to its owner.
struct pending_key {
  std::string key;
  std::uint64_t hash;
};

/// Everything the core does only in a cluster: ask owners for keys, tell
/// peers about writes, and answer peers (the peer_service the server calls).
/// Made by the typed front for engines that have a transport
/// (engine_core::cluster_operations_of), so a single-node program generates
/// none of this code. Defined in core/impl/cluster_operations.ipp.
class cluster_operations : public transport::peer_service {
 public:
  /// Called once with the outcome of a write, on any thread, possibly inline.
  using write_done = std::function<void(error_code)>;

  /// Asks `owner` for the keys of flights this node leads, in one request;
  /// each answer ends its flight, and a key the owner could not answer is
  /// loaded here.
  /// `parent`: the trace context of the operation that needs the keys.
  virtual void load_remotely(keyspace_slot& slot, keyspace_runtime& rt, const std::string& owner,
                             std::uint64_t ring_version, std::vector<pending_key> keys,
                             const telemetry::span_context& parent) = 0;
  /// Stores checked `entries` (charged `bytes`) at their owners, here for the
  /// keys this node owns, and drops them on every other node.
  virtual void put_remotely(keyspace_slot& slot, keyspace_runtime& rt,
                            std::vector<value_entry> entries, std::vector<std::size_t> bytes,
                            duration ttl, write_done done,
                            const telemetry::span_context& parent) = 0;
  /// Removes `keys` on every other node in the ring (after this node did).
  virtual void remove_remotely(keyspace_slot& slot, keyspace_runtime& rt,
                               std::vector<std::string> keys, write_done done,
                               const telemetry::span_context& parent) = 0;
};

/// The policies of an engine, seen without their types.
class engine_core;

struct erased_policies {
  /// Empty for transport::none: cluster.enabled is then refused.
  cluster_factory make_cluster;
  /// Makes the cluster operations (engine_core::cluster_operations_of), from
  /// the front's template code.
  std::function<std::unique_ptr<cluster_operations>(engine_core&)> make_cluster_operations;
  /// Makes the admin server serving the pages of an engine core; empty when
  /// the Transport policy brings none (config.admin.enabled is then
  /// refused). Filled by the front's template code, so that the page
  /// rendering (impl/admin_pages.ipp) is compiled only where it can be used.
  std::function<std::unique_ptr<admin::admin_service>(const admin_options&, const engine_core&,
                                                      const logger&)>
      make_admin;
  /// Makes the telemetry sink; empty for telemetry::none (config.telemetry
  /// is then refused).
  std::function<std::unique_ptr<telemetry::sink>(const telemetry_options&, const logger&)>
      make_telemetry;
  /// Whether the Transport policy can do TLS (transport::https); without
  /// it cluster.tls and admin.tls are refused.
  bool tls = false;
  guard_policies guards;
};

/// The measurement of one operation, from engine_core::begin_op() to
/// engine_core::end_op(). Inactive (slot null) when the engine observes
/// nothing: no admin server, telemetry::none.
struct op_scope {
  keyspace_slot* slot = nullptr;
  std::uint64_t start_ticks = 0;  // telemetry::detail::tick_clock
  telemetry::operation op = telemetry::operation::get;
  telemetry::span_kind kind = telemetry::span_kind::internal;
  bool traced = false;  // a span is recorded at the end
  std::uint32_t keys = 1;
  /// This operation's span when traced; otherwise an unsampled parent to
  /// pass on, or nothing. What the operation's children take as parent.
  telemetry::span_context context;
  std::array<std::uint8_t, 8> parent_id{};
  [[nodiscard]] bool active() const noexcept { return slot != nullptr; }
};

/// read()'s function of a value, without an allocation: `call(context, value)`.
struct value_visitor {
  void* context = nullptr;
  void (*call)(void* context, const void* value) = nullptr;
};

/// The engine core: the keyspace registry (by index and by name), the
/// lifecycle (io_context threads, blocking pool), the read path (caches,
/// singleflight, owner, peer, source guard, fetch), the write path (put,
/// remove and their fan-out), the answers to peers, and the statistics.
/// Values are type-erased handles; keyspaces are addressed by their index
/// in the engine's template arguments. basic_engine documents the
/// operations' behaviour; this class only implements them.
///
/// Thread safety: as basic_engine.
class engine_core {
 public:
  using value_handle = std::shared_ptr<const void>;
  using values = std::vector<result<value_handle>>;
  using get_handler = net::any_completion_handler<void(error_code, value_handle)>;
  using get_many_handler = net::any_completion_handler<void(error_code, values)>;
  using write_handler = net::any_completion_handler<void(error_code)>;
  using entry = value_entry;

  /// Validates `cfg` and every definition; throws config_error naming the
  /// keyspace, field and value.
  DISTCACHE_DECL engine_core(config cfg, erased_policies policies,
                             std::vector<std::unique_ptr<keyspace_adapter>> defs);
  engine_core(const engine_core&) = delete;
  engine_core& operator=(const engine_core&) = delete;
  DISTCACHE_DECL ~engine_core();

  // Lifecycle and cluster.
  DISTCACHE_DECL result<void> start();
  DISTCACHE_DECL result<void> stop();
  [[nodiscard]] DISTCACHE_DECL error_code check_blocking_call() const noexcept;
  [[nodiscard]] DISTCACHE_DECL std::string self_name() const;
  [[nodiscard]] DISTCACHE_DECL std::vector<std::string> cluster_peers() const;
  [[nodiscard]] DISTCACHE_DECL std::string owner_of(std::string_view key) const;
  [[nodiscard]] DISTCACHE_DECL std::uint64_t ring_version() const;
  [[nodiscard]] DISTCACHE_DECL transport::server_stats peer_server_stats() const;
  [[nodiscard]] DISTCACHE_DECL transport::client_stats peer_client_stats() const;
  DISTCACHE_DECL result<void> reload_tls();
  DISTCACHE_DECL void subscribe(std::function<void(const peer_event&)> on_event);
  /// The admin server's port; 0 when it does not run.
  [[nodiscard]] DISTCACHE_DECL std::uint16_t admin_port() const;
  /// The admin page of `endpoint` (impl/admin_pages.ipp); any thread.
  [[nodiscard]] DISTCACHE_DECL admin::reply admin_page(std::string_view endpoint) const;
  [[nodiscard]] net::io_context::executor_type get_executor() noexcept {
    return ioc_.get_executor();
  }

  // Reads.
  DISTCACHE_DECL result<value_handle> get(std::size_t ks, std::string_view key);
  /// The cached value of `key`, not counted; null when the engine is not
  /// running, the key is invalid, the keyspace is deleted or the key is not
  /// cached here (the caller then takes the general path).
  DISTCACHE_DECL value_handle peek(std::size_t ks, std::string_view key) const;
  /// Calls `visit` with the value of `key`: in place, on the read side of
  /// the shard's lock, for a fresh value cached here; after get() otherwise.
  /// Engine calls made inside `visit` are refused (errc::call_inside_read).
  DISTCACHE_DECL result<void> read(std::size_t ks, std::string_view key, value_visitor visit);
  DISTCACHE_DECL void count_hits(std::size_t ks, std::uint64_t n) noexcept;
  DISTCACHE_DECL void async_get(std::size_t ks, std::string key, get_handler handler);
  /// `scope`: begin_op(ks, operation::get_many, keys.size()), ended here.
  DISTCACHE_DECL void async_get_many(std::size_t ks, std::vector<std::string> keys,
                                     get_many_handler handler, op_scope scope);

  // Writes.
  /// Writes call `done` once, possibly inline (a blocking caller then does
  /// not change threads); the async_ forms post their handler instead.
  using write_done = cluster_operations::write_done;
  /// The put of one entry when it can end on the calling thread with no
  /// work beyond storing it: a node alone (no cluster) that observes
  /// nothing. Returns its outcome then, std::nullopt otherwise (use put()).
  DISTCACHE_DECL std::optional<error_code> put_now(std::size_t ks, std::string_view key,
                                                   const value_handle& value, duration ttl);
  /// `op`: what the caller called (put or put_many, remove or remove_many).
  DISTCACHE_DECL void put(std::size_t ks, std::vector<entry> entries, duration ttl, write_done done,
                          telemetry::operation op);
  DISTCACHE_DECL void remove(std::size_t ks, std::vector<std::string> keys, write_done done,
                             telemetry::operation op);
  DISTCACHE_DECL void async_put(std::size_t ks, std::vector<entry> entries, duration ttl,
                                write_handler handler, telemetry::operation op);
  DISTCACHE_DECL void async_remove(std::size_t ks, std::vector<std::string> keys,
                                   write_handler handler, telemetry::operation op);

  // Telemetry (impl/telemetry.ipp).
  /// Starts measuring an operation on keyspace `ks` (see op_scope); cheap
  /// and inactive when the engine observes nothing.
  op_scope begin_op(std::size_t ks, telemetry::operation op, std::size_t keys) noexcept {
    if (!observe_) return {};
    return begin_op(*slots_[ks], op, keys, nullptr, telemetry::span_kind::internal, true);
  }
  /// Ends `scope`: its latency enters the keyspace's histogram and, when
  /// traced, its span goes to the sink. Errors other than not_found count as
  /// failures. `peer`: the node a client or server span talked to.
  void end_op(op_scope& scope, error_code ec) noexcept {
    if (scope.active()) finish_op(scope, ec, {});
  }
  void end_op(op_scope& scope, error_code ec, std::string peer) noexcept {
    if (scope.active()) finish_op(scope, ec, std::move(peer));
  }
  /// The metrics an exporter sends (any thread).
  [[nodiscard]] DISTCACHE_DECL telemetry::metrics_snapshot metrics_snapshot() const;
  /// The exporter's counters (zero for telemetry::none).
  [[nodiscard]] DISTCACHE_DECL telemetry::exporter_stats telemetry_stats() const noexcept;

  // Keyspaces and statistics.
  DISTCACHE_DECL result<void> delete_keyspaces(const std::vector<std::string>& names);
  DISTCACHE_DECL result<void> update_keyspace(std::size_t ks,
                                              std::unique_ptr<keyspace_adapter> def);
  [[nodiscard]] DISTCACHE_DECL std::vector<std::string> keyspaces() const;
  [[nodiscard]] DISTCACHE_DECL keyspace_stats stats(std::size_t ks) const;
  [[nodiscard]] DISTCACHE_DECL result<keyspace_stats> stats(std::string_view name) const;
  [[nodiscard]] DISTCACHE_DECL std::vector<hot_key> hot_keys(std::size_t ks, std::size_t n) const;

  /// The cluster operations of `core` (see erased_policies).
  template <class Core = engine_core>
  static std::unique_ptr<cluster_operations> cluster_operations_of(Core& core) {
    return std::make_unique<typename Core::cluster_operations_impl>(core);
  }

  /// Completes `handler` with `args` without invoking it from the calling
  /// function: posted to its associated executor (default: the engine's
  /// while running, the system executor otherwise).
  template <class... Args>
  void post_result(net::any_completion_handler<void(Args...)> handler, Args... args) {
    const bool on_engine = running_.load(std::memory_order_acquire);
    const net::any_completion_executor ex =
        on_engine ? net::get_associated_executor(handler, ioc_.get_executor())
                  : net::get_associated_executor(handler, net::system_executor());
    post_job(on_engine, ex, make_job([h = std::move(handler), ... a = std::move(args)]() mutable {
               std::move(h)(std::move(a)...);
             }));
  }

 private:
  enum : int { created = 0, running = 1, stopped = 2 };

  class cluster_operations_impl final : public cluster_operations {
   public:
    explicit cluster_operations_impl(engine_core& core) : core_(core) {}
    // The answers to peers.
    [[nodiscard]] DISTCACHE_DECL bool has_keyspace(std::string_view name) const override;
    // A sender whose ring differs from ours: the controller discovers now.
    DISTCACHE_DECL void on_peer_request(const transport::request_info& info) override;
    DISTCACHE_DECL void get(std::string_view keyspace, std::vector<std::string> keys,
                            std::function<void(std::vector<transport::reply_item>)> done) override;
    DISTCACHE_DECL void get_from(
        std::string_view keyspace, std::vector<std::string> keys,
        const transport::request_info& info,
        std::function<void(std::vector<transport::reply_item>)> done) override;
    DISTCACHE_DECL error_code set(std::string_view keyspace, std::string key, std::string value,
                                  std::int64_t ttl_ms) override;
    DISTCACHE_DECL std::size_t remove(std::string_view keyspace,
                                      const std::vector<std::string>& keys) override;
    DISTCACHE_DECL void invalidate(std::string_view keyspace,
                                   const std::vector<std::string>& keys) override;
    DISTCACHE_DECL error_code set_from(std::string_view keyspace, std::string key,
                                       std::string value, std::int64_t ttl_ms,
                                       const transport::request_info& info) override;
    DISTCACHE_DECL std::size_t remove_from(std::string_view keyspace,
                                           const std::vector<std::string>& keys,
                                           const transport::request_info& info) override;
    DISTCACHE_DECL void invalidate_from(std::string_view keyspace,
                                        const std::vector<std::string>& keys,
                                        const transport::request_info& info) override;
    /// set() of a put (push_read_ms 0) or of a warm-up push.
    DISTCACHE_DECL error_code store_from_peer(std::string_view keyspace, const std::string& key,
                                              const std::string& value, std::int64_t ttl_ms,
                                              std::uint64_t push_read_ms);
    /// A write whose sender's ring differs from this node's may have missed
    /// nodes this one knows: it is passed on once, as an invalidation.
    DISTCACHE_DECL void pass_on_write(std::string_view keyspace,
                                      const std::vector<std::string>& keys,
                                      const transport::request_info& info);
    // Asking owners and telling peers.
    DISTCACHE_DECL void load_remotely(keyspace_slot& slot, keyspace_runtime& rt,
                                      const std::string& owner, std::uint64_t ring_version,
                                      std::vector<pending_key> keys,
                                      const telemetry::span_context& parent) override;
    DISTCACHE_DECL void put_remotely(keyspace_slot& slot, keyspace_runtime& rt,
                                     std::vector<value_entry> entries,
                                     std::vector<std::size_t> bytes, duration ttl, write_done done,
                                     const telemetry::span_context& parent) override;
    DISTCACHE_DECL void remove_remotely(keyspace_slot& slot, keyspace_runtime& rt,
                                        std::vector<std::string> keys, write_done done,
                                        const telemetry::span_context& parent) override;

   private:
    DISTCACHE_DECL bool accept_remote(keyspace_slot& slot, keyspace_runtime& rt,
                                      const pending_key& key, transport::reply_item& item);
    DISTCACHE_DECL void serve_get(keyspace_slot& slot, std::vector<std::string> keys,
                                  std::function<void(std::vector<transport::reply_item>)> done,
                                  const telemetry::span_context& parent,
                                  duration answer_within = duration::zero());
    // load_remotely's request, asked again for the keys the owner answers
    // "loading" until `deadline` (the flight's read timeout).
    DISTCACHE_DECL void ask_owner(keyspace_slot& slot, keyspace_runtime& rt,
                                  const std::string& owner, std::uint64_t ring_version,
                                  std::vector<pending_key> keys,
                                  const telemetry::span_context& parent, time_point deadline);
    DISTCACHE_DECL duration peer_read_timeout(const keyspace_runtime& rt) const;
    // A server span for a peer's write, continuing its trace (inactive when
    // the engine traces nothing).
    DISTCACHE_DECL op_scope serve_scope(keyspace_slot* slot, telemetry::operation op,
                                        std::size_t keys, const transport::request_info& info);
    // A client span for a request to `peer`, child of `parent`, and the
    // traceparent to send with it (empty when not traced).
    DISTCACHE_DECL op_scope client_scope(keyspace_slot& slot, telemetry::operation op,
                                         std::size_t keys, const telemetry::span_context& parent,
                                         std::string& traceparent);

    engine_core& core_;
  };

  // Registry and checks.
  static DISTCACHE_DECL config
  validated(config cfg, const erased_policies& p,
            const std::vector<std::unique_ptr<keyspace_adapter>>& defs);
  [[nodiscard]] DISTCACHE_DECL keyspace_slot* slot_named(std::string_view name) const noexcept;
  [[nodiscard]] DISTCACHE_DECL error_code check_state() const noexcept;
  [[nodiscard]] DISTCACHE_DECL error_code check_key(std::string_view key) const noexcept;
  [[nodiscard]] DISTCACHE_DECL result<keyspace_runtime*> runtime_for(std::size_t ks,
                                                                     std::string_view key) const;
  DISTCACHE_DECL std::shared_ptr<keyspace_runtime> make_runtime(
      std::unique_ptr<keyspace_adapter> def, std::string& why) const;
  // Freshness (impl/freshness.ipp).
  /// The cached answer for `key`: its value, negative_value() for a cached
  /// not_found, or null (load it). A value past its refresh time, or stale
  /// within max_stale, is returned and starts one background reload.
  /// `expires`, when given, receives the value's expiry.
  DISTCACHE_DECL value_handle cached(keyspace_slot& slot, keyspace_runtime& rt, hashed_key key,
                                     time_point* expires = nullptr);
  /// The answer for a main-cache hit that is due for refresh or stale (the
  /// slow half of cached(), kept out of line so the fresh hit stays small).
  DISTCACHE_DECL value_handle not_fresh(keyspace_slot& slot, keyspace_runtime& rt, hashed_key key,
                                        value_handle v, freshness state, time_point* expires);
  /// Starts one background reload of `key` (refresh-ahead, stale hit) unless
  /// one is in flight. Returns false when this node does not own the key.
  DISTCACHE_DECL bool revalidate(keyspace_slot& slot, keyspace_runtime& rt, hashed_key key);
  /// The lifetime of a value stored now in the main cache with expiry
  /// `expires` (its refresh time; the stale window is the cache's).
  [[nodiscard]] DISTCACHE_DECL lifetime lifetime_of(const keyspace_runtime& rt,
                                                    time_point expires) const;
  /// Caches a not_found of `key` (negative_ttl > 0) in `cache`, or drops the
  /// value `cache` holds for it (the source no longer has it).
  DISTCACHE_DECL void publish_not_found(keyspace_runtime& rt, value_cache& cache,
                                        hashed_key key) const;

  // Time.
  [[nodiscard]] DISTCACHE_DECL time_point now() const noexcept;
  [[nodiscard]] DISTCACHE_DECL time_point expiry_for(const keyspace_runtime& rt,
                                                     std::string_view key, duration ttl) const;
  [[nodiscard]] DISTCACHE_DECL time_point from_ttl_ms(std::int64_t ttl_ms) const;
  [[nodiscard]] DISTCACHE_DECL std::int64_t to_ttl_ms(time_point expires) const;

  // Read path (impl/read_path.ipp).
  // `here`: a data-source call admitted at once runs on the calling thread
  // (a blocking get with fetch_on_caller_thread), not on the pool. Returns
  // whether this node loads the key itself (it owns it, or runs alone).
  /// For a caller that just started the flight of `key` after missing the
  /// cache: when the previous flight of the key ended in between (publishing
  /// its value before it ended), ends this flight with the cached value and
  /// returns true, instead of a second load.
  DISTCACHE_DECL bool settle_from_cache(keyspace_runtime& rt, hashed_key key);
  DISTCACHE_DECL bool join_load(keyspace_slot& slot, keyspace_runtime& rt, hashed_key key,
                                std::shared_ptr<waiter> w, const telemetry::span_context& parent,
                                bool here = false);
  DISTCACHE_DECL void load_locally(keyspace_slot& slot, keyspace_runtime& rt, std::string key,
                                   std::uint64_t hash, const telemetry::span_context& parent,
                                   bool here = false);
  DISTCACHE_DECL void fetch_on_pool(keyspace_slot& slot, keyspace_runtime& rt,
                                    const std::string& key, std::uint64_t hash,
                                    const telemetry::span_context& parent);
  /// Ends the flight of `key` with a data source's answer and publishes it
  /// (the value, or a not_found: impl/freshness.ipp).
  DISTCACHE_DECL void settle(keyspace_runtime& rt, const std::string& key, std::uint64_t hash,
                             error_code ec, const loaded_value& loaded);
  // Batched loads (impl/batched_loads.ipp), for sources with fetch_many.
  /// Adds a flight's key to the keyspace's next fetch_many call.
  DISTCACHE_DECL void load_batched(keyspace_slot& slot, keyspace_runtime& rt, std::string key,
                                   std::uint64_t hash);
  /// Sends what waits in the keyspace's batch (its timer fired).
  DISTCACHE_DECL void send_batch(keyspace_slot& slot, keyspace_runtime& rt);
  /// One fetch_many call for `keys`, through the source guard.
  DISTCACHE_DECL void fetch_batch(keyspace_slot& slot, keyspace_runtime& rt,
                                  std::vector<batched_key> keys);
  DISTCACHE_DECL void fetch_batch_on_pool(keyspace_slot& slot, keyspace_runtime& rt,
                                          const std::vector<batched_key>& keys);

  // Telemetry (impl/telemetry.ipp).
  /// `parent`: null for the calling thread's telemetry::scoped_parent.
  /// `may_start_trace`: false for the children of an operation (a fetch, a
  /// peer request), which are traced only when their parent is.
  DISTCACHE_DECL op_scope begin_op(keyspace_slot& slot, telemetry::operation op, std::size_t keys,
                                   const telemetry::span_context* parent, telemetry::span_kind kind,
                                   bool may_start_trace) noexcept;
  DISTCACHE_DECL void finish_op(op_scope& scope, error_code ec, std::string peer) noexcept;
  [[nodiscard]] static DISTCACHE_DECL std::uint64_t steady_ns() noexcept;
  /// Milliseconds since the Unix epoch by the system clock (warm-up pushes' read times).
  [[nodiscard]] static DISTCACHE_DECL std::uint64_t unix_ms() noexcept;

  // Write path (impl/write_path.ipp).
  DISTCACHE_DECL error_code check_entry(const keyspace_runtime& rt, std::string_view key,
                                        std::size_t bytes) const;
  DISTCACHE_DECL void store_locally(keyspace_runtime& rt, hashed_key key, const value_handle& value,
                                    std::size_t bytes, time_point expires, bool write = true);
  DISTCACHE_DECL void drop_locally(keyspace_runtime& rt, hashed_key key, bool write = true);
  /// Remembers a write of `hash` (in a cluster): warm-up pushes of it are refused.
  DISTCACHE_DECL void note_write(keyspace_runtime& rt, std::uint64_t hash);
  /// Whether a write of `hash` reached this node within the keyspace's
  /// write_timeout: a put whose store at the owner may not have landed yet,
  /// so the owner's answer is handed out but not kept in the hot cache.
  [[nodiscard]] DISTCACHE_DECL bool write_in_flight(const keyspace_runtime& rt,
                                                    std::uint64_t hash) const;
  /// Whether a warm-up push of `hash`, read by its sender at `read_unix_ms`, may be stored.
  [[nodiscard]] DISTCACHE_DECL bool push_admitted(const keyspace_runtime& rt, std::uint64_t hash,
                                                  std::uint64_t read_unix_ms) const;
  DISTCACHE_DECL std::size_t remove_here(keyspace_slot& slot, keyspace_runtime& rt,
                                         const std::vector<std::string>& keys);
  // Warm-up (impl/warm_up.ipp).
  struct warm_run;
  /// The hot keys of `rt` a warm-up takes (max_hot_keys, min_hits).
  [[nodiscard]] DISTCACHE_DECL std::vector<std::string> warm_candidates(
      const keyspace_runtime& rt) const;
  /// Warms keyspace ks: its warm keys, then `hot` (see impl/warm_up.ipp).
  /// `why` names the trigger in the log line that ends it.
  DISTCACHE_DECL void warm(std::size_t ks, std::vector<std::string> hot, std::string why);
  DISTCACHE_DECL void warm_step(const std::shared_ptr<warm_run>& run);
  /// Moves the hot copy of `key` into the main cache; false when there is none.
  DISTCACHE_DECL bool promote(keyspace_runtime& rt, hashed_key key);
  /// A membership event: warms every keyspace whose warmup asks for it.
  DISTCACHE_DECL void on_membership(const peer_event& e);
  /// The n most frequent cached keys of `rt` (empty without a sketch).
  [[nodiscard]] static DISTCACHE_DECL std::vector<hot_key> hot_keys_of(const keyspace_runtime& rt,
                                                                       std::size_t n);

  DISTCACHE_DECL void shutdown_threads();
  /// The body of an io thread: ioc_.run(), or with config.io_spin a loop
  /// that polls for that long before it blocks.
  DISTCACHE_DECL void run_io_thread();
  // any_completion_executor cannot be required never to block, so a result
  // is posted to the engine's (or the system) executor, which dispatches it
  // to the handler's own executor `ex`.
  DISTCACHE_DECL void post_job(bool on_engine, const net::any_completion_executor& ex, job j);
  // A write_done that posts `handler` with the outcome.
  DISTCACHE_DECL write_done posting(write_handler handler);

  config cfg_;
  guard_policies guards_;
  std::vector<std::unique_ptr<keyspace_slot>> slots_;
  std::map<std::string, std::size_t, std::less<>> by_name_;
  std::atomic<int> state_{created};
  std::atomic<bool> running_{false};  // state_ == running, for guards and rounds
  std::atomic<int> here_calls_{0};    // data-source calls on callers' threads (stop waits)
  mutable std::mutex lifecycle_;
  // The deadlines of asynchronous gets, on one timer of ioc_. Declared
  // before ioc_: waiters destroyed with ioc_'s queue take themselves off it.
  deadline_sweeper deadlines_{ioc_};
  net::io_context ioc_;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work_;
  std::vector<std::thread> threads_;
  std::unique_ptr<fetch_pool> pool_;                   // data-source calls
  std::unique_ptr<net::thread_pool> cluster_threads_;  // discovery, membership events
  std::shared_ptr<const ring> solo_ring_;              // the ring of a node alone
  std::unique_ptr<cluster_service> cluster_;           // null: this node runs alone
  std::unique_ptr<cluster_operations> remote_;         // with cluster_ only
  std::function<std::unique_ptr<admin::admin_service>(const admin_options&, const engine_core&,
                                                      const logger&)>
      make_admin_;
  std::atomic<bool> starting_{false};  // start() is joining the cluster
  std::atomic<std::uint16_t> admin_port_{0};
  std::unique_ptr<admin::admin_service> admin_;  // from the first start() to destruction
  std::unique_ptr<telemetry::sink> telemetry_;   // null: telemetry::none
  bool observe_ = false;                         // measure operations: admin or telemetry
  bool sample_all_ = false;                      // trace_sample_ratio == 1
  std::uint64_t sample_below_ = 0;               // new traces: random_u64() < this
  std::uint64_t unix_offset_ns_ = 0;             // steady_ns() + this = Unix time
  std::uint64_t metrics_start_unix_ns_ = 0;
};

}  // namespace distcache::detail

#if DISTCACHE_HEADER_ONLY
#include <distcache/core/impl/admin_pages.ipp>
#include <distcache/core/impl/batched_loads.ipp>
#include <distcache/core/impl/cluster_operations.ipp>
#include <distcache/core/impl/engine_core.ipp>
#include <distcache/core/impl/freshness.ipp>
#include <distcache/core/impl/read_path.ipp>
#include <distcache/core/impl/telemetry.ipp>
#include <distcache/core/impl/warm_up.ipp>
#include <distcache/core/impl/write_path.ipp>
#endif

#endif  // DISTCACHE_CORE_ENGINE_CORE_HPP
