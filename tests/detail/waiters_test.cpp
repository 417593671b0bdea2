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
