// basic_engine: delete_keyspace(s), update_keyspace, warm keys.
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
  // No hot-key warm-up: reads are sampled into the hot-key sketch, so
  // whether the new definition's warm-up reloads "k" (racing the get below)
  // is left to chance; warm-up after update_keyspace has its own tests.
  config c = small_config();
  c.keyspaces["users"].warmup = distcache::warmup_options{};
  c.keyspaces["users"].warmup->max_hot_keys = 0;
  fixture f(c);
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

TEST_CASE("update_keyspace warms the keys the old definition found hot") {
  fixture f;
  f.src->set("hot", "old");
  // One read in 64 is sampled into the hot-key sketch: 2000 reads make
  // "hot" hot beyond doubt.
  for (int i = 0; i < 2000; ++i) REQUIRE(**f.e->get<users>("hot") == "old");
  REQUIRE(!f.e->hot_keys<users>(1).empty());
  users replacement;
  replacement.source.state->set("hot", "new");
  REQUIRE(f.e->update_keyspace(replacement));
  // Loaded by the warm-up, before anyone asks for it.
  CHECK(eventually([&] { return f.e->stats<users>().warmed_keys == 1; }));
  CHECK(replacement.source.state->calls == 1);
  const auto before = f.e->stats<users>();
  CHECK(**f.e->get<users>("hot") == "new");
  CHECK(replacement.source.state->calls == 1);
  CHECK(f.e->stats<users>().cache_hits == before.cache_hits + 1);
  // The warm-up's load counts as a get (docs/concepts.md): the 2000 reads,
  // the warm-up's load, the hit.
  CHECK(f.e->stats<users>().gets == 2002);
}

TEST_CASE("warm-up loads each warm key once, at most `concurrency` at a time") {
  users u;
  auto src = u.source.state;
  for (int i = 0; i < 12; ++i) src->set("k" + std::to_string(i), "v");
  src->close_gate();
  config c = small_config();
  c.fetch_threads = 8;
  std::vector<std::string> warm;
  warm.reserve(12);
  for (int i = 0; i < 12; ++i) warm.push_back("k" + std::to_string(i));
  c.keyspaces["users"].warm_keys = warm;
  c.warmup.concurrency = 3;
  test_engine e(c, u, lengths{});
  REQUIRE(e.start());
  CHECK(eventually([&] { return src->in_flight == 3; }));
  src->open_gate();
  CHECK(eventually([&] { return e.stats<users>().main_cache_items == 12; }));
  CHECK(src->calls == 12);
  CHECK(src->max_in_flight == 3);
  // Counted when each load's completion runs, just after it is cached.
  CHECK(eventually([&] { return e.stats<users>().warmed_keys == 12; }));
}

TEST_CASE("a warm-up stops loading at its first failure") {
  users u;
  auto src = u.source.state;
  src->fail = true;
  auto done = std::make_shared<std::atomic<bool>>(false);
  config c = small_config();
  c.log = [done](distcache::log_level, std::string_view line) {
    if (line.find("warm-up (start) done") != std::string_view::npos) done->store(true);
  };
  std::vector<std::string> warm;
  warm.reserve(10);
  for (int i = 0; i < 10; ++i) warm.push_back("k" + std::to_string(i));
  c.keyspaces["users"].warm_keys = warm;
  c.warmup.concurrency = 1;
  test_engine e(c, u, lengths{});
  REQUIRE(e.start());
  CHECK(eventually([&] { return done->load(); }));
  CHECK(src->calls == 1);  // the other nine were not loaded
  CHECK(e.stats<users>().local_load_errs == 1);
}
