// Freshness on one node, driven by a manual clock (docs/freshness.md):
// negative caching, refresh-ahead, stale-while-revalidate, stale-if-error.
#include <distcache/transport/http.hpp>
//
#include <boost/asio/use_future.hpp>
#include <string>

#include "support/engine_fixture.hpp"

namespace {

using distcache::keyspace_options;

config with_users(const keyspace_options& o) {
  config c = small_config();
  c.keyspaces["users"] = o;
  return c;
}

keyspace_options negative(distcache::duration ttl) {
  keyspace_options o;
  o.negative_ttl = ttl;
  return o;
}

keyspace_options stale(distcache::duration ttl, distcache::duration max_stale) {
  keyspace_options o;
  o.default_ttl = ttl;
  o.max_stale = max_stale;
  return o;
}

}  // namespace

TEST_CASE("negative caching: a not_found is answered from the cache until negative_ttl passes") {
  fixture f(with_users(negative(10s)));
  CHECK(f.e->get<users>("ghost").error() == errc::not_found);
  CHECK(f.e->get<users>("ghost").error() == errc::not_found);
  CHECK(f.src->calls == 1);
  auto s = f.e->stats<users>();
  CHECK(s.negative_hits == 1);
  CHECK(s.cache_hits == 1);
  CHECK(s.main_cache_items == 1);
  f.clock->advance(9999ms);
  CHECK(f.e->get<users>("ghost").error() == errc::not_found);
  CHECK(f.src->calls == 1);
  f.clock->advance(1ms);  // expired: the source is asked again
  f.src->set("ghost", "now here");
  CHECK(**f.e->get<users>("ghost") == "now here");
  CHECK(f.src->calls == 2);
}

TEST_CASE("negative caching is off by default: every not_found asks the source") {
  fixture f;
  CHECK(f.e->get<users>("ghost").error() == errc::not_found);
  CHECK(f.e->get<users>("ghost").error() == errc::not_found);
  CHECK(f.src->calls == 2);
  CHECK(f.e->stats<users>().negative_hits == 0);
  CHECK(f.e->stats<users>().main_cache_items == 0);
}

TEST_CASE("negative caching: a put replaces the cached not_found at once") {
  fixture f(with_users(negative(1h)));
  CHECK(f.e->get<users>("k").error() == errc::not_found);
  REQUIRE(f.e->put<users>("k", std::string("written")));
  CHECK(**f.e->get<users>("k") == "written");
  CHECK(f.src->calls == 1);
  // A remove drops it too: the next get asks the source.
  REQUIRE(f.e->put<users>("k2", std::string("x")));
  CHECK(f.e->get<users>("gone").error() == errc::not_found);
  REQUIRE(f.e->remove<users>("gone"));
  CHECK(f.e->get<users>("gone").error() == errc::not_found);
  CHECK(f.src->calls == 3);
}

TEST_CASE("negative caching: async_get and get_many answer a cached not_found without the source") {
  fixture f(with_users(negative(1h)));
  f.src->set("a", "A");
  CHECK(f.e->get<users>("ghost").error() == errc::not_found);
  auto fut = f.e->async_get<users>("ghost", net::use_future);
  CHECK_THROWS(fut.get());
  auto many = f.e->get_many<users>(std::vector<std::string>{"a", "ghost", "a"});
  REQUIRE(many.has_value());
  REQUIRE(many->size() == 3);
  CHECK(**(*many)[0] == "A");
  CHECK((*many)[1].error() == errc::not_found);
  CHECK(f.src->calls == 2);  // ghost once, a once
  CHECK(f.e->stats<users>().negative_hits == 2);
}

TEST_CASE("stale-while-revalidate: an expired value is served at once while one reload runs") {
  fixture f(with_users(stale(10s, 5s)));
  f.src->set("k", "v1");
  CHECK(**f.e->get<users>("k") == "v1");
  f.src->set("k", "v2");
  f.src->close_gate();  // the reload blocks: gets must not wait for it
  f.clock->advance(11s);
  for (int i = 0; i < 20; ++i) CHECK(**f.e->get<users>("k") == "v1");
  CHECK(eventually([&] { return f.src->calls == 2; }));  // one reload for 20 stale hits
  auto s = f.e->stats<users>();
  CHECK(s.stale_served == 20);
  CHECK(s.refreshes == 1);
  f.src->open_gate();
  CHECK(eventually([&] { return **f.e->get<users>("k") == "v2"; }));
  CHECK(f.src->calls == 2);
}

TEST_CASE("stale values are served only within max_stale, never after") {
  fixture f(with_users(stale(10s, 5s)));
  f.src->set("k", "v1");
  CHECK(**f.e->get<users>("k") == "v1");
  f.src->fail = true;  // every reload fails: the stale value stays
  f.clock->advance(10s);
  CHECK(**f.e->get<users>("k") == "v1");
  CHECK(eventually([&] { return f.e->stats<users>().local_load_errs == 1; }));
  f.clock->advance(4999ms);  // 14.999 s after the load: still within max_stale
  CHECK(**f.e->get<users>("k") == "v1");
  CHECK(eventually([&] { return f.e->stats<users>().local_load_errs == 2; }));
  f.clock->advance(1ms);  // 15 s: gone; the caller now waits for the source
  CHECK(f.e->get<users>("k").error() == errc::data_source_failed);
  CHECK(f.e->stats<users>().stale_served == 2);
}

TEST_CASE("without max_stale an expired value is a miss") {
  fixture f(with_users(stale(10s, 0s)));
  f.src->set("k", "v1");
  CHECK(**f.e->get<users>("k") == "v1");
  f.src->set("k", "v2");
  f.clock->advance(10s);
  CHECK(**f.e->get<users>("k") == "v2");
  CHECK(f.e->stats<users>().stale_served == 0);
}

TEST_CASE("a stale value the source no longer has is dropped, or replaced by a cached not_found") {
  keyspace_options o = stale(10s, 1h);
  SUBCASE("without negative caching") {}
  SUBCASE("with negative caching") { o.negative_ttl = 1min; }
  fixture f(with_users(o));
  f.src->set("k", "v1");
  CHECK(**f.e->get<users>("k") == "v1");
  {
    std::lock_guard lock(f.src->mutex);
    f.src->data.erase("k");
  }
  f.clock->advance(11s);
  CHECK(**f.e->get<users>("k") == "v1");  // served stale; the reload says not_found
  CHECK(eventually([&] { return f.src->calls == 2 && f.e->stats<users>().refreshes == 1; }));
  CHECK(eventually([&] { return f.e->get<users>("k").error() == errc::not_found; }));
}

TEST_CASE("refresh-ahead: a hit past refresh_after answers at once and reloads once") {
  keyspace_options o;
  o.default_ttl = 1min;
  o.refresh_after = 5s;
  fixture f(with_users(o));
  f.src->set("k", "v1");
  CHECK(**f.e->get<users>("k") == "v1");
  f.clock->advance(4999ms);
  CHECK(**f.e->get<users>("k") == "v1");
  CHECK(f.src->calls == 1);  // not due yet
  f.src->set("k", "v2");
  f.src->close_gate();
  f.clock->advance(1ms);
  for (int i = 0; i < 10; ++i) CHECK(**f.e->get<users>("k") == "v1");
  CHECK(eventually([&] { return f.src->calls == 2; }));
  f.src->open_gate();
  CHECK(eventually([&] { return **f.e->get<users>("k") == "v2"; }));
  CHECK(f.src->calls == 2);
  CHECK(f.e->stats<users>().refreshes == 1);
  CHECK(f.e->stats<users>().stale_served == 0);
  // The reloaded value is due again refresh_after later.
  f.clock->advance(5s);
  CHECK(**f.e->get<users>("k") == "v2");
  CHECK(eventually([&] { return f.src->calls == 3; }));
}

TEST_CASE("refresh-ahead: a put value is due refresh_after after the put; get_many reloads it") {
  keyspace_options o;
  o.refresh_after = 5s;
  fixture f(with_users(o));
  f.src->set("k", "from source");
  REQUIRE(f.e->put<users>("k", std::string("put")));
  f.clock->advance(5s);
  auto many = f.e->get_many<users>(std::vector<std::string>{"k"});
  REQUIRE(many.has_value());
  CHECK(**(*many)[0] == "put");  // served at once
  CHECK(eventually([&] { return **f.e->get<users>("k") == "from source"; }));
  CHECK(f.src->calls == 1);
}

namespace {

using breaker_engine = distcache::basic_engine<
    distcache::policies<distcache::discovery::standalone, distcache::transport::http,
                        distcache::protection::no_rate_limiter,
                        distcache::protection::circuit_breaker>,
    users, lengths>;

}  // namespace

TEST_CASE("stale-if-error: an expired value is served while the breaker is open") {
  users u;
  auto src = u.source.state;
  auto clock = std::make_shared<distcache::test::manual_clock>();
  config c = with_users(stale(10s, 1min));
  c.clock = clock;
  c.circuit_breaker = distcache::protection::circuit_breaker_options{2, 30s};
  breaker_engine e(std::move(c), u, lengths{});
  REQUIRE(e.start());
  src->set("k", "v1");
  CHECK(**e.get<users>("k") == "v1");
  src->fail = true;  // two failures open the breaker
  CHECK(e.get<users>("x").error() == errc::data_source_failed);
  CHECK(e.get<users>("y").error() == errc::data_source_failed);
  REQUIRE(e.stats<users>().circuit_state == distcache::protection::breaker_state::open);
  clock->advance(20s);  // k expired 10 s ago
  for (int i = 0; i < 5; ++i) CHECK(**e.get<users>("k") == "v1");
  CHECK(eventually([&] { return e.stats<users>().circuit_rejected >= 1; }));
  CHECK(src->calls == 3);  // the open breaker refused every reload without calling
  CHECK(e.stats<users>().stale_served == 5);
  // A key with no stale value gets the breaker's error.
  CHECK(e.get<users>("z").error() == errc::data_source_circuit_open);
  clock->advance(50s);  // past max_stale: k is gone
  CHECK_FALSE(e.get<users>("k").has_value());
}
