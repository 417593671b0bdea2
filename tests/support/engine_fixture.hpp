// The engine tests' common fixture: an engine started over `users`
// (scripted source) and `lengths` (counting source) with a manual clock.
#ifndef DISTCACHE_TESTS_SUPPORT_ENGINE_FIXTURE_HPP
#define DISTCACHE_TESTS_SUPPORT_ENGINE_FIXTURE_HPP

#include <doctest/doctest.h>

#include <atomic>
#include <memory>

#include "support/keyspaces.hpp"
#include "support/manual_clock.hpp"

namespace distcache::test {

inline config small_config() {
  config c;
  c.threads = 2;
  c.fetch_threads = 4;
  return c;
}

/// An engine started over `users` (scripted) and `lengths` (counting).
struct fixture {
  users u;
  lengths l;
  std::shared_ptr<source_state> src = u.source.state;
  std::shared_ptr<std::atomic<int>> length_calls = l.source.calls;
  std::shared_ptr<manual_clock> clock = std::make_shared<manual_clock>();
  std::unique_ptr<test_engine> e;

  explicit fixture(config c = small_config()) {
    c.clock = clock;
    e = std::make_unique<test_engine>(std::move(c), u, l);
    REQUIRE(e->start());
  }
};

}  // namespace distcache::test

// The names every engine test uses (tests/engine/*_test.cpp include this
// header only).
using distcache::config;
using distcache::errc;
using distcache::error_code;
using distcache::test::eventually;
using distcache::test::fixture;
using distcache::test::lengths;
using distcache::test::small_config;
using distcache::test::test_engine;
using distcache::test::users;
namespace net = boost::asio;
using namespace std::chrono_literals;

#endif  // DISTCACHE_TESTS_SUPPORT_ENGINE_FIXTURE_HPP
