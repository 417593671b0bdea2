// distcache — waiters that deliver a load's outcome to a caller.
#ifndef DISTCACHE_DETAIL_WAITERS_HPP
#define DISTCACHE_DETAIL_WAITERS_HPP

#include <atomic>
#include <boost/asio/any_completion_executor.hpp>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/steady_timer.hpp>
#include <condition_variable>
#include <distcache/cache/detail/singleflight.hpp>
#include <distcache/detail/config.hpp>
#include <distcache/detail/gather.hpp>
#include <distcache/detail/job.hpp>
#include <distcache/error.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace distcache::detail {

/// A waiter with a deadline on the engine's io_context (asynchronous
/// callers): when the read timeout passes before the load ends, the waiter leaves its flight and
/// completes with errc::timeout; the load runs on for the others.
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

/// A waiter for a blocking caller: the caller's thread waits on the waiter's
/// own condition with the deadline, so a blocking miss arms no Asio timer
/// (and its cancellation wakes no network thread). complete() wakes wait().
class sync_waiter final : public waiter {
 public:
  sync_waiter(std::string key, std::uint64_t hash) : key_(std::move(key)), hash_(hash) {}

  [[nodiscard]] hashed_key key() const noexcept { return {key_, hash_}; }

  void complete(error_code ec, std::shared_ptr<const void> value) override {
    std::lock_guard lock(mutex_);
    ec_ = ec;
    value_ = std::move(value);
    done_ = true;
    ready_.store(true, std::memory_order_release);
    cv_.notify_one();
  }

  /// Blocks until complete() ran or `timeout` passed, spinning for up to
  /// `spin` first (config::spin_wait: a fast load then needs no wake-up of
  /// this thread). On the deadline the waiter leaves its flight in `flights`
  /// and returns errc::timeout; the load runs on for the others. Should the
  /// load have taken the waiter just before, its completion is imminent and
  /// is waited for.
  DISTCACHE_DECL std::pair<error_code, std::shared_ptr<const void>> wait(singleflight& flights,
                                                                         duration timeout,
                                                                         duration spin = {});

 private:
  std::string key_;
  std::uint64_t hash_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::atomic<bool> ready_{false};  // done_, for the spin outside the lock
  error_code ec_;
  std::shared_ptr<const void> value_;
};

/// Runs `j` on `ex` (dispatch: inline when the caller already runs there).
/// Every completion the core delivers goes through this one compiled
/// function, instead of one Asio instantiation per completion signature.
DISTCACHE_DECL void dispatch_job(const net::any_completion_executor& ex, job j);

/// The handler's associated executor (default: `fallback`), tracking
/// outstanding work so that its execution context stays alive until the
/// operation completes.
template <class Handler, class Executor>
net::any_completion_executor tracked_executor(const Handler& h, const Executor& fallback) {
  return net::any_completion_executor(
      net::prefer(net::any_completion_executor(net::get_associated_executor(h, fallback)),
                  net::execution::outstanding_work.tracked));
}

/// Told the outcome of an async_waiter when it completes, before its
/// handler is dispatched (the engine's measurements).
class completion_observer {
 public:
  completion_observer() = default;
  completion_observer(const completion_observer&) = delete;
  completion_observer& operator=(const completion_observer&) = delete;
  virtual ~completion_observer() = default;
  virtual void completed(error_code ec) noexcept = 0;
};

/// A waiter for an asynchronous caller: holds the completion handler, keeps
/// its executor busy while pending, supports per-operation cancellation (any
/// cancellation type ends this waiter only) and invokes the handler on its
/// associated executor as `handler(ec, value)`.
class async_waiter final : public timed_waiter {
 public:
  using handler_type = net::any_completion_handler<void(error_code, std::shared_ptr<const void>)>;

  async_waiter(const net::io_context::executor_type& ex, std::string key, std::uint64_t hash,
               handler_type handler)
      : timed_waiter(ex, std::move(key), hash),
        handler_(std::move(handler)),
        work_(tracked_executor(handler_, ex)) {}

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

  /// Sets the observer told at completion. Call before joining the flight.
  void observe(std::unique_ptr<completion_observer> o) noexcept { observer_ = std::move(o); }

  void complete(error_code ec, std::shared_ptr<const void> value) override {
    cancel_timer();
    if (observer_) observer_->completed(ec);
    auto self = std::static_pointer_cast<async_waiter>(shared_from_this());
    // complete() runs once: the work guard moves out here and ends after the
    // dispatch, which holds the executor busy itself until the handler ran.
    const net::any_completion_executor ex = std::move(work_);
    dispatch_job(ex, make_job([self = std::move(self), ec, value = std::move(value)]() mutable {
                   net::get_associated_cancellation_slot(self->handler_).clear();
                   auto handler = std::move(self->handler_);
                   std::move(handler)(ec, std::move(value));
                 }));
  }

 private:
  handler_type handler_;
  net::any_completion_executor work_;  // tracks outstanding work until completion
  std::unique_ptr<completion_observer> observer_;
};

/// The waiters of one multi-key read (a get_many, a peer's batch): one
/// allocation and one deadline for all its keys instead of a waiter and a
/// timer each. Each key's waiter lives in the batch and reaches its flight as
/// an aliasing pointer that keeps the whole batch alive.
///
/// Use: make() → join() per missing key → done_joining(). When the deadline
/// passes, every key still waiting leaves its flight and completes with
/// errc::timeout; the loads run on for the others. The deadline is armed in
/// make(), before any key joins, and cancelled by the last key to complete.
///
/// Thread safety: make(), join() and done_joining() on one thread; the
/// completions may run on any.
class waiter_batch : public std::enable_shared_from_this<waiter_batch> {
 public:
  /// Called once per joined key: (its index in the call, outcome, value, expiry).
  using callback =
      std::function<void(std::size_t, error_code, std::shared_ptr<const void>, time_point)>;

  /// A batch for at most `capacity` keys of `flights` (which must outlive it).
  /// A key still waiting when `timeout` passes completes with `expired`
  /// (errc::timeout unless given; its flight goes on).
  DISTCACHE_DECL static std::shared_ptr<waiter_batch> make(
      const net::io_context::executor_type& ex, singleflight& flights, std::size_t capacity,
      duration timeout, callback fn, error_code expired = make_error_code(errc::timeout));

  /// Joins (or starts) the flight of `key` for the call's key `index`.
  /// Returns true when this key leads its flight and must be loaded.
  DISTCACHE_DECL bool join(std::size_t index, std::string key, std::uint64_t hash);

  /// Ends the joining: the deadline may now be cancelled once every joined
  /// key completed.
  DISTCACHE_DECL void done_joining();

  DISTCACHE_DECL waiter_batch(const net::io_context::executor_type& ex, singleflight& flights,
                              std::size_t capacity, callback fn);

 private:
  struct entry final : waiter {
    waiter_batch* batch = nullptr;
    std::size_t index = 0;
    std::string key;
    std::uint64_t hash = 0;
    void complete(error_code ec, std::shared_ptr<const void> value) override {
      batch->completed(*this, ec, std::move(value));
    }
  };

  DISTCACHE_DECL void arm(duration timeout);
  DISTCACHE_DECL void expire();
  DISTCACHE_DECL void completed(entry& e, error_code ec, std::shared_ptr<const void> value);
  DISTCACHE_DECL void release();

  net::steady_timer timer_;
  singleflight& flights_;
  std::unique_ptr<entry[]> entries_;  // `capacity` of them
  callback fn_;
  error_code expired_code_;
  // seq_cst on both: join() stores joined_ then reads expired_, expire()
  // stores expired_ then reads joined_, so a key joined as the deadline
  // passes is timed out by one of them (abandon() lets only one win).
  std::atomic<std::size_t> joined_{0};
  std::atomic<bool> expired_{false};
  // Joined keys not yet completed, plus one while joining goes on.
  std::atomic<std::size_t> pending_{1};
};

}  // namespace distcache::detail

#if DISTCACHE_HEADER_ONLY
#include <distcache/detail/impl/waiters.ipp>
#endif

#endif  // DISTCACHE_DETAIL_WAITERS_HPP
