// distcache — the fetch pool: the threads that call data sources. One idle
// thread at a time spins briefly before it sleeps, so that a fetch posted
// soon after the last one starts without a thread wake-up.
#ifndef DISTCACHE_DETAIL_FETCH_POOL_HPP
#define DISTCACHE_DETAIL_FETCH_POOL_HPP

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <distcache/detail/config.hpp>
#include <distcache/detail/job.hpp>
#include <mutex>
#include <thread>
#include <vector>

namespace distcache::detail {

/// Runs jobs on a fixed set of threads, in the order they were posted.
///
/// Waking a sleeping thread costs several microseconds on a virtual machine
/// (more than a fast data source takes), so a thread that finds no job spins
/// for up to `spin` before it sleeps, watching the queue, when no other
/// thread spins already: a burst of fetches, or one caller's misses back to
/// back, then needs no wake-up. At most one thread spins at a time, and only
/// for `spin` after its last job; `spin` 0 never spins
/// (docs/configuration.md#spinning).
///
/// Thread safety: post() may be called concurrently from any thread,
/// including from the pool's own jobs.
class fetch_pool {
 public:
  DISTCACHE_DECL fetch_pool(std::size_t threads, std::chrono::nanoseconds spin);
  fetch_pool(const fetch_pool&) = delete;
  fetch_pool& operator=(const fetch_pool&) = delete;
  /// join()s.
  DISTCACHE_DECL ~fetch_pool();

  /// Queues `j`; a thread of the pool runs it. Every job posted before
  /// join() returns runs before it returns (jobs posted by jobs during join()
  /// included). Once join() has returned no thread is left: `j` then runs on
  /// the calling thread, so that no job is ever lost.
  DISTCACHE_DECL void post(job j);

  /// Runs every queued job, and every job they post, then ends the threads.
  /// Idempotent; must not be called from one of the pool's threads.
  DISTCACHE_DECL void join();

  /// How many threads the pool has.
  [[nodiscard]] std::size_t size() const noexcept { return threads_.size(); }

  /// What the idle threads do now: whether one spins, how many sleep.
  struct idle_state {
    bool spinning = false;
    std::size_t sleeping = 0;
  };
  [[nodiscard]] idle_state idle() {
    std::lock_guard lock(mutex_);
    return {spinning_, sleeping_};
  }

 private:
  DISTCACHE_DECL void run();

  const std::chrono::nanoseconds spin_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<job> queue_;               // guarded by mutex_
  std::atomic<std::size_t> queued_{0};  // queue_.size(), read by the spinner
  std::size_t sleeping_ = 0;            // threads waiting on cv_
  std::size_t active_ = 0;              // threads running a job
  bool spinning_ = false;               // a thread spins: posts need not wake one
  std::atomic<bool> stopping_{false};   // join() began (set under mutex_)
  bool joined_ = false;                 // join() ended: post() runs jobs itself
  std::vector<std::thread> threads_;
};

}  // namespace distcache::detail

#if DISTCACHE_HEADER_ONLY
#include <distcache/detail/impl/fetch_pool.ipp>
#endif

#endif  // DISTCACHE_DETAIL_FETCH_POOL_HPP
