// distcache — what the value cache says of an entry: its freshness, its
// lifetime, and the marker of a cached "not found".
#ifndef DISTCACHE_CACHE_DETAIL_LIFETIME_HPP
#define DISTCACHE_CACHE_DETAIL_LIFETIME_HPP

#include <cstdint>
#include <distcache/clock.hpp>
#include <memory>

namespace distcache::detail {

/// What a hit found (value_cache::get).
enum class freshness : std::uint8_t {
  fresh,    ///< before its refresh time and its expiry
  refresh,  ///< past its refresh time, not expired: served, and worth a background reload
  stale,    ///< expired, within its stale window: served only while a reload runs or fails
};

/// When an entry's value stops being fresh. How long it is kept after its
/// expiry (its stale window) is the cache's: value_cache's max_stale.
struct lifetime {
  time_point expires_at = never_expires;  ///< after it the value is stale
  time_point refresh_at = never_expires;  ///< after it a hit asks for a reload (refresh-ahead)

  /// A value that is fresh until `expires`.
  static lifetime until(time_point expires) noexcept { return {expires, never_expires}; }
};

/// What the cache holds for a cached "not found" (negative caching).
inline constexpr char negative_marker = 0;
/// The handle of a cached "not found": non-null, owns nothing, never
/// dereferenced. Copying it touches no reference count.
inline const std::shared_ptr<const void>& negative_value() noexcept {
  static const std::shared_ptr<const void> value(std::shared_ptr<const void>(), &negative_marker);
  return value;
}
/// True when `v` is negative_value(): one pointer comparison.
inline bool is_negative(const std::shared_ptr<const void>& v) noexcept {
  return v.get() == &negative_marker;
}
/// True when `v` points to negative_value()'s marker.
inline bool is_negative(const void* v) noexcept { return v == &negative_marker; }

}  // namespace distcache::detail

#endif  // DISTCACHE_CACHE_DETAIL_LIFETIME_HPP
