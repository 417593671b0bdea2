// distcache — the peer seams: what the engine asks of a transport (a client
// that talks to peers, a server that answers them), the transport_policy
// concept, and transport::none. No Boost.Beast here: a single-node program
// and a separately compiled cluster program never parse it.
#ifndef DISTCACHE_TRANSPORT_PEER_HPP
#define DISTCACHE_TRANSPORT_PEER_HPP

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <distcache/clock.hpp>
#include <distcache/config.hpp>
#include <distcache/detail/config.hpp>
#include <distcache/error.hpp>
#include <distcache/transport/peer_service.hpp>
#include <distcache/transport/protocol.hpp>
#include <distcache/transport/wire.hpp>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace distcache::transport {

/// Settings of a peer client (http_client).
struct client_options {
  /// This node's name, sent as DC-From on every request. Non-empty, visible
  /// ASCII only (it is an HTTP header value).
  std::string self_name;
  /// The cluster's name, sent as DC-Cluster on every request (health
  /// included); a server of another cluster answers 403 cluster_mismatch.
  std::string cluster_name = "distcache";
  /// Idle keep-alive connections kept per peer; more are closed when they
  /// finish. 0 disables reuse.
  std::size_t max_idle_per_peer = 64;
  /// How long opening a connection (and resolving a host name) may take,
  /// within the request's own timeout. > 0.
  duration connect_timeout = std::chrono::seconds(1);
  /// Bounds on what the client sends and accepts; use the same values as the
  /// peers' servers.
  wire_limits limits;
  /// Coalescing (docs/protocol.md#coalescing): gets, removes and
  /// invalidations in flight to one peer at once. While that many are, a
  /// further call waits, and the waiting calls of one keyspace and kind
  /// leave together as one request as soon as one of them completes. 0:
  /// never wait (one request per call, sent at once).
  std::size_t coalesce_in_flight = 4;
  /// A request in flight this long stops counting toward
  /// coalesce_in_flight: a peer that holds requests open (a stalled data
  /// source) then still gets the calls it can answer at once. 0: a request
  /// counts until it completes. >= 0.
  duration coalesce_slow_after = std::chrono::milliseconds(10);
  /// Keys one coalesced request carries at most; a call with more goes
  /// alone. 1..limits.max_batch.
  std::size_t max_coalesced_keys = 256;
  /// TLS (config.cluster.tls): when enabled every connection is TLS, the
  /// peer's certificate must chain to ca_file and name the host it was
  /// dialled at, and this side presents certificate_file. Sessions are
  /// resumed on reconnect.
  tls_options tls;
};

/// Settings of a peer server (http_server).
struct server_options {
  /// The IP address to listen on (numeric IPv4 or IPv6; no host names).
  std::string bind_address = "127.0.0.1";
  /// The TCP port; 0 lets the operating system choose (see port()).
  std::uint16_t port = 0;
  /// The cluster's name: a request (health included) whose DC-Cluster
  /// header differs, or is missing, is answered 403 with DC-Error:
  /// cluster_mismatch.
  std::string cluster_name = "distcache";
  /// How long one request may take to arrive once its first byte did
  /// (headers and body, however slowly they trickle in), and how long
  /// writing a response may take. A connection over it is closed. > 0.
  duration read_timeout = std::chrono::seconds(5);
  /// How long a keep-alive connection may wait for its next request. > 0.
  duration idle_timeout = std::chrono::seconds(60);
  /// Bounds on headers, bodies, keys, values and batches.
  wire_limits limits;
  /// Node-wide bound of the bytes that requests being read or handled hold
  /// (request bodies, and the copy a set makes of its value). A request
  /// whose Content-Length does not fit what is left is answered 503 with
  /// Connection: close before its body is read; a chunked body that outgrows
  /// it, when it does. Bodies over 64 KiB may use 7/8 of it: the rest is
  /// kept for small requests (gets), so that large writes cannot starve
  /// reads. >= 1.
  std::size_t max_inflight_bytes = std::size_t{256} << 20;
  /// Connections open at once from one remote IP address; one more is
  /// answered 503 with Connection: close at once. >= 1.
  std::size_t max_connections_per_address = 256;
  /// TLS (config.cluster.tls): when enabled every connection must complete
  /// a TLS handshake (with a client certificate from ca_file when
  /// require_client_certificate) before anything is read from it.
  tls_options tls;
};

/// What a peer server counted (peer_server::stats()).
struct server_stats {
  std::size_t connections_open = 0;         ///< connections open now
  std::uint64_t connections_accepted = 0;   ///< connections accepted since start
  std::uint64_t connections_refused = 0;    ///< over max_connections_per_address
  std::uint64_t requests_refused = 0;       ///< over max_inflight_bytes
  std::size_t inflight_bytes = 0;           ///< bytes requests in flight hold now
  std::size_t max_inflight_bytes = 0;       ///< the configured bound
  std::uint64_t tls_handshakes = 0;         ///< TLS handshakes completed (resumed included)
  std::uint64_t tls_resumed = 0;            ///< of them, resumed sessions
  std::uint64_t tls_handshakes_failed = 0;  ///< refused or broken handshakes
  std::uint64_t tls_reloads = 0;            ///< certificate loads after the first
  std::uint64_t tls_reload_failures = 0;    ///< loads that failed (the old files stay in use)
};

/// What a peer client counted (peer_client::stats()).
struct client_stats {
  std::uint64_t coalesced_requests = 0;  ///< requests that carried more than one call
  std::uint64_t coalesced_calls = 0;     ///< calls that travelled in them
  std::size_t calls_waiting = 0;         ///< calls waiting now (coalesce_in_flight reached)
  std::uint64_t slow_requests = 0;   ///< requests past coalesce_slow_after that stopped counting
  std::uint64_t tls_handshakes = 0;  ///< TLS handshakes completed (resumed included)
  std::uint64_t tls_resumed = 0;     ///< of them, resumed sessions
  std::uint64_t tls_handshakes_failed = 0;  ///< refused or broken handshakes
  std::uint64_t tls_reloads = 0;            ///< certificate loads after the first
  std::uint64_t tls_reload_failures = 0;    ///< loads that failed (the old files stay in use)
};

/// The client side of a transport: asks other nodes (groupcache's
/// ProtoGetter, with the writes beside it). Every operation takes the peer
/// as "host:port" and a timeout, and calls its callback exactly once, never
/// inline. http_client is the model; see its documentation for the errors.
///
/// Thread safety: every member may be called concurrently.
class peer_client {
 public:
  using get_handler = std::function<void(error_code, std::vector<reply_item>)>;
  using remove_handler = std::function<void(error_code, std::size_t)>;
  using handler = std::function<void(error_code)>;

  peer_client() = default;
  peer_client(const peer_client&) = delete;
  peer_client& operator=(const peer_client&) = delete;
  virtual ~peer_client() = default;

  /// Looks `keys` up on `peer`: one reply item per key, in key order.
  virtual void get(const std::string& peer, std::string_view keyspace,
                   std::vector<std::string> keys, std::uint64_t ring_version, duration timeout,
                   get_handler done) = 0;
  /// get() carrying the W3C `traceparent` value (empty: none), so the
  /// peer's spans join the caller's trace. The default drops it and calls
  /// get().
  virtual void get_traced(const std::string& peer, std::string_view keyspace,
                          std::vector<std::string> keys, std::uint64_t ring_version,
                          duration timeout, std::string_view /*traceparent*/, get_handler done) {
    get(peer, keyspace, std::move(keys), ring_version, timeout, std::move(done));
  }
  /// Stores `value` under `key` on `peer` with remaining TTL `ttl_ms` (-1: never).
  virtual void set(const std::string& peer, std::string_view keyspace, std::string_view key,
                   std::string value, std::int64_t ttl_ms, std::uint64_t ring_version,
                   duration timeout, handler done) = 0;
  /// Removes `keys` from `peer`'s caches; the callback gets how many it held.
  virtual void remove(const std::string& peer, std::string_view keyspace,
                      std::vector<std::string> keys, std::uint64_t ring_version, duration timeout,
                      remove_handler done) = 0;
  /// Drops `keys` from `peer`'s caches (after a put on this node).
  virtual void invalidate(const std::string& peer, std::string_view keyspace,
                          std::vector<std::string> keys, std::uint64_t ring_version,
                          duration timeout, handler done) = 0;
  /// set(), remove() and invalidate() carrying a W3C `traceparent` value
  /// (empty: none). The defaults drop it.
  virtual void set_traced(const std::string& peer, std::string_view keyspace, std::string_view key,
                          std::string value, std::int64_t ttl_ms, std::uint64_t ring_version,
                          duration timeout, std::string_view /*traceparent*/, handler done) {
    set(peer, keyspace, key, std::move(value), ttl_ms, ring_version, timeout, std::move(done));
  }
  virtual void remove_traced(const std::string& peer, std::string_view keyspace,
                             std::vector<std::string> keys, std::uint64_t ring_version,
                             duration timeout, std::string_view /*traceparent*/,
                             remove_handler done) {
    remove(peer, keyspace, std::move(keys), ring_version, timeout, std::move(done));
  }
  virtual void invalidate_traced(const std::string& peer, std::string_view keyspace,
                                 std::vector<std::string> keys, std::uint64_t ring_version,
                                 duration timeout, std::string_view /*traceparent*/, handler done) {
    invalidate(peer, keyspace, std::move(keys), ring_version, timeout, std::move(done));
  }
  /// A warm-up push: set() of a value this node read at `read_unix_ms`
  /// (milliseconds since the Unix epoch, by this node's clock), which the
  /// peer stores only when no write of the key reached it lately and the
  /// read is recent (docs/protocol.md#set). The default, for a transport that
  /// cannot carry the mark, sends a plain set(), which always stores.
  virtual void push(const std::string& peer, std::string_view keyspace, std::string_view key,
                    std::string value, std::int64_t ttl_ms, std::uint64_t ring_version,
                    std::uint64_t /*read_unix_ms*/, duration timeout, std::string_view traceparent,
                    handler done) {
    set_traced(peer, keyspace, key, std::move(value), ttl_ms, ring_version, timeout, traceparent,
               std::move(done));
  }
  /// Asks `peer` whether it serves.
  virtual void health(const std::string& peer, duration timeout, handler done) = 0;
  /// Ends every request in flight with errc::stopped, and every later one.
  virtual void close() = 0;
  /// Loads the TLS certificate, key and CAs again; connections opened from
  /// then on use them. On failure the old ones stay. The default (no TLS)
  /// does nothing.
  virtual result<void> reload_tls() { return {}; }
  /// Its counters; a transport that keeps none returns zeros.
  [[nodiscard]] virtual client_stats stats() const { return {}; }
};

/// The server side of a transport: answers other nodes through a
/// peer_service (groupcache's HTTPPool handler).
class peer_server {
 public:
  peer_server() = default;
  peer_server(const peer_server&) = delete;
  peer_server& operator=(const peer_server&) = delete;
  virtual ~peer_server() = default;

  /// Binds and listens; errors name the reason (bind failures, invalid_config).
  virtual result<void> start() = 0;
  /// Stops accepting and ends idle connections; returns at once. Idempotent.
  virtual void stop() = 0;
  /// The bound port; 0 before start().
  [[nodiscard]] virtual std::uint16_t port() const noexcept = 0;
  /// Its counters; a transport that keeps none returns zeros.
  [[nodiscard]] virtual server_stats stats() const { return {}; }
  /// Loads the TLS certificate, key and CAs again; connections accepted
  /// from then on use them, those open keep theirs. On failure the old ones
  /// stay. The default (no TLS) does nothing.
  virtual result<void> reload_tls() { return {}; }
};

/// A transport policy says how nodes talk.
///
/// A model provides two static factories:
/// - `make_server(net::io_context&, peer_service&, const server_options&,
///   const logger&) -> std::unique_ptr<peer_server>`;
/// - `make_client(net::io_context&, const client_options&, const logger&)
///   -> std::unique_ptr<peer_client>`.
/// Why: the engine's cluster logic is written once against the two seams,
/// and a test or another wire plugs in without touching it; the engine
/// itself never names the transport's types, so it is compiled without them.
/// Models: transport::http (<distcache/transport/http.hpp>), transport::none.
template <class T>
concept transport_policy = requires(net::io_context& ioc, peer_service& svc,
                                    const server_options& so, const client_options& co,
                                    const logger& log) {
  { T::make_server(ioc, svc, so, log) } -> std::convertible_to<std::unique_ptr<peer_server>>;
  { T::make_client(ioc, co, log) } -> std::convertible_to<std::unique_ptr<peer_client>>;
};

/// No transport: the engine runs alone. Its factories return null, and an
/// engine built with it refuses cluster.enabled at construction.
struct none {
  static std::unique_ptr<peer_server> make_server(net::io_context& /*ioc*/, peer_service& /*svc*/,
                                                  const server_options& /*options*/,
                                                  const logger& /*log*/) {
    return nullptr;
  }
  static std::unique_ptr<peer_client> make_client(net::io_context& /*ioc*/,
                                                  const client_options& /*options*/,
                                                  const logger& /*log*/) {
    return nullptr;
  }
};

/// HTTP/1.1 over TCP with Boost.Beast, protocol v1 (docs/protocol.md).
/// Declared here, defined by <distcache/transport/http.hpp>, which a program
/// that forms a cluster over HTTP includes (<distcache/distcache.hpp> does).
struct http;

/// transport::http with TLS from OpenSSL (config.cluster.tls,
/// config.admin.tls). Defined by <distcache/transport/https.hpp>, which a
/// program that uses TLS includes (and links OpenSSL); the umbrella header
/// does not.
struct https;

}  // namespace distcache::transport

#endif  // DISTCACHE_TRANSPORT_PEER_HPP
