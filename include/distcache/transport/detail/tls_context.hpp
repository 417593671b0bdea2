// distcache — the TLS contexts of the peer transport and the admin server:
// built from tls_options' files, swapped whole when the files change or on
// reload_tls(), so that a connection keeps the context it started with and
// new connections take the newest one. OpenSSL through Asio.
#ifndef DISTCACHE_TRANSPORT_DETAIL_TLS_CONTEXT_HPP
#define DISTCACHE_TRANSPORT_DETAIL_TLS_CONTEXT_HPP

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/tls1.h>
#include <sys/stat.h>

#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <cstdint>
#include <distcache/config.hpp>
#include <distcache/detail/config.hpp>
#include <distcache/error.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

namespace distcache::detail {

enum class tls_role : std::uint8_t { server, client };

/// What identifies a file's content cheaply: a change of any of these
/// (a rewrite, a rename over it, a symlink swap as Kubernetes does for
/// mounted secrets) means it is loaded again.
struct tls_file_stamp {
  bool exists = false;
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  std::int64_t size = 0;
  std::int64_t mtime_ns = 0;
  friend bool operator==(const tls_file_stamp&, const tls_file_stamp&) = default;
};

inline tls_file_stamp tls_stamp_of(const std::string& path) {
  tls_file_stamp s;
  if (path.empty()) return s;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return s;
  s.exists = true;
  s.device = static_cast<std::uint64_t>(st.st_dev);
  s.inode = static_cast<std::uint64_t>(st.st_ino);
  s.size = static_cast<std::int64_t>(st.st_size);
  s.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  return s;
}

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

/// The current TLS context of one listener or client, loaded from files.
/// load() builds a new one and swaps it in, or keeps the old one and says
/// why; watch() calls it whenever the files change. Thread-safe.
class tls_context_source : public std::enable_shared_from_this<tls_context_source> {
 public:
  /// `what` names the owner in log lines ("peer server").
  tls_context_source(tls_options options, tls_role role, logger log, std::string what)
      : options_(std::move(options)), role_(role), log_(std::move(log)), what_(std::move(what)) {}

  [[nodiscard]] const tls_options& options() const noexcept { return options_; }

  /// Loads the files into a new context. On success connections opened
  /// from now on use it; on failure the current one stays, `why` says what
  /// failed and the error is errc::invalid_config.
  error_code load(std::string& why) {
    std::lock_guard load_lock(load_mutex_);
    const auto stamps = current_stamps();
    auto ctx = make_tls_context(options_, role_, why);
    std::lock_guard lock(mutex_);
    tried_ = stamps;
    if (!ctx) {
      if (generation_ > 0) reload_failures_.fetch_add(1, std::memory_order_relaxed);
      return make_error_code(errc::invalid_config);
    }
    ctx_ = std::move(ctx);
    if (generation_ > 0) reloads_.fetch_add(1, std::memory_order_relaxed);
    ++generation_;
    return {};
  }

  /// load() with a log line either way; what reload_tls() and the watcher
  /// call.
  error_code reload() {
    std::string why;
    if (auto ec = load(why)) {
      log_quietly(
          log_, log_level::error,
          "distcache " + what_ + ": TLS reload failed, keeping the certificates in use: " + why);
      return ec;
    }
    log_quietly(
        log_, log_level::info,
        "distcache " + what_ + ": TLS certificates loaded from " + options_.certificate_file);
    return {};
  }

  /// The context new connections use (null before a successful load()).
  [[nodiscard]] std::shared_ptr<net::ssl::context> current() const {
    std::lock_guard lock(mutex_);
    return ctx_;
  }

  /// Counts successful loads: a connection's cached session is only offered
  /// again under the context generation that made it.
  [[nodiscard]] std::uint64_t generation() const {
    std::lock_guard lock(mutex_);
    return generation_;
  }

  [[nodiscard]] std::uint64_t reloads() const noexcept {
    return reloads_.load(std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint64_t reload_failures() const noexcept {
    return reload_failures_.load(std::memory_order_relaxed);
  }

  /// Whether a file changed since the last load() (successful or not).
  [[nodiscard]] bool files_changed() const {
    const auto stamps = current_stamps();
    std::lock_guard lock(mutex_);
    return stamps != tried_;
  }

  /// Checks the files every reload_interval on `ioc` and reloads when they
  /// changed, until stop_watching(). Nothing when reload_interval is 0.
  void watch(net::io_context& ioc) {
    if (options_.reload_interval <= duration::zero()) return;
    std::lock_guard lock(mutex_);
    if (timer_) return;
    timer_ = std::make_shared<net::steady_timer>(net::make_strand(ioc));
    arm(timer_, weak_from_this());
  }

  /// Stops watch(). From any thread.
  void stop_watching() {
    std::shared_ptr<net::steady_timer> timer;
    {
      std::lock_guard lock(mutex_);
      stopped_ = true;
      timer = timer_;
    }
    if (timer) net::post(timer->get_executor(), [timer] { timer->cancel(); });
  }

 private:
  using stamps_type = std::array<tls_file_stamp, 3>;

  [[nodiscard]] stamps_type current_stamps() const {
    return {tls_stamp_of(options_.certificate_file), tls_stamp_of(options_.private_key_file),
            tls_stamp_of(options_.ca_file)};
  }

  static void arm(const std::shared_ptr<net::steady_timer>& timer,
                  std::weak_ptr<tls_context_source> weak) {
    auto self = weak.lock();
    if (!self) return;
    timer->expires_after(self->options_.reload_interval);
    timer->async_wait([timer, weak](const error_code& ec) {
      auto self = weak.lock();
      if (!self || ec) return;
      {
        std::lock_guard lock(self->mutex_);
        if (self->stopped_) return;
      }
      // Files being written one after the other may be caught half way:
      // the failed load is logged, and the next change loads again.
      if (self->files_changed()) (void)self->reload();
      arm(timer, weak);
    });
  }

  const tls_options options_;
  const tls_role role_;
  const logger log_;
  const std::string what_;
  std::mutex load_mutex_;  // one load at a time
  mutable std::mutex mutex_;
  std::shared_ptr<net::ssl::context> ctx_;    // by mutex_
  std::uint64_t generation_ = 0;              // by mutex_
  stamps_type tried_{};                       // by mutex_
  std::shared_ptr<net::steady_timer> timer_;  // by mutex_
  bool stopped_ = false;                      // by mutex_
  std::atomic<std::uint64_t> reloads_{0};
  std::atomic<std::uint64_t> reload_failures_{0};
};

}  // namespace distcache::detail

#endif  // DISTCACHE_TRANSPORT_DETAIL_TLS_CONTEXT_HPP
