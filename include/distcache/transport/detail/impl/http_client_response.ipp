// distcache — the response side of an HTTP client connection: reading and
// parsing the response, checking it against the request, and completing the
// request (the caller's callback, the connection back to its pool, the flush
// of the calls that waited). Members of http_client_connection, included by
// http_client_connection.hpp.
#ifndef DISTCACHE_TRANSPORT_DETAIL_IMPL_HTTP_CLIENT_RESPONSE_IPP
#define DISTCACHE_TRANSPORT_DETAIL_IMPL_HTTP_CLIENT_RESPONSE_IPP

#include <distcache/transport/detail/http_client_connection.hpp>

namespace distcache::detail {

inline void http_client_connection::on_read(error_code ec, std::size_t n) {
  if (dead_) return;
  if (ec) {
    if (ec == net::error::eof && response_started_ && parser_->need_eof()) {
      error_code pec;
      parser_->put_eof(pec);
      if (!pec) {
        on_response(false);
        return;
      }
    }
    on_failure(ec, "read");
    return;
  }
  buffer_.commit(n);
  response_started_ = true;
  for (;;) {
    error_code pec;
    const std::size_t used = parser_->put(buffer_.data(), pec);
    buffer_.consume(used);
    if (pec == boost::beast::http::error::need_more) break;
    if (pec) {
      log_failure("malformed HTTP response: " + pec.message());
      fail(errc::peer_unavailable, false);
      return;
    }
    if (parser_->is_done()) {
      if (response_.status >= 100 && response_.status < 200) {  // interim: read on
        response_.reset();
        parser_.emplace(response_, st_->options.limits);
        if (buffer_.size() > 0) continue;
        break;
      }
      on_response(parser_->keep_alive() && buffer_.size() == 0);
      return;
    }
    if (used == 0 || buffer_.size() == 0) break;
  }
  read();
}

inline void http_client_connection::on_response(bool keep_alive) {
  if (tls_ && !session_saved_) save_session();
  outcome out;
  const unsigned status = response_.status;
  const auto expected = req.op == http_client_op::get || req.op == http_client_op::get_many ||
                                req.op == http_client_op::health
                            ? 200U
                            : 204U;
  if (status == expected) {
    switch (req.op) {
      case http_client_op::get: {
        out.items.resize(1);
        if (auto ec =
                transport::decode_get_reply(response_.body, st_->options.limits, out.items[0])) {
          return protocol_error("undecodable get reply: " + ec.message(), keep_alive);
        }
        break;
      }
      case http_client_op::get_many: {
        if (auto ec =
                transport::decode_get_many_reply(response_.body, st_->options.limits, out.items)) {
          return protocol_error("undecodable get-many reply: " + ec.message(), keep_alive);
        }
        if (out.items.size() != req.expected) {
          return protocol_error("get-many reply has " + std::to_string(out.items.size()) +
                                    " items for " + std::to_string(req.expected) + " keys",
                                keep_alive);
        }
        break;
      }
      case http_client_op::remove:
        if (!response_.dc_removed)
          return protocol_error("remove reply without a valid DC-Removed", keep_alive);
        out.removed = static_cast<std::size_t>(*response_.dc_removed);
        break;
      case http_client_op::health:
        if (response_.body != "ok") return protocol_error("health reply is not \"ok\"", keep_alive);
        break;
      case http_client_op::set:
      case http_client_op::invalidate:
        break;
    }
    finish(std::move(out), keep_alive);
    return;
  }
  if (status == 404 && response_.dc_error == "keyspace_not_found") {
    out.ec = make_error_code(errc::keyspace_not_found);
  } else if (status == 403 && response_.dc_error == "cluster_mismatch") {
    log_failure("belongs to another cluster: " + printable_for_log(response_.body, 200));
    out.ec = make_error_code(errc::cluster_mismatch);
  } else if (status == 422 && req.op == http_client_op::set && errc_from_name(response_.dc_error)) {
    out.ec = make_error_code(*errc_from_name(response_.dc_error));
  } else {
    log_failure("answered HTTP " + std::to_string(status) +
                    (response_.dc_error.empty() ? "" : " (DC-Error: " + response_.dc_error + ")") +
                    (response_.body.empty() ? "" : ": " + printable_for_log(response_.body, 200)),
                status == 503 ? log_level::info : log_level::warning);
    out.ec = make_error_code(errc::peer_unavailable);
  }
  finish(std::move(out), keep_alive);
}

/// Completes the request: hands the connection back (keep) or drops it,
/// then runs the caller's callback (posted when a start() is on this
/// thread's stack: the request completed within the call that made it).
inline void http_client_connection::finish(outcome out, bool keep) {
  busy_ = false;
  connecting_ = false;
  // Take what the callback needs before the connection becomes available
  // to another thread.
  completion c;
  c.st = st_;
  c.pool = pool_;
  c.op = req.op;
  c.get_done = std::move(req.get_done);
  c.remove_done = std::move(req.remove_done);
  c.done = std::move(req.done);
  c.out = std::move(out);
  req.get_done = nullptr;
  req.remove_done = nullptr;
  req.done = nullptr;
  const bool counted = req.counted;
  req.counted = false;
  const released r = release(keep && !closed_ && !dead_, counted);
  c.flush = r.flush;
  if (!r.kept) {
    dead_ = true;
    close_socket();
    timer_.cancel();
  }
  if (client_starts_on_stack > 0) {
    auto later = [c = std::move(c)]() mutable { c.run(); };
    try {
      net::post(st_->ioc, std::move(later));
      return;
    } catch (...) {  // bad_alloc before the handler moved: run it here rather than lose it
    }
    later();
    return;
  }
  c.run();
}

inline void http_client_connection::completion::run() {
  // The waiting calls leave after this one's callbacks ran, together with
  // the calls those make (a flush posted behind them), also when a
  // callback, or the log line about it, throws.
  struct flush_after {
    completion& c;
    explicit flush_after(completion& comp) : c(comp) {}
    flush_after(const flush_after&) = delete;
    flush_after& operator=(const flush_after&) = delete;
    ~flush_after() {
      if (c.flush) post_flush(c.st, c.pool);
    }
  } guard(*this);
  try {
    switch (op) {
      case http_client_op::get:
      case http_client_op::get_many:
        if (get_done) get_done(out.ec, std::move(out.items));
        break;
      case http_client_op::remove:
        if (remove_done) remove_done(out.ec, out.removed);
        break;
      default:
        if (done) done(out.ec);
        break;
    }
  } catch (const std::exception& e) {
    st->write_log(log_level::error,
                  std::string("distcache transport: a completion callback threw: ") + e.what());
  } catch (...) {
    st->write_log(log_level::error, "distcache transport: a completion callback threw");
  }
}

/// (declared with its contract in http_client_connection.hpp)
inline http_client_connection::released http_client_connection::release(bool keep, bool counted) {
  const auto self = shared_from_this();
  std::lock_guard lock(st_->mutex);
  http_peer_pool& pool = *pool_;
  if (place.held) {
    place.held = false;
    --pool.in_flight;
  }
  if (place.slow) {  // a request that waits for a place of a slow one may have one now
    place.slow = false;
    --pool.slow_in_flight;
    pool.slow_check_at = time_point::min();
  }
  released r{false, false};
  if (keep && !st_->closed && !pool.dropped && pool.idle.size() < st_->options.max_idle_per_peer) {
    pool.idle.push_back(self);
    r.kept = true;
  } else {
    auto it = std::find(pool.all.begin(), pool.all.end(), self);
    if (it != pool.all.end()) {
      *it = std::move(pool.all.back());
      pool.all.pop_back();
    }
  }
  // Last: nothing after it throws, so a flush asked for is always posted.
  if (counted && !pool.flush_posted && !pool.waiting.empty()) {
    pool.flush_posted = true;
    r.flush = true;
  }
  return r;
}

}  // namespace distcache::detail

#endif  // DISTCACHE_TRANSPORT_DETAIL_IMPL_HTTP_CLIENT_RESPONSE_IPP
