// distcache — the HTTP/1.1 server that answers peer requests (protocol v1).
#ifndef DISTCACHE_TRANSPORT_HTTP_SERVER_HPP
#define DISTCACHE_TRANSPORT_HTTP_SERVER_HPP

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <distcache/clock.hpp>
#include <distcache/config.hpp>
#include <distcache/detail/config.hpp>
#include <distcache/error.hpp>
#include <distcache/transport/peer.hpp>
#include <distcache/transport/peer_service.hpp>
#include <distcache/transport/wire.hpp>
#include <exception>
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

inline std::string_view http_reason_phrase(unsigned status) noexcept {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 413:
      return "Content Too Large";
    case 422:
      return "Unprocessable Content";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

/// The parts of a request the server uses. One instance per connection is
/// reused for every request, so parsing allocates only when a request is
/// larger than any before it on that connection.
struct http_request_data {
  boost::beast::http::verb method = boost::beast::http::verb::unknown;
  std::string method_text;
  std::string target;
  std::string from;
  bool has_from = false;
  std::uint64_t ring_version = 0;
  bool bad_ring_version = false;
  bool expect_continue = false;
  int version = 11;
  std::string body;

  void reset() {
    method = boost::beast::http::verb::unknown;
    method_text.clear();
    target.clear();
    from.clear();
    has_from = false;
    ring_version = 0;
    bad_ring_version = false;
    expect_continue = false;
    version = 11;
    body.clear();
  }
};

/// A Beast parser that stores only what http_request_data holds: it keeps no
/// field container and writes the body into a reused string.
class http_request_parser final : public boost::beast::http::basic_parser<true> {
 public:
  http_request_parser(http_request_data& data, const transport::wire_limits& limits) : data_(data) {
    header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
    body_limit(static_cast<std::uint64_t>(limits.max_body_bytes));
    eager(true);
  }

 private:
  using error_code = boost::beast::error_code;
  using string_view = boost::beast::string_view;
  using field = boost::beast::http::field;

  void on_request_impl(boost::beast::http::verb method, string_view method_str, string_view target,
                       int version, error_code& /*ec*/) override {
    data_.method = method;
    data_.method_text.assign(method_str.data(), std::min<std::size_t>(method_str.size(), 16));
    data_.target.assign(target.data(), target.size());
    data_.version = version;
  }
  void on_response_impl(int /*code*/, string_view /*reason*/, int /*version*/,
                        error_code& /*ec*/) override {}
  void on_field_impl(field name, string_view name_string, string_view value,
                     error_code& /*ec*/) override {
    if (name == field::expect) {
      if (boost::beast::iequals(value, "100-continue")) data_.expect_continue = true;
    } else if (name == field::unknown) {
      if (boost::beast::iequals(name_string, "DC-From")) {
        data_.from.assign(value.data(), value.size());
        data_.has_from = true;
      } else if (boost::beast::iequals(name_string, "DC-Ring-Version")) {
        if (auto v = parse_decimal_u64({value.data(), value.size()})) {
          data_.ring_version = *v;
        } else {
          data_.bad_ring_version = true;
        }
      }
    }
  }
  void on_header_impl(error_code& /*ec*/) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>& length,
                         error_code& /*ec*/) override {
    // The length is already within body_limit, but a client may announce a
    // large body and never send it: grow with what arrives beyond 1 MiB.
    if (length)
      data_.body.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(*length, 1 << 20)));
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

  http_request_data& data_;
};

class http_server_session;

/// What the server and its sessions share. Sessions hold it by shared_ptr,
/// so it outlives the http_server object while connections finish.
struct http_server_state {
  http_server_state(net::io_context& ioc, transport::peer_service& svc,
                    transport::server_options opts, logger lg)
      : ioc(ioc),
        svc(svc),
        options(std::move(opts)),
        log(lg ? std::move(lg) : logger(log_to_stderr)),
        acceptor(net::make_strand(ioc)) {}

  void write_log(log_level level, const std::string& line) const {
    try {
      log(level, line);
    } catch (...) {  // NOLINT(bugprone-empty-catch): a throwing logger must not end a session
    }
  }

  void session_ended(const http_server_session* s) {
    std::lock_guard lock(mutex);
    sessions.erase(s);
    active.fetch_sub(1, std::memory_order_relaxed);
    if (sessions.empty() && !accepting) idle_cv.notify_all();
  }

  net::io_context& ioc;
  transport::peer_service& svc;
  const transport::server_options options;
  const logger log;
  net::ip::tcp::acceptor acceptor;
  std::atomic<bool> stopping{false};
  std::atomic<std::size_t> active{0};
  std::atomic<std::uint64_t> accepted{0};

  mutable std::mutex mutex;
  mutable std::condition_variable idle_cv;
  bool accepting = false;  // guarded by mutex
  std::unordered_map<const http_server_session*, std::weak_ptr<http_server_session>>
      sessions;  // by mutex
};

/// Completes a coroutine waiting for transport::peer_service::get from whatever thread
/// the service finishes on. The service's callback is a copyable
/// std::function while Asio handlers are move-only, hence the shared state;
/// the flag makes a second call of `done` harmless.
template <class Handler>
struct peer_get_completion {
  explicit peer_get_completion(Handler h) : handler(std::move(h)) {}
  void complete(std::vector<transport::reply_item> items) {
    if (fired.exchange(true, std::memory_order_acq_rel)) return;
    auto ex = net::get_associated_executor(handler);
    net::post(ex, [h = std::move(handler), items = std::move(items)]() mutable {
      std::move(h)(std::move(items));
    });
  }
  Handler handler;
  std::atomic<bool> fired{false};
};

/// One accepted connection: a coroutine that reads requests one after the
/// other (keep-alive, pipelined requests answered in order) and a watchdog
/// coroutine that closes the socket when the current deadline passes. Both
/// run on the connection's strand.
class http_server_session : public std::enable_shared_from_this<http_server_session> {
 public:
  http_server_session(std::shared_ptr<http_server_state> st, net::ip::tcp::socket socket)
      : st_(std::move(st)), socket_(std::move(socket)), timer_(socket_.get_executor()) {
    error_code ec;
    auto ep = socket_.remote_endpoint(ec);
    remote_ = ec ? std::string("?") : ep.address().to_string() + ":" + std::to_string(ep.port());
  }

  /// Starts both coroutines.
  static void launch(const std::shared_ptr<http_server_session>& self) {
    auto ex = self->socket_.get_executor();
    std::weak_ptr<http_server_state> weak_state = self->st_;
    net::co_spawn(ex, run(self), [weak_state](const std::exception_ptr& e) {
      if (!e) return;
      if (auto st = weak_state.lock()) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& x) {
          st->write_log(log_level::error,
                        std::string("distcache transport: session failed: ") + x.what());
        } catch (...) {
          st->write_log(log_level::error, "distcache transport: session failed");
        }
      }
    });
    net::co_spawn(ex, watchdog(self), [](const std::exception_ptr&) {});
  }

  /// Asks the session to end: closes it now when it waits for a request,
  /// otherwise after the response in progress. Runs on the strand.
  void on_stop() {
    if (waiting_) close_socket();
  }

  [[nodiscard]] net::any_io_executor executor() { return socket_.get_executor(); }

 private:
  using tcp = net::ip::tcp;
  static constexpr auto tuple_awaitable = net::as_tuple(net::use_awaitable);
  static constexpr std::size_t read_chunk = std::size_t{16} * 1024;

  enum class read_outcome { request, parse_error, closed, truncated, timed_out, failed };

  void log(log_level level, const std::string& text) const {
    st_->write_log(level, "distcache transport: " + text);
  }

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

  static net::awaitable<void> watchdog(std::shared_ptr<http_server_session> self) {
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

  static net::awaitable<void> run(std::shared_ptr<http_server_session> self) {
    try {
      co_await self->serve();
    } catch (const std::exception& e) {  // e.g. bad_alloc: end this session, keep the server
      self->log(log_level::error, "closing connection from " + self->remote_ + ": " + e.what());
    }
    self->ended_ = true;
    self->timer_.cancel();
    self->close_socket();
    self->st_->session_ended(self.get());
  }

  net::awaitable<void> serve() {
    error_code ec;
    socket_.set_option(tcp::no_delay(true), ec);
    socket_.non_blocking(true, ec);  // for the direct write in write_response()
    for (;;) {
      req_.reset();
      http_request_parser parser(req_, st_->options.limits);
      error_code parse_ec;
      const read_outcome outcome = co_await read_request(parser, parse_ec);
      switch (outcome) {
        case read_outcome::request:
          // The node's own timeouts bound the work; read_timeout covers
          // reading and writing only.
          deadline_ = time_point::max();
          break;
        case read_outcome::parse_error:
          co_await reject_unparsable(parse_ec);
          co_return;
        case read_outcome::truncated:
          log(log_level::warning, "closing connection from " + remote_ +
                                      ": it closed in the middle of a request (truncated)");
          co_return;
        case read_outcome::timed_out:
          log(log_level::warning, "closing connection from " + remote_ +
                                      ": request not complete within read_timeout " +
                                      format_duration(st_->options.read_timeout));
          co_return;
        case read_outcome::closed:
        case read_outcome::failed:
          co_return;
      }
      co_await handle(parser.keep_alive());
      if (!co_await write_response()) co_return;
      if (closing_) {
        co_await linger_close();
        co_return;
      }
    }
  }

  net::awaitable<read_outcome> read_request(http_request_parser& parser, error_code& parse_ec) {
    bool started = buf_.size() > 0;
    if (started) {
      set_deadline(st_->options.read_timeout);
    } else {
      if (st_->stopping.load(std::memory_order_acquire)) co_return read_outcome::closed;
      set_deadline(st_->options.idle_timeout);
      waiting_ = true;
    }
    bool continue_sent = false;
    for (;;) {
      if (buf_.size() > 0) {
        error_code ec;
        const std::size_t n = parser.put(buf_.data(), ec);
        buf_.consume(n);
        if (ec == boost::beast::http::error::need_more) {
          ec = {};
        } else if (ec) {
          parse_ec = ec;
          co_return read_outcome::parse_error;
        } else if (parser.is_done()) {
          co_return read_outcome::request;
        }
        if (parser.is_header_done() && req_.expect_continue && !continue_sent) {
          continue_sent = true;
          static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
          auto [wec, wn] = co_await net::async_write(socket_, net::buffer(cont), tuple_awaitable);
          if (wec) co_return timed_out_ ? read_outcome::timed_out : read_outcome::failed;
        }
        if (n > 0 && buf_.size() > 0) continue;
      }
      auto [ec, n] = co_await socket_.async_read_some(buf_.prepare(read_chunk), tuple_awaitable);
      waiting_ = false;
      if (ec) {
        if (timed_out_) co_return started ? read_outcome::timed_out : read_outcome::closed;
        if (!started) co_return read_outcome::closed;
        if (ec == net::error::eof || ec == net::error::connection_reset)
          co_return read_outcome::truncated;
        co_return read_outcome::failed;
      }
      buf_.commit(n);
      if (!started) {
        started = true;
        set_deadline(st_->options.read_timeout);
      }
    }
  }

  /// Answers a request the parser rejected, then closes the connection.
  net::awaitable<void> reject_unparsable(const error_code& ec) {
    namespace http = boost::beast::http;
    unsigned status = 400;
    std::string why;
    if (ec == http::error::header_limit) {
      status = 431;
      why = "request header larger than max_header_bytes (" +
            std::to_string(st_->options.limits.max_header_bytes) + ")";
    } else if (ec == http::error::body_limit) {
      status = 413;
      why = "request body larger than max_body_bytes (" +
            std::to_string(st_->options.limits.max_body_bytes) + ")";
    } else {
      why = "malformed HTTP request: " + ec.message();
    }
    log(log_level::warning,
        std::to_string(status) + " to " + remote_ + " " + printable_for_log(req_.method_text) +
            " " + printable_for_log(req_.target) + ": " + why + "; closing the connection");
    make_text_response(status, why, {}, true);
    if (co_await write_response()) co_await linger_close();
  }

  /// Builds a plain-text response with `extra` header lines.
  void make_text_response(unsigned status, std::string_view text, std::string_view extra,
                          bool close) {
    body_.assign(text);
    value_ = {};
    make_head(status, "text/plain", extra, close);
  }

  void make_head(unsigned status, std::string_view content_type, std::string_view extra,
                 bool close) {
    head_.clear();
    head_ += "HTTP/1.1 ";
    append_decimal_u64(head_, status);
    head_ += ' ';
    head_ += http_reason_phrase(status);
    head_ += "\r\n";
    if (status != 204) {  // RFC 9110: a 204 carries no Content-Length
      head_ += "Content-Type: ";
      head_ += content_type;
      head_ += "\r\nContent-Length: ";
      append_decimal_u64(head_, body_.size() + value_.size());
      head_ += "\r\n";
    }
    head_ += extra;
    // A stopping server answers what it already received (pipelined
    // requests get 503) and closes after the last of it.
    if (st_->stopping.load(std::memory_order_acquire) && buf_.size() == 0) close = true;
    closing_ = close;
    if (close) {
      head_ += "Connection: close\r\n";
    } else if (req_.version == 10) {
      head_ += "Connection: keep-alive\r\n";
    }
    head_ += "\r\n";
  }

  /// Rejects a request that parsed: logs one line and builds the response.
  void reject(unsigned status, std::string_view why, std::string_view extra, bool close) {
    log(log_level::warning, std::to_string(status) + " to " + remote_ + " (" +
                                printable_for_log(req_.from.empty() ? std::string_view("no DC-From")
                                                                    : std::string_view(req_.from)) +
                                ") " + printable_for_log(req_.method_text) + " " +
                                printable_for_log(req_.target) + ": " +
                                printable_for_log(why, 300));
    make_text_response(status, why, extra, close);
  }

  /// Handles a parsed request and builds the response in head_/body_/value_
  /// (make_head() sets closing_). Returns whether the connection closes.
  net::awaitable<bool> handle(bool keep_alive) {
    namespace http = boost::beast::http;
    bool close = !keep_alive;
    if (st_->stopping.load(std::memory_order_acquire)) {
      reject(503, "node is stopping", {}, true);
      co_return true;
    }
    const std::string_view target = req_.target;
    if (target == dc_health_path) {
      if (req_.method != http::verb::get) {
        reject(405, "health takes GET", "Allow: GET\r\n", close);
      } else {
        body_.assign("ok");
        value_ = {};
        make_head(200, "text/plain", {}, close);
      }
      co_return close;
    }
    if (!target.starts_with(dc_keyspace_prefix)) {
      reject(404, "unknown path", {}, close);
      co_return close;
    }
    const std::string_view rest = target.substr(dc_keyspace_prefix.size());
    const auto slash = rest.find('/');
    const std::string_view op = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
    enum class operation { get, get_many, set, remove, invalidate } kind{};
    if (op == "get") {
      kind = operation::get;
    } else if (op == "get-many") {
      kind = operation::get_many;
    } else if (op == "set") {
      kind = operation::set;
    } else if (op == "remove") {
      kind = operation::remove;
    } else if (op == "invalidate") {
      kind = operation::invalidate;
    } else {
      reject(404, "unknown path", {}, close);
      co_return close;
    }
    if (req_.method != http::verb::post) {
      reject(405, "keyspace operations take POST", "Allow: POST\r\n", close);
      co_return close;
    }
    if (!decode_path_segment(rest.substr(0, slash), keyspace_) || keyspace_.empty()) {
      reject(400, "malformed keyspace name in the path", {}, close);
      co_return close;
    }
    if (!req_.has_from || req_.from.empty()) {
      reject(400, "missing DC-From header", {}, close);
      co_return close;
    }
    if (req_.bad_ring_version) {
      reject(400, "DC-Ring-Version is not an unsigned 64-bit decimal", {}, close);
      co_return close;
    }
    transport::peer_service& svc = st_->svc;
    try {
      if (!svc.has_keyspace(keyspace_)) {
        reject(404,
               "keyspace '" + printable_for_log(keyspace_) + "' is not configured on this node",
               "DC-Error: keyspace_not_found\r\n", close);
        co_return close;
      }
      svc.on_peer_request(transport::request_info{req_.from, req_.ring_version});
      const transport::wire_limits& limits = st_->options.limits;
      switch (kind) {
        case operation::get:
        case operation::get_many: {
          if (auto ec = transport::decode_key_list(req_.body, limits, keys_)) {
            reject(400, ec.message(), {}, close);
            co_return close;
          }
          const std::size_t count = keys_.size();
          if (kind == operation::get && count != 1) {
            reject(400, "get takes exactly one key; use get-many", {}, close);
            co_return close;
          }
          items_.clear();
          service_failed_ = false;
          if (count > 0) items_ = co_await call_get();
          if (service_failed_ || items_.size() != count) {
            reject(500,
                   service_failed_ ? std::string("the node failed to look the keys up")
                                   : "the node answered " + std::to_string(items_.size()) +
                                         " items for " + std::to_string(count) + " keys",
                   {}, close);
            co_return close;
          }
          body_.clear();
          if (kind == operation::get) {
            detail::wire_put_reply_item_head(body_, items_[0]);
            value_ = items_[0].status == transport::reply_item::kind::value
                         ? std::string_view(items_[0].value)
                         : std::string_view{};
          } else {
            transport::encode_get_many_reply(body_, items_);
            value_ = {};
          }
          make_head(200, "application/octet-stream", {}, close);
          co_return close;
        }
        case operation::set: {
          transport::set_body_view set;
          if (auto ec = transport::decode_set_body(req_.body, limits, set)) {
            reject(400, ec.message(), {}, close);
            co_return close;
          }
          const error_code ec =
              svc.set(keyspace_, std::string(set.key), std::string(set.value), set.ttl_ms);
          if (ec) {
            const std::string_view name =
                ec.category() == error_category() ? errc_name(static_cast<errc>(ec.value())) : "";
            if (name.empty()) {
              reject(500, "set failed: " + ec.message(), {}, close);
            } else {
              reject(422, "set refused: " + ec.message(), "DC-Error: " + std::string(name) + "\r\n",
                     close);
            }
            co_return close;
          }
          body_.clear();
          value_ = {};
          make_head(204, {}, {}, close);
          co_return close;
        }
        case operation::remove:
        case operation::invalidate: {
          if (auto ec = transport::decode_key_list(req_.body, limits, keys_)) {
            reject(400, ec.message(), {}, close);
            co_return close;
          }
          body_.clear();
          value_ = {};
          if (kind == operation::remove) {
            const std::size_t removed = svc.remove(keyspace_, keys_);
            extra_.assign("DC-Removed: ");
            append_decimal_u64(extra_, removed);
            extra_ += "\r\n";
            make_head(204, {}, extra_, close);
          } else {
            svc.invalidate(keyspace_, keys_);
            make_head(204, {}, {}, close);
          }
          co_return close;
        }
      }
    } catch (const std::exception& e) {
      reject(500, std::string("the node failed: ") + e.what(), {}, close);
      co_return close;
    }
    reject(404, "unknown path", {}, close);
    co_return close;
  }

  /// Calls transport::peer_service::get with keys_ and waits for its completion.
  net::awaitable<std::vector<transport::reply_item>> call_get() {
    return net::async_initiate<decltype(net::use_awaitable),
                               void(std::vector<transport::reply_item>)>(
        [this](auto handler) {
          using state_type = peer_get_completion<decltype(handler)>;
          auto state = std::make_shared<state_type>(std::move(handler));
          try {
            st_->svc.get(keyspace_, std::move(keys_),
                         [state](std::vector<transport::reply_item> items) {
                           state->complete(std::move(items));
                         });
          } catch (...) {
            service_failed_ = true;
            state->complete({});
          }
        },
        net::use_awaitable);
  }

  /// Writes head_, body_ and value_. False when the connection broke.
  net::awaitable<bool> write_response() {
    set_deadline(st_->options.read_timeout);
    std::array<net::const_buffer, 3> buffers{net::buffer(head_), net::buffer(body_),
                                             net::buffer(value_)};
    // A response almost always fits the socket's send buffer: write it now
    // (the socket is non-blocking) and skip the completion round trip
    // through the io_context; wait for writability only for what is left.
    error_code ec;
    std::size_t n = socket_.write_some(buffers, ec);
    if (ec == net::error::would_block || ec == net::error::try_again) ec = {};
    if (!ec && n < head_.size() + body_.size() + value_.size()) {
      for (auto& b : buffers) {
        const std::size_t used = std::min(n, b.size());
        b += used;
        n -= used;
      }
      auto [wec, wn] = co_await net::async_write(socket_, buffers, tuple_awaitable);
      ec = wec;
    }
    value_ = {};
    items_.clear();
    if (ec) {
      if (timed_out_) {
        log(log_level::warning,
            "closing connection from " + remote_ + ": response not written within read_timeout");
      }
      co_return false;
    }
    deadline_ = time_point::max();
    co_return true;
  }

  /// Half-closes and drains what the client still sends (bounded), so that
  /// the kernel does not reset the connection and destroy the response
  /// before the client read it.
  net::awaitable<void> linger_close() {
    error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    if (ec) co_return;
    set_deadline(std::min<duration>(st_->options.read_timeout, std::chrono::seconds(2)));
    std::size_t drained = 0;
    while (drained < (std::size_t{1} << 20)) {
      buf_.clear();
      auto [rec, n] = co_await socket_.async_read_some(buf_.prepare(read_chunk), tuple_awaitable);
      if (rec) break;
      drained += n;
    }
    buf_.clear();
  }

  std::shared_ptr<http_server_state> st_;
  tcp::socket socket_;
  net::steady_timer timer_;
  boost::beast::flat_buffer buf_;
  http_request_data req_;
  std::string keyspace_;
  std::vector<std::string> keys_;
  std::vector<transport::reply_item> items_;
  std::string head_;
  std::string body_;
  std::string extra_;
  std::string_view value_;  // points into items_ while a get reply is written
  std::string remote_;
  time_point deadline_ = time_point::max();
  time_point timer_expiry_ = time_point::min();  // when the watchdog wakes next
  bool waiting_ = false;
  bool timed_out_ = false;
  bool ended_ = false;
  bool service_failed_ = false;
  bool closing_ = false;  // the response being written ends the connection
};

inline net::awaitable<void> http_accept_loop(std::shared_ptr<http_server_state> st) {
  for (;;) {
    net::any_io_executor session_executor = net::make_strand(st->ioc);
    auto [ec, socket] =
        co_await st->acceptor.async_accept(session_executor, net::as_tuple(net::use_awaitable));
    if (ec) {
      if (ec == net::error::operation_aborted || !st->acceptor.is_open() ||
          st->stopping.load(std::memory_order_acquire))
        break;
      // Out of descriptors or a connection reset before accept: log, pause
      // briefly so the loop does not spin, and keep accepting.
      st->write_log(log_level::error, "distcache transport: accept failed: " + ec.message());
      net::steady_timer pause(st->acceptor.get_executor(), std::chrono::milliseconds(50));
      co_await pause.async_wait(net::as_tuple(net::use_awaitable));
      continue;
    }
    st->accepted.fetch_add(1, std::memory_order_relaxed);
    auto session = std::make_shared<http_server_session>(st, std::move(socket));
    {
      std::lock_guard lock(st->mutex);
      st->sessions.emplace(session.get(), session);
      st->active.fetch_add(1, std::memory_order_relaxed);
    }
    http_server_session::launch(session);
  }
  std::lock_guard lock(st->mutex);
  st->accepting = false;
  if (st->sessions.empty()) st->idle_cv.notify_all();
}

}  // namespace distcache::detail

namespace distcache::transport {

/// An HTTP/1.1 server for protocol v1 (docs/protocol.md): it accepts peer
/// connections and answers their requests through a peer_service.
///
/// Each connection is one coroutine on its own strand, with keep-alive and
/// in-order answers to pipelined requests. A request must arrive completely
/// within read_timeout of its first byte; a keep-alive connection may idle
/// for idle_timeout. Malformed requests get a 4xx reply (and the connection
/// closes when the parser cannot continue); every rejection logs one line.
///
/// Thread safety: start(), stop() and the observers may be called from any
/// thread; the io_context may be run by any number of threads.
///
/// Lifetime: destroy the server before its io_context. The peer_service must
/// outlive every session: call stop() and wait_idle() (or stop the
/// io_context) before destroying it.
class http_server final : public peer_server {
 public:
  /// Prepares a server; nothing listens before start(). An empty `log` logs
  /// to std::cerr (log_to_stderr).
  http_server(net::io_context& ioc, peer_service& service, server_options options, logger log = {})
      : st_(std::make_shared<detail::http_server_state>(ioc, service, std::move(options),
                                                        std::move(log))) {}

  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  /// Stops the server (see stop()); sessions still running end on their own.
  ~http_server() override {
    try {
      stop();
    } catch (...) {  // NOLINT(bugprone-empty-catch): a destructor must not throw
    }
  }

  /// Validates the options, binds and listens. Errors: errc::invalid_config
  /// for an invalid option (the log names it), errc::stopped after stop(),
  /// system errors such as address_in_use from bind/listen.
  result<void> start() override {
    auto fail = [&](error_code ec, const std::string& why) -> result<void> {
      st_->write_log(log_level::error, "distcache transport: cannot start the server: " + why);
      return ec;
    };
    const server_options& o = st_->options;
    if (st_->stopping.load()) return fail(make_error_code(errc::stopped), "it was stopped");
    std::string why = validate(o.limits, "server_options.limits");
    if (why.empty() && o.read_timeout <= duration::zero())
      why = "server_options.read_timeout: must be > 0, got " +
            detail::format_duration(o.read_timeout);
    if (why.empty() && o.idle_timeout <= duration::zero())
      why = "server_options.idle_timeout: must be > 0, got " +
            detail::format_duration(o.idle_timeout);
    if (!why.empty()) return fail(make_error_code(errc::invalid_config), why);
    error_code ec;
    const auto address = net::ip::make_address(o.bind_address, ec);
    if (ec) {
      return fail(make_error_code(errc::invalid_config),
                  "server_options.bind_address: '" + o.bind_address + "' is not an IP address");
    }
    const net::ip::tcp::endpoint endpoint(address, o.port);
    std::lock_guard lock(st_->mutex);
    auto& acceptor = st_->acceptor;
    if (acceptor.is_open()) return fail(make_error_code(errc::invalid_config), "already started");
    const std::string where = o.bind_address + ":" + std::to_string(o.port);
    if (acceptor.open(endpoint.protocol(), ec); ec) return fail(ec, "open: " + ec.message());
    error_code ignored;
    if (acceptor.set_option(net::socket_base::reuse_address(true), ec); ec) {
      acceptor.close(ignored);  // NOLINT(bugprone-unused-return-value)
      return fail(ec, "reuse_address: " + ec.message());
    }
    if (acceptor.bind(endpoint, ec); ec) {
      acceptor.close(ignored);  // NOLINT(bugprone-unused-return-value)
      return fail(ec, "bind " + where + ": " + ec.message());
    }
    if (acceptor.listen(net::socket_base::max_listen_connections, ec); ec) {
      acceptor.close(ignored);  // NOLINT(bugprone-unused-return-value)
      return fail(ec, "listen " + where + ": " + ec.message());
    }
    port_ = acceptor.local_endpoint(ec).port();
    st_->accepting = true;
    net::co_spawn(acceptor.get_executor(), detail::http_accept_loop(st_),
                  [st = st_](const std::exception_ptr& e) {
                    if (!e) return;
                    st->write_log(log_level::error, "distcache transport: accept loop failed");
                    std::lock_guard lock(st->mutex);
                    st->accepting = false;
                    if (st->sessions.empty()) st->idle_cv.notify_all();
                  });
    return {};
  }

  /// The bound port (useful with port 0); 0 before a successful start().
  [[nodiscard]] std::uint16_t port() const noexcept override { return port_; }

  /// Stops accepting, closes connections that wait for a request and lets
  /// requests in progress finish (their responses carry Connection: close;
  /// a request received after stop() gets 503). Returns immediately; see
  /// idle() and wait_idle(). Idempotent.
  void stop() override {
    if (st_->stopping.exchange(true)) return;
    net::post(st_->acceptor.get_executor(), [st = st_] {
      error_code ignored;
      st->acceptor.close(ignored);  // NOLINT(bugprone-unused-return-value)
    });
    std::lock_guard lock(st_->mutex);
    for (auto& [ptr, weak] : st_->sessions) {
      if (auto s = weak.lock()) net::post(s->executor(), [s] { s->on_stop(); });
    }
  }

  /// True when the server does not accept and no connection is open.
  [[nodiscard]] bool idle() const {
    std::lock_guard lock(st_->mutex);
    return !st_->accepting && st_->sessions.empty();
  }

  /// Blocks until idle() or until `timeout` passes; returns idle(). Must not
  /// be called from a thread that runs the io_context.
  bool wait_idle(duration timeout) const {
    std::unique_lock lock(st_->mutex);
    return st_->idle_cv.wait_for(lock, timeout,
                                 [&] { return !st_->accepting && st_->sessions.empty(); });
  }

  /// Connections open now.
  [[nodiscard]] std::size_t connections() const noexcept {
    return st_->active.load(std::memory_order_relaxed);
  }

  /// Connections accepted since start().
  [[nodiscard]] std::uint64_t accepted_connections() const noexcept {
    return st_->accepted.load(std::memory_order_relaxed);
  }

 private:
  std::shared_ptr<detail::http_server_state> st_;
  std::uint16_t port_ = 0;
};

}  // namespace distcache::transport

#endif  // DISTCACHE_TRANSPORT_HTTP_SERVER_HPP
