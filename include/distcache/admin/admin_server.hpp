// distcache — the admin HTTP server: a listener of its own (Beast over
// Asio, on a thread of its own) that answers GET requests under a base path
// with the pages an engine renders (peers, keyspaces, health, readiness,
// metrics). Off unless config.admin.enabled.
#ifndef DISTCACHE_ADMIN_ADMIN_SERVER_HPP
#define DISTCACHE_ADMIN_ADMIN_SERVER_HPP

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <cstdint>
#include <distcache/admin/admin_service.hpp>
#include <distcache/config.hpp>
#include <distcache/detail/config.hpp>
#include <distcache/error.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

namespace distcache::admin {

/// The admin listener. start() binds and starts its thread; stop() (or the
/// destructor) closes the listener and every connection and joins it.
class admin_server final : public admin_service {
 public:
  admin_server(admin_options options, page_source pages, logger log)
      : opts_(std::move(options)), pages_(std::move(pages)), log_(std::move(log)) {}
  admin_server(const admin_server&) = delete;
  admin_server& operator=(const admin_server&) = delete;
  ~admin_server() override {
    try {
      stop();
    } catch (...) {  // NOLINT(bugprone-empty-catch): a destructor must not throw
    }
  }

  /// Binds bind_address:port; errors such as address_in_use are returned.
  result<void> start() override {
    namespace net = boost::asio;
    error_code ec;
    const auto address = net::ip::make_address(opts_.bind_address, ec);
    if (ec) return make_error_code(errc::invalid_config);
    const net::ip::tcp::endpoint at(address, opts_.port);
    if (acceptor_.open(at.protocol(), ec); ec) return ec;
    acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (acceptor_.bind(at, ec); ec) return fail(ec);
    if (acceptor_.listen(net::socket_base::max_listen_connections, ec); ec) return fail(ec);
    port_ = acceptor_.local_endpoint(ec).port();
    net::co_spawn(ioc_, accept_loop(), net::detached);
    thread_ = std::thread([this] { ioc_.run(); });
    return {};
  }

  /// Closes the listener and every connection; joins the thread. Idempotent.
  void stop() override {
    if (!thread_.joinable()) return;
    boost::asio::post(ioc_, [this] {
      error_code ignored;
      acceptor_.close(ignored);              // NOLINT(bugprone-unused-return-value)
      for (auto* s : sessions_) s->close();  // their reads and writes end: so do they
    });
    thread_.join();
  }

  /// The bound port (useful with port 0); 0 before start().
  [[nodiscard]] std::uint16_t port() const noexcept override { return port_; }
  /// Requests answered, of any status.
  [[nodiscard]] std::uint64_t requests() const noexcept { return requests_.load(); }

 private:
  using stream = boost::beast::tcp_stream;
  static constexpr auto tuple = boost::asio::as_tuple(boost::asio::use_awaitable);

  error_code fail(error_code ec) {
    error_code ignored;
    acceptor_.close(ignored);  // NOLINT(bugprone-unused-return-value)
    return ec;
  }

  void log_line(log_level level, const std::string& line) const {
    detail::log_quietly(log_, level, "admin server: " + line);
  }

  boost::asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(tuple);
      if (ec) {
        if (!acceptor_.is_open()) co_return;
        log_line(log_level::warning, "accept failed: " + ec.message());
        continue;
      }
      boost::asio::co_spawn(ioc_, session(stream(std::move(socket))), boost::asio::detached);
    }
  }

  // Registered while a session runs, so that stop() can close it.
  class registration {
   public:
    registration(std::set<stream*>& all, stream* s) : all_(all), s_(s) { all_.insert(s_); }
    registration(const registration&) = delete;
    registration& operator=(const registration&) = delete;
    ~registration() { all_.erase(s_); }

   private:
    std::set<stream*>& all_;
    stream* s_;
  };

  boost::asio::awaitable<void> session(stream s) {
    namespace http = boost::beast::http;
    const registration reg(sessions_, &s);
    boost::beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(opts_.max_header_bytes));
      parser.body_limit(0);  // a GET has no body
      s.expires_after(opts_.read_timeout);
      auto [ec, n] = co_await http::async_read(s, buffer, parser, tuple);
      // Named, not braced temporaries: GCC 12 destroys a braced temporary
      // passed to a coroutine twice.
      if (ec == http::error::header_limit || ec == http::error::body_limit) {
        reply refused = ec == http::error::header_limit
                            ? reply{431, "text/plain", "request headers too large\n"}
                            : reply{413, "text/plain", "a GET request has no body\n"};
        co_await send(s, std::move(refused), false);
        co_return;
      }
      if (ec) {
        if (ec != http::error::end_of_stream && ec != boost::beast::error::timeout &&
            ec != boost::asio::error::eof && ec != boost::asio::error::operation_aborted) {
          reply malformed{400, "text/plain", "malformed request\n"};
          co_await send(s, std::move(malformed), false);
        }
        co_return;
      }
      const auto& req = parser.get();
      const bool keep = req.keep_alive();
      auto r = answer(req);
      ++requests_;
      if (!co_await send(s, std::move(r), keep) || !keep) co_return;
    }
  }

  template <class Request>
  reply answer(const Request& req) {
    namespace http = boost::beast::http;
    std::string_view path(req.target().data(), req.target().size());
    path = path.substr(0, path.find('?'));
    const std::string prefix = opts_.base_path + "/";
    if (!path.starts_with(prefix) || !known_endpoint(path.substr(prefix.size()))) {
      return {404, "text/plain", "no such admin endpoint\n"};
    }
    if (req.method() != http::verb::get) {
      return {405, "text/plain", "only GET is allowed\n"};
    }
    if (!opts_.token.empty()) {
      const auto auth = req[http::field::authorization];
      const std::string want = "Bearer " + opts_.token;
      if (!same(std::string_view(auth.data(), auth.size()), want)) {
        return {401, "text/plain", "a bearer token is required\n"};
      }
    }
    try {
      return pages_(path.substr(prefix.size()));
    } catch (const std::exception& e) {
      log_line(log_level::error, std::string("page failed: ") + e.what());
      return {500, "text/plain", "internal error\n"};
    }
  }

  // Compares without stopping at the first difference.
  static bool same(std::string_view a, std::string_view b) {
    unsigned diff = a.size() == b.size() ? 0U : 1U;
    for (std::size_t i = 0; i < b.size(); ++i) {
      diff |=
          static_cast<unsigned char>(i < a.size() ? a[i] : 0) ^ static_cast<unsigned char>(b[i]);
    }
    return diff == 0;
  }

  boost::asio::awaitable<bool> send(stream& s, reply r, bool keep) {
    namespace http = boost::beast::http;
    http::response<http::string_body> res{static_cast<http::status>(r.status), 11};
    res.set(http::field::content_type, r.content_type);
    res.set(http::field::cache_control, "no-store");
    if (r.status == 405) res.set(http::field::allow, "GET");
    if (r.status == 401) res.set(http::field::www_authenticate, "Bearer");
    res.keep_alive(keep);
    res.body() = std::move(r.body);
    res.prepare_payload();
    s.expires_after(opts_.read_timeout);
    auto [ec, n] = co_await http::async_write(s, res, tuple);
    co_return !ec;
  }

  admin_options opts_;
  page_source pages_;
  logger log_;
  std::set<stream*> sessions_;  // on the server's thread; outlives ioc_'s coroutines
  boost::asio::io_context ioc_{1};
  boost::asio::ip::tcp::acceptor acceptor_{ioc_};
  std::uint16_t port_ = 0;
  std::atomic<std::uint64_t> requests_{0};
  std::thread thread_;
};

}  // namespace distcache::admin

#endif  // DISTCACHE_ADMIN_ADMIN_SERVER_HPP
