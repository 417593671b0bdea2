// distcache — TLS over memory BIOs for the peer transport: OpenSSL encrypts
// into and decrypts from buffers, and the connection moves the bytes with
// the same socket calls as plaintext (a direct non-blocking write first,
// one read per arriving batch). Asio's ssl::stream costs a completion
// round trip per write and a BIO pair besides, about 2 us per request on
// each side (docs/performance.md).
#ifndef DISTCACHE_TRANSPORT_DETAIL_TLS_ENGINE_HPP
#define DISTCACHE_TRANSPORT_DETAIL_TLS_ENGINE_HPP

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <distcache/detail/config.hpp>
#include <distcache/error.hpp>
#include <string>
#include <string_view>

namespace distcache::detail {

/// One TLS connection's OpenSSL state, driven without I/O of its own:
/// ciphertext that arrives is given to put_input(), ciphertext to send is
/// taken from output(). Not thread-safe (a connection's strand owns it).
class tls_engine {
 public:
  enum class status : std::uint8_t { done, want_input, failed, closed };

  tls_engine(SSL_CTX* ctx, bool server) : ssl_(SSL_new(ctx)) {
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
    in_ = in;
    out_ = out;
    if (server) {
      SSL_set_accept_state(ssl_);
    } else {
      SSL_set_connect_state(ssl_);
    }
  }
  tls_engine(const tls_engine&) = delete;
  tls_engine& operator=(const tls_engine&) = delete;
  ~tls_engine() { SSL_free(ssl_); }

  /// False when OpenSSL could not make the connection (out of memory).
  [[nodiscard]] bool valid() const noexcept { return ssl_ != nullptr; }
  [[nodiscard]] SSL* native_handle() const noexcept { return ssl_; }

  // OpenSSL's error queue is emptied whenever a call fails (classify()),
  // so no call needs to clear it first.

  /// Advances the handshake: done, want_input (send output() first, then
  /// give it what arrives) or failed (error()).
  status handshake() {
    const int r = SSL_do_handshake(ssl_);
    if (r == 1) return status::done;
    return classify(r);
  }

  /// Decrypts into [data, data + size). done with `n` > 0 bytes, or
  /// want_input (nothing whole arrived yet), closed (the peer's
  /// close_notify) or failed.
  status read(char* data, std::size_t size, std::size_t& n) {
    n = 0;
    // Nothing to decrypt: say so without asking OpenSSL, whose failed read
    // costs about as much as a successful one.
    if (!has_input()) return status::want_input;
    const int r = SSL_read(ssl_, data, static_cast<int>(std::min<std::size_t>(size, INT_MAX)));
    if (r > 0) {
      n = static_cast<std::size_t>(r);
      return status::done;
    }
    return classify(r);
  }

  /// Whether decrypted bytes, or ciphertext not yet decrypted, wait.
  [[nodiscard]] bool has_input() const { return SSL_pending(ssl_) > 0 || BIO_pending(in_) > 0; }

  /// Encrypts `bytes`; the records go to output(). False on failure.
  bool write(std::string_view bytes) {
    while (!bytes.empty()) {
      const int chunk = static_cast<int>(std::min<std::size_t>(bytes.size(), INT_MAX));
      const int r = SSL_write(ssl_, bytes.data(), chunk);
      if (r <= 0) {
        (void)classify(r);
        return false;
      }
      bytes.remove_prefix(static_cast<std::size_t>(r));
    }
    return true;
  }

  /// Queues a close_notify alert in output().
  void shutdown() {
    ERR_clear_error();
    (void)SSL_shutdown(ssl_);
    ERR_clear_error();
  }

  /// Ciphertext arrived from the peer.
  void put_input(const char* data, std::size_t size) {
    while (size > 0) {
      const int chunk = static_cast<int>(std::min<std::size_t>(size, INT_MAX));
      const int r = BIO_write(in_, data, chunk);
      if (r <= 0) return;
      data += r;
      size -= static_cast<std::size_t>(r);
    }
  }

  /// Moves the ciphertext to send onto the end of `to`; whether there was any.
  bool take_output(std::string& to) {
    const auto pending = static_cast<std::size_t>(BIO_pending(out_));
    if (pending == 0) return false;
    const std::size_t at = to.size();
    to.resize(at + pending);
    const int r = BIO_read(out_, to.data() + at, static_cast<int>(pending));
    to.resize(at + static_cast<std::size_t>(std::max(r, 0)));
    return r > 0;
  }

  /// Why the last call failed or closed.
  [[nodiscard]] error_code error() const noexcept { return error_; }

 private:
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

  SSL* ssl_ = nullptr;
  BIO* in_ = nullptr;   // owned by ssl_
  BIO* out_ = nullptr;  // owned by ssl_
  error_code error_;
};

}  // namespace distcache::detail

#endif  // DISTCACHE_TRANSPORT_DETAIL_TLS_ENGINE_HPP
