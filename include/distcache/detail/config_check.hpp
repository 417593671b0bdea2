// distcache — the checks of a config (validate_engine, validate_tls,
// resolve_keyspace with its per-keyspace overrides) and what they share:
// the messages name the field and the value. Included by config.hpp.
#ifndef DISTCACHE_DETAIL_CONFIG_CHECK_HPP
#define DISTCACHE_DETAIL_CONFIG_CHECK_HPP

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <distcache/clock.hpp>
#include <distcache/config.hpp>
#include <distcache/detail/format.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace distcache::detail {

/// The settings of one keyspace after overrides are applied.
struct resolved_keyspace {
  std::int64_t max_bytes = 0;
  std::int64_t hot_max_bytes = 0;
  std::size_t shards = 0;  // 0: derived from max_bytes
  duration default_ttl{};
  duration negative_ttl{};
  duration refresh_after{};
  duration max_stale{};
  bool track_hot_keys = true;
  std::size_t fetch_batch_keys = 64;
  duration fetch_batch_wait = std::chrono::microseconds(200);
  duration read_timeout{};
  duration write_timeout{};
  std::vector<std::string> warm_keys;
  warmup_options warmup;
  std::optional<protection::rate_limit> rate_limiter;
  std::optional<protection::circuit_breaker_options> circuit_breaker;
  std::size_t max_concurrent_fetches = 0;
  std::size_t max_queued_fetches = 0;
  bool fetch_on_caller_thread = false;
};

/// An "http://host:port/prefix" URL taken apart.
struct http_url {
  std::string host;  // IPv6 without its brackets
  std::uint16_t port = 80;
  std::string path;  // "" or "/prefix" without a trailing '/'
};

/// Parses a plain-HTTP URL; nullopt when it is not one.
inline std::optional<http_url> parse_http_url(std::string_view url) {
  constexpr std::string_view scheme = "http://";
  if (url.substr(0, scheme.size()) != scheme) return std::nullopt;
  url.remove_prefix(scheme.size());
  const auto slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  http_url out;
  if (slash != std::string_view::npos) {
    out.path = std::string(url.substr(slash));
    while (!out.path.empty() && out.path.back() == '/') out.path.pop_back();
    if (out.path.find_first_of(" ?#\r\n") != std::string::npos) return std::nullopt;
  }
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    out.host = std::string(authority.substr(1, close - 1));
    authority.remove_prefix(close + 1);
    if (!authority.empty()) {
      if (authority.front() != ':') return std::nullopt;
      port = authority.substr(1);
    }
  } else {
    const auto colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (out.host.empty() || out.host.find_first_of(" @/") != std::string::npos) return std::nullopt;
  if (!port.empty() || authority.find(':') != std::string_view::npos) {
    if (port.empty() || port.size() > 5) return std::nullopt;
    unsigned v = 0;
    for (char ch : port) {
      if (ch < '0' || ch > '9') return std::nullopt;
      v = v * 10 + static_cast<unsigned>(ch - '0');
    }
    if (v == 0 || v > 65535) return std::nullopt;
    out.port = static_cast<std::uint16_t>(v);
  }
  return out;
}

/// Why TLS options named `field` cannot be used: the engine's transport
/// has no TLS.
inline std::string tls_unavailable(std::string_view field) {
  return std::string(field) +
         ".enabled: true, but the engine's Transport policy has no TLS; build the engine with "
         "policies<Discovery, transport::https> (include <distcache/transport/https.hpp> and "
         "link OpenSSL)";
}

/// Checks TLS options named `field` (when enabled): the files are given
/// (`need_ca`: ca_file too) and reload_interval is not negative. Whether the
/// files load is checked when the listener starts.
inline std::string validate_tls(const tls_options& t, std::string_view field, bool need_ca) {
  if (!t.enabled) return {};
  const std::string f(field);
  if (t.certificate_file.empty()) return f + ".certificate_file: must be set when TLS is enabled";
  if (t.private_key_file.empty()) return f + ".private_key_file: must be set when TLS is enabled";
  if (need_ca && t.ca_file.empty())
    return f + ".ca_file: must be set when TLS is enabled" +
           (f.find("admin") != std::string::npos ? " with require_client_certificate" : "");
  if (t.reload_interval < duration::zero())
    return f + ".reload_interval: must be >= 0, got " + format_duration(t.reload_interval);
  return {};
}

/// Checks the engine-wide fields; returns an empty string or a message naming
/// the field and the value.
inline std::string validate_engine(const config& c) {
  if (c.threads > 1024)
    return "config.threads: must be at most 1024, got " + std::to_string(c.threads);
  if (c.fetch_threads > 1024)
    return "config.fetch_threads: must be at most 1024, got " + std::to_string(c.fetch_threads);
  if (c.spin_wait < duration::zero() || c.spin_wait > std::chrono::milliseconds(10))
    return "config.spin_wait: must be between 0 and 10ms, got " + format_duration(c.spin_wait);
  if (c.io_spin < duration::zero() || c.io_spin > std::chrono::milliseconds(10))
    return "config.io_spin: must be between 0 and 10ms, got " + format_duration(c.io_spin);
  if (c.read_timeout <= duration::zero())
    return "config.read_timeout: must be > 0, got " + format_duration(c.read_timeout);
  if (c.write_timeout <= duration::zero())
    return "config.write_timeout: must be > 0, got " + format_duration(c.write_timeout);
  if (c.default_ttl < duration::zero())
    return "config.default_ttl: must be >= 0, got " + format_duration(c.default_ttl);
  if (c.max_key_bytes < 1 || c.max_key_bytes > 65536)
    return "config.max_key_bytes: must be between 1 and 65536, got " +
           std::to_string(c.max_key_bytes);
  if (c.rate_limiter) {
    if (auto bad = protection::validate(*c.rate_limiter, "config.rate_limiter"); !bad.empty()) {
      return bad;
    }
  }
  if (c.circuit_breaker) {
    if (auto bad = protection::validate(*c.circuit_breaker, "config.circuit_breaker");
        !bad.empty()) {
      return bad;
    }
  }
  if (const auto& a = c.admin; a.enabled) {
    if (a.bind_address.empty()) return "config.admin.bind_address: must not be empty";
    if (auto bad = validate_tls(a.tls, "config.admin.tls", a.tls.require_client_certificate);
        !bad.empty())
      return bad;
    if (a.base_path.empty() || a.base_path.front() != '/' || a.base_path.back() == '/' ||
        a.base_path.find_first_of(" ?#\r\n") != std::string::npos) {
      return "config.admin.base_path: must start with '/', not end with '/' and hold no space, "
             "'?' or '#', got \"" +
             a.base_path.substr(0, 80) + "\"";
    }
    if (a.read_timeout <= duration::zero())
      return "config.admin.read_timeout: must be > 0, got " + format_duration(a.read_timeout);
    if (a.max_header_bytes < 1024 || a.max_header_bytes > 1048576)
      return "config.admin.max_header_bytes: must be between 1024 and 1048576, got " +
             std::to_string(a.max_header_bytes);
  }
  if (const auto& t = c.telemetry) {
    if (t->service_name.empty()) return "config.telemetry.service_name: must not be empty";
    if (!(t->trace_sample_ratio >= 0.0 && t->trace_sample_ratio <= 1.0))
      return "config.telemetry.trace_sample_ratio: must be between 0 and 1, got " +
             std::to_string(t->trace_sample_ratio);
    const auto& o = t->otlp;
    if (!parse_http_url(o.endpoint))
      return "config.telemetry.otlp.endpoint: must be http://host[:port][/path], got \"" +
             o.endpoint.substr(0, 120) + "\"";
    if (o.export_interval <= duration::zero())
      return "config.telemetry.otlp.export_interval: must be > 0, got " +
             format_duration(o.export_interval);
    if (o.timeout <= duration::zero())
      return "config.telemetry.otlp.timeout: must be > 0, got " + format_duration(o.timeout);
    if (o.max_queue_spans < 1 || o.max_queue_spans > 1048576)
      return "config.telemetry.otlp.max_queue_spans: must be between 1 and 1048576, got " +
             std::to_string(o.max_queue_spans);
    if (o.max_batch_spans < 1 || o.max_batch_spans > o.max_queue_spans)
      return "config.telemetry.otlp.max_batch_spans: must be between 1 and max_queue_spans (" +
             std::to_string(o.max_queue_spans) + "), got " + std::to_string(o.max_batch_spans);
    for (const auto& [name, value] : o.headers) {
      const bool token = !name.empty() && std::all_of(name.begin(), name.end(), [](char ch) {
        return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
               std::string_view("!#$%&'*+-.^_`|~").find(ch) != std::string_view::npos;
      });
      if (!token)
        return "config.telemetry.otlp.headers: \"" + name.substr(0, 80) +
               "\" is not an HTTP header name";
      if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos)
        return "config.telemetry.otlp.headers: the value of \"" + name + "\" holds CR, LF or NUL";
    }
  }
  const auto& k = c.cluster;
  if (k.enabled) {
    if (k.bind_address.empty()) return "config.cluster.bind_address: must not be empty";
    if (k.name.empty() || k.name.size() > 64 ||
        !std::all_of(k.name.begin(), k.name.end(), [](char ch) {
          return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '.' || ch == '_' || ch == '-';
        })) {
      return "config.cluster.name: must be 1-64 characters of [A-Za-z0-9._-], got \"" +
             k.name.substr(0, 80) + "\"";
    }
    if (k.virtual_nodes < 1 || k.virtual_nodes > 4096)
      return "config.cluster.virtual_nodes: must be between 1 and 4096, got " +
             std::to_string(k.virtual_nodes);
    if (k.bootstrap_timeout <= duration::zero())
      return "config.cluster.bootstrap_timeout: must be > 0, got " +
             format_duration(k.bootstrap_timeout);
    if (k.join_retry_interval <= duration::zero())
      return "config.cluster.join_retry_interval: must be > 0, got " +
             format_duration(k.join_retry_interval);
    if (k.max_join_attempts < 1)
      return "config.cluster.max_join_attempts: must be >= 1, got " +
             std::to_string(k.max_join_attempts);
    if (k.minimum_peers_quorum < 1)
      return "config.cluster.minimum_peers_quorum: must be >= 1, got 0";
    if (k.discovery_interval <= duration::zero())
      return "config.cluster.discovery_interval: must be > 0, got " +
             format_duration(k.discovery_interval);
    if (k.probe_interval <= duration::zero())
      return "config.cluster.probe_interval: must be > 0, got " + format_duration(k.probe_interval);
    if (k.failure_threshold < 1)
      return "config.cluster.failure_threshold: must be >= 1, got " +
             std::to_string(k.failure_threshold);
    if (k.peer_timeout <= duration::zero())
      return "config.cluster.peer_timeout: must be > 0, got " + format_duration(k.peer_timeout);
    if (k.max_inflight_bytes < 1) return "config.cluster.max_inflight_bytes: must be >= 1, got 0";
    if (k.max_connections_per_address < 1)
      return "config.cluster.max_connections_per_address: must be >= 1, got 0";
    if (k.coalesce_slow_after < duration::zero())
      return "config.cluster.coalesce_slow_after: must be >= 0, got " +
             format_duration(k.coalesce_slow_after);
    if (k.max_coalesced_keys < 1 || k.max_coalesced_keys > 1000)
      return "config.cluster.max_coalesced_keys: must be in [1, 1000], got " +
             std::to_string(k.max_coalesced_keys);
    if (k.write_memory <= duration::zero())
      return "config.cluster.write_memory: must be > 0, got " + format_duration(k.write_memory);
    if (k.write_memory_writes < 1) return "config.cluster.write_memory_writes: must be >= 1, got 0";
    if (auto bad = validate_tls(k.tls, "config.cluster.tls", true); !bad.empty()) return bad;
  }
  return {};
}

/// Applies the overrides of keyspace `name` (whose definition says
/// `def_max_bytes`) and validates the result. On error returns false and sets
/// `why` to a message naming the keyspace, the field and the value.
inline bool resolve_keyspace(const config& c, std::string_view name, std::int64_t def_max_bytes,
                             resolved_keyspace& out, std::string& why) {
  keyspace_options o;
  if (auto it = c.keyspaces.find(name); it != c.keyspaces.end()) o = it->second;
  const std::string field = "keyspace '" + std::string(name) + "': ";
  out.max_bytes = o.max_bytes.value_or(def_max_bytes);
  if (out.max_bytes <= 0) {
    why = field + (o.max_bytes ? "options.max_bytes" : "max_bytes") + ": must be > 0, got " +
          std::to_string(out.max_bytes);
    return false;
  }
  out.hot_max_bytes = o.hot_max_bytes.value_or(out.max_bytes / 8);
  if (out.hot_max_bytes < 0) {
    why = field + "options.hot_max_bytes: must be >= 0, got " + std::to_string(out.hot_max_bytes);
    return false;
  }
  out.shards = o.shards.value_or(0);
  if (o.shards && (*o.shards < 1 || *o.shards > 256)) {
    why = field + "options.shards: must be between 1 and 256, got " + std::to_string(*o.shards);
    return false;
  }
  out.default_ttl = o.default_ttl.value_or(c.default_ttl);
  if (out.default_ttl < duration::zero()) {
    why = field + "options.default_ttl: must be >= 0, got " + format_duration(out.default_ttl);
    return false;
  }
  const auto non_negative = [&](const std::optional<duration>& in, duration& to,
                                std::string_view name) {
    to = in.value_or(duration::zero());
    if (to >= duration::zero()) return true;
    why = field + "options." + std::string(name) + ": must be >= 0, got " + format_duration(to);
    return false;
  };
  if (!non_negative(o.negative_ttl, out.negative_ttl, "negative_ttl") ||
      !non_negative(o.refresh_after, out.refresh_after, "refresh_after") ||
      !non_negative(o.max_stale, out.max_stale, "max_stale")) {
    return false;
  }
  out.track_hot_keys = o.track_hot_keys.value_or(true);
  out.fetch_batch_keys = o.fetch_batch_keys.value_or(out.fetch_batch_keys);
  if (out.fetch_batch_keys < 1 || out.fetch_batch_keys > 4096) {
    why = field + "options.fetch_batch_keys: must be between 1 and 4096, got " +
          std::to_string(out.fetch_batch_keys);
    return false;
  }
  out.fetch_batch_wait = o.fetch_batch_wait.value_or(out.fetch_batch_wait);
  if (out.fetch_batch_wait < duration::zero() || out.fetch_batch_wait > std::chrono::seconds(1)) {
    why = field + "options.fetch_batch_wait: must be between 0 and 1s, got " +
          format_duration(out.fetch_batch_wait);
    return false;
  }
  out.read_timeout = o.read_timeout.value_or(c.read_timeout);
  if (out.read_timeout <= duration::zero()) {
    why = field + "options.read_timeout: must be > 0, got " + format_duration(out.read_timeout);
    return false;
  }
  out.write_timeout = o.write_timeout.value_or(c.write_timeout);
  if (out.write_timeout <= duration::zero()) {
    why = field + "options.write_timeout: must be > 0, got " + format_duration(out.write_timeout);
    return false;
  }
  out.rate_limiter = o.rate_limiter ? o.rate_limiter : c.rate_limiter;
  if (out.rate_limiter) {
    const std::string prefix =
        o.rate_limiter ? field + "options.rate_limiter" : "config.rate_limiter";
    if (auto bad = protection::validate(*out.rate_limiter, prefix); !bad.empty()) {
      why = bad;
      return false;
    }
  }
  out.circuit_breaker = o.circuit_breaker ? o.circuit_breaker : c.circuit_breaker;
  if (out.circuit_breaker) {
    const std::string prefix =
        o.circuit_breaker ? field + "options.circuit_breaker" : "config.circuit_breaker";
    if (auto bad = protection::validate(*out.circuit_breaker, prefix); !bad.empty()) {
      why = bad;
      return false;
    }
  }
  out.max_concurrent_fetches = o.max_concurrent_fetches.value_or(c.max_concurrent_fetches);
  out.max_queued_fetches = o.max_queued_fetches.value_or(c.max_queued_fetches);
  out.fetch_on_caller_thread = o.fetch_on_caller_thread.value_or(c.fetch_on_caller_thread);
  out.warmup = o.warmup.value_or(c.warmup);
  {
    const auto& w = out.warmup;
    const std::string prefix = o.warmup ? field + "options.warmup." : "config.warmup.";
    if (w.max_hot_keys > 100000) {
      why = prefix + "max_hot_keys: must be at most 100000, got " + std::to_string(w.max_hot_keys);
      return false;
    }
    if (w.min_hits < 1 || w.min_hits > 15) {
      why = prefix + "min_hits: must be between 1 and 15, got " + std::to_string(w.min_hits);
      return false;
    }
    if (w.concurrency < 1 || w.concurrency > 1024) {
      why =
          prefix + "concurrency: must be between 1 and 1024, got " + std::to_string(w.concurrency);
      return false;
    }
    if (w.timeout <= duration::zero()) {
      why = prefix + "timeout: must be > 0, got " + format_duration(w.timeout);
      return false;
    }
  }
  out.warm_keys = o.warm_keys.value_or(std::vector<std::string>{});
  for (const auto& k : out.warm_keys) {
    if (k.empty() || k.size() > c.max_key_bytes) {
      why = field + "options.warm_keys: invalid key '" + k.substr(0, 64) +
            "' (empty or longer than max_key_bytes)";
      return false;
    }
  }
  return true;
}

}  // namespace distcache::detail

#endif  // DISTCACHE_DETAIL_CONFIG_CHECK_HPP
