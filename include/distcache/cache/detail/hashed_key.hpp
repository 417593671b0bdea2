// distcache — keys with their precomputed hash, for the hash tables of the
// caches and the singleflight.
#ifndef DISTCACHE_CACHE_DETAIL_HASHED_KEY_HPP
#define DISTCACHE_CACHE_DETAIL_HASHED_KEY_HPP

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace distcache::detail {

/// A key with its precomputed hash, so that the hash tables never hash a key
/// a second time.
struct hashed_key {
  std::string_view text;
  std::uint64_t hash;
};

/// A hashed_key that owns its text: the key type of the tables.
struct stored_key {
  std::string text;
  std::uint64_t hash;
};

/// Hashes a stored_key or a hashed_key by its precomputed hash (so lookups
/// by hashed_key are transparent and nothing is hashed twice).
struct key_hash {
  using is_transparent = void;
  std::size_t operator()(const stored_key& k) const noexcept { return k.hash; }
  std::size_t operator()(const hashed_key& k) const noexcept { return k.hash; }
};

/// Equality of stored and hashed keys: same hash and same text.
struct key_equal {
  using is_transparent = void;
  template <class A, class B>
  bool operator()(const A& a, const B& b) const noexcept {
    return a.hash == b.hash && std::string_view(a.text) == std::string_view(b.text);
  }
};

}  // namespace distcache::detail

#endif  // DISTCACHE_CACHE_DETAIL_HASHED_KEY_HPP
