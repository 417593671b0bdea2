#include <distcache/protection/circuit_breaker.hpp>
//
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "support/manual_clock.hpp"

using distcache::duration;
using distcache::time_point;
using distcache::protection::breaker_state;
using distcache::protection::circuit_breaker;
using distcache::protection::circuit_breaker_options;
using distcache::protection::no_circuit_breaker;
using distcache::protection::validate;
using distcache::test::manual_clock;
using namespace std::chrono_literals;

namespace {
const circuit_breaker_options three_then_30s{.failure_threshold = 3, .reset_timeout = 30s};

// Reports `n` failed calls, each allowed first.
void fail(circuit_breaker& b, int n) {
  for (int i = 0; i < n; ++i) {
    REQUIRE(b.allow());
    b.on_failure();
  }
}
}  // namespace

TEST_CASE("a breaker starts closed and lets every call through") {
  manual_clock clock;
  circuit_breaker b(three_then_30s, &clock);
  CHECK(b.state() == breaker_state::closed);
  CHECK(b.last_change() == clock.now());
  for (int i = 0; i < 100; ++i) REQUIRE(b.allow());
  CHECK(b.rejected() == 0);
  CHECK(b.consecutive_failures() == 0);
}

TEST_CASE("the breaker opens after failure_threshold consecutive failures") {
  manual_clock clock;
  circuit_breaker b(three_then_30s, &clock);
  fail(b, 2);
  CHECK(b.state() == breaker_state::closed);
  CHECK(b.consecutive_failures() == 2);
  clock.advance(1s);
  fail(b, 1);
  CHECK(b.state() == breaker_state::open);
  CHECK(b.consecutive_failures() == 3);
  CHECK(b.last_change() == clock.now());
}

TEST_CASE("a success between failures restarts the count") {
  manual_clock clock;
  circuit_breaker b(three_then_30s, &clock);
  fail(b, 2);
  REQUIRE(b.allow());
  b.on_success();
  CHECK(b.consecutive_failures() == 0);
  fail(b, 2);
  CHECK(b.state() == breaker_state::closed);
  fail(b, 1);
  CHECK(b.state() == breaker_state::open);
}

TEST_CASE("an open breaker refuses calls and counts each refusal") {
  manual_clock clock;
  circuit_breaker b(three_then_30s, &clock);
  fail(b, 3);
  const time_point opened = b.last_change();
  int calls = 0;
  for (int i = 0; i < 5; ++i) {
    if (b.allow()) ++calls;  // stands for "call the source"
  }
  CHECK(calls == 0);
  CHECK(b.rejected() == 5);
  clock.advance(30s - 1ns);
  CHECK(!b.allow());
  CHECK(b.rejected() == 6);
  CHECK(b.state() == breaker_state::open);
  CHECK(b.last_change() == opened);
}

TEST_CASE("after reset_timeout exactly one trial call is let through") {
  manual_clock clock;
  circuit_breaker b(three_then_30s, &clock);
  fail(b, 3);
  clock.advance(30s);
  CHECK(b.allow());
  CHECK(b.state() == breaker_state::half_open);
  CHECK(b.last_change() == clock.now());
  CHECK(!b.allow());  // the trial is still running
  CHECK(!b.allow());
  CHECK(b.rejected() == 2);
}

TEST_CASE("of many concurrent callers after reset_timeout, exactly one is the trial") {
  manual_clock clock;
  circuit_breaker b(three_then_30s, &clock);
  fail(b, 3);
  clock.advance(1min);
  std::atomic<int> allowed{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  threads.reserve(32);
  for (int t = 0; t < 32; ++t) {
    threads.emplace_back([&] {
      while (!go.load()) std::this_thread::yield();
      if (b.allow()) allowed.fetch_add(1);
    });
  }
  go.store(true);
  for (auto& t : threads) t.join();
  CHECK(allowed.load() == 1);
  CHECK(b.rejected() == 31);
}

TEST_CASE("a successful trial closes the breaker") {
  manual_clock clock;
  circuit_breaker b(three_then_30s, &clock);
  fail(b, 3);
  clock.advance(30s);
  REQUIRE(b.allow());
  clock.advance(2s);
  b.on_success();
  CHECK(b.state() == breaker_state::closed);
  CHECK(b.last_change() == clock.now());
  CHECK(b.consecutive_failures() == 0);
  for (int i = 0; i < 10; ++i) REQUIRE(b.allow());
  // Closed again: it takes the full threshold to reopen.
  fail(b, 2);
  CHECK(b.state() == breaker_state::closed);
}

TEST_CASE("a failed trial reopens the breaker with a fresh reset_timeout") {
  manual_clock clock;
  circuit_breaker b(three_then_30s, &clock);
  fail(b, 3);
  clock.advance(30s);
  REQUIRE(b.allow());
  clock.advance(5s);
  b.on_failure();
  CHECK(b.state() == breaker_state::open);
  const time_point reopened = clock.now();
  CHECK(b.last_change() == reopened);
  // 30 s from the reopening, not from the first opening.
  clock.advance(29s);
  CHECK(!b.allow());
  clock.advance(1s);
  CHECK(b.allow());
  CHECK(b.state() == breaker_state::half_open);
}

TEST_CASE("a neutral outcome is not a failure while closed") {
  manual_clock clock;
  circuit_breaker b(three_then_30s, &clock);
  fail(b, 2);
  for (int i = 0; i < 10; ++i) {
    REQUIRE(b.allow());
    b.on_neutral();
  }
  CHECK(b.state() == breaker_state::closed);
  // Neither counted nor a reset: one more failure reaches the threshold.
  CHECK(b.consecutive_failures() == 2);
  fail(b, 1);
  CHECK(b.state() == breaker_state::open);
}

TEST_CASE("a neutral trial frees the trial slot without changing the state") {
  manual_clock clock;
  circuit_breaker b(three_then_30s, &clock);
  fail(b, 3);
  clock.advance(30s);
  REQUIRE(b.allow());
  const time_point half_opened = b.last_change();
  CHECK(!b.allow());
  clock.advance(1s);
  b.on_neutral();
  CHECK(b.state() == breaker_state::half_open);
  CHECK(b.last_change() == half_opened);
  CHECK(b.allow());  // the next trial
  CHECK(!b.allow());
  b.on_success();
  CHECK(b.state() == breaker_state::closed);
}

TEST_CASE("an outcome reported while open is ignored") {
  manual_clock clock;
  circuit_breaker b(three_then_30s, &clock);
  // Two calls allowed while closed; the breaker opens before the second
  // reports.
  REQUIRE(b.allow());
  fail(b, 3);
  const time_point opened = b.last_change();
  clock.advance(10s);
  b.on_failure();
  CHECK(b.last_change() == opened);  // reset_timeout not restarted
  b.on_success();
  CHECK(b.state() == breaker_state::open);
  clock.advance(20s);
  CHECK(b.allow());
}

TEST_CASE("last_change moves on every transition and only then") {
  manual_clock clock;
  circuit_breaker b({.failure_threshold = 1, .reset_timeout = 10s}, &clock);
  const time_point t0 = clock.now();
  CHECK(b.last_change() == t0);
  clock.advance(1s);
  fail(b, 1);  // closed -> open
  CHECK(b.last_change() == t0 + 1s);
  clock.advance(10s);
  REQUIRE(b.allow());  // open -> half_open
  CHECK(b.last_change() == t0 + 11s);
  clock.advance(1s);
  b.on_failure();  // half_open -> open
  CHECK(b.last_change() == t0 + 12s);
  clock.advance(10s);
  REQUIRE(b.allow());  // open -> half_open
  clock.advance(1s);
  b.on_success();  // half_open -> closed
  CHECK(b.last_change() == t0 + 23s);
  clock.advance(1s);
  REQUIRE(b.allow());
  b.on_success();  // stays closed
  CHECK(b.last_change() == t0 + 23s);
}

TEST_CASE("breaker states have names") {
  CHECK(to_string(breaker_state::closed) == "closed");
  CHECK(to_string(breaker_state::open) == "open");
  CHECK(to_string(breaker_state::half_open) == "half_open");
}

TEST_CASE("no_circuit_breaker allows every call and stays closed") {
  no_circuit_breaker b(three_then_30s, nullptr);
  for (int i = 0; i < 10; ++i) {
    REQUIRE(b.allow());
    b.on_failure();
  }
  b.on_neutral();
  b.on_success();
  CHECK(b.state() == breaker_state::closed);
  CHECK(b.rejected() == 0);
  CHECK(b.consecutive_failures() == 0);
  CHECK(b.last_change() == time_point{});
}

TEST_CASE("circuit_breaker_options validation names the field and the value") {
  CHECK(validate(three_then_30s, "config.circuit_breaker").empty());
  circuit_breaker_options o = three_then_30s;
  o.failure_threshold = 0;
  CHECK(validate(o, "config.circuit_breaker") ==
        "config.circuit_breaker.failure_threshold: must be >= 1, got 0");
  o.failure_threshold = -1;
  CHECK(validate(o, "p") == "p.failure_threshold: must be >= 1, got -1");
  o = three_then_30s;
  o.reset_timeout = duration::zero();
  CHECK(validate(o, "keyspace 'users': options.circuit_breaker") ==
        "keyspace 'users': options.circuit_breaker.reset_timeout: must be > 0, got 0s");
  o.reset_timeout = -250ms;
  CHECK(validate(o, "p") == "p.reset_timeout: must be > 0, got -250ms");
}

TEST_CASE("a circuit_breaker built from invalid settings throws config_error") {
  manual_clock clock;
  try {
    circuit_breaker b({.failure_threshold = 0, .reset_timeout = 1s}, &clock);
    FAIL("no exception");
  } catch (const distcache::config_error& e) {
    CHECK(e.code() == distcache::errc::invalid_config);
    CHECK(std::string(e.what()).find("circuit_breaker.failure_threshold: must be >= 1, got 0") !=
          std::string::npos);
  }
}
