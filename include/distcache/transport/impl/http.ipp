// distcache — transport::http definitions.
#ifndef DISTCACHE_TRANSPORT_IMPL_HTTP_IPP
#define DISTCACHE_TRANSPORT_IMPL_HTTP_IPP

#include <distcache/admin/admin_server.hpp>
#include <distcache/transport/http.hpp>
#include <distcache/transport/http_client.hpp>
#include <distcache/transport/http_server.hpp>

namespace distcache::transport {

std::unique_ptr<peer_server> http::make_server(net::io_context& ioc, peer_service& service,
                                               const server_options& options, const logger& log) {
  return std::make_unique<http_server>(ioc, service, options, log);
}

std::unique_ptr<peer_client> http::make_client(net::io_context& ioc, const client_options& options,
                                               const logger& log) {
  return std::make_unique<http_client>(ioc, options, log);
}

std::unique_ptr<admin::admin_service> http::make_admin(const admin_options& options,
                                                       admin::page_source pages,
                                                       const logger& log) {
  return std::make_unique<admin::admin_server>(options, std::move(pages), log);
}

}  // namespace distcache::transport

#endif  // DISTCACHE_TRANSPORT_IMPL_HTTP_IPP
