// distcache — cluster_controller definitions.
#ifndef DISTCACHE_CLUSTER_IMPL_CONTROLLER_IPP
#define DISTCACHE_CLUSTER_IMPL_CONTROLLER_IPP

#include <algorithm>
#include <boost/asio/post.hpp>
#include <chrono>
#include <distcache/cluster/controller.hpp>
#include <distcache/detail/current_engine.hpp>
#include <future>
#include <thread>

namespace distcache::detail {

cluster_controller::cluster_controller(const void* engine, const config& cfg, net::io_context& ioc,
                                       std::unique_ptr<any_discovery> discovery,
                                       transport_factories transport)
    : engine_(engine),
      cfg_(cfg),
      ioc_(ioc),
      discovery_(std::move(discovery)),
      transport_(std::move(transport)),
      members_(self_, cfg.cluster.virtual_nodes, cfg.cluster.failure_threshold),
      strand_(ioc.get_executor()) {}

std::string cluster_controller::self_name() const {
  std::lock_guard lock(self_mutex_);
  return self_;
}

void cluster_controller::subscribe(std::function<void(const peer_event&)> on_event) {
  std::lock_guard lock(subscribers_mutex_);
  subscribers_.push_back(std::make_shared<subscriber>(std::move(on_event)));
}

void cluster_controller::peer_ok(const std::string& peer) { publish(members_.on_success(peer)); }

void cluster_controller::peer_failed(const std::string& peer) {
  publish(members_.on_failure(peer));
}

// Delivers membership events to every subscriber, in order per subscriber,
// on the blocking pool, where blocking engine calls are refused.
void cluster_controller::publish(const std::vector<peer_event>& events) {
  if (events.empty()) return;
  for (const auto& e : events) {
    cfg_.log(log_level::info, std::string("peer ") + e.peer +
                                  (e.kind == peer_event_kind::joined ? " joined" : " left") +
                                  " the ring");
  }
  std::lock_guard lock(subscribers_mutex_);
  if (pool_ == nullptr) return;
  for (auto& s : subscribers_) {
    if (!s->strand) s->strand.emplace(net::make_strand(pool_->get_executor()));
    net::post(*s->strand, [engine = engine_, s, events] {
      const engine_thread_mark mark(engine);
      for (const auto& e : events) s->on_event(e);
    });
  }
}

error_code cluster_controller::start(net::thread_pool& pool, transport::peer_service& service) {
  {
    std::lock_guard lock(subscribers_mutex_);
    pool_ = &pool;
  }
  {
    std::lock_guard lock(discovery_mutex_);
    discovery_closed_ = false;
  }
  const auto& k = cfg_.cluster;
  transport::server_options so;
  so.bind_address = k.bind_address;
  so.port = k.port;
  so.cluster_name = k.name;
  so.read_timeout = cfg_.read_timeout;
  so.limits.max_key_bytes = cfg_.max_key_bytes;
  so.max_inflight_bytes = k.max_inflight_bytes;
  so.max_connections_per_address = k.max_connections_per_address;
  so.tls = k.tls;
  {
    auto server = transport_.make_server(ioc_, service, so, cfg_.log);
    if (auto r = server->start(); !r) return r.error();
    std::lock_guard lock(server_mutex_);
    server_ = std::move(server);
  }
  {
    const std::string host = k.advertise_address.empty() ? k.bind_address : k.advertise_address;
    const bool v6 = host.find(':') != std::string::npos;
    std::lock_guard lock(self_mutex_);
    self_ = (v6 ? "[" + host + "]" : host) + ":" + std::to_string(server_->port());
  }
  members_.reset(self_);
  transport::client_options co;
  co.self_name = self_;
  co.cluster_name = k.name;
  co.connect_timeout = k.peer_timeout;
  co.limits.max_key_bytes = cfg_.max_key_bytes;
  co.coalesce_in_flight = k.coalesce_in_flight;
  co.coalesce_slow_after = k.coalesce_slow_after;
  co.max_coalesced_keys = k.max_coalesced_keys;
  co.tls = k.tls;
  try {
    auto client = transport_.make_client(ioc_, co, cfg_.log);
    std::lock_guard lock(server_mutex_);
    client_ = std::move(client);
  } catch (const config_error& e) {  // the TLS files changed since the server loaded them
    cfg_.log(log_level::error, std::string("start: the peer client cannot start: ") + e.what());
    teardown_transport();
    return make_error_code(errc::invalid_config);
  }
  error_code ec;
  if (auto r = discovery_->initialize(); !r) ec = r.error();
  if (!ec) {
    if (auto r = discovery_->register_node(self_); !r) ec = r.error();
  }
  if (!ec) ec = bootstrap();
  if (ec) {
    cfg_.log(log_level::error, "start: cannot join the cluster: " + ec.message());
    (void)discovery_->deregister_node(self_);
    discovery_->close();
    teardown_transport();
    return ec;
  }
  return {};
}

// Discovery rounds until minimum_peers_quorum nodes answer.
error_code cluster_controller::bootstrap() {
  const auto& k = cfg_.cluster;
  const auto deadline = clock_type::now() + k.bootstrap_timeout;
  for (int attempt = 1;; ++attempt) {
    if (auto peers = discovery_->discover_peers()) {
      publish(members_.on_discovered(*peers));
    } else {
      cfg_.log(log_level::warning, "discovery failed: " + peers.error().message());
    }
    probe_all_and_wait(std::min<duration>(k.peer_timeout, deadline - clock_type::now()));
    const std::size_t have = 1 + members_.alive_peers().size();
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

// Probes every known peer once and waits for the answers (bootstrap).
void cluster_controller::probe_all_and_wait(duration limit) {
  auto peers = members_.known_peers();
  if (peers.empty() || limit <= duration::zero()) return;
  auto left = std::make_shared<std::atomic<std::size_t>>(peers.size());
  auto done = std::make_shared<std::promise<void>>();
  auto finished = done->get_future();
  for (const auto& p : peers) {
    client_->health(p, limit, [this, p, left, done](error_code ec) {
      if (ec) {
        peer_failed(p);
      } else {
        peer_ok(p);
      }
      if (left->fetch_sub(1) == 1) done->set_value();
    });
  }
  finished.wait_for(limit + std::chrono::milliseconds(100));
}

void cluster_controller::start_rounds(const std::atomic<bool>& running) {
  running_ = &running;
  probe_timer_.emplace(strand_);
  discovery_timer_.emplace(strand_);
  arm_probe();
  arm_discovery();
  discovery_->set_change_handler([this] { discover_soon(); });
}

// The provider saw a change: a discovery round now, or right after the one
// running.
void cluster_controller::discover_soon() {
  net::post(strand_, [this] {
    if (!discovery_timer_ || !running_->load()) return;
    if (discovery_timer_->cancel() == 0) discover_again_ = true;
  });
}

void cluster_controller::ring_version_seen(std::string_view from, std::uint64_t version) {
  if (version == 0) return;  // a sender that does not say
  const std::uint64_t ours = members_.current()->version();
  if (version == ours) return;
  const clock_type::rep now = clock_type::now().time_since_epoch().count();
  clock_type::rep last = last_mismatch_round_.load(std::memory_order_relaxed);
  const auto gap = std::chrono::duration_cast<duration>(std::chrono::seconds(1)).count();
  if (last != 0 && now - last < gap) return;
  if (!last_mismatch_round_.compare_exchange_strong(last, now)) return;  // another thread did
  cfg_.log(log_level::info, "ring version " + std::to_string(version) + " of " +
                                std::string(from.substr(0, 128)) + " differs from ours (" +
                                std::to_string(ours) + "): discovering now");
  discover_soon();
}

void cluster_controller::arm_probe() {
  probe_timer_->expires_after(cfg_.cluster.probe_interval);
  probe_timer_->async_wait([this](error_code ec) {
    if (ec || !running_->load()) return;
    for (const auto& p : members_.known_peers()) {
      client_->health(p, cfg_.cluster.peer_timeout, [this, p](error_code e) {
        if (e) {
          peer_failed(p);
        } else {
          peer_ok(p);
        }
      });
    }
    arm_probe();
  });
}

void cluster_controller::arm_discovery() {
  discovery_timer_->expires_after(discover_again_ ? duration::zero()
                                                  : cfg_.cluster.discovery_interval);
  discover_again_ = false;
  discovery_timer_->async_wait([this](error_code ec) {
    // Cancelled: by stop() (no longer running) or by discover_soon().
    if ((ec && ec != net::error::operation_aborted) || !running_->load()) return;
    // The provider may block: ask it on the pool, then re-arm on the strand.
    net::post(*pool_, [this] {
      {
        // stop() closes the provider under this lock: a round either ends
        // before it or does not ask the provider at all.
        std::lock_guard lock(discovery_mutex_);
        if (discovery_closed_) return;
        auto peers = discovery_->discover_peers();
        if (peers) {
          publish(members_.on_discovered(*peers));
        } else {
          cfg_.log(log_level::warning, "discovery failed: " + peers.error().message());
        }
      }
      net::post(strand_, [this] {
        if (running_->load()) arm_discovery();
      });
    });
  });
}

void cluster_controller::stop() {
  // Timers live on the strand: cancel them there, and wait for it.
  std::promise<void> cancelled;
  net::post(strand_, [&] {
    if (probe_timer_) probe_timer_->cancel();
    if (discovery_timer_) discovery_timer_->cancel();
    cancelled.set_value();
  });
  cancelled.get_future().wait();
  {
    // Waits for a round running on the pool (bounded by the provider's own
    // timeout), and keeps later ones from asking a closed provider.
    std::lock_guard lock(discovery_mutex_);
    discovery_closed_ = true;
    (void)discovery_->deregister_node(self_);
    discovery_->close();
  }
  teardown_transport();
}

void cluster_controller::teardown_transport() {
  if (server_) server_->stop();
  if (client_) client_->close();
}

void cluster_controller::release() {
  probe_timer_.reset();
  discovery_timer_.reset();
  std::unique_ptr<transport::peer_server> server;
  std::unique_ptr<transport::peer_client> client;
  {
    std::lock_guard lock(server_mutex_);
    server = std::move(server_);
    client = std::move(client_);
  }
  server.reset();
  client.reset();
  std::lock_guard lock(subscribers_mutex_);
  for (auto& s : subscribers_) s->strand.reset();
  pool_ = nullptr;
}

result<void> cluster_controller::reload_tls() {
  std::lock_guard lock(server_mutex_);
  error_code first;
  if (server_) {
    if (auto r = server_->reload_tls(); !r) first = r.error();
  }
  if (client_) {
    if (auto r = client_->reload_tls(); !r && !first) first = r.error();
  }
  if (first) return first;
  return {};
}

transport::client_stats cluster_controller::client_stats() const {
  std::lock_guard lock(server_mutex_);
  return client_ ? client_->stats() : transport::client_stats{};
}

}  // namespace distcache::detail

#endif  // DISTCACHE_CLUSTER_IMPL_CONTROLLER_IPP
