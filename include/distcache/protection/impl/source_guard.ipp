// distcache — source_guard definitions.
#ifndef DISTCACHE_PROTECTION_IMPL_SOURCE_GUARD_IPP
#define DISTCACHE_PROTECTION_IMPL_SOURCE_GUARD_IPP

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <distcache/protection/source_guard.hpp>
#include <thread>

namespace distcache::detail {

source_guard::source_guard(const resolved_keyspace& opts, const clock_source* clock,
                           const guard_policies& policies)
    : read_timeout_(opts.read_timeout),
      clock_(clock),
      fetches_(opts.max_concurrent_fetches, opts.max_queued_fetches) {
  if (opts.rate_limiter && policies.make_limiter) {
    limiter_ = policies.make_limiter(*opts.rate_limiter, clock);
    limiter_wait_ = opts.rate_limiter->wait_timeout;
  }
  if (opts.circuit_breaker && policies.make_breaker) {
    breaker_ = policies.make_breaker(*opts.circuit_breaker, clock);
  }
}

time_point source_guard::now() const noexcept {
  return clock_ != nullptr ? clock_->now() : clock_type::now();
}

void source_guard::admit(const guard_context& ctx, admitted then) {
  if (breaker_ && !breaker_->allow()) return then(make_error_code(errc::data_source_circuit_open));
  const duration wait = limiter_ ? limiter_wait_ : duration::zero();
  acquire_token(ctx, std::move(then), now() + wait, clock_type::now() + wait + read_timeout_);
}

// Takes a rate-limiter token, waiting for one until `deadline` (on the
// configured clock; `real_deadline` bounds the wait should that clock stand
// still), then enters the concurrency limit.
void source_guard::acquire_token(const guard_context& ctx, admitted then, time_point deadline,
                                 clock_type::time_point real_deadline) {
  if (limiter_) {
    const duration wait = limiter_->try_acquire();
    if (wait > duration::zero()) {
      if (now() + wait > deadline || clock_type::now() >= real_deadline) {
        rate_limited_.add();
        if (breaker_) breaker_->on_neutral();
        return then(make_error_code(errc::data_source_rate_limited));
      }
      // Re-check at least every 10 ms, so a clock that jumps (a manual
      // clock in tests, a suspended VM) is noticed promptly.
      auto timer = std::make_shared<net::steady_timer>(
          *ctx.ioc, std::min<duration>(wait, std::chrono::milliseconds(10)));
      // A call that waited for a token goes to the pool: never on the
      // engine thread that runs this timer.
      guard_context later = ctx;
      later.here = false;
      timer->async_wait([this, timer, later, then = std::move(then), deadline,
                         real_deadline](error_code ec) mutable {
        if (ec || !later.running->load()) return;  // stop() ended the waiters
        acquire_token(later, std::move(then), deadline, real_deadline);
      });
      return;
    }
  }
  enter_bulkhead(ctx, std::move(then));
}

void source_guard::enter_bulkhead(const guard_context& ctx, admitted then) {
  // With ctx.here, a job started by this very submit() (a free slot) runs
  // the call here; one that waited in the queue goes to the pool like any
  // other, whichever thread released its slot.
  const std::thread::id here = ctx.here ? std::this_thread::get_id() : std::thread::id{};
  // Counted from before the call runs until submit() returns (the calls it
  // started on releasing its slot included): stop() waits for zero.
  struct here_scope {
    std::atomic<int>* calls;
    explicit here_scope(std::atomic<int>* c) : calls(c) {
      if (calls != nullptr) calls->fetch_add(1);
    }
    here_scope(const here_scope&) = delete;
    here_scope& operator=(const here_scope&) = delete;
    ~here_scope() {
      if (calls != nullptr && calls->fetch_sub(1) == 1) calls->notify_all();
    }
  } scope(ctx.here ? ctx.here_calls : nullptr);
  if (ctx.here && !ctx.running->load()) {  // stop() began: it may be waiting for this count
    then(make_error_code(errc::stopped));
    return;
  }
  // A load queued longer than any caller waits (read_timeout) is not run:
  // it ends with timeout, without a slot, when the queue next moves, and so
  // does not stay queued behind fetches that never end (a hung source).
  auto then_shared = std::make_shared<admitted>(std::move(then));
  const bool taken = fetches_.submit_until(
      [ctx, then_shared, here]() mutable {
        admitted then = std::move(*then_shared);
        if (here != std::thread::id{} && here == std::this_thread::get_id())
          return then(error_code{});
        ctx.pool->post(detail::make_job([then = std::move(then)] { then(error_code{}); }));
      },
      clock_type::now() + read_timeout_,
      [this, then_shared]() mutable {
        if (breaker_) breaker_->on_neutral();
        admitted then = std::move(*then_shared);
        then(make_error_code(errc::timeout));
      });
  if (!taken) {  // max_queued_fetches wait already: refused at once
    overloaded_.add();
    if (breaker_) breaker_->on_neutral();
    admitted then = std::move(*then_shared);
    then(make_error_code(errc::overloaded));
  }
}

void source_guard::finish(const error_code& outcome) {
  if (breaker_) {
    if (!outcome || outcome == errc::not_found) {
      breaker_->on_success();  // the source answered
    } else {
      breaker_->on_failure();
    }
  }
  fetches_.release();
}

void source_guard::abandon() {
  if (breaker_) breaker_->on_neutral();
  fetches_.release();
}

void source_guard::fill_stats(keyspace_stats& s) const {
  s.rate_limited = rate_limited_.load();
  s.overloaded = overloaded_.load();
  if (breaker_) {
    s.circuit_state = breaker_->state();
    s.circuit_last_change = breaker_->last_change();
    s.circuit_rejected = breaker_->rejected();
  }
  s.fetches_in_flight = fetches_.running();
  s.fetches_queued = fetches_.queued();
}

}  // namespace distcache::detail

#endif  // DISTCACHE_PROTECTION_IMPL_SOURCE_GUARD_IPP
