// distcache — the engine's admin pages (docs/operations.md): peers,
// keyspaces, health, readiness as JSON, and the Prometheus text exposition.
#ifndef DISTCACHE_CORE_IMPL_ADMIN_PAGES_IPP
#define DISTCACHE_CORE_IMPL_ADMIN_PAGES_IPP

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <distcache/core/engine_core.hpp>
#include <string>

namespace distcache::detail {

namespace admin_detail {

inline std::int64_t ms(duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

inline std::string json_reply_body(const boost::json::value& v) {
  return boost::json::serialize(v) + "\n";
}

/// A Prometheus label value: backslash, double quote and newline escaped.
inline std::string label(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

/// One metric family of the text exposition, a sample per keyspace.
class family {
 public:
  family(std::string& out, std::string_view name, std::string_view type, std::string_view help)
      : out_(out), name_(name) {
    out_.append("# HELP ").append(name).append(" ").append(help).append("\n");
    out_.append("# TYPE ").append(name).append(" ").append(type).append("\n");
  }
  void sample(std::string_view labels, double value) {
    out_.append(name_);
    if (!labels.empty()) out_.append("{").append(labels).append("}");
    char buf[64];
    const int n = std::snprintf(buf, sizeof buf, " %.17g\n", value);
    out_.append(buf, static_cast<std::size_t>(n));
  }

 private:
  std::string& out_;
  std::string name_;
};

}  // namespace admin_detail

admin::reply engine_core::admin_page(std::string_view endpoint) const {
  namespace json = boost::json;
  using admin_detail::json_reply_body;
  using admin_detail::ms;
  if (endpoint == "healthz") return {200, "application/json", "{\"status\":\"ok\"}\n"};
  const int state = state_.load();
  if (endpoint == "readyz") {
    std::string reason;
    if (state == stopped) {
      reason = "stopped";
    } else if (starting_.load()) {
      reason = "starting: joining the cluster";
    } else if (state != running) {
      reason = "not started";
    } else if (cluster_) {
      const std::size_t have = 1 + cluster_->alive_peers().size();
      if (have < cfg_.cluster.minimum_peers_quorum) {
        reason = "quorum not met: " + std::to_string(have) + " of the " +
                 std::to_string(cfg_.cluster.minimum_peers_quorum) +
                 " nodes of minimum_peers_quorum answer";
      }
    }
    json::object o;
    o["ready"] = reason.empty();
    if (!reason.empty()) o["reason"] = reason;
    return {reason.empty() ? 200U : 503U, "application/json", json_reply_body(o)};
  }
  if (endpoint == "peers") {
    json::object o;
    o["self"] = self_name();
    o["cluster_enabled"] = cluster_ != nullptr;
    if (cluster_) o["cluster"] = cfg_.cluster.name;
    o["ring_version"] = ring_version();
    json::array members;
    std::size_t in_ring = 1;
    if (cluster_) {
      const auto now = std::chrono::steady_clock::now();
      for (const auto& m : cluster_->members()) {
        json::object p;
        p["address"] = m.address;
        p["state"] = m.in_ring ? "alive" : (m.last_seen ? "unreachable" : "not yet seen");
        p["in_ring"] = m.in_ring;
        p["failures"] = m.failures;
        if (m.last_seen) {
          p["last_seen_ms_ago"] = ms(std::chrono::duration_cast<duration>(now - *m.last_seen));
        } else {
          p["last_seen_ms_ago"] = nullptr;
        }
        if (m.in_ring) ++in_ring;
        members.push_back(std::move(p));
      }
    }
    o["ring_size"] = in_ring;
    o["members"] = std::move(members);
    return {200, "application/json", json_reply_body(o)};
  }
  if (endpoint == "keyspaces") {
    json::array list;
    for (std::size_t ks = 0; ks < slots_.size(); ++ks) {
      const auto& slot = *slots_[ks];
      const auto st = stats(ks);
      json::object k;
      k["name"] = slot.name;
      const auto* rt = slot.current.load(std::memory_order_acquire);
      k["deleted"] = rt == nullptr;
      if (rt != nullptr) {
        const auto& o = rt->opts;
        k["max_bytes"] = o.max_bytes;
        k["hot_max_bytes"] = o.hot_max_bytes;
        k["default_ttl_ms"] = ms(o.default_ttl);
        k["negative_ttl_ms"] = ms(o.negative_ttl);
        k["refresh_after_ms"] = ms(o.refresh_after);
        k["max_stale_ms"] = ms(o.max_stale);
        k["read_timeout_ms"] = ms(o.read_timeout);
        k["write_timeout_ms"] = ms(o.write_timeout);
        json::array warm;
        for (const auto& w : o.warm_keys) warm.emplace_back(w);
        k["warm_keys"] = std::move(warm);
      }
      k["main_cache_bytes"] = st.main_cache_bytes;
      k["hot_cache_bytes"] = st.hot_cache_bytes;
      k["main_cache_items"] = st.main_cache_items;
      k["hot_cache_items"] = st.hot_cache_items;
      k["circuit_state"] = std::string(protection::to_string(st.circuit_state));
      json::object s;
      s["gets"] = st.gets;
      s["cache_hits"] = st.cache_hits;
      s["peer_loads"] = st.peer_loads;
      s["peer_errors"] = st.peer_errors;
      s["peer_waits"] = st.peer_waits;
      s["loads"] = st.loads;
      s["loads_deduped"] = st.loads_deduped;
      s["local_loads"] = st.local_loads;
      s["local_load_errs"] = st.local_load_errs;
      s["remove_keys_requests"] = st.remove_keys_requests;
      s["removed_keys"] = st.removed_keys;
      s["negative_hits"] = st.negative_hits;
      s["stale_served"] = st.stale_served;
      s["refreshes"] = st.refreshes;
      s["warmed_keys"] = st.warmed_keys;
      s["pushes_refused"] = st.pushes_refused;
      s["evictions"] = st.evictions;
      s["hot_refused"] = st.hot_refused;
      s["rate_limited"] = st.rate_limited;
      s["overloaded"] = st.overloaded;
      s["circuit_rejected"] = st.circuit_rejected;
      s["fetches_in_flight"] = st.fetches_in_flight;
      s["fetches_queued"] = st.fetches_queued;
      k["stats"] = std::move(s);
      list.push_back(std::move(k));
    }
    json::object o;
    o["keyspaces"] = std::move(list);
    return {200, "application/json", json_reply_body(o)};
  }
  if (endpoint == "metrics") {
    using admin_detail::family;
    std::string out;
    std::vector<std::pair<std::string, keyspace_stats>> all;
    all.reserve(slots_.size());
    for (std::size_t ks = 0; ks < slots_.size(); ++ks) {
      all.emplace_back("keyspace=\"" + admin_detail::label(slots_[ks]->name) + "\"", stats(ks));
    }
    const auto counter = [&](std::string_view name, std::string_view help, auto field) {
      family f(out, name, "counter", help);
      for (const auto& [labels, st] : all) f.sample(labels, static_cast<double>(field(st)));
    };
    counter("distcache_gets_total", "Get requests, hits and misses (each key of get_many).",
            [](const keyspace_stats& s) { return s.gets; });
    counter("distcache_cache_hits_total", "Gets answered from the main or hot cache.",
            [](const keyspace_stats& s) { return s.cache_hits; });
    counter("distcache_loads_total", "Gets that missed the caches.",
            [](const keyspace_stats& s) { return s.loads; });
    counter("distcache_loads_deduped_total", "Loads after singleflight: one per flight.",
            [](const keyspace_stats& s) { return s.loads_deduped; });
    counter("distcache_peer_loads_total", "Misses answered by the owning peer.",
            [](const keyspace_stats& s) { return s.peer_loads; });
    counter("distcache_peer_errors_total", "Requests to a peer that failed.",
            [](const keyspace_stats& s) { return s.peer_errors; });
    counter("distcache_peer_waits_total",
            "Keys asked from their owner again because it was still loading them.",
            [](const keyspace_stats& s) { return s.peer_waits; });
    counter("distcache_local_loads_total", "Data-source calls that returned a value.",
            [](const keyspace_stats& s) { return s.local_loads; });
    counter("distcache_local_load_errors_total",
            "Data-source calls that failed (not_found excluded).",
            [](const keyspace_stats& s) { return s.local_load_errs; });
    counter("distcache_remove_requests_total", "remove and remove_many calls received.",
            [](const keyspace_stats& s) { return s.remove_keys_requests; });
    counter("distcache_removed_keys_total", "Keys present and removed.",
            [](const keyspace_stats& s) { return s.removed_keys; });
    counter("distcache_negative_hits_total", "Gets answered not_found from a cached not_found.",
            [](const keyspace_stats& s) { return s.negative_hits; });
    counter("distcache_stale_served_total", "Expired values served within max_stale.",
            [](const keyspace_stats& s) { return s.stale_served; });
    counter("distcache_refreshes_total",
            "Background reloads started by refresh-ahead and stale hits.",
            [](const keyspace_stats& s) { return s.refreshes; });
    counter("distcache_warmed_keys_total",
            "Keys a warm-up loaded, moved to the main cache or pushed to their owner.",
            [](const keyspace_stats& s) { return s.warmed_keys; });
    counter("distcache_pushes_refused_total",
            "Warm-up pushes not stored: the key was written here lately, or the push was old.",
            [](const keyspace_stats& s) { return s.pushes_refused; });
    counter("distcache_rate_limited_total", "Loads refused by the rate limiter.",
            [](const keyspace_stats& s) { return s.rate_limited; });
    counter("distcache_overloaded_total",
            "Loads refused at once because max_queued_fetches loads waited already.",
            [](const keyspace_stats& s) { return s.overloaded; });
    counter("distcache_circuit_rejected_total", "Loads the open circuit breaker refused.",
            [](const keyspace_stats& s) { return s.circuit_rejected; });
    {
      family f(out, "distcache_cache_bytes", "gauge", "Bytes charged in a cache now.");
      for (const auto& [labels, st] : all) {
        f.sample(labels + ",cache=\"main\"", static_cast<double>(st.main_cache_bytes));
        f.sample(labels + ",cache=\"hot\"", static_cast<double>(st.hot_cache_bytes));
      }
    }
    {
      family f(out, "distcache_cache_items", "gauge", "Entries in a cache now.");
      for (const auto& [labels, st] : all) {
        f.sample(labels + ",cache=\"main\"", static_cast<double>(st.main_cache_items));
        f.sample(labels + ",cache=\"hot\"", static_cast<double>(st.hot_cache_items));
      }
    }
    {
      family f(out, "distcache_evictions_total", "counter",
               "Entries evicted for room, main and hot (current definition).");
      for (const auto& [labels, st] : all) f.sample(labels, static_cast<double>(st.evictions));
    }
    {
      family f(out, "distcache_hot_refused_total", "counter",
               "Peers' values the hot cache's admission filter kept out (current definition).");
      for (const auto& [labels, st] : all) f.sample(labels, static_cast<double>(st.hot_refused));
    }
    {
      family f(out, "distcache_fetches_in_flight", "gauge", "Data-source calls running now.");
      for (const auto& [labels, st] : all) {
        f.sample(labels, static_cast<double>(st.fetches_in_flight));
      }
    }
    {
      family f(out, "distcache_circuit_state", "gauge",
               "Circuit breaker state: 0 closed, 1 open, 2 half-open.");
      for (const auto& [labels, st] : all) {
        f.sample(labels, st.circuit_state == protection::breaker_state::closed ? 0.0
                         : st.circuit_state == protection::breaker_state::open ? 1.0
                                                                               : 2.0);
      }
    }
    {
      family f(out, "distcache_peers", "gauge", "Peers in the ring now (this node excluded).");
      f.sample({}, static_cast<double>(cluster_ ? cluster_->alive_peers().size() : 0));
    }
    {
      const auto ps = peer_server_stats();
      const auto one = [&](std::string_view name, std::string_view type, std::string_view help,
                           double v) {
        family f(out, name, type, help);
        f.sample({}, v);
      };
      one("distcache_peer_connections", "gauge", "Connections open to the peer server now.",
          static_cast<double>(ps.connections_open));
      one("distcache_peer_connections_refused_total", "counter",
          "Peer connections refused: their address had max_connections_per_address open.",
          static_cast<double>(ps.connections_refused));
      one("distcache_peer_requests_refused_total", "counter",
          "Peer requests refused: their body did not fit max_inflight_bytes.",
          static_cast<double>(ps.requests_refused));
      one("distcache_peer_inflight_bytes", "gauge",
          "Bytes that peers' requests being read or handled hold now.",
          static_cast<double>(ps.inflight_bytes));
      // TLS between nodes (config.cluster.tls): both sides of each
      // connection count; zeros without TLS.
      const auto cs = peer_client_stats();
      {
        family f(out, "distcache_peer_tls_handshakes_total", "counter",
                 "TLS handshakes with peers, by side and outcome (full, resumed, failed).");
        const auto sides = [&f](std::string_view side, std::uint64_t total, std::uint64_t resumed,
                                std::uint64_t failed) {
          const std::string s = "side=\"" + std::string(side) + "\",outcome=\"";
          f.sample(s + "full\"", static_cast<double>(total >= resumed ? total - resumed : 0));
          f.sample(s + "resumed\"", static_cast<double>(resumed));
          f.sample(s + "failed\"", static_cast<double>(failed));
        };
        sides("server", ps.tls_handshakes, ps.tls_resumed, ps.tls_handshakes_failed);
        sides("client", cs.tls_handshakes, cs.tls_resumed, cs.tls_handshakes_failed);
      }
      {
        family f(out, "distcache_peer_tls_reloads_total", "counter",
                 "Loads of changed TLS files after the first, by side and outcome.");
        f.sample(R"(side="server",outcome="ok")", static_cast<double>(ps.tls_reloads));
        f.sample(R"(side="server",outcome="failed")", static_cast<double>(ps.tls_reload_failures));
        f.sample(R"(side="client",outcome="ok")", static_cast<double>(cs.tls_reloads));
        f.sample(R"(side="client",outcome="failed")", static_cast<double>(cs.tls_reload_failures));
      }
      // Coalescing (config.cluster.coalesce_in_flight).
      one("distcache_peer_coalesced_requests_total", "counter",
          "Requests to peers that carried more than one waiting call.",
          static_cast<double>(cs.coalesced_requests));
      one("distcache_peer_coalesced_calls_total", "counter",
          "Calls (gets, removes, invalidations) carried by coalesced requests.",
          static_cast<double>(cs.coalesced_calls));
      one("distcache_peer_calls_waiting", "gauge",
          "Calls waiting now for a request in flight to their peer to complete.",
          static_cast<double>(cs.calls_waiting));
      one("distcache_peer_slow_requests_total", "counter",
          "Requests to peers in flight past coalesce_slow_after (they stopped counting toward "
          "coalesce_in_flight).",
          static_cast<double>(cs.slow_requests));
    }
    {
      // Latency histograms: every operation measured since the engine was
      // built (an operation never run has no series).
      const auto m = metrics_snapshot();
      out.append(
          "# HELP distcache_operation_duration_seconds Latency of operations, data-source "
          "fetches (operation=\"fetch\") and requests to owners (operation=\"peer_get\").\n"
          "# TYPE distcache_operation_duration_seconds histogram\n");
      char buf[64];
      for (const auto& h : m.operations) {
        const std::string labels = "keyspace=\"" + admin_detail::label(h.keyspace) +
                                   "\",operation=\"" + std::string(telemetry::name(h.op)) + "\"";
        std::uint64_t cumulative = 0;
        for (std::size_t b = 0; b < h.bucket_counts.size(); ++b) {
          cumulative += h.bucket_counts[b];
          std::string le = "+Inf";
          if (b < m.bounds_s.size()) {
            const int n = std::snprintf(buf, sizeof buf, "%.17g", m.bounds_s[b]);
            le.assign(buf, static_cast<std::size_t>(n));
          }
          out.append("distcache_operation_duration_seconds_bucket{")
              .append(labels)
              .append(",le=\"")
              .append(le)
              .append("\"} ")
              .append(std::to_string(cumulative))
              .append("\n");
        }
        const int n = std::snprintf(buf, sizeof buf, "%.17g", static_cast<double>(h.sum_ns) / 1e9);
        out.append("distcache_operation_duration_seconds_sum{")
            .append(labels)
            .append("} ")
            .append(buf, static_cast<std::size_t>(n))
            .append("\n");
        out.append("distcache_operation_duration_seconds_count{")
            .append(labels)
            .append("} ")
            .append(std::to_string(h.count))
            .append("\n");
      }
      family errors(out, "distcache_operation_errors_total", "counter",
                    "Operations that failed (not_found is an answer, not a failure).");
      for (const auto& h : m.operations) {
        errors.sample("keyspace=\"" + admin_detail::label(h.keyspace) + "\",operation=\"" +
                          std::string(telemetry::name(h.op)) + "\"",
                      static_cast<double>(h.errors));
      }
    }
    if (telemetry_) {
      const auto t = telemetry_->stats();
      family(out, "distcache_telemetry_spans_exported_total", "counter",
             "Spans the collector accepted.")
          .sample({}, static_cast<double>(t.spans_exported));
      family(out, "distcache_telemetry_spans_dropped_total", "counter",
             "Spans dropped: queue full, or their export failed.")
          .sample({}, static_cast<double>(t.spans_dropped));
      family(out, "distcache_telemetry_exports_failed_total", "counter",
             "Export requests that failed (refused, timeout, non-2xx).")
          .sample({}, static_cast<double>(t.exports_failed));
    }
    {
      family f(out, "distcache_up", "gauge", "1 while the engine runs, else 0.");
      f.sample({}, state == running ? 1.0 : 0.0);
    }
    return {200, "text/plain; version=0.0.4; charset=utf-8", std::move(out)};
  }
  return {404, "text/plain", "no such admin endpoint\n"};
}

}  // namespace distcache::detail

#endif  // DISTCACHE_CORE_IMPL_ADMIN_PAGES_IPP
