// distcache — the HTTP peer server's accept loop: one session per connection,
// each on a strand of its own, tracked in the server state.
#ifndef DISTCACHE_TRANSPORT_DETAIL_HTTP_SERVER_ACCEPT_HPP
#define DISTCACHE_TRANSPORT_DETAIL_HTTP_SERVER_ACCEPT_HPP

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <distcache/transport/detail/http_server_session.hpp>
#include <distcache/transport/detail/http_server_state.hpp>
#include <memory>
#include <mutex>

namespace distcache::detail {

/// Accepts connections until the acceptor closes; each becomes an
/// http_server_session. Clears `accepting` when it ends.
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
    auto session = std::make_shared<http_server_session>(st, std::move(socket));
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
