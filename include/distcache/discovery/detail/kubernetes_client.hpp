// distcache — discovery::kubernetes: the HTTPS client of the API server
// (Beast over Asio SSL): one listing of every page, and a watch stream read
// line by line. Coroutines, run on whichever io_context the caller drives.
#ifndef DISTCACHE_DISCOVERY_DETAIL_KUBERNETES_CLIENT_HPP
#define DISTCACHE_DISCOVERY_DETAIL_KUBERNETES_CLIENT_HPP

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <cstddef>
#include <distcache/clock.hpp>
#include <distcache/discovery/detail/kubernetes_pods.hpp>
#include <distcache/discovery/detail/tls_client.hpp>
#include <distcache/error.hpp>
#include <exception>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>

namespace distcache::detail::kubernetes {

namespace beast = boost::beast;
namespace http = beast::http;
using tls_stream = beast::ssl_stream<beast::tcp_stream>;
inline constexpr auto as_tuple = net::as_tuple(net::use_awaitable);

/// Bounds of what the server may send.
inline constexpr std::size_t max_list_bytes = std::size_t{64} << 20;  // one page
inline constexpr std::size_t max_line_bytes = std::size_t{16} << 20;  // one watch event

/// Where the API server is and what to send it, resolved by initialize().
struct api_endpoint {
  std::string host;  // without brackets
  std::string port;
  std::string server_name;  // checked against the certificate
  std::string pod_namespace;
  std::string token_file;
  std::string ca_file;
};

/// The whole file, trailing whitespace removed; nullopt when unreadable.
inline std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream s;
  s << in.rdbuf();
  std::string text = s.str();
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.pop_back();
  }
  return text;
}

/// Percent-encoding of a query parameter's value.
inline std::string url_encode(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (const unsigned char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

/// One TLS connection to the API server; the context lives as long as it.
struct connection {
  explicit connection(const net::any_io_executor& ex)
      : ctx(net::ssl::context::tls_client), stream(ex, ctx) {}
  net::ssl::context ctx;
  tls_stream stream;
  beast::flat_buffer buffer;
};

/// Talks to the API server for one provider: lists pods and watches them.
/// Reads the token and the CA file at each connection, so rotated
/// credentials are used without a restart.
class api_client {
 public:
  api_client(discovery::kubernetes_options o, api_endpoint ep)
      : opts_(std::move(o)), ep_(std::move(ep)) {}

  [[nodiscard]] const api_endpoint& endpoint() const { return ep_; }

  /// The path and query of a listing (or, with `watch_from`, of a watch).
  [[nodiscard]] std::string target(const std::string& continue_token,
                                   const std::string* watch_from = nullptr) const {
    std::string t = "/api/v1/namespaces/" + url_encode(ep_.pod_namespace) +
                    "/pods?labelSelector=" + url_encode(opts_.label_selector);
    if (watch_from != nullptr) {
      const auto secs = std::chrono::ceil<std::chrono::seconds>(opts_.watch_timeout).count();
      t += "&watch=1&allowWatchBookmarks=true&timeoutSeconds=" + std::to_string(secs);
      if (!watch_from->empty()) t += "&resourceVersion=" + url_encode(*watch_from);
      return t;
    }
    t += "&limit=" + std::to_string(opts_.page_size);
    if (!continue_token.empty()) t += "&continue=" + url_encode(continue_token);
    return t;
  }

  /// Connects, shakes hands and checks the certificate against server_name.
  net::awaitable<result<std::unique_ptr<connection>>> connect(time_point deadline,
                                                              std::string& why) {
    auto ex = co_await net::this_coro::executor;
    auto c = std::make_unique<connection>(ex);
    if (auto ec = configure_tls_client(c->ctx, ep_.ca_file, {}, {}, why)) {
      co_return make_error_code(discovery::kubernetes_errc::credentials);
    }
    if (!expect_server_name(c->stream.native_handle(), ep_.server_name)) {
      co_return fail(make_error_code(net::error::invalid_argument),
                     "cannot check the API server's name '" + ep_.server_name + "'", why);
    }
    net::ip::tcp::resolver resolver(ex);
    auto [rec, endpoints] = co_await resolver.async_resolve(ep_.host, ep_.port, as_tuple);
    if (rec) co_return fail(rec, "cannot resolve " + ep_.host, why);
    auto& tcp = beast::get_lowest_layer(c->stream);
    tcp.expires_at(deadline);
    if (auto [cec, at] = co_await tcp.async_connect(endpoints, as_tuple); cec) {
      co_return fail(cec, "cannot connect to " + ep_.host + ":" + ep_.port, why);
    }
    tcp.expires_at(deadline);
    if (auto [hec] = co_await c->stream.async_handshake(net::ssl::stream_base::client, as_tuple);
        hec) {
      co_return fail(hec, "TLS handshake with " + ep_.host + ":" + ep_.port, why);
    }
    co_return c;
  }

  /// Sends a GET of `target` with the token.
  net::awaitable<error_code> send(connection& c, const std::string& target, time_point deadline,
                                  std::string& why) const {
    const auto token = read_file(ep_.token_file);
    if (!token || token->empty()) {
      why = "cannot read the token file " + ep_.token_file;
      co_return make_error_code(discovery::kubernetes_errc::credentials);
    }
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, ep_.server_name);
    req.set(http::field::authorization, "Bearer " + *token);
    req.set(http::field::accept, "application/json");
    req.set(http::field::user_agent, "distcache");
    beast::get_lowest_layer(c.stream).expires_at(deadline);
    if (auto [ec, n] = co_await http::async_write(c.stream, req, as_tuple); ec) {
      co_return fail(ec, "sending " + target, why);
    }
    co_return error_code{};
  }

  /// Every page of the listing, on one connection, within `deadline`.
  net::awaitable<result<pod_list>> list(time_point deadline, std::string& why,
                                        connection** current = nullptr) {
    auto c = co_await connect(deadline, why);
    if (!c) co_return c.error();
    if (current != nullptr) *current = c->get();
    const auto forget = cleanup([&] {
      if (current != nullptr) *current = nullptr;
    });
    pod_list all;
    std::string token;
    for (int page = 0;; ++page) {
      const auto target = this->target(token);
      if (auto ec = co_await send(**c, target, deadline, why)) co_return ec;
      http::response_parser<http::string_body> parser;
      parser.body_limit(max_list_bytes);
      beast::get_lowest_layer((*c)->stream).expires_at(deadline);
      if (auto [ec, n] = co_await http::async_read((*c)->stream, (*c)->buffer, parser, as_tuple);
          ec) {
        co_return fail(ec, "reading " + target, why);
      }
      auto& res = parser.get();
      if (res.result() != http::status::ok) co_return status_error(res, target, why);
      auto part = parse_pod_list(res.body(), opts_.port_name, why);
      if (!part) {
        why.insert(0, target + ": ");
        co_return part.error();
      }
      all.peers.merge(part->peers);
      all.resource_version = part->resource_version;
      if (part->continue_token.empty()) break;
      if (part->continue_token == token || page >= 10000) {
        why = target + ": the continue token does not advance";
        co_return make_error_code(discovery::kubernetes_errc::malformed_response);
      }
      token = part->continue_token;
      if (!res.keep_alive()) {
        auto again = co_await connect(deadline, why);
        if (!again) co_return again.error();
        c = std::move(again);
        if (current != nullptr) *current = c->get();
      }
    }
    co_return all;
  }

  /// The same listing, on a private io_context of the calling thread.
  result<pod_list> list_blocking(std::string& why) {
    net::io_context ioc;
    result<pod_list> out = make_error_code(discovery::kubernetes_errc::timeout);
    net::co_spawn(
        ioc,
        [&]() -> net::awaitable<void> {
          out = co_await list(clock_type::now() + opts_.timeout, why);
        },
        [](const std::exception_ptr& e) {
          if (e) std::rethrow_exception(e);
        });
    ioc.run();
    return out;
  }

  /// Opens a watch from `resource_version` and hands each line to
  /// `on_line` until the server ends the stream (returns success), a read
  /// fails, or on_line returns false (returns malformed_response).
  net::awaitable<error_code> watch(const std::string& resource_version,
                                   const std::function<bool(std::string_view)>& on_line,
                                   std::string& why, connection** current) {
    auto c = co_await connect(clock_type::now() + opts_.timeout, why);
    if (!c) co_return c.error();
    *current = c->get();
    const auto forget = cleanup([&] { *current = nullptr; });
    const std::string target = this->target({}, &resource_version);
    if (auto ec = co_await send(**c, target, clock_type::now() + opts_.timeout, why)) co_return ec;
    auto& tcp = beast::get_lowest_layer((*c)->stream);
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(boost::none);
    tcp.expires_after(opts_.timeout);
    if (auto [ec, n] =
            co_await http::async_read_header((*c)->stream, (*c)->buffer, parser, as_tuple);
        ec) {
      co_return fail(ec, "reading " + target, why);
    }
    std::array<char, 16384> chunk{};
    std::string pending;
    bool failed_status = parser.get().result() != http::status::ok;
    while (!parser.is_done()) {
      parser.get().body().data = chunk.data();
      parser.get().body().size = chunk.size();
      // The server ends a watch after watch_timeout: silence past that is a dead connection.
      tcp.expires_after(opts_.watch_timeout + opts_.timeout);
      auto [ec, n] = co_await http::async_read_some((*c)->stream, (*c)->buffer, parser, as_tuple);
      if (ec == http::error::need_buffer) ec = {};
      if (ec) co_return fail(ec, "reading the watch " + target, why);
      pending.append(chunk.data(), chunk.size() - parser.get().body().size);
      if (failed_status) {
        if (pending.size() > 65536) break;
        continue;
      }
      std::size_t start = 0;
      for (auto nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n', start)) {
        const std::string_view line(pending.data() + start, nl - start);
        start = nl + 1;
        if (line.find_first_not_of(" \r\t") != std::string_view::npos && !on_line(line)) {
          co_return make_error_code(discovery::kubernetes_errc::malformed_response);
        }
      }
      pending.erase(0, start);
      if (pending.size() > max_line_bytes) {
        why = target + ": a watch line longer than 16 MiB";
        co_return make_error_code(discovery::kubernetes_errc::malformed_response);
      }
    }
    if (failed_status) {
      http::response<http::string_body> res{parser.get().result(), 11};
      res.body() = pending;
      co_return status_error(res, target, why);
    }
    co_return error_code{};
  }

 private:
  template <class F>
  class on_exit {
   public:
    explicit on_exit(F f) : f_(std::move(f)) {}
    on_exit(const on_exit&) = delete;
    on_exit& operator=(const on_exit&) = delete;
    ~on_exit() { f_(); }

   private:
    F f_;
  };
  template <class F>
  static on_exit<F> cleanup(F f) {
    return on_exit<F>(std::move(f));
  }

  static error_code fail(error_code ec, const std::string& what, std::string& why) {
    if (ec == beast::error::timeout) ec = make_error_code(discovery::kubernetes_errc::timeout);
    why = what + ": " + ec.message();
    return ec;
  }

  static error_code status_error(const http::response<http::string_body>& res,
                                 const std::string& target, std::string& why) {
    using discovery::kubernetes_errc;
    const auto code = res.result_int();
    why = "GET " + target + ": " + std::to_string(code) + " " + status_message(res.body());
    if (code == 401) return make_error_code(kubernetes_errc::unauthorized);
    if (code == 403) return make_error_code(kubernetes_errc::forbidden);
    if (code >= 500) return make_error_code(kubernetes_errc::server_error);
    return make_error_code(kubernetes_errc::unexpected_status);
  }

  discovery::kubernetes_options opts_;
  api_endpoint ep_;
};

}  // namespace distcache::detail::kubernetes

#endif  // DISTCACHE_DISCOVERY_DETAIL_KUBERNETES_CLIENT_HPP
