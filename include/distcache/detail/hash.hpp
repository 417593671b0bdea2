// distcache — the one place xxHash is included.
#ifndef DISTCACHE_DETAIL_HASH_HPP
#define DISTCACHE_DETAIL_HASH_HPP

#include <cstdint>
#include <string_view>

#ifndef XXH_INLINE_ALL
#define XXH_INLINE_ALL
#endif
#include <xxhash.h>

namespace distcache::detail {

/// The 64-bit XXH3 hash of a key; shards, hash tables and (later) the ring
/// all use it, so a key is hashed once per operation.
inline std::uint64_t hash_key(std::string_view key) noexcept {
  return XXH3_64bits(key.data(), key.size());
}

}  // namespace distcache::detail

#endif  // DISTCACHE_DETAIL_HASH_HPP
