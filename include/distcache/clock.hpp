// distcache — the clock that expiry is measured against.
#ifndef DISTCACHE_CLOCK_HPP
#define DISTCACHE_CLOCK_HPP

#include <chrono>

namespace distcache {

/// The clock all expiry times refer to. It is monotonic, so node clock
/// adjustments never expire or revive entries.
using clock_type = std::chrono::steady_clock;
/// A point in time on clock_type.
using time_point = clock_type::time_point;
/// A length of time (TTL, timeout).
using duration = clock_type::duration;

/// A source of the current time. The engine uses the real steady clock unless
/// a clock_source is configured; tests configure a manual one to drive expiry
/// without sleeping.
///
/// Thread safety: now() is called concurrently from every engine thread.
class clock_source {
 public:
  clock_source() = default;
  clock_source(const clock_source&) = delete;
  clock_source& operator=(const clock_source&) = delete;
  virtual ~clock_source() = default;
  /// The current time.
  [[nodiscard]] virtual time_point now() const noexcept = 0;
};

/// Marks "no expiry".
inline constexpr time_point never_expires = time_point::max();

}  // namespace distcache

#endif  // DISTCACHE_CLOCK_HPP
