// A clock_source that only moves when a test advances it.
#ifndef DISTCACHE_TESTS_SUPPORT_MANUAL_CLOCK_HPP
#define DISTCACHE_TESTS_SUPPORT_MANUAL_CLOCK_HPP

#include <atomic>
#include <distcache/clock.hpp>

namespace distcache::test {

class manual_clock final : public clock_source {
 public:
  [[nodiscard]] time_point now() const noexcept override {
    return time_point(duration(ticks_.load(std::memory_order_acquire)));
  }
  void advance(duration d) noexcept { ticks_.fetch_add(d.count(), std::memory_order_acq_rel); }

 private:
  // Starts far from zero so that now() - ttl never underflows in tests.
  std::atomic<duration::rep> ticks_{duration(std::chrono::hours(1000)).count()};
};

}  // namespace distcache::test

#endif  // DISTCACHE_TESTS_SUPPORT_MANUAL_CLOCK_HPP
