// The protection policies inside a running engine, driven by a manual clock.
#include <distcache/engine.hpp>
#include <distcache/transport/http.hpp>
//
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/use_future.hpp>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support/keyspaces.hpp"
#include "support/manual_clock.hpp"

using distcache::config;
using distcache::errc;
using distcache::test::eventually;
using distcache::test::lengths;
using distcache::test::users;
using namespace std::chrono_literals;

namespace {

using protected_engine = distcache::basic_engine<
    distcache::policies<distcache::discovery::standalone, distcache::transport::http,
                        distcache::protection::token_bucket,
                        distcache::protection::circuit_breaker>,
    users, lengths>;

struct fixture {
  users u;
  std::shared_ptr<distcache::test::source_state> src = u.source.state;
  std::shared_ptr<distcache::test::manual_clock> clock =
      std::make_shared<distcache::test::manual_clock>();
  std::unique_ptr<protected_engine> e;

  explicit fixture(config c) {
    c.threads = 2;
    c.fetch_threads = 8;
    c.clock = clock;
    e = std::make_unique<protected_engine>(std::move(c), u, lengths{});
    REQUIRE(e->start());
  }
};

config with_rate(double rps, std::int64_t burst, distcache::duration wait = 0s) {
  config c;
  c.rate_limiter = distcache::protection::rate_limit{rps, burst, wait};
  return c;
}

}  // namespace

TEST_CASE("rate limiter: burst, immediate denial with wait_timeout 0, refill at the rate") {
  fixture f(with_rate(10, 2));
  for (int i = 0; i < 10; ++i) f.src->set("k" + std::to_string(i), "v");
  CHECK(f.e->get<users>("k0"));
  CHECK(f.e->get<users>("k1"));
  CHECK(f.e->get<users>("k2").error() == errc::data_source_rate_limited);
  CHECK(f.src->calls == 2);  // the refused call never reached the source
  f.clock->advance(99ms);
  CHECK(f.e->get<users>("k2").error() == errc::data_source_rate_limited);
  f.clock->advance(1ms);  // 100 ms at 10/s: one token
  CHECK(f.e->get<users>("k2"));
  CHECK(f.e->get<users>("k3").error() == errc::data_source_rate_limited);
  CHECK(f.e->stats<users>().rate_limited == 3);
}

TEST_CASE("rate limiter: cache hits are never limited") {
  fixture f(with_rate(1, 1));
  f.src->set("a", "v");
  CHECK(f.e->get<users>("a"));
  for (int i = 0; i < 50; ++i) CHECK(f.e->get<users>("a"));
  CHECK(f.src->calls == 1);
}

TEST_CASE("rate limiter: a waiting call gets its token when the clock reaches it") {
  fixture f(with_rate(10, 1, 1s));
  f.src->set("a", "1");
  f.src->set("b", "2");
  CHECK(f.e->get<users>("a"));
  auto pending = f.e->async_get<users>("b", boost::asio::use_future);
  // The call waits (on a timer, not on a network thread) for the next token.
  CHECK(pending.wait_for(50ms) == std::future_status::timeout);
  CHECK(f.src->calls == 1);
  f.clock->advance(100ms);
  CHECK(*pending.get() == "2");
  CHECK(f.src->calls == 2);
}

TEST_CASE("fetch_on_caller_thread: a call that waited for a token runs on the pool") {
  config c = with_rate(10, 1, 1s);
  c.fetch_on_caller_thread = true;
  fixture f(c);
  f.src->set("a", "1");
  f.src->set("b", "2");
  CHECK(f.e->get<users>("a"));  // the token there: fetched on this thread
  CHECK(f.src->thread_of("a") == std::this_thread::get_id());
  // The next token comes 100 ms later (manual clock): the blocking get
  // waits on a timer of an engine thread, and its call must not run there.
  // Both engine threads (config.threads = 2): each runs one of two handlers
  // that wait for each other.
  std::array<std::thread::id, 2> engine_ids{};
  std::atomic<int> arrived{0};
  std::atomic<int> left{0};
  for (int i = 0; i < 2; ++i) {
    boost::asio::post(f.e->get_executor(), [&] {
      engine_ids.at(static_cast<std::size_t>(arrived.fetch_add(1))) = std::this_thread::get_id();
      (void)eventually([&] { return arrived == 2; });
      ++left;
    });
  }
  REQUIRE(eventually([&] { return left == 2; }));
  REQUIRE(engine_ids[0] != engine_ids[1]);
  auto pending = std::async(std::launch::async, [&] { return f.e->get<users>("b"); });
  CHECK(pending.wait_for(50ms) == std::future_status::timeout);
  f.clock->advance(100ms);
  auto r = pending.get();
  REQUIRE(r);
  CHECK(**r == "2");
  CHECK(f.src->thread_of("b") != std::thread::id{});
  CHECK(f.src->thread_of("b") != engine_ids[0]);
  CHECK(f.src->thread_of("b") != engine_ids[1]);
}

TEST_CASE("rate limiter: a call whose token comes after wait_timeout is refused at once") {
  fixture f(with_rate(1, 1, 500ms));  // next token in 1 s
  f.src->set("a", "1");
  f.src->set("b", "2");
  CHECK(f.e->get<users>("a"));
  auto r = f.e->get<users>("b");
  CHECK(r.error() == errc::data_source_rate_limited);
  CHECK(r.error().message().find("rate limit") != std::string::npos);
}

TEST_CASE("rate limiter: 100 concurrent misses of one key consume one token") {
  fixture f(with_rate(1, 1));
  f.src->set("hot", "v");
  f.src->set("other", "v");
  f.src->close_gate();
  std::vector<std::thread> callers;
  callers.reserve(100);
  std::atomic<int> ok{0};
  for (int i = 0; i < 100; ++i) {
    callers.emplace_back([&] {
      if (f.e->get<users>("hot")) ok.fetch_add(1);
    });
  }
  CHECK(eventually([&] { return f.e->stats<users>().loads == 100; }));
  f.src->open_gate();
  for (auto& t : callers) t.join();
  CHECK(ok == 100);
  CHECK(f.src->calls == 1);
  // The single token is spent: a different key is refused.
  CHECK(f.e->get<users>("other").error() == errc::data_source_rate_limited);
}

TEST_CASE("a per-keyspace rate limit replaces the engine's for that keyspace") {
  config c = with_rate(1, 1);
  c.keyspaces["users"].rate_limiter = distcache::protection::rate_limit{1, 5, 0s};
  fixture f(c);
  for (int i = 0; i < 6; ++i) f.src->set("u" + std::to_string(i), "v");
  for (int i = 0; i < 5; ++i) CHECK(f.e->get<users>("u" + std::to_string(i)));
  CHECK(f.e->get<users>("u5").error() == errc::data_source_rate_limited);
  CHECK(f.e->get<lengths>("a"));
  CHECK(f.e->get<lengths>("bb").error() == errc::data_source_rate_limited);
}

namespace {
config with_breaker(int threshold, distcache::duration reset) {
  config c;
  c.circuit_breaker = distcache::protection::circuit_breaker_options{threshold, reset};
  return c;
}
}  // namespace

TEST_CASE("circuit breaker: opens after N failures, rejects without calling, half-opens, closes") {
  fixture f(with_breaker(3, 10s));
  f.src->fail = true;
  for (int i = 0; i < 3; ++i) {
    CHECK(f.e->get<users>("k" + std::to_string(i)).error() == errc::data_source_failed);
  }
  CHECK(f.e->stats<users>().circuit_state == distcache::protection::breaker_state::open);
  const auto opened_at = f.e->stats<users>().circuit_last_change;
  CHECK(f.e->get<users>("k9").error() == errc::data_source_circuit_open);
  CHECK(f.src->calls == 3);  // rejected without touching the source
  CHECK(f.e->stats<users>().circuit_rejected == 1);
  f.src->fail = false;
  f.src->set("k9", "back");
  f.clock->advance(10s);
  CHECK(**f.e->get<users>("k9") == "back");  // the one trial call
  CHECK(f.e->stats<users>().circuit_state == distcache::protection::breaker_state::closed);
  CHECK(f.e->stats<users>().circuit_last_change > opened_at);
  // Cached keys keep serving whatever the breaker does.
  CHECK(**f.e->get<users>("k9") == "back");
}

TEST_CASE("circuit breaker: a failed trial opens it again for another reset_timeout") {
  fixture f(with_breaker(1, 5s));
  f.src->fail = true;
  CHECK(f.e->get<users>("a").error() == errc::data_source_failed);
  CHECK(f.e->get<users>("a").error() == errc::data_source_circuit_open);
  f.clock->advance(5s);
  CHECK(f.e->get<users>("a").error() == errc::data_source_failed);  // the trial fails
  CHECK(f.e->stats<users>().circuit_state == distcache::protection::breaker_state::open);
  CHECK(f.e->get<users>("a").error() == errc::data_source_circuit_open);
  CHECK(f.src->calls == 2);
}

TEST_CASE("circuit breaker: not_found answers are not failures") {
  fixture f(with_breaker(2, 5s));
  for (int i = 0; i < 10; ++i) {
    CHECK(f.e->get<users>("missing" + std::to_string(i)).error() == errc::not_found);
  }
  CHECK(f.e->stats<users>().circuit_state == distcache::protection::breaker_state::closed);
  CHECK(f.src->calls == 10);
}

TEST_CASE("circuit breaker: an exception from the source counts as a failure") {
  fixture f(with_breaker(2, 5s));
  f.src->do_throw = true;
  CHECK(f.e->get<users>("a").error() == errc::data_source_failed);
  CHECK(f.e->get<users>("b").error() == errc::data_source_failed);
  CHECK(f.e->get<users>("c").error() == errc::data_source_circuit_open);
}

TEST_CASE("the concurrency limit is never exceeded by 64 callers of distinct keys") {
  config c;
  c.max_concurrent_fetches = 4;
  fixture f(c);
  for (int i = 0; i < 64; ++i) f.src->set("k" + std::to_string(i), "v");
  f.src->close_gate();
  std::vector<std::thread> callers;
  callers.reserve(64);
  std::atomic<int> ok{0};
  for (int i = 0; i < 64; ++i) {
    callers.emplace_back([&, i] {
      if (f.e->get<users>("k" + std::to_string(i))) ok.fetch_add(1);
    });
  }
  CHECK(eventually([&] { return f.e->stats<users>().fetches_queued == 60; }));
  CHECK(f.e->stats<users>().fetches_in_flight == 4);
  // The 4 admitted loads are posted to the pool: wait until they are inside
  // the source, or on a loaded machine the gate could open before they enter
  // and the source would never see 4 at once.
  CHECK(eventually([&] { return f.src->in_flight == 4; }));
  f.src->open_gate();
  for (auto& t : callers) t.join();
  CHECK(ok == 64);
  CHECK(f.src->max_in_flight == 4);
  CHECK(f.src->calls == 64);
}

TEST_CASE("a hung data source: gets time out; the queue keeps the last read_timeout of loads") {
  // Every fetch blocks (the gate never opens while the test submits): the 2
  // slots stay taken, and each new key's load queues. A load queued longer
  // than read_timeout is dropped as soon as the queue moves, so the queue
  // (and the flights it holds) stay bounded however long the source hangs.
  config c;
  c.max_concurrent_fetches = 2;
  c.read_timeout = 20ms;
  fixture f(c);
  f.src->close_gate();
  std::atomic<int> timeouts{0};
  std::atomic<int> completed{0};
  auto ask = [&](int i) {
    f.e->async_get<users>("hung:" + std::to_string(i),
                          [&](distcache::error_code ec, const distcache::value_ptr<std::string>&) {
                            if (ec == errc::timeout) timeouts.fetch_add(1);
                            completed.fetch_add(1);
                          });
  };
  for (int i = 0; i < 200; ++i) ask(i);
  REQUIRE(eventually([&] { return completed == 200; }));  // each after its read_timeout
  CHECK(timeouts == 200);
  CHECK(f.e->stats<users>().fetches_in_flight == 2);
  CHECK(f.e->stats<users>().fetches_queued == 198);  // nothing moved the queue since
  // One more load, once the queued ones are older than read_timeout: the
  // queue is swept before it joins it.
  int next = 200;
  CHECK(eventually([&] {
    ask(next++);
    const bool swept = f.e->stats<users>().fetches_queued < 10;
    REQUIRE(eventually([&] { return completed == next; }));
    return swept;
  }));
  CHECK(f.src->calls <= 2);  // the hung calls only: no queued load reached the source
  f.src->open_gate();
}

TEST_CASE("max_queued_fetches: loads beyond the queue are refused at once with overloaded") {
  config c;
  c.max_concurrent_fetches = 2;
  c.max_queued_fetches = 3;
  c.read_timeout = 10s;  // nothing here waits for it
  fixture f(c);
  for (int i = 0; i < 8; ++i) f.src->set("busy:" + std::to_string(i), "v");
  f.src->close_gate();
  std::mutex mutex;
  std::vector<distcache::error_code> outcomes;
  for (int i = 0; i < 8; ++i) {
    f.e->async_get<users>("busy:" + std::to_string(i),
                          [&](distcache::error_code ec, const distcache::value_ptr<std::string>&) {
                            std::lock_guard lock(mutex);
                            outcomes.push_back(ec);
                          });
  }
  // 2 running, 3 queued, 3 refused at once (the source still blocked).
  REQUIRE(eventually([&] {
    std::lock_guard lock(mutex);
    return outcomes.size() == 3;
  }));
  {
    std::lock_guard lock(mutex);
    for (const auto& ec : outcomes) CHECK(ec == errc::overloaded);
  }
  CHECK(f.e->stats<users>().overloaded == 3);
  CHECK(f.e->stats<users>().fetches_queued == 3);
  CHECK(f.e->stats<users>().local_load_errs == 0);  // not a failure of the source
  f.src->open_gate();
  REQUIRE(eventually([&] {
    std::lock_guard lock(mutex);
    return outcomes.size() == 8;
  }));
  std::lock_guard lock(mutex);
  CHECK(std::count(outcomes.begin(), outcomes.end(), distcache::error_code{}) == 5);
  CHECK(f.src->calls == 5);
}

TEST_CASE("protection settings are validated and name the keyspace and field") {
  auto rejection = [](const config& c) -> std::string {
    try {
      protected_engine e(c, users{}, lengths{});
      return {};
    } catch (const distcache::config_error& e) {
      return e.what();
    }
  };
  CHECK(rejection(with_rate(0, 1)).find("config.rate_limiter.requests_per_second") !=
        std::string::npos);
  CHECK(rejection(with_rate(10, 0)).find("config.rate_limiter.burst: must be >= 1, got 0") !=
        std::string::npos);
  CHECK(rejection(with_rate(10, 1, -1s)).find("config.rate_limiter.wait_timeout") !=
        std::string::npos);
  CHECK(rejection(with_breaker(0, 1s)).find("config.circuit_breaker.failure_threshold") !=
        std::string::npos);
  CHECK(rejection(with_breaker(1, 0s)).find("config.circuit_breaker.reset_timeout") !=
        std::string::npos);
  config c;
  c.keyspaces["users"].rate_limiter = distcache::protection::rate_limit{10, 0, 0s};
  CHECK(rejection(c).find("keyspace 'users': options.rate_limiter.burst") != std::string::npos);
}

TEST_CASE("a protection setting without the matching policy is rejected, not ignored") {
  try {
    distcache::test::test_engine e(with_rate(10, 1), users{}, lengths{});
    FAIL("expected config_error");
  } catch (const distcache::config_error& e) {
    CHECK(std::string(e.what()).find("RateLimiter policy") != std::string::npos);
  }
}

TEST_CASE("an invalid engine-level setting is reported even when every keyspace overrides it") {
  config c = with_rate(0, 1);
  c.keyspaces["users"].rate_limiter = distcache::protection::rate_limit{1, 1, 0s};
  c.keyspaces["lengths"].rate_limiter = distcache::protection::rate_limit{1, 1, 0s};
  CHECK_THROWS_WITH_AS(protected_engine(c, users{}, lengths{}),
                       doctest::Contains("config.rate_limiter.requests_per_second"),
                       distcache::config_error);
}
