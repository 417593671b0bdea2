// distcache — engine_core: measuring operations. Latency histograms per
// keyspace and operation (for /metrics and the exporters) and spans with W3C
// trace context (for the Telemetry policy's sink).
#ifndef DISTCACHE_CORE_IMPL_TELEMETRY_IPP
#define DISTCACHE_CORE_IMPL_TELEMETRY_IPP

#include <chrono>
#include <distcache/core/engine_core.hpp>
#include <random>
#include <thread>

namespace distcache::telemetry::detail {

/// Fast random ids: a per-thread splitmix64 seeded from std::random_device.
inline std::uint64_t random_u64() noexcept {
  thread_local std::uint64_t state = [] {
    std::uint64_t seed = 0;
    try {
      std::random_device rd;
      seed = (static_cast<std::uint64_t>(rd()) << 32U) ^ rd();
    } catch (...) {  // NOLINT(bugprone-empty-catch): fall back to time and thread
    }
    seed ^= static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    seed ^= std::hash<std::thread::id>{}(std::this_thread::get_id()) << 1U;
    return seed;
  }();
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30U)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27U)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31U);
}

template <std::size_t N>
void fill_random(std::array<std::uint8_t, N>& id) noexcept {
  for (std::size_t i = 0; i < N; i += 8) {
    std::uint64_t r = random_u64();
    for (std::size_t j = i; j < i + 8 && j < N; ++j) {
      id[j] = static_cast<std::uint8_t>(r);
      r >>= 8U;
    }
  }
  if (id[0] == 0) id[0] = 1;  // never all zero
}

}  // namespace distcache::telemetry::detail

namespace distcache::detail {

/// The name of an operation's span.
inline std::string_view span_name(telemetry::operation op, telemetry::span_kind kind) noexcept {
  using telemetry::operation;
  if (kind == telemetry::span_kind::server) {
    switch (op) {
      case operation::peer_set:
        return "distcache.peer.serve_set";
      case operation::peer_remove:
        return "distcache.peer.serve_remove";
      case operation::peer_invalidate:
        return "distcache.peer.serve_invalidate";
      default:
        return "distcache.peer.serve";
    }
  }
  switch (op) {
    case operation::get:
      return "distcache.get";
    case operation::get_many:
      return "distcache.get_many";
    case operation::put:
      return "distcache.put";
    case operation::put_many:
      return "distcache.put_many";
    case operation::remove:
      return "distcache.remove";
    case operation::remove_many:
      return "distcache.remove_many";
    case operation::update_keyspace:
      return "distcache.update_keyspace";
    case operation::delete_keyspace:
      return "distcache.delete_keyspace";
    case operation::fetch:
      return "distcache.fetch";
    case operation::peer_get:
      return "distcache.peer.get";
    case operation::peer_set:
      return "distcache.peer.set";
    case operation::peer_remove:
      return "distcache.peer.remove";
    case operation::peer_invalidate:
      return "distcache.peer.invalidate";
  }
  return "distcache.operation";
}

std::uint64_t engine_core::steady_ns() noexcept {
  return telemetry::detail::tick_clock::steady_ns();
}

op_scope engine_core::begin_op(keyspace_slot& slot, telemetry::operation op, std::size_t keys,
                               const telemetry::span_context* parent, telemetry::span_kind kind,
                               bool may_start_trace) noexcept {
  op_scope s;
  if (!observe_) return s;
  s.slot = &slot;
  s.op = op;
  s.kind = kind;
  s.keys = static_cast<std::uint32_t>(std::min<std::size_t>(keys, UINT32_MAX));
  s.start_ticks = telemetry::detail::tick_clock::ticks();
  if (!telemetry_) return s;
  const telemetry::span_context& p =
      parent != nullptr ? *parent : telemetry::scoped_parent::current();
  if (p.valid()) {
    s.context = p;  // an unsampled parent is passed on as it is
    s.parent_id = p.span_id;
    s.traced = p.sampled();
    if (s.traced) telemetry::detail::fill_random(s.context.span_id);
    return s;
  }
  if (!may_start_trace) return s;
  if (!sample_all_ && (sample_below_ == 0 || telemetry::detail::random_u64() >= sample_below_)) {
    return s;
  }
  s.traced = true;
  telemetry::detail::fill_random(s.context.trace_id);
  telemetry::detail::fill_random(s.context.span_id);
  s.context.flags = 1;
  return s;
}

void engine_core::finish_op(op_scope& s, error_code ec, std::string peer) noexcept {
  const std::uint64_t ns =
      telemetry::detail::tick_clock::to_ns(s.start_ticks, telemetry::detail::tick_clock::ticks());
  const bool failed = ec && ec != errc::not_found;
  if (s.kind != telemetry::span_kind::server) s.slot->latency[s.op].record(ns, failed);
  if (s.traced) {
    try {
      telemetry::span_record r;
      r.context = s.context;
      r.parent_id = s.parent_id;
      r.name = span_name(s.op, s.kind);
      r.kind = s.kind;
      r.end_unix_ns = steady_ns() + unix_offset_ns_;
      r.start_unix_ns = r.end_unix_ns - ns;
      r.keyspace = s.slot->name;
      r.op = s.op;
      r.keys = s.keys;
      r.peer = std::move(peer);
      r.error = failed;
      if (failed) r.status_message = ec.message();
      telemetry_->span(std::move(r));
    } catch (...) {  // NOLINT(bugprone-empty-catch): out of memory: the span is lost
    }
  }
  s.slot = nullptr;  // ended once
}

telemetry::metrics_snapshot engine_core::metrics_snapshot() const {
  telemetry::metrics_snapshot m;
  m.start_unix_ns = metrics_start_unix_ns_;
  m.time_unix_ns = steady_ns() + unix_offset_ns_;
  for (auto b : telemetry::detail::latency_bounds_ns) {
    m.bounds_s.push_back(static_cast<double>(b) / 1e9);
  }
  for (const auto& slot : slots_) {
    for (std::size_t i = 0; i < telemetry::operation_count; ++i) {
      telemetry::histogram_point p;
      p.keyspace = slot->name;
      p.op = static_cast<telemetry::operation>(i);
      slot->latency.by_op[i].read(p);
      if (p.count > 0) m.operations.push_back(std::move(p));
    }
    telemetry::keyspace_point k;
    k.keyspace = slot->name;
    k.cache_hits = slot->counters.cache_hits.load();
    k.cache_misses = slot->counters.loads.load();
    if (auto* rt = slot->current.load(std::memory_order_acquire)) {
      k.cache_bytes = rt->main.bytes() + rt->hot.bytes();
    }
    m.keyspaces.push_back(k);
  }
  m.peers = static_cast<std::int64_t>(cluster_peers().size());
  return m;
}

telemetry::exporter_stats engine_core::telemetry_stats() const noexcept {
  return telemetry_ ? telemetry_->stats() : telemetry::exporter_stats{};
}

}  // namespace distcache::detail

#endif  // DISTCACHE_CORE_IMPL_TELEMETRY_IPP
