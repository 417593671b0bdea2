// distcache — coalescing in the HTTP client: the gets, removes and
// invalidations that wait while coalesce_in_flight of them are in flight to
// their peer, and the requests that carry them (docs/protocol.md#coalescing).
// Included by http_client_connection.hpp.
#ifndef DISTCACHE_TRANSPORT_DETAIL_IMPL_HTTP_CLIENT_CALLS_IPP
#define DISTCACHE_TRANSPORT_DETAIL_IMPL_HTTP_CLIENT_CALLS_IPP

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <distcache/transport/detail/http_client_connection.hpp>
#include <exception>
#include <iterator>

namespace distcache::detail {

/// The path segment of an operation on a keyspace.
inline std::string_view keyspace_op_name(http_client_op op) noexcept {
  switch (op) {
    case http_client_op::get:
      return "get";
    case http_client_op::get_many:
      return "get-many";
    case http_client_op::set:
      return "set";
    case http_client_op::remove:
      return "remove";
    case http_client_op::invalidate:
      return "invalidate";
    case http_client_op::health:
      break;
  }
  return "health";
}

/// An idle connection of `pool`, or a new one. Call with st.mutex held.
inline std::shared_ptr<http_client_connection> take_connection(
    const std::shared_ptr<http_client_state>& st, const std::shared_ptr<http_peer_pool>& pool) {
  if (!pool->idle.empty()) {
    auto c = std::move(pool->idle.back());
    pool->idle.pop_back();
    return c;
  }
  auto c = std::make_shared<http_client_connection>(st, pool);
  pool->all.push_back(c);
  return c;
}

/// Gives `conn`'s request one of `pool`'s coalesce_in_flight places, from
/// `now`. Call with st.mutex held.
inline void take_place(const http_client_state& st, http_peer_pool& pool,
                       http_client_connection& conn, time_point now) {
  ++pool.in_flight;
  conn.place.held = true;
  conn.place.slow = false;
  conn.place.since = now;
  if (st.options.coalesce_slow_after > duration::zero())
    pool.slow_check_at = std::min(pool.slow_check_at, now + st.options.coalesce_slow_after);
}

/// Slow requests (their places freed) one peer may have in flight at once:
/// a peer that holds every request open gets no more connections from this
/// client than this plus coalesce_in_flight.
inline constexpr std::size_t max_slow_in_flight = 64;

/// Frees the places of `pool`'s requests that have been in flight for
/// coalesce_slow_after or longer, while fewer than max_slow_in_flight are
/// slow: a peer that holds requests open (its data source stalls) must not
/// hold back the calls it would answer at once. Returns whether it freed
/// any. Scans the pool's connections only once one can have become slow
/// (or a slow one ended: release()). Call with st.mutex held.
inline bool free_slow_places(http_client_state& st, http_peer_pool& pool, time_point now) {
  if (now < pool.slow_check_at) return false;
  const duration after = st.options.coalesce_slow_after;
  time_point next = time_point::max();
  std::uint64_t freed = 0;
  for (const auto& c : pool.all) {
    if (!c->place.held) continue;
    if (now - c->place.since >= after && pool.slow_in_flight < max_slow_in_flight) {
      c->place.held = false;
      c->place.slow = true;
      --pool.in_flight;
      ++pool.slow_in_flight;
      ++freed;
    } else if (now - c->place.since < after) {
      next = std::min(next, c->place.since + after);
    }  // else slow, but max_slow_in_flight are: it keeps its place (release() asks for a scan)
  }
  pool.slow_check_at = next;
  if (freed != 0) st.slow_requests.fetch_add(freed, std::memory_order_relaxed);
  return freed != 0;
}

/// Fills the request line and headers of a keyspace operation.
inline void begin_keyspace_request(const http_client_state& st, http_client_connection& conn,
                                   std::string_view keyspace, std::string_view op,
                                   std::uint64_t ring_version, duration timeout,
                                   std::size_t body_size, std::string_view traceparent,
                                   std::uint64_t push_read_ms = 0) {
  auto& r = conn.req;
  r.timeout = timeout;
  r.keyspace.assign(keyspace);
  r.out.clear();
  r.value.clear();
  // A get tells the owner how long it waits, so that an owner still loading
  // a key answers "loading" before that (docs/protocol.md, DC-Wait-Ms).
  std::uint64_t wait_ms = 0;
  if (op == "get" || op == "get-many") {
    wait_ms = static_cast<std::uint64_t>(std::max<std::int64_t>(
        1, std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()));
  }
  append_request_head(r.out, "POST", dc_keyspace_prefix, keyspace, op, *conn.pool(),
                      st.options.self_name, st.options.cluster_name, ring_version, body_size,
                      traceparent, wait_ms, push_read_ms);
}

/// Fills `conn.req` with a get (one key), get-many, remove or invalidate of
/// `keys`; `op` is get for any number of keys. The handler is set apart.
inline void fill_key_request(const http_client_state& st, http_client_connection& conn,
                             http_client_op op, std::string_view keyspace,
                             const std::vector<std::string>& keys, std::uint64_t ring_version,
                             duration timeout, std::string_view traceparent) {
  auto& r = conn.req;
  if (op == http_client_op::get && keys.size() > 1) op = http_client_op::get_many;
  r.op = op;
  r.expected = keys.size();
  std::size_t body = 4;
  for (const auto& k : keys) body += 4 + k.size();
  begin_keyspace_request(st, conn, keyspace, keyspace_op_name(op), ring_version, timeout, body,
                         traceparent);
  transport::encode_key_list(r.out, keys);
}

/// Calls each part's handler, every one even when one throws; the first
/// exception is thrown again at the end (the connection logs it).
template <class Parts, class Call>
void call_each(Parts& parts, Call call) {
  std::exception_ptr first;
  for (auto& p : parts) {
    try {
      call(p);
    } catch (...) {
      if (!first) first = std::current_exception();
    }
  }
  if (first) std::rethrow_exception(first);
}

/// Fills `conn.req` with the waiting `calls` (one or more, of one keyspace
/// and kind) as one request: their keys in order, the newest ring version,
/// the earliest deadline, the first traceparent; the reply is split back.
inline void fill_waiting_calls(const http_client_state& st, http_client_connection& conn,
                               std::vector<http_waiting_call>& calls, time_point now) {
  auto& first = calls.front();
  if (calls.size() == 1) {
    fill_key_request(st, conn, first.op, first.keyspace, first.keys, first.ring_version,
                     first.deadline - now, first.traceparent);
    conn.req.get_done = std::move(first.get_done);
    conn.req.remove_done = std::move(first.remove_done);
    conn.req.done = std::move(first.done);
    return;
  }
  std::uint64_t ring_version = 0;
  time_point deadline = first.deadline;
  std::string_view traceparent;
  std::size_t count = 0;
  std::size_t body = 4;
  for (const auto& c : calls) {
    ring_version = std::max(ring_version, c.ring_version);
    deadline = std::min(deadline, c.deadline);
    if (traceparent.empty()) traceparent = c.traceparent;
    count += c.keys.size();
    for (const auto& k : c.keys) body += 4 + k.size();
  }
  auto& r = conn.req;
  r.op = first.op == http_client_op::get ? http_client_op::get_many : first.op;
  r.expected = count;
  begin_keyspace_request(st, conn, first.keyspace, keyspace_op_name(r.op), ring_version,
                         deadline - now, body, traceparent);
  r.out.reserve(r.out.size() + body);
  wire_put_u32(r.out, static_cast<std::uint32_t>(count));
  for (const auto& c : calls)
    for (const auto& k : c.keys) wire_put_bytes(r.out, k);
  switch (first.op) {
    case http_client_op::get: {
      struct part {
        std::size_t keys;
        std::function<void(error_code, std::vector<transport::reply_item>)> done;
      };
      std::vector<part> parts;
      parts.reserve(calls.size());
      for (auto& c : calls) parts.push_back({c.keys.size(), std::move(c.get_done)});
      r.get_done = [parts = std::move(parts)](error_code ec,
                                              std::vector<transport::reply_item> items) mutable {
        std::size_t at = 0;
        call_each(parts, [&](part& p) {
          std::vector<transport::reply_item> mine;
          if (!ec) {
            const auto from = items.begin() + static_cast<std::ptrdiff_t>(at);
            mine.assign(std::make_move_iterator(from),
                        std::make_move_iterator(from + static_cast<std::ptrdiff_t>(p.keys)));
          }
          at += p.keys;
          if (p.done) p.done(ec, std::move(mine));
        });
      };
      break;
    }
    case http_client_op::remove: {
      // Each caller learns how many keys of the whole request the peer held.
      std::vector<std::function<void(error_code, std::size_t)>> dones;
      dones.reserve(calls.size());
      for (auto& c : calls) dones.push_back(std::move(c.remove_done));
      r.remove_done = [dones = std::move(dones)](error_code ec, std::size_t n) mutable {
        call_each(dones, [&](auto& d) {
          if (d) d(ec, n);
        });
      };
      break;
    }
    default: {
      std::vector<std::function<void(error_code)>> dones;
      dones.reserve(calls.size());
      for (auto& c : calls) dones.push_back(std::move(c.done));
      r.done = [dones = std::move(dones)](error_code ec) mutable {
        call_each(dones, [&](auto& d) {
          if (d) d(ec);
        });
      };
      break;
    }
  }
}

/// Moves into `batch` the oldest waiting call of `pool` that has time left
/// and, after it, the waiting calls of its keyspace and kind while the keys
/// stay within max_coalesced_keys; into `expired` the calls whose deadline
/// passed. Calls of other keyspaces or kinds keep their place. Call with
/// st.mutex held.
inline void take_waiting(const http_client_state& st, http_peer_pool& pool, time_point now,
                         std::vector<http_waiting_call>& batch,
                         std::vector<http_waiting_call>& expired) {
  static constexpr std::size_t max_skipped = 64;  // bounds the scan past other kinds
  const std::size_t max_keys = st.options.max_coalesced_keys;
  std::vector<http_waiting_call> skipped;
  std::size_t keys = 0;
  auto& q = pool.waiting;
  while (!q.empty() && skipped.size() < max_skipped) {
    auto& c = q.front();
    if (c.deadline <= now) {
      expired.push_back(std::move(c));
      q.pop_front();
      continue;
    }
    if (batch.empty()) {
      keys = c.keys.size();
      batch.push_back(std::move(c));
      q.pop_front();
      continue;
    }
    if (c.op != batch.front().op || c.keyspace != batch.front().keyspace) {
      skipped.push_back(std::move(c));
      q.pop_front();
      continue;
    }
    if (keys + c.keys.size() > max_keys) break;
    keys += c.keys.size();
    batch.push_back(std::move(c));
    q.pop_front();
  }
  std::for_each(skipped.rbegin(), skipped.rend(),
                [&q](http_waiting_call& c) { q.push_front(std::move(c)); });
}

/// Fails `calls` with `ec`; a callback that throws is logged.
inline void fail_calls(const http_client_state& st, std::vector<http_waiting_call>& calls,
                       error_code ec) {
  for (auto& c : calls) {
    try {
      c.fail(ec);
    } catch (const std::exception& e) {
      st.write_log(log_level::error,
                   std::string("distcache transport: a completion callback threw: ") + e.what());
    } catch (...) {
      st.write_log(log_level::error, "distcache transport: a completion callback threw");
    }
  }
}

inline void on_wait_timer(const std::shared_ptr<http_client_state>& st,
                          const std::shared_ptr<http_peer_pool>& pool, std::uint64_t gen);

inline void flush_waiting_calls(const std::shared_ptr<http_client_state>& st,
                                const std::shared_ptr<http_peer_pool>& pool);

/// Makes sure `pool`'s wait timer fires by `deadline`. Call with st->mutex
/// held.
inline void arm_wait_timer(const std::shared_ptr<http_client_state>& st,
                           const std::shared_ptr<http_peer_pool>& pool, time_point deadline) {
  if (pool->wait_armed && pool->wait_expiry <= deadline) return;
  if (!pool->wait_timer) pool->wait_timer.emplace(st->ioc);
  pool->wait_armed = true;
  pool->wait_expiry = deadline;
  pool->wait_timer->expires_at(deadline);  // a pending wait completes with operation_aborted
  pool->wait_timer->async_wait(
      [st, pool, gen = ++pool->wait_gen](error_code) { on_wait_timer(st, pool, gen); });
}

/// Fails the waiting calls of `pool` whose deadline passed with
/// errc::timeout, frees the places of slow requests (free_slow_places) and
/// flushes the waiting calls if that made room, and arms the timer for the
/// next deadline or the next request that can become slow.
inline void on_wait_timer(const std::shared_ptr<http_client_state>& st,
                          const std::shared_ptr<http_peer_pool>& pool, std::uint64_t gen) {
  std::vector<http_waiting_call> expired;
  std::vector<http_waiting_call> stopped;
  bool flush = false;
  {
    std::lock_guard lock(st->mutex);
    // A wait superseded by a later arm_wait_timer() does nothing: the newer
    // one is pending. (Generations, not deadlines: a superseded wait whose
    // handler runs late must not pass for a newer one at the same deadline.)
    if (!pool->wait_armed || pool->wait_gen != gen) return;
    pool->wait_armed = false;
    if (st->closed) {  // calls close() did not reach (their peer was dropped before)
      std::move(pool->waiting.begin(), pool->waiting.end(), std::back_inserter(stopped));
      pool->waiting.clear();
    }
    const time_point now = clock_type::now();
    time_point next = time_point::max();
    std::deque<http_waiting_call> keep;
    for (auto& c : pool->waiting) {
      if (c.deadline <= now) {
        expired.push_back(std::move(c));
      } else {
        next = std::min(next, c.deadline);
        keep.push_back(std::move(c));
      }
    }
    pool->waiting.swap(keep);
    if (!pool->waiting.empty()) {
      if (free_slow_places(*st, *pool, now) && !pool->flush_posted &&
          pool->in_flight < st->options.coalesce_in_flight) {
        pool->flush_posted = true;
        flush = true;
      }
      arm_wait_timer(st, pool, std::min(next, pool->slow_check_at));
    }
  }
  if (flush) flush_waiting_calls(st, pool);  // first: it clears flush_posted
  fail_calls(*st, stopped, make_error_code(errc::stopped));
  fail_calls(*st, expired, make_error_code(errc::timeout));
}

/// Sends the waiting calls of `pool` while fewer than coalesce_in_flight of
/// its requests are in flight: each request carries the oldest waiting call
/// and those of its keyspace and kind behind it (take_waiting). Runs after
/// the callbacks of the completion that posted it, so the calls they made
/// leave in the same request as the ones that waited.
inline void flush_waiting_calls(const std::shared_ptr<http_client_state>& st,
                                const std::shared_ptr<http_peer_pool>& pool) {
  const std::size_t cap = st->options.coalesce_in_flight;
  std::vector<http_waiting_call> expired;
  std::vector<http_waiting_call> stopped;
  // flush_posted stays set until the pass that sends nothing more: a call
  // submitted meanwhile waits behind the older ones rather than overtake
  // them, and a completion meanwhile leaves its calls to this loop. An
  // exception (bad_alloc) clears it, so that the next completion flushes.
  struct clear_on_throw {
    const std::shared_ptr<http_client_state>& st;
    const std::shared_ptr<http_peer_pool>& pool;
    int exceptions = std::uncaught_exceptions();
    clear_on_throw(const std::shared_ptr<http_client_state>& s,
                   const std::shared_ptr<http_peer_pool>& p)
        : st(s), pool(p) {}
    clear_on_throw(const clear_on_throw&) = delete;
    clear_on_throw& operator=(const clear_on_throw&) = delete;
    ~clear_on_throw() {
      if (std::uncaught_exceptions() <= exceptions) return;
      std::lock_guard lock(st->mutex);
      pool->flush_posted = false;
    }
  } guard(st, pool);
  for (;;) {
    std::vector<http_waiting_call> batch;
    std::shared_ptr<http_client_connection> conn;
    const time_point now = clock_type::now();
    {
      std::lock_guard lock(st->mutex);
      if (st->closed) {
        // close() ended the waiting calls of the peers it knew; those of a
        // peer dropped before (drop_peer) end here.
        std::move(pool->waiting.begin(), pool->waiting.end(), std::back_inserter(stopped));
        pool->waiting.clear();
      } else if (pool->in_flight < cap ||
                 (free_slow_places(*st, *pool, now) && pool->in_flight < cap)) {
        take_waiting(*st, *pool, now, batch, expired);
      }
      if (batch.empty()) {
        pool->flush_posted = false;
        // Calls still wait: the timer also fires when a request just sent
        // can have become slow (a flush after a timer fired sends requests
        // later than the timer was armed for).
        if (!pool->waiting.empty()) arm_wait_timer(st, pool, pool->slow_check_at);
        break;
      }
      conn = take_connection(st, pool);
      take_place(*st, *pool, *conn, now);
    }
    if (batch.size() > 1) {
      st->coalesced_requests.fetch_add(1, std::memory_order_relaxed);
      st->coalesced_calls.fetch_add(batch.size(), std::memory_order_relaxed);
    }
    fill_waiting_calls(*st, *conn, batch, now);
    conn->req.counted = true;
    conn->start();
  }
  fail_calls(*st, stopped, make_error_code(errc::stopped));
  fail_calls(*st, expired, make_error_code(errc::timeout));
}

inline void post_flush(const std::shared_ptr<http_client_state>& st,
                       const std::shared_ptr<http_peer_pool>& pool) noexcept {
  try {
    net::post(st->ioc, [st, pool] { flush_waiting_calls(st, pool); });
  } catch (...) {  // bad_alloc: the next completion flushes instead
    std::lock_guard lock(st->mutex);
    pool->flush_posted = false;
  }
}

}  // namespace distcache::detail

#endif  // DISTCACHE_TRANSPORT_DETAIL_IMPL_HTTP_CLIENT_CALLS_IPP
