// distcache — the fetch pool (see fetch_pool.hpp).
#ifndef DISTCACHE_DETAIL_IMPL_FETCH_POOL_IPP
#define DISTCACHE_DETAIL_IMPL_FETCH_POOL_IPP

#include <distcache/detail/fetch_pool.hpp>
#include <distcache/detail/spin.hpp>
#include <utility>

namespace distcache::detail {

fetch_pool::fetch_pool(std::size_t threads, std::chrono::nanoseconds spin) : spin_(spin) {
  threads_.reserve(threads);
  for (std::size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
}

fetch_pool::~fetch_pool() { join(); }

void fetch_pool::post(job j) {
  std::unique_lock lock(mutex_);
  if (joined_) {  // nobody is left to run it
    lock.unlock();
    j();
    return;
  }
  queue_.push_back(std::move(j));
  queued_.store(queue_.size(), std::memory_order_release);
  const bool wake = !spinning_ && sleeping_ != 0;
  lock.unlock();
  if (wake) cv_.notify_one();
}

void fetch_pool::join() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    threads.swap(threads_);
  }
  cv_.notify_all();
  for (auto& t : threads) t.join();
  // A job posted from outside after the last thread left is run here.
  std::unique_lock lock(mutex_);
  joined_ = true;
  while (!queue_.empty()) {
    job j = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    j();
    j = job();
    lock.lock();
  }
  queued_.store(0, std::memory_order_relaxed);
}

void fetch_pool::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    if (!queue_.empty()) {
      job j = std::move(queue_.front());
      queue_.pop_front();
      queued_.store(queue_.size(), std::memory_order_relaxed);
      // A spinner takes one job per post it saw; pass the rest on.
      const bool more = !queue_.empty() && !spinning_ && sleeping_ != 0;
      ++active_;
      lock.unlock();
      if (more) cv_.notify_one();
      j();
      j = job();  // destroy what it holds outside the lock
      lock.lock();
      --active_;
      continue;
    }
    if (stopping_) {
      if (active_ != 0) {  // a running job may still post: wait for it
        ++sleeping_;
        cv_.wait(lock);
        --sleeping_;
        continue;
      }
      lock.unlock();
      cv_.notify_all();  // the others wait for the last job: none is left
      return;
    }
    if (spin_.count() > 0 && !spinning_) {
      spinning_ = true;
      lock.unlock();
      spin_until(
          [this] {
            return queued_.load(std::memory_order_acquire) != 0 ||
                   stopping_.load(std::memory_order_relaxed);
          },
          spin_);
      lock.lock();
      spinning_ = false;
      if (!queue_.empty() || stopping_) continue;
      // Nothing came: sleep (another thread may spin after its next job).
    }
    ++sleeping_;
    cv_.wait(lock);
    --sleeping_;
  }
}

}  // namespace distcache::detail

#endif  // DISTCACHE_DETAIL_IMPL_FETCH_POOL_IPP
