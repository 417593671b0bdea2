// distcache — what the HTTP server's sessions share, and the request they parse.
#ifndef DISTCACHE_TRANSPORT_DETAIL_HTTP_SERVER_STATE_HPP
#define DISTCACHE_TRANSPORT_DETAIL_HTTP_SERVER_STATE_HPP

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
#include <distcache/transport/detail/http_server_limits.hpp>
#include <distcache/transport/detail/tls_api.hpp>
#include <distcache/transport/peer.hpp>
#include <distcache/transport/peer_service.hpp>
#include <distcache/transport/protocol.hpp>
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
/// reused for every request.
struct http_request_data {
  boost::beast::http::verb method = boost::beast::http::verb::unknown;
  std::string method_text;
  std::string target;
  std::string from;
  bool has_from = false;
  std::string cluster;
  bool has_cluster = false;
  std::uint64_t ring_version = 0;
  bool bad_ring_version = false;
  std::uint64_t wait_ms = 0;
  bool bad_wait = false;
  std::uint64_t push_read_ms = 0;
  bool bad_push = false;
  std::string traceparent;  // as received, at most 128 bytes kept
  bool expect_continue = false;
  int version = 11;
  std::string body;

  void reset() {
    method = boost::beast::http::verb::unknown;
    method_text.clear();
    target.clear();
    from.clear();
    has_from = false;
    cluster.clear();
    has_cluster = false;
    ring_version = 0;
    bad_ring_version = false;
    wait_ms = 0;
    bad_wait = false;
    push_read_ms = 0;
    bad_push = false;
    traceparent.clear();
    expect_continue = false;
    version = 11;
    body.clear();
  }

  /// The sender's headers, for the peer_service (views into this object).
  [[nodiscard]] transport::request_info info() const noexcept {
    return {from, ring_version, wait_ms, traceparent, push_read_ms};
  }

  // http_message_parser's callbacks.
  void on_request(boost::beast::http::verb m, std::string_view m_text, std::string_view t, int v) {
    method = m;
    method_text.assign(m_text.data(), std::min<std::size_t>(m_text.size(), 16));
    target.assign(t.data(), t.size());
    version = v;
  }
  void on_field(boost::beast::http::field name, std::string_view name_string,
                std::string_view value) {
    namespace http = boost::beast::http;
    if (name == http::field::expect) {
      if (boost::beast::iequals(value, "100-continue")) expect_continue = true;
    } else if (name == http::field::unknown) {
      if (boost::beast::iequals(name_string, "DC-From")) {
        from.assign(value.data(), value.size());
        has_from = true;
      } else if (boost::beast::iequals(name_string, "DC-Cluster")) {
        cluster.assign(value.data(), std::min<std::size_t>(value.size(), 80));
        has_cluster = true;
      } else if (boost::beast::iequals(name_string, "traceparent")) {
        traceparent.assign(value.data(), std::min<std::size_t>(value.size(), 128));
      } else if (boost::beast::iequals(name_string, "DC-Ring-Version")) {
        if (auto v = parse_decimal_u64(value)) {
          ring_version = *v;
        } else {
          bad_ring_version = true;
        }
      } else if (boost::beast::iequals(name_string, "DC-Wait-Ms")) {
        if (auto v = parse_decimal_u64(value)) {
          wait_ms = *v;
        } else {
          bad_wait = true;
        }
      } else if (boost::beast::iequals(name_string, "DC-Push-Read-Ms")) {
        if (auto v = parse_decimal_u64(value); v && *v != 0) {
          push_read_ms = *v;
        } else {
          bad_push = true;
        }
      }
    }
  }
  // The body's memory is reserved in the node's in-flight budget before it
  // is allocated: all of a declared Content-Length at once (pages fill
  // only as bytes arrive), a chunked body as it grows.
  bool on_body_length(std::uint64_t length) {
    if (!admit(static_cast<std::size_t>(length))) return false;
    body.reserve(static_cast<std::size_t>(length));
    return true;
  }
  bool append_body(std::string_view bytes) {
    if (bytes.size() > body.capacity() - body.size()) {
      const std::size_t need = body.size() + bytes.size();
      const std::size_t grown = std::max(need, 2 * body.capacity());
      if (!admit(grown)) return false;
      body.reserve(grown);
    }
    body.append(bytes);
    return true;
  }
  /// Makes the connection's share of the budget cover a body of `n` bytes.
  bool admit(std::size_t n) {
    if (share == nullptr) return true;
    return share->grow_to(n);
  }

  budget_share* share = nullptr;  // null: no budget (tests of the parser)
};

using http_request_parser = http_message_parser<true, http_request_data>;

class http_server_session;

/// What the server and its sessions share. Sessions hold it by shared_ptr,
/// so it outlives the http_server object while connections finish.
struct http_server_state {
  http_server_state(net::io_context& ioc, transport::peer_service& svc,
                    transport::server_options opts, logger lg,
                    const std::shared_ptr<const tls_backend>& tls_library)
      : ioc(ioc),
        svc(svc),
        options(std::move(opts)),
        log(lg ? std::move(lg) : logger(log_to_stderr)),
        acceptor(net::make_strand(ioc)),
        budget(options.max_inflight_bytes),
        per_address(options.max_connections_per_address),
        tls(make_tls_source(tls_library, options.tls, tls_role::server, log, "peer server")) {}

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
  inflight_budget budget;
  address_limits per_address;
  std::atomic<std::uint64_t> connections_refused{0};
  std::atomic<std::uint64_t> requests_refused{0};
  const std::shared_ptr<tls_context_source> tls;  // null: plaintext
  std::atomic<std::uint64_t> tls_handshakes{0};
  std::atomic<std::uint64_t> tls_resumed{0};
  std::atomic<std::uint64_t> tls_handshakes_failed{0};

  mutable std::mutex mutex;
  mutable std::condition_variable idle_cv;
  bool accepting = false;  // guarded by mutex
  std::unordered_map<const http_server_session*, std::weak_ptr<http_server_session>>
      sessions;  // by mutex
};

/// The outcome of a transport::peer_service::get a session asked for: taken
/// as it is when the service answered from within the call (every key a
/// hit: no post, no reactor pass), else handed to the waiting coroutine
/// when it comes (`then`, set by http_server_session::wait_get).
struct peer_get_pending {
  std::mutex m;
  bool done = false;
  std::vector<transport::reply_item> items;
  std::function<void(std::vector<transport::reply_item>)> then;

  void complete(std::vector<transport::reply_item> result) {
    std::unique_lock lock(m);
    if (done) return;  // exactly once, whatever the service does
    done = true;
    if (then) {
      auto t = std::move(then);
      lock.unlock();
      t(std::move(result));
    } else {
      items = std::move(result);
    }
  }

  /// Moves the items into `out` when the service answered already.
  bool take(std::vector<transport::reply_item>& out) {
    std::lock_guard lock(m);
    if (!done) return false;
    out = std::move(items);
    return true;
  }
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
}  // namespace distcache::detail

#endif  // DISTCACHE_TRANSPORT_DETAIL_HTTP_SERVER_STATE_HPP
