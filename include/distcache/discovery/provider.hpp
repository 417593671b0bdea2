// distcache — the discovery_provider concept and the providers built in.
#ifndef DISTCACHE_DISCOVERY_PROVIDER_HPP
#define DISTCACHE_DISCOVERY_PROVIDER_HPP

#include <algorithm>
#include <concepts>
#include <distcache/error.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace distcache {

namespace detail {

/// "host:port" with a port of 1-65535 and no spaces or control bytes (an
/// IPv6 host in brackets): what a node announces and what is accepted.
inline bool valid_peer_address(std::string_view a) {
  if (a.empty() || a.size() > 300) return false;
  for (char c : a) {
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  std::string_view host;
  std::string_view port;
  if (a.front() == '[') {
    const auto close = a.find(']');
    if (close == std::string_view::npos || close + 1 >= a.size() || a[close + 1] != ':') {
      return false;
    }
    host = a.substr(1, close - 1);
    port = a.substr(close + 2);
  } else {
    const auto colon = a.rfind(':');
    if (colon == std::string_view::npos) return false;
    host = a.substr(0, colon);
    port = a.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return false;
  }
  if (host.empty() || port.empty() || port.size() > 5) return false;
  int p = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return false;
    p = p * 10 + (c - '0');
  }
  return p >= 1 && p <= 65535;
}

}  // namespace detail

/// A discovery provider tells a node which other nodes exist.
///
/// A model provides, each returning result<void> unless stated:
/// - `initialize()`: connects to whatever backs it (a DNS server, NATS, the
///   Kubernetes API); called once by start();
/// - `register_node(const std::string& self)`: announces this node, named
///   "host:port" (its peer address);
/// - `deregister_node(const std::string& self)`: withdraws it; called by stop();
/// - `discover_peers() -> result<std::vector<std::string>>`: the peer
///   addresses known now ("host:port"); may include this node, which the
///   engine ignores;
/// - `close()`: releases resources; called last.
/// start() and stop() call initialize, register_node, the joining rounds of
/// discover_peers, deregister_node and close on the caller's thread; the
/// periodic discover_peers() runs on the engine's blocking pool. None is
/// called on a network thread, so they may block (a DNS query).
/// Optionally, `set_change_handler(std::function<void()>)`: the engine
/// passes a callable once it runs; a provider that learns of a change by
/// itself (a NATS announcement, a Kubernetes watch event) calls it, from
/// any thread, and the engine runs a discovery round at once instead of at
/// the next discovery_interval. The provider must not call it after close().
/// Why: membership is the engine's job; a provider only answers "who is
/// there", which keeps custom providers a few lines long.
template <class D>
concept discovery_provider = requires(D& d, const std::string& self) {
  { d.initialize() } -> std::same_as<result<void>>;
  { d.register_node(self) } -> std::same_as<result<void>>;
  { d.deregister_node(self) } -> std::same_as<result<void>>;
  { d.discover_peers() } -> std::same_as<result<std::vector<std::string>>>;
  d.close();
};

/// True when D has the optional set_change_handler (see discovery_provider).
template <class D>
concept discovery_with_change_handler = discovery_provider<D> &&
    requires(D& d, std::function<void()> f) {
  d.set_change_handler(std::move(f));
};

namespace discovery {

/// The provider of a node that runs alone: it knows no peers.
struct standalone {
  result<void> initialize() { return {}; }
  result<void> register_node(const std::string& /*self*/) { return {}; }
  result<void> deregister_node(const std::string& /*self*/) { return {}; }
  result<std::vector<std::string>> discover_peers() { return std::vector<std::string>{}; }
  void close() {}
};

/// A fixed list of peer addresses ("host:port"), typically every node of the
/// cluster including this one. Thread-safe; set_peers() replaces the list at
/// runtime (the engine sees it at its next discovery round).
class static_peers {
 public:
  static_peers() = default;
  explicit static_peers(std::vector<std::string> peers) : peers_(std::move(peers)) {}
  static_peers(const static_peers& other) : peers_(other.peers()) {}
  static_peers& operator=(const static_peers& other) {
    if (this != &other) set_peers(other.peers());
    return *this;
  }
  ~static_peers() = default;

  result<void> initialize() { return {}; }
  result<void> register_node(const std::string& /*self*/) { return {}; }
  result<void> deregister_node(const std::string& /*self*/) { return {}; }
  result<std::vector<std::string>> discover_peers() { return peers(); }
  void close() {}

  /// Replaces the list.
  void set_peers(std::vector<std::string> peers) {
    std::lock_guard lock(mutex_);
    peers_ = std::move(peers);
  }
  /// The list now.
  [[nodiscard]] std::vector<std::string> peers() const {
    std::lock_guard lock(mutex_);
    return peers_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> peers_;
};

/// Nodes of one process that find each other through a shared in-memory
/// registry: register_node adds the node, deregister_node removes it,
/// discover_peers lists them. For tests, benchmarks and single-process
/// clusters; every engine gets a copy that shares the same registry.
class in_process {
 public:
  /// The registry the nodes share.
  struct registry {
    std::mutex mutex;
    std::vector<std::string> nodes;
  };

  /// A provider with a registry of its own (copies share it).
  in_process() = default;
  /// A provider that uses `r`.
  explicit in_process(std::shared_ptr<registry> r) : r_(std::move(r)) {}

  result<void> initialize() { return {}; }
  result<void> register_node(const std::string& self) {
    std::lock_guard lock(r_->mutex);
    if (std::find(r_->nodes.begin(), r_->nodes.end(), self) == r_->nodes.end()) {
      r_->nodes.push_back(self);
    }
    return {};
  }
  result<void> deregister_node(const std::string& self) {
    std::lock_guard lock(r_->mutex);
    std::erase(r_->nodes, self);
    return {};
  }
  result<std::vector<std::string>> discover_peers() {
    std::lock_guard lock(r_->mutex);
    return r_->nodes;
  }
  void close() {}

 private:
  std::shared_ptr<registry> r_ = std::make_shared<registry>();
};

static_assert(discovery_provider<standalone>);
static_assert(discovery_provider<in_process>);
static_assert(discovery_provider<static_peers>);

}  // namespace discovery
}  // namespace distcache

#endif  // DISTCACHE_DISCOVERY_PROVIDER_HPP
