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
#include <boost/beast/http/error.hpp>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <distcache/clock.hpp>
#include <distcache/config.hpp>
#include <distcache/detail/config.hpp>
#include <distcache/error.hpp>
#include <distcache/transport/detail/http_server_accept.hpp>
#include <distcache/transport/detail/http_server_session.hpp>
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
  /// `tls` is the TLS library used when options.tls.enabled (transport::https
  /// passes OpenSSL's); without one such a server refuses to start.
  http_server(net::io_context& ioc, peer_service& service, server_options options, logger log = {},
              const std::shared_ptr<const distcache::detail::tls_backend>& tls = nullptr)
      : st_(std::make_shared<detail::http_server_state>(ioc, service, std::move(options),
                                                        std::move(log), tls)) {}

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
    if (why.empty() && o.max_inflight_bytes < 1)
      why = "server_options.max_inflight_bytes: must be >= 1, got 0";
    if (why.empty() && o.max_connections_per_address < 1)
      why = "server_options.max_connections_per_address: must be >= 1, got 0";
    if (why.empty()) why = distcache::detail::validate_tls(o.tls, "server_options.tls", true);
    if (!why.empty()) return fail(make_error_code(errc::invalid_config), why);
    if (why.empty() && o.tls.enabled && !st_->tls)
      why = distcache::detail::tls_unavailable("server_options.tls");
    if (!why.empty()) return fail(make_error_code(errc::invalid_config), why);
    if (st_->tls && !st_->tls->current()) {
      if (auto ec = st_->tls->load(why)) return fail(ec, "server_options.tls: " + why);
    }
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
    if (st_->tls) st_->tls->watch(st_->ioc);
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

  /// Stops accepting, closes connections that wait for a request or are in
  /// the middle of sending one, and lets requests being handled finish
  /// (their responses carry Connection: close;
  /// a request received after stop() gets 503). Returns immediately; see
  /// idle() and wait_idle(). Idempotent.
  void stop() override {
    if (st_->stopping.exchange(true)) return;
    if (st_->tls) st_->tls->stop_watching();
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

  /// Its counters: connections open and accepted, and what the memory
  /// budget and the per-address limit refused.
  [[nodiscard]] server_stats stats() const override {
    server_stats s;
    s.connections_open = st_->active.load(std::memory_order_relaxed);
    s.connections_accepted = st_->accepted.load(std::memory_order_relaxed);
    s.connections_refused = st_->connections_refused.load(std::memory_order_relaxed);
    s.requests_refused = st_->requests_refused.load(std::memory_order_relaxed);
    s.inflight_bytes = st_->budget.used();
    s.max_inflight_bytes = st_->budget.max();
    distcache::detail::fill_tls_stats(s, *st_);
    return s;
  }

  /// Loads the TLS files again (server_options.tls); connections accepted
  /// from then on use them, open ones keep theirs. errc::invalid_config
  /// (logged with the reason) when they do not load: the old ones stay.
  /// Nothing to do without TLS.
  result<void> reload_tls() override { return distcache::detail::reload_tls_of(st_->tls); }

 private:
  std::shared_ptr<detail::http_server_state> st_;
  std::uint16_t port_ = 0;
};

}  // namespace distcache::transport

#endif  // DISTCACHE_TRANSPORT_HTTP_SERVER_HPP
