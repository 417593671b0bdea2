// distcache — transport::https: transport::http with TLS from OpenSSL for
// the peer transport (config.cluster.tls) and the admin server
// (config.admin.tls). Link OpenSSL (libssl, libcrypto).
#ifndef DISTCACHE_TRANSPORT_HTTPS_HPP
#define DISTCACHE_TRANSPORT_HTTPS_HPP

#include <distcache/admin/admin_server.hpp>
#include <distcache/config.hpp>
#include <distcache/transport/detail/openssl_tls.hpp>
#include <distcache/transport/http.hpp>
#include <distcache/transport/http_client.hpp>
#include <distcache/transport/http_server.hpp>
#include <memory>

namespace distcache::transport {

/// HTTP/1.1 with Boost.Beast, protocol v1, and TLS with OpenSSL: what
/// transport::http does, plus TLS wherever config.cluster.tls or
/// config.admin.tls is enabled (docs/security.md). With both off it is
/// transport::http. Header-only in both modes of the library: a program
/// that includes this header parses Beast and must link OpenSSL
/// (`OpenSSL::SSL` with CMake, `dependency('openssl')` with Meson,
/// `-lssl -lcrypto`).
struct https {
  /// This transport can do TLS (the engine refuses cluster.tls and
  /// admin.tls with a transport that cannot).
  static constexpr bool supports_tls = true;

  static std::shared_ptr<const distcache::detail::tls_backend> tls_library() {
    static const auto library = std::make_shared<const distcache::detail::openssl_backend>();
    return library;
  }
  static std::unique_ptr<peer_server> make_server(net::io_context& ioc, peer_service& service,
                                                  const server_options& options,
                                                  const logger& log) {
    return std::make_unique<http_server>(ioc, service, options, log, tls_library());
  }
  static std::unique_ptr<peer_client> make_client(net::io_context& ioc,
                                                  const client_options& options,
                                                  const logger& log) {
    return std::make_unique<http_client>(ioc, options, log, tls_library());
  }
  static std::unique_ptr<admin::admin_service> make_admin(const admin_options& options,
                                                          admin::page_source pages,
                                                          const logger& log) {
    return std::make_unique<admin::admin_server>(options, std::move(pages), log, tls_library());
  }
};

}  // namespace distcache::transport

#endif  // DISTCACHE_TRANSPORT_HTTPS_HPP
