// distcache — membership: which peers are alive, and the ring over them.
#ifndef DISTCACHE_CLUSTER_DETAIL_MEMBERSHIP_HPP
#define DISTCACHE_CLUSTER_DETAIL_MEMBERSHIP_HPP

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <distcache/cluster/peer_event.hpp>
#include <distcache/cluster/ring.hpp>
#include <distcache/detail/hash.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace distcache::detail {

/// One discovered peer as the admin server shows it.
struct member_view {
  std::string address;
  bool in_ring = false;
  int failures = 0;  // failed requests or probes in a row
  /// When it last answered; nullopt when it never did.
  std::optional<std::chrono::steady_clock::time_point> last_seen;
};

/// The peer set of one node and the ring built over it.
///
/// Peers are discovered (the provider lists them), then admitted to the ring
/// once they answer (a health probe or any request); a peer whose requests
/// or probes fail `failure_threshold` times in a row leaves the ring, and
/// comes back when it answers again. The ring is an immutable snapshot that
/// readers load without blocking writers; its version is a hash of its
/// member list, so two nodes that agree on the members agree on the version.
///
/// Thread safety: all member functions may be called concurrently.
class membership {
 public:
  membership(std::string self, std::size_t virtual_nodes, int failure_threshold)
      : self_(std::move(self)), virtual_nodes_(virtual_nodes), threshold_(failure_threshold) {
    rebuild_locked();
  }

  /// This node's name.
  [[nodiscard]] std::string self() const {
    std::lock_guard lock(mutex_);
    return self_;
  }

  /// Starts over as `self` with no peers (the engine learns its own name only
  /// once its server is bound).
  void reset(std::string self) {
    std::lock_guard lock(mutex_);
    self_ = std::move(self);
    peers_.clear();
    rebuild_locked();
  }

  /// The ring now.
  [[nodiscard]] std::shared_ptr<const ring> current() const {
    return std::atomic_load_explicit(&ring_, std::memory_order_acquire);
  }

  /// Applies a discovery result: new peers become candidates (admitted when
  /// they answer); peers no longer listed leave.
  std::vector<peer_event> on_discovered(const std::vector<std::string>& listed) {
    std::lock_guard lock(mutex_);
    std::vector<peer_event> events;
    std::vector<std::string> wanted;
    for (const auto& p : listed) {
      if (p != self_ && !p.empty()) wanted.push_back(p);
    }
    std::sort(wanted.begin(), wanted.end());
    wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
    bool changed = false;
    for (auto it = peers_.begin(); it != peers_.end();) {
      if (!std::binary_search(wanted.begin(), wanted.end(), it->first)) {
        if (it->second.alive) {
          changed = true;
          events.push_back({peer_event_kind::left, it->first, 0});
        }
        it = peers_.erase(it);
      } else {
        ++it;
      }
    }
    for (const auto& p : wanted) peers_.try_emplace(p);
    if (changed) finish_locked(events);
    return events;
  }

  /// A request or probe to `peer` succeeded: it joins the ring if it was out.
  std::vector<peer_event> on_success(const std::string& peer) {
    std::lock_guard lock(mutex_);
    std::vector<peer_event> events;
    auto it = peers_.find(peer);
    if (it == peers_.end()) return events;
    it->second.failures = 0;
    it->second.last_seen = std::chrono::steady_clock::now();
    if (!it->second.alive) {
      it->second.alive = true;
      events.push_back({peer_event_kind::joined, peer, 0});
      finish_locked(events);
    }
    return events;
  }

  /// A request or probe to `peer` failed: after failure_threshold failures in
  /// a row it leaves the ring.
  std::vector<peer_event> on_failure(const std::string& peer) {
    std::lock_guard lock(mutex_);
    std::vector<peer_event> events;
    auto it = peers_.find(peer);
    if (it == peers_.end()) return events;
    ++it->second.failures;
    if (it->second.alive && it->second.failures >= threshold_) {
      it->second.alive = false;
      events.push_back({peer_event_kind::left, peer, 0});
      finish_locked(events);
    }
    return events;
  }

  /// Every discovered peer, alive or not (the prober asks them all).
  [[nodiscard]] std::vector<std::string> known_peers() const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    for (const auto& [name, state] : peers_) out.push_back(name);
    return out;
  }

  /// Every discovered peer with its state, sorted by address.
  [[nodiscard]] std::vector<member_view> members() const {
    std::lock_guard lock(mutex_);
    std::vector<member_view> out;
    out.reserve(peers_.size());
    for (const auto& [name, state] : peers_) {
      out.push_back({name, state.alive, state.failures, state.last_seen});
    }
    return out;
  }

  /// The peers in the ring now (this node excluded).
  [[nodiscard]] std::vector<std::string> alive_peers() const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    for (const auto& [name, state] : peers_) {
      if (state.alive) out.push_back(name);
    }
    return out;
  }

 private:
  struct peer_state {
    bool alive = false;
    int failures = 0;
    std::optional<std::chrono::steady_clock::time_point> last_seen;
  };

  void finish_locked(std::vector<peer_event>& events) {
    rebuild_locked();
    const std::uint64_t v = current()->version();
    for (auto& e : events) e.ring_version = v;
  }

  void rebuild_locked() {
    std::vector<std::string> nodes{self_};
    for (const auto& [name, state] : peers_) {
      if (state.alive) nodes.push_back(name);
    }
    std::sort(nodes.begin(), nodes.end());
    std::string id;
    for (const auto& n : nodes) id += n + ",";
    auto next = std::make_shared<const ring>(std::move(nodes), virtual_nodes_, hash_key(id));
    std::atomic_store_explicit(&ring_, std::move(next), std::memory_order_release);
  }

  std::string self_;
  const std::size_t virtual_nodes_;
  const int threshold_;
  mutable std::mutex mutex_;
  std::map<std::string, peer_state> peers_;
  std::shared_ptr<const ring> ring_;
};

}  // namespace distcache::detail

#endif  // DISTCACHE_CLUSTER_DETAIL_MEMBERSHIP_HPP
