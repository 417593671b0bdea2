// distcache — the HTTP peer server's accept loop: one session per connection,
// each on a strand of its own, tracked in the server state.
#ifndef DISTCACHE_TRANSPORT_DETAIL_HTTP_SERVER_ACCEPT_HPP
#define DISTCACHE_TRANSPORT_DETAIL_HTTP_SERVER_ACCEPT_HPP

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <distcache/transport/detail/http_server_session.hpp>
#include <distcache/transport/detail/http_server_state.hpp>
#include <memory>
#include <mutex>
#include <string>

namespace distcache::detail {

/// Answers a connection over max_connections_per_address: a 503 with
/// Connection: close written at once (it fits the socket's buffer), then a
/// half-close and a short, bounded drain so that the client reads the
/// answer rather than a reset. Nothing of the request is parsed.
inline net::awaitable<void> http_refuse_connection(std::shared_ptr<http_server_state> st,
                                                   net::ip::tcp::socket socket) {
  const std::string why = "too many connections from this address (max_connections_per_address " +
                          std::to_string(st->per_address.max()) + ")";
  std::string response =
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
      "Content-Length: " +
      std::to_string(why.size()) + "\r\nConnection: close\r\n\r\n" + why;
  error_code ec;
  socket.non_blocking(true, ec);
  socket.write_some(net::buffer(response), ec);  // NOLINT(bugprone-unused-return-value)
  socket.shutdown(net::ip::tcp::socket::shutdown_send, ec);
  net::steady_timer deadline(socket.get_executor(), std::chrono::milliseconds(500));
  deadline.async_wait([&socket](const error_code& e) {
    error_code ignored;
    if (!e) socket.close(ignored);  // NOLINT(bugprone-unused-return-value)
  });
  std::array<char, 4096> sink{};
  for (std::size_t drained = 0; drained < (std::size_t{64} << 10);) {
    auto [rec, n] =
        co_await socket.async_read_some(net::buffer(sink), net::as_tuple(net::use_awaitable));
    if (rec) break;
    drained += n;
  }
  deadline.cancel();
  socket.close(ec);  // NOLINT(bugprone-unused-return-value)
}

/// Accepts connections until the acceptor closes; each becomes an
/// http_server_session, unless its address has max_connections_per_address
/// open already (http_refuse_connection). Clears `accepting` when it ends.
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
    error_code aec;
    const auto remote = socket.remote_endpoint(aec);
    std::string address = aec ? std::string("?") : remote.address().to_string();
    if (!st->per_address.try_add(address)) {
      st->connections_refused.fetch_add(1, std::memory_order_relaxed);
      if (st->per_address.should_log(address, clock_type::now())) {
        st->write_log(log_level::warning, "distcache transport: refusing connections from " +
                                              address + ": it has max_connections_per_address (" +
                                              std::to_string(st->per_address.max()) +
                                              ") open; logged once a minute per address");
      }
      if (st->tls) {
        // A TLS client cannot read a plaintext answer, and a handshake
        // costs what the limit protects: close at once.
        error_code ignored;
        socket.close(ignored);  // NOLINT(bugprone-unused-return-value)
      } else {
        net::co_spawn(session_executor, http_refuse_connection(st, std::move(socket)),
                      net::detached);
      }
      continue;
    }
    auto session = std::make_shared<http_server_session>(st, std::move(socket), std::move(address));
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

#endif  // DISTCACHE_TRANSPORT_DETAIL_HTTP_SERVER_ACCEPT_HPP
