// distcache — peer_event: a membership change, as subscribers see it.
#ifndef DISTCACHE_CLUSTER_PEER_EVENT_HPP
#define DISTCACHE_CLUSTER_PEER_EVENT_HPP

#include <cstdint>
#include <string>

namespace distcache {

/// What happened to a peer.
enum class peer_event_kind {
  joined,   ///< the peer answers and is in the ring
  left,     ///< the peer stopped answering or is no longer discovered; out of the ring
  updated,  ///< the ring changed for another reason (reserved; not emitted yet)
};

/// A membership change, delivered to subscribers.
struct peer_event {
  peer_event_kind kind;
  std::string peer;            ///< "host:port"
  std::uint64_t ring_version;  ///< the version of the ring after the change
};

}  // namespace distcache

#endif  // DISTCACHE_CLUSTER_PEER_EVENT_HPP
