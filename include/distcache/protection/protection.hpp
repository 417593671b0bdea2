// distcache — protection of data sources: rate limiter, circuit breaker and
// concurrency limit, and the validation of their settings.
#ifndef DISTCACHE_PROTECTION_PROTECTION_HPP
#define DISTCACHE_PROTECTION_PROTECTION_HPP

// The validation helpers are declared next to the settings they check, so
// that the token_bucket and circuit_breaker constructors reject invalid
// settings with the same messages:
//
//   std::string validate(const rate_limit&, std::string_view field_prefix);
//     "<prefix>.requests_per_second: must be > 0, got 0"
//     "<prefix>.requests_per_second: must be a finite number > 0, got nan"
//     "<prefix>.burst: must be >= 1, got 0"
//     "<prefix>.wait_timeout: must be >= 0, got -1s"
//
//   std::string validate(const circuit_breaker_options&, std::string_view field_prefix);
//     "<prefix>.failure_threshold: must be >= 1, got 0"
//     "<prefix>.reset_timeout: must be > 0, got 0s"
//
// Both return "" for valid settings and report the first bad field, in the
// order of the struct's members.

#include <distcache/protection/bulkhead.hpp>
#include <distcache/protection/circuit_breaker.hpp>
#include <distcache/protection/token_bucket.hpp>

#include <concepts>
#include <cstdint>
#include <distcache/clock.hpp>

namespace distcache::protection {

/// A rate limiter policy guards the calls of one keyspace's data source.
///
/// A model is constructible from (const rate_limit&, const clock_source*)
/// and provides `try_acquire() -> duration`: zero when a call may go now
/// (a token was taken), otherwise how long until one may (nothing taken).
/// It is called concurrently. Models: token_bucket, no_rate_limiter.
/// Why: the engine owns the waiting (on a timer, never a network thread);
/// the policy only answers "now, or in how long".
template <class R>
concept rate_limiter_policy = std::constructible_from<R, const rate_limit&, const clock_source*> &&
    requires(R& r) {
  { r.try_acquire() } -> std::same_as<duration>;
};

/// A circuit breaker policy stops calling a failing data source.
///
/// A model is constructible from (const circuit_breaker_options&, const
/// clock_source*) and provides allow() -> bool (may a call go now),
/// on_success(), on_failure(), on_neutral() (an outcome that is not a
/// failure), and state(), last_change(), rejected() for the stats. Called
/// concurrently. Models: circuit_breaker, no_circuit_breaker.
template <class B>
concept circuit_breaker_policy =
    std::constructible_from<B, const circuit_breaker_options&, const clock_source*> &&
    requires(B& b, const B& cb) {
  { b.allow() } -> std::same_as<bool>;
  b.on_success();
  b.on_failure();
  b.on_neutral();
  { cb.state() } -> std::same_as<breaker_state>;
  { cb.last_change() } -> std::convertible_to<time_point>;
  { cb.rejected() } -> std::convertible_to<std::uint64_t>;
};

static_assert(rate_limiter_policy<token_bucket>);
static_assert(rate_limiter_policy<no_rate_limiter>);
static_assert(circuit_breaker_policy<circuit_breaker>);
static_assert(circuit_breaker_policy<no_circuit_breaker>);

}  // namespace distcache::protection

#endif  // DISTCACHE_PROTECTION_PROTECTION_HPP
