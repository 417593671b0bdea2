// distcache — the TLS side of an HTTP client connection: the handshake
// (with the peer's name and the pooled session), the records of a request
// written with the same direct write as plaintext, and the records of a
// response decrypted as they arrive. Members of http_client_connection,
// included by http_client_connection.hpp.
#ifndef DISTCACHE_TRANSPORT_DETAIL_IMPL_HTTP_CLIENT_TLS_IPP
#define DISTCACHE_TRANSPORT_DETAIL_IMPL_HTTP_CLIENT_TLS_IPP

#include <distcache/transport/detail/http_client_connection.hpp>

namespace distcache::detail {

/// The client's side of the TLS handshake: the peer's certificate must
/// chain to the CAs and name the host it was dialled at. The last
/// session with this peer is offered for resumption.
inline void http_client_connection::handshake() {
  auto [credentials, generation] = st_->tls->current_generation();
  tls_ = credentials ? credentials->make_connection() : nullptr;
  if (!tls_) {
    log_failure(credentials ? "TLS: the library could not make a connection"
                            : "TLS is not set up (the certificates did not load)");
    fail(errc::peer_unavailable, false);
    return;
  }
  if (tls_in_.empty()) tls_in_.resize(tls_read_chunk);
  if (!tls_->expect_server_name(pool_->host)) {
    log_failure("TLS: cannot check the name '" + pool_->host + "' in a certificate");
    fail(errc::peer_unavailable, false);
    return;
  }
  generation_ = generation;
  {
    std::lock_guard lock(st_->mutex);
    if (pool_->tls_session && pool_->tls_session_generation == generation_)
      tls_->resume(pool_->tls_session);
  }
  session_saved_ = false;
  handshake_step();
}

/// One round of the handshake: send this side's flight, read the
/// peer's. Once done, the last flight (the client's Finished) stays
/// queued and leaves with the request.
inline void http_client_connection::handshake_step() {
  const auto step = tls_->handshake();
  if (step == tls_connection::status::done) {
    on_handshake({});
    return;
  }
  const bool failed = step != tls_connection::status::want_input;
  tls_out_.clear();
  tls_->take_output(tls_out_);  // on failure, the alert that tells the server why
  send_raw([self = shared_from_this(), failed](error_code ec) {
    if (failed || ec) {
      self->on_handshake(failed ? self->tls_->error() : ec);
      return;
    }
    self->socket_.async_read_some(net::buffer(self->tls_in_),
                                  [self](error_code rec, std::size_t got) {
                                    if (self->dead_) return;
                                    if (rec) {
                                      self->on_handshake(rec);
                                      return;
                                    }
                                    self->tls_->put_input(self->tls_in_.data(), got);
                                    self->handshake_step();
                                  });
  });
}

/// Sends tls_out_: at once when the socket takes it (it is non-blocking),
/// the rest when it can; then `done(ec)` (not called once dead).
template <class Done>
inline void http_client_connection::send_raw(Done done) {
  error_code ec;
  std::size_t n = socket_.write_some(net::buffer(tls_out_), ec);
  if (ec == net::error::would_block || ec == net::error::try_again) {
    ec = {};
    n = 0;
  }
  if (ec || n == tls_out_.size()) {
    done(ec);
    return;
  }
  net::async_write(
      socket_, net::buffer(tls_out_.data() + n, tls_out_.size() - n),
      [self = shared_from_this(), done = std::move(done)](error_code wec, std::size_t) mutable {
        if (self->dead_) return;
        done(wec);
      });
}

inline void http_client_connection::on_handshake(error_code ec) {
  if (dead_) return;
  connecting_ = false;
  if (ec) {
    st_->tls_handshakes_failed.fetch_add(1, std::memory_order_relaxed);
    const auto now = clock_type::now();
    bool log_it = false;
    {
      std::lock_guard lock(st_->mutex);
      if (pool_->tls_logged == time_point{} || now - pool_->tls_logged >= std::chrono::minutes(1)) {
        pool_->tls_logged = now;
        log_it = true;
      }
    }
    if (log_it) {
      std::string why = ec.message();
      if (const auto refused = tls_->verify_failure(); !refused.empty())
        why += " (" + refused + ")";
      log_failure("TLS handshake failed: " + why + "; logged once a minute per peer");
    }
    fail(errc::peer_unavailable, false);
    return;
  }
  st_->tls_handshakes.fetch_add(1, std::memory_order_relaxed);
  if (tls_->resumed()) st_->tls_resumed.fetch_add(1, std::memory_order_relaxed);
  write();
}

/// Keeps this connection's TLS session in the pool for the next
/// connection to resume. Under TLS 1.3 the server sends its session
/// ticket after the handshake, so this runs once the first response was
/// read.
inline void http_client_connection::save_session() {
  session_saved_ = true;
  auto session = tls_->session();
  if (!session) return;
  std::lock_guard lock(st_->mutex);
  pool_->tls_session = std::move(session);
  pool_->tls_session_generation = generation_;
}

/// Encrypts the request (a small set's value gathered into the same
/// record) and sends it with whatever the handshake left queued; a large
/// value goes a piece at a time, so that its ciphertext is never held
/// whole.
inline void http_client_connection::write_tls() {
  if (!req.value.empty() && req.out.size() + req.value.size() <= tls_gather_limit) {
    req.out += req.value;
    req.value.clear();
  }
  if (!tls_->write(req.out)) {
    on_failure(tls_->error(), "write");
    return;
  }
  tls_value_at_ = 0;
  send_tls_piece();
}

inline void http_client_connection::send_tls_piece() {
  if (tls_value_at_ < req.value.size()) {
    const std::size_t n = std::min(tls_piece, req.value.size() - tls_value_at_);
    if (!tls_->write(std::string_view(req.value).substr(tls_value_at_, n))) {
      on_failure(tls_->error(), "write");
      return;
    }
    tls_value_at_ += n;
  }
  tls_out_.clear();
  tls_->take_output(tls_out_);
  send_raw([self = shared_from_this()](error_code ec) {
    if (ec) {
      self->on_failure(ec, "write");
      return;
    }
    if (self->tls_value_at_ < self->req.value.size()) {
      self->send_tls_piece();
      return;
    }
    if (self->tls_out_.capacity() > tls_piece * 2) std::string().swap(self->tls_out_);
    self->written();
  });
}

/// Decrypts into buffer_ what arrived, reading ciphertext until a whole
/// record did.
inline void http_client_connection::read_tls() {
  auto b = buffer_.prepare(read_size());
  std::size_t n = 0;
  switch (tls_->read(static_cast<char*>(b.data()), b.size(), n)) {
    case tls_connection::status::done:
      on_read({}, n);
      return;
    case tls_connection::status::closed:
      on_read(net::error::eof, 0);
      return;
    case tls_connection::status::failed:
      on_read(tls_->error(), 0);
      return;
    case tls_connection::status::want_input:
      break;
  }
  socket_.async_read_some(net::buffer(tls_in_),
                          [self = shared_from_this()](error_code ec, std::size_t got) {
                            if (self->dead_) return;
                            if (ec) {
                              self->on_read(ec, 0);
                              return;
                            }
                            self->tls_->put_input(self->tls_in_.data(), got);
                            self->read_tls();
                          });
}

}  // namespace distcache::detail

#endif  // DISTCACHE_TRANSPORT_DETAIL_IMPL_HTTP_CLIENT_TLS_IPP
