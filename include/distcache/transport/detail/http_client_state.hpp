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
};

/// One keep-alive connection to a peer. It carries one request at a time:
/// the submitting thread fills `req` while it owns the connection (taken
/// from the pool, no operation pending), then start() moves to the strand,
/// where everything else happens. finish() completes the request exactly
/// once and hands the connection back to the pool or drops it.
}  // namespace distcache::detail

#endif  // DISTCACHE_TRANSPORT_DETAIL_HTTP_CLIENT_STATE_HPP
