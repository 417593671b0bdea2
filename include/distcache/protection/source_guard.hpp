// distcache — the source guard: the protection pipeline in front of one
// keyspace definition's data source (breaker → limiter → concurrency limit →
// blocking pool).
#ifndef DISTCACHE_PROTECTION_SOURCE_GUARD_HPP
#define DISTCACHE_PROTECTION_SOURCE_GUARD_HPP

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <cstddef>
#include <cstdint>
#include <distcache/cache/detail/counters.hpp>
#include <distcache/clock.hpp>
#include <distcache/config.hpp>
#include <distcache/detail/config.hpp>
#include <distcache/detail/fetch_pool.hpp>
#include <distcache/error.hpp>
#include <distcache/protection/protection.hpp>
#include <distcache/stats.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <utility>

namespace distcache::detail {

/// A rate limiter policy seen without its type (see rate_limiter_policy).
class any_rate_limiter {
 public:
  any_rate_limiter() = default;
  any_rate_limiter(const any_rate_limiter&) = delete;
  any_rate_limiter& operator=(const any_rate_limiter&) = delete;
  virtual ~any_rate_limiter() = default;
  virtual duration try_acquire() = 0;
};

/// A circuit breaker policy seen without its type (see circuit_breaker_policy).
class any_circuit_breaker {
 public:
  any_circuit_breaker() = default;
  any_circuit_breaker(const any_circuit_breaker&) = delete;
  any_circuit_breaker& operator=(const any_circuit_breaker&) = delete;
  virtual ~any_circuit_breaker() = default;
  virtual bool allow() = 0;
  virtual void on_success() = 0;
  virtual void on_failure() = 0;
  virtual void on_neutral() = 0;
  [[nodiscard]] virtual protection::breaker_state state() const = 0;
  [[nodiscard]] virtual time_point last_change() const = 0;
  [[nodiscard]] virtual std::uint64_t rejected() const = 0;
};

/// Builds the engine's protection policies for one keyspace definition; the
/// typed engine front fills it from its RateLimiter and CircuitBreaker.
struct guard_policies {
  std::function<std::unique_ptr<any_rate_limiter>(const protection::rate_limit&,
                                                  const clock_source*)>
      make_limiter;
  std::function<std::unique_ptr<any_circuit_breaker>(const protection::circuit_breaker_options&,
                                                     const clock_source*)>
      make_breaker;
  /// False for protection::no_rate_limiter / no_circuit_breaker: a setting
  /// that needs the policy is then refused, not silently ignored.
  bool limiter_enabled = false;
  bool breaker_enabled = false;
};

template <class RateLimiter, class CircuitBreaker>
guard_policies make_guard_policies() {
  struct limiter final : any_rate_limiter {
    limiter(const protection::rate_limit& r, const clock_source* c) : impl(r, c) {}
    duration try_acquire() override { return impl.try_acquire(); }
    RateLimiter impl;
  };
  struct breaker final : any_circuit_breaker {
    breaker(const protection::circuit_breaker_options& o, const clock_source* c) : impl(o, c) {}
    bool allow() override { return impl.allow(); }
    void on_success() override { impl.on_success(); }
    void on_failure() override { impl.on_failure(); }
    void on_neutral() override { impl.on_neutral(); }
    [[nodiscard]] protection::breaker_state state() const override { return impl.state(); }
    [[nodiscard]] time_point last_change() const override { return impl.last_change(); }
    [[nodiscard]] std::uint64_t rejected() const override { return impl.rejected(); }
    CircuitBreaker impl;
  };
  guard_policies p;
  p.make_limiter = [](const protection::rate_limit& r, const clock_source* c) {
    return std::unique_ptr<any_rate_limiter>(std::make_unique<limiter>(r, c));
  };
  p.make_breaker = [](const protection::circuit_breaker_options& o, const clock_source* c) {
    return std::unique_ptr<any_circuit_breaker>(std::make_unique<breaker>(o, c));
  };
  p.limiter_enabled = !std::is_same_v<RateLimiter, protection::no_rate_limiter>;
  p.breaker_enabled = !std::is_same_v<CircuitBreaker, protection::no_circuit_breaker>;
  return p;
}

/// Where a guard runs its waits and its fetches: the engine's io_context
/// (limiter timers), its blocking pool, and its running flag.
struct guard_context {
  net::io_context* ioc = nullptr;
  detail::fetch_pool* pool = nullptr;
  const std::atomic<bool>* running = nullptr;
  const clock_source* clock = nullptr;  // null: the steady clock
  // A call admitted at once (no limiter wait, a free concurrency slot) runs
  // on the thread that asked, not on the pool (fetch_on_caller_thread).
  bool here = false;
  // Counts the threads inside such a call (and the queued calls it starts
  // when it releases its slot), so that stop() waits for them before it
  // destroys the pool they post to. Required when `here`.
  std::atomic<int>* here_calls = nullptr;
};

/// The protection of one keyspace definition's data source, in order:
/// circuit breaker, rate limiter (waiting up to its wait_timeout on a timer,
/// never on a network thread), concurrency limit (queued up to the read
/// timeout), then the blocking pool. An absent setting means no limiter (or
/// breaker) at all, whatever the policy type.
///
/// Thread safety: every member may be called concurrently.
class source_guard {
 public:
  /// Called once per admit(): with an error when the load is refused
  /// (data_source_circuit_open, data_source_rate_limited, timeout after
  /// queueing longer than the read timeout), else with no error on the
  /// blocking pool, holding a concurrency slot that finish() gives back.
  using admitted = std::function<void(error_code)>;

  DISTCACHE_DECL source_guard(const resolved_keyspace& opts, const clock_source* clock,
                              const guard_policies& policies);

  /// Runs `then` once the guards let a data-source call go (see admitted).
  DISTCACHE_DECL void admit(const guard_context& ctx, admitted then);

  /// Records the outcome of an admitted call (no error and not_found are
  /// successes for the breaker) and gives its concurrency slot back.
  DISTCACHE_DECL void finish(const error_code& outcome);
  /// An admitted load that did not call the source (the engine stopped):
  /// frees its concurrency slot and tells the breaker nothing.
  DISTCACHE_DECL void abandon();

  /// Copies the guard's figures into `s` (rate_limited, circuit_*, fetches_*).
  DISTCACHE_DECL void fill_stats(keyspace_stats& s) const;

 private:
  DISTCACHE_DECL void acquire_token(const guard_context& ctx, admitted then, time_point deadline,
                                    clock_type::time_point real_deadline);
  DISTCACHE_DECL void enter_bulkhead(const guard_context& ctx, admitted then);
  [[nodiscard]] DISTCACHE_DECL time_point now() const noexcept;

  duration read_timeout_;
  duration limiter_wait_ = duration::zero();
  const clock_source* clock_;
  std::unique_ptr<any_rate_limiter> limiter_;
  std::unique_ptr<any_circuit_breaker> breaker_;
  protection::bulkhead fetches_;
  striped_counter rate_limited_;  // calls refused or timed out by the limiter
  striped_counter overloaded_;    // calls refused because max_queued_fetches waited
};

}  // namespace distcache::detail

#if DISTCACHE_HEADER_ONLY
#include <distcache/protection/impl/source_guard.ipp>
#endif

#endif  // DISTCACHE_PROTECTION_SOURCE_GUARD_HPP
