// Helpers for the Kubernetes discovery tests: an HTTPS server (Beast over
// Asio SSL, on a thread of its own, on a free loopback port) that answers
// the pod API paths through a handler the test sets, including watch streams
// that the test feeds line by line.
#ifndef DISTCACHE_TESTS_SUPPORT_KUBERNETES_API_HPP
#define DISTCACHE_TESTS_SUPPORT_KUBERNETES_API_HPP

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <deque>
#include <fstream>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/pki.hpp"

namespace distcache::test {

/// The pod API of a Kubernetes API server, answered by a handler.
class fake_kubernetes_api {
 public:
  /// What to answer one request with.
  struct reply {
    unsigned status = 200;
    std::string body;
    bool slow = false;    // never answer (until the server stops)
    bool stream = false;  // a watch: 200, chunked, `body` first, then what push() sends
  };
  using handler = std::function<reply(const std::string& target, const std::string& auth)>;

  fake_kubernetes_api(const test_pki& pki, handler h)
      : ctx_(boost::asio::ssl::context::tls_server), handler_(std::move(h)), acceptor_(ioc_) {
    ctx_.use_certificate_chain_file(pki.path("server.crt"));
    ctx_.use_private_key_file(pki.path("server.key"), boost::asio::ssl::context::pem);
    using tcp = boost::asio::ip::tcp;
    const tcp::endpoint at(boost::asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(at.protocol());
    acceptor_.bind(at);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    boost::asio::co_spawn(ioc_, accept_loop(), boost::asio::detached);
    thread_ = std::thread([this] { ioc_.run(); });
  }
  fake_kubernetes_api(const fake_kubernetes_api&) = delete;
  fake_kubernetes_api& operator=(const fake_kubernetes_api&) = delete;
  ~fake_kubernetes_api() {
    ioc_.stop();
    thread_.join();
  }

  [[nodiscard]] std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  void set_handler(handler h) {
    std::lock_guard lock(mutex_);
    handler_ = std::move(h);
  }
  /// The request targets received, in order.
  [[nodiscard]] std::vector<std::string> targets() const {
    std::lock_guard lock(mutex_);
    return targets_;
  }
  /// How many requests carried `target_part` in their target.
  [[nodiscard]] std::size_t count(const std::string& target_part) const {
    std::lock_guard lock(mutex_);
    return static_cast<std::size_t>(std::count_if(targets_.begin(), targets_.end(), [&](auto& t) {
      return t.find(target_part) != std::string::npos;
    }));
  }
  /// The Authorization headers received, in order.
  [[nodiscard]] std::vector<std::string> authorizations() const {
    std::lock_guard lock(mutex_);
    return auths_;
  }
  /// Watch streams open now.
  [[nodiscard]] int open_watches() const { return open_watches_.load(); }
  /// Sends `line` (one JSON event) on every open watch. With a `version`
  /// (> 0), watches opened later from an older resourceVersion get it too.
  void push(const std::string& line, long version = 0) {
    boost::asio::post(ioc_, [this, line = line + "\n", version] {
      if (version > 0) history_.emplace_back(version, line);
      for (auto& w : watches_) {
        w->lines.push_back(line);
        w->signal.cancel();
      }
    });
  }
  /// Ends every open watch (the last chunk), as timeoutSeconds would.
  void end_watches() {
    boost::asio::post(ioc_, [this] {
      for (auto& w : watches_) {
        w->end = true;
        w->signal.cancel();
      }
    });
  }

 private:
  using stream = boost::beast::ssl_stream<boost::beast::tcp_stream>;
  struct watch {
    explicit watch(boost::asio::io_context& ioc) : signal(ioc) {}
    std::deque<std::string> lines;
    boost::asio::steady_timer signal;
    bool end = false;   // end_watches()
    bool gone = false;  // the client went away
  };
  static constexpr auto tuple = boost::asio::as_tuple(boost::asio::use_awaitable);

  boost::asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(tuple);
      if (ec) co_return;
      boost::asio::co_spawn(ioc_, session(std::move(socket)), boost::asio::detached);
    }
  }

  boost::asio::awaitable<void> session(boost::asio::ip::tcp::socket socket) {
    namespace http = boost::beast::http;
    auto s = std::make_shared<stream>(std::move(socket), ctx_);
    if (auto [ec] = co_await s->async_handshake(boost::asio::ssl::stream_base::server, tuple); ec) {
      co_return;
    }
    boost::beast::flat_buffer buffer;
    for (;;) {
      http::request<http::string_body> req;
      if (auto [ec, n] = co_await http::async_read(*s, buffer, req, tuple); ec) co_return;
      const std::string target(req.target());
      const std::string auth(req[http::field::authorization]);
      reply r;
      {
        std::lock_guard lock(mutex_);
        targets_.push_back(target);
        auths_.push_back(auth);
        r = handler_(target, auth);
      }
      if (r.slow) {
        boost::asio::steady_timer never(ioc_, std::chrono::hours(1));
        co_await never.async_wait(tuple);
        co_return;
      }
      if (r.stream && r.status == 200) {
        co_await serve_watch(s, target, std::move(r.body));
        co_return;
      }
      http::response<http::string_body> res{static_cast<http::status>(r.status), 11};
      res.set(http::field::content_type, "application/json");
      res.keep_alive(req.keep_alive());
      res.body() = std::move(r.body);
      res.prepare_payload();
      if (auto [ec, n] = co_await http::async_write(*s, res, tuple); ec) co_return;
    }
  }

  // A watch: the events after the requested resourceVersion first (as the
  // API server replays them), then each push(), until end_watches() or the
  // client goes away (a reader alongside notices).
  boost::asio::awaitable<void> serve_watch(std::shared_ptr<stream> s, const std::string& target,
                                           std::string first) {
    namespace http = boost::beast::http;
    auto w = std::make_shared<watch>(ioc_);
    if (!first.empty()) w->lines.push_back(std::move(first));
    long from = 0;
    if (const auto at = target.find("resourceVersion="); at != std::string::npos) {
      from = std::stol(target.substr(at + 16));
    }
    for (const auto& [version, line] : history_) {
      if (version > from) w->lines.push_back(line);
    }
    watches_.push_back(w);
    ++open_watches_;
    boost::asio::co_spawn(
        ioc_,
        [s, w]() -> boost::asio::awaitable<void> {
          std::array<char, 256> sink{};
          co_await s->async_read_some(boost::asio::buffer(sink), tuple);
          w->gone = true;  // the client closed (or sent something a watch never gets)
          w->signal.cancel();
        },
        boost::asio::detached);
    http::response<http::empty_body> res{http::status::ok, 11};
    res.set(http::field::content_type, "application/json");
    res.chunked(true);
    http::response_serializer<http::empty_body> sr(res);
    if (auto [ec, n] = co_await http::async_write_header(*s, sr, tuple); ec) w->gone = true;
    while (!w->gone) {
      while (!w->lines.empty() && !w->gone) {  // what was pushed before an end goes out first
        const std::string line = std::move(w->lines.front());
        w->lines.pop_front();
        auto [ec, n] = co_await boost::asio::async_write(
            *s, http::make_chunk(boost::asio::buffer(line)), tuple);
        if (ec) w->gone = true;
      }
      if (w->end || w->gone) break;
      w->signal.expires_after(std::chrono::hours(1));
      co_await w->signal.async_wait(tuple);
    }
    watches_.remove(w);
    --open_watches_;
    co_await boost::asio::async_write(*s, http::make_chunk_last(), tuple);
    boost::beast::get_lowest_layer(*s).close();
  }

  boost::asio::ssl::context ctx_;  // before ioc_: the sessions' streams use it
  mutable std::mutex mutex_;
  handler handler_;
  std::vector<std::string> targets_;
  std::vector<std::string> auths_;
  std::atomic<int> open_watches_{0};
  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::list<std::shared_ptr<watch>> watches_;          // on the server's thread
  std::vector<std::pair<long, std::string>> history_;  // on the server's thread
  std::uint16_t port_ = 0;
  std::thread thread_;
};

}  // namespace distcache::test

#endif  // DISTCACHE_TESTS_SUPPORT_KUBERNETES_API_HPP
