// distcache — waiters that deliver a load's outcome to a caller.
#ifndef DISTCACHE_DETAIL_WAITERS_HPP
#define DISTCACHE_DETAIL_WAITERS_HPP

#include <atomic>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <condition_variable>
#include <distcache/cache/singleflight.hpp>
#include <distcache/error.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

namespace distcache::detail {

namespace net = boost::asio;

/// A waiter with a deadline: when the read timeout passes before the load
/// ends, the waiter leaves its flight and completes with errc::timeout; the
/// load runs on for the others.
///
/// Invariant: the timer is armed before the waiter joins a flight, so the
/// only later access to it is cancel(), from complete().
class timed_waiter : public waiter, public std::enable_shared_from_this<timed_waiter> {
 public:
  timed_waiter(net::io_context::executor_type ex, std::string key, std::uint64_t hash)
      : timer_(std::move(ex)), key_(std::move(key)), hash_(hash) {}

  /// Starts the deadline. `flights` must outlive the waiter's flight.
  void arm(singleflight& flights, duration timeout) {
    timer_.expires_after(timeout);
    timer_.async_wait([self = shared_from_this(), &flights](const error_code& ec) {
      if (ec) return;  // cancelled: the waiter completed
      if (flights.abandon(self->key(), self.get())) {
        self->complete(make_error_code(errc::timeout), nullptr);
      }
    });
  }

  [[nodiscard]] hashed_key key() const noexcept { return {key_, hash_}; }

 protected:
  void cancel_timer() noexcept {
    try {
      timer_.cancel();
    } catch (...) {  // only on a broken reactor: the timer then fires and finds no flight
    }
  }

 private:
  net::steady_timer timer_;
  std::string key_;
  std::uint64_t hash_;
};

/// A waiter for a blocking caller: complete() wakes the thread in wait().
class sync_waiter final : public timed_waiter {
 public:
  using timed_waiter::timed_waiter;

  void complete(error_code ec, std::shared_ptr<const void> value) override {
    cancel_timer();
    std::lock_guard lock(mutex_);
    ec_ = ec;
    value_ = std::move(value);
    done_ = true;
    cv_.notify_one();
  }

  /// Blocks until complete() ran; returns its outcome.
  std::pair<error_code, std::shared_ptr<const void>> wait() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [this] { return done_; });
    return {ec_, std::move(value_)};
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  error_code ec_;
  std::shared_ptr<const void> value_;
};

/// A waiter for an asynchronous caller: holds the completion handler, keeps
/// its executor busy while pending, supports per-operation cancellation (any
/// cancellation type ends this waiter only) and invokes the handler on its
/// associated executor as `handler(ec, std::shared_ptr<const V>)`.
template <class V, class Handler>
class async_waiter final : public timed_waiter {
 public:
  using handler_executor = net::associated_executor_t<Handler, net::io_context::executor_type>;

  async_waiter(net::io_context::executor_type ex, std::string key, std::uint64_t hash,
               Handler handler)
      : timed_waiter(ex, std::move(key), hash),
        handler_(std::move(handler)),
        work_(net::get_associated_executor(handler_, ex)) {}

  /// Connects the handler's cancellation slot, if any, to abandoning this
  /// waiter. Call before joining the flight: afterwards the handler may
  /// already be on its way to completion.
  void connect_cancellation(singleflight& flights) {
    auto slot = net::get_associated_cancellation_slot(handler_);
    if (!slot.is_connected()) return;
    std::weak_ptr<timed_waiter> weak = shared_from_this();
    slot.assign([weak, &flights](net::cancellation_type) {
      auto self = weak.lock();
      if (self && flights.abandon(self->key(), self.get())) {
        self->complete(net::error::operation_aborted, nullptr);
      }
    });
  }

  void complete(error_code ec, std::shared_ptr<const void> value) override {
    cancel_timer();
    auto ex = work_.get_executor();
    auto self = std::static_pointer_cast<async_waiter>(shared_from_this());
    net::dispatch(ex, [self = std::move(self), ec, value = std::move(value)]() mutable {
      net::get_associated_cancellation_slot(self->handler_).clear();
      auto handler = std::move(self->handler_);
      self->work_.reset();
      std::move(handler)(ec, std::static_pointer_cast<const V>(std::move(value)));
    });
  }

 private:
  Handler handler_;
  net::executor_work_guard<handler_executor> work_;
};

/// A waiter that calls a function with the outcome and the value's expiry
/// (used to answer peers). The function runs on the thread that completes.
class callback_waiter final : public timed_waiter {
 public:
  using callback = std::function<void(error_code, std::shared_ptr<const void>, time_point)>;
  callback_waiter(net::io_context::executor_type ex, std::string key, std::uint64_t hash,
                  callback fn)
      : timed_waiter(std::move(ex), std::move(key), hash), fn_(std::move(fn)) {}

  void complete(error_code ec, std::shared_ptr<const void> value) override {
    cancel_timer();
    auto fn = std::move(fn_);
    fn(ec, std::move(value), expires_at);
  }

 private:
  callback fn_;
};

/// Joins the outcomes of several parallel requests: add() one per request,
/// finish_one() when each ends (plus one for the initiator), fail() to record
/// an error; `done` runs once, with the first error, after the last finish.
class fan_in {
 public:
  explicit fan_in(std::function<void(error_code)> done) : done_(std::move(done)) {}
  void add() noexcept { pending_.fetch_add(1, std::memory_order_relaxed); }
  void fail(error_code ec) {
    std::lock_guard lock(mutex_);
    if (!first_) first_ = ec;
  }
  void finish_one() {
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    error_code ec;
    {
      std::lock_guard lock(mutex_);
      ec = first_;
    }
    done_(ec);
  }

 private:
  std::atomic<std::size_t> pending_{1};
  std::mutex mutex_;
  error_code first_;
  std::function<void(error_code)> done_;
};

inline std::shared_ptr<fan_in> make_fan_in(std::function<void(error_code)> done) {
  return std::make_shared<fan_in>(std::move(done));
}

}  // namespace distcache::detail

#endif  // DISTCACHE_DETAIL_WAITERS_HPP
