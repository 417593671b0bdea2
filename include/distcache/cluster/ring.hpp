// distcache — consistent-hash ring: which node owns a key.
#ifndef DISTCACHE_CLUSTER_RING_HPP
#define DISTCACHE_CLUSTER_RING_HPP

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <distcache/detail/hash.hpp>
#include <string>
#include <utility>
#include <vector>

namespace distcache {

/// An immutable consistent-hash ring over a set of nodes. Each node is placed
/// at `virtual_nodes` points (xxh3 of "node#i"); a key belongs to the node at
/// the first point at or after xxh3(key), wrapping around.
///
/// Rings are never modified: a membership change builds a new ring and swaps
/// it in, so readers take no lock. The version identifies the member list
/// (membership uses a hash of it), so nodes that agree on the members agree
/// on the version.
class ring {
 public:
  /// A ring over `nodes` (names such as "127.0.0.1:7000"; duplicates are
  /// ignored). An empty set is allowed: owner_index() then returns npos.
  ring(std::vector<std::string> nodes, std::size_t virtual_nodes, std::uint64_t version)
      : nodes_(std::move(nodes)), version_(version) {
    std::sort(nodes_.begin(), nodes_.end());
    nodes_.erase(std::unique(nodes_.begin(), nodes_.end()), nodes_.end());
    points_.reserve(nodes_.size() * virtual_nodes);
    for (std::size_t n = 0; n < nodes_.size(); ++n) {
      for (std::size_t v = 0; v < virtual_nodes; ++v) {
        points_.push_back({detail::hash_key(nodes_[n] + "#" + std::to_string(v)), n});
      }
    }
    std::sort(points_.begin(), points_.end());
  }

  /// Returned by owner_index() on an empty ring.
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

  /// The index in nodes() of the owner of a key hashed to `key_hash`.
  [[nodiscard]] std::size_t owner_index(std::uint64_t key_hash) const noexcept {
    if (points_.empty()) return npos;
    auto it = std::lower_bound(points_.begin(), points_.end(), point{key_hash, 0},
                               [](const point& a, const point& b) { return a.hash < b.hash; });
    if (it == points_.end()) it = points_.begin();
    return it->node;
  }

  /// The nodes, sorted.
  [[nodiscard]] const std::vector<std::string>& nodes() const noexcept { return nodes_; }
  /// The version of this ring (an identifier of its member list).
  [[nodiscard]] std::uint64_t version() const noexcept { return version_; }

 private:
  struct point {
    std::uint64_t hash;
    std::size_t node;
    bool operator<(const point& o) const noexcept {
      return hash != o.hash ? hash < o.hash : node < o.node;
    }
  };
  std::vector<std::string> nodes_;
  std::vector<point> points_;
  std::uint64_t version_;
};

}  // namespace distcache

#endif  // DISTCACHE_CLUSTER_RING_HPP
