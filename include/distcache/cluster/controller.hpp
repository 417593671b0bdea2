// distcache — the cluster controller: joins the cluster, watches it
// (discovery rounds, health probes, request outcomes) and tells subscribers.
#ifndef DISTCACHE_CLUSTER_CONTROLLER_HPP
#define DISTCACHE_CLUSTER_CONTROLLER_HPP

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cstdint>
#include <distcache/cluster/detail/membership.hpp>
#include <distcache/cluster/ring.hpp>
#include <distcache/config.hpp>
#include <distcache/detail/config.hpp>
#include <distcache/discovery/provider.hpp>
#include <distcache/error.hpp>
#include <distcache/transport/peer.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace distcache::detail {

/// A discovery provider seen without its type (see discovery_provider).
class any_discovery {
 public:
  any_discovery() = default;
  any_discovery(const any_discovery&) = delete;
  any_discovery& operator=(const any_discovery&) = delete;
  virtual ~any_discovery() = default;
  virtual result<void> initialize() = 0;
  virtual result<void> register_node(const std::string& self) = 0;
  virtual result<void> deregister_node(const std::string& self) = 0;
  virtual result<std::vector<std::string>> discover_peers() = 0;
  virtual void set_change_handler(std::function<void()> on_change) = 0;
  virtual void close() = 0;
};

/// The any_discovery of a provider of type D, held by value.
template <class D>
class discovery_model final : public any_discovery {
 public:
  explicit discovery_model(D d) : d_(std::move(d)) {}
  result<void> initialize() override { return d_.initialize(); }
  result<void> register_node(const std::string& self) override { return d_.register_node(self); }
  result<void> deregister_node(const std::string& self) override {
    return d_.deregister_node(self);
  }
  result<std::vector<std::string>> discover_peers() override { return d_.discover_peers(); }
  void set_change_handler(std::function<void()> on_change) override {
    if constexpr (discovery_with_change_handler<D>) d_.set_change_handler(std::move(on_change));
  }
  void close() override { d_.close(); }

 private:
  D d_;
};

/// How the controller makes its transport; the typed engine front fills it
/// from its Transport policy.
struct transport_factories {
  std::function<std::unique_ptr<transport::peer_server>(
      net::io_context&, transport::peer_service&, const transport::server_options&, const logger&)>
      make_server;
  std::function<std::unique_ptr<transport::peer_client>(
      net::io_context&, const transport::client_options&, const logger&)>
      make_client;
};

template <class Transport>
transport_factories make_transport_factories() {
  transport_factories f;
  f.make_server = [](net::io_context& ioc, transport::peer_service& svc,
                     const transport::server_options& o, const logger& log) {
    return std::unique_ptr<transport::peer_server>(Transport::make_server(ioc, svc, o, log));
  };
  f.make_client = [](net::io_context& ioc, const transport::client_options& o, const logger& log) {
    return std::unique_ptr<transport::peer_client>(Transport::make_client(ioc, o, log));
  };
  return f;
}

/// What the engine core asks of its cluster: who owns a key, the peer
/// client, the outcome of each peer request, and the lifecycle. Created by
/// the typed engine front only for an engine with a transport and
/// cluster.enabled, so a single-node program never compiles the cluster code.
class cluster_service {
 public:
  cluster_service() = default;
  cluster_service(const cluster_service&) = delete;
  cluster_service& operator=(const cluster_service&) = delete;
  virtual ~cluster_service() = default;

  /// This node's name ("host:port" once started). Unlocked: call it only
  /// after start() returned, or from the engine's threads.
  [[nodiscard]] virtual const std::string& self() const noexcept = 0;
  /// This node's name, safe from any thread at any time.
  [[nodiscard]] virtual std::string self_name() const = 0;
  /// The ring now.
  [[nodiscard]] virtual std::shared_ptr<const ring> current() const = 0;
  /// The peers in the ring now (this node excluded).
  [[nodiscard]] virtual std::vector<std::string> alive_peers() const = 0;
  /// Every discovered peer with its state (the admin server's /peers).
  [[nodiscard]] virtual std::vector<member_view> members() const = 0;
  /// The peer server's counters (zeros when it is not running); any thread.
  [[nodiscard]] virtual transport::server_stats server_stats() const = 0;
  /// The peer client's counters (zeros when it is not running); any thread.
  [[nodiscard]] virtual transport::client_stats client_stats() const = 0;
  /// Loads the peer server's and client's TLS files again (nothing when
  /// they do not run or have no TLS); the first error. Any thread.
  virtual result<void> reload_tls() = 0;
  /// The peer client; valid between a successful start() and release().
  [[nodiscard]] virtual transport::peer_client& client() noexcept = 0;
  /// Adds a subscriber of membership events (see basic_engine::subscribe).
  virtual void subscribe(std::function<void(const peer_event&)> on_event) = 0;
  /// A request to `peer` succeeded: it (re)joins the ring.
  virtual void peer_ok(const std::string& peer) = 0;
  /// A request to `peer` failed: after failure_threshold in a row it leaves.
  virtual void peer_failed(const std::string& peer) = 0;
  /// A peer's request carried ring version `version` (0: unknown). One that
  /// differs from this node's starts a discovery round now (at most one a
  /// second), so that two nodes that disagree on the members agree again
  /// without waiting for discovery_interval. Any thread.
  virtual void ring_version_seen(std::string_view from, std::uint64_t version) = 0;
  /// Starts the peer server answering through `service`, the client and
  /// discovery, and waits for the quorum. On failure releases everything it
  /// started and returns why.
  virtual error_code start(net::thread_pool& pool, transport::peer_service& service) = 0;
  /// Starts the periodic discovery rounds and probes; they stop once
  /// `running` is false.
  virtual void start_rounds(const std::atomic<bool>& running) = 0;
  /// Cancels the rounds, deregisters from discovery and stops the transport.
  virtual void stop() = 0;
  /// Destroys the timers, server and client and forgets the pool; called
  /// once the engine's threads have ended, so no handler of theirs runs.
  virtual void release() = 0;
};

/// Makes the cluster_service of an engine; empty for an engine that has no
/// transport (transport::none).
using cluster_factory = std::function<std::unique_ptr<cluster_service>(
    const void* engine, const config& cfg, net::io_context& ioc)>;

/// Joins and watches the cluster of one engine: owns the membership (the
/// peer set and ring), the discovery provider, the peer server and client,
/// the periodic discovery rounds and health probes, and the subscribers of
/// membership events. The engine's read and write paths ask it who owns a
/// key and report each peer request's outcome to it.
///
/// Thread safety: the observers and the peer_* reports may be called
/// concurrently; start(), stop() and release() are called by the engine's
/// lifecycle, one at a time.
class cluster_controller final : public cluster_service {
 public:
  /// `cfg` must outlive the controller; `engine` identifies the engine's
  /// threads (see current_engine) where events are delivered.
  DISTCACHE_DECL cluster_controller(const void* engine, const config& cfg, net::io_context& ioc,
                                    std::unique_ptr<any_discovery> discovery,
                                    transport_factories transport);

  /// This node's name ("host:port" once started in a cluster, "self" before).
  /// Unlocked: call it only after start() returned, or from the engine's threads.
  [[nodiscard]] const std::string& self() const noexcept override { return self_; }
  /// This node's name, safe from any thread at any time.
  [[nodiscard]] DISTCACHE_DECL std::string self_name() const override;
  /// The ring now.
  [[nodiscard]] std::shared_ptr<const ring> current() const override { return members_.current(); }
  /// The peers in the ring now (this node excluded).
  [[nodiscard]] std::vector<std::string> alive_peers() const override {
    return members_.alive_peers();
  }
  [[nodiscard]] std::vector<member_view> members() const override { return members_.members(); }
  [[nodiscard]] transport::server_stats server_stats() const override {
    std::lock_guard lock(server_mutex_);
    return server_ ? server_->stats() : transport::server_stats{};
  }
  [[nodiscard]] DISTCACHE_DECL transport::client_stats client_stats() const override;
  DISTCACHE_DECL result<void> reload_tls() override;
  /// The peer client; valid between a successful start() and release().
  [[nodiscard]] transport::peer_client& client() noexcept override { return *client_; }

  /// Adds a subscriber of membership events (see basic_engine::subscribe).
  DISTCACHE_DECL void subscribe(std::function<void(const peer_event&)> on_event) override;
  /// A request to `peer` succeeded: it (re)joins the ring.
  DISTCACHE_DECL void peer_ok(const std::string& peer) override;
  /// A request to `peer` failed: after failure_threshold in a row it leaves.
  DISTCACHE_DECL void peer_failed(const std::string& peer) override;
  /// A differing ring version in a peer's request: a discovery round now.
  DISTCACHE_DECL void ring_version_seen(std::string_view from, std::uint64_t version) override;

  /// Starts the peer server answering through `service`, the client and
  /// discovery, and waits for the quorum. On failure releases everything it
  /// started and returns why.
  DISTCACHE_DECL error_code start(net::thread_pool& pool,
                                  transport::peer_service& service) override;
  /// Starts the periodic discovery rounds and probes; they stop once
  /// `running` is false.
  DISTCACHE_DECL void start_rounds(const std::atomic<bool>& running) override;
  /// Cancels the rounds, deregisters from discovery and stops the transport.
  DISTCACHE_DECL void stop() override;
  /// Destroys the timers, server and client and forgets the pool; called
  /// once the engine's threads have ended, so no handler of theirs runs.
  DISTCACHE_DECL void release() override;

 private:
  struct subscriber {
    explicit subscriber(std::function<void(const peer_event&)> f) : on_event(std::move(f)) {}
    std::function<void(const peer_event&)> on_event;
    std::optional<net::strand<net::thread_pool::executor_type>> strand;
  };

  DISTCACHE_DECL void publish(const std::vector<peer_event>& events);
  DISTCACHE_DECL error_code bootstrap();
  DISTCACHE_DECL void probe_all_and_wait(duration limit);
  DISTCACHE_DECL void arm_probe();
  DISTCACHE_DECL void arm_discovery();
  DISTCACHE_DECL void discover_soon();
  DISTCACHE_DECL void teardown_transport();

  const void* engine_;
  const config& cfg_;
  net::io_context& ioc_;
  std::unique_ptr<any_discovery> discovery_;
  transport_factories transport_;
  std::string self_ = "self";
  mutable std::mutex self_mutex_;
  membership members_;
  net::strand<net::io_context::executor_type> strand_;
  std::optional<net::steady_timer> probe_timer_;
  std::optional<net::steady_timer> discovery_timer_;
  bool discover_again_ = false;  // on strand_: a change arrived during a round
  // When a differing ring version last started a discovery round (steady
  // clock ticks; 0: never).
  std::atomic<clock_type::rep> last_mismatch_round_{0};
  std::mutex discovery_mutex_;     // a periodic round's provider call against stop()'s close()
  bool discovery_closed_ = false;  // under discovery_mutex_
  const std::atomic<bool>* running_ = nullptr;
  // Guards server_ and client_ against the observers and reload_tls()
  // (the engine's own threads use client_ without it, between start() and
  // release()).
  mutable std::mutex server_mutex_;
  std::unique_ptr<transport::peer_server> server_;
  std::unique_ptr<transport::peer_client> client_;
  std::mutex subscribers_mutex_;
  std::vector<std::shared_ptr<subscriber>> subscribers_;
  net::thread_pool* pool_ = nullptr;  // guarded by subscribers_mutex_
};

/// The cluster factory of an engine whose policies are Discovery and
/// Transport, holding `discovery` until the engine asks for its cluster.
template <class Discovery, class Transport>
cluster_factory make_cluster_factory(Discovery discovery) {
  if constexpr (std::is_same_v<Transport, transport::none>) {
    (void)discovery;
    return {};
  } else {
    auto held = std::make_shared<Discovery>(std::move(discovery));
    return [held](const void* engine, const config& cfg, net::io_context& ioc) {
      return std::unique_ptr<cluster_service>(std::make_unique<cluster_controller>(
          engine, cfg, ioc, std::make_unique<discovery_model<Discovery>>(std::move(*held)),
          make_transport_factories<Transport>()));
    };
  }
}

}  // namespace distcache::detail

#if DISTCACHE_HEADER_ONLY
#include <distcache/cluster/impl/controller.ipp>
#endif

#endif  // DISTCACHE_CLUSTER_CONTROLLER_HPP
