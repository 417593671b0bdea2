// distcache — a bulkhead: a limit on concurrent data-source calls, with a
// FIFO queue of the calls waiting for a slot.
#ifndef DISTCACHE_PROTECTION_BULKHEAD_HPP
#define DISTCACHE_PROTECTION_BULKHEAD_HPP

#include <cassert>
#include <chrono>
#include <cstddef>
#include <deque>
#include <distcache/detail/job.hpp>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>

namespace distcache::protection {

/// Limits how many jobs run at once; jobs beyond the limit wait in a FIFO
/// queue and start, in submission order, as running jobs release their slot.
///
/// A job is started by calling it. It counts as running from then until its
/// owner calls release(), exactly once per started job, when the work the
/// job began has finished. A job may finish inside its own call (calling
/// release() there) or later on any thread.
///
/// Jobs run on the thread of the submit() or release() that starts them,
/// never under the bulkhead's lock. A job that a job starts on the same
/// thread (by calling submit() or release() inside its call) runs after it
/// returns, not inside it, so a long queue of jobs that finish at once does
/// not grow the stack.
///
/// Thread safety: every member function may be called concurrently.
class bulkhead {
 public:
  /// The clock of submit_until()'s deadlines.
  using clock_type = std::chrono::steady_clock;

  /// A bulkhead running at most `limit` jobs at once (0: no limit), with at
  /// most `max_queued` jobs waiting (0: no bound; see submit_until()).
  explicit bulkhead(std::size_t limit, std::size_t max_queued = 0) noexcept
      : limit_(limit), max_queued_(max_queued) {}

  bulkhead(const bulkhead&) = delete;
  bulkhead& operator=(const bulkhead&) = delete;

  /// Starts `start` now when fewer than limit() jobs are running, counting it
  /// as running; otherwise queues it behind the jobs already waiting.
  /// `start` may be move-only (std::function<void()> works too).
  ///
  /// `start` should not throw. If it does, its slot is released and the
  /// exception propagates out of the outermost submit() or release() on this
  /// thread, after the other jobs it started have run.
  /// Returns false, taking neither, when max_queued() jobs wait already.
  template <distcache::detail::job_callable Start>
  bool submit(Start start) {
    return submit_until(std::move(start), clock_type::time_point::max(), [] {});
  }

  /// As submit(), but a job still queued at `deadline` (steady clock) is
  /// never started: `expire` is called instead, without a slot, by the first
  /// submit() or release() that finds it expired (on that thread, outside
  /// the lock). Expired jobs leave the queue as soon as anything is submitted,
  /// so a queue behind running jobs that never finish (a data source that
  /// hangs) holds only the jobs of the last `deadline` span, not every job
  /// ever queued. `expire` should not throw (an exception from it is
  /// swallowed: the job is gone either way).
  ///
  /// Returns false when the job would wait and max_queued() jobs wait
  /// already (after the expired ones left): neither `start` nor `expire` is
  /// ever called, and the caller answers its caller at once (load shedding).
  template <distcache::detail::job_callable Start, distcache::detail::job_callable Expire>
  bool submit_until(Start start, clock_type::time_point deadline, Expire expire) {
    std::deque<distcache::detail::job> expired;
    {
      std::unique_lock lock(mutex_);
      take_expired(expired);
      if (limit_ != 0 && running_ >= limit_) {
        const bool full = max_queued_ != 0 && queue_.size() >= max_queued_;
        if (!full) {
          queue_.push_back({distcache::detail::job(std::in_place, std::move(start)),
                            distcache::detail::job(std::in_place, std::move(expire)), deadline});
        }
        lock.unlock();
        call_expired(expired);
        return !full;
      }
      ++running_;
    }
    call_expired(expired);
    run(distcache::detail::job(std::in_place, std::move(start)));
    return true;
  }

  /// One running job finished: hands its slot to the oldest queued job and
  /// starts it, or frees the slot when none is queued. Must be called exactly
  /// once per started job.
  void release() {
    std::deque<distcache::detail::job> expired;
    auto next = take_next(expired);
    call_expired(expired);
    if (next) run(std::move(*next));
  }

  /// Jobs running now (started, not yet released).
  [[nodiscard]] std::size_t running() const {
    std::lock_guard lock(mutex_);
    return running_;
  }
  /// Jobs waiting for a slot.
  [[nodiscard]] std::size_t queued() const {
    std::lock_guard lock(mutex_);
    return queue_.size();
  }
  /// The most jobs run at once; 0 means no limit.
  [[nodiscard]] std::size_t limit() const noexcept { return limit_; }
  /// The most jobs that wait at once; 0 means no bound.
  [[nodiscard]] std::size_t max_queued() const noexcept { return max_queued_; }

 private:
  // The jobs that the outermost run() of this bulkhead on this thread will
  // start after the current one returns.
  struct trampoline {
    const bulkhead* owner;
    std::deque<distcache::detail::job>* pending;
  };
  static trampoline& current() noexcept {
    thread_local trampoline t{nullptr, nullptr};
    return t;
  }

  // A queued job: what starts it, what ends it unstarted, and when it expires.
  struct entry {
    distcache::detail::job start;
    distcache::detail::job expire;
    clock_type::time_point deadline;
  };

  // Moves the expiry of every expired job at the front of the queue to
  // `out`. Deadlines are not ordered (each caller chooses its own), so an
  // unexpired job stops the sweep: the rest go when they reach the front.
  // Call with mutex_ held.
  void take_expired(std::deque<distcache::detail::job>& out) {
    if (queue_.empty()) return;
    const auto now = clock_type::now();
    while (!queue_.empty() && queue_.front().deadline <= now) {
      out.push_back(std::move(queue_.front().expire));
      queue_.pop_front();
    }
  }

  static void call_expired(std::deque<distcache::detail::job>& expired) noexcept {
    for (auto& e : expired) {
      try {
        e();
      } catch (...) {  // NOLINT(bugprone-empty-catch): documented: the job is gone either way
      }
    }
  }

  // Passes the slot of a finished job to the next queued job that has not
  // expired (returned, to be run by the caller outside the lock) or frees it;
  // expired jobs it passes go to `expired`.
  std::optional<distcache::detail::job> take_next(std::deque<distcache::detail::job>& expired) {
    std::lock_guard lock(mutex_);
    assert(running_ > 0 && "bulkhead::release() called more often than jobs started");
    take_expired(expired);
    if (queue_.empty()) {
      if (running_ > 0) --running_;
      return std::nullopt;
    }
    std::optional<distcache::detail::job> next(std::move(queue_.front().start));
    queue_.pop_front();
    return next;
  }

  // Starts `j`, which already holds a slot. Inside a job of this bulkhead on
  // this thread, only appends it to that run's list.
  void run(distcache::detail::job j) {
    trampoline& t = current();
    if (t.owner == this) {
      t.pending->push_back(std::move(j));
      return;
    }
    std::deque<distcache::detail::job> pending;
    struct restore {
      trampoline& slot;
      trampoline saved;
      ~restore() { slot = saved; }
    } guard{t, t};
    t = {this, &pending};
    std::exception_ptr failure;
    pending.push_back(std::move(j));
    while (!pending.empty()) {
      distcache::detail::job next = std::move(pending.front());
      pending.pop_front();
      try {
        next();
      } catch (...) {
        if (!failure) failure = std::current_exception();
        // The job did not start its work, so nobody else will release it.
        std::deque<distcache::detail::job> expired;
        if (auto after = take_next(expired)) pending.push_back(std::move(*after));
        call_expired(expired);
      }
    }
    if (failure) std::rethrow_exception(failure);
  }

  const std::size_t limit_;
  const std::size_t max_queued_;
  mutable std::mutex mutex_;
  // Invariant: queue_ is empty unless limit_ != 0 and running_ == limit_.
  std::size_t running_ = 0;
  std::deque<entry> queue_;
};

}  // namespace distcache::protection

#endif  // DISTCACHE_PROTECTION_BULKHEAD_HPP
