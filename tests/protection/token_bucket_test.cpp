#include <distcache/protection/token_bucket.hpp>
//
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "support/manual_clock.hpp"

using distcache::duration;
using distcache::protection::no_rate_limiter;
using distcache::protection::rate_limit;
using distcache::protection::token_bucket;
using distcache::protection::validate;
using distcache::test::manual_clock;
using namespace std::chrono_literals;

namespace {
int drain(token_bucket& b) {
  int granted = 0;
  while (b.try_acquire() == duration::zero()) ++granted;
  return granted;
}
}  // namespace

TEST_CASE("a new bucket holds burst tokens and refills at requests_per_second") {
  manual_clock clock;
  token_bucket b({.requests_per_second = 10, .burst = 5}, &clock);
  CHECK(b.tokens() == 5.0);
  for (int i = 0; i < 5; ++i) CHECK(b.try_acquire() == duration::zero());
  CHECK(b.tokens() == 0.0);
  // Empty: the 6th call is refused, takes nothing, and learns the exact wait.
  CHECK(b.try_acquire() == 100ms);
  CHECK(b.try_acquire() == 100ms);
  clock.advance(40ms);
  CHECK(b.try_acquire() == 60ms);
  clock.advance(60ms);
  CHECK(b.try_acquire() == duration::zero());
  CHECK(b.try_acquire() == 100ms);
}

TEST_CASE("refill is capped at burst after a long quiet period") {
  manual_clock clock;
  token_bucket b({.requests_per_second = 10, .burst = 5}, &clock);
  CHECK(drain(b) == 5);
  clock.advance(10s);  // 100 tokens' worth of time
  CHECK(b.tokens() == 5.0);
  CHECK(drain(b) == 5);
  CHECK(b.try_acquire() == 100ms);
}

TEST_CASE("a partly refilled bucket reports fractional tokens") {
  manual_clock clock;
  token_bucket b({.requests_per_second = 10, .burst = 5}, &clock);
  CHECK(drain(b) == 5);
  clock.advance(250ms);
  CHECK(b.tokens() == doctest::Approx(2.5));
  CHECK(drain(b) == 2);
  CHECK(b.tokens() == doctest::Approx(0.5));
  CHECK(b.try_acquire() == 50ms);
}

TEST_CASE("a fractional rate grants one call every 1 / requests_per_second") {
  manual_clock clock;
  token_bucket b({.requests_per_second = 0.5, .burst = 1}, &clock);
  CHECK(b.try_acquire() == duration::zero());
  CHECK(b.try_acquire() == 2s);
  clock.advance(1s);
  CHECK(b.tokens() == doctest::Approx(0.5));
  CHECK(b.try_acquire() == 1s);
  clock.advance(999ms);
  CHECK(b.try_acquire() == 1ms);
  clock.advance(1ms);
  CHECK(b.try_acquire() == duration::zero());
}

TEST_CASE("refill arriving in uneven steps adds up exactly") {
  manual_clock clock;
  token_bucket b({.requests_per_second = 10, .burst = 1}, &clock);
  CHECK(b.try_acquire() == duration::zero());
  // 0.03 + 0.07 is not 0.1 in binary floating point; the bucket must still
  // grant the token at exactly 100 ms.
  clock.advance(30ms);
  CHECK(b.try_acquire() == 70ms);
  clock.advance(70ms);
  CHECK(b.try_acquire() == duration::zero());
}

TEST_CASE("a long run at a rate whose interval is not a whole nanosecond does not drift") {
  manual_clock clock;
  // 3 per second: 333333333.33 ns apart. Rounding each interval up to
  // 333333334 ns, or truncating the refill at each call, would lose time
  // over 3000 calls. The bucket never fills again (a caller takes each token
  // as soon as it exists), so no refill is discarded.
  token_bucket b({.requests_per_second = 3, .burst = 2}, &clock);
  CHECK(drain(b) == 2);
  duration waited{};
  for (int i = 0; i < 3000; ++i) {
    const duration wait = b.try_acquire();
    REQUIRE(wait > duration::zero());
    REQUIRE(wait <= 333333334ns);
    clock.advance(wait);
    waited += wait;
    REQUIRE(b.try_acquire() == duration::zero());
  }
  CHECK(waited == 1000s);
}

TEST_CASE("try_acquire takes exactly one token per granted call under contention") {
  manual_clock clock;
  token_bucket b({.requests_per_second = 1, .burst = 100}, &clock);
  std::atomic<int> granted{0};
  std::vector<std::thread> threads;
  threads.reserve(8);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        if (b.try_acquire() == duration::zero()) granted.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(granted.load() == 100);
  CHECK(b.try_acquire() == 1s);
}

TEST_CASE("a null clock uses the steady clock") {
  token_bucket b({.requests_per_second = 1, .burst = 2}, nullptr);
  CHECK(b.try_acquire() == duration::zero());
  CHECK(b.try_acquire() == duration::zero());
  const duration wait = b.try_acquire();
  CHECK(wait > duration::zero());
  CHECK(wait <= 1s);
}

TEST_CASE("no_rate_limiter admits every call") {
  no_rate_limiter n({.requests_per_second = 1, .burst = 1}, nullptr);
  for (int i = 0; i < 1000; ++i) REQUIRE(n.try_acquire() == duration::zero());
  CHECK(n.tokens() == std::numeric_limits<double>::infinity());
}

TEST_CASE("rate_limit validation names the field and the value") {
  const rate_limit ok{.requests_per_second = 10, .burst = 5, .wait_timeout = 50ms};
  CHECK(validate(ok, "config.rate_limiter").empty());
  CHECK(validate(rate_limit{.requests_per_second = 0.5, .burst = 1}, "x").empty());

  rate_limit r = ok;
  r.requests_per_second = 0;
  CHECK(validate(r, "config.rate_limiter") ==
        "config.rate_limiter.requests_per_second: must be > 0, got 0");
  r.requests_per_second = -2.5;
  CHECK(validate(r, "config.rate_limiter") ==
        "config.rate_limiter.requests_per_second: must be > 0, got -2.5");
  r.requests_per_second = std::nan("");
  CHECK(validate(r, "config.rate_limiter") ==
        "config.rate_limiter.requests_per_second: must be a finite number > 0, got nan");
  r.requests_per_second = std::numeric_limits<double>::infinity();
  CHECK(validate(r, "config.rate_limiter") ==
        "config.rate_limiter.requests_per_second: must be a finite number > 0, got inf");

  r = ok;
  r.burst = 0;
  CHECK(validate(r, "keyspace 'users': options.rate_limiter") ==
        "keyspace 'users': options.rate_limiter.burst: must be >= 1, got 0");
  r.burst = -3;
  CHECK(validate(r, "p") == "p.burst: must be >= 1, got -3");

  r = ok;
  r.wait_timeout = -1s;
  CHECK(validate(r, "p") == "p.wait_timeout: must be >= 0, got -1s");
  r.wait_timeout = duration::zero();
  CHECK(validate(r, "p").empty());
}

TEST_CASE("a token_bucket built from invalid settings throws config_error") {
  manual_clock clock;
  try {
    token_bucket b({.requests_per_second = 10, .burst = 0}, &clock);
    FAIL("no exception");
  } catch (const distcache::config_error& e) {
    CHECK(e.code() == distcache::errc::invalid_config);
    CHECK(std::string(e.what()).find("rate_limit.burst: must be >= 1, got 0") != std::string::npos);
  }
}
