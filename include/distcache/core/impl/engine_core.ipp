// distcache — engine_core: construction, lifecycle, registry, keyspaces and
// statistics. The read path, the write path and the answers to peers have
// files of their own beside this one.
#ifndef DISTCACHE_CORE_IMPL_ENGINE_CORE_IPP
#define DISTCACHE_CORE_IMPL_ENGINE_CORE_IPP

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <distcache/core/engine_core.hpp>
#include <distcache/detail/hash.hpp>
#include <distcache/detail/spin.hpp>

namespace distcache::detail {

// Checks everything about `cfg` that does not depend on a keyspace
// definition, before any member that uses it is built; throws config_error.
config engine_core::validated(config cfg, const erased_policies& p,
                              const std::vector<std::unique_ptr<keyspace_adapter>>& defs) {
  if (auto why = validate_engine(cfg); !why.empty()) throw config_error(why);
  for (const auto& entry : cfg.keyspaces) {
    const std::string& name = entry.first;  // not a structured binding: a lambda uses it
    const bool known =
        std::any_of(defs.begin(), defs.end(), [&](const auto& d) { return d->name() == name; });
    if (!known) {
      throw config_error("config.keyspaces: '" + name + "' is not one of this engine's keyspaces");
    }
  }
  if (!cfg.log) cfg.log = log_to_stderr;
  // A configured limiter or breaker needs a policy that implements it;
  // silently ignoring the setting would leave the source unprotected.
  bool wants_limiter = cfg.rate_limiter.has_value();
  bool wants_breaker = cfg.circuit_breaker.has_value();
  for (const auto& [name, o] : cfg.keyspaces) {
    wants_limiter = wants_limiter || o.rate_limiter.has_value();
    wants_breaker = wants_breaker || o.circuit_breaker.has_value();
  }
  if (wants_limiter && !p.guards.limiter_enabled) {
    throw config_error(
        "config.rate_limiter: set, but the engine's RateLimiter policy is "
        "protection::no_rate_limiter; build the engine with policies<..., "
        "protection::token_bucket>");
  }
  if (wants_breaker && !p.guards.breaker_enabled) {
    throw config_error(
        "config.circuit_breaker: set, but the engine's CircuitBreaker policy is "
        "protection::no_circuit_breaker; build the engine with policies<..., "
        "protection::circuit_breaker>");
  }
  if (cfg.admin.enabled && !p.make_admin) {
    throw config_error(
        "config.admin.enabled: true, but the engine's Transport policy brings no admin server; "
        "build the engine with policies<Discovery, transport::http> (include "
        "<distcache/transport/http.hpp>); a single node may use policies<discovery::standalone, "
        "transport::http>");
  }
  if (!p.tls) {
    if (cfg.cluster.enabled && cfg.cluster.tls.enabled)
      throw config_error(tls_unavailable("config.cluster.tls"));
    if (cfg.admin.enabled && cfg.admin.tls.enabled)
      throw config_error(tls_unavailable("config.admin.tls"));
  }
  if (cfg.telemetry && !p.make_telemetry) {
    throw config_error(
        "config.telemetry: set, but the engine's Telemetry policy is telemetry::none; build the "
        "engine with policies<Discovery, Transport, RateLimiter, CircuitBreaker, telemetry::otlp> "
        "(include <distcache/telemetry/otlp.hpp>)");
  }
  if (cfg.cluster.enabled && !p.make_cluster) {
    throw config_error(
        "config.cluster.enabled: true, but the engine's Transport policy is transport::none; "
        "build the engine with policies<Discovery, transport::http> (include "
        "<distcache/transport/http.hpp>)");
  }
  return cfg;
}

engine_core::engine_core(config cfg, erased_policies policies,
                         std::vector<std::unique_ptr<keyspace_adapter>> defs)
    : cfg_(validated(std::move(cfg), policies, defs)),
      guards_(std::move(policies.guards)),
      solo_ring_(
          std::make_shared<const ring>(std::vector<std::string>{"self"}, 1, hash_key("self,"))),
      make_admin_(std::move(policies.make_admin)) {
  const telemetry_options topts = cfg_.telemetry.value_or(telemetry_options{});
  if (policies.make_telemetry) telemetry_ = policies.make_telemetry(topts, cfg_.log);
  observe_ = telemetry_ != nullptr || cfg_.admin.enabled;
  if (observe_) telemetry::detail::tick_clock::calibrate();
  sample_all_ = topts.trace_sample_ratio >= 1.0;
  sample_below_ =
      sample_all_
          ? UINT64_MAX
          : static_cast<std::uint64_t>(std::ldexp(topts.trace_sample_ratio, 64));  // ratio * 2^64
  const auto unix_now =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  unix_offset_ns_ = unix_now - steady_ns();
  metrics_start_unix_ns_ = unix_now;
  if (cfg_.cluster.enabled) {
    cluster_ = policies.make_cluster(this, cfg_, ioc_);
    remote_ = policies.make_cluster_operations(*this);
    // Warm-up on ring changes (impl/warm_up.ipp); called on a pool strand.
    cluster_->subscribe([this](const peer_event& e) { on_membership(e); });
  }
  std::string why;
  for (auto& def : defs) {
    auto slot = std::make_unique<keyspace_slot>(std::string(def->name()));
    auto rt = make_runtime(std::move(def), why);
    if (!rt) throw config_error(why);
    slot->replace(std::move(rt));
    by_name_.emplace(slot->name, slots_.size());
    slots_.push_back(std::move(slot));
  }
}

engine_core::~engine_core() {
  try {
    (void)stop();
  } catch (...) {  // a throwing logger or discovery provider must not end the process here
  }
  if (admin_) admin_->stop();  // before the members its pages read go away
  admin_.reset();
  deadlines_.stop();  // its timer goes before ioc_ (after a start that failed, too)
}

std::shared_ptr<keyspace_runtime> engine_core::make_runtime(std::unique_ptr<keyspace_adapter> def,
                                                            std::string& why) const {
  resolved_keyspace opts;
  if (!resolve_keyspace(cfg_, def->name(), def->max_bytes(), opts, why)) return nullptr;
  return std::make_shared<keyspace_runtime>(std::move(def), std::move(opts), cfg_.clock.get(),
                                            guards_, cfg_.cluster.write_memory,
                                            cfg_.cluster.write_memory_writes);
}

// ---------------------------------------------------------------- lifecycle

result<void> engine_core::start() {
  if (auto ec = check_blocking_call()) return ec;
  std::lock_guard lock(lifecycle_);
  const int s = state_.load();
  if (s == running) return {};
  if (s == stopped) return make_error_code(errc::stopped);
  if (cfg_.admin.enabled && !admin_) {
    // First, so /readyz can say why the node is not ready while it joins.
    auto server = make_admin_(cfg_.admin, *this, cfg_.log);
    if (auto r = server->start(); !r) {
      cfg_.log(log_level::error, "start: the admin server cannot listen on " +
                                     cfg_.admin.bind_address + ":" +
                                     std::to_string(cfg_.admin.port) + ": " + r.error().message());
      return r.error();
    }
    admin_port_.store(server->port());
    admin_ = std::move(server);
  }
  starting_.store(true);
  const std::size_t fetch_threads = cfg_.fetch_threads != 0 ? cfg_.fetch_threads : 8;
  std::size_t threads = cfg_.threads;
  if (threads == 0) threads = std::max(1U, std::thread::hardware_concurrency());
  ioc_.restart();
  deadlines_.start();
  pool_ = std::make_unique<fetch_pool>(fetch_threads, cfg_.spin_wait);
  work_.emplace(ioc_.get_executor());
  for (std::size_t i = 0; i < threads; ++i) {
    threads_.emplace_back([this] {
      current_engine = this;
      run_io_thread();
    });
  }
  if (cluster_) {
    // Discovery and membership events have threads of their own: a data
    // source that hangs every fetch thread does not delay them.
    cluster_threads_ = std::make_unique<net::thread_pool>(2);
    if (auto ec = cluster_->start(*cluster_threads_, *remote_)) {
      shutdown_threads();
      starting_.store(false);
      return ec;
    }
  }
  state_.store(running);
  running_.store(true);
  starting_.store(false);
  if (cluster_) cluster_->start_rounds(running_);
  if (telemetry_) {
    telemetry_->start(
        telemetry::node_identity{cfg_.telemetry ? cfg_.telemetry->service_name : "distcache",
                                 self_name()},
        [this] { return metrics_snapshot(); });
  }
  for (std::size_t ks = 0; ks < slots_.size(); ++ks) warm(ks, {}, "start");
  return {};
}

void engine_core::run_io_thread() {
  const duration spin = cfg_.io_spin;
  if (spin <= duration::zero()) {
    ioc_.run();
    return;
  }
  // Idle, poll without blocking (with one thread, each poll is a reactor
  // pass: an epoll_wait with no timeout) for `spin`; only then sleep in the
  // reactor until one handler runs, and start over.
  while (!ioc_.stopped()) {
    if (ioc_.poll_one() != 0) continue;
    if (spin_until([this] { return ioc_.poll_one() != 0 || ioc_.stopped(); }, spin)) continue;
    ioc_.run_one();
  }
}

result<void> engine_core::stop() {
  if (auto ec = check_blocking_call()) return ec;
  std::lock_guard lock(lifecycle_);
  int expected = running;
  if (!state_.compare_exchange_strong(expected, stopped)) return {};
  running_.store(false);
  if (cluster_) cluster_->stop();
  for (auto& slot : slots_) {
    std::lock_guard slot_lock(slot->mutex);
    for (auto& rt : slot->runtimes) rt->flights.abandon_all(make_error_code(errc::stopped));
  }
  // Data-source calls running on callers' threads (fetch_on_caller_thread)
  // may start queued calls that post to the pool: wait for them first.
  for (int n = here_calls_.load(); n != 0; n = here_calls_.load()) here_calls_.wait(n);
  shutdown_threads();
  if (telemetry_) telemetry_->stop();  // sends what is queued, with the final metrics
  return {};
}

// Joins the blocking pool and the io_context threads. Server and client
// objects are destroyed here, after their last handler ran.
void engine_core::shutdown_threads() {
  if (pool_) pool_->join();
  if (cluster_threads_) cluster_threads_->join();
  deadlines_.stop();  // a pending deadline would keep the threads until it passed
  work_.reset();
  for (auto& t : threads_) t.join();
  threads_.clear();
  if (cluster_) cluster_->release();
  pool_.reset();
  cluster_threads_.reset();
}

void engine_core::post_job(bool on_engine, const net::any_completion_executor& ex, job j) {
  auto deliver = [ex, j = std::move(j)]() mutable { dispatch_job(ex, std::move(j)); };
  if (on_engine) {
    net::post(ioc_.get_executor(), std::move(deliver));
  } else {
    net::post(net::system_executor(), std::move(deliver));
  }
}

error_code engine_core::check_blocking_call() const noexcept {
  if (current_engine == this) return make_error_code(errc::blocking_call_on_engine_thread);
  if (reads_in_progress != 0) [[unlikely]]
    return make_error_code(errc::call_inside_read);
  return {};
}

std::uint16_t engine_core::admin_port() const { return admin_port_.load(); }

std::string engine_core::self_name() const { return cluster_ ? cluster_->self_name() : "self"; }

std::vector<std::string> engine_core::cluster_peers() const {
  return cluster_ ? cluster_->alive_peers() : std::vector<std::string>{};
}

transport::server_stats engine_core::peer_server_stats() const {
  return cluster_ ? cluster_->server_stats() : transport::server_stats{};
}

transport::client_stats engine_core::peer_client_stats() const {
  return cluster_ ? cluster_->client_stats() : transport::client_stats{};
}

result<void> engine_core::reload_tls() {
  if (auto ec = check_blocking_call()) return ec;
  std::lock_guard lock(lifecycle_);
  error_code first;
  if (cluster_) {
    if (auto r = cluster_->reload_tls(); !r) first = r.error();
  }
  if (admin_) {
    if (auto r = admin_->reload_tls(); !r && !first) first = r.error();
  }
  if (first) return first;
  return {};
}

std::string engine_core::owner_of(std::string_view key) const {
  auto r = cluster_ ? cluster_->current() : solo_ring_;
  return r->nodes()[r->owner_index(hash_key(key))];
}

std::uint64_t engine_core::ring_version() const {
  return (cluster_ ? cluster_->current() : solo_ring_)->version();
}

// A node alone has no membership events; its subscribers are never called.
void engine_core::subscribe(std::function<void(const peer_event&)> on_event) {
  if (cluster_) cluster_->subscribe(std::move(on_event));
}

// ---------------------------------------------------------------- registry

keyspace_slot* engine_core::slot_named(std::string_view name) const noexcept {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : slots_[it->second].get();
}

error_code engine_core::check_state() const noexcept {
  if (reads_in_progress != 0) [[unlikely]]
    return make_error_code(errc::call_inside_read);
  const int s = state_.load(std::memory_order_acquire);
  if (s == running) return {};
  return make_error_code(s == created ? errc::not_started : errc::stopped);
}

error_code engine_core::check_key(std::string_view key) const noexcept {
  if (key.empty() || key.size() > cfg_.max_key_bytes) return make_error_code(errc::invalid_key);
  return {};
}

result<keyspace_runtime*> engine_core::runtime_for(std::size_t ks, std::string_view key) const {
  if (auto ec = check_state()) return ec;
  if (auto ec = check_key(key)) return ec;
  auto* rt = slots_[ks]->current.load(std::memory_order_acquire);
  if (rt == nullptr) return make_error_code(errc::keyspace_not_found);
  return rt;
}

result<void> engine_core::delete_keyspaces(const std::vector<std::string>& names) {
  if (auto ec = check_state()) return ec;
  for (const auto& n : names) {
    auto* slot = slot_named(n);
    if (slot == nullptr || slot->current.load(std::memory_order_acquire) == nullptr) {
      cfg_.log(log_level::warning,
               "delete_keyspace: '" + n.substr(0, 128) + "' is not a live keyspace of this engine");
      return make_error_code(errc::keyspace_not_found);
    }
  }
  for (const auto& n : names) {
    auto* slot = slot_named(n);
    auto scope = begin_op(static_cast<std::size_t>(by_name_.find(n)->second),
                          telemetry::operation::delete_keyspace, 1);
    slot->replace(nullptr);
    end_op(scope, {});
  }
  return {};
}

result<void> engine_core::update_keyspace(std::size_t ks, std::unique_ptr<keyspace_adapter> def) {
  if (auto ec = check_state()) return ec;
  auto scope = begin_op(ks, telemetry::operation::update_keyspace, 1);
  std::string why;
  auto rt = make_runtime(std::move(def), why);
  if (!rt) {
    cfg_.log(log_level::error, "update_keyspace: " + why);
    end_op(scope, make_error_code(errc::invalid_config));
    return make_error_code(errc::invalid_config);
  }
  // The new definition starts with empty caches: it warms the warm keys and
  // the keys the old one found hot.
  std::vector<std::string> hot;
  if (auto* prev = slots_[ks]->current.load(std::memory_order_acquire)) {
    hot = warm_candidates(*prev);
  }
  slots_[ks]->replace(std::move(rt));
  end_op(scope, {});
  warm(ks, std::move(hot), "update_keyspace");
  return {};
}

std::vector<std::string> engine_core::keyspaces() const {
  std::vector<std::string> out;
  for (const auto& slot : slots_) {
    if (slot->current.load(std::memory_order_acquire) != nullptr) out.push_back(slot->name);
  }
  return out;
}

keyspace_stats engine_core::stats(std::size_t ks) const {
  const auto& slot = *slots_[ks];
  const auto& c = slot.counters;
  keyspace_stats s;
  s.cache_hits = c.cache_hits.load();
  s.loads = c.loads.load();
  // Every get is a hit or a miss; counting it once keeps the hit path to
  // one shared-counter write.
  s.gets = s.cache_hits + s.loads;
  s.peer_loads = c.peer_loads.load();
  s.peer_errors = c.peer_errors.load();
  s.peer_waits = c.peer_waits.load();
  s.pushes_refused = c.pushes_refused.load();
  s.loads_deduped = c.loads_deduped.load();
  s.local_loads = c.local_loads.load();
  s.local_load_errs = c.local_load_errs.load();
  s.remove_keys_requests = c.remove_keys_requests.load();
  s.removed_keys = c.removed_keys.load();
  s.negative_hits = c.negative_hits.load();
  s.stale_served = c.stale_served.load();
  s.refreshes = c.refreshes.load();
  s.warmed_keys = c.warmed_keys.load();
  if (auto* rt = slot.current.load(std::memory_order_acquire)) {
    s.main_cache_bytes = rt->main.bytes();
    s.hot_cache_bytes = rt->hot.bytes();
    s.main_cache_items = rt->main.size();
    s.hot_cache_items = rt->hot.size();
    s.evictions = rt->main.evictions() + rt->hot.evictions();
    s.hot_refused = rt->hot.admissions_refused();
    rt->guard.fill_stats(s);
  }
  return s;
}

result<keyspace_stats> engine_core::stats(std::string_view name) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return make_error_code(errc::keyspace_not_found);
  return stats(it->second);
}

// ---------------------------------------------------------------- time

time_point engine_core::now() const noexcept {
  return cfg_.clock ? cfg_.clock->now() : clock_type::now();
}

// The expiry of a value stored now: `ttl` when > 0, else the keyspace's
// expires_at(), else its default TTL, else never.
time_point engine_core::expiry_for(const keyspace_runtime& rt, std::string_view key,
                                   duration ttl) const {
  if (ttl > duration::zero()) return now() + ttl;
  if (auto at = rt.adapter->expires_at(key)) return *at;
  if (rt.opts.default_ttl > duration::zero()) return now() + rt.opts.default_ttl;
  return never_expires;
}

time_point engine_core::from_ttl_ms(std::int64_t ttl_ms) const {
  if (ttl_ms < 0) return never_expires;
  return now() + std::chrono::milliseconds(ttl_ms);
}

std::int64_t engine_core::to_ttl_ms(time_point expires) const {
  if (expires == never_expires) return -1;
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(expires - now());
  return std::max<std::int64_t>(0, left.count());
}

}  // namespace distcache::detail

#endif  // DISTCACHE_CORE_IMPL_ENGINE_CORE_IPP
