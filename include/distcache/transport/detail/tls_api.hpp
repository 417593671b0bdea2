// distcache — what the HTTP transport and the admin server ask of TLS, with
// no TLS library in sight: a connection's state driven over buffers
// (tls_connection), the certificates loaded from tls_options
// (tls_credentials, made by a tls_backend), and tls_context_source, which
// keeps the current credentials and loads them again when the files change.
// transport::https supplies the OpenSSL backend (openssl_tls.hpp); a program
// that uses transport::http alone never includes or links OpenSSL.
#ifndef DISTCACHE_TRANSPORT_DETAIL_TLS_API_HPP
#define DISTCACHE_TRANSPORT_DETAIL_TLS_API_HPP

#include <sys/stat.h>

#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <cstddef>
#include <cstdint>
#include <distcache/config.hpp>
#include <distcache/detail/config.hpp>
#include <distcache/error.hpp>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

namespace distcache::detail {

/// One TLS connection's state, driven without I/O of its own: ciphertext
/// that arrives is given to put_input(), ciphertext to send is taken with
/// take_output(). Not thread-safe (a connection's strand owns it).
class tls_connection {
 public:
  enum class status : std::uint8_t { done, want_input, failed, closed };

  tls_connection() = default;
  tls_connection(const tls_connection&) = delete;
  tls_connection& operator=(const tls_connection&) = delete;
  virtual ~tls_connection() = default;

  /// Advances the handshake: done, want_input (send the output first, then
  /// give it what arrives) or failed (error()).
  virtual status handshake() = 0;
  /// Decrypts into [data, data + size): done with `n` > 0 bytes, or
  /// want_input (nothing whole arrived), closed (the peer's close_notify)
  /// or failed.
  virtual status read(char* data, std::size_t size, std::size_t& n) = 0;
  /// Encrypts `bytes` into the output. False on failure (error()).
  virtual bool write(std::string_view bytes) = 0;
  /// Queues a close_notify alert in the output.
  virtual void shutdown() = 0;
  /// Ciphertext arrived from the peer.
  virtual void put_input(const char* data, std::size_t size) = 0;
  /// Moves the ciphertext to send onto the end of `to`; whether there was any.
  virtual bool take_output(std::string& to) = 0;
  /// Why the last call failed or closed.
  [[nodiscard]] virtual error_code error() const = 0;
  /// Why the peer's certificate was refused ("certificate has expired");
  /// empty when it was not.
  [[nodiscard]] virtual std::string verify_failure() const = 0;
  /// Whether the handshake resumed an earlier session.
  [[nodiscard]] virtual bool resumed() const = 0;
  /// Whether the peer's certificate names `host` (an IP SAN for an
  /// address, else a DNS SAN without partial wildcards).
  [[nodiscard]] virtual bool peer_names(const std::string& host) const = 0;
  /// Client side: the server's certificate must name `host`, which is also
  /// sent as SNI when it is not an address.
  /// False when `host` cannot be checked (the connection must then fail).
  virtual bool expect_server_name(const std::string& host) = 0;
  /// Client side: offers `session` (from session()) for resumption.
  virtual void resume(const std::shared_ptr<void>& session) = 0;
  /// Client side: a copy of the session that another connection may
  /// resume; null when there is none yet (TLS 1.3 sends its tickets after
  /// the handshake: ask once a response arrived).
  [[nodiscard]] virtual std::shared_ptr<void> session() const = 0;
};

/// Certificates, key and CAs loaded for one role: makes connections.
class tls_credentials {
 public:
  tls_credentials() = default;
  tls_credentials(const tls_credentials&) = delete;
  tls_credentials& operator=(const tls_credentials&) = delete;
  virtual ~tls_credentials() = default;
  /// A new connection (server side when the credentials are a server's);
  /// null when the library cannot make one.
  [[nodiscard]] virtual std::unique_ptr<tls_connection> make_connection() const = 0;
};

enum class tls_role : std::uint8_t { server, client };

/// A TLS library: loads credentials from tls_options' files.
class tls_backend {
 public:
  tls_backend() = default;
  tls_backend(const tls_backend&) = delete;
  tls_backend& operator=(const tls_backend&) = delete;
  virtual ~tls_backend() = default;
  /// Loads `o`'s files for `role`; null with `why` set when they do not
  /// load (missing, unreadable, not PEM, key and certificate that do not
  /// match).
  [[nodiscard]] virtual std::shared_ptr<const tls_credentials> load(const tls_options& o,
                                                                    tls_role role,
                                                                    std::string& why) const = 0;
};

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

/// The current TLS credentials of one listener or client, loaded from
/// files. load() builds new ones and swaps them in, or keeps the old ones
/// and says why; watch() calls it whenever the files change. Thread-safe.
class tls_context_source : public std::enable_shared_from_this<tls_context_source> {
 public:
  /// `what` names the owner in log lines ("peer server").
  tls_context_source(std::shared_ptr<const tls_backend> backend, tls_options options, tls_role role,
                     logger log, std::string what)
      : backend_(std::move(backend)),
        options_(std::move(options)),
        role_(role),
        log_(std::move(log)),
        what_(std::move(what)) {}

  [[nodiscard]] const tls_options& options() const noexcept { return options_; }

  /// Loads the files into new credentials. On success connections opened
  /// from now on use them; on failure the current ones stay, `why` says
  /// what failed and the error is errc::invalid_config.
  error_code load(std::string& why) {
    std::lock_guard load_lock(load_mutex_);
    const auto stamps = current_stamps();
    std::shared_ptr<const tls_credentials> loaded;
    try {
      loaded = backend_->load(options_, role_, why);
    } catch (const std::exception& e) {  // out of memory, a library that cannot start
      why = e.what();
    }
    std::lock_guard lock(mutex_);
    tried_ = stamps;
    if (!loaded) {
      if (generation_ > 0) reload_failures_.fetch_add(1, std::memory_order_relaxed);
      return make_error_code(errc::invalid_config);
    }
    current_ = std::move(loaded);
    if (generation_ > 0) reloads_.fetch_add(1, std::memory_order_relaxed);
    ++generation_;
    return {};
  }

  /// load() with a log line either way: what reload_tls() and the watcher
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

  /// The credentials new connections use (null before a successful load()).
  [[nodiscard]] std::shared_ptr<const tls_credentials> current() const {
    std::lock_guard lock(mutex_);
    return current_;
  }

  /// current() and the generation() that loaded it, read together.
  [[nodiscard]] std::pair<std::shared_ptr<const tls_credentials>, std::uint64_t>
  current_generation() const {
    std::lock_guard lock(mutex_);
    return {current_, generation_};
  }

  /// Counts successful loads: a cached session is offered again only under
  /// the generation that made it.
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
    if (timer_ || stopped_) return;
    timer_ = std::make_shared<net::steady_timer>(net::make_strand(ioc));
    // Armed on its strand, where every later use of the timer runs.
    net::post(timer_->get_executor(),
              [timer = timer_, weak = weak_from_this()] { arm(timer, weak); });
  }

  /// Stops watch(). From any thread.
  void stop_watching() {
    std::shared_ptr<net::steady_timer> timer;
    {
      std::lock_guard lock(mutex_);
      stopped_ = true;
      // The timer leaves with its last handler: this object may outlive
      // the io_context (the admin server destroys its own first).
      timer = std::move(timer_);
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
                  const std::weak_ptr<tls_context_source>& weak) {
    auto self = weak.lock();
    if (!self) return;
    {
      std::lock_guard lock(self->mutex_);
      if (self->stopped_) return;
    }
    timer->expires_after(self->options_.reload_interval);
    timer->async_wait([timer, weak](const error_code& ec) {
      auto self = weak.lock();
      if (!self || ec) return;
      {
        std::lock_guard lock(self->mutex_);
        if (self->stopped_) return;
      }
      // Files written one after the other may be caught half way: that
      // load fails (logged), and the next change loads again.
      if (self->files_changed()) (void)self->reload();
      arm(timer, weak);
    });
  }

  const std::shared_ptr<const tls_backend> backend_;
  const tls_options options_;
  const tls_role role_;
  const logger log_;
  const std::string what_;
  std::mutex load_mutex_;  // one load at a time
  mutable std::mutex mutex_;
  std::shared_ptr<const tls_credentials> current_;  // by mutex_
  std::uint64_t generation_ = 0;                    // by mutex_
  stamps_type tried_{};                             // by mutex_
  std::shared_ptr<net::steady_timer> timer_;        // by mutex_
  bool stopped_ = false;                            // by mutex_
  std::atomic<std::uint64_t> reloads_{0};
  std::atomic<std::uint64_t> reload_failures_{0};
};

/// The TLS counters of a peer server or client (`Stats`: server_stats or
/// client_stats) from its shared state: the handshake counters and its
/// tls_context_source's reloads. `resumed` is read first, so it never
/// exceeds the handshakes read after it.
template <class Stats, class State>
void fill_tls_stats(Stats& s, const State& st) {
  s.tls_resumed = st.tls_resumed.load(std::memory_order_relaxed);
  s.tls_handshakes = st.tls_handshakes.load(std::memory_order_relaxed);
  s.tls_handshakes_failed = st.tls_handshakes_failed.load(std::memory_order_relaxed);
  if (st.tls) {
    s.tls_reloads = st.tls->reloads();
    s.tls_reload_failures = st.tls->reload_failures();
  }
}

/// reload_tls() of an owner whose TLS is `source` (null: none, nothing to do).
inline result<void> reload_tls_of(const std::shared_ptr<tls_context_source>& source) {
  if (!source) return {};
  if (auto ec = source->reload()) return ec;
  return {};
}

/// Makes the tls_context_source of an owner whose options say `o`: null
/// when TLS is off or there is no backend (the owner then refuses to
/// start with tls enabled).
inline std::shared_ptr<tls_context_source> make_tls_source(
    const std::shared_ptr<const tls_backend>& backend, const tls_options& o, tls_role role,
    const logger& log, std::string what) {
  if (!o.enabled || !backend) return nullptr;
  return std::make_shared<tls_context_source>(backend, o, role, log, std::move(what));
}

}  // namespace distcache::detail

#endif  // DISTCACHE_TRANSPORT_DETAIL_TLS_API_HPP
