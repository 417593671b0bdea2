#include <distcache/detail/waiters.hpp>
//
#include <doctest/doctest.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <distcache/detail/handlers.hpp>
#include <distcache/detail/hash.hpp>
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

TEST_CASE("a timed waiter leaves its flight with timeout when its deadline passes") {
  boost::asio::io_context ioc;
  dd::singleflight flights;
  auto w = std::make_shared<dd::sync_waiter>(ioc.get_executor(), "k", dd::hash_key("k"));
  w->arm(flights, 10ms);
  REQUIRE(flights.join(w->key(), w));  // the leader; nobody finishes the load
  std::thread runner([&] { ioc.run(); });
  auto [ec, value] = w->wait();
  runner.join();
  CHECK(ec == distcache::errc::timeout);
  CHECK(value == nullptr);
  CHECK(flights.in_flight() == 1);  // the load's flight is still there for others
  CHECK(flights.finish(w->key(), {}, nullptr, [] { return distcache::error_code{}; }) == 0);
}

TEST_CASE("a waiter completed by its load does not time out later") {
  boost::asio::io_context ioc;
  dd::singleflight flights;
  auto w = std::make_shared<dd::sync_waiter>(ioc.get_executor(), "k", dd::hash_key("k"));
  w->arm(flights, 50ms);
  REQUIRE(flights.join(w->key(), w));
  auto value = std::make_shared<const int>(7);
  CHECK(flights.finish(w->key(), {}, value, [] { return distcache::error_code{}; }) == 1);
  auto [ec, got] = w->wait();
  CHECK_FALSE(ec);
  CHECK(got == value);
  ioc.run();  // the cancelled timer's handler runs and completes nothing twice
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
