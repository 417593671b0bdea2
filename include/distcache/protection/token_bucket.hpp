// distcache — a token bucket that limits the rate of data-source calls.
#ifndef DISTCACHE_PROTECTION_TOKEN_BUCKET_HPP
#define DISTCACHE_PROTECTION_TOKEN_BUCKET_HPP

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <distcache/clock.hpp>
#include <distcache/detail/format.hpp>
#include <distcache/error.hpp>
#include <limits>
#include <mutex>
#include <string>
#include <string_view>

namespace distcache::protection {

/// The settings of a rate limiter: at most `burst` calls at once, refilled at
/// `requests_per_second`.
struct rate_limit {
  /// Tokens added per second, continuously (0.5 means one call every 2 s).
  /// Finite and > 0.
  double requests_per_second = 0;
  /// Capacity of the bucket: the calls allowed at once after a quiet period,
  /// and the number of tokens a new bucket starts with. >= 1.
  std::int64_t burst = 0;
  /// How long a caller may wait for a token: 0 refuses at once when the
  /// bucket is empty. >= 0.
  duration wait_timeout = duration::zero();
};

/// Checks `r`; returns an empty string when it is valid, otherwise a message
/// naming the field under `field_prefix` and the bad value, for example
/// `"config.rate_limiter.requests_per_second: must be > 0, got 0"`.
inline std::string validate(const rate_limit& r, std::string_view field_prefix) {
  const std::string prefix(field_prefix);
  const double rps = r.requests_per_second;
  if (!std::isfinite(rps) || rps <= 0) {
    std::array<char, 64> text{};
    const auto [end, ec] = std::to_chars(text.data(), text.data() + text.size(), rps);
    const std::string value(text.data(), ec == std::errc{} ? end : text.data());
    return prefix + ".requests_per_second: " +
           (std::isnan(rps) || rps > 0 ? "must be a finite number > 0" : "must be > 0") + ", got " +
           value;
  }
  // A bucket of 0 tokens would accept the configuration and then refuse
  // every call, so it is rejected here instead.
  if (r.burst < 1) return prefix + ".burst: must be >= 1, got " + std::to_string(r.burst);
  if (r.wait_timeout < duration::zero())
    return prefix + ".wait_timeout: must be >= 0, got " +
           distcache::detail::format_duration(r.wait_timeout);
  return {};
}

/// A token bucket: holds up to `burst` tokens, starts full, and refills
/// continuously at `requests_per_second`. Each admitted call takes one token.
///
/// Refill is computed from the time the bucket was last full, not added up
/// step by step, so rounding never accumulates: while the bucket is not full
/// it grants exactly the calls the configured rate allows, and the only
/// rounding (up to the next nanosecond) happens when it fills up.
///
/// Thread safety: every member function may be called concurrently; each
/// holds a mutex for a few arithmetic operations and never calls out while
/// holding it (except to the clock).
class token_bucket {
 public:
  /// A full bucket for `limit`. `clock` is the time source (null: the steady
  /// clock); it must outlive the bucket.
  ///
  /// Throws config_error when `limit` is invalid (see validate()).
  token_bucket(const rate_limit& limit, const clock_source* clock)
      : limit_(limit), clock_(clock), full_at_(now()) {
    if (auto why = validate(limit, "rate_limit"); !why.empty()) throw config_error(why);
  }

  token_bucket(const token_bucket&) = delete;
  token_bucket& operator=(const token_bucket&) = delete;

  /// Takes one token when one is available now and returns duration::zero().
  /// Otherwise takes nothing and returns how long until one token will be
  /// available (> 0), assuming nobody else takes it first.
  duration try_acquire() {
    const time_point t = now();
    std::lock_guard lock(mutex_);
    refill(t);
    // Tokens taken beyond the initial `burst` must have been refilled: the
    // next one is there once `taken_ + 1 - burst` tokens have accrued.
    const std::int64_t owed = taken_ + 1 - limit_.burst;
    const std::int64_t elapsed = elapsed_ns(t);
    const std::int64_t ready = owed <= 0 ? 0 : accrual_ns(owed);
    if (elapsed >= ready) {
      ++taken_;
      return duration::zero();
    }
    return std::max(std::chrono::ceil<duration>(std::chrono::nanoseconds(ready - elapsed)),
                    duration(1));
  }

  /// Tokens in the bucket now, fractional, at most `burst`. For statistics
  /// and tests; try_acquire() does not depend on it.
  [[nodiscard]] double tokens() const {
    const time_point t = now();
    std::lock_guard lock(mutex_);
    const double accrued = limit_.requests_per_second * static_cast<double>(elapsed_ns(t)) / 1e9;
    const auto burst = static_cast<double>(limit_.burst);
    return std::min(burst, burst - static_cast<double>(taken_) + accrued);
  }

 private:
  [[nodiscard]] time_point now() const noexcept {
    return clock_ ? clock_->now() : clock_type::now();
  }

  // Nanoseconds since the bucket was last known full; never negative.
  [[nodiscard]] std::int64_t elapsed_ns(time_point t) const noexcept {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t - full_at_).count();
    return std::max<std::int64_t>(ns, 0);
  }

  // The time in which `n` tokens accrue, rounded up to a whole nanosecond.
  // Always computed from the same formula, so "granted" and "the wait until
  // granted" agree exactly.
  [[nodiscard]] std::int64_t accrual_ns(std::int64_t n) const noexcept {
    const double ns = std::ceil(static_cast<double>(n) * 1e9 / limit_.requests_per_second);
    // About 146 years: "never" for a caller, and far from overflowing the
    // int64 arithmetic that uses the result.
    constexpr std::int64_t cap = std::numeric_limits<std::int64_t>::max() / 2;
    return ns >= static_cast<double>(cap) ? cap : static_cast<std::int64_t>(ns);
  }

  // Once every taken token has been refilled the bucket is full; tokens
  // beyond `burst` are discarded by restarting the count at `t`. This is the
  // only place the origin moves, so elapsed time is never truncated.
  void refill(time_point t) noexcept {
    if (taken_ == 0 || elapsed_ns(t) >= accrual_ns(taken_)) {
      full_at_ = t;
      taken_ = 0;
    }
  }

  rate_limit limit_;
  const clock_source* clock_;
  mutable std::mutex mutex_;
  // Invariant: the bucket held `burst` tokens at full_at_ and `taken_`
  // tokens were taken since; tokens now = min(burst, burst - taken_ +
  // rps * (now - full_at_)).
  time_point full_at_;
  std::int64_t taken_ = 0;
};

/// A rate limiter that admits every call: the same surface as token_bucket.
class no_rate_limiter {
 public:
  no_rate_limiter() = default;
  /// Ignores its arguments; exists so both limiters are built the same way.
  no_rate_limiter(const rate_limit& /*limit*/, const clock_source* /*clock*/) noexcept {}

  /// Always duration::zero().
  duration try_acquire() noexcept { return duration::zero(); }
  /// Always +infinity.
  [[nodiscard]] double tokens() const noexcept { return std::numeric_limits<double>::infinity(); }
};

}  // namespace distcache::protection

#endif  // DISTCACHE_PROTECTION_TOKEN_BUCKET_HPP
