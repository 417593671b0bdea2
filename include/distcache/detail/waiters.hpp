// distcache — waiters that deliver a load's outcome to a caller.
#ifndef DISTCACHE_DETAIL_WAITERS_HPP
#define DISTCACHE_DETAIL_WAITERS_HPP

#include <algorithm>
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
#include <distcache/clock.hpp>
#include <distcache/detail/config.hpp>
#include <distcache/detail/gather.hpp>
#include <distcache/detail/job.hpp>
#include <distcache/error.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace distcache::detail {

class timed_waiter;

/// The deadlines of asynchronous waiters, on one timer of the engine's
/// io_context instead of a timer each: a waiter's timer would be armed at
/// every miss and cancelled at its completion, and a cancelled Asio timer
/// posts its handler, which costs the thread that completes a get one more
/// pass through the reactor (an epoll_wait) per get.
///
/// Waiters are kept in one list per timeout value (a keyspace's
/// read_timeout; there are few), in deadline order; the timer is armed at the
/// earliest deadline and never cancelled while waiters come and go: when it
/// fires it expires the waiters whose deadline passed and re-arms at the
/// next one, so a steady stream of gets costs one timer wake-up per timeout
/// period. stop() cancels it (the engine's threads end once idle) and
/// destroys it: the sweeper itself may outlive the io_context (waiters that
/// the io_context's queue held are destroyed with it, and take themselves
/// off then).
///
/// Thread safety: every member function may be called concurrently.
class deadline_sweeper {
 public:
  /// `ioc` may be constructed later; it is used from the first add() on.
  explicit deadline_sweeper(net::io_context& ioc) : ioc_(ioc) {}
  deadline_sweeper(const deadline_sweeper&) = delete;
  deadline_sweeper& operator=(const deadline_sweeper&) = delete;
  ~deadline_sweeper() = default;

  /// Gives `w` the deadline `timeout` from now.
  inline void add(timed_waiter& w, duration timeout);
  /// Takes `w` off its list (it completed). Nothing when it is on none.
  inline void remove(timed_waiter& w) noexcept;
  /// Cancels and destroys the timer; waiters added later get no deadline
  /// (the engine has stopped: their flights are closed) until start(). Call
  /// before the io_context is destroyed.
  inline void stop() noexcept;
  /// Gives deadlines again after stop() (the engine starts anew after a
  /// start that failed).
  inline void start() noexcept {
    std::lock_guard lock(mutex_);
    stopped_ = false;
  }
  /// Waiters with a deadline now (tests).
  [[nodiscard]] inline std::size_t size() const;

 private:
  struct lane {
    duration timeout{};
    timed_waiter* head = nullptr;  // earliest deadline
    timed_waiter* tail = nullptr;
  };

  inline void unlink(timed_waiter& w) noexcept;
  inline void arm(time_point when);
  inline void on_timer(std::uint64_t gen);

  net::io_context& ioc_;
  mutable std::mutex mutex_;
  std::vector<lane> lanes_;
  std::optional<net::steady_timer> timer_;
  time_point armed_at_ = time_point::max();  // max: not armed
  std::uint64_t gen_ = 0;                    // of the last arm(): older waits do nothing
  std::size_t size_ = 0;
  bool stopped_ = false;
};

/// A waiter with a deadline (asynchronous callers): when the read timeout
/// passes before the load ends, the waiter leaves its flight and completes
/// with errc::timeout; the load runs on for the others.
///
/// Invariant: the deadline is armed before the waiter joins a flight, and
/// complete() takes it off the sweeper before anything else.
class timed_waiter : public waiter, public std::enable_shared_from_this<timed_waiter> {
 public:
  timed_waiter(deadline_sweeper& deadlines, std::string key, std::uint64_t hash)
      : deadlines_(deadlines), key_(std::move(key)), hash_(hash) {}
  timed_waiter(const timed_waiter&) = delete;
  timed_waiter& operator=(const timed_waiter&) = delete;
  ~timed_waiter() override { deadlines_.remove(*this); }

  /// Starts the deadline. `flights` must outlive the waiter's flight.
  void arm(singleflight& flights, duration timeout) {
    flights_ = &flights;
    deadlines_.add(*this, timeout);
  }

  [[nodiscard]] hashed_key key() const noexcept { return {key_, hash_}; }

 protected:
  void cancel_timer() noexcept { deadlines_.remove(*this); }

 private:
  friend class deadline_sweeper;

  /// The deadline passed (called by the sweeper, holding a reference).
  void expire() {
    if (flights_ != nullptr && flights_->abandon(key(), this)) {
      complete(make_error_code(errc::timeout), nullptr);
    }
  }

  deadline_sweeper& deadlines_;
  singleflight* flights_ = nullptr;
  std::string key_;
  std::uint64_t hash_;
  // On the sweeper's lists, guarded by its mutex.
  timed_waiter* prev_ = nullptr;
  timed_waiter* next_ = nullptr;
  std::size_t lane_ = 0;
  time_point deadline_{};
  bool linked_ = false;
};

inline void deadline_sweeper::add(timed_waiter& w, duration timeout) {
  std::lock_guard lock(mutex_);
  if (stopped_) return;
  // The deadline is taken under the lock: each list stays in deadline order.
  // A timeout too long to add (duration::max()) never expires.
  const time_point now = clock_type::now();
  const time_point deadline =
      timeout >= time_point::max() - now ? time_point::max() : now + timeout;
  std::size_t i = 0;
  while (i < lanes_.size() && lanes_[i].timeout != timeout) ++i;
  if (i == lanes_.size()) lanes_.push_back({timeout, nullptr, nullptr});
  lane& l = lanes_[i];
  w.lane_ = i;
  w.deadline_ = deadline;
  w.prev_ = l.tail;
  w.next_ = nullptr;
  if (l.tail != nullptr) {
    l.tail->next_ = &w;
  } else {
    l.head = &w;
  }
  l.tail = &w;
  w.linked_ = true;
  ++size_;
  if (deadline < armed_at_ && deadline != time_point::max()) arm(deadline);
}

inline void deadline_sweeper::remove(timed_waiter& w) noexcept {
  std::lock_guard lock(mutex_);
  if (w.linked_) unlink(w);
}

inline void deadline_sweeper::unlink(timed_waiter& w) noexcept {
  lane& l = lanes_[w.lane_];
  (w.prev_ != nullptr ? w.prev_->next_ : l.head) = w.next_;
  (w.next_ != nullptr ? w.next_->prev_ : l.tail) = w.prev_;
  w.prev_ = nullptr;
  w.next_ = nullptr;
  w.linked_ = false;
  --size_;
}

inline void deadline_sweeper::stop() noexcept {
  std::lock_guard lock(mutex_);
  stopped_ = true;
  armed_at_ = time_point::max();
  ++gen_;
  timer_.reset();  // a pending wait completes with operation_aborted, an older generation
}

inline std::size_t deadline_sweeper::size() const {
  std::lock_guard lock(mutex_);
  return size_;
}

inline void deadline_sweeper::arm(time_point when) {
  if (!timer_) timer_.emplace(ioc_);
  timer_->expires_at(when);  // a pending wait completes with operation_aborted
  timer_->async_wait([this, gen = ++gen_](const error_code&) { on_timer(gen); });
  armed_at_ = when;  // once the wait is pending
}

inline void deadline_sweeper::on_timer(std::uint64_t gen) {
  std::vector<std::shared_ptr<timed_waiter>> due;
  {
    std::lock_guard lock(mutex_);
    if (gen != gen_ || stopped_) return;  // superseded by a later arm(), or stopped
    armed_at_ = time_point::max();
    const time_point now = clock_type::now();
    time_point next = time_point::max();
    // Room for every waiter first: a push_back that threw under the lock
    // could drop a waiter's last reference here, and its destructor takes
    // this lock.
    due.reserve(size_);
    for (lane& l : lanes_) {
      while (l.head != nullptr && l.head->deadline_ <= now) {
        timed_waiter& w = *l.head;
        // A waiter being destroyed has completed or never joined: it only
        // leaves the list (its destructor waits for this lock).
        if (auto self = w.weak_from_this().lock()) due.push_back(std::move(self));
        unlink(w);
      }
      if (l.head != nullptr) next = std::min(next, l.head->deadline_);
    }
    if (next != time_point::max()) arm(next);  // never-expiring waiters need no timer
  }
  for (auto& w : due) w->expire();
}

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

  async_waiter(deadline_sweeper& deadlines, const net::io_context::executor_type& ex,
               std::string key, std::uint64_t hash, handler_type handler)
      : timed_waiter(deadlines, std::move(key), hash),
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
