// distcache — the HTTP client's connections: one request at a time each, pooled per peer.
#ifndef DISTCACHE_TRANSPORT_DETAIL_HTTP_CLIENT_CONNECTION_HPP
#define DISTCACHE_TRANSPORT_DETAIL_HTTP_CLIENT_CONNECTION_HPP

#include <unistd.h>
#include <algorithm>
#include <array>
#include <boost/asio/connect.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <distcache/clock.hpp>
#include <distcache/config.hpp>
#include <distcache/detail/config.hpp>
#include <distcache/error.hpp>
#include <distcache/transport/detail/http_client_state.hpp>
#include <distcache/transport/detail/http_parser.hpp>
#include <distcache/transport/detail/tls_api.hpp>
#include <distcache/transport/peer.hpp>
#include <distcache/transport/wire.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace distcache::detail {

/// How many http_client_connection::start() calls this thread is inside of
/// (a start runs its request at once when it can): a request that
/// completes there has its callbacks posted, never run inside the call
/// that made the request.
inline thread_local int client_starts_on_stack = 0;

/// Posts a flush of `pool`'s waiting calls (impl/http_client_calls.ipp).
inline void post_flush(const std::shared_ptr<http_client_state>& st,
                       const std::shared_ptr<http_peer_pool>& pool) noexcept;

/// One keep-alive connection to a peer. It carries one request at a time:
/// the submitting thread fills `req` while it owns the connection (taken
/// from the pool, no operation pending), then start() moves to the strand,
/// where everything else happens. finish() completes the request exactly
/// once and hands the connection back to the pool or drops it.
class http_client_connection : public std::enable_shared_from_this<http_client_connection> {
 public:
  /// The request being sent. Written only by the owner before start().
  struct request {
    http_client_op op = http_client_op::health;
    std::size_t expected = 0;  // reply items a get expects
    bool counted = false;      // a get, remove or invalidate: its end may flush waiting calls
    duration timeout{};
    std::string keyspace;  // for log lines
    std::string out;       // request head and body, or the body up to a set's value
    std::string value;     // a set's value, sent from its own buffer
    std::function<void(error_code, std::vector<transport::reply_item>)> get_done;
    std::function<void(error_code, std::size_t)> remove_done;
    std::function<void(error_code)> done;
  };

  http_client_connection(std::shared_ptr<http_client_state> st,
                         std::shared_ptr<http_peer_pool> pool)
      : st_(std::move(st)),
        pool_(std::move(pool)),
        strand_(net::make_strand(st_->ioc)),
        socket_(strand_),
        timer_(strand_) {}

  request req;

  /// The request's place among its pool's coalesce_in_flight, held from
  /// when it is sent until it completes or has been in flight for
  /// coalesce_slow_after (impl/http_client_calls.ipp). Guarded by the
  /// client's mutex.
  struct {
    bool held = false;
    bool slow = false;  // gave its place back; counts in pool().slow_in_flight
    time_point since{};
  } place;

  [[nodiscard]] const std::shared_ptr<http_peer_pool>& pool() const noexcept { return pool_; }

  /// Sends `req` (from any thread; the caller owns the connection). On a
  /// thread that runs the io_context (a completion callback that makes the
  /// next call) it starts at once, unless a handler of this connection runs
  /// elsewhere: no trip through the io_context's queue, which costs a poll
  /// of the reactor (epoll_wait) per request. A completion reached at once
  /// (a closed client, a refused write) is posted (finish()).
  void start() {
    struct on_stack {
      on_stack() noexcept { ++client_starts_on_stack; }
      on_stack(const on_stack&) = delete;
      on_stack& operator=(const on_stack&) = delete;
      ~on_stack() { --client_starts_on_stack; }
    } guard;
    net::dispatch(strand_, [self = shared_from_this()] { self->on_start(); });
  }

  /// Closes the connection; a request in progress completes with
  /// errc::stopped. From any thread.
  void shutdown() {
    net::post(strand_, [self = shared_from_this()] { self->on_shutdown(); });
  }

 private:
  using tcp = net::ip::tcp;
  static constexpr std::size_t tls_read_chunk = std::size_t{17} * 1024;  // a record and more
  static constexpr std::size_t read_chunk = std::size_t{16} * 1024;
  static constexpr std::size_t tls_gather_limit = std::size_t{16} * 1024;
  static constexpr std::size_t tls_piece = std::size_t{64} * 1024;  // of a large value

  struct outcome {
    error_code ec;
    std::vector<transport::reply_item> items;
    std::size_t removed = 0;
  };

  /// What finish() runs once the connection is back in its pool: the
  /// caller's callback, then the flush of the waiting calls it asked for.
  struct completion {
    std::shared_ptr<http_client_state> st;
    std::shared_ptr<http_peer_pool> pool;
    http_client_op op = http_client_op::health;
    std::function<void(error_code, std::vector<transport::reply_item>)> get_done;
    std::function<void(error_code, std::size_t)> remove_done;
    std::function<void(error_code)> done;
    outcome out;
    bool flush = false;

    void run();
  };

  void on_start() {
    busy_ = true;
    retried_ = false;
    response_started_ = false;
    if (dead_ || closed_) {
      fail(errc::stopped, false);
      return;
    }
    deadline_ = clock_type::now() + req.timeout;
    if (socket_.is_open()) {
      reused_ = true;
      arm(deadline_);
      write();
    } else {
      connect();
    }
  }

  void on_shutdown() {
    closed_ = true;
    if (busy_) {
      fail(errc::stopped, false);
    } else {
      close_socket();
      dead_ = true;
    }
    timer_.cancel();
  }

  void close_socket() {
    error_code ignored;
    socket_.close(ignored);  // NOLINT(bugprone-unused-return-value)
    if (resolver_) resolver_->cancel();
    buffer_.clear();
  }

  /// Makes sure the timer fires no later than `when`. The timer is only
  /// re-armed when `when` is earlier than its pending expiry; a timer that
  /// fires early re-arms itself, so a steady stream of requests costs about
  /// one timer operation per timeout period rather than one per request.
  void arm(time_point when) {
    if (armed_ && expiry_ <= when) return;
    armed_ = true;
    expiry_ = when;
    timer_.expires_at(when);  // a pending wait completes with operation_aborted
    timer_.async_wait(
        [self = shared_from_this(), gen = ++timer_gen_](error_code) { self->on_timer(gen); });
  }

  void on_timer(std::uint64_t gen) {
    if (gen != timer_gen_) return;  // superseded by a later arm()
    armed_ = false;
    if (!busy_ || dead_ || closed_) return;
    const auto now = clock_type::now();
    if (connecting_ && now >= connect_deadline_ && now < deadline_) {
      log_failure("connect timed out after " + format_duration(st_->options.connect_timeout));
      fail(errc::peer_unavailable, false);
      return;
    }
    if (now >= deadline_) {
      log_failure("no response within " + format_duration(req.timeout));
      fail(errc::timeout, false);
      return;
    }
    arm(connecting_ ? connect_deadline_ : deadline_);
  }

  void connect() {
    reused_ = false;
    connecting_ = true;
    const auto now = clock_type::now();
    connect_deadline_ = std::min(deadline_, now + st_->options.connect_timeout);
    arm(connect_deadline_);
    if (pool_->endpoint) {
      socket_.async_connect(*pool_->endpoint,
                            [self = shared_from_this()](error_code ec) { self->on_connect(ec); });
      return;
    }
    if (!resolver_) resolver_.emplace(strand_);
    resolver_->async_resolve(
        pool_->host, pool_->port,
        [self = shared_from_this()](error_code ec, const tcp::resolver::results_type& results) {
          if (self->dead_) return;
          if (ec) {
            self->on_connect(ec);
            return;
          }
          net::async_connect(self->socket_, results, [self](error_code cec, const tcp::endpoint&) {
            self->on_connect(cec);
          });
        });
  }

  void on_connect(error_code ec) {
    if (dead_) return;
    // Under TLS the handshake is part of connecting: connect_timeout bounds it.
    connecting_ = st_->tls != nullptr && !ec;
    if (ec) {
      on_failure(ec, "connect");
      return;
    }
    if (auto rec = reregister_for_reading()) {
      on_failure(rec, "connect");
      return;
    }
    socket_.set_option(tcp::no_delay(true), ec);
    socket_.non_blocking(true, ec);  // for the direct write in write()
    if (st_->tls) {
      handshake();
      return;
    }
    write();
  }

  /// Waiting for the connection to complete made Asio's reactor watch the
  /// socket for writability too, edge-triggered: every acknowledgement of
  /// a request would then wake it for nothing (one epoll_wait per request).
  /// Requests are written directly and wait for writability only when the
  /// send buffer is full, so the socket is registered anew, for reading.
  error_code reregister_for_reading() {
    error_code ec;
    const auto protocol = socket_.remote_endpoint(ec).protocol();
    if (ec) return {};  // still registered as it was: correct, only slower
    const auto fd = socket_.release(ec);
    if (ec) return {};
    socket_.assign(protocol, fd, ec);
    if (ec) ::close(fd);
    return ec;
  }

  /// The client's side of the TLS handshake: the peer's certificate must
  /// chain to the CAs and name the host it was dialled at. The last
  /// session with this peer is offered for resumption.
  void handshake();

  /// One round of the handshake: send this side's flight, read the
  /// peer's. Once done, the last flight (the client's Finished) stays
  /// queued and leaves with the request.
  void handshake_step();

  /// Sends tls_out_: at once when the socket takes it (it is non-blocking),
  /// the rest when it can; then `done(ec)` (not called once dead).
  template <class Done>
  void send_raw(Done done);

  void on_handshake(error_code ec);

  /// Keeps this connection's TLS session in the pool for the next
  /// connection to resume. Under TLS 1.3 the server sends its session
  /// ticket after the handshake, so this runs once the first response was
  /// read.
  void save_session();

  void write() {
    if (tls_) {
      write_tls();
      return;
    }
    std::array<net::const_buffer, 2> buffers{net::buffer(req.out), net::buffer(req.value)};
    // A request almost always fits the socket's send buffer: write it now
    // (the socket is non-blocking) and go straight to reading, saving a
    // completion round trip through the io_context.
    error_code ec;
    std::size_t n = socket_.write_some(buffers, ec);
    if (ec == net::error::would_block || ec == net::error::try_again) ec = {};
    if (ec) {
      on_failure(ec, "write");
      return;
    }
    if (n == req.out.size() + req.value.size()) {
      written();
      return;
    }
    for (auto& b : buffers) {
      const std::size_t used = std::min(n, b.size());
      b += used;
      n -= used;
    }
    net::async_write(socket_, buffers, [self = shared_from_this()](error_code wec, std::size_t) {
      if (self->dead_) return;
      if (wec) {
        self->on_failure(wec, "write");
        return;
      }
      self->written();
    });
  }

  /// Encrypts the request (a small set's value gathered into the same
  /// record) and sends it with whatever the handshake left queued; a large
  /// value goes a piece at a time, so that its ciphertext is never held
  /// whole.
  void write_tls();

  void send_tls_piece();

  void written() {
    response_.reset();
    parser_.emplace(response_, st_->options.limits);
    read();
  }

  void read() {
    if (tls_) {
      read_tls();
      return;
    }
    socket_.async_read_some(
        buffer_.prepare(read_size()),
        [self = shared_from_this()](error_code ec, std::size_t n) { self->on_read(ec, n); });
  }

  /// Decrypts into buffer_ what arrived, reading ciphertext until a whole
  /// record did.
  void read_tls();

  [[nodiscard]] std::size_t read_size() const {
    // Large bodies are read in large pieces; small replies keep the
    // per-connection buffer small.
    const std::uint64_t have = response_.body.size();
    if (response_.content_length > have) {
      return static_cast<std::size_t>(
          std::clamp<std::uint64_t>(response_.content_length - have, read_chunk, 1 << 20));
    }
    return read_chunk;
  }

  void on_read(error_code ec, std::size_t n);

  void on_response(bool keep_alive);

  /// A reply that framed correctly but does not make sense: the
  /// connection is dropped all the same.
  void protocol_error(const std::string& why, bool /*keep_alive*/) {
    log_failure(why);
    fail(errc::peer_unavailable, false);
  }

  void fail(errc e, bool keep) {
    outcome out;
    out.ec = make_error_code(e);
    finish(std::move(out), keep);
  }

  /// A request that failed before a usable response arrived.
  void on_failure(error_code ec, std::string_view where) {
    // A pooled connection may have been closed by the peer while it idled
    // (idle_timeout, restart). Nothing of the response arrived, so the
    // request is sent once more on a fresh connection: every operation is
    // idempotent.
    if (reused_ && !response_started_ && !retried_ && clock_type::now() < deadline_) {
      retried_ = true;
      close_socket();
      connect();
      return;
    }
    log_failure(std::string(where) + " failed: " + ec.message(), log_level::debug);
    fail(errc::peer_unavailable, false);
  }

  void log_failure(const std::string& why, log_level level = log_level::warning) const {
    static constexpr std::array<std::string_view, 6> names = {"get",    "get-many",   "set",
                                                              "remove", "invalidate", "health"};
    st_->write_log(level, "distcache transport: peer " + pool_->name + " " +
                              std::string(names[static_cast<std::size_t>(req.op)]) +
                              (req.keyspace.empty() ? "" : " '" + req.keyspace + "'") + ": " + why);
  }

  /// Completes the request: hands the connection back (keep) or drops it,
  /// then runs the caller's callback.
  void finish(outcome out, bool keep);

  struct released {
    bool kept;   // back in the pool's idle list
    bool flush;  // a flush of the waiting calls is to be posted
  };

  /// Frees the request's place, returns the connection to its pool when
  /// `keep` and the pool takes it, or else removes it; and says whether the
  /// waiting calls are to be flushed (`counted`: the request was a get,
  /// remove or invalidate, and none is posted yet).
  released release(bool keep, bool counted);

  std::shared_ptr<http_client_state> st_;
  std::shared_ptr<http_peer_pool> pool_;
  net::strand<net::io_context::executor_type> strand_;
  tcp::socket socket_;
  // TLS: the connection's state (made anew for each connection; it does no
  // I/O, so replacing it never races an operation).
  std::unique_ptr<tls_connection> tls_;
  std::string tls_in_;            // ciphertext read from the socket
  std::string tls_out_;           // ciphertext being sent
  std::size_t tls_value_at_ = 0;  // how much of a large value is encrypted
  std::uint64_t generation_ = 0;
  bool session_saved_ = false;
  net::steady_timer timer_;
  std::optional<tcp::resolver> resolver_;
  boost::beast::flat_buffer buffer_;
  http_response_data response_;
  std::optional<http_response_parser> parser_;
  time_point deadline_{};
  time_point connect_deadline_{};
  time_point expiry_{};
  std::uint64_t timer_gen_ = 0;
  bool armed_ = false;
  bool busy_ = false;
  bool connecting_ = false;
  bool reused_ = false;
  bool retried_ = false;
  bool response_started_ = false;
  bool dead_ = false;    // never used again; late handlers return at once
  bool closed_ = false;  // the client was closed
};

/// Appends the request line and headers. `wait_ms`, when not 0, is sent as
/// DC-Wait-Ms (gets: how long this client waits for the reply);
/// `push_read_ms`, when not 0, as DC-Push-Read-Ms (a set that is a warm-up push).
inline void append_request_head(std::string& out, std::string_view method, std::string_view path,
                                std::string_view keyspace, std::string_view op,
                                const http_peer_pool& pool, std::string_view self_name,
                                std::string_view cluster_name, std::uint64_t ring_version,
                                std::size_t body_size, std::string_view traceparent = {},
                                std::uint64_t wait_ms = 0, std::uint64_t push_read_ms = 0) {
  out += method;
  out += ' ';
  out += path;
  if (!keyspace.empty()) {
    append_path_segment(out, keyspace);
    out += '/';
    out += op;
  }
  out += " HTTP/1.1\r\nHost: ";
  out += pool.name;
  out += "\r\nDC-From: ";
  out += self_name;
  out += "\r\nDC-Cluster: ";
  out += cluster_name;
  if (!traceparent.empty()) {
    out += "\r\ntraceparent: ";
    out += traceparent;
  }
  if (!keyspace.empty()) {
    out += "\r\nDC-Ring-Version: ";
    append_decimal_u64(out, ring_version);
    if (wait_ms != 0) {
      out += "\r\nDC-Wait-Ms: ";
      append_decimal_u64(out, wait_ms);
    }
    if (push_read_ms != 0) {
      out += "\r\nDC-Push-Read-Ms: ";
      append_decimal_u64(out, push_read_ms);
    }
    out += "\r\nContent-Type: application/octet-stream\r\nContent-Length: ";
    append_decimal_u64(out, body_size);
  }
  out += "\r\n\r\n";
}

}  // namespace distcache::detail

// Reading a response and completing the request.
#include <distcache/transport/detail/impl/http_client_response.ipp>
// The TLS side of a connection.
#include <distcache/transport/detail/impl/http_client_tls.ipp>
// Coalescing: calls that wait, and the requests that carry them.
#include <distcache/transport/detail/impl/http_client_calls.ipp>

#endif  // DISTCACHE_TRANSPORT_DETAIL_HTTP_CLIENT_CONNECTION_HPP
