// distcache — the TLS client side shared by the providers that speak TLS
// (discovery::kubernetes, discovery::nats): a verifying context and the
// check of the server's name. OpenSSL through Asio.
#ifndef DISTCACHE_DISCOVERY_DETAIL_TLS_CLIENT_HPP
#define DISTCACHE_DISCOVERY_DETAIL_TLS_CLIENT_HPP

#include <openssl/ssl.h>
#include <openssl/tls1.h>
#include <openssl/x509v3.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/context.hpp>
#include <distcache/detail/config.hpp>
#include <distcache/error.hpp>
#include <string>

namespace distcache::detail {

/// Sets up `ctx` (made with tls_client) to verify servers: TLS 1.2 at
/// least, the CAs of `ca_file` (empty: the system's), and with `cert_file`
/// and `key_file`, a client certificate. On failure says why.
inline error_code configure_tls_client(net::ssl::context& ctx, const std::string& ca_file,
                                       const std::string& cert_file, const std::string& key_file,
                                       std::string& why) {
  error_code ec;
  ctx.set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                  net::ssl::context::no_sslv3);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
  if (ca_file.empty()) {
    ctx.set_default_verify_paths(ec);
  } else {
    ctx.load_verify_file(ca_file, ec);
  }
  if (ec) {
    why =
        "cannot load the CA file " + (ca_file.empty() ? "(system)" : ca_file) + ": " + ec.message();
    return ec;
  }
  if (!cert_file.empty()) {
    if (ctx.use_certificate_chain_file(cert_file, ec); ec) {
      why = "cannot load the certificate " + cert_file + ": " + ec.message();
      return ec;
    }
    if (ctx.use_private_key_file(key_file, net::ssl::context::pem, ec); ec) {
      why = "cannot load the key " + key_file + ": " + ec.message();
      return ec;
    }
  }
  ctx.set_verify_mode(net::ssl::verify_peer);
  return {};
}

/// Makes the connection `ssl` verify the peer and require its certificate
/// to name `name` (an IP SAN for an address, else a DNS name, no partial
/// wildcards), and sends `name` as SNI when it is not an address. False
/// when OpenSSL cannot check that name (a scoped IPv6 address, a name too
/// long for SNI): the caller must not connect then, or any certificate of
/// the CA would do.
inline bool expect_server_name(SSL* ssl, const std::string& name) {
  SSL_set_verify(ssl, SSL_VERIFY_PEER, nullptr);  // the SSL was made before the context's mode
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  error_code ec;
  (void)net::ip::make_address(name, ec);
  if (!ec) return X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str()) == 1;
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  return X509_VERIFY_PARAM_set1_host(param, name.c_str(), 0) == 1 &&
         SSL_set_tlsext_host_name(ssl, name.c_str()) == 1;
}

}  // namespace distcache::detail

#endif  // DISTCACHE_DISCOVERY_DETAIL_TLS_CLIENT_HPP
