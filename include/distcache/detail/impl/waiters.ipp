// distcache — the compiled part of the waiters.
#ifndef DISTCACHE_DETAIL_IMPL_WAITERS_IPP
#define DISTCACHE_DETAIL_IMPL_WAITERS_IPP

#include <boost/asio/dispatch.hpp>
#include <chrono>
#include <distcache/detail/spin.hpp>
#include <distcache/detail/waiters.hpp>

namespace distcache::detail {

void dispatch_job(const net::any_completion_executor& ex, job j) {
  net::dispatch(ex, std::move(j));
}

std::pair<error_code, std::shared_ptr<const void>> sync_waiter::wait(singleflight& flights,
                                                                     duration timeout,
                                                                     duration spin) {
  if (spin > duration::zero() && spin < timeout) {
    spin_until([this] { return ready_.load(std::memory_order_acquire); }, spin);
  }
  std::unique_lock lock(mutex_);
  if (!cv_.wait_for(lock, timeout, [this] { return done_; })) {
    lock.unlock();
    if (flights.abandon(key(), this)) return {make_error_code(errc::timeout), nullptr};
    lock.lock();
    cv_.wait(lock, [this] { return done_; });
  }
  return {ec_, std::move(value_)};
}

waiter_batch::waiter_batch(const net::io_context::executor_type& ex, singleflight& flights,
                           std::size_t capacity, callback fn)
    : timer_(ex),
      flights_(flights),
      entries_(std::make_unique<entry[]>(capacity)),
      fn_(std::move(fn)) {}

std::shared_ptr<waiter_batch> waiter_batch::make(const net::io_context::executor_type& ex,
                                                 singleflight& flights, std::size_t capacity,
                                                 duration timeout, callback fn,
                                                 error_code expired) {
  auto batch = std::make_shared<waiter_batch>(ex, flights, capacity, std::move(fn));
  batch->expired_code_ = expired;
  batch->arm(timeout);
  return batch;
}

void waiter_batch::arm(duration timeout) {
  timer_.expires_after(timeout);
  timer_.async_wait([self = shared_from_this()](const error_code& ec) {
    if (!ec) self->expire();  // else cancelled: every key completed
  });
}

bool waiter_batch::join(std::size_t index, std::string key, std::uint64_t hash) {
  const std::size_t n = joined_.load(std::memory_order_relaxed);  // < capacity: one per key
  entry& e = entries_[n];
  e.batch = this;
  e.index = index;
  e.key = std::move(key);
  e.hash = hash;
  pending_.fetch_add(1, std::memory_order_relaxed);
  const std::shared_ptr<waiter> alias(shared_from_this(), &e);
  const bool leader = flights_.join({e.key, e.hash}, alias);
  joined_.store(n + 1);
  if (expired_.load() && flights_.abandon({e.key, e.hash}, &e)) e.complete(expired_code_, nullptr);
  return leader;
}

void waiter_batch::done_joining() { release(); }

void waiter_batch::expire() {
  expired_.store(true);
  const std::size_t n = joined_.load();
  for (std::size_t i = 0; i < n; ++i) {
    entry& e = entries_[i];
    if (flights_.abandon({e.key, e.hash}, &e)) e.complete(expired_code_, nullptr);
  }
}

void waiter_batch::completed(entry& e, error_code ec, std::shared_ptr<const void> value) {
  fn_(e.index, ec, std::move(value), e.expires_at);
  release();
}

void waiter_batch::release() {
  if (pending_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  try {
    timer_.cancel();
  } catch (...) {  // only on a broken reactor: the deadline then fires and finds no flight
  }
}

}  // namespace distcache::detail

#endif  // DISTCACHE_DETAIL_IMPL_WAITERS_IPP
