#include <distcache/protection/bulkhead.hpp>
//
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

using distcache::protection::bulkhead;

TEST_CASE("a bulkhead runs jobs up to its limit and queues the rest") {
  bulkhead b(3);
  CHECK(b.limit() == 3);
  int started = 0;
  for (int i = 0; i < 5; ++i) b.submit([&] { ++started; });
  CHECK(started == 3);
  CHECK(b.running() == 3);
  CHECK(b.queued() == 2);
  b.release();  // hands the slot to the oldest queued job
  CHECK(started == 4);
  CHECK(b.running() == 3);
  CHECK(b.queued() == 1);
  b.release();
  b.release();
  CHECK(started == 5);
  CHECK(b.running() == 2);
  CHECK(b.queued() == 0);
  b.release();
  b.release();
  CHECK(b.running() == 0);
}

TEST_CASE("a queued job past its deadline never starts: its expiry runs when the queue moves") {
  using namespace std::chrono_literals;
  bulkhead b(1);
  int started = 0;
  int expired = 0;
  b.submit([&] { ++started; });  // holds the only slot, and never ends on its own
  const auto past = bulkhead::clock_type::now() - 1ms;
  const auto later = bulkhead::clock_type::now() + 1h;
  b.submit_until([&] { ++started; }, past, [&] { ++expired; });
  CHECK(b.queued() == 1);  // nothing moved the queue yet
  CHECK(expired == 0);
  // A submission sweeps the expired job first, slot or no slot.
  b.submit_until([&] { ++started; }, later, [&] { ++expired; });
  CHECK(expired == 1);
  CHECK(b.queued() == 1);
  b.release();  // the slot goes to the job that has not expired
  CHECK(started == 2);
  CHECK(b.running() == 1);
  b.submit_until([&] { ++started; }, past, [&] { ++expired; });
  b.release();  // the only queued job has expired: it is not started, the slot is freed
  CHECK(expired == 2);
  CHECK(started == 2);
  CHECK(b.running() == 0);
  CHECK(b.queued() == 0);
}

TEST_CASE("a bulkhead with max_queued refuses a job when that many wait, taking neither callable") {
  using namespace std::chrono_literals;
  bulkhead b(1, 2);
  CHECK(b.max_queued() == 2);
  int started = 0;
  int expired = 0;
  CHECK(b.submit([&] { ++started; }));  // the slot
  const auto later = bulkhead::clock_type::now() + 1h;
  CHECK(b.submit_until([&] { ++started; }, later, [&] { ++expired; }));
  CHECK(b.submit_until([&] { ++started; }, later, [&] { ++expired; }));
  CHECK(b.queued() == 2);
  CHECK_FALSE(b.submit_until([&] { ++started; }, later, [&] { ++expired; }));  // full
  CHECK(b.queued() == 2);
  CHECK(started == 1);
  CHECK(expired == 0);  // a refused job is not expired either: the caller answers
  b.release();
  b.release();
  CHECK(started == 3);
  CHECK(b.queued() == 0);
  // Expired jobs at the front leave before the bound is checked.
  CHECK(b.submit_until([&] { ++started; }, bulkhead::clock_type::now() - 1ms, [&] { ++expired; }));
  CHECK(b.submit_until([&] { ++started; }, later, [&] { ++expired; }));  // sweeps the expired one
  CHECK(expired == 1);
  CHECK(b.submit_until([&] { ++started; }, later, [&] { ++expired; }));
  CHECK(b.queued() == 2);
  CHECK_FALSE(b.submit_until([&] { ++started; }, later, [&] { ++expired; }));
  // With a free slot the bound does not matter.
  bulkhead free_slot(1, 1);
  CHECK(free_slot.submit([&] { ++started; }));
  CHECK(free_slot.submit([&] { ++started; }));
  CHECK_FALSE(free_slot.submit([&] { ++started; }));
}

TEST_CASE("queued jobs start in submission order") {
  bulkhead b(1);
  std::vector<int> order;
  for (int i = 0; i < 6; ++i) b.submit([&order, i] { order.push_back(i); });
  CHECK(order == std::vector<int>{0});
  for (int i = 0; i < 6; ++i) b.release();
  CHECK(order == std::vector<int>{0, 1, 2, 3, 4, 5});
  CHECK(b.running() == 0);
}

TEST_CASE("limit 0 means unlimited") {
  bulkhead b(0);
  int started = 0;
  for (int i = 0; i < 1000; ++i) b.submit([&] { ++started; });
  CHECK(started == 1000);
  CHECK(b.running() == 1000);
  CHECK(b.queued() == 0);
  for (int i = 0; i < 1000; ++i) b.release();
  CHECK(b.running() == 0);
}

TEST_CASE("jobs may be move-only callables or std::function") {
  bulkhead b(1);
  int value = 0;
  auto owned = std::make_unique<int>(7);
  b.submit([&value, p = std::move(owned)] { value = *p; });
  CHECK(value == 7);
  const std::function<void()> f = [&value] { value = 8; };
  b.submit(f);
  CHECK(value == 7);
  b.release();
  CHECK(value == 8);
  b.release();
}

TEST_CASE("jobs that finish inside their own call drain a long queue without recursion") {
  // A job that finds its deadline passed completes at once and releases its
  // slot inside its call; 100000 such jobs must not nest 100000 deep.
  bulkhead b(1);
  std::vector<int> order;
  b.submit([] {});  // holds the one slot
  constexpr int n = 100'000;
  for (int i = 0; i < n; ++i) {
    b.submit([&, i] {
      order.push_back(i);
      b.release();
    });
  }
  CHECK(b.queued() == n);
  b.release();
  REQUIRE(order.size() == n);
  CHECK(std::is_sorted(order.begin(), order.end()));
  CHECK(b.running() == 0);
  CHECK(b.queued() == 0);
}

TEST_CASE("a job submitted from inside a job runs after it returns") {
  bulkhead b(2);
  std::vector<int> events;
  b.submit([&] {
    b.submit([&] { events.push_back(2); });
    events.push_back(1);
  });
  CHECK(events == std::vector<int>{1, 2});
  CHECK(b.running() == 2);
  b.release();
  b.release();
}

TEST_CASE("a job that throws gives back its slot and the exception reaches the caller") {
  bulkhead b(1);
  CHECK_THROWS_AS(b.submit([] { throw std::runtime_error("boom"); }), std::runtime_error);
  CHECK(b.running() == 0);

  int started = 0;
  b.submit([&] { ++started; });                               // runs
  b.submit([] { throw std::runtime_error("queued boom"); });  // queued
  b.submit([&] { ++started; });                               // queued
  CHECK_THROWS_AS(b.release(), std::runtime_error);
  // The throwing job's slot went to the next queued job.
  CHECK(started == 2);
  CHECK(b.running() == 1);
  CHECK(b.queued() == 0);
  b.release();
  CHECK(b.running() == 0);
}

TEST_CASE("64 threads submitting never run more than limit jobs at once") {
  constexpr std::size_t limit = 4;
  constexpr int submitters = 64;
  constexpr int jobs_each = 16;
  constexpr int total = submitters * jobs_each;
  bulkhead b(limit);

  std::atomic<int> now_running{0};
  std::atomic<int> most_running{0};
  std::mutex m;
  std::condition_variable cv;
  int done = 0;
  std::vector<std::thread> workers;  // one per job, guarded by m

  // Each job runs on a thread of its own and releases its slot there.
  auto job = [&] {
    std::lock_guard lock(m);
    workers.emplace_back([&] {
      const int n = now_running.fetch_add(1) + 1;
      int seen = most_running.load();
      while (n > seen && !most_running.compare_exchange_weak(seen, n)) {
      }
      for (int i = 0; i < 100; ++i) std::this_thread::yield();
      now_running.fetch_sub(1);
      b.release();
      std::lock_guard done_lock(m);
      ++done;
      cv.notify_all();
    });
  };

  std::vector<std::thread> threads;
  threads.reserve(submitters);
  for (int t = 0; t < submitters; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < jobs_each; ++i) b.submit(job);
    });
  }
  for (auto& t : threads) t.join();
  {
    std::unique_lock lock(m);
    REQUIRE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return done == total; }));
  }
  // Every job started its thread before its predecessor counted as done.
  for (auto& w : workers) w.join();
  CHECK(workers.size() == total);
  CHECK(most_running.load() <= static_cast<int>(limit));
  CHECK(most_running.load() >= 1);
  CHECK(b.running() == 0);
  CHECK(b.queued() == 0);
}
