// basic_engine: put, put_many and expiry; a put racing a load.
#include <distcache/engine.hpp>
//
#include <doctest/doctest.h>

#include <atomic>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "support/engine_fixture.hpp"

TEST_CASE("put then get returns the put value without calling the source") {
  fixture f;
  REQUIRE(f.e->put<users>("user:2", "Grace"));
  CHECK(**f.e->get<users>("user:2") == "Grace");
  REQUIRE(f.e->put<users>("user:2", "Hopper"));
  CHECK(**f.e->get<users>("user:2") == "Hopper");
  CHECK(f.src->calls == 0);
}

TEST_CASE("put of one entry on a node alone refuses each bad input and stores nothing") {
  // The put that ends on the caller's thread (engine_core::put_now).
  fixture f;
  CHECK(f.e->put<users>("k", "v", -1s).error() == errc::invalid_config);
  CHECK(f.e->put<users>("", "v").error() == errc::invalid_key);
  CHECK(f.e->put<users>(std::string(100'000, 'k'), "v").error() == errc::invalid_key);
  CHECK(f.e->stats<users>().main_cache_items == 0);
  std::promise<error_code> on_engine_thread;
  f.e->async_get<users>("absent", [&](error_code, const distcache::value_ptr<std::string>&) {
    auto r = f.e->put<users>("k", "v");
    on_engine_thread.set_value(r ? error_code{} : r.error());
  });
  CHECK(on_engine_thread.get_future().get() == errc::blocking_call_on_engine_thread);
  CHECK(f.e->stats<users>().main_cache_items == 0);
  f.e->stop();
  CHECK(f.e->put<users>("k", "v").error() == errc::stopped);
}

TEST_CASE("expiry: put ttl, keyspace default ttl and engine default ttl (manual clock)") {
  config c = small_config();
  c.default_ttl = 100s;
  c.keyspaces["users"].default_ttl = 10s;
  fixture f(c);
  f.src->set("a", "from-source");
  REQUIRE(f.e->put<users>("p", "short", 2s));
  REQUIRE(f.e->get<users>("a"));      // loaded: keyspace default 10s
  REQUIRE(f.e->get<lengths>("xyz"));  // loaded: engine default 100s
  f.clock->advance(2s);
  CHECK(f.e->get<users>("p").error() == errc::not_found);  // expired, source has no "p"
  f.clock->advance(7s);
  REQUIRE(f.e->get<users>("a"));
  CHECK(f.src->calls == 2);  // "a" once, "p" once
  f.clock->advance(1s);
  REQUIRE(f.e->get<users>("a"));
  CHECK(f.src->calls == 3);  // "a" expired after 10s and was loaded again
  f.clock->advance(89s);
  REQUIRE(f.e->get<lengths>("xyz"));
  CHECK(*f.length_calls == 1);
  f.clock->advance(1s);
  REQUIRE(f.e->get<lengths>("xyz"));
  CHECK(*f.length_calls == 2);
}

namespace {
/// A keyspace whose expires_at() says when each key expires.
struct sessions {
  static constexpr std::string_view name = "sessions";
  using value_type = std::string;
  std::int64_t max_bytes = 1 << 20;
  distcache::test::scripted_source source;
  std::shared_ptr<distcache::test::manual_clock> clock;
  distcache::time_point expires_at(std::string_view key) const {
    return key == "forever" ? distcache::never_expires : clock->now() + 5s;
  }
};
}  // namespace

TEST_CASE("a keyspace's expires_at wins over the default ttl; put's ttl wins over both") {
  auto clock = std::make_shared<distcache::test::manual_clock>();
  sessions s;
  s.clock = clock;
  s.source.state->set("k", "v");
  s.source.state->set("forever", "v");
  config c = small_config();
  c.clock = clock;
  c.default_ttl = 1s;
  distcache::engine<sessions> e{c, s};
  REQUIRE(e.start());
  REQUIRE(e.get<sessions>("k"));
  REQUIRE(e.get<sessions>("forever"));
  REQUIRE(e.put<sessions>("put", "x", 60s));
  clock->advance(4s);
  REQUIRE(e.get<sessions>("k"));
  CHECK(s.source.state->calls == 2);  // not expired after 4s although default_ttl is 1s
  clock->advance(1s);
  REQUIRE(e.get<sessions>("k"));
  CHECK(s.source.state->calls == 3);  // expired at 5s
  clock->advance(1000h);
  REQUIRE(e.get<sessions>("forever"));
  CHECK(s.source.state->calls == 3);
  CHECK(e.get<sessions>("put").error() == errc::not_found);  // 60s put ttl passed
}

TEST_CASE("a put during a load is not overwritten by the older loaded value") {
  fixture f;
  f.src->set("k", "old");
  f.src->close_gate();
  auto pending = f.e->async_get<users>("k", net::use_future);
  CHECK(eventually([&] { return f.src->in_flight == 1; }));
  REQUIRE(f.e->put<users>("k", "new"));
  f.src->open_gate();
  CHECK(*pending.get() == "old");  // the waiter gets what it asked the source for
  CHECK(**f.e->get<users>("k") == "new");
  CHECK(f.src->calls == 1);
}

TEST_CASE("put_many stores every entry, or nothing when one is bad") {
  fixture f;
  std::vector<std::pair<std::string, std::string>> entries{{"x", "1"}, {"y", "2"}};
  REQUIRE(f.e->put_many<users>(entries));
  CHECK(entries[0].second == "1");  // the caller's values are copied, not moved from
  CHECK(**f.e->get<users>("y") == "2");
  std::vector<std::pair<std::string, std::string>> bad{{"z", "3"}, {"", "4"}};
  CHECK(f.e->put_many<users>(bad).error() == errc::invalid_key);
  CHECK(f.e->get<users>("z").error() == errc::not_found);
  std::vector<std::pair<std::string, std::string>> huge{{"w", "5"},
                                                        {"big", std::string(2 << 20, 'x')}};
  CHECK(f.e->put_many<users>(huge).error() == errc::value_too_large);
  CHECK(f.e->get<users>("w").error() == errc::not_found);
  CHECK(f.e->put_many<users>(entries, -1s).error() == errc::invalid_config);
}

TEST_CASE("a value larger than the keyspace budget is refused by put and by a load") {
  users u;
  u.max_bytes = 4096;
  u.source.state->set("big", std::string(10000, 'x'));
  distcache::test::test_engine e{small_config(), u, lengths{}};
  REQUIRE(e.start());
  CHECK(e.put<users>("p", std::string(10000, 'y')).error() == errc::value_too_large);
  CHECK(e.get<users>("big").error() == errc::value_too_large);
  REQUIRE(e.put<users>("small", "fits"));
  CHECK(**e.get<users>("small") == "fits");
}

TEST_CASE("the main cache never holds more than its budget") {
  users u;
  u.max_bytes = 64 << 10;
  distcache::test::test_engine e{small_config(), u, lengths{}};
  REQUIRE(e.start());
  for (int i = 0; i < 2000; ++i) {
    REQUIRE(e.put<users>("key" + std::to_string(i), std::string(100 + i % 300, 'v')));
    REQUIRE(e.stats<users>().main_cache_bytes <= u.max_bytes);
  }
  CHECK(e.stats<users>().evictions > 0);
  CHECK(e.stats<users>().main_cache_items < 2000);
}
