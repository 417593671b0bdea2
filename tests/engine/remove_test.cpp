// basic_engine: remove and remove_many; a remove racing a load; bad keys.
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
