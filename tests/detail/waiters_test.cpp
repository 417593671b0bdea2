#include <distcache/detail/waiters.hpp>
//
#include <doctest/doctest.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <distcache/detail/fetch_pool.hpp>
#include <distcache/detail/handlers.hpp>
#include <distcache/detail/hash.hpp>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
namespace dd = distcache::detail;

TEST_CASE("gather runs done once, after the last part, with the outcomes in part order") {
  std::vector<int> seen;
  int calls = 0;
  auto g = dd::gather<int>::make(3, [&](std::vector<int> out) {
    ++calls;
    seen = std::move(out);
  });
  g->set(2, 30);
  g->set(0, 10);
  CHECK(calls == 0);
  g->set(1, 20);
  CHECK(calls == 1);
  CHECK(seen == std::vector<int>{10, 20, 30});
}

TEST_CASE("gather of no parts completes at once") {
  int calls = 0;
  auto g = dd::gather<int>::make(0, [&](const std::vector<int>& out) {
    ++calls;
    CHECK(out.empty());
  });
  CHECK(g == nullptr);
  CHECK(calls == 1);
}

TEST_CASE("first_error picks the first failed outcome") {
  using distcache::errc;
  CHECK_FALSE(dd::first_error({{}, {}}));
  CHECK(dd::first_error({{}, make_error_code(errc::timeout), make_error_code(errc::stopped)}) ==
        errc::timeout);
}

TEST_CASE("block_on returns what a handler completed on another thread received") {
  std::thread worker;
  auto [ec, n] = dd::block_on<distcache::error_code, int>([&](auto handler) {
    worker = std::thread([h = std::move(handler)] {
      h(distcache::make_error_code(distcache::errc::not_found), 42);
    });
  });
  worker.join();
  CHECK(ec == distcache::errc::not_found);
  CHECK(n == 42);
}

TEST_CASE("a blocking waiter leaves its flight with timeout when its deadline passes") {
  dd::singleflight flights;
  auto w = std::make_shared<dd::sync_waiter>("k", dd::hash_key("k"));
  REQUIRE(flights.join(w->key(), w));  // the leader; nobody finishes the load
  auto [ec, value] = w->wait(flights, 10ms);
  CHECK(ec == distcache::errc::timeout);
  CHECK(value == nullptr);
  CHECK(flights.in_flight() == 1);  // the load's flight is still there for others
  CHECK(flights.finish(w->key(), {}, nullptr, [] { return distcache::error_code{}; }) == 0);
}

TEST_CASE("a blocking waiter gets the value its load completed with, from another thread") {
  dd::singleflight flights;
  auto w = std::make_shared<dd::sync_waiter>("k", dd::hash_key("k"));
  REQUIRE(flights.join(w->key(), w));
  auto value = std::make_shared<const int>(7);
  std::thread loader([&] {
    CHECK(flights.finish(w->key(), {}, value, [] { return distcache::error_code{}; }) == 1);
  });
  auto [ec, got] = w->wait(flights, 1h);
  loader.join();
  CHECK_FALSE(ec);
  CHECK(got == value);
}

TEST_CASE("a spinning blocking waiter gets the value completed while it spins, or after") {
  for (auto spin : {distcache::duration(1ms), distcache::duration(1h)}) {
    dd::singleflight flights;
    auto w = std::make_shared<dd::sync_waiter>("k", dd::hash_key("k"));
    REQUIRE(flights.join(w->key(), w));
    auto value = std::make_shared<const int>(7);
    std::atomic<bool> go{false};
    std::thread loader([&] {
      // With a spin of 1h (longer than the timeout: no spin at all) and of
      // 1ms, the waiter is asleep or spinning; either way it gets the value.
      while (!go.load()) std::this_thread::yield();
      CHECK(flights.finish(w->key(), {}, value, [] { return distcache::error_code{}; }) == 1);
    });
    go.store(true);
    auto [ec, got] = w->wait(flights, 1min, spin);
    loader.join();
    CHECK_FALSE(ec);
    CHECK(got == value);
  }
}

TEST_CASE("a spinning blocking waiter still times out at its deadline") {
  dd::singleflight flights;
  auto w = std::make_shared<dd::sync_waiter>("k", dd::hash_key("k"));
  REQUIRE(flights.join(w->key(), w));
  auto [ec, value] = w->wait(flights, 20ms, 5ms);
  CHECK(ec == distcache::errc::timeout);
  CHECK(value == nullptr);
}

TEST_CASE("a blocking waiter taken by its load at the deadline waits for that outcome") {
  dd::singleflight flights;
  auto w = std::make_shared<dd::sync_waiter>("k", dd::hash_key("k"));
  REQUIRE(flights.join(w->key(), w));
  // The load ends before the deadline but the waiter has not looked yet: with
  // a zero timeout, wait() finds itself no longer in the flight and returns
  // the load's outcome instead of a timeout.
  auto value = std::make_shared<const int>(7);
  CHECK(flights.finish(w->key(), {}, value, [] { return distcache::error_code{}; }) == 1);
  auto [ec, got] = w->wait(flights, distcache::duration::zero());
  CHECK_FALSE(ec);
  CHECK(got == value);
}

TEST_CASE("an asynchronous waiter leaves its flight with timeout when its deadline passes") {
  boost::asio::io_context ioc;
  dd::singleflight flights;
  distcache::error_code got = make_error_code(distcache::errc::stopped);
  int calls = 0;
  dd::deadline_sweeper deadlines(ioc);
  auto w = std::make_shared<dd::async_waiter>(
      deadlines, ioc.get_executor(), "k", dd::hash_key("k"),
      [&](distcache::error_code ec, const std::shared_ptr<const void>& v) {
        ++calls;
        got = ec;
        CHECK(v == nullptr);
      });
  w->arm(flights, 10ms);
  REQUIRE(flights.join(w->key(), w));
  w.reset();
  ioc.run();  // the deadline fires, then the handler runs; nothing re-arms the timer
  CHECK(calls == 1);
  CHECK(got == distcache::errc::timeout);
  CHECK(deadlines.size() == 0);
  CHECK(flights.finish({"k", dd::hash_key("k")}, {}, nullptr,
                       [] { return distcache::error_code{}; }) == 0);
}

TEST_CASE("an asynchronous waiter completed by its load does not time out later") {
  boost::asio::io_context ioc;
  dd::singleflight flights;
  std::vector<distcache::error_code> seen;
  dd::deadline_sweeper deadlines(ioc);
  auto w = std::make_shared<dd::async_waiter>(
      deadlines, ioc.get_executor(), "k", dd::hash_key("k"),
      [&](distcache::error_code ec, const std::shared_ptr<const void>&) { seen.push_back(ec); });
  w->arm(flights, 1h);
  CHECK(deadlines.size() == 1);
  REQUIRE(flights.join(w->key(), w));
  auto value = std::make_shared<const int>(7);
  CHECK(flights.finish(w->key(), {}, value, [] { return distcache::error_code{}; }) == 1);
  CHECK(deadlines.size() == 0);  // off the sweeper at completion
  w.reset();
  deadlines.stop();  // the timer, still armed for the hour, is cancelled
  ioc.run();         // the handler and the cancelled wait; returns without waiting an hour
  REQUIRE(seen.size() == 1);
  CHECK_FALSE(seen[0]);
}

TEST_CASE("the deadline sweeper expires waiters of several timeouts in deadline order") {
  // One timer for every deadline: waiters of three timeouts (three lists)
  // time out in the order of their deadlines, not of their arrival, and a
  // waiter that completed before its deadline is not timed out.
  boost::asio::io_context ioc;
  dd::singleflight flights;
  dd::deadline_sweeper deadlines(ioc);
  std::vector<std::string> order;
  std::vector<distcache::error_code> outcomes;
  auto make = [&](const std::string& key, distcache::duration timeout) {
    auto w = std::make_shared<dd::async_waiter>(
        deadlines, ioc.get_executor(), key, dd::hash_key(key),
        [&order, &outcomes, key](distcache::error_code ec, const std::shared_ptr<const void>&) {
          order.push_back(key);
          outcomes.push_back(ec);
        });
    w->arm(flights, timeout);
    REQUIRE(flights.join(w->key(), w));
    return w->key();
  };
  make("slow", 60ms);
  make("fast", 20ms);
  make("middle", 40ms);
  const auto done = make("done", 40ms);
  CHECK(deadlines.size() == 4);
  CHECK(flights.finish(done, {}, std::make_shared<const int>(1),
                       [] { return distcache::error_code{}; }) == 1);
  CHECK(deadlines.size() == 3);
  ioc.run();  // returns once the last deadline passed: nothing re-arms the timer
  CHECK(order == std::vector<std::string>{"done", "fast", "middle", "slow"});
  CHECK_FALSE(outcomes.at(0));
  for (std::size_t i = 1; i < outcomes.size(); ++i) CHECK(outcomes[i] == distcache::errc::timeout);
  CHECK(deadlines.size() == 0);
}

TEST_CASE("a waiter destroyed before its deadline leaves the deadline sweeper") {
  boost::asio::io_context ioc;
  dd::singleflight flights;
  dd::deadline_sweeper deadlines(ioc);
  auto w = std::make_shared<dd::async_waiter>(
      deadlines, ioc.get_executor(), "k", dd::hash_key("k"),
      [](distcache::error_code, const std::shared_ptr<const void>&) {});
  w->arm(flights, 1h);
  CHECK(deadlines.size() == 1);
  w.reset();  // never joined a flight: nothing else holds it
  CHECK(deadlines.size() == 0);
  deadlines.stop();
  ioc.run();
}

TEST_CASE("dispatch_job runs the job on the given executor") {
  boost::asio::io_context ioc;
  std::atomic<bool> ran{false};
  std::thread::id where;
  dd::dispatch_job(boost::asio::any_completion_executor(ioc.get_executor()), dd::make_job([&] {
                     where = std::this_thread::get_id();
                     ran = true;
                   }));
  CHECK_FALSE(ran);  // dispatch from outside the io_context queues it
  std::thread runner([&] { ioc.run(); });
  const auto runner_id = runner.get_id();
  runner.join();
  CHECK(ran);
  CHECK(where == runner_id);
}

namespace {

struct batch_outcome {
  std::size_t index;
  distcache::error_code ec;
  std::shared_ptr<const void> value;
};

// A waiter_batch whose outcomes are recorded in `out`.
std::shared_ptr<dd::waiter_batch> make_recording_batch(boost::asio::io_context& ioc,
                                                       dd::singleflight& flights,
                                                       std::size_t capacity,
                                                       distcache::duration timeout,
                                                       std::vector<batch_outcome>& out) {
  return dd::waiter_batch::make(ioc.get_executor(), flights, capacity, timeout,
                                [&out](std::size_t i, distcache::error_code ec,
                                       std::shared_ptr<const void> v, distcache::time_point) {
                                  out.push_back({i, ec, std::move(v)});
                                });
}

auto no_publish = [] { return distcache::error_code{}; };

}  // namespace

TEST_CASE("a waiter batch completes each joined key with its flight's outcome, once") {
  boost::asio::io_context ioc;
  dd::singleflight flights;
  std::vector<batch_outcome> out;
  auto batch = make_recording_batch(ioc, flights, 3, 1h, out);
  CHECK(batch->join(0, "a", dd::hash_key("a")));        // leads "a"
  CHECK(batch->join(2, "b", dd::hash_key("b")));        // leads "b"
  CHECK_FALSE(batch->join(1, "a", dd::hash_key("a")));  // the same key twice: one flight
  batch->done_joining();
  auto value = std::make_shared<const int>(7);
  CHECK(flights.finish({"a", dd::hash_key("a")}, {}, value, no_publish) == 2);
  CHECK(flights.finish({"b", dd::hash_key("b")}, make_error_code(distcache::errc::not_found),
                       nullptr, no_publish) == 1);
  REQUIRE(out.size() == 3);
  CHECK(out[0].index == 0);
  CHECK(out[0].value == value);
  CHECK(out[1].index == 1);
  CHECK(out[1].value == value);
  CHECK(out[2].index == 2);
  CHECK(out[2].ec == distcache::errc::not_found);
  // The last completion cancelled the one-hour deadline: run() returns at once.
  batch.reset();
  CHECK(ioc.run() == 1);  // the cancelled wait's handler, nothing else
  CHECK(ioc.stopped());
}

TEST_CASE("a waiter batch's deadline times out the keys still waiting; the loads run on") {
  boost::asio::io_context ioc;
  dd::singleflight flights;
  std::vector<batch_outcome> out;
  auto batch = make_recording_batch(ioc, flights, 2, 10ms, out);
  REQUIRE(batch->join(0, "slow", dd::hash_key("slow")));
  REQUIRE(batch->join(1, "fast", dd::hash_key("fast")));
  batch->done_joining();
  CHECK(flights.finish({"fast", dd::hash_key("fast")}, {}, std::make_shared<const int>(1),
                       no_publish) == 1);
  ioc.run();  // returns after the deadline fired
  REQUIRE(out.size() == 2);
  CHECK(out[1].index == 0);
  CHECK(out[1].ec == distcache::errc::timeout);
  CHECK(flights.in_flight() == 1);  // "slow" still loads, for other callers
  CHECK(flights.finish({"slow", dd::hash_key("slow")}, {}, nullptr, no_publish) == 0);
  CHECK(out.size() == 2);
}

TEST_CASE("a key that joins a waiter batch after its deadline passed times out at once") {
  boost::asio::io_context ioc;
  dd::singleflight flights;
  std::vector<batch_outcome> out;
  auto batch = make_recording_batch(ioc, flights, 2, distcache::duration::zero(), out);
  ioc.run();  // the deadline fires before any key joined
  CHECK(out.empty());
  CHECK(batch->join(0, "k", dd::hash_key("k")));  // still the leader: the load must start
  batch->done_joining();
  REQUIRE(out.size() == 1);
  CHECK(out[0].ec == distcache::errc::timeout);
  CHECK(flights.finish({"k", dd::hash_key("k")}, {}, nullptr, no_publish) == 0);
}

TEST_CASE("a waiter batch joining a closed singleflight completes with its error") {
  boost::asio::io_context ioc;
  dd::singleflight flights;
  flights.abandon_all(make_error_code(distcache::errc::stopped));
  std::vector<batch_outcome> out;
  auto batch = make_recording_batch(ioc, flights, 1, 1h, out);
  CHECK_FALSE(batch->join(0, "k", dd::hash_key("k")));
  batch->done_joining();
  REQUIRE(out.size() == 1);
  CHECK(out[0].ec == distcache::errc::stopped);
  batch.reset();
  ioc.run();  // the deadline was cancelled: returns without waiting an hour
  CHECK(ioc.stopped());
}

// ------------------------------------------------------------------ fetch_pool

TEST_CASE("the fetch pool runs every job posted, spinning or not") {
  for (auto spin : {std::chrono::nanoseconds(0), std::chrono::nanoseconds(50us)}) {
    std::atomic<int> ran{0};
    std::mutex m;
    std::vector<std::thread::id> threads;
    {
      dd::fetch_pool pool(3, spin);
      CHECK(pool.size() == 3);
      for (int i = 0; i < 2000; ++i) {
        pool.post(dd::make_job([&] {
          ran.fetch_add(1);
          std::lock_guard lock(m);
          threads.push_back(std::this_thread::get_id());
        }));
      }
      pool.join();
      CHECK(ran.load() == 2000);
    }
    for (auto id : threads) CHECK(id != std::this_thread::get_id());
  }
}

TEST_CASE("join runs the jobs that jobs post, then ends; a job posted after runs on the caller") {
  dd::fetch_pool pool(2, 20us);
  std::atomic<int> depth{0};
  std::function<void()> chain = [&] {
    if (depth.fetch_add(1) + 1 < 100) pool.post(dd::make_job(chain));
  };
  pool.post(dd::make_job(chain));
  pool.join();
  CHECK(depth.load() == 100);
  std::thread::id where;
  pool.post(dd::make_job([&] { where = std::this_thread::get_id(); }));
  CHECK(where == std::this_thread::get_id());  // nothing lost after join
  pool.join();                                 // idempotent
}

TEST_CASE("a job posted while a thread spins is not left behind another job") {
  // Two threads: one spins (for up to 10 s), the other sleeps. Two jobs
  // posted at once: the spinner takes the first, which waits for the second
  // to start; the second must go to the sleeping thread (the spinner, busy
  // with the first, wakes it), or the first waits in vain.
  for (int round = 0; round < 50; ++round) {
    dd::fetch_pool pool(2, 10s);
    const auto ready = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < ready) {
      const auto idle = pool.idle();
      if (idle.spinning && idle.sleeping == 1) break;
      std::this_thread::yield();
    }
    REQUIRE(pool.idle().spinning);
    std::atomic<bool> second_started{false};
    std::atomic<bool> first_saw_second{false};
    std::atomic<bool> first_done{false};
    auto first = dd::make_job([&] {
      const auto deadline = std::chrono::steady_clock::now() + 5s;
      while (!second_started.load() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::yield();
      }
      first_saw_second.store(second_started.load());
      first_done.store(true);
    });
    auto second = dd::make_job([&] { second_started.store(true); });
    pool.post(std::move(first));   // back to back: the spinner sees both,
    pool.post(std::move(second));  // or takes the first before the second
    // Not join() at once: it wakes every thread, which would hide the fault.
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!first_done.load() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    pool.join();
    REQUIRE(first_saw_second.load());
  }
}
