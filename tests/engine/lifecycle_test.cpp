// basic_engine: start, stop, threads, and the async forms with every token.
#include <distcache/engine.hpp>
//
#include <doctest/doctest.h>

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <ctime>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "support/engine_fixture.hpp"

TEST_CASE("operations before start() and after stop() fail with clear errors") {
  distcache::test::test_engine e{small_config(), users{}, lengths{}};
  CHECK(e.get<users>("k").error() == errc::not_started);
  CHECK(e.put<users>("k", "v").error() == errc::not_started);
  CHECK(e.remove<users>("k").error() == errc::not_started);
  CHECK(e.delete_keyspace("users").error() == errc::not_started);
  CHECK(e.update_keyspace(users{}).error() == errc::not_started);
  auto fut = e.async_get<users>("k", net::use_future);
  CHECK_THROWS_AS((void)fut.get(), boost::system::system_error);
  REQUIRE(e.start());
  REQUIRE(e.start());  // a second start is a no-op
  REQUIRE(e.stop());
  CHECK(e.get<users>("k").error() == errc::stopped);
  CHECK(e.get_many<users>(std::vector<std::string>{"k"}).error() == errc::stopped);
  CHECK(e.put<users>("k", "v").error() == errc::stopped);
  CHECK(e.start().error() == errc::stopped);
  std::promise<error_code> p;
  e.async_remove<users>("k", [&](error_code ec) { p.set_value(ec); });
  CHECK(p.get_future().get() == errc::stopped);
  REQUIRE(e.stop());  // a second stop is a no-op
}

TEST_CASE("stop() completes waiting callers with stopped") {
  fixture f;
  f.src->close_gate();
  auto pending = f.e->async_get<users>("k", net::use_future);
  CHECK(eventually([&] { return f.src->in_flight == 1; }));
  std::thread opener([&] {
    // The running fetch is waited for by stop(); let it end once stop began.
    CHECK(eventually([&] { return pending.wait_for(0s) == std::future_status::ready; }));
    f.src->open_gate();
  });
  REQUIRE(f.e->stop());
  opener.join();
  try {
    (void)pending.get();
    FAIL("expected stopped");
  } catch (const boost::system::system_error& e) {
    CHECK(e.code() == errc::stopped);
  }
}

TEST_CASE("stop() calls the data source for no caller it has answered: queued loads are dropped") {
  auto c = small_config();
  c.fetch_threads = 2;
  fixture f(c);
  f.src->close_gate();
  std::vector<decltype(f.e->async_get<users>("k", net::use_future))> pending;
  pending.reserve(6);
  for (int i = 0; i < 6; ++i) {
    pending.push_back(f.e->async_get<users>("k" + std::to_string(i), net::use_future));
  }
  REQUIRE(eventually([&] { return f.src->in_flight == 2; }));  // 2 running, 4 queued on the pool
  std::thread opener([&] {
    // Once stop() has answered every caller it waits for the 2 running fetches.
    CHECK(eventually([&] {
      return std::all_of(pending.begin(), pending.end(),
                         [](auto& p) { return p.wait_for(0s) == std::future_status::ready; });
    }));
    f.src->open_gate();
  });
  REQUIRE(f.e->stop());
  opener.join();
  CHECK(f.src->calls == 2);  // not 6: the queued loads never reached the source
  for (auto& p : pending) CHECK_THROWS_AS((void)p.get(), boost::system::system_error);
}

namespace {
struct probe_source {
  std::shared_ptr<std::function<bool()>> on_io_thread = std::make_shared<std::function<bool()>>();
  std::shared_ptr<std::atomic<int>> seen_on_io = std::make_shared<std::atomic<int>>(0);
  distcache::fetch_result<std::string> fetch(std::string_view) {
    if ((*on_io_thread)()) seen_on_io->fetch_add(1);
    return std::string("v");
  }
};
struct probed {
  static constexpr std::string_view name = "probed";
  using value_type = std::string;
  std::int64_t max_bytes = 1 << 20;
  probe_source source;
};
}  // namespace

TEST_CASE("the data source runs on the blocking pool, never on an engine network thread") {
  probed p;
  distcache::engine<probed> e{small_config(), p};
  *p.source.on_io_thread = [&e] { return e.get_executor().running_in_this_thread(); };
  REQUIRE(e.start());
  for (int i = 0; i < 20; ++i) REQUIRE(e.get<probed>("k" + std::to_string(i)));
  CHECK(*p.source.seen_on_io == 0);
}

TEST_CASE("blocking calls on an engine thread are refused instead of deadlocking") {
  fixture f;
  std::promise<error_code> p;
  f.e->async_put<users>("k", "v", 0s, [&](error_code) {
    // This handler runs on an engine thread.
    auto r = f.e->get<users>("k");
    p.set_value(r ? error_code{} : r.error());
  });
  CHECK(p.get_future().get() == errc::blocking_call_on_engine_thread);
}

TEST_CASE("async forms work with callbacks") {
  fixture f;
  f.src->set("k", "v");
  std::promise<std::string> got;
  f.e->async_get<users>("k", [&](error_code ec, const distcache::value_ptr<std::string>& v) {
    got.set_value(ec ? ec.message() : *v);
  });
  CHECK(got.get_future().get() == "v");
  std::promise<error_code> put_done;
  f.e->async_put<users>("p", "pv", 0s, [&](error_code ec) { put_done.set_value(ec); });
  CHECK(!put_done.get_future().get());
  std::promise<std::size_t> many;
  f.e->async_get_many<users>(std::vector<std::string>{"k", "p"},
                             [&](error_code, auto results) { many.set_value(results.size()); });
  CHECK(many.get_future().get() == 2);
}

TEST_CASE("async forms work with use_future") {
  fixture f;
  f.src->set("k", "v");
  CHECK(*f.e->async_get<users>("k", net::use_future).get() == "v");
  f.e->async_put<users>("p", "pv", 0s, net::use_future).get();
  std::vector<std::pair<std::string, std::string>> entries{{"m1", "1"}, {"m2", "2"}};
  f.e->async_put_many<users>(entries, 0s, net::use_future).get();
  auto many =
      f.e->async_get_many<users>(std::vector<std::string>{"m1", "m2", "p"}, net::use_future).get();
  CHECK(*many[2].value() == "pv");
  f.e->async_remove<users>("p", net::use_future).get();
  f.e->async_remove_many<users>(std::vector<std::string>{"m1"}, net::use_future).get();
  CHECK(f.e->stats<users>().removed_keys == 2);
  f.e->async_update_keyspace(lengths{}, net::use_future).get();
  f.e->async_delete_keyspace("lengths", net::use_future).get();
  f.e->async_delete_keyspaces(std::vector<std::string>{"users"}, net::use_future).get();
  CHECK(f.e->keyspaces().empty());
  CHECK_THROWS_AS(f.e->async_delete_keyspace("users", net::use_future).get(),
                  boost::system::system_error);
}

TEST_CASE("async forms work with use_awaitable") {
  fixture f;
  f.src->set("k", "v");
  auto& e = *f.e;
  auto task = [&]() -> net::awaitable<std::string> {
    auto v = co_await e.async_get<users>("k", net::use_awaitable);
    co_await e.async_put<users>("p", *v + "!", 0s, net::use_awaitable);
    auto p = co_await e.async_get<users>("p", net::use_awaitable);
    // A named vector: GCC 12 miscompiles an initializer list inside co_await.
    const std::vector<std::string> keys{"k", "p"};
    auto many = co_await e.async_get_many<users>(keys, net::use_awaitable);
    co_await e.async_remove<users>("p", net::use_awaitable);
    error_code ec;
    co_await e.async_get<users>("", net::redirect_error(net::use_awaitable, ec));
    if (ec != errc::invalid_key) co_return std::string("wrong error: ") + ec.message();
    co_return *p + std::to_string(many.size());
  };
  auto result = net::co_spawn(e.get_executor(), task(), net::use_future);
  CHECK(result.get() == "v!2");
  CHECK(f.e->stats<users>().removed_keys == 1);
}

TEST_CASE("async_start and a start error through a completion token") {
  distcache::test::test_engine e{small_config(), users{}, lengths{}};
  e.async_start(net::use_future).get();
  REQUIRE(e.stop());
  std::promise<error_code> p;
  e.async_start([&](error_code ec) { p.set_value(ec); });
  CHECK(p.get_future().get() == errc::stopped);
}

namespace {

/// CPU time the thread with CPU clock `id` has run.
std::chrono::nanoseconds cpu_time(clockid_t id) {
  timespec ts{};
  ::clock_gettime(id, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

/// The CPU clock of the io thread that runs a handler posted to `e`.
clockid_t io_thread_clock(test_engine& e) {
  std::promise<clockid_t> id;
  net::post(e.get_executor(), [&id] {
    clockid_t c{};
    ::pthread_getcpuclockid(::pthread_self(), &c);
    id.set_value(c);
  });
  return id.get_future().get();
}

}  // namespace

TEST_CASE("io_spin: an idle io thread polls for io_spin after its work, then sleeps") {
  config c = small_config();
  c.threads = 1;
  c.io_spin = 10ms;
  fixture f(c);
  const clockid_t io = io_thread_clock(*f.e);
  // Each handler is followed by 10 ms of polling: the thread runs while idle
  // (without io_spin it would sleep at once and run next to nothing).
  const auto before = cpu_time(io);
  net::post(f.e->get_executor(), [] {});
  CHECK(eventually([&] { return cpu_time(io) - before >= 5ms; }));
  // ... and then sleeps: over 20 ms of wall-clock time, its CPU time grows
  // by far less (a window that saw more starts again, until the deadline).
  auto window_start = std::chrono::steady_clock::now();
  auto cpu_at_start = cpu_time(io);
  CHECK(eventually([&] {
    const auto wall = std::chrono::steady_clock::now();
    if (wall - window_start < 20ms) return false;
    const bool asleep = cpu_time(io) - cpu_at_start < 5ms;
    window_start = wall;
    cpu_at_start = cpu_time(io);
    return asleep;
  }));
  // Work is still served at once, and stop() ends the polling loop.
  REQUIRE(f.e->put<users>("k", std::string("v")));
  auto got = f.e->async_get<users>("k", net::use_future);
  CHECK(*got.get() == "v");
  CHECK(f.e->stop());
}
