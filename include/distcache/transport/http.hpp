// distcache — transport::http: HTTP/1.1 with Boost.Beast, protocol v1.
#ifndef DISTCACHE_TRANSPORT_HTTP_HPP
#define DISTCACHE_TRANSPORT_HTTP_HPP

#include <distcache/admin/admin_service.hpp>
#include <distcache/config.hpp>
#include <distcache/detail/config.hpp>
#include <distcache/transport/peer.hpp>
#include <memory>

namespace distcache::transport {

/// HTTP/1.1 over TCP with Boost.Beast: protocol v1 (docs/protocol.md). The
/// server is an http_server, the client an http_client. With separate
/// compilation the Beast code lives in the compiled library only, so a
/// program that includes this header does not parse Beast.
struct http {
  DISTCACHE_DECL static std::unique_ptr<peer_server> make_server(net::io_context& ioc,
                                                                 peer_service& service,
                                                                 const server_options& options,
                                                                 const logger& log);
  DISTCACHE_DECL static std::unique_ptr<peer_client> make_client(net::io_context& ioc,
                                                                 const client_options& options,
                                                                 const logger& log);
  /// The admin HTTP server (config.admin), which comes with this policy.
  DISTCACHE_DECL static std::unique_ptr<admin::admin_service> make_admin(
      const admin_options& options, admin::page_source pages, const logger& log);
};

}  // namespace distcache::transport

#if DISTCACHE_HEADER_ONLY
#include <distcache/transport/impl/http.ipp>
#endif

#endif  // DISTCACHE_TRANSPORT_HTTP_HPP
