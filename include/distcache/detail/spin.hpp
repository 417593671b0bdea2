// distcache — spin_relax: the body of a spin-wait loop.
#ifndef DISTCACHE_DETAIL_SPIN_HPP
#define DISTCACHE_DETAIL_SPIN_HPP

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include <chrono>

namespace distcache::detail {

/// Tells the core this is a spin-wait loop (x86 `pause`: gives the sibling
/// hyper-thread the core and avoids the pipeline flush when the loop ends).
inline void spin_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

/// Spins (spin_relax) until `done()` or `spin` has passed, reading the clock
/// every 64 rounds only; returns `done()`'s last answer.
template <class Done>
bool spin_until(Done done, std::chrono::nanoseconds spin) {
  const auto until = std::chrono::steady_clock::now() + spin;
  for (unsigned i = 1; !done(); ++i) {
    spin_relax();
    if (i % 64 == 0 && std::chrono::steady_clock::now() >= until) return done();
  }
  return true;
}

}  // namespace distcache::detail

#endif  // DISTCACHE_DETAIL_SPIN_HPP
