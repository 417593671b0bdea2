// distcache — the pooled HTTP/1.1 client that sends peer requests (protocol v1).
#ifndef DISTCACHE_TRANSPORT_HTTP_CLIENT_HPP
#define DISTCACHE_TRANSPORT_HTTP_CLIENT_HPP

#include <algorithm>
#include <array>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <distcache/clock.hpp>
#include <distcache/config.hpp>
#include <distcache/detail/config.hpp>
#include <distcache/error.hpp>
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

enum class http_client_op : std::uint8_t { get, get_many, set, remove, invalidate, health };

/// The parts of a response the client uses, reused across responses.
struct http_response_data {
  unsigned status = 0;
  std::string body;
  std::string dc_error;
  std::optional<std::uint64_t> dc_removed;
  std::uint64_t content_length = 0;  // 0 also when unknown

  void reset() {
    status = 0;
    content_length = 0;
    body.clear();
    dc_error.clear();
    dc_removed.reset();
  }
};

/// A Beast response parser that keeps no field container: it records the
/// status, the DC-* fields and the body (into a reused string).
class http_response_parser final : public boost::beast::http::basic_parser<false> {
 public:
  http_response_parser(http_response_data& data, const transport::wire_limits& limits)
      : data_(data) {
    header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
    body_limit(static_cast<std::uint64_t>(limits.max_body_bytes));
    eager(true);
  }

 private:
  using error_code = boost::beast::error_code;
  using string_view = boost::beast::string_view;
  using field = boost::beast::http::field;

  void on_request_impl(boost::beast::http::verb /*method*/, string_view /*method_str*/,
                       string_view /*target*/, int /*version*/, error_code& /*ec*/) override {}
  void on_response_impl(int code, string_view /*reason*/, int /*version*/,
                        error_code& /*ec*/) override {
    data_.status = static_cast<unsigned>(code);
  }
  void on_field_impl(field name, string_view name_string, string_view value,
                     error_code& /*ec*/) override {
    if (name != field::unknown) return;
    if (boost::beast::iequals(name_string, "DC-Error")) {
      data_.dc_error.assign(value.data(), std::min<std::size_t>(value.size(), 64));
    } else if (boost::beast::iequals(name_string, "DC-Removed")) {
      data_.dc_removed = parse_decimal_u64({value.data(), value.size()});
    }
  }
  void on_header_impl(error_code& /*ec*/) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>& length,
                         error_code& /*ec*/) override {
    if (length) {
      data_.content_length = *length;
      data_.body.reserve(static_cast<std::size_t>(*length));  // <= body_limit
    }
  }
  std::size_t on_body_impl(string_view body, error_code& /*ec*/) override {
    data_.body.append(body.data(), body.size());
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t /*size*/, string_view /*extensions*/,
                            error_code& /*ec*/) override {}
  std::size_t on_chunk_body_impl(std::uint64_t /*remain*/, string_view body,
                                 error_code& /*ec*/) override {
    data_.body.append(body.data(), body.size());
    return body.size();
  }
  void on_finish_impl(error_code& /*ec*/) override {}

  http_response_data& data_;
};

class http_client_connection;

/// The connections to one peer.
struct http_peer_pool {
  std::string name;  // "host:port" as given; also the Host header
  std::string host;
  std::string port;
  std::optional<net::ip::tcp::endpoint> endpoint;  // set when host is a numeric IP
  bool dropped = false;
  std::vector<std::shared_ptr<http_client_connection>> idle;  // most recently used last
  std::vector<std::shared_ptr<http_client_connection>> all;   // idle and busy
};

/// Splits "host:port" or "[v6]:port". False for anything else, including
/// bytes that cannot appear in a Host header.
inline bool split_peer_address(std::string_view peer, std::string& host, std::string& port) {
  for (char c : peer)
    if (c <= 0x20 || c >= 0x7f) return false;
  std::string_view h;
  std::string_view p;
  if (peer.starts_with('[')) {
    const auto close = peer.find(']');
    if (close == std::string_view::npos || close + 1 >= peer.size() || peer[close + 1] != ':')
      return false;
    h = peer.substr(1, close - 1);
    p = peer.substr(close + 2);
  } else {
    const auto colon = peer.rfind(':');
    if (colon == std::string_view::npos) return false;
    h = peer.substr(0, colon);
    p = peer.substr(colon + 1);
    if (h.find(':') != std::string_view::npos) return false;  // IPv6 needs brackets
  }
  const auto n = parse_decimal_u64(p);
  if (h.empty() || !n || *n == 0 || *n > 65535) return false;
  host.assign(h);
  port.assign(p);
  return true;
}

/// What the client and its connections share.
struct http_client_state {
  http_client_state(net::io_context& ioc, transport::client_options opts, logger lg)
      : ioc(ioc), options(std::move(opts)), log(lg ? std::move(lg) : logger(log_to_stderr)) {}

  void write_log(log_level level, const std::string& line) const {
    try {
      log(level, line);
    } catch (...) {  // NOLINT(bugprone-empty-catch): a throwing logger must not break a request
    }
  }

  net::io_context& ioc;
  const transport::client_options options;
  const logger log;
  std::mutex mutex;
  bool closed = false;                                                     // by mutex
  std::unordered_map<std::string, std::shared_ptr<http_peer_pool>> peers;  // by mutex
};

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

  [[nodiscard]] const std::shared_ptr<http_peer_pool>& pool() const noexcept { return pool_; }

  /// Sends `req` (from any thread; the caller owns the connection).
  void start() {
    net::post(strand_, [self = shared_from_this()] { self->on_start(); });
  }

  /// Closes the connection; a request in progress completes with
  /// errc::stopped. From any thread.
  void shutdown() {
    net::post(strand_, [self = shared_from_this()] { self->on_shutdown(); });
  }

 private:
  using tcp = net::ip::tcp;
  static constexpr std::size_t read_chunk = std::size_t{16} * 1024;

  struct outcome {
    error_code ec;
    std::vector<transport::reply_item> items;
    std::size_t removed = 0;
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
    connecting_ = false;
    if (ec) {
      on_failure(ec, "connect");
      return;
    }
    socket_.set_option(tcp::no_delay(true), ec);
    socket_.non_blocking(true, ec);  // for the direct write in write()
    write();
  }

  void write() {
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

  void written() {
    response_.reset();
    parser_.emplace(response_, st_->options.limits);
    read();
  }

  void read() {
    socket_.async_read_some(
        buffer_.prepare(read_size()),
        [self = shared_from_this()](error_code ec, std::size_t n) { self->on_read(ec, n); });
  }

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

  void on_read(error_code ec, std::size_t n) {
    if (dead_) return;
    if (ec) {
      if (ec == net::error::eof && response_started_ && parser_->need_eof()) {
        error_code pec;
        parser_->put_eof(pec);
        if (!pec) {
          on_response(false);
          return;
        }
      }
      on_failure(ec, "read");
      return;
    }
    buffer_.commit(n);
    response_started_ = true;
    for (;;) {
      error_code pec;
      const std::size_t used = parser_->put(buffer_.data(), pec);
      buffer_.consume(used);
      if (pec == boost::beast::http::error::need_more) break;
      if (pec) {
        log_failure("malformed HTTP response: " + pec.message());
        fail(errc::peer_unavailable, false);
        return;
      }
      if (parser_->is_done()) {
        if (response_.status >= 100 && response_.status < 200) {  // interim: read on
          response_.reset();
          parser_.emplace(response_, st_->options.limits);
          if (buffer_.size() > 0) continue;
          break;
        }
        on_response(parser_->keep_alive() && buffer_.size() == 0);
        return;
      }
      if (used == 0 || buffer_.size() == 0) break;
    }
    read();
  }

  void on_response(bool keep_alive) {
    outcome out;
    const unsigned status = response_.status;
    const auto expected = req.op == http_client_op::get || req.op == http_client_op::get_many ||
                                  req.op == http_client_op::health
                              ? 200U
                              : 204U;
    if (status == expected) {
      switch (req.op) {
        case http_client_op::get: {
          out.items.resize(1);
          if (auto ec =
                  transport::decode_get_reply(response_.body, st_->options.limits, out.items[0])) {
            return protocol_error("undecodable get reply: " + ec.message(), keep_alive);
          }
          break;
        }
        case http_client_op::get_many: {
          if (auto ec = transport::decode_get_many_reply(response_.body, st_->options.limits,
                                                         out.items)) {
            return protocol_error("undecodable get-many reply: " + ec.message(), keep_alive);
          }
          if (out.items.size() != req.expected) {
            return protocol_error("get-many reply has " + std::to_string(out.items.size()) +
                                      " items for " + std::to_string(req.expected) + " keys",
                                  keep_alive);
          }
          break;
        }
        case http_client_op::remove:
          if (!response_.dc_removed)
            return protocol_error("remove reply without a valid DC-Removed", keep_alive);
          out.removed = static_cast<std::size_t>(*response_.dc_removed);
          break;
        case http_client_op::health:
          if (response_.body != "ok")
            return protocol_error("health reply is not \"ok\"", keep_alive);
          break;
        case http_client_op::set:
        case http_client_op::invalidate:
          break;
      }
      finish(std::move(out), keep_alive);
      return;
    }
    if (status == 404 && response_.dc_error == "keyspace_not_found") {
      out.ec = make_error_code(errc::keyspace_not_found);
    } else if (status == 422 && req.op == http_client_op::set &&
               errc_from_name(response_.dc_error)) {
      out.ec = make_error_code(*errc_from_name(response_.dc_error));
    } else {
      log_failure(
          "answered HTTP " + std::to_string(status) +
              (response_.dc_error.empty() ? "" : " (DC-Error: " + response_.dc_error + ")") +
              (response_.body.empty() ? "" : ": " + printable_for_log(response_.body, 200)),
          status == 503 ? log_level::info : log_level::warning);
      out.ec = make_error_code(errc::peer_unavailable);
    }
    finish(std::move(out), keep_alive);
  }

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
  void finish(outcome out, bool keep) {
    busy_ = false;
    connecting_ = false;
    // Take what the callback needs before the connection becomes available
    // to another thread.
    auto get_done = std::move(req.get_done);
    auto remove_done = std::move(req.remove_done);
    auto done = std::move(req.done);
    req.get_done = nullptr;
    req.remove_done = nullptr;
    req.done = nullptr;
    const http_client_op op = req.op;
    if (keep && !closed_ && !dead_) keep = release(true);
    if (!keep) {
      dead_ = true;
      close_socket();
      timer_.cancel();
      release(false);
    }
    try {
      switch (op) {
        case http_client_op::get:
        case http_client_op::get_many:
          if (get_done) get_done(out.ec, std::move(out.items));
          break;
        case http_client_op::remove:
          if (remove_done) remove_done(out.ec, out.removed);
          break;
        default:
          if (done) done(out.ec);
          break;
      }
    } catch (const std::exception& e) {
      st_->write_log(log_level::error,
                     std::string("distcache transport: a completion callback threw: ") + e.what());
    }
  }

  /// Returns the connection to its pool (true) or removes it (false).
  bool release(bool keep) {
    const auto self = shared_from_this();
    std::lock_guard lock(st_->mutex);
    http_peer_pool& pool = *pool_;
    if (keep && !st_->closed && !pool.dropped &&
        pool.idle.size() < st_->options.max_idle_per_peer) {
      pool.idle.push_back(self);
      return true;
    }
    auto it = std::find(pool.all.begin(), pool.all.end(), self);
    if (it != pool.all.end()) {
      *it = std::move(pool.all.back());
      pool.all.pop_back();
    }
    return false;
  }

  std::shared_ptr<http_client_state> st_;
  std::shared_ptr<http_peer_pool> pool_;
  net::strand<net::io_context::executor_type> strand_;
  tcp::socket socket_;
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

/// Appends the request line and headers.
inline void append_request_head(std::string& out, std::string_view method, std::string_view path,
                                std::string_view keyspace, std::string_view op,
                                const http_peer_pool& pool, std::string_view self_name,
                                std::uint64_t ring_version, std::size_t body_size) {
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
  if (!keyspace.empty()) {
    out += "\r\nDC-Ring-Version: ";
    append_decimal_u64(out, ring_version);
    out += "\r\nContent-Type: application/octet-stream\r\nContent-Length: ";
    append_decimal_u64(out, body_size);
  }
  out += "\r\n\r\n";
}

/// Joins the replies of a batch split into several requests.
struct http_get_join {
  std::mutex mutex;
  std::vector<transport::reply_item> items;
  std::size_t removed = 0;
  std::size_t pending = 0;
  error_code ec;
};

}  // namespace distcache::detail

namespace distcache::transport {

/// A pooled HTTP/1.1 client for protocol v1 (docs/protocol.md).
///
/// Every operation takes the peer as "host:port" (a numeric IPv4 address, an
/// IPv6 address in brackets, or a host name resolved asynchronously) and a
/// timeout for the whole exchange, and completes by calling its callback
/// exactly once, on a thread running the io_context, never inline. Requests
/// to one peer reuse idle keep-alive connections and open new ones while
/// all are busy; a connection that fails is dropped. A request sent on a
/// reused connection that the peer had closed meanwhile is sent once more on
/// a new one (every operation is idempotent).
///
/// Errors: errc::timeout when the timeout passes (the connection is
/// dropped); errc::peer_unavailable for a refused or broken connection, a
/// connect_timeout, any unexpected HTTP status and any reply that does not
/// decode; errc::keyspace_not_found when the peer does not know the
/// keyspace (404 with DC-Error); for set, the errc the peer names in a 422;
/// errc::invalid_key / value_too_large for arguments over the limits and
/// errc::keyspace_not_found for an empty keyspace name, before anything is
/// sent; errc::stopped after close().
///
/// Thread safety: all members may be called concurrently from any thread.
/// Callbacks must not block (they run on the io_context).
///
/// Lifetime: destroy the client before its io_context. Callbacks of requests
/// still in flight when the io_context stops running are never called.
class http_client final : public peer_client {
 public:
  /// Throws config_error for an invalid option (empty or non-printable
  /// self_name, connect_timeout <= 0, invalid limits).
  http_client(net::io_context& ioc, client_options options, logger log = {})
      : st_(std::make_shared<detail::http_client_state>(ioc, std::move(options), std::move(log))) {
    const client_options& o = st_->options;
    if (o.self_name.empty()) throw config_error("client_options.self_name: must not be empty");
    for (char c : o.self_name) {
      if (c < 0x21 || c > 0x7e)
        throw config_error("client_options.self_name: '" + o.self_name +
                           "' must hold visible ASCII characters only");
    }
    if (o.connect_timeout <= duration::zero())
      throw config_error("client_options.connect_timeout: must be > 0, got " +
                         distcache::detail::format_duration(o.connect_timeout));
    if (auto why = validate(o.limits, "client_options.limits"); !why.empty())
      throw config_error(why);
  }

  http_client(const http_client&) = delete;
  http_client& operator=(const http_client&) = delete;

  /// Closes every connection (see close()).
  ~http_client() override {
    try {
      close();
    } catch (...) {  // NOLINT(bugprone-empty-catch): a destructor must not throw
    }
  }

  /// Looks `keys` up on `peer`: one key goes as a get, more as get-many
  /// (split into requests of at most max_batch keys, sent in parallel).
  /// `done(ec, items)` receives one item per key in key order; on error the
  /// vector is empty. No keys: completes at once with no items.
  void get(const std::string& peer, std::string_view keyspace, std::vector<std::string> keys,
           std::uint64_t ring_version, duration timeout, get_handler done) override {
    if (keys.empty()) return post(std::move(done), error_code{}, std::vector<reply_item>{});
    if (auto ec = check_keys(keyspace, keys))
      return post(std::move(done), ec, std::vector<reply_item>{});
    const std::size_t max = st_->options.limits.max_batch;
    if (keys.size() > max)
      return split_get(peer, keyspace, std::move(keys), ring_version, timeout, std::move(done));
    auto c = acquire(peer);
    if (!c) return post(std::move(done), c.error(), std::vector<reply_item>{});
    auto& conn = **c;
    auto& r = conn.req;
    r.op = keys.size() == 1 ? detail::http_client_op::get : detail::http_client_op::get_many;
    r.expected = keys.size();
    std::size_t body = 4;
    for (const auto& k : keys) body += 4 + k.size();
    begin(conn, keyspace, keys.size() == 1 ? "get" : "get-many", ring_version, timeout, body);
    encode_key_list(r.out, keys);
    r.get_done = std::move(done);
    conn.start();
  }

  /// Stores `value` under `key` on `peer` with remaining TTL `ttl_ms` (-1:
  /// never expires; below -1 is sent as 0, already expired).
  void set(const std::string& peer, std::string_view keyspace, std::string_view key,
           std::string value, std::int64_t ttl_ms, std::uint64_t ring_version, duration timeout,
           handler done) override {
    const wire_limits& l = st_->options.limits;
    if (keyspace.empty()) return post(std::move(done), make_error_code(errc::keyspace_not_found));
    if (key.empty() || key.size() > l.max_key_bytes)
      return post(std::move(done), make_error_code(errc::invalid_key));
    if (value.size() > l.max_value_bytes)
      return post(std::move(done), make_error_code(errc::value_too_large));
    auto c = acquire(peer);
    if (!c) return post(std::move(done), c.error());
    auto& conn = **c;
    auto& r = conn.req;
    r.op = detail::http_client_op::set;
    begin(conn, keyspace, "set", ring_version, timeout, 4 + key.size() + 8 + 4 + value.size());
    encode_set_body_head(r.out, key, ttl_ms < -1 ? 0 : ttl_ms, value.size());
    r.value = std::move(value);
    r.done = std::move(done);
    conn.start();
  }

  /// Removes `keys` from `peer`'s caches; `done(ec, n)` receives how many it
  /// held. Batches over max_batch are split and the counts added.
  void remove(const std::string& peer, std::string_view keyspace, std::vector<std::string> keys,
              std::uint64_t ring_version, duration timeout, remove_handler done) override {
    if (keys.empty()) return post(std::move(done), error_code{}, std::size_t{0});
    if (auto ec = check_keys(keyspace, keys)) return post(std::move(done), ec, std::size_t{0});
    if (keys.size() > st_->options.limits.max_batch) {
      return split_keys(
          peer, keyspace, std::move(keys), ring_version, timeout,
          [done = std::move(done)](error_code ec, std::size_t n) { done(ec, n); }, true);
    }
    auto c = acquire(peer);
    if (!c) return post(std::move(done), c.error(), std::size_t{0});
    send_key_list(**c, detail::http_client_op::remove, "remove", keyspace, keys, ring_version,
                  timeout);
    (*c)->req.remove_done = std::move(done);
    (*c)->start();
  }

  /// Drops `keys` from `peer`'s caches (after a put on this node).
  void invalidate(const std::string& peer, std::string_view keyspace, std::vector<std::string> keys,
                  std::uint64_t ring_version, duration timeout, handler done) override {
    if (keys.empty()) return post(std::move(done), error_code{});
    if (auto ec = check_keys(keyspace, keys)) return post(std::move(done), ec);
    if (keys.size() > st_->options.limits.max_batch) {
      return split_keys(
          peer, keyspace, std::move(keys), ring_version, timeout,
          [done = std::move(done)](error_code ec, std::size_t) { done(ec); }, false);
    }
    auto c = acquire(peer);
    if (!c) return post(std::move(done), c.error());
    send_key_list(**c, detail::http_client_op::invalidate, "invalidate", keyspace, keys,
                  ring_version, timeout);
    (*c)->req.done = std::move(done);
    (*c)->start();
  }

  /// Asks `peer` whether it serves (GET /_distcache/v1/health → 200 "ok").
  void health(const std::string& peer, duration timeout, handler done) override {
    auto c = acquire(peer);
    if (!c) return post(std::move(done), c.error());
    auto& r = (*c)->req;
    r.op = detail::http_client_op::health;
    r.timeout = timeout;
    r.keyspace.clear();
    r.out.clear();
    r.value.clear();
    detail::append_request_head(r.out, "GET", detail::dc_health_path, {}, {}, *(*c)->pool(),
                                st_->options.self_name, 0, 0);
    r.done = std::move(done);
    (*c)->start();
  }

  /// Closes every pooled connection; requests in flight complete with
  /// errc::stopped, and so does every later call. Returns at once.
  void close() override {
    std::vector<std::shared_ptr<detail::http_client_connection>> conns;
    {
      std::lock_guard lock(st_->mutex);
      if (st_->closed) return;
      st_->closed = true;
      for (auto& [name, pool] : st_->peers) {
        pool->dropped = true;
        pool->idle.clear();
        conns.insert(conns.end(), pool->all.begin(), pool->all.end());
        pool->all.clear();
      }
      st_->peers.clear();
    }
    for (auto& c : conns) c->shutdown();
  }

  /// Closes the idle connections to `peer` and forgets it (for a peer that
  /// left); requests in flight to it finish normally.
  void drop_peer(const std::string& peer) {
    std::vector<std::shared_ptr<detail::http_client_connection>> idle;
    {
      std::lock_guard lock(st_->mutex);
      auto it = st_->peers.find(peer);
      if (it == st_->peers.end()) return;
      auto pool = it->second;
      st_->peers.erase(it);
      pool->dropped = true;
      idle.swap(pool->idle);
      for (auto& c : idle) {
        auto pos = std::find(pool->all.begin(), pool->all.end(), c);
        if (pos != pool->all.end()) pool->all.erase(pos);
      }
    }
    for (auto& c : idle) c->shutdown();
  }

  /// Open connections (idle and busy) to `peer`.
  [[nodiscard]] std::size_t connections(const std::string& peer) const {
    std::lock_guard lock(st_->mutex);
    auto it = st_->peers.find(peer);
    return it == st_->peers.end() ? 0 : it->second->all.size();
  }

 private:
  using connection_ptr = std::shared_ptr<detail::http_client_connection>;

  template <class Handler, class... Args>
  void post(Handler&& done, Args&&... args) {
    net::post(st_->ioc,
              [done = std::forward<Handler>(done), ... args = std::forward<Args>(args)]() mutable {
                if (done) done(std::move(args)...);
              });
  }

  [[nodiscard]] error_code check_keys(std::string_view keyspace,
                                      const std::vector<std::string>& keys) const {
    if (keyspace.empty()) return make_error_code(errc::keyspace_not_found);
    for (const auto& k : keys)
      if (k.empty() || k.size() > st_->options.limits.max_key_bytes)
        return make_error_code(errc::invalid_key);
    return {};
  }

  /// Takes an idle connection to `peer` or makes a new one.
  result<connection_ptr> acquire(const std::string& peer) {
    std::lock_guard lock(st_->mutex);
    if (st_->closed) return make_error_code(errc::stopped);
    auto it = st_->peers.find(peer);
    if (it == st_->peers.end()) {
      auto pool = std::make_shared<detail::http_peer_pool>();
      if (!detail::split_peer_address(peer, pool->host, pool->port)) {
        st_->write_log(log_level::warning, "distcache transport: peer address '" +
                                               detail::printable_for_log(peer) +
                                               "' is not host:port");
        return make_error_code(errc::peer_unavailable);
      }
      pool->name = peer;
      error_code ec;
      auto address = net::ip::make_address(pool->host, ec);
      if (!ec) {
        pool->endpoint.emplace(address, static_cast<std::uint16_t>(std::stoul(pool->port)));
      }
      it = st_->peers.emplace(peer, std::move(pool)).first;
    }
    auto& pool = *it->second;
    if (!pool.idle.empty()) {
      auto c = std::move(pool.idle.back());
      pool.idle.pop_back();
      return c;
    }
    auto c = std::make_shared<detail::http_client_connection>(st_, it->second);
    pool.all.push_back(c);
    return c;
  }

  /// Fills the request line and headers of a keyspace operation.
  void begin(detail::http_client_connection& conn, std::string_view keyspace, std::string_view op,
             std::uint64_t ring_version, duration timeout, std::size_t body_size) {
    auto& r = conn.req;
    r.timeout = timeout;
    r.keyspace.assign(keyspace);
    r.out.clear();
    r.value.clear();
    detail::append_request_head(r.out, "POST", detail::dc_keyspace_prefix, keyspace, op,
                                *conn.pool(), st_->options.self_name, ring_version, body_size);
  }

  void send_key_list(detail::http_client_connection& conn, detail::http_client_op op,
                     std::string_view op_name, std::string_view keyspace,
                     const std::vector<std::string>& keys, std::uint64_t ring_version,
                     duration timeout) {
    auto& r = conn.req;
    r.op = op;
    std::size_t body = 4;
    for (const auto& k : keys) body += 4 + k.size();
    begin(conn, keyspace, op_name, ring_version, timeout, body);
    encode_key_list(r.out, keys);
  }

  void split_get(const std::string& peer, std::string_view keyspace, std::vector<std::string> keys,
                 std::uint64_t ring_version, duration timeout, get_handler done) {
    const std::size_t max = st_->options.limits.max_batch;
    auto join = std::make_shared<detail::http_get_join>();
    join->items.resize(keys.size());
    join->pending = (keys.size() + max - 1) / max;
    auto shared_done = std::make_shared<get_handler>(std::move(done));
    for (std::size_t offset = 0; offset < keys.size(); offset += max) {
      const std::size_t n = std::min(max, keys.size() - offset);
      const auto first = keys.begin() + static_cast<std::ptrdiff_t>(offset);
      std::vector<std::string> part(
          std::make_move_iterator(first),
          std::make_move_iterator(first + static_cast<std::ptrdiff_t>(n)));
      get(peer, keyspace, std::move(part), ring_version, timeout,
          [join, shared_done, offset](error_code ec, std::vector<reply_item> items) {
            bool last = false;
            {
              std::lock_guard lock(join->mutex);
              if (ec && !join->ec) join->ec = ec;
              for (std::size_t i = 0; i < items.size() && offset + i < join->items.size(); ++i)
                join->items[offset + i] = std::move(items[i]);
              last = --join->pending == 0;
            }
            if (!last) return;
            if (join->ec) {
              (*shared_done)(join->ec, {});
            } else {
              (*shared_done)({}, std::move(join->items));
            }
          });
    }
  }

  void split_keys(const std::string& peer, std::string_view keyspace, std::vector<std::string> keys,
                  std::uint64_t ring_version, duration timeout, remove_handler done,
                  bool is_remove) {
    const std::size_t max = st_->options.limits.max_batch;
    auto join = std::make_shared<detail::http_get_join>();
    join->pending = (keys.size() + max - 1) / max;
    auto shared_done = std::make_shared<remove_handler>(std::move(done));
    auto part_done = [join, shared_done](error_code ec, std::size_t n) {
      bool last = false;
      {
        std::lock_guard lock(join->mutex);
        if (ec && !join->ec) join->ec = ec;
        join->removed += n;
        last = --join->pending == 0;
      }
      if (last) (*shared_done)(join->ec, join->ec ? 0 : join->removed);
    };
    for (std::size_t offset = 0; offset < keys.size(); offset += max) {
      const std::size_t n = std::min(max, keys.size() - offset);
      const auto first = keys.begin() + static_cast<std::ptrdiff_t>(offset);
      std::vector<std::string> part(
          std::make_move_iterator(first),
          std::make_move_iterator(first + static_cast<std::ptrdiff_t>(n)));
      if (is_remove) {
        remove(peer, keyspace, std::move(part), ring_version, timeout, part_done);
      } else {
        invalidate(peer, keyspace, std::move(part), ring_version, timeout,
                   [part_done](error_code ec) { part_done(ec, 0); });
      }
    }
  }

  std::shared_ptr<detail::http_client_state> st_;
};

}  // namespace distcache::transport

#endif  // DISTCACHE_TRANSPORT_HTTP_CLIENT_HPP
