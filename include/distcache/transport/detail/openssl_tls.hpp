// distcache — the OpenSSL backend of the TLS API (tls_api.hpp), which
// transport::https uses: credentials from PEM files, and connections that
// OpenSSL encrypts into and decrypts from memory BIOs, so that the
// connection moves the bytes with the same socket calls as plaintext (a
// direct non-blocking write first, one read per arriving batch) rather than
// through asio::ssl::stream (docs/performance.md).
#ifndef DISTCACHE_TRANSPORT_DETAIL_OPENSSL_TLS_HPP
#define DISTCACHE_TRANSPORT_DETAIL_OPENSSL_TLS_HPP

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/tls1.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <boost/asio/error.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <distcache/detail/config.hpp>
#include <distcache/discovery/detail/tls_client.hpp>
#include <distcache/error.hpp>
#include <distcache/transport/detail/tls_api.hpp>
#include <memory>
#include <string>
#include <string_view>

namespace distcache::detail {

/// One TLS connection over OpenSSL with two memory BIOs. It keeps the
/// context it was made from alive.
class openssl_connection final : public tls_connection {
 public:
  openssl_connection(std::shared_ptr<net::ssl::context> ctx, bool server)
      : ctx_(std::move(ctx)), ssl_(SSL_new(ctx_->native_handle())) {
    if (ssl_ == nullptr) return;
    BIO* in = BIO_new(BIO_s_mem());
    BIO* out = BIO_new(BIO_s_mem());
    if (in == nullptr || out == nullptr) {
      BIO_free(in);
      BIO_free(out);
      SSL_free(ssl_);
      ssl_ = nullptr;
      return;
    }
    // An empty memory BIO says "retry" rather than end of file.
    BIO_set_mem_eof_return(in, -1);
    SSL_set_bio(ssl_, in, out);  // the SSL owns both
    // Header and body of a record in one read from the BIO rather than two.
    SSL_set_read_ahead(ssl_, 1);
    in_ = in;
    out_ = out;
    if (server) {
      SSL_set_accept_state(ssl_);
    } else {
      SSL_set_connect_state(ssl_);
    }
  }
  ~openssl_connection() override { SSL_free(ssl_); }

  /// False when OpenSSL could not make the connection (out of memory).
  [[nodiscard]] bool valid() const noexcept { return ssl_ != nullptr; }

  // OpenSSL's error queue is per thread and shared with every other user
  // of OpenSSL on it (discovery's TLS, the application): each call clears
  // it first, so that a stale error is not taken for this connection's.

  /// Advances the handshake: done, want_input (send output() first, then
  /// give it what arrives) or failed (error()).
  status handshake() override {
    clear_stale_errors();
    const int r = SSL_do_handshake(ssl_);
    if (r == 1) return status::done;
    return classify(r);
  }

  /// Decrypts into [data, data + size). done with `n` > 0 bytes, or
  /// want_input (nothing whole arrived yet), closed (the peer's
  /// close_notify) or failed.
  status read(char* data, std::size_t size, std::size_t& n) override {
    n = 0;
    // Nothing to decrypt: say so without asking OpenSSL, whose failed read
    // costs about as much as a successful one.
    if (!has_input()) return status::want_input;
    clear_stale_errors();
    const int r = SSL_read(ssl_, data, static_cast<int>(std::min<std::size_t>(size, INT_MAX)));
    if (r > 0) {
      n = static_cast<std::size_t>(r);
      return status::done;
    }
    return classify(r);
  }

  // Whether decrypted bytes, or ciphertext not yet decrypted (in OpenSSL's
  // read-ahead buffer or in the BIO), wait.
  [[nodiscard]] bool has_input() const {
    return SSL_has_pending(ssl_) == 1 || BIO_pending(in_) > 0;
  }

  /// Encrypts `bytes`; the records go to output(). False on failure.
  bool write(std::string_view bytes) override {
    while (!bytes.empty()) {
      const int chunk = static_cast<int>(std::min<std::size_t>(bytes.size(), INT_MAX));
      clear_stale_errors();
      const int r = SSL_write(ssl_, bytes.data(), chunk);
      if (r <= 0) {
        // Over memory BIOs a write only stops for a failure, or for input
        // (a renegotiation, refused by the contexts): both end the connection.
        if (classify(r) != status::failed) error_ = net::ssl::error::stream_truncated;
        return false;
      }
      bytes.remove_prefix(static_cast<std::size_t>(r));
    }
    return true;
  }

  /// Queues a close_notify alert in output().
  void shutdown() override {
    ERR_clear_error();
    (void)SSL_shutdown(ssl_);
    ERR_clear_error();
  }

  /// Ciphertext arrived from the peer.
  void put_input(const char* data, std::size_t size) override {
    while (size > 0) {
      const int chunk = static_cast<int>(std::min<std::size_t>(size, INT_MAX));
      const int r = BIO_write(in_, data, chunk);
      if (r <= 0) return;
      data += r;
      size -= static_cast<std::size_t>(r);
    }
  }

  /// Moves the ciphertext to send onto the end of `to`; whether there was any.
  bool take_output(std::string& to) override {
    const auto pending = static_cast<std::size_t>(BIO_pending(out_));
    if (pending == 0) return false;
    const std::size_t at = to.size();
    to.resize(at + pending);
    const int r = BIO_read(out_, to.data() + at, static_cast<int>(pending));
    to.resize(at + static_cast<std::size_t>(std::max(r, 0)));
    return r > 0;
  }

  /// Why the last call failed or closed.
  [[nodiscard]] error_code error() const override { return error_; }

  [[nodiscard]] std::string verify_failure() const override {
    const long verify = SSL_get_verify_result(ssl_);  // NOLINT(google-runtime-int): OpenSSL's type
    return verify == X509_V_OK ? std::string() : X509_verify_cert_error_string(verify);
  }

  [[nodiscard]] bool resumed() const override { return SSL_session_reused(ssl_) == 1; }

  [[nodiscard]] bool peer_names(const std::string& host) const override {
    X509* cert = SSL_get0_peer_certificate(ssl_);
    if (cert == nullptr) return false;
    error_code ec;
    (void)net::ip::make_address(host, ec);
    return ec ? X509_check_host(cert, host.data(), host.size(),
                                X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, nullptr) == 1
              : X509_check_ip_asc(cert, host.c_str(), 0) == 1;
  }

  bool expect_server_name(const std::string& host) override {
    return detail::expect_server_name(ssl_, host);
  }

  // A copy per connection: OpenSSL may mark the session it resumed not
  // resumable when that connection ends, and connections on other threads
  // share the pool's.
  void resume(const std::shared_ptr<void>& session) override {
    if (!session) return;
    SSL_SESSION* copy = SSL_SESSION_dup(static_cast<SSL_SESSION*>(session.get()));
    if (copy == nullptr) return;
    SSL_set_session(ssl_, copy);
    SSL_SESSION_free(copy);  // the SSL holds its own reference
  }

  // A copy: OpenSSL marks a connection's own session not resumable when the
  // connection is freed without a TLS shutdown, as a dropped pooled
  // connection is.
  [[nodiscard]] std::shared_ptr<void> session() const override {
    SSL_SESSION* s = SSL_get0_session(ssl_);
    if (s == nullptr || SSL_SESSION_is_resumable(s) != 1) return nullptr;
    SSL_SESSION* copy = SSL_SESSION_dup(s);
    if (copy == nullptr) return nullptr;
    return {copy, [](void* p) { SSL_SESSION_free(static_cast<SSL_SESSION*>(p)); }};
  }

 private:
  // Empties the thread's error queue before a call whose failure is read
  // from it. Peeking first is what makes it cheap: clearing walks all the
  // queue's slots even when it is empty, twice per request on each side.
  static void clear_stale_errors() {
    if (ERR_peek_error() != 0) ERR_clear_error();
  }

  status classify(int r) {
    switch (SSL_get_error(ssl_, r)) {
      case SSL_ERROR_WANT_READ:
      case SSL_ERROR_WANT_WRITE:  // a memory BIO never refuses output
        return status::want_input;
      case SSL_ERROR_ZERO_RETURN:
        error_ = net::error::eof;
        return status::closed;
      default: {
        const unsigned long e = ERR_get_error();  // NOLINT(google-runtime-int): OpenSSL's type
        ERR_clear_error();
        error_ = e != 0 ? error_code(static_cast<int>(e), net::error::get_ssl_category())
                        : error_code(net::ssl::error::stream_truncated);
        return status::failed;
      }
    }
  }

  std::shared_ptr<net::ssl::context> ctx_;
  SSL* ssl_ = nullptr;
  BIO* in_ = nullptr;   // owned by ssl_
  BIO* out_ = nullptr;  // owned by ssl_
  error_code error_;
};

/// The message of OpenSSL's oldest queued error (and clears the queue), or
/// `fallback`.
inline std::string tls_error_text(const std::string& fallback) {
  const unsigned long e = ERR_get_error();  // NOLINT(google-runtime-int): OpenSSL's type
  ERR_clear_error();
  if (e == 0) return fallback;
  std::array<char, 256> text{};
  ERR_error_string_n(e, text.data(), text.size());
  return text.data();
}
/// Builds the context of `role` from `o`: TLS 1.2 at least, o's
/// certificate and key (checked to match), o's CAs, and the verification
/// mode (a client always verifies the server; a server requires a client
/// certificate when o.require_client_certificate, else verifies one that is
/// offered when it has CAs). Null with `why` set on failure.
inline std::shared_ptr<net::ssl::context> make_tls_context(const tls_options& o, tls_role role,
                                                           std::string& why) {
  using ssl_context = net::ssl::context;
  auto ctx = std::make_shared<ssl_context>(role == tls_role::server ? ssl_context::tls_server
                                                                    : ssl_context::tls_client);
  SSL_CTX* native = ctx->native_handle();
  ctx->set_options(ssl_context::default_workarounds | ssl_context::no_sslv2 |
                   ssl_context::no_sslv3 | ssl_context::no_tlsv1 | ssl_context::no_tlsv1_1);
  // TLS 1.2 renegotiation would need input in the middle of a write.
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  error_code ec;
  ERR_clear_error();
  if (ctx->use_certificate_chain_file(o.certificate_file, ec); ec) {
    why = "cannot load the certificate " + o.certificate_file + ": " + tls_error_text(ec.message());
    return nullptr;
  }
  if (ctx->use_private_key_file(o.private_key_file, ssl_context::pem, ec); ec) {
    const std::string text = tls_error_text(ec.message());
    why = text.find("mismatch") != std::string::npos
              ? "the private key " + o.private_key_file + " does not match the certificate " +
                    o.certificate_file
              : "cannot load the private key " + o.private_key_file + ": " + text;
    return nullptr;
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    why = "the private key " + o.private_key_file + " does not match the certificate " +
          o.certificate_file;
    ERR_clear_error();
    return nullptr;
  }
  if (!o.ca_file.empty()) {
    if (ctx->load_verify_file(o.ca_file, ec); ec) {
      why = "cannot load the CA file " + o.ca_file + ": " + tls_error_text(ec.message());
      return nullptr;
    }
  }
  if (role == tls_role::client) {
    ctx->set_verify_mode(net::ssl::verify_peer);
    // Sessions are kept by the client per peer (http_peer_pool), not in
    // OpenSSL's cache.
    SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
  } else {
    if (o.require_client_certificate) {
      ctx->set_verify_mode(net::ssl::verify_peer | net::ssl::verify_fail_if_no_peer_cert);
    } else if (!o.ca_file.empty()) {
      ctx->set_verify_mode(net::ssl::verify_peer);
    }
    // Resumption with client certificates needs a session id context.
    static constexpr unsigned char sid[] = "distcache";
    SSL_CTX_set_session_id_context(native, sid, sizeof(sid) - 1);
  }
  return ctx;
}

/// Loaded OpenSSL context of one role.
class openssl_credentials final : public tls_credentials {
 public:
  openssl_credentials(std::shared_ptr<net::ssl::context> ctx, bool server)
      : ctx_(std::move(ctx)), server_(server) {}
  [[nodiscard]] std::unique_ptr<tls_connection> make_connection() const override {
    auto c = std::make_unique<openssl_connection>(ctx_, server_);
    if (!c->valid()) return nullptr;
    return c;
  }

 private:
  std::shared_ptr<net::ssl::context> ctx_;
  bool server_;
};

/// The OpenSSL tls_backend (transport::https).
class openssl_backend final : public tls_backend {
 public:
  [[nodiscard]] std::shared_ptr<const tls_credentials> load(const tls_options& o, tls_role role,
                                                            std::string& why) const override {
    auto ctx = make_tls_context(o, role, why);
    if (!ctx) return nullptr;
    return std::make_shared<openssl_credentials>(std::move(ctx), role == tls_role::server);
  }
};

}  // namespace distcache::detail

#endif  // DISTCACHE_TRANSPORT_DETAIL_OPENSSL_TLS_HPP
