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

#endif  // DISTCACHE_PROTECTION_PROTECTION_HPP
