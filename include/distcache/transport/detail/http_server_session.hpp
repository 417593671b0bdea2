// distcache — the HTTP server's sessions: one per connection, a coroutine each.
#ifndef DISTCACHE_TRANSPORT_DETAIL_HTTP_SERVER_SESSION_HPP
#define DISTCACHE_TRANSPORT_DETAIL_HTTP_SERVER_SESSION_HPP

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
#include <boost/beast/http/error.hpp>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <distcache/clock.hpp>
#include <distcache/config.hpp>
#include <distcache/detail/config.hpp>
#include <distcache/error.hpp>
#include <distcache/transport/detail/http_parser.hpp>
#include <distcache/transport/detail/http_server_connection.hpp>
#include <distcache/transport/detail/http_server_state.hpp>
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
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

namespace distcache::detail {

/// One accepted connection: reads requests one after the other (keep-alive,
/// pipelined requests answered in order), answers each through the
/// peer_service, and ends on close, error, timeout or stop.
class http_server_session : public http_connection,
                            public std::enable_shared_from_this<http_server_session> {
 public:
  /// `address` is the remote IP address, counted in the server's
  /// per-address limit until the session ends.
  http_server_session(std::shared_ptr<http_server_state> st, net::ip::tcp::socket socket,
                      std::string address)
      : http_connection(std::move(st), std::move(socket), std::move(address)), share_(st_->budget) {
    req_.share = &share_;
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

 private:
  using tcp = net::ip::tcp;
  static constexpr std::size_t read_chunk = std::size_t{16} * 1024;

  enum class read_outcome { request, parse_error, closed, truncated, timed_out, failed };

  static net::awaitable<void> run(std::shared_ptr<http_server_session> self) {
    try {
      co_await self->serve();
    } catch (const std::exception& e) {  // e.g. bad_alloc: end this session, keep the server
      self->log(log_level::error, "closing connection from " + self->remote_ + ": " + e.what());
    }
    self->end();
    self->st_->session_ended(self.get());
  }

  net::awaitable<void> serve() {
    error_code ec;
    socket_.set_option(tcp::no_delay(true), ec);
    socket_.non_blocking(true, ec);  // for the direct write in write_response()
    if (st_->tls && !co_await tls_handshake()) co_return;  // never plaintext on a TLS listener
    for (;;) {
      release_request_memory();
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
    reading_ = true;
    const auto done_reading = reading_scope(reading_);
    bool started = buf_.size() > 0;
    if (started) {
      set_deadline(st_->options.read_timeout);
    } else {
      if (st_->stopping.load(std::memory_order_acquire)) co_return read_outcome::closed;
      set_deadline(st_->options.idle_timeout);
      waiting_ = true;
    }
    bool continue_sent = false;
    bool admitted = false;
    for (;;) {
      if (buf_.size() > 0) {
        error_code ec;
        const std::size_t n = parser.put(buf_.data(), ec);
        buf_.consume(n);
        // need_more: Beast must next see these bytes with more after them
        // (calling put() again on the same bytes breaks its chunk parser's
        // invariants; found by tests/fuzz/peer_request_fuzz.cpp).
        const bool need_more = ec == boost::beast::http::error::need_more;
        if (need_more) {
          ec = {};
        } else if (ec) {
          parse_ec = ec;
          co_return read_outcome::parse_error;
        } else if (parser.is_done()) {
          co_return read_outcome::request;
        }
        // A body is admitted to the budget as soon as its head is parsed,
        // even before any of it arrived (the parser itself announces it
        // with the first body byte only); refused, it is never read.
        if (parser.is_header_done() && !admitted) {
          admitted = true;
          if (auto length = parser.content_length(); length && !req_.on_body_length(*length)) {
            parse_ec = http_request_parser::body_refused();
            co_return read_outcome::parse_error;
          }
        }
        if (parser.is_header_done() && req_.expect_continue && !continue_sent) {
          continue_sent = true;
          static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
          auto [wec, wn] = co_await write_all(net::buffer(cont));
          if (wec) co_return timed_out_ ? read_outcome::timed_out : read_outcome::failed;
        }
        if (!need_more && n > 0 && buf_.size() > 0) continue;
      }
      error_code ec;
      std::size_t n = 0;
      if (tls_) {
        // Decrypt what arrived; read ciphertext only when no whole record did.
        while (!tls_decrypt(buf_.prepare(read_chunk), n, ec)) {
          auto [rec, got] = co_await socket_.async_read_some(net::buffer(tls_in_), tuple_awaitable);
          if (rec) {
            ec = rec;
            break;
          }
          tls_->put_input(tls_in_.data(), got);
          if (!started) {  // a request's first bytes, though not yet a whole record
            started = true;
            waiting_ = false;
            set_deadline(st_->options.read_timeout);
          }
        }
      } else {
        std::tie(ec, n) =
            co_await socket_.async_read_some(buf_.prepare(read_chunk), tuple_awaitable);
      }
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
    if (ec == http_request_parser::body_refused()) {
      status = 503;
      why = "node over its budget for request bytes in flight (max_inflight_bytes " +
            std::to_string(st_->budget.max()) + ")";
      st_->requests_refused.fetch_add(1, std::memory_order_relaxed);
    } else if (ec == http::error::header_limit) {
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
    // Refusals for memory come in floods: one line a minute per address.
    if (status != 503 || st_->per_address.should_log("budget " + address_, clock_type::now())) {
      log(log_level::warning,
          std::to_string(status) + " to " + remote_ + " " + printable_for_log(req_.method_text) +
              " " + printable_for_log(req_.target) + ": " + why + "; closing the connection" +
              (status == 503 ? " (logged once a minute per address)" : ""));
    }
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
      } else if (refuse_other_cluster(close) || refuse_other_identity(close)) {
        co_return close;
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
    const operation* handler = find_operation(op);
    if (handler == nullptr) {
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
    if (req_.bad_wait) {
      reject(400, "DC-Wait-Ms is not an unsigned 64-bit decimal", {}, close);
      co_return close;
    }
    if (req_.bad_push) {
      reject(400, "DC-Push-Read-Ms is not a positive 64-bit decimal", {}, close);
      co_return close;
    }
    if (refuse_other_cluster(close) || refuse_other_identity(close)) co_return close;
    try {
      if (!st_->svc.has_keyspace(keyspace_)) {
        reject(404,
               "keyspace '" + printable_for_log(keyspace_) + "' is not configured on this node",
               "DC-Error: keyspace_not_found\r\n", close);
        co_return close;
      }
      st_->svc.on_peer_request(req_.info());
      co_await (this->*(handler->handle))(close);
    } catch (const std::exception& e) {
      reject(500, std::string("the node failed: ") + e.what(), {}, close);
    }
    co_return close;
  }

  // A request of another cluster (DC-Cluster differs or is missing) is
  // answered 403 cluster_mismatch, health included, so nodes of two
  // clusters never enter each other's rings. Returns whether it refused.
  bool refuse_other_cluster(bool close) {
    if (req_.has_cluster && req_.cluster == st_->options.cluster_name) return false;
    reject(403,
           req_.has_cluster ? "this node belongs to cluster '" + st_->options.cluster_name +
                                  "', not '" + printable_for_log(req_.cluster) + "'"
                            : std::string("missing DC-Cluster header"),
           "DC-Error: cluster_mismatch\r\n", close);
    return true;
  }

  // Under mutual TLS a node may speak only as the node its certificate
  // names: the host of DC-From ("host:port", "[v6]:port") must be one of
  // the client certificate's subject alternative names (an IP SAN for an
  // address), else 403 identity_mismatch. Checked once per connection and
  // DC-From value. Returns whether it refused.
  bool refuse_other_identity(bool close) {
    if (!st_->tls || !req_.has_from || !st_->options.tls.require_client_certificate) return false;
    if (identity_checked_ && req_.from == identity_from_) return false;
    const std::string_view from = req_.from;
    std::string_view host = from.substr(0, from.rfind(':'));
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
      host = host.substr(1, host.size() - 2);
    if (tls_->peer_names(std::string(host))) {
      identity_checked_ = true;
      identity_from_ = req_.from;
      return false;
    }
    // A misnamed node probes every probe_interval: one line a minute per
    // address, like the other refusals of a peer.
    const std::string why =
        "the client certificate does not name " + printable_for_log(host) + ", the host of DC-From";
    if (st_->per_address.should_log("identity " + address_, clock_type::now())) {
      log(log_level::warning,
          "403 to " + remote_ + ": " + why + "; logged once a minute per address");
    }
    make_text_response(403, why, "DC-Error: identity_mismatch\r\n", close);
    return true;
  }

  // One handler per keyspace operation of protocol v1. Each decodes the
  // body, calls the peer_service and prepares the response (or a rejection).
  using handler_fn = net::awaitable<void> (http_server_session::*)(bool close);
  struct operation {
    std::string_view name;
    handler_fn handle;
  };
  static const operation* find_operation(std::string_view name) noexcept {
    static constexpr std::array<operation, 5> table{{
        {"get", &http_server_session::handle_get},
        {"get-many", &http_server_session::handle_get_many},
        {"set", &http_server_session::handle_set},
        {"remove", &http_server_session::handle_remove},
        {"invalidate", &http_server_session::handle_invalidate},
    }};
    for (const auto& op : table) {
      if (op.name == name) return &op;
    }
    return nullptr;
  }

  net::awaitable<void> handle_get(bool close) { return lookup(close, false); }
  net::awaitable<void> handle_get_many(bool close) { return lookup(close, true); }

  net::awaitable<void> lookup(bool close, bool many);
  net::awaitable<void> handle_set(bool close);
  net::awaitable<void> handle_remove(bool close);
  net::awaitable<void> handle_invalidate(bool close);
  /// Calls transport::peer_service::get with keys_; null (and
  /// service_failed_) when it threw.
  std::shared_ptr<peer_get_pending> start_get();
  /// Waits for the outcome of a get the service had not answered within
  /// the call. Not a coroutine: a first version that awaited in a coroutine
  /// holding the state in a local shared_ptr (`co_return co_await`) had
  /// that local destroyed twice with GCC 12 (ThreadSanitizer reported the
  /// heap-use-after-free).
  static net::awaitable<std::vector<transport::reply_item>> wait_get(
      std::shared_ptr<peer_get_pending> p);

  /// Writes head_, body_ and value_. False when the connection broke.
  net::awaitable<bool> write_response() {
    set_deadline(st_->options.read_timeout);
    std::array<net::const_buffer, 3> buffers{net::buffer(head_), net::buffer(body_),
                                             net::buffer(value_)};
    if (tls_) co_return finish_write(co_await write_tls(buffers));
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
    co_return finish_write(ec);
  }

  /// Writes a response through TLS with the same direct write as
  /// plaintext. A small one goes as one record; a large one is encrypted
  /// and sent a piece at a time, so that its ciphertext is never held whole.
  net::awaitable<error_code> write_tls(const std::array<net::const_buffer, 3>& buffers) {
    error_code ec;
    if (net::buffer_size(buffers) <= tls_gather_limit) {
      if (!tls_encrypt(buffers)) co_return tls_->error();
      const std::size_t sent = tls_send_now(ec);
      if (!ec && sent < tls_out_.size()) ec = co_await tls_send_rest(sent);
      co_return ec;
    }
    for (const auto& b : buffers) {
      for (std::size_t at = 0; at < b.size() && !ec; at += tls_piece) {
        const net::const_buffer piece(static_cast<const char*>(b.data()) + at,
                                      std::min(tls_piece, b.size() - at));
        if (!tls_encrypt(std::array<net::const_buffer, 1>{piece})) co_return tls_->error();
        const std::size_t sent = tls_send_now(ec);
        if (!ec && sent < tls_out_.size()) ec = co_await tls_send_rest(sent);
      }
    }
    if (tls_out_.capacity() > tls_piece * 2) std::string().swap(tls_out_);
    co_return ec;
  }

  bool finish_write(error_code ec) {
    value_ = {};
    items_.clear();
    if (ec) {
      if (timed_out_) {
        log(log_level::warning,
            "closing connection from " + remote_ + ": response not written within read_timeout");
      }
      return false;
    }
    deadline_ = time_point::max();
    return true;
  }

  /// Gives the last request's bytes back to the budget, and its body's
  /// memory too when it was large, before the next request is read.
  void release_request_memory() {
    req_.reset();
    if (req_.body.capacity() > budget_share::small_body) std::string().swap(req_.body);
    share_.release_all();
  }

  /// Half-closes and drains what the client still sends (bounded), so that
  /// the kernel does not reset the connection and destroy the response
  /// before the client read it.
  net::awaitable<void> linger_close() {
    if (tls_) {  // a close_notify first, so the client knows the response is whole
      tls_->shutdown();
      if (co_await tls_flush()) co_return;
    }
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

  boost::beast::flat_buffer buf_;
  budget_share share_;  // before req_: the body is freed before the share is given back
  http_request_data req_;
  std::string keyspace_;
  std::vector<std::string> keys_;
  std::vector<transport::reply_item> items_;
  std::string head_;
  std::string body_;
  std::string extra_;
  std::string_view value_;     // points into items_ while a get reply is written
  std::string identity_from_;  // the DC-From the client certificate was found to name
  bool identity_checked_ = false;
  bool service_failed_ = false;
  bool closing_ = false;  // the response being written ends the connection
};

}  // namespace distcache::detail

// The handlers of the keyspace operations.
#include <distcache/transport/detail/impl/http_server_operations.ipp>

#endif  // DISTCACHE_TRANSPORT_DETAIL_HTTP_SERVER_SESSION_HPP
