// distcache — engine and keyspace configuration, and its validation.
#ifndef DISTCACHE_CONFIG_HPP
#define DISTCACHE_CONFIG_HPP

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <distcache/clock.hpp>
#include <distcache/detail/format.hpp>
#include <distcache/protection/circuit_breaker.hpp>
#include <distcache/protection/token_bucket.hpp>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace distcache {

/// Severity of a log line.
enum class log_level { debug, info, warning, error };

/// Receives the engine's log lines. Called from any engine thread; must be
/// thread-safe and must not call back into the engine's blocking API.
using logger = std::function<void(log_level, std::string_view)>;

/// The default logger: warnings and errors to std::cerr, one line each.
inline void log_to_stderr(log_level level, std::string_view line) {
  if (level < log_level::warning) return;
  std::cerr << (level == log_level::error ? "distcache error: " : "distcache warning: ") << line
            << '\n';
}

namespace detail {

/// Sends `line` to `log` (empty: log_to_stderr); a logger that throws is
/// ignored, so logging never stops the thread that logs.
inline void log_quietly(const logger& log, log_level level, std::string_view line) noexcept {
  try {
    if (log) {
      log(level, line);
    } else {
      log_to_stderr(level, line);
    }
  } catch (...) {  // NOLINT(bugprone-empty-catch): see above
  }
}

}  // namespace detail

/// Warm-up (docs/freshness.md#warm-up): what a node does for its keys when
/// the ring changes, and for the warm keys at start() and after
/// update_keyspace().
struct warmup_options {
  /// Hot keys (basic_engine::hot_keys) a warm-up takes, most read first,
  /// besides the warm keys. 0..100000.
  std::size_t max_hot_keys = 100;
  /// The least frequency estimate of a hot key it takes. 1..15.
  unsigned min_hits = 1;
  /// Warm operations (source loads, pushes to a new owner) in flight per
  /// keyspace. 1..1024.
  std::size_t concurrency = 4;
  /// Bound of each key's operation; a load waits at most min(timeout,
  /// read_timeout). > 0.
  duration timeout = std::chrono::seconds(2);
  /// Warm up when a node joins the ring.
  bool warm_on_join = true;
  /// Warm up when a node leaves the ring.
  bool warm_on_leave = true;
};

/// Per-keyspace settings that override the keyspace definition or the engine
/// defaults. Every field is optional; an absent field keeps the default.
struct keyspace_options {
  /// Byte budget of the main cache (default: the keyspace's max_bytes). > 0.
  std::optional<std::int64_t> max_bytes;
  /// Byte budget of the hot cache, which holds copies of values received
  /// from the nodes that own them (default: max_bytes / 8). >= 0; 0
  /// disables the hot cache.
  std::optional<std::int64_t> hot_max_bytes;
  /// Number of shards of each cache, rounded up to a power of two (default:
  /// up to 16, keeping shards at least 256 KiB). 1..256.
  std::optional<std::size_t> shards;
  /// TTL of values whose expiry neither put() nor expires_at() gives
  /// (default: the engine's default_ttl). >= 0; 0 means no expiry.
  std::optional<duration> default_ttl;
  /// Negative caching: how long a not_found answer of the data source is
  /// cached (on the owner, and in the hot cache of a node that asked it) and
  /// answered without calling the source. >= 0; 0 (default) caches nothing.
  /// A put() of the key replaces it at once (docs/freshness.md).
  std::optional<duration> negative_ttl;
  /// Refresh-ahead: a hit on the owner's value older than this returns the
  /// value at once and starts one background reload. >= 0; 0 (default) never
  /// refreshes. Useful below the value's TTL (docs/freshness.md).
  std::optional<duration> refresh_after;
  /// Stale serving: for this long after a value expires, the owner still
  /// answers with it while one reload runs (stale-while-revalidate) and while
  /// reloads fail, are rate limited or the breaker is open (stale-if-error).
  /// >= 0; 0 (default) serves nothing expired (docs/freshness.md).
  std::optional<duration> max_stale;
  /// Hot-key tracking: a frequency sketch of this keyspace's reads, which
  /// admits values to the hot cache by frequency and names the hot keys
  /// (docs/freshness.md#hot-keys). Default true; false costs the hit path
  /// nothing and admits every value to the hot cache.
  std::optional<bool> track_hot_keys;
  /// Batched loads, for a data source with fetch_many (batch_data_source;
  /// ignored otherwise): most keys in one fetch_many call. 1..4096; default 64.
  std::optional<std::size_t> fetch_batch_keys;
  /// Longest time a key waits for others to join its fetch_many call; a
  /// full batch leaves at once. 0..1s; default 200us (docs/freshness.md).
  std::optional<duration> fetch_batch_wait;
  /// How long a get() waits for a load (default: the engine's). > 0.
  std::optional<duration> read_timeout;
  /// How long a put()/remove() may take (default: the engine's). > 0.
  std::optional<duration> write_timeout;
  /// Keys loaded in the background when the engine starts and after
  /// update_keyspace() (default: none). Each must be a valid key.
  std::optional<std::vector<std::string>> warm_keys;
  /// Replaces the engine's warmup for this keyspace.
  std::optional<warmup_options> warmup;
  /// Replaces the engine's rate_limiter for this keyspace.
  std::optional<protection::rate_limit> rate_limiter;
  /// Replaces the engine's circuit_breaker for this keyspace.
  std::optional<protection::circuit_breaker_options> circuit_breaker;
  /// Replaces the engine's max_concurrent_fetches for this keyspace.
  std::optional<std::size_t> max_concurrent_fetches;
};

/// TLS of a listener and of the connections it makes or accepts
/// (docs/security.md): cluster.tls for the peer transport, admin.tls for
/// the admin server. TLS 1.2 at least; 1.3 is chosen whenever both sides
/// have it. Files are PEM and are read again when they change (see
/// reload_interval) or on basic_engine::reload_tls().
struct tls_options {
  /// Use TLS. false (default): plaintext HTTP.
  bool enabled = false;
  /// This node's certificate chain, leaf first. For cluster.tls it serves
  /// both as the server's and as the client's certificate: its subject
  /// alternative names must hold the address other nodes dial (an IP SAN
  /// for an IP address, a DNS SAN for a host name). Required when enabled.
  std::string certificate_file;
  /// The private key of certificate_file. Required when enabled.
  std::string private_key_file;
  /// The CAs trusted for the other side's certificate: peers' server and
  /// client certificates (cluster.tls), admin clients' certificates
  /// (admin.tls). Required for cluster.tls; for admin.tls only when
  /// require_client_certificate.
  std::string ca_file;
  /// Mutual TLS: a client must present a certificate that ca_file
  /// verifies, or the handshake fails. On by default.
  bool require_client_certificate = true;
  /// How often the files are checked for a change (modification time,
  /// size, inode); a change loads them again, and connections opened from
  /// then on use them. 0 checks only on reload_tls(). >= 0.
  duration reload_interval = std::chrono::seconds(10);
};

/// How a node joins and watches its cluster. Used only when `enabled`.
struct cluster_options {
  /// Serve peers over HTTP and use the discovery provider. false (default):
  /// a single node with no listening socket.
  bool enabled = false;
  /// Address the peer server binds to. A numeric IPv4 or IPv6 address.
  std::string bind_address = "127.0.0.1";
  /// Port of the peer server; 0 lets the OS choose (see the engine's
  /// self_name()).
  std::uint16_t port = 0;
  /// Address other nodes reach this one at; empty means bind_address.
  std::string advertise_address;
  /// The cluster this node belongs to. Every request between nodes and every
  /// health probe carries it; a node of another cluster (found through the
  /// same DNS name, say) is refused and never enters the ring. 1..64
  /// characters of [A-Za-z0-9._-].
  std::string name = "distcache";
  /// Points per node on the hash ring. 1..4096. The default keeps the
  /// busiest of 3, 5 or 10 nodes under 1.15x the mean load (docs/performance.md).
  std::size_t virtual_nodes = 512;
  /// Longest time start() waits for minimum_peers_quorum. > 0.
  duration bootstrap_timeout = std::chrono::seconds(10);
  /// Pause between two discovery rounds while joining. > 0.
  duration join_retry_interval = std::chrono::milliseconds(200);
  /// Most discovery rounds start() makes while joining. >= 1.
  int max_join_attempts = 50;
  /// Nodes (this one included) that must answer before start() succeeds;
  /// fewer gives errc::cluster_quorum. >= 1.
  std::size_t minimum_peers_quorum = 1;
  /// Pause between two discovery rounds once running. > 0.
  duration discovery_interval = std::chrono::seconds(5);
  /// Pause between two health probes of every known peer. > 0.
  duration probe_interval = std::chrono::milliseconds(500);
  /// Failed requests or probes in a row after which a peer leaves the ring. >= 1.
  int failure_threshold = 2;
  /// Timeout of a health probe and of connecting to a peer. > 0.
  duration peer_timeout = std::chrono::seconds(1);
  /// Bound of the bytes that peers' requests being read or handled hold on
  /// this node (their bodies); a request that does not fit is answered 503
  /// before its body is read (docs/security.md). >= 1.
  std::size_t max_inflight_bytes = std::size_t{256} << 20;
  /// Connections one remote IP address may have open to the peer server;
  /// one more is answered 503 and closed. >= 1.
  std::size_t max_connections_per_address = 256;
  /// TLS between nodes (off by default): every node of a cluster must use
  /// it or none. Mutual unless tls.require_client_certificate is false.
  tls_options tls;
};

/// The admin HTTP server (docs/operations.md): a listener of its own that
/// answers GET requests for peers, keyspaces, health, readiness and
/// Prometheus metrics.
struct admin_options {
  /// Serve the admin endpoints. false (default): no admin listener.
  bool enabled = false;
  /// Numeric IPv4 or IPv6 address it binds to; loopback by default.
  std::string bind_address = "127.0.0.1";
  /// Its port; 0 lets the OS choose (see the engine's admin_port()).
  std::uint16_t port = 0;
  /// Where the endpoints live: base_path + "/peers", "/keyspaces",
  /// "/healthz", "/readyz", "/metrics". Starts with '/', no trailing '/'.
  std::string base_path = "/_distcache/admin";
  /// When not empty, every request needs "Authorization: Bearer <token>"
  /// (401 otherwise).
  std::string token;
  /// Bound of reading one request, and of a keep-alive connection's idle time. > 0.
  duration read_timeout = std::chrono::seconds(5);
  /// Largest request head (request line and headers) accepted; larger
  /// gets 431. 1024..1048576.
  std::size_t max_header_bytes = 8192;
  /// TLS of the admin listener (off by default). With
  /// require_client_certificate (the default) clients need a certificate
  /// from ca_file; set it to false to rely on `token` alone.
  tls_options tls;
};

/// Where telemetry::otlp sends spans and metrics: an OpenTelemetry
/// Collector's OTLP/HTTP receiver (docs/operations.md).
struct otlp_options {
  /// Base URL, "http://host:port" with an optional path prefix; the exporter
  /// posts to <endpoint>/v1/traces and <endpoint>/v1/metrics. Plain HTTP only
  /// (run the collector beside the node).
  std::string endpoint = "http://127.0.0.1:4318";
  /// Extra request headers (for example an API key). Names are HTTP tokens;
  /// values hold no CR, LF or NUL.
  std::map<std::string, std::string, std::less<>> headers;
  /// How often queued spans and the metrics are sent. > 0.
  duration export_interval = std::chrono::seconds(5);
  /// Bound of one export request (connect, send, answer). > 0.
  duration timeout = std::chrono::seconds(2);
  /// Spans kept while waiting for the next export; beyond it new spans are
  /// dropped and counted. 1..1048576.
  std::size_t max_queue_spans = 2048;
  /// Most spans in one request. 1..max_queue_spans.
  std::size_t max_batch_spans = 512;
};

/// Telemetry settings (the Telemetry policy, docs/operations.md).
struct telemetry_options {
  /// The resource attribute service.name.
  std::string service_name = "distcache";
  /// Share of operations that start a new trace, 0..1. An operation whose
  /// parent (a peer's traceparent, telemetry::scoped_parent) is sampled is
  /// always traced; one whose parent is not sampled never is.
  double trace_sample_ratio = 0.1;
  /// Export spans.
  bool traces = true;
  /// Export metrics.
  bool metrics = true;
  /// The OTLP exporter (telemetry::otlp).
  otlp_options otlp;
};

/// Engine configuration. Validated by the engine's constructor, which throws
/// config_error naming the field and the value.
struct config {
  /// Threads running the engine's io_context; 0 means
  /// std::thread::hardware_concurrency(). 0..1024.
  std::size_t threads = 0;
  /// Threads of the blocking pool that runs data-source fetches; 0 means 8.
  /// 0..1024.
  std::size_t fetch_threads = 0;
  /// Default time a get() waits for a load. > 0.
  duration read_timeout = std::chrono::seconds(5);
  /// Default time a write (put, remove) may take. > 0.
  duration write_timeout = std::chrono::seconds(5);
  /// Default TTL of values that get no expiry otherwise; 0 means no expiry.
  /// >= 0.
  duration default_ttl = duration::zero();
  /// Longest key accepted, in bytes. 1..65536.
  std::size_t max_key_bytes = 1024;
  /// Per-keyspace overrides, by keyspace name. Every name must be one of the
  /// engine's keyspaces.
  std::map<std::string, keyspace_options, std::less<>> keyspaces;
  /// The clock expiry is measured against; null means the steady clock.
  std::shared_ptr<const clock_source> clock;
  /// Where log lines go; empty means log_to_stderr.
  logger log;
  /// Cluster membership and the peer server.
  cluster_options cluster;
  /// The admin HTTP server (off by default).
  admin_options admin;
  /// Telemetry (default: none). Needs a Telemetry policy other than
  /// telemetry::none, which uses its defaults when this is not set.
  std::optional<telemetry_options> telemetry;
  /// Warm-up of every keyspace (docs/freshness.md#warm-up).
  warmup_options warmup;
  /// Rate limit of every keyspace's data-source calls (default: none).
  /// Needs the protection::token_bucket RateLimiter policy.
  std::optional<protection::rate_limit> rate_limiter;
  /// Circuit breaker of every keyspace's data source (default: none).
  /// Needs the protection::circuit_breaker CircuitBreaker policy.
  std::optional<protection::circuit_breaker_options> circuit_breaker;
  /// Most data-source calls in flight per keyspace; 0 means unlimited.
  /// Beyond it, loads wait up to the read timeout in arrival order.
  std::size_t max_concurrent_fetches = 0;
};

namespace detail {

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

}  // namespace detail

}  // namespace distcache

#endif  // DISTCACHE_CONFIG_HPP
