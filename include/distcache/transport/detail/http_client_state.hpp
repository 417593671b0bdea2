// distcache — what the HTTP client's connections share: options, pools, the response they parse.
#ifndef DISTCACHE_TRANSPORT_DETAIL_HTTP_CLIENT_STATE_HPP
#define DISTCACHE_TRANSPORT_DETAIL_HTTP_CLIENT_STATE_HPP

#include <algorithm>
#include <array>
#include <atomic>
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
#include <boost/beast/http/error.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <distcache/clock.hpp>
#include <distcache/config.hpp>
#include <distcache/detail/config.hpp>
#include <distcache/error.hpp>
#include <distcache/transport/detail/http_parser.hpp>
#include <distcache/transport/detail/tls_api.hpp>
#include <distcache/transport/peer.hpp>
#include <distcache/transport/protocol.hpp>
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

  // http_message_parser's callbacks.
  void on_response(int code) { status = static_cast<unsigned>(code); }
  void on_field(boost::beast::http::field name, std::string_view name_string,
                std::string_view value) {
    if (name != boost::beast::http::field::unknown) return;
    if (boost::beast::iequals(name_string, "DC-Error")) {
      dc_error.assign(value.data(), std::min<std::size_t>(value.size(), 64));
    } else if (boost::beast::iequals(name_string, "DC-Removed")) {
      dc_removed = parse_decimal_u64(value);
    }
  }
  bool on_body_length(std::uint64_t length) {
    content_length = length;
    body.reserve(static_cast<std::size_t>(length));
    return true;
  }
  bool append_body(std::string_view bytes) {
    body.append(bytes);
    return true;
  }
};

using http_response_parser = http_message_parser<false, http_response_data>;

class http_client_connection;

/// A get, remove or invalidate waiting for its peer's coalesce_in_flight
/// to go down (http_client::submit): it leaves with the other waiting calls
/// of its keyspace and kind.
struct http_waiting_call {
  http_client_op op = http_client_op::get;  // get (any number of keys), remove or invalidate
  std::string keyspace;
  std::vector<std::string> keys;
  std::uint64_t ring_version = 0;
  time_point deadline{};
  std::string traceparent;
  std::function<void(error_code, std::vector<transport::reply_item>)> get_done;
  std::function<void(error_code, std::size_t)> remove_done;
  std::function<void(error_code)> done;

  /// Ends the call without sending it.
  void fail(error_code ec) {
    if (op == http_client_op::get) {
      if (get_done) get_done(ec, {});
    } else if (op == http_client_op::remove) {
      if (remove_done) remove_done(ec, 0);
    } else if (done) {
      done(ec);
    }
  }
};

/// The connections to one peer.
struct http_peer_pool {
  std::string name;  // "host:port" as given; also the Host header
  std::string host;
  std::string port;
  std::optional<net::ip::tcp::endpoint> endpoint;  // set when host is a numeric IP
  bool dropped = false;
  std::vector<std::shared_ptr<http_client_connection>> idle;  // most recently used last
  std::vector<std::shared_ptr<http_client_connection>> all;   // idle and busy
  // TLS: the session of the last handshake, offered by the next connection
  // to resume (only under the context generation that made it), and when a
  // failed handshake was last logged.
  std::shared_ptr<void> tls_session;
  std::uint64_t tls_session_generation = 0;
  time_point tls_logged{};
  // Coalescing: gets, removes and invalidations in flight (each holds one
  // connection), and the calls waiting for one of them to end, oldest first.
  std::size_t in_flight = 0;
  std::deque<http_waiting_call> waiting;
  // A flush of the waiting calls is posted: calls wait behind it even below
  // coalesce_in_flight, so that those a completion's callbacks make leave
  // together with the ones that waited (flush_waiting_calls).
  bool flush_posted = false;
  // No request holding a place can have been in flight coalesce_slow_after
  // before this (max: none holds one): free_slow_places() scans from then.
  time_point slow_check_at = time_point::max();
  // Requests in flight that gave their place back (max_slow_in_flight).
  std::size_t slow_in_flight = 0;
  // Ends the waiting calls whose deadline passed; armed at the earliest one.
  std::optional<net::steady_timer> wait_timer;
  time_point wait_expiry{};
  std::uint64_t wait_gen = 0;  // of the last arming: older waits do nothing
  bool wait_armed = false;
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
  http_client_state(net::io_context& ioc, transport::client_options opts, logger lg,
                    const std::shared_ptr<const tls_backend>& tls_library)
      : ioc(ioc),
        options(std::move(opts)),
        log(lg ? std::move(lg) : logger(log_to_stderr)),
        tls(make_tls_source(tls_library, options.tls, tls_role::client, log, "peer client")) {}

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
  const std::shared_ptr<tls_context_source> tls;                           // null: plaintext
  std::atomic<std::uint64_t> tls_handshakes{0};
  std::atomic<std::uint64_t> tls_resumed{0};
  std::atomic<std::uint64_t> tls_handshakes_failed{0};
  std::atomic<std::uint64_t> coalesced_requests{0};
  std::atomic<std::uint64_t> coalesced_calls{0};
  std::atomic<std::uint64_t> slow_requests{0};
};

}  // namespace distcache::detail

#endif  // DISTCACHE_TRANSPORT_DETAIL_HTTP_CLIENT_STATE_HPP
