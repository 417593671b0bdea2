// distcache — peer_service: what the HTTP server asks of the node behind it.
#ifndef DISTCACHE_TRANSPORT_PEER_SERVICE_HPP
#define DISTCACHE_TRANSPORT_PEER_SERVICE_HPP

#include <cstddef>
#include <cstdint>
#include <distcache/error.hpp>
#include <distcache/transport/wire.hpp>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace distcache::transport {

/// Who sent a peer request: the DC-From and DC-Ring-Version headers.
struct request_info {
  /// The sending node's name (DC-From); never empty.
  std::string_view from;
  /// The sender's ring version (DC-Ring-Version); 0 when absent.
  std::uint64_t ring_version = 0;
  /// How long the sender waits for the reply of a get or get-many, in ms
  /// (DC-Wait-Ms); 0 when absent. A node still loading a key when about three
  /// quarters of it have passed answers "loading" for it (docs/protocol.md).
  std::uint64_t wait_ms = 0;
  /// The W3C traceparent header as received (at most 128 bytes kept; empty
  /// when absent). Not checked by the server: a malformed value is ignored
  /// by the engine, which then starts a new trace.
  std::string_view traceparent;
  /// On a set: when the sender read the value it pushes, in ms since the
  /// Unix epoch by its clock (DC-Push-Read-Ms); 0 when absent (a put's set,
  /// stored unconditionally). A push is refused when a write of the key
  /// reached this node lately or the read is old (docs/protocol.md#set).
  std::uint64_t push_read_ms = 0;
};

/// The operations the HTTP server performs for its peers; the engine
/// implements it. Every request that reaches it came from a peer (it carries
/// DC-From), so an implementation answers locally and never forwards it.
///
/// Thread safety: members are called concurrently from the server's
/// io_context threads. None may block for long: get() completes
/// asynchronously; set(), remove() and invalidate() touch the local caches
/// only. No member may throw; an exception that escapes becomes a 500 reply
/// and a log line.
///
/// Lifetime: the service must outlive the server's sessions (see
/// http_server::stop() and http_server::wait_idle()), including any get()
/// whose `done` is still pending.
class peer_service {
 public:
  peer_service() = default;
  peer_service(const peer_service&) = delete;
  peer_service& operator=(const peer_service&) = delete;
  virtual ~peer_service() = default;

  /// True when `keyspace` is configured on this node (every string_view
  /// argument below is valid during the call only, unless said otherwise). Requests for other
  /// keyspaces get 404 with DC-Error: keyspace_not_found.
  [[nodiscard]] virtual bool has_keyspace(std::string_view keyspace) const = 0;

  /// Called once per keyspace request, before the operation itself, with the
  /// sender's headers (for example to notice a newer ring). The views are
  /// valid during the call only. The default does nothing.
  virtual void on_peer_request(const request_info& /*info*/) {}

  /// Looks up (and on a miss loads, as owner) `keys` of `keyspace`. Calls
  /// `done` exactly once, on any thread (also inline, from within get()),
  /// with one item per key in key order. Keys are non-empty and within
  /// max_key_bytes; there are at most max_batch of them. `keyspace` is valid
  /// until `done` is called. The connection waits for `done` without a
  /// deadline of its own: bound the load (the keyspace's read timeout).
  virtual void get(std::string_view keyspace, std::vector<std::string> keys,
                   std::function<void(std::vector<reply_item>)> done) = 0;

  /// get() with the request's headers (`info` is valid during the call
  /// only); the server calls this one. The default calls get(); the engine
  /// overrides it to continue the sender's trace.
  virtual void get_from(std::string_view keyspace, std::vector<std::string> keys,
                        const request_info& /*info*/,
                        std::function<void(std::vector<reply_item>)> done) {
    get(keyspace, std::move(keys), std::move(done));
  }

  /// Stores `value` under `key` in this node's main cache with remaining TTL
  /// `ttl_ms` (-1: never expires). A non-zero result is sent back to the
  /// sender as 422 with DC-Error naming the errc (codes of other categories
  /// become 500).
  virtual distcache::error_code set(std::string_view keyspace, std::string key, std::string value,
                                    std::int64_t ttl_ms) = 0;

  /// Removes `keys` from this node's caches; returns how many were present.
  virtual std::size_t remove(std::string_view keyspace, const std::vector<std::string>& keys) = 0;

  /// Drops `keys` from this node's caches (after a put on another node).
  virtual void invalidate(std::string_view keyspace, const std::vector<std::string>& keys) = 0;

  /// set(), remove() and invalidate() with the request's headers (`info` is
  /// valid during the call only); the server calls these. The defaults call
  /// the forms without it.
  virtual distcache::error_code set_from(std::string_view keyspace, std::string key,
                                         std::string value, std::int64_t ttl_ms,
                                         const request_info& /*info*/) {
    return set(keyspace, std::move(key), std::move(value), ttl_ms);
  }
  virtual std::size_t remove_from(std::string_view keyspace, const std::vector<std::string>& keys,
                                  const request_info& /*info*/) {
    return remove(keyspace, keys);
  }
  virtual void invalidate_from(std::string_view keyspace, const std::vector<std::string>& keys,
                               const request_info& /*info*/) {
    invalidate(keyspace, keys);
  }
};

}  // namespace distcache::transport

#endif  // DISTCACHE_TRANSPORT_PEER_SERVICE_HPP
