// distcache — what every peer-server connection has: its socket, the
// deadline a watchdog coroutine enforces, and its place in the per-address
// count. http_server_session builds the request handling on it.
#ifndef DISTCACHE_TRANSPORT_DETAIL_HTTP_SERVER_CONNECTION_HPP
#define DISTCACHE_TRANSPORT_DETAIL_HTTP_SERVER_CONNECTION_HPP

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <distcache/clock.hpp>
#include <distcache/config.hpp>
#include <distcache/error.hpp>
#include <distcache/transport/detail/http_server_state.hpp>
#include <distcache/transport/detail/tls_api.hpp>
#include <memory>
#include <string>
#include <tuple>
#include <utility>

namespace distcache::detail {

/// A connection's socket (under TLS, the TLS stream over it) and deadline.
/// The deadline is enforced by
/// watchdog(), a coroutine on the connection's strand that closes the
/// socket once it passes; the request handling moves it (set_deadline) as
/// the connection goes from idle to reading to writing.
class http_connection {
 public:
  http_connection(const http_connection&) = delete;
  http_connection& operator=(const http_connection&) = delete;

  /// Asks the connection to end: closes it now when it waits for a request
  /// or is in the middle of reading one (a stopping node would only answer
  /// it 503, and a peer that sends slowly must not hold stop() for
  /// read_timeout), otherwise after the response in progress. Runs on the
  /// strand.
  void on_stop() {
    if (waiting_ || reading_) close_socket();
  }

  [[nodiscard]] net::any_io_executor executor() { return socket_.get_executor(); }

 protected:
  /// `address` is the remote IP address, counted in the server's
  /// per-address limit until end().
  http_connection(std::shared_ptr<http_server_state> st, net::ip::tcp::socket socket,
                  std::string address)
      : st_(std::move(st)),
        socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        address_(std::move(address)) {
    if (st_->tls) {
      if (auto credentials = st_->tls->current()) tls_ = credentials->make_connection();
      if (tls_) tls_in_.resize(tls_read_chunk);
    }
    error_code ec;
    auto ep = socket_.remote_endpoint(ec);
    remote_ = ec ? std::string("?") : ep.address().to_string() + ":" + std::to_string(ep.port());
  }
  ~http_connection() = default;

  static constexpr auto tuple_awaitable = net::as_tuple(net::use_awaitable);
  using io_result = std::tuple<error_code, std::size_t>;
  static constexpr std::size_t tls_read_chunk = std::size_t{17} * 1024;  // a record and more

  /// Writes all of `buffers`, encrypted when the connection has TLS.
  template <class Buffers>
  net::awaitable<io_result> write_all(const Buffers& buffers) {
    return tls_ ? tls_write(buffers) : net::async_write(socket_, buffers, tuple_awaitable);
  }

  /// Decrypts what arrived into `buffer`: true with `n` bytes, or with
  /// `ec` set when the peer closed or TLS failed; false when a whole record
  /// has not arrived yet (read ciphertext into tls_in_, put_input, retry).
  bool tls_decrypt(net::mutable_buffer buffer, std::size_t& n, error_code& ec) {
    switch (tls_->read(static_cast<char*>(buffer.data()), buffer.size(), n)) {
      case tls_connection::status::done:
        return true;
      case tls_connection::status::closed:
        ec = net::error::eof;
        return true;
      case tls_connection::status::failed:
        ec = tls_->error();
        return true;
      case tls_connection::status::want_input:
        break;
    }
    return false;
  }

  /// Encrypts `buffers` into tls_out_ (a small response gathered into one
  /// record: a record costs about 1 us whatever its size). False on failure.
  template <class Buffers>
  bool tls_encrypt(const Buffers& buffers) {
    std::size_t total = 0;
    for (auto it = net::buffer_sequence_begin(buffers); it != net::buffer_sequence_end(buffers);
         ++it)
      total += it->size();
    bool ok = true;
    if (total <= tls_gather_limit) {
      tls_plain_.clear();
      for (auto it = net::buffer_sequence_begin(buffers); it != net::buffer_sequence_end(buffers);
           ++it)
        tls_plain_.append(static_cast<const char*>(it->data()), it->size());
      ok = tls_->write(tls_plain_);
    } else {
      for (auto it = net::buffer_sequence_begin(buffers);
           ok && it != net::buffer_sequence_end(buffers); ++it)
        ok = tls_->write({static_cast<const char*>(it->data()), it->size()});
    }
    tls_out_.clear();
    tls_->take_output(tls_out_);
    return ok;
  }

  /// Writes what the socket takes of tls_out_ now (it is non-blocking);
  /// returns how much.
  std::size_t tls_send_now(error_code& ec) {
    const std::size_t n = socket_.write_some(net::buffer(tls_out_), ec);
    if (ec == net::error::would_block || ec == net::error::try_again) {
      ec = {};
      return 0;
    }
    return ec ? 0 : n;
  }

  /// Sends all of tls_out_ from `from` on, waiting for the socket if needed.
  net::awaitable<error_code> tls_send_rest(std::size_t from) {
    if (from >= tls_out_.size()) co_return error_code{};
    auto [ec, n] = co_await net::async_write(
        socket_, net::buffer(tls_out_.data() + from, tls_out_.size() - from), tuple_awaitable);
    co_return ec;
  }

  /// Encrypts `buffers` and sends the records.
  template <class Buffers>
  net::awaitable<io_result> tls_write(const Buffers& buffers) {
    if (!tls_encrypt(buffers)) co_return io_result{tls_->error(), 0};
    error_code ec;
    const std::size_t n = tls_send_now(ec);
    if (!ec) ec = co_await tls_send_rest(n);
    co_return io_result{ec, ec ? 0 : net::buffer_size(buffers)};
  }

  /// Sends the ciphertext TLS produced outside a write (handshake flights,
  /// alerts, close_notify).
  net::awaitable<error_code> tls_flush() {
    tls_out_.clear();
    if (!tls_->take_output(tls_out_)) co_return error_code{};
    error_code ec;
    const std::size_t n = tls_send_now(ec);
    if (ec) co_return ec;
    co_return co_await tls_send_rest(n);
  }

  /// The server's side of the TLS handshake, within read_timeout. A failure
  /// (another CA, an expired or missing client certificate, a plaintext
  /// client) is counted and logged once a minute per address; false then.
  net::awaitable<bool> tls_handshake() {
    if (!tls_) {
      log(log_level::error, "closing connection from " + remote_ + ": TLS is not set up");
      co_return false;
    }
    reading_ = true;
    const auto done_reading = reading_scope(reading_);
    set_deadline(st_->options.read_timeout);
    error_code ec;
    for (;;) {
      const auto step = tls_->handshake();
      // What it produced goes out first: the server's flight, or the alert
      // that tells a refused client why.
      if (auto fec = co_await tls_flush()) {
        ec = fec;
        break;
      }
      if (step == tls_connection::status::done) break;
      if (step != tls_connection::status::want_input) {
        ec = tls_->error();
        break;
      }
      auto [rec, got] = co_await socket_.async_read_some(net::buffer(tls_in_), tuple_awaitable);
      if (rec) {
        ec = rec;
        break;
      }
      tls_->put_input(tls_in_.data(), got);
    }
    if (ec) {
      st_->tls_handshakes_failed.fetch_add(1, std::memory_order_relaxed);
      if (st_->per_address.should_log("tls " + address_, clock_type::now())) {
        std::string why = timed_out_ ? "handshake not complete within read_timeout " +
                                           format_duration(st_->options.read_timeout)
                                     : ec.message();
        if (const auto refused = tls_->verify_failure(); !timed_out_ && !refused.empty())
          why += " (" + refused + ")";
        log(log_level::warning, "refusing a TLS connection from " + remote_ + ": " + why +
                                    "; logged once a minute per address");
      }
      co_return false;
    }
    st_->tls_handshakes.fetch_add(1, std::memory_order_relaxed);
    if (tls_->resumed()) st_->tls_resumed.fetch_add(1, std::memory_order_relaxed);
    deadline_ = time_point::max();
    co_return true;
  }

  void log(log_level level, const std::string& text) const {
    st_->write_log(level, "distcache transport: " + text);
  }

  // Clears a flag when the coroutine frame leaves its scope.
  class reading_scope {
   public:
    explicit reading_scope(bool& flag) : flag_(flag) {}
    reading_scope(const reading_scope&) = delete;
    reading_scope& operator=(const reading_scope&) = delete;
    ~reading_scope() { flag_ = false; }

   private:
    bool& flag_;
  };

  void set_deadline(duration d) {
    deadline_ = clock_type::now() + d;
    // Only a deadline shorter than read_timeout can fall before the
    // watchdog's next wake-up (see watchdog()); wake it to re-arm.
    if (deadline_ < timer_expiry_) timer_.cancel();
  }

  void close_socket() {
    error_code ignored;
    socket_.close(ignored);  // NOLINT(bugprone-unused-return-value)
  }

  /// Ends the connection: stops the watchdog, closes the socket and leaves
  /// the per-address count.
  void end() {
    ended_ = true;
    timer_.cancel();
    close_socket();
    st_->per_address.remove(address_);
  }

  static net::awaitable<void> watchdog(std::shared_ptr<http_connection> self) {
    // The timer wakes at least every read_timeout, so moving the deadline
    // closer (idle -> reading, exactly read_timeout ahead) needs no timer
    // operation; set_deadline() wakes it only for a shorter deadline.
    const duration tick = self->st_->options.read_timeout;
    while (!self->ended_) {
      const auto now = clock_type::now();
      if (now >= self->deadline_) {
        self->timed_out_ = true;
        self->close_socket();
        co_return;
      }
      self->timer_expiry_ = self->deadline_ - now > tick ? now + tick : self->deadline_;
      self->timer_.expires_at(self->timer_expiry_);
      co_await self->timer_.async_wait(tuple_awaitable);
      self->timer_expiry_ = time_point::min();
    }
  }

  std::shared_ptr<http_server_state> st_;
  net::ip::tcp::socket socket_;
  std::unique_ptr<tls_connection> tls_;  // null: plaintext
  std::string tls_in_;                   // ciphertext read from the socket
  std::string tls_out_;                  // ciphertext being sent
  std::string tls_plain_;                // a small response gathered into one record
  static constexpr std::size_t tls_gather_limit = std::size_t{16} * 1024;
  static constexpr std::size_t tls_piece = std::size_t{64} * 1024;  // of a large response
  net::steady_timer timer_;
  std::string address_;  // the remote IP address (per-address limit)
  std::string remote_;   // "address:port", for log lines
  time_point deadline_ = time_point::max();
  time_point timer_expiry_ = time_point::min();  // when the watchdog wakes next
  bool waiting_ = false;
  bool reading_ = false;  // inside the reading of a request
  bool timed_out_ = false;
  bool ended_ = false;
};

}  // namespace distcache::detail

#endif  // DISTCACHE_TRANSPORT_DETAIL_HTTP_SERVER_CONNECTION_HPP
