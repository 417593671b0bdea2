// distcache — discovery::nats: nodes find each other through a NATS server
// (the NATS client protocol over Asio; no C client needed).
//
// Subjects, for a cluster named C under prefix P (default "distcache"):
//   P.C.announce   "+host:port" when a node registers, "-host:port" when it leaves
//   P.C.discover   a request (with a reply inbox); every node answers "+host:port"
// A node keeps the addresses it heard, each for `peer_ttl` after it was last
// heard; every discover_peers() sends a new request, so live nodes refresh.
#ifndef DISTCACHE_DISCOVERY_NATS_HPP
#define DISTCACHE_DISCOVERY_NATS_HPP

#include <algorithm>
#include <boost/asio/post.hpp>
#include <chrono>
#include <distcache/clock.hpp>
#include <distcache/discovery/detail/nats_connection.hpp>
#include <distcache/discovery/provider.hpp>
#include <distcache/error.hpp>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace distcache::discovery {

/// Discovers peers through a NATS server. The connection runs on a thread of
/// the provider's own; a lost connection is retried with backoff until
/// close(), and on reconnect the node subscribes and announces itself again.
/// Messages on the subjects that are not "+host:port" or "-host:port" are
/// counted (malformed_messages()) and logged, never added.
///
/// initialize() waits up to connect_timeout for the first handshake: refused
/// credentials, a certificate that fails verification (either way) or a
/// server without TLS when tls is set are errors (start() fails with them); an
/// unreachable server is not (the node starts alone and joins when it comes
/// back). discover_peers() fails with not_connected while disconnected, and
/// the engine keeps its ring. Copies share one connection.
class nats {
 public:
  nats() = default;
  explicit nats(nats_options opts) : opts_(std::move(opts)) {
    if (auto why = check(opts_); !why.empty()) throw config_error(why);
  }

  result<void> initialize() {
    if (opts_.server.empty()) return make_error_code(errc::invalid_config);
    if (st_) return {};
    st_ = std::make_shared<state>(opts_);
    st_->start();
    // The last copy of this provider stops the connection's thread, even
    // without close().
    stopper_ = std::shared_ptr<void>(nullptr, [s = st_](void*) { s->stop(); });
    std::unique_lock lock(st_->mutex);
    st_->cv.wait_for(lock, opts_.connect_timeout, [&] { return st_->attempted; });
    if (st_->fatal) return st_->fatal;
    if (!st_->connected) st_->log_line(log_level::warning, "not connected yet; retrying");
    return {};
  }

  result<void> register_node(const std::string& self) {
    if (!st_) return make_error_code(nats_errc::not_connected);
    {
      std::lock_guard lock(st_->mutex);
      st_->self = self;
    }
    net::post(st_->ioc, [s = st_] { s->announce(); });
    return {};
  }

  result<void> deregister_node(const std::string& self) {
    if (!st_) return {};
    {
      // First, so this node answers no discovery request after its "-".
      std::lock_guard lock(st_->mutex);
      st_->self.clear();
    }
    auto sent = std::make_shared<std::promise<void>>();
    auto done = sent->get_future();
    net::post(st_->ioc, [s = st_, self, sent] {
      if (s->connected_now) s->publish(s->subject("announce"), "", "-" + self);
      s->flush_then([sent] { sent->set_value(); });
    });
    done.wait_for(std::chrono::seconds(1));  // bounded: a dead connection does not hold stop()
    return {};
  }

  result<std::vector<std::string>> discover_peers() {
    if (!st_) return make_error_code(nats_errc::not_connected);
    net::post(st_->ioc, [s = st_] { s->request_discovery(); });
    std::lock_guard lock(st_->mutex);
    if (!st_->connected) return make_error_code(nats_errc::not_connected);
    const auto now = clock_type::now();
    std::vector<std::string> peers;
    for (auto it = st_->known.begin(); it != st_->known.end();) {
      if (now - it->second > opts_.peer_ttl) {
        it = st_->known.erase(it);
      } else {
        peers.push_back(it->first);
        ++it;
      }
    }
    if (!st_->self.empty()) peers.push_back(st_->self);
    std::sort(peers.begin(), peers.end());
    peers.erase(std::unique(peers.begin(), peers.end()), peers.end());
    return peers;
  }

  void close() {
    stopper_.reset();  // stops the thread when this is the last copy
    st_.reset();
  }

  /// Called (from the connection's thread) when a node announces itself
  /// for the first time or leaves; the engine sets it to run a discovery
  /// round at once.
  void set_change_handler(std::function<void()> on_change) {
    if (!st_) return;
    std::lock_guard lock(st_->mutex);
    st_->on_change = std::move(on_change);
  }

  /// True while connected to the server.
  [[nodiscard]] bool connected() const {
    if (!st_) return false;
    std::lock_guard lock(st_->mutex);
    return st_->connected;
  }
  /// Messages on the subjects that were not a valid "+host:port"/"-host:port".
  [[nodiscard]] std::uint64_t malformed_messages() const { return st_ ? st_->malformed.load() : 0; }
  /// Successful handshakes after the first.
  [[nodiscard]] std::uint64_t reconnects() const { return st_ ? st_->reconnects.load() : 0; }

  /// Why `o` is invalid ("" when valid); the message names the field.
  static std::string check(const nats_options& o) {
    if (!valid_address(o.server)) {
      return R"(nats_options.server: expected "host:port" (IPv6 in brackets), got ")" + o.server +
             "\"";
    }
    if (o.user.empty() != o.password.empty()) {
      return "nats_options.user/password: give both or neither";
    }
    if (o.tls_cert_file.empty() != o.tls_key_file.empty()) {
      return "nats_options.tls_cert_file/tls_key_file: give both or neither";
    }
    if (!o.token.empty() && !o.user.empty()) {
      return "nats_options.token: not together with user/password";
    }
    for (const auto& [field, value] :
         {std::pair{"subject_prefix", &o.subject_prefix}, std::pair{"cluster", &o.cluster}}) {
      if (value->empty() || !std::all_of(value->begin(), value->end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '_' || c == '-';
          })) {
        return std::string("nats_options.") + field + ": must be non-empty [A-Za-z0-9_-], got \"" +
               *value + "\"";
      }
    }
    if (o.connect_timeout <= duration::zero()) return "nats_options.connect_timeout: must be > 0";
    if (o.reconnect_min <= duration::zero() || o.reconnect_max < o.reconnect_min) {
      return "nats_options.reconnect_min/reconnect_max: need 0 < min <= max";
    }
    if (o.peer_ttl <= duration::zero()) return "nats_options.peer_ttl: must be > 0";
    return {};
  }

  /// "host:port" with a port of 1-65535 and no spaces or control bytes (an
  /// IPv6 host in brackets): what a node announces and what is accepted.
  static bool valid_address(std::string_view a) { return detail::valid_peer_address(a); }

 private:
  using state = detail::nats_connection;

  nats_options opts_;
  std::shared_ptr<state> st_;
  std::shared_ptr<void> stopper_;
};

static_assert(discovery_provider<nats>);

}  // namespace distcache::discovery

#endif  // DISTCACHE_DISCOVERY_NATS_HPP
