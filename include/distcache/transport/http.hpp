// distcache — the transport policy concept and the HTTP transport policy.
#ifndef DISTCACHE_TRANSPORT_HTTP_HPP
#define DISTCACHE_TRANSPORT_HTTP_HPP

#include <boost/asio/io_context.hpp>
#include <concepts>
#include <distcache/config.hpp>
#include <distcache/transport/http_client.hpp>
#include <distcache/transport/http_server.hpp>
#include <distcache/transport/peer_service.hpp>

namespace distcache::transport {

/// A transport policy names the server that answers peers and the client
/// that asks them.
///
/// A model provides `server_type`, constructible from (io_context&,
/// peer_service&, server_options, logger) with start(), stop() and port(),
/// and `client_type`, constructible from (io_context&, client_options,
/// logger) with the asynchronous get, set, remove, invalidate, health and
/// close operations of http_client. Why: the engine's cluster logic is
/// written once against these, and a test or an alternative wire (a
/// different framing, an in-process loopback) plugs in without touching it.
template <class T>
concept transport_policy = requires {
  typename T::server_type;
  typename T::client_type;
}
&&std::constructible_from<typename T::server_type, boost::asio::io_context&, peer_service&,
                          server_options, logger>&&
    std::constructible_from<typename T::client_type, boost::asio::io_context&, client_options,
                            logger>&& requires(typename T::server_type& s) {
  { s.start() } -> std::same_as<result<void>>;
  s.stop();
  { s.port() } -> std::convertible_to<std::uint16_t>;
};

/// HTTP/1.1 over TCP with Boost.Beast: protocol v1 (docs/protocol.md).
struct http {
  using server_type = http_server;
  using client_type = http_client;
};

}  // namespace distcache::transport

#endif  // DISTCACHE_TRANSPORT_HTTP_HPP
