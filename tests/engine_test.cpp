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

#include "support/keyspaces.hpp"
#include "support/manual_clock.hpp"

using distcache::config;
using distcache::errc;
using distcache::error_code;
using distcache::test::eventually;
using distcache::test::lengths;
using distcache::test::test_engine;
using distcache::test::users;
namespace net = boost::asio;
using namespace std::chrono_literals;

namespace {

config small_config() {
  config c;
  c.threads = 2;
  c.fetch_threads = 4;
  return c;
}

/// An engine started over `users` (scripted) and `lengths` (counting).
struct fixture {
  users u;
  lengths l;
  std::shared_ptr<distcache::test::source_state> src = u.source.state;
  std::shared_ptr<std::atomic<int>> length_calls = l.source.calls;
  std::shared_ptr<distcache::test::manual_clock> clock =
      std::make_shared<distcache::test::manual_clock>();
  std::unique_ptr<test_engine> e;

  explicit fixture(config c = small_config()) {
    c.clock = clock;
    e = std::make_unique<test_engine>(std::move(c), u, l);
    REQUIRE(e->start());
  }
};

}  // namespace

TEST_CASE("get loads a miss once, then answers from the cache") {
  fixture f;
  f.src->set("user:1", "Ada");
  auto a = f.e->get<users>("user:1");
  REQUIRE(a.has_value());
  CHECK(**a == "Ada");
  auto b = f.e->get<users>("user:1");
  REQUIRE(b.has_value());
  CHECK(*b == *a);  // the same shared object: a hit neither copies nor re-parses
  CHECK(f.src->calls == 1);
  auto s = f.e->stats<users>();
  CHECK(s.gets == 2);
  CHECK(s.cache_hits == 1);
  CHECK(s.loads == 1);
  CHECK(s.loads_deduped == 1);
  CHECK(s.local_loads == 1);
  CHECK(s.local_load_errs == 0);
  CHECK(s.main_cache_items == 1);
  CHECK(s.main_cache_bytes > 0);
}

TEST_CASE("100 threads missing one key cause exactly one data-source call") {
  fixture f;
  f.src->set("hot", "value");
  f.src->close_gate();
  std::vector<std::thread> callers;
  callers.reserve(100);
  std::atomic<int> ok{0};
  for (int i = 0; i < 100; ++i) {
    callers.emplace_back([&] {
      auto r = f.e->get<users>("hot");
      if (r && **r == "value") ok.fetch_add(1);
    });
  }
  // Hold the load until every caller has missed and joined the flight
  // (`loads` counts a miss once its caller waits in a flight).
  CHECK(eventually([&] { return f.e->stats<users>().loads == 100; }));
  f.src->open_gate();
  for (auto& t : callers) t.join();
  CHECK(ok == 100);
  CHECK(f.src->calls == 1);
  CHECK(f.e->stats<users>().loads_deduped == 1);
}

TEST_CASE("a data-source error reaches every waiter and nothing is cached") {
  fixture f;
  f.src->fail = true;
  f.src->close_gate();
  auto a = f.e->async_get<users>("k", net::use_future);
  auto b = f.e->async_get<users>("k", net::use_future);
  CHECK(eventually([&] { return f.e->stats<users>().loads == 2; }));
  f.src->open_gate();
  for (auto* fut : {&a, &b}) {
    try {
      (void)fut->get();
      FAIL("expected an error");
    } catch (const boost::system::system_error& e) {
      CHECK(e.code() == errc::data_source_failed);
    }
  }
  CHECK(f.src->calls == 1);
  CHECK(f.e->stats<users>().local_load_errs == 1);
  f.src->fail = false;
  f.src->set("k", "fixed");
  CHECK(**f.e->get<users>("k") == "fixed");  // the failure was not cached
}

TEST_CASE("an exception thrown by the data source becomes data_source_failed for every waiter") {
  std::vector<std::string> logged;
  std::mutex log_mutex;
  config c = small_config();
  c.log = [&](distcache::log_level, std::string_view line) {
    std::lock_guard lock(log_mutex);
    logged.emplace_back(line);
  };
  fixture f(c);
  f.src->do_throw = true;
  f.src->close_gate();
  auto a = f.e->async_get<users>("boom", net::use_future);
  auto b = f.e->async_get<users>("boom", net::use_future);
  CHECK(eventually([&] { return f.e->stats<users>().loads == 2; }));
  f.src->open_gate();
  for (auto* fut : {&a, &b}) CHECK_THROWS_AS((void)fut->get(), boost::system::system_error);
  CHECK(f.src->calls == 1);
  {
    std::lock_guard lock(log_mutex);
    REQUIRE(logged.size() == 1);
    CHECK(logged[0].find("database exploded") != std::string::npos);
  }
  // The engine keeps serving other keys and keyspaces.
  f.src->do_throw = false;
  f.src->set("fine", "yes");
  CHECK(**f.e->get<users>("fine") == "yes");
  CHECK(**f.e->get<lengths>("abc") == 3);
}

TEST_CASE("not_found is reported, not cached, and asked again next time") {
  fixture f;
  auto r = f.e->get<users>("missing");
  CHECK(r.error() == errc::not_found);
  CHECK(f.e->get<users>("missing").error() == errc::not_found);
  CHECK(f.src->calls == 2);
  CHECK(f.e->stats<users>().local_load_errs == 0);  // not_found is not a failure
  CHECK(f.e->stats<users>().main_cache_items == 0);
}

TEST_CASE("a waiter that times out ends alone; the load runs on and fills the cache") {
  config c = small_config();
  c.keyspaces["users"].read_timeout = 30ms;
  fixture f(c);
  f.src->set("slow", "eventually");
  f.src->close_gate();
  auto r = f.e->get<users>("slow");
  CHECK(r.error() == errc::timeout);
  CHECK(f.src->in_flight == 1);  // still loading
  f.src->open_gate();
  CHECK(eventually([&] { return f.e->stats<users>().main_cache_items == 1; }));
  auto again = f.e->get<users>("slow");
  REQUIRE(again.has_value());
  CHECK(**again == "eventually");
  CHECK(f.src->calls == 1);
}

TEST_CASE("cancelling one waiter does not cancel the shared load for the others") {
  fixture f;
  f.src->set("k", "v");
  f.src->close_gate();
  // The signal is emitted, and the handler runs, on one strand, as Asio's
  // per-operation cancellation requires.
  auto strand = net::make_strand(f.e->get_executor());
  net::cancellation_signal signal;
  std::promise<error_code> cancelled;
  net::post(strand, [&] {
    f.e->async_get<users>(
        "k", net::bind_cancellation_slot(
                 signal.slot(), net::bind_executor(strand, [&](error_code ec, const auto&) {
                   cancelled.set_value(ec);
                 })));
  });
  auto other = f.e->async_get<users>("k", net::use_future);
  CHECK(eventually([&] { return f.e->stats<users>().loads == 2; }));
  net::post(strand, [&] { signal.emit(net::cancellation_type::terminal); });
  auto fut = cancelled.get_future();
  CHECK(fut.get() == net::error::operation_aborted);
  f.src->open_gate();
  CHECK(*other.get() == "v");
  CHECK(f.src->calls == 1);
}

TEST_CASE("put then get returns the put value without calling the source") {
  fixture f;
  REQUIRE(f.e->put<users>("user:2", "Grace"));
  CHECK(**f.e->get<users>("user:2") == "Grace");
  REQUIRE(f.e->put<users>("user:2", "Hopper"));
  CHECK(**f.e->get<users>("user:2") == "Hopper");
  CHECK(f.src->calls == 0);
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

TEST_CASE("a remove during a load keeps the key out of the cache") {
  fixture f;
  f.src->set("k", "old");
  f.src->close_gate();
  auto pending = f.e->async_get<users>("k", net::use_future);
  CHECK(eventually([&] { return f.src->in_flight == 1; }));
  REQUIRE(f.e->remove<users>("k"));
  f.src->open_gate();
  CHECK(*pending.get() == "old");
  CHECK(f.e->stats<users>().main_cache_items == 0);
  f.src->set("k", "newer");
  CHECK(**f.e->get<users>("k") == "newer");
  CHECK(f.src->calls == 2);
}

TEST_CASE("remove and remove_many drop keys and count requests and removed keys") {
  fixture f;
  REQUIRE(f.e->put<users>("a", "1"));
  REQUIRE(f.e->put<users>("b", "2"));
  REQUIRE(f.e->put<users>("c", "3"));
  REQUIRE(f.e->remove<users>("a"));
  REQUIRE(f.e->remove<users>("absent"));  // removing an absent key succeeds
  REQUIRE(f.e->remove_many<users>(std::vector<std::string>{"b", "c", "zzz"}));
  auto s = f.e->stats<users>();
  CHECK(s.remove_keys_requests == 3);
  CHECK(s.removed_keys == 3);
  CHECK(s.main_cache_items == 0);
  CHECK(f.e->get<users>("b").error() == errc::not_found);
}

TEST_CASE("remove_many with one invalid key removes nothing") {
  fixture f;
  REQUIRE(f.e->put<users>("a", "1"));
  CHECK(f.e->remove_many<users>(std::vector<std::string>{"a", ""}).error() == errc::invalid_key);
  CHECK(**f.e->get<users>("a") == "1");
}

TEST_CASE("get_many answers in key order with per-key errors") {
  fixture f;
  f.src->set("a", "A");
  f.src->set("c", "C");
  REQUIRE(f.e->put<users>("b", "B"));
  std::vector<std::string> keys{"a", "b", "missing", "", "c", "a"};
  auto r = f.e->get_many<users>(keys);
  REQUIRE(r.has_value());
  REQUIRE(r->size() == keys.size());
  CHECK(*(*r)[0].value() == "A");
  CHECK(*(*r)[1].value() == "B");
  CHECK((*r)[2].error() == errc::not_found);
  CHECK((*r)[3].error() == errc::invalid_key);
  CHECK(*(*r)[4].value() == "C");
  CHECK(*(*r)[5].value() == "A");
  CHECK(f.e->get_many<users>(std::vector<std::string>{})->empty());
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

TEST_CASE("bad keys get invalid_key and the engine keeps serving") {
  config c = small_config();
  c.max_key_bytes = 8;
  fixture f(c);
  CHECK(f.e->get<users>("").error() == errc::invalid_key);
  CHECK(f.e->get<users>("123456789").error() == errc::invalid_key);
  CHECK(f.e->put<users>("", "v").error() == errc::invalid_key);
  CHECK(f.e->remove<users>("123456789").error() == errc::invalid_key);
  CHECK(f.e->get<lengths>("12345678").value() != nullptr);
  CHECK(f.src->calls == 0);
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

TEST_CASE("delete_keyspace then get gives keyspace_not_found; other keyspaces serve on") {
  fixture f;
  REQUIRE(f.e->put<users>("a", "1"));
  CHECK(f.e->keyspaces() == std::vector<std::string>{"users", "lengths"});
  REQUIRE(f.e->delete_keyspace("users"));
  CHECK(f.e->keyspaces() == std::vector<std::string>{"lengths"});
  CHECK(f.e->get<users>("a").error() == errc::keyspace_not_found);
  CHECK(f.e->put<users>("a", "1").error() == errc::keyspace_not_found);
  CHECK(f.e->get_many<users>(std::vector<std::string>{"a"}).error() == errc::keyspace_not_found);
  CHECK(f.e->delete_keyspace("users").error() == errc::keyspace_not_found);
  CHECK(f.e->delete_keyspace("orders").error() == errc::keyspace_not_found);
  CHECK(**f.e->get<lengths>("ab") == 2);
  CHECK(f.e->stats("users").has_value());
  CHECK(f.e->stats("orders").error() == errc::keyspace_not_found);
}

TEST_CASE("delete_keyspaces deletes all named keyspaces, or none when a name is unknown") {
  fixture f;
  CHECK(f.e->delete_keyspaces(std::vector<std::string>{"users", "nope"}).error() ==
        errc::keyspace_not_found);
  CHECK(f.e->keyspaces().size() == 2);
  REQUIRE(f.e->delete_keyspaces(std::vector<std::string>{"users", "lengths"}));
  CHECK(f.e->keyspaces().empty());
}

TEST_CASE("update_keyspace replaces the source and drops the old content") {
  fixture f;
  f.src->set("k", "from-old");
  CHECK(**f.e->get<users>("k") == "from-old");
  users replacement;
  replacement.source.state->set("k", "from-new");
  REQUIRE(f.e->update_keyspace(replacement));
  CHECK(**f.e->get<users>("k") == "from-new");
  CHECK(replacement.source.state->calls == 1);
  CHECK(f.src->calls == 1);
  // Counters survive the update.
  CHECK(f.e->stats<users>().gets == 2);
  // An invalid definition is refused and the live one stays.
  users invalid;
  invalid.max_bytes = 0;
  CHECK(f.e->update_keyspace(invalid).error() == errc::invalid_config);
  CHECK(**f.e->get<users>("k") == "from-new");
  // After delete_keyspace, update_keyspace defines it again.
  REQUIRE(f.e->delete_keyspace("users"));
  REQUIRE(f.e->update_keyspace(replacement));
  CHECK(**f.e->get<users>("k") == "from-new");
}

TEST_CASE("warm keys are loaded at start and after update_keyspace") {
  config c = small_config();
  c.keyspaces["lengths"].warm_keys = std::vector<std::string>{"a", "bb", "ccc"};
  fixture f(c);
  CHECK(eventually([&] { return f.e->stats<lengths>().main_cache_items == 3; }));
  CHECK(*f.length_calls == 3);
  CHECK(**f.e->get<lengths>("bb") == 2);
  CHECK(*f.length_calls == 3);
  lengths fresh;
  REQUIRE(f.e->update_keyspace(fresh));
  CHECK(eventually([&] { return *fresh.source.calls == 3; }));
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

TEST_CASE("get_many of cached keys answers inline and counts one hit per key") {
  fixture f;
  std::vector<std::pair<std::string, std::string>> entries{{"h1", "1"}, {"h2", "2"}, {"h3", "3"}};
  REQUIRE(f.e->put_many<users>(entries));
  const std::vector<std::string> keys{"h3", "h1", "h2", "h1"};
  auto r = f.e->get_many<users>(keys);
  REQUIRE(r.has_value());
  REQUIRE(r->size() == 4);
  CHECK(**(*r)[0] == "3");
  CHECK(**(*r)[1] == "1");
  CHECK(**(*r)[2] == "2");
  CHECK((*r)[1].value() == (*r)[3].value());  // the same cached object
  CHECK(f.e->stats<users>().cache_hits == 4);
  CHECK(f.e->stats<users>().gets == 4);
  CHECK(f.src->calls == 0);
  // One miss among hits takes the general path; nothing is counted twice.
  f.src->set("m", "miss");
  const std::vector<std::string> mixed{"h1", "m"};
  auto m = f.e->get_many<users>(mixed);
  REQUIRE(m.has_value());
  CHECK(**(*m)[1] == "miss");
  CHECK(f.e->stats<users>().cache_hits == 5);
  CHECK(f.e->stats<users>().loads == 1);
}
