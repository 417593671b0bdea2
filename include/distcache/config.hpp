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
  /// Replaces the engine's max_queued_fetches for this keyspace.
  std::optional<std::size_t> max_queued_fetches;
  /// Replaces the engine's fetch_on_caller_thread for this keyspace.
  std::optional<bool> fetch_on_caller_thread;
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
  /// Coalescing (docs/protocol.md#coalescing): gets, removes and
  /// invalidations this node has in flight to one peer at once. While that
  /// many are, further ones wait and leave together, one request per
  /// keyspace and kind, as soon as one completes. 0 turns coalescing off
  /// (every call sends its own request at once).
  std::size_t coalesce_in_flight = 4;
  /// A request in flight this long stops counting toward
  /// coalesce_in_flight, so that an owner holding requests open (its data
  /// source stalls) still gets at once the calls it answers at once. 0: a
  /// request counts until it completes. >= 0.
  duration coalesce_slow_after = std::chrono::milliseconds(10);
  /// Keys one coalesced request carries at most; a call with more keys
  /// goes alone. 1..1000.
  std::size_t max_coalesced_keys = 256;
  /// How long a node remembers the keys written on it (puts, removes,
  /// invalidations), per keyspace. A warm-up push of such a key is refused,
  /// and so is a push of a value its sender read more than half of it ago
  /// (by the sender's wall clock): writes win over warm-up
  /// (docs/reliability.md#writes-win-over-warm-up). > 0; keep it above twice
  /// the nodes' clock skew and a push's longest trip.
  duration write_memory = std::chrono::seconds(10);
  /// Writes a keyspace remembers at once. When more came within
  /// write_memory, every push is refused until write_memory has passed. >= 1.
  std::size_t write_memory_writes = 65536;
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
  /// How long an idle thread of the blocking pool (one at a time), and a
  /// blocking get() waiting for a load, spin before they sleep
  /// (docs/configuration.md#spinning): a fast data source's answer then
  /// needs no thread wake-up, at the price of up to this much CPU per load.
  /// 0 never spins. 0..10ms.
  duration spin_wait = std::chrono::microseconds(20);
  /// How long an idle io_context thread keeps polling for work, without
  /// blocking, before it sleeps in the reactor (docs/configuration.md#spinning):
  /// a request or reply that arrives meanwhile needs no wake-up of a sleeping
  /// thread, at the price of up to this much CPU per thread after each burst
  /// of work. Best with few io threads. 0 (default) never spins. 0..10ms.
  duration io_spin = duration::zero();
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
  /// Most loads that wait for a slot of max_concurrent_fetches, per
  /// keyspace; one more is refused at once with errc::overloaded (load
  /// shedding: under overload, callers fail fast instead of timing out,
  /// and the ones served wait less). 0 (default): no bound besides the read
  /// timeout. Meaningless without max_concurrent_fetches.
  std::size_t max_queued_fetches = 0;
  /// A blocking get() whose miss this node loads itself, and that leads the
  /// load, calls the data source on its own thread when the protection
  /// admits the call at once, instead of handing it to the blocking pool
  /// and waiting (docs/configuration.md#fetching-on-the-callers-thread).
  /// Saves two thread hand-offs per miss; the caller then waits for the
  /// data source however long it takes (read_timeout does not cut it
  /// short). Asynchronous gets and queued calls always use the pool.
  bool fetch_on_caller_thread = false;
};

}  // namespace distcache

// The checks and the resolution of these options.
#include <distcache/detail/config_check.hpp>

#endif  // DISTCACHE_CONFIG_HPP
