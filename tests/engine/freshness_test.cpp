// Freshness and load shaping on one node (docs/freshness.md): negative
// caching, refresh-ahead, stale-while-revalidate, stale-if-error (driven by a
// manual clock), and batched loads through a source's fetch_many.
#include <distcache/transport/http.hpp>
//
#include <atomic>
#include <boost/asio/use_future.hpp>
#include <future>
#include <mutex>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

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

TEST_CASE("negative caching: read answers a cached not_found without calling its function") {
  fixture f(with_users(negative(10s)));
  int calls = 0;
  auto fn = [&calls](const std::string&) { return ++calls; };
  CHECK(f.e->read<users>("ghost", fn).error() == errc::not_found);
  CHECK(f.e->read<users>("ghost", fn).error() == errc::not_found);
  CHECK(calls == 0);
  CHECK(f.src->calls == 1);
  CHECK(f.e->stats<users>().negative_hits == 1);
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
  // The failed reload's flight ends a moment after its failure is counted; a
  // stale hit starts the next reload only once it has: read until one did.
  CHECK(eventually([&] {
    CHECK(**f.e->get<users>("k") == "v1");
    return f.e->stats<users>().local_load_errs >= 2;
  }));
  f.clock->advance(1ms);  // 15 s: gone; the caller now waits for the source
  CHECK(f.e->get<users>("k").error() == errc::data_source_failed);
  CHECK(f.e->stats<users>().stale_served >= 2);
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

TEST_CASE("refresh-ahead: read of a value past refresh_after answers it and reloads it once") {
  keyspace_options o;
  o.default_ttl = 1min;
  o.refresh_after = 5s;
  fixture f(with_users(o));
  f.src->set("k", "v1");
  auto copy = [](const std::string& v) { return v; };
  CHECK(*f.e->read<users>("k", copy) == "v1");
  f.src->set("k", "v2");
  f.src->close_gate();
  f.clock->advance(5s);
  for (int i = 0; i < 10; ++i) CHECK(*f.e->read<users>("k", copy) == "v1");
  CHECK(eventually([&] { return f.src->calls == 2; }));
  f.src->open_gate();
  CHECK(eventually([&] { return *f.e->read<users>("k", copy) == "v2"; }));
  CHECK(f.src->calls == 2);
  CHECK(f.e->stats<users>().refreshes == 1);
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

// ---------------------------------------------------------------- batched loads

namespace {

/// A source with fetch_many that records each call's size.
struct batch_state {
  std::mutex mutex;
  std::vector<std::size_t> sizes;  // one per fetch_many call
  std::atomic<int> single_calls{0};
  std::atomic<bool> do_throw{false};
  std::atomic<bool> short_answer{false};  // one result fewer than keys

  std::vector<std::size_t> calls() {
    std::lock_guard lock(mutex);
    return sizes;
  }
  std::size_t keys_fetched() {
    std::size_t n = 0;
    for (auto s : calls()) n += s;
    return n;
  }
};

struct batch_source {
  std::shared_ptr<batch_state> state = std::make_shared<batch_state>();

  distcache::fetch_result<std::string> fetch(std::string_view key) {
    state->single_calls.fetch_add(1);
    return "one:" + std::string(key);
  }
  std::vector<distcache::fetch_result<std::string>> fetch_many(
      std::span<const std::string_view> keys) {
    {
      std::lock_guard lock(state->mutex);
      state->sizes.push_back(keys.size());
    }
    if (state->do_throw) throw std::runtime_error("batch exploded");
    std::vector<distcache::fetch_result<std::string>> out;
    for (auto k : keys) {
      if (k.starts_with("missing")) {
        out.emplace_back(distcache::not_found);
      } else if (k.starts_with("bad")) {
        out.emplace_back(distcache::make_error_code(errc::data_source_failed));
      } else {
        out.emplace_back("v:" + std::string(k));
      }
    }
    if (state->short_answer && !out.empty()) out.pop_back();
    return out;
  }
};
static_assert(distcache::batch_data_source<batch_source, std::string>);
static_assert(!distcache::batch_data_source<distcache::test::scripted_source, std::string>);

struct items {
  static constexpr std::string_view name = "items";
  using value_type = std::string;
  std::int64_t max_bytes = 1 << 20;
  batch_source source;
};

using batch_engine = distcache::basic_engine<
    distcache::policies<distcache::discovery::standalone, distcache::transport::http,
                        distcache::protection::token_bucket>,
    items>;

struct batch_fixture {
  items def;
  std::shared_ptr<batch_state> src = def.source.state;
  std::unique_ptr<batch_engine> e;

  explicit batch_fixture(std::size_t batch_keys, distcache::duration wait, config c = {}) {
    c.threads = 2;
    c.fetch_threads = 4;
    c.keyspaces["items"].fetch_batch_keys = batch_keys;
    c.keyspaces["items"].fetch_batch_wait = wait;
    e = std::make_unique<batch_engine>(std::move(c), def);
    REQUIRE(e->start());
  }
};

}  // namespace

TEST_CASE("fetch_many: 64 concurrent misses of distinct keys make one call") {
  batch_fixture f(64, 1s);  // only a full batch leaves before a second
  std::vector<std::future<distcache::value_ptr<std::string>>> gets;
  gets.reserve(64);
  for (int i = 0; i < 64; ++i) {
    gets.push_back(f.e->async_get<items>("k" + std::to_string(i), net::use_future));
  }
  for (int i = 0; i < 64; ++i) CHECK(*gets[i].get() == "v:k" + std::to_string(i));
  CHECK(f.src->calls() == std::vector<std::size_t>{64});
  CHECK(f.src->single_calls == 0);
  CHECK(f.e->stats<items>().local_loads == 64);
  // Cached now: no call at all.
  CHECK(**f.e->get<items>("k7") == "v:k7");
  CHECK(f.src->calls().size() == 1);
}

TEST_CASE("fetch_many: fewer keys leave after fetch_batch_wait; more than a batch take calls") {
  batch_fixture f(64, 1ms);
  CHECK(**f.e->get<items>("alone") == "v:alone");  // waits 1 ms for company, then leaves
  CHECK(f.src->calls() == std::vector<std::size_t>{1});
  std::vector<std::string> keys;
  keys.reserve(150);
  for (int i = 0; i < 150; ++i) keys.push_back("m" + std::to_string(i));
  auto many = f.e->get_many<items>(keys);
  REQUIRE(many.has_value());
  for (std::size_t i = 0; i < keys.size(); ++i) CHECK(**(*many)[i] == "v:" + keys[i]);
  const auto calls = f.src->calls();
  CHECK(calls.size() >= 1 + 3);  // 150 keys need at least 3 calls of 64
  for (auto n : calls) CHECK(n <= 64);
  CHECK(f.src->keys_fetched() == 151);
}

TEST_CASE("fetch_many: each key is still deduplicated by singleflight") {
  batch_fixture f(64, 200ms);
  std::vector<std::future<distcache::value_ptr<std::string>>> gets;
  gets.reserve(50);
  for (int i = 0; i < 50; ++i) {
    gets.push_back(f.e->async_get<items>("d" + std::to_string(i % 5), net::use_future));
  }
  for (int i = 0; i < 50; ++i) CHECK(*gets[i].get() == "v:d" + std::to_string(i % 5));
  CHECK(f.src->keys_fetched() == 5);
  CHECK(f.e->stats<items>().loads_deduped == 5);
}

TEST_CASE("fetch_many: per-key answers reach their keys; a throw or a short answer fails all") {
  batch_fixture f(64, 1ms);
  auto many = f.e->get_many<items>(std::vector<std::string>{"a", "missing1", "bad1"});
  REQUIRE(many.has_value());
  CHECK(**(*many)[0] == "v:a");
  CHECK((*many)[1].error() == errc::not_found);
  CHECK((*many)[2].error() == errc::data_source_failed);
  CHECK(f.e->stats<items>().local_load_errs == 1);
  f.src->do_throw = true;
  many = f.e->get_many<items>(std::vector<std::string>{"x", "y"});
  REQUIRE(many.has_value());
  CHECK((*many)[0].error() == errc::data_source_failed);
  CHECK((*many)[1].error() == errc::data_source_failed);
  f.src->do_throw = false;
  f.src->short_answer = true;
  many = f.e->get_many<items>(std::vector<std::string>{"p", "q"});
  REQUIRE(many.has_value());
  CHECK((*many)[0].error() == errc::data_source_failed);
  CHECK((*many)[1].error() == errc::data_source_failed);
  CHECK(f.e->stats<items>().local_load_errs == 5);
  f.src->short_answer = false;
  CHECK(**f.e->get<items>("x") == "v:x");  // nothing was cached for the failed keys
}

TEST_CASE("fetch_many: one call takes one rate-limiter token, whatever its key count") {
  config c;
  c.rate_limiter = distcache::protection::rate_limit{0.001, 1, 0s};  // one token, no refill
  batch_fixture f(64, 5ms, c);
  std::vector<std::string> keys;
  keys.reserve(20);
  for (int i = 0; i < 20; ++i) keys.push_back("t" + std::to_string(i));
  auto many = f.e->get_many<items>(keys);
  REQUIRE(many.has_value());
  for (std::size_t i = 0; i < keys.size(); ++i) CHECK((*many)[i].has_value());
  CHECK(f.src->calls() == std::vector<std::size_t>{20});
  auto refused = f.e->get_many<items>(std::vector<std::string>{"u1", "u2"});
  REQUIRE(refused.has_value());
  CHECK((*refused)[0].error() == errc::data_source_rate_limited);
  CHECK((*refused)[1].error() == errc::data_source_rate_limited);
  CHECK(f.e->stats<items>().rate_limited == 1);
}

// ---------------------------------------------------------------- hot keys

TEST_CASE("hot_keys: the keys read most often, most frequent first") {
  fixture f;
  for (const char* k : {"hot", "warm", "cold", "unread"}) f.src->set(k, "v");
  REQUIRE(f.e->put<users>("unread", std::string("v")));  // cached, never read
  // About one read in sample_every is counted (at random): 125 samples'
  // worth of reads saturate a counter (15); 12 give about 12 and almost
  // surely at least 1.
  constexpr int every = distcache::detail::keyspace_runtime::sample_every;
  for (int i = 0; i < 125 * every; ++i) REQUIRE(f.e->get<users>("hot"));
  for (int i = 0; i < 12 * every; ++i) REQUIRE(f.e->get<users>("warm"));
  REQUIRE(f.e->get<users>("cold"));
  auto top = f.e->hot_keys<users>(2);
  REQUIRE(top.size() == 2);
  CHECK(top[0].frequency >= top[1].frequency);  // most frequent first
  std::set<std::string> names{top[0].key, top[1].key};
  CHECK(names == std::set<std::string>{"hot", "warm"});
  for (const auto& h : top) {
    if (h.key == "hot") CHECK(h.frequency == 15);  // saturated
    if (h.key == "warm") CHECK(h.frequency >= 1);
  }
  for (const auto& h : f.e->hot_keys<users>(10)) CHECK(h.key != "unread");  // estimate 0
  CHECK(f.e->hot_keys<users>(0).empty());
  CHECK(f.e->hot_keys<lengths>(5).empty());  // nothing read
}

TEST_CASE("hot_keys: empty when the keyspace tracks no hot keys") {
  config c = small_config();
  c.keyspaces["users"].track_hot_keys = false;
  fixture f(c);
  f.src->set("hot", "v");
  for (int i = 0; i < 100; ++i) REQUIRE(f.e->get<users>("hot"));
  CHECK(f.e->hot_keys<users>(5).empty());
}
