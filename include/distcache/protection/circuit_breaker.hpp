// distcache — a circuit breaker that stops calling a failing data source.
#ifndef DISTCACHE_PROTECTION_CIRCUIT_BREAKER_HPP
#define DISTCACHE_PROTECTION_CIRCUIT_BREAKER_HPP

#include <cstdint>
#include <distcache/clock.hpp>
#include <distcache/detail/format.hpp>
#include <distcache/error.hpp>
#include <mutex>
#include <string>
#include <string_view>

namespace distcache::protection {

/// The settings of a circuit breaker.
struct circuit_breaker_options {
  /// Consecutive failures that open the breaker. >= 1.
  int failure_threshold = 0;
  /// How long the breaker stays open before it lets one trial call through.
  /// > 0.
  duration reset_timeout = duration::zero();
};

/// Checks `o`; returns an empty string when it is valid, otherwise a message
/// naming the field under `field_prefix` and the bad value, for example
/// `"config.circuit_breaker.failure_threshold: must be >= 1, got 0"`.
inline std::string validate(const circuit_breaker_options& o, std::string_view field_prefix) {
  const std::string prefix(field_prefix);
  if (o.failure_threshold < 1)
    return prefix + ".failure_threshold: must be >= 1, got " + std::to_string(o.failure_threshold);
  if (o.reset_timeout <= duration::zero())
    return prefix + ".reset_timeout: must be > 0, got " +
           distcache::detail::format_duration(o.reset_timeout);
  return {};
}

/// The states of a circuit breaker.
enum class breaker_state {
  /// Calls go through; consecutive failures are counted.
  closed,
  /// Calls are refused without calling the source, until reset_timeout has
  /// passed since the breaker opened.
  open,
  /// One trial call is allowed; its outcome closes or re-opens the breaker.
  half_open,
};

/// The name of `s`: "closed", "open" or "half_open".
constexpr std::string_view to_string(breaker_state s) noexcept {
  switch (s) {
    case breaker_state::closed:
      return "closed";
    case breaker_state::open:
      return "open";
    case breaker_state::half_open:
      return "half_open";
  }
  return "unknown";
}

/// A circuit breaker: after `failure_threshold` consecutive failures it opens
/// and refuses calls for `reset_timeout`; then it lets exactly one trial call
/// through, whose success closes it and whose failure opens it again.
///
/// The caller asks allow() before each call and reports the outcome of every
/// allowed call with exactly one of on_success(), on_failure(), on_neutral().
/// Outcomes are attributed by state, not by call: an outcome reported while
/// the breaker is open is ignored (it belongs to a call allowed before the
/// breaker opened).
///
/// Thread safety: every member function may be called concurrently; each
/// holds a mutex for a few assignments.
class circuit_breaker {
 public:
  /// A closed breaker. `clock` is the time source (null: the steady clock);
  /// it must outlive the breaker.
  ///
  /// Throws config_error when `options` is invalid (see validate()).
  circuit_breaker(const circuit_breaker_options& options, const clock_source* clock)
      : options_(options), clock_(clock), last_change_(now()) {
    if (auto why = validate(options, "circuit_breaker"); !why.empty()) throw config_error(why);
  }

  circuit_breaker(const circuit_breaker&) = delete;
  circuit_breaker& operator=(const circuit_breaker&) = delete;

  /// Whether the source may be called now. Closed: true. Open: true once
  /// reset_timeout has passed since the breaker opened, which moves it to
  /// half_open with this call as the trial; false before. Half-open: true
  /// only when no trial is in progress (this call becomes the trial). Every
  /// false counts in rejected().
  bool allow() {
    const time_point t = now();
    std::lock_guard lock(mutex_);
    switch (state_) {
      case breaker_state::closed:
        return true;
      case breaker_state::open:
        if (t - last_change_ >= options_.reset_timeout) {
          change(breaker_state::half_open, t);
          trial_ = true;
          return true;
        }
        break;
      case breaker_state::half_open:
        if (!trial_) {
          trial_ = true;
          return true;
        }
        break;
    }
    ++rejected_;
    return false;
  }

  /// An allowed call succeeded. Closed: the consecutive failures restart at
  /// 0. Half-open: the breaker closes.
  void on_success() {
    const time_point t = now();
    std::lock_guard lock(mutex_);
    if (state_ == breaker_state::open) return;
    failures_ = 0;
    if (state_ == breaker_state::half_open) {
      trial_ = false;
      change(breaker_state::closed, t);
    }
  }

  /// An allowed call failed. Closed: one more consecutive failure; the
  /// breaker opens when they reach failure_threshold. Half-open: the breaker
  /// opens again, and reset_timeout starts over.
  void on_failure() {
    const time_point t = now();
    std::lock_guard lock(mutex_);
    if (state_ == breaker_state::open) return;
    ++failures_;
    if (state_ == breaker_state::half_open) {
      trial_ = false;
      change(breaker_state::open, t);
    } else if (failures_ >= options_.failure_threshold) {
      change(breaker_state::open, t);
    }
  }

  /// An allowed call ended with an outcome that says nothing about the
  /// source's health (not_found, the caller's cancellation). Closed: no
  /// effect; the consecutive failures are neither reset nor increased.
  /// Half-open: the trial ends without a verdict, so a later allow() lets
  /// another trial through.
  void on_neutral() {
    std::lock_guard lock(mutex_);
    if (state_ == breaker_state::half_open) trial_ = false;
  }

  /// The current state. An open breaker whose reset_timeout has passed stays
  /// open until the next allow().
  [[nodiscard]] breaker_state state() const {
    std::lock_guard lock(mutex_);
    return state_;
  }
  /// When the state last changed (construction counts as a change).
  [[nodiscard]] time_point last_change() const {
    std::lock_guard lock(mutex_);
    return last_change_;
  }
  /// Calls refused by allow() since construction.
  [[nodiscard]] std::uint64_t rejected() const {
    std::lock_guard lock(mutex_);
    return rejected_;
  }
  /// Failures since the last success (kept while open; the trial's failure
  /// adds one).
  [[nodiscard]] int consecutive_failures() const {
    std::lock_guard lock(mutex_);
    return failures_;
  }

 private:
  [[nodiscard]] time_point now() const noexcept {
    return clock_ ? clock_->now() : clock_type::now();
  }

  void change(breaker_state s, time_point t) noexcept {
    state_ = s;
    last_change_ = t;
  }

  circuit_breaker_options options_;
  const clock_source* clock_;
  mutable std::mutex mutex_;
  breaker_state state_ = breaker_state::closed;
  // Invariant: trial_ is true only in half_open, while the one allowed call
  // has not reported its outcome.
  bool trial_ = false;
  int failures_ = 0;
  std::uint64_t rejected_ = 0;
  time_point last_change_;
};

/// A circuit breaker that never opens: the same surface as circuit_breaker.
class no_circuit_breaker {
 public:
  no_circuit_breaker() = default;
  /// Ignores its arguments; exists so both breakers are built the same way.
  no_circuit_breaker(const circuit_breaker_options& /*options*/,
                     const clock_source* /*clock*/) noexcept {}

  /// Always true.
  bool allow() noexcept { return true; }
  /// No effect.
  void on_success() noexcept {}
  /// No effect.
  void on_failure() noexcept {}
  /// No effect.
  void on_neutral() noexcept {}
  /// Always closed.
  [[nodiscard]] breaker_state state() const noexcept { return breaker_state::closed; }
  /// Always the epoch of clock_type.
  [[nodiscard]] time_point last_change() const noexcept { return time_point{}; }
  /// Always 0.
  [[nodiscard]] std::uint64_t rejected() const noexcept { return 0; }
  /// Always 0.
  [[nodiscard]] int consecutive_failures() const noexcept { return 0; }
};

}  // namespace distcache::protection

#endif  // DISTCACHE_PROTECTION_CIRCUIT_BREAKER_HPP
