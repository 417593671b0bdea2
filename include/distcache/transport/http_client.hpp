// distcache — the pooled HTTP/1.1 client that sends peer requests (protocol v1).
#ifndef DISTCACHE_TRANSPORT_HTTP_CLIENT_HPP
#define DISTCACHE_TRANSPORT_HTTP_CLIENT_HPP

#include <algorithm>
#include <array>
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
#include <distcache/detail/gather.hpp>
#include <distcache/error.hpp>
#include <distcache/telemetry/telemetry.hpp>
#include <distcache/transport/detail/http_client_connection.hpp>
#include <distcache/transport/peer.hpp>
#include <distcache/transport/wire.hpp>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace distcache::transport {

/// A pooled HTTP/1.1 client for protocol v1 (docs/protocol.md).
///
/// Every operation takes the peer as "host:port" (a numeric IPv4 address, an
/// IPv6 address in brackets, or a host name resolved asynchronously) and a
/// timeout for the whole exchange, and completes by calling its callback
/// exactly once, on a thread running the io_context, never inline. Requests
/// to one peer reuse idle keep-alive connections and open new ones while
/// all are busy; a connection that fails is dropped. A request sent on a
/// reused connection that the peer had closed meanwhile is sent once more on
/// a new one (every operation is idempotent).
///
/// Coalescing (client_options.coalesce_in_flight, docs/protocol.md#coalescing):
/// while that many gets, removes and invalidations are in flight to a peer
/// (a request in flight past coalesce_slow_after no longer counts), a
/// further one waits; when one completes, the oldest waiting call leaves
/// with the others of its keyspace and kind, as one request of at most
/// max_coalesced_keys keys, and the reply is split back to each call. A
/// failed request fails each call it carried with the same error. A call
/// waits at most until its timeout (errc::timeout); a coalesced remove
/// reports how many keys of the whole request the peer held. Sets and
/// health probes never wait.
///
/// Errors: errc::timeout when the timeout passes (the connection is
/// dropped); errc::peer_unavailable for a refused or broken connection, a
/// connect_timeout, any unexpected HTTP status and any reply that does not
/// decode; errc::keyspace_not_found when the peer does not know the
/// keyspace (404 with DC-Error); for set, the errc the peer names in a 422;
/// errc::invalid_key / value_too_large for arguments over the limits and
/// errc::keyspace_not_found for an empty keyspace name, before anything is
/// sent; errc::stopped after close().
///
/// TLS (client_options.tls): every connection starts with a handshake; the
/// peer's certificate must chain to tls.ca_file and name the host of
/// "host:port" (an IP SAN for an address), or the request fails with
/// errc::peer_unavailable (counted, logged once a minute per peer). The
/// last session with each peer is resumed by its next connection. The
/// constructor throws config_error when the files do not load.
///
/// Thread safety: all members may be called concurrently from any thread.
/// Callbacks must not block (they run on the io_context).
///
/// Lifetime: destroy the client before its io_context. Callbacks of requests
/// still in flight when the io_context stops running are never called.
class http_client final : public peer_client {
 public:
  /// Throws config_error for an invalid option (empty or non-printable
  /// self_name, connect_timeout <= 0, invalid limits).
  /// `tls` is the TLS library used when options.tls.enabled (transport::https
  /// passes OpenSSL's); without one such a client throws config_error.
  http_client(net::io_context& ioc, client_options options, logger log = {},
              const std::shared_ptr<const distcache::detail::tls_backend>& tls = nullptr)
      : st_(std::make_shared<detail::http_client_state>(ioc, std::move(options), std::move(log),
                                                        tls)) {
    const client_options& o = st_->options;
    if (o.self_name.empty()) throw config_error("client_options.self_name: must not be empty");
    for (char c : o.self_name) {
      if (c < 0x21 || c > 0x7e)
        throw config_error("client_options.self_name: '" + o.self_name +
                           "' must hold visible ASCII characters only");
    }
    if (o.connect_timeout <= duration::zero())
      throw config_error("client_options.connect_timeout: must be > 0, got " +
                         distcache::detail::format_duration(o.connect_timeout));
    if (auto why = validate(o.limits, "client_options.limits"); !why.empty())
      throw config_error(why);
    if (o.coalesce_slow_after < duration::zero())
      throw config_error("client_options.coalesce_slow_after: must be >= 0, got " +
                         distcache::detail::format_duration(o.coalesce_slow_after));
    if (o.max_coalesced_keys < 1 || o.max_coalesced_keys > o.limits.max_batch)
      throw config_error("client_options.max_coalesced_keys: must be in [1, limits.max_batch (" +
                         std::to_string(o.limits.max_batch) + ")], got " +
                         std::to_string(o.max_coalesced_keys));
    if (auto why = distcache::detail::validate_tls(o.tls, "client_options.tls", true); !why.empty())
      throw config_error(why);
    if (o.tls.enabled && !st_->tls)
      throw config_error(distcache::detail::tls_unavailable("client_options.tls"));
    if (st_->tls) {
      std::string why;
      if (st_->tls->load(why)) throw config_error("client_options.tls: " + why);
      st_->tls->watch(ioc);
    }
  }

  http_client(const http_client&) = delete;
  http_client& operator=(const http_client&) = delete;

  /// Closes every connection (see close()).
  ~http_client() override {
    try {
      close();
    } catch (...) {  // NOLINT(bugprone-empty-catch): a destructor must not throw
    }
  }

  /// Looks `keys` up on `peer`: one key goes as a get, more as get-many
  /// (split into requests of at most max_batch keys, sent in parallel).
  /// `done(ec, items)` receives one item per key in key order; on error the
  /// vector is empty. No keys: completes at once with no items.
  void get(const std::string& peer, std::string_view keyspace, std::vector<std::string> keys,
           std::uint64_t ring_version, duration timeout, get_handler done) override {
    get_traced(peer, keyspace, std::move(keys), ring_version, timeout, {}, std::move(done));
  }

  /// get() sending `traceparent` as the W3C traceparent header (on every
  /// part of a split batch). A value that is not a valid traceparent is not
  /// sent.
  void get_traced(const std::string& peer, std::string_view keyspace, std::vector<std::string> keys,
                  std::uint64_t ring_version, duration timeout, std::string_view traceparent,
                  get_handler done) override {
    if (keys.empty()) return post(std::move(done), error_code{}, std::vector<reply_item>{});
    if (auto ec = check_keys(keyspace, keys))
      return post(std::move(done), ec, std::vector<reply_item>{});
    traceparent = valid_traceparent(traceparent);
    const std::size_t max = st_->options.limits.max_batch;
    if (keys.size() > max) {
      return split_get(peer, keyspace, std::move(keys), ring_version, timeout, traceparent,
                       std::move(done));
    }
    submit(peer, detail::http_client_op::get, keyspace, std::move(keys), ring_version, timeout,
           traceparent, std::move(done));
  }

  /// Stores `value` under `key` on `peer` with remaining TTL `ttl_ms` (-1:
  /// never expires; below -1 is sent as 0, already expired).
  void set(const std::string& peer, std::string_view keyspace, std::string_view key,
           std::string value, std::int64_t ttl_ms, std::uint64_t ring_version, duration timeout,
           handler done) override {
    set_traced(peer, keyspace, key, std::move(value), ttl_ms, ring_version, timeout, {},
               std::move(done));
  }

  /// set() sending `traceparent` (when valid) as the W3C header.
  void set_traced(const std::string& peer, std::string_view keyspace, std::string_view key,
                  std::string value, std::int64_t ttl_ms, std::uint64_t ring_version,
                  duration timeout, std::string_view traceparent, handler done) override {
    send_set(peer, keyspace, key, std::move(value), ttl_ms, ring_version, 0, timeout, traceparent,
             std::move(done));
  }

  /// A warm-up push: a set carrying DC-Push-Read-Ms (`read_unix_ms`, which
  /// must not be 0). The peer answers it like a set, stored or refused.
  void push(const std::string& peer, std::string_view keyspace, std::string_view key,
            std::string value, std::int64_t ttl_ms, std::uint64_t ring_version,
            std::uint64_t read_unix_ms, duration timeout, std::string_view traceparent,
            handler done) override {
    send_set(peer, keyspace, key, std::move(value), ttl_ms, ring_version,
             std::max<std::uint64_t>(read_unix_ms, 1), timeout, traceparent, std::move(done));
  }

  /// Removes `keys` from `peer`'s caches; `done(ec, n)` receives how many it
  /// held. Batches over max_batch are split and the counts added.
  void remove(const std::string& peer, std::string_view keyspace, std::vector<std::string> keys,
              std::uint64_t ring_version, duration timeout, remove_handler done) override {
    remove_traced(peer, keyspace, std::move(keys), ring_version, timeout, {}, std::move(done));
  }

  /// remove() sending `traceparent` (when valid) on every request.
  void remove_traced(const std::string& peer, std::string_view keyspace,
                     std::vector<std::string> keys, std::uint64_t ring_version, duration timeout,
                     std::string_view traceparent, remove_handler done) override {
    traceparent = valid_traceparent(traceparent);
    if (keys.empty()) return post(std::move(done), error_code{}, std::size_t{0});
    if (auto ec = check_keys(keyspace, keys)) return post(std::move(done), ec, std::size_t{0});
    if (keys.size() > st_->options.limits.max_batch) {
      return split_keys(
          peer, keyspace, std::move(keys), ring_version, timeout, traceparent,
          [done = std::move(done)](error_code ec, std::size_t n) { done(ec, n); }, true);
    }
    submit(peer, detail::http_client_op::remove, keyspace, std::move(keys), ring_version, timeout,
           traceparent, std::move(done));
  }

  /// Drops `keys` from `peer`'s caches (after a put on this node).
  void invalidate(const std::string& peer, std::string_view keyspace, std::vector<std::string> keys,
                  std::uint64_t ring_version, duration timeout, handler done) override {
    invalidate_traced(peer, keyspace, std::move(keys), ring_version, timeout, {}, std::move(done));
  }

  /// invalidate() sending `traceparent` (when valid) on every request.
  void invalidate_traced(const std::string& peer, std::string_view keyspace,
                         std::vector<std::string> keys, std::uint64_t ring_version,
                         duration timeout, std::string_view traceparent, handler done) override {
    traceparent = valid_traceparent(traceparent);
    if (keys.empty()) return post(std::move(done), error_code{});
    if (auto ec = check_keys(keyspace, keys)) return post(std::move(done), ec);
    if (keys.size() > st_->options.limits.max_batch) {
      return split_keys(
          peer, keyspace, std::move(keys), ring_version, timeout, traceparent,
          [done = std::move(done)](error_code ec, std::size_t) { done(ec); }, false);
    }
    submit(peer, detail::http_client_op::invalidate, keyspace, std::move(keys), ring_version,
           timeout, traceparent, std::move(done));
  }

  /// Asks `peer` whether it serves (GET /_distcache/v1/health → 200 "ok").
  void health(const std::string& peer, duration timeout, handler done) override {
    auto c = acquire(peer);
    if (!c) return post(std::move(done), c.error());
    auto& r = (*c)->req;
    r.op = detail::http_client_op::health;
    r.timeout = timeout;
    r.keyspace.clear();
    r.out.clear();
    r.value.clear();
    detail::append_request_head(r.out, "GET", detail::dc_health_path, {}, {}, *(*c)->pool(),
                                st_->options.self_name, st_->options.cluster_name, 0, 0);
    r.done = std::move(done);
    (*c)->start();
  }

  /// Loads the TLS files again (client_options.tls); connections opened
  /// from then on use them (and offer no session made under the old ones).
  /// errc::invalid_config (logged with the reason) when they do not load:
  /// the old ones stay. Nothing to do without TLS.
  result<void> reload_tls() override { return distcache::detail::reload_tls_of(st_->tls); }

  /// Its TLS and coalescing counters.
  [[nodiscard]] client_stats stats() const override {
    client_stats s;
    distcache::detail::fill_tls_stats(s, *st_);
    s.coalesced_requests = st_->coalesced_requests.load(std::memory_order_relaxed);
    s.coalesced_calls = st_->coalesced_calls.load(std::memory_order_relaxed);
    s.slow_requests = st_->slow_requests.load(std::memory_order_relaxed);
    std::lock_guard lock(st_->mutex);
    for (const auto& [name, pool] : st_->peers) s.calls_waiting += pool->waiting.size();
    return s;
  }

  /// Closes every pooled connection; requests in flight complete with
  /// errc::stopped, and so does every later call. Returns at once.
  void close() override {
    if (st_->tls) st_->tls->stop_watching();
    std::vector<std::shared_ptr<detail::http_client_connection>> conns;
    std::vector<detail::http_waiting_call> waiting;
    {
      std::lock_guard lock(st_->mutex);
      if (st_->closed) return;
      st_->closed = true;
      for (auto& [name, pool] : st_->peers) {
        pool->dropped = true;
        pool->idle.clear();
        conns.insert(conns.end(), pool->all.begin(), pool->all.end());
        pool->all.clear();
        std::move(pool->waiting.begin(), pool->waiting.end(), std::back_inserter(waiting));
        pool->waiting.clear();
        if (pool->wait_timer) pool->wait_timer->cancel();
      }
      st_->peers.clear();
    }
    for (auto& c : conns) c->shutdown();
    for (auto& call : waiting) {
      net::post(st_->ioc,
                [call = std::move(call)]() mutable { call.fail(make_error_code(errc::stopped)); });
    }
  }

  /// Closes the idle connections to `peer` and forgets it (for a peer that
  /// left); requests in flight to it finish normally, calls waiting for one
  /// of them (coalescing) end with errc::peer_unavailable.
  void drop_peer(const std::string& peer) {
    std::vector<std::shared_ptr<detail::http_client_connection>> idle;
    std::vector<detail::http_waiting_call> waiting;
    {
      std::lock_guard lock(st_->mutex);
      auto it = st_->peers.find(peer);
      if (it == st_->peers.end()) return;
      auto pool = it->second;
      st_->peers.erase(it);
      pool->dropped = true;
      std::move(pool->waiting.begin(), pool->waiting.end(), std::back_inserter(waiting));
      pool->waiting.clear();
      if (pool->wait_timer) pool->wait_timer->cancel();
      idle.swap(pool->idle);
      for (auto& c : idle) {
        auto pos = std::find(pool->all.begin(), pool->all.end(), c);
        if (pos != pool->all.end()) pool->all.erase(pos);
      }
    }
    for (auto& c : idle) c->shutdown();
    for (auto& call : waiting) {
      net::post(st_->ioc, [call = std::move(call)]() mutable {
        call.fail(make_error_code(errc::peer_unavailable));
      });
    }
  }

  /// Open connections (idle and busy) to `peer`.
  [[nodiscard]] std::size_t connections(const std::string& peer) const {
    std::lock_guard lock(st_->mutex);
    auto it = st_->peers.find(peer);
    return it == st_->peers.end() ? 0 : it->second->all.size();
  }

 private:
  using connection_ptr = std::shared_ptr<detail::http_client_connection>;

  // A set; a warm-up push when `push_read_ms` is not 0.
  void send_set(const std::string& peer, std::string_view keyspace, std::string_view key,
                std::string value, std::int64_t ttl_ms, std::uint64_t ring_version,
                std::uint64_t push_read_ms, duration timeout, std::string_view traceparent,
                handler done) {
    traceparent = valid_traceparent(traceparent);
    const wire_limits& l = st_->options.limits;
    if (keyspace.empty()) return post(std::move(done), make_error_code(errc::keyspace_not_found));
    if (key.empty() || key.size() > l.max_key_bytes)
      return post(std::move(done), make_error_code(errc::invalid_key));
    if (value.size() > l.max_value_bytes)
      return post(std::move(done), make_error_code(errc::value_too_large));
    auto c = acquire(peer);
    if (!c) return post(std::move(done), c.error());
    auto& conn = **c;
    auto& r = conn.req;
    r.op = detail::http_client_op::set;
    detail::begin_keyspace_request(*st_, conn, keyspace, "set", ring_version, timeout,
                                   4 + key.size() + 8 + 4 + value.size(), traceparent,
                                   push_read_ms);
    encode_set_body_head(r.out, key, ttl_ms < -1 ? 0 : ttl_ms, value.size());
    r.value = std::move(value);
    r.done = std::move(done);
    conn.start();
  }

  template <class Handler, class... Args>
  void post(Handler&& done, Args&&... args) {
    net::post(st_->ioc,
              [done = std::forward<Handler>(done), ... args = std::forward<Args>(args)]() mutable {
                if (done) done(std::move(args)...);
              });
  }

  [[nodiscard]] error_code check_keys(std::string_view keyspace,
                                      const std::vector<std::string>& keys) const {
    if (keyspace.empty()) return make_error_code(errc::keyspace_not_found);
    for (const auto& k : keys)
      if (k.empty() || k.size() > st_->options.limits.max_key_bytes)
        return make_error_code(errc::invalid_key);
    return {};
  }

  /// Sends a get, remove or invalidate of at most max_batch keys, or, while
  /// coalesce_in_flight of them are in flight to `peer` (not counting those
  /// in flight for coalesce_slow_after), queues it to leave with the next
  /// request (impl/http_client_calls.ipp).
  template <class Handler>
  void submit(const std::string& peer, detail::http_client_op op, std::string_view keyspace,
              std::vector<std::string> keys, std::uint64_t ring_version, duration timeout,
              std::string_view traceparent, Handler done) {
    const std::size_t cap = st_->options.coalesce_in_flight;
    connection_ptr conn;
    {
      std::unique_lock lock(st_->mutex);
      auto pool = pool_for(peer);
      if (!pool) return post_failure(std::move(done), pool.error());
      detail::http_peer_pool& p = **pool;
      if (cap == 0) {
        conn = detail::take_connection(st_, *pool);
      } else {
        const time_point now = clock_type::now();
        if (p.in_flight >= cap && !p.flush_posted) detail::free_slow_places(*st_, p, now);
        if (p.in_flight < cap && !p.flush_posted && p.waiting.empty()) {
          conn = detail::take_connection(st_, *pool);
          detail::take_place(*st_, p, *conn, now);
        } else {
          detail::http_waiting_call call;
          call.op = op;
          call.keyspace.assign(keyspace);
          call.keys = std::move(keys);
          call.ring_version = ring_version;
          call.deadline = now + timeout;
          call.traceparent.assign(traceparent);
          set_handler(call, std::move(done));
          // The timer also fires when a request in flight can have become
          // slow: its place is freed then, and the waiting calls leave.
          detail::arm_wait_timer(st_, *pool, std::min(call.deadline, p.slow_check_at));
          p.waiting.push_back(std::move(call));
          // Places were freed (slow requests) while calls wait: they leave now.
          const bool flush = p.in_flight < cap && !p.flush_posted;
          if (flush) p.flush_posted = true;
          lock.unlock();
          if (flush) detail::post_flush(st_, *pool);
          return;
        }
      }
    }
    detail::fill_key_request(*st_, *conn, op, keyspace, keys, ring_version, timeout, traceparent);
    conn->req.counted = cap > 0;
    set_handler(conn->req, std::move(done));
    conn->start();
  }

  /// Stores a call's handler in the member of its type.
  template <class Target, class Handler>
  static void set_handler(Target& target, Handler done) {
    if constexpr (std::is_same_v<Handler, get_handler>) {
      target.get_done = std::move(done);
    } else if constexpr (std::is_same_v<Handler, remove_handler>) {
      target.remove_done = std::move(done);
    } else {
      target.done = std::move(done);
    }
  }

  /// Completes a call with `ec` (on the io_context, never inline).
  template <class Handler>
  void post_failure(Handler done, error_code ec) {
    if constexpr (std::is_same_v<Handler, get_handler>) {
      post(std::move(done), ec, std::vector<reply_item>{});
    } else if constexpr (std::is_same_v<Handler, remove_handler>) {
      post(std::move(done), ec, std::size_t{0});
    } else {
      post(std::move(done), ec);
    }
  }

  /// Takes an idle connection to `peer` or makes a new one.
  result<connection_ptr> acquire(const std::string& peer) {
    std::lock_guard lock(st_->mutex);
    auto pool = pool_for(peer);
    if (!pool) return pool.error();
    return detail::take_connection(st_, *pool);
  }

  /// The pool of `peer`, made at its first use. Call with st_->mutex held.
  result<std::shared_ptr<detail::http_peer_pool>> pool_for(const std::string& peer) {
    if (st_->closed) return make_error_code(errc::stopped);
    auto it = st_->peers.find(peer);
    if (it == st_->peers.end()) {
      auto pool = std::make_shared<detail::http_peer_pool>();
      if (!detail::split_peer_address(peer, pool->host, pool->port)) {
        st_->write_log(log_level::warning, "distcache transport: peer address '" +
                                               detail::printable_for_log(peer) +
                                               "' is not host:port");
        return make_error_code(errc::peer_unavailable);
      }
      pool->name = peer;
      error_code ec;
      auto address = net::ip::make_address(pool->host, ec);
      if (!ec) {
        pool->endpoint.emplace(address, static_cast<std::uint16_t>(std::stoul(pool->port)));
      }
      it = st_->peers.emplace(peer, std::move(pool)).first;
    }
    return it->second;
  }

  /// `traceparent` when it is a valid W3C value, else empty: what is not one
  /// is never written into a request head.
  static std::string_view valid_traceparent(std::string_view traceparent) noexcept {
    return traceparent.empty() || telemetry::parse_traceparent(traceparent) ? traceparent
                                                                            : std::string_view{};
  }

  /// Calls `send(part_index, keys)` for each part of at most max_batch keys.
  template <class Send>
  void for_each_part(std::vector<std::string>& keys, Send send) const {
    const std::size_t max = st_->options.limits.max_batch;
    for (std::size_t offset = 0, part = 0; offset < keys.size(); offset += max, ++part) {
      const auto first = keys.begin() + static_cast<std::ptrdiff_t>(offset);
      const auto last = first + static_cast<std::ptrdiff_t>(std::min(max, keys.size() - offset));
      send(part,
           std::vector<std::string>(std::make_move_iterator(first), std::make_move_iterator(last)));
    }
  }

  [[nodiscard]] std::size_t parts(std::size_t keys) const {
    const std::size_t max = st_->options.limits.max_batch;
    return (keys + max - 1) / max;
  }

  /// A get of more than max_batch keys: one request per part, in parallel;
  /// the first error wins, else the items in key order.
  void split_get(const std::string& peer, std::string_view keyspace, std::vector<std::string> keys,
                 std::uint64_t ring_version, duration timeout, std::string_view traceparent,
                 get_handler done) {
    using part_result = std::pair<error_code, std::vector<reply_item>>;
    auto all = detail::gather<part_result>::make(
        parts(keys.size()),
        // NOLINTNEXTLINE(performance-unnecessary-value-param): the items are moved out
        [done = std::move(done)](std::vector<part_result> results) {
          std::vector<reply_item> items;
          for (auto& [ec, part] : results) {
            if (ec) return done(ec, {});
            std::move(part.begin(), part.end(), std::back_inserter(items));
          }
          done({}, std::move(items));
        });
    for_each_part(keys, [&](std::size_t i, std::vector<std::string> part) {
      get_traced(peer, keyspace, std::move(part), ring_version, timeout, traceparent,
                 [all, i](error_code ec, std::vector<reply_item> items) {
                   all->set(i, {ec, std::move(items)});
                 });
    });
  }

  /// A remove or invalidate of more than max_batch keys, split the same way;
  /// the removed counts add up.
  void split_keys(const std::string& peer, std::string_view keyspace, std::vector<std::string> keys,
                  std::uint64_t ring_version, duration timeout, std::string_view traceparent,
                  remove_handler done, bool is_remove) {
    using part_result = std::pair<error_code, std::size_t>;
    auto all = detail::gather<part_result>::make(
        parts(keys.size()), [done = std::move(done)](const std::vector<part_result>& results) {
          std::size_t removed = 0;
          for (const auto& [ec, n] : results) {
            if (ec) return done(ec, 0);
            removed += n;
          }
          done({}, removed);
        });
    for_each_part(keys, [&](std::size_t i, std::vector<std::string> part) {
      if (is_remove) {
        remove_traced(peer, keyspace, std::move(part), ring_version, timeout, traceparent,
                      [all, i](error_code ec, std::size_t n) {
                        all->set(i, {ec, n});
                      });
      } else {
        invalidate_traced(peer, keyspace, std::move(part), ring_version, timeout, traceparent,
                          [all, i](error_code ec) {
                            all->set(i, {ec, 0});
                          });
      }
    });
  }

  std::shared_ptr<detail::http_client_state> st_;
};

}  // namespace distcache::transport

#endif  // DISTCACHE_TRANSPORT_HTTP_CLIENT_HPP
