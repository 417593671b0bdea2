// distcache — the peer server's handlers of the keyspace operations of
// protocol v1 (get, get-many, set, remove, invalidate): each decodes the
// body, calls the peer_service and prepares the response or a rejection.
// Members of http_server_session, included by http_server_session.hpp.
#ifndef DISTCACHE_TRANSPORT_DETAIL_IMPL_HTTP_SERVER_OPERATIONS_IPP
#define DISTCACHE_TRANSPORT_DETAIL_IMPL_HTTP_SERVER_OPERATIONS_IPP

#include <distcache/transport/detail/http_server_session.hpp>

namespace distcache::detail {

inline net::awaitable<void> http_server_session::lookup(bool close, bool many) {
  if (auto ec = transport::decode_key_list(req_.body, st_->options.limits, keys_)) {
    reject(400, ec.message(), {}, close);
    co_return;
  }
  const std::size_t count = keys_.size();
  if (!many && count != 1) {
    reject(400, "get takes exactly one key; use get-many", {}, close);
    co_return;
  }
  items_.clear();
  service_failed_ = false;
  if (count > 0) {
    auto pending = start_get();
    if (pending && !pending->take(items_)) items_ = co_await wait_get(std::move(pending));
  }
  if (service_failed_ || items_.size() != count) {
    reject(500,
           service_failed_ ? std::string("the node failed to look the keys up")
                           : "the node answered " + std::to_string(items_.size()) + " items for " +
                                 std::to_string(count) + " keys",
           {}, close);
    co_return;
  }
  body_.clear();
  if (!many) {
    detail::wire_put_reply_item_head(body_, items_[0]);
    value_ = items_[0].status == transport::reply_item::kind::value
                 ? std::string_view(items_[0].value)
                 : std::string_view{};
  } else {
    transport::encode_get_many_reply(body_, items_);
    value_ = {};
  }
  make_head(200, "application/octet-stream", {}, close);
}

inline net::awaitable<void> http_server_session::handle_set(bool close) {
  transport::set_body_view set;
  if (auto ec = transport::decode_set_body(req_.body, st_->options.limits, set)) {
    reject(400, ec.message(), {}, close);
    co_return;
  }
  // The value is the body's tail: move the body into it rather than copy
  // it, so that a large set holds its bytes once (the budget counted
  // them as the body; the cache owns them from here).
  std::string key(set.key);
  const auto offset = static_cast<std::size_t>(set.value.data() - req_.body.data());
  const std::size_t size = set.value.size();
  std::string value = std::move(req_.body);  // `set` is not used past this point
  req_.body = std::string();
  value.erase(0, offset);
  value.resize(size);
  const error_code ec =
      st_->svc.set_from(keyspace_, std::move(key), std::move(value), set.ttl_ms, req_.info());
  if (ec) {
    const std::string_view name =
        ec.category() == error_category() ? errc_name(static_cast<errc>(ec.value())) : "";
    if (name.empty()) {
      reject(500, "set failed: " + ec.message(), {}, close);
    } else {
      reject(422, "set refused: " + ec.message(), "DC-Error: " + std::string(name) + "\r\n", close);
    }
    co_return;
  }
  body_.clear();
  value_ = {};
  make_head(204, {}, {}, close);
}

inline net::awaitable<void> http_server_session::handle_remove(bool close) {
  if (auto ec = transport::decode_key_list(req_.body, st_->options.limits, keys_)) {
    reject(400, ec.message(), {}, close);
    co_return;
  }
  const std::size_t removed = st_->svc.remove_from(keyspace_, keys_, req_.info());
  body_.clear();
  value_ = {};
  extra_.assign("DC-Removed: ");
  append_decimal_u64(extra_, removed);
  extra_ += "\r\n";
  make_head(204, {}, extra_, close);
}

inline net::awaitable<void> http_server_session::handle_invalidate(bool close) {
  if (auto ec = transport::decode_key_list(req_.body, st_->options.limits, keys_)) {
    reject(400, ec.message(), {}, close);
    co_return;
  }
  st_->svc.invalidate_from(keyspace_, keys_, req_.info());
  body_.clear();
  value_ = {};
  make_head(204, {}, {}, close);
}

inline std::shared_ptr<peer_get_pending> http_server_session::start_get() {
  auto p = std::make_shared<peer_get_pending>();
  try {
    st_->svc.get_from(
        keyspace_, std::move(keys_), req_.info(),
        [p](std::vector<transport::reply_item> items) { p->complete(std::move(items)); });
  } catch (...) {
    service_failed_ = true;
    return nullptr;
  }
  return p;
}

inline net::awaitable<std::vector<transport::reply_item>> http_server_session::wait_get(
    std::shared_ptr<peer_get_pending> p) {
  return net::async_initiate<decltype(net::use_awaitable),
                             void(std::vector<transport::reply_item>)>(
      [p = std::move(p)](auto handler) mutable {
        // Only the service's callback keeps the state from here: a service
        // that never answers then frees the session's frames with it.
        const auto local = std::move(p);
        using state_type = peer_get_completion<decltype(handler)>;
        auto state = std::make_shared<state_type>(std::move(handler));
        std::unique_lock lock(local->m);
        if (local->done) {  // completed since start_get() returned
          auto items = std::move(local->items);
          lock.unlock();
          state->complete(std::move(items));
          return;
        }
        local->then = [state](std::vector<transport::reply_item> items) {
          state->complete(std::move(items));
        };
      },
      net::use_awaitable);
}

}  // namespace distcache::detail

#endif  // DISTCACHE_TRANSPORT_DETAIL_IMPL_HTTP_SERVER_OPERATIONS_IPP
