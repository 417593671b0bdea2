// distcache — the admin HTTP server: a listener of its own (Beast over
// Asio, on a thread of its own) that answers GET requests under a base path
// with the pages an engine renders (peers, keyspaces, health, readiness,
// metrics). Off unless config.admin.enabled.
#ifndef DISTCACHE_ADMIN_ADMIN_SERVER_HPP
#define DISTCACHE_ADMIN_ADMIN_SERVER_HPP

#include <array>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <cstdint>
#include <distcache/admin/admin_service.hpp>
#include <distcache/config.hpp>
#include <distcache/detail/config.hpp>
#include <distcache/error.hpp>
#include <distcache/transport/detail/tls_api.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <utility>

namespace distcache::admin {

/// The admin listener. start() binds and starts its thread; stop() (or the
/// destructor) closes the listener and every connection and joins it.
class admin_server final : public admin_service {
 public:
  /// `tls` is the TLS library used when options.tls.enabled (transport::https
  /// passes OpenSSL's); without one such a server refuses to start.
  admin_server(admin_options options, page_source pages, logger log,
               const std::shared_ptr<const detail::tls_backend>& tls = nullptr)
      : opts_(std::move(options)),
        pages_(std::move(pages)),
        log_(std::move(log)),
        tls_(detail::make_tls_source(tls, opts_.tls, detail::tls_role::server, log_,
                                     "admin server")) {}
  admin_server(const admin_server&) = delete;
  admin_server& operator=(const admin_server&) = delete;
  ~admin_server() override {
    try {
      stop();
    } catch (...) {  // NOLINT(bugprone-empty-catch): a destructor must not throw
    }
  }

  /// Loads the TLS files (admin_options.tls) and binds bind_address:port;
  /// errors such as address_in_use are returned, errc::invalid_config for
  /// files that do not load (logged with the reason).
  result<void> start() override {
    namespace net = boost::asio;
    error_code ec;
    const auto address = net::ip::make_address(opts_.bind_address, ec);
    if (ec) return make_error_code(errc::invalid_config);
    if (opts_.tls.enabled && !tls_) {
      log_line(log_level::error, "cannot start: " + detail::tls_unavailable("admin.tls"));
      return make_error_code(errc::invalid_config);
    }
    if (tls_ && !tls_->current()) {
      std::string why;
      if (auto lec = tls_->load(why)) {
        log_line(log_level::error, "cannot start: admin.tls: " + why);
        return lec;
      }
    }
    const net::ip::tcp::endpoint at(address, opts_.port);
    if (acceptor_.open(at.protocol(), ec); ec) return ec;
    acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (acceptor_.bind(at, ec); ec) return fail(ec);
    if (acceptor_.listen(net::socket_base::max_listen_connections, ec); ec) return fail(ec);
    port_ = acceptor_.local_endpoint(ec).port();
    net::co_spawn(ioc_, accept_loop(), net::detached);
    if (tls_) tls_->watch(ioc_);
    thread_ = std::thread([this] { ioc_.run(); });
    return {};
  }

  /// Loads the TLS files again; connections accepted from then on use
  /// them. errc::invalid_config (logged) when they do not load: the old
  /// ones stay. Nothing to do without TLS.
  result<void> reload_tls() override { return detail::reload_tls_of(tls_); }

  /// Closes the listener and every connection; joins the thread. Idempotent.
  void stop() override {
    if (!thread_.joinable()) return;
    if (tls_) tls_->stop_watching();
    boost::asio::post(ioc_, [this] {
      error_code ignored;
      acceptor_.close(ignored);              // NOLINT(bugprone-unused-return-value)
      for (auto* c : sessions_) c->close();  // their reads and writes end: so do they
    });
    thread_.join();
  }

  /// The bound port (useful with port 0); 0 before start().
  [[nodiscard]] std::uint16_t port() const noexcept override { return port_; }
  /// Requests answered, of any status.
  [[nodiscard]] std::uint64_t requests() const noexcept { return requests_.load(); }

 private:
  using socket_type = boost::asio::ip::tcp::socket;
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
      boost::asio::co_spawn(ioc_, session(std::move(socket)), boost::asio::detached);
    }
  }

  // One connection: its socket, and a timer that closes it when a read or
  // write takes longer than read_timeout. Registered while it runs, so that
  // stop() can close it.
  struct connection {
    connection(std::set<connection*>& all, socket_type s)
        : all_(all), socket(std::move(s)), timer(socket.get_executor()) {
      all_.insert(this);
    }
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;
    ~connection() { all_.erase(this); }
    void close() {
      error_code ignored;
      socket.close(ignored);  // NOLINT(bugprone-unused-return-value)
      timer.cancel();
    }
    void arm(duration d) {
      timer.expires_after(d);
      timer.async_wait([this](error_code ec) {
        if (!ec) close();
      });
    }

   private:
    std::set<connection*>& all_;

   public:
    socket_type socket;
    boost::asio::steady_timer timer;
    std::unique_ptr<detail::tls_connection> tls;  // null: plaintext
    std::string tls_in;                           // ciphertext read
    std::string tls_out;                          // ciphertext to write

    // Reads some bytes (decrypted under TLS).
    boost::asio::awaitable<std::tuple<error_code, std::size_t>> read_some(
        boost::asio::mutable_buffer b) {
      if (!tls) co_return co_await socket.async_read_some(b, tuple);
      for (;;) {
        std::size_t n = 0;
        switch (tls->read(static_cast<char*>(b.data()), b.size(), n)) {
          case detail::tls_connection::status::done:
            co_return std::tuple<error_code, std::size_t>{error_code{}, n};
          case detail::tls_connection::status::closed:
            co_return std::tuple<error_code, std::size_t>{boost::asio::error::eof, 0};
          case detail::tls_connection::status::failed:
            co_return std::tuple<error_code, std::size_t>{tls->error(), 0};
          case detail::tls_connection::status::want_input:
            break;
        }
        auto [ec, got] = co_await socket.async_read_some(boost::asio::buffer(tls_in), tuple);
        if (ec) co_return std::tuple<error_code, std::size_t>{ec, 0};
        tls->put_input(tls_in.data(), got);
      }
    }
    // Writes all of `bytes` (encrypted under TLS).
    boost::asio::awaitable<error_code> write(std::string_view bytes) {
      if (!tls) {
        auto [ec, n] = co_await boost::asio::async_write(socket, boost::asio::buffer(bytes), tuple);
        co_return ec;
      }
      if (!tls->write(bytes)) co_return tls->error();
      co_return co_await flush();
    }
    // Sends the ciphertext TLS produced.
    boost::asio::awaitable<error_code> flush() {
      tls_out.clear();
      if (!tls->take_output(tls_out)) co_return error_code{};
      auto [ec, n] = co_await boost::asio::async_write(socket, boost::asio::buffer(tls_out), tuple);
      co_return ec;
    }
  };

  // Sets up TLS on `c` and runs the server's side of the handshake within
  // read_timeout. A failure is logged at most once a minute.
  boost::asio::awaitable<bool> handshake(connection& c) {
    auto credentials = tls_->current();
    c.tls = credentials ? credentials->make_connection() : nullptr;
    if (!c.tls) {
      log_line(log_level::error, "closing a connection: TLS could not make a connection");
      co_return false;
    }
    c.tls_in.resize(std::size_t{17} * 1024);
    c.arm(opts_.read_timeout);
    error_code ec;
    for (;;) {
      const auto step = c.tls->handshake();
      if (auto fec = co_await c.flush()) {  // the server's flight, or the alert saying why
        ec = fec;
        break;
      }
      if (step == detail::tls_connection::status::done) break;
      if (step != detail::tls_connection::status::want_input) {
        ec = c.tls->error();
        break;
      }
      auto [rec, got] = co_await c.socket.async_read_some(boost::asio::buffer(c.tls_in), tuple);
      if (rec) {
        ec = rec;
        break;
      }
      c.tls->put_input(c.tls_in.data(), got);
    }
    c.timer.cancel();
    if (!ec) co_return true;
    const auto now = clock_type::now();
    if (tls_logged_ == time_point{} || now - tls_logged_ >= std::chrono::minutes(1)) {
      tls_logged_ = now;
      error_code rec;
      const auto remote = c.socket.remote_endpoint(rec);
      std::string why = ec.message();
      if (const auto refused = c.tls->verify_failure(); !refused.empty())
        why += " (" + refused + ")";
      log_line(log_level::warning, "refusing a TLS connection from " +
                                       (rec ? std::string("?") : remote.address().to_string()) +
                                       ": " + why + "; logged at most once a minute");
    }
    co_return false;
  }

  boost::asio::awaitable<void> session(socket_type socket) {
    namespace http = boost::beast::http;
    connection c(sessions_, std::move(socket));
    if (tls_ && !co_await handshake(c)) co_return;
    std::string in;
    std::array<char, 4096> chunk{};
    for (;;) {
      // Beast's parser, fed from the socket: the head is bounded by
      // max_header_bytes, and a GET has no body.
      http::request_parser<http::empty_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(opts_.max_header_bytes));
      parser.body_limit(0);
      parser.eager(true);
      error_code ec;
      c.arm(opts_.read_timeout);
      while (!parser.is_done()) {
        if (!in.empty()) {
          const auto used = parser.put(boost::asio::buffer(in), ec);
          in.erase(0, used);
          // need_more: read before the next put(), which must see more
          // bytes than this one (see http_server_session::read_request).
          const bool need_more = ec == http::error::need_more;
          if (need_more) ec = {};
          if (ec || parser.is_done()) break;
          if (!need_more && used > 0 && !in.empty()) continue;
        }
        auto [rec, n] = co_await c.read_some(boost::asio::buffer(chunk));
        if (rec) {
          if (!in.empty() || parser.got_some()) ec = http::error::partial_message;
          if (!ec) co_return;  // closed between requests
          break;
        }
        in.append(chunk.data(), n);
      }
      c.timer.cancel();
      reply r;
      bool keep = false;
      if (ec == http::error::header_limit) {
        r = {431, "text/plain", "request headers too large\n"};
      } else if (ec == http::error::body_limit) {
        r = {413, "text/plain", "a GET request has no body\n"};
      } else if (ec == http::error::partial_message) {
        co_return;  // the peer went away or timed out in the middle of a request
      } else if (ec) {
        r = {400, "text/plain", "malformed request\n"};
      } else {
        const auto& req = parser.get();
        keep = req.keep_alive();
        const auto auth = req[http::field::authorization];
        r = answer(req.method(), std::string_view(req.target().data(), req.target().size()),
                   std::string_view(auth.data(), auth.size()));
        ++requests_;
      }
      std::string out = format(r, keep);
      c.arm(opts_.read_timeout);
      const error_code wec = co_await c.write(out);
      c.timer.cancel();
      if (wec || !keep) co_return;
    }
  }

  reply answer(boost::beast::http::verb method, std::string_view target, std::string_view auth) {
    std::string_view path = target.substr(0, target.find('?'));
    const std::string prefix = opts_.base_path + "/";
    if (!path.starts_with(prefix) || !known_endpoint(path.substr(prefix.size()))) {
      return {404, "text/plain", "no such admin endpoint\n"};
    }
    if (method != boost::beast::http::verb::get) {
      return {405, "text/plain", "only GET is allowed\n"};
    }
    if (!opts_.token.empty() && !same(auth, "Bearer " + opts_.token)) {
      return {401, "text/plain", "a bearer token is required\n"};
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

  static std::string format(const reply& r, bool keep) {
    std::string_view reason = "Error";
    switch (r.status) {
      case 200:
        reason = "OK";
        break;
      case 400:
        reason = "Bad Request";
        break;
      case 401:
        reason = "Unauthorized";
        break;
      case 404:
        reason = "Not Found";
        break;
      case 405:
        reason = "Method Not Allowed";
        break;
      case 413:
        reason = "Payload Too Large";
        break;
      case 431:
        reason = "Request Header Fields Too Large";
        break;
      case 500:
        reason = "Internal Server Error";
        break;
      case 503:
        reason = "Service Unavailable";
        break;
      default:
        break;
    }
    std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + std::string(reason) + "\r\n";
    out += "Content-Type: " + r.content_type + "\r\n";
    out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
    out += "Cache-Control: no-store\r\n";
    if (r.status == 405) out += "Allow: GET\r\n";
    if (r.status == 401) out += "WWW-Authenticate: Bearer\r\n";
    out += keep ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
    out += r.body;
    return out;
  }

  admin_options opts_;
  page_source pages_;
  logger log_;
  std::shared_ptr<detail::tls_context_source> tls_;  // null: plaintext (declared after log_)
  time_point tls_logged_{};                          // on the server's thread
  std::set<connection*> sessions_;  // on the server's thread; outlives ioc_'s coroutines
  boost::asio::io_context ioc_{1};
  boost::asio::ip::tcp::acceptor acceptor_{ioc_};
  std::uint16_t port_ = 0;
  std::atomic<std::uint64_t> requests_{0};
  std::thread thread_;
};

}  // namespace distcache::admin

#endif  // DISTCACHE_ADMIN_ADMIN_SERVER_HPP
