#include <distcache/cache/detail/value_cache.hpp>
//
#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <distcache/detail/hash.hpp>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/manual_clock.hpp"

using distcache::detail::hashed_key;
using distcache::detail::value_cache;

namespace {
struct key_holder {
  std::string text;
  std::uint64_t hash;
  explicit key_holder(std::string t)
      : text(std::move(t)), hash(distcache::detail::hash_key(text)) {}
  operator hashed_key() const { return {text, hash}; }  // NOLINT
};
std::shared_ptr<const void> val(std::string s) {
  return std::make_shared<const std::string>(std::move(s));
}
std::string str(const std::shared_ptr<const void>& p) {
  return p ? *std::static_pointer_cast<const std::string>(p) : std::string("<miss>");
}
}  // namespace

TEST_CASE("lru returns stored values and misses absent keys") {
  value_cache c(1 << 20, 1, nullptr);
  CHECK(c.put(key_holder("a"), val("1"), 1, distcache::never_expires));
  CHECK(str(c.get(key_holder("a"))) == "1");
  CHECK(c.get(key_holder("b")) == nullptr);
  CHECK(c.put(key_holder("a"), val("2"), 1, distcache::never_expires));
  CHECK(str(c.get(key_holder("a"))) == "2");
  CHECK(c.size() == 1);
  CHECK(c.remove(key_holder("a")));
  CHECK(!c.remove(key_holder("a")));
  CHECK(c.get(key_holder("a")) == nullptr);
  CHECK(c.bytes() == 0);
}

TEST_CASE("lru evicts the least recently used entry when over budget") {
  const auto per = static_cast<std::int64_t>(value_cache::charge(1, 10));
  value_cache c(per * 3, 1, nullptr);  // room for exactly three entries
  for (const char* k : {"a", "b", "c"}) c.put(key_holder(k), val(k), 10, distcache::never_expires);
  CHECK(c.get(key_holder("a")) != nullptr);  // a is now the most recently used
  c.put(key_holder("d"), val("d"), 10, distcache::never_expires);
  CHECK(c.get(key_holder("b")) == nullptr);  // b was the least recently used
  CHECK(c.get(key_holder("a")) != nullptr);
  CHECK(c.get(key_holder("c")) != nullptr);
  CHECK(c.get(key_holder("d")) != nullptr);
  CHECK(c.evictions() == 1);
  CHECK(c.bytes() == per * 3);
}

TEST_CASE("lru charges key, value and overhead, and rejects an entry larger than a shard") {
  value_cache c(1000, 1, nullptr);
  c.put(key_holder("abc"), val("x"), 100, distcache::never_expires);
  CHECK(c.bytes() == static_cast<std::int64_t>(value_cache::entry_overhead + 3 + 100));
  CHECK(!c.put(key_holder("big"), val("x"), 1000, distcache::never_expires));
  CHECK(c.get(key_holder("big")) == nullptr);
  CHECK(c.size() == 1);
  // A rejected replacement leaves the previous value in place.
  CHECK(!c.put(key_holder("abc"), val("y"), 5000, distcache::never_expires));
  CHECK(str(c.get(key_holder("abc"))) == "x");
}

TEST_CASE("lru never exceeds its byte budget under random puts of random sizes") {
  const std::int64_t budget = 64 << 10;
  value_cache c(budget, 4, nullptr);
  std::mt19937 rng(7);
  for (int i = 0; i < 20000; ++i) {
    const std::string k = "k" + std::to_string(rng() % 3000);
    const std::size_t size = rng() % 3000;
    c.put(key_holder(k), val("v"), size, distcache::never_expires);
    if (i % 97 == 0) c.remove(key_holder("k" + std::to_string(rng() % 3000)));
    REQUIRE(c.largest_shard_bytes() <= c.shard_budget());
    REQUIRE(c.bytes() <= budget);
  }
  CHECK(c.evictions() > 0);
}

TEST_CASE("lru never returns an expired entry (manual clock)") {
  distcache::test::manual_clock clock;
  value_cache c(1 << 20, 2, &clock);
  c.put(key_holder("a"), val("1"), 1, clock.now() + std::chrono::seconds(10));
  c.put(key_holder("b"), val("2"), 1, distcache::never_expires);
  clock.advance(std::chrono::seconds(9));
  CHECK(str(c.get(key_holder("a"))) == "1");
  clock.advance(std::chrono::seconds(1));
  CHECK(c.get(key_holder("a")) == nullptr);  // expiry is inclusive
  CHECK(c.get(key_holder("a")) == nullptr);  // and stays so
  clock.advance(std::chrono::hours(24 * 365));
  CHECK(str(c.get(key_holder("b"))) == "2");
}

TEST_CASE("lru shard count is a power of two and the default keeps shards >= 256 KiB") {
  CHECK(value_cache(1 << 20, 3, nullptr).shards() == 4);
  CHECK(value_cache::default_shards(1 << 20) == 4);
  CHECK(value_cache::default_shards(100) == 1);
  CHECK(value_cache::default_shards(std::int64_t{1} << 30) == 16);
}

TEST_CASE("lru clear drops everything") {
  value_cache c(1 << 20, 4, nullptr);
  for (int i = 0; i < 100; ++i)
    c.put(key_holder(std::to_string(i)), val("v"), 1, distcache::never_expires);
  CHECK(c.size() == 100);
  c.clear();
  CHECK(c.size() == 0);
  CHECK(c.bytes() == 0);
  CHECK(c.get(key_holder("5")) == nullptr);
}

TEST_CASE("lru stays consistent under concurrent gets, puts and removes") {
  value_cache c(32 << 10, 4, nullptr);
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&c, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < 20000; ++i) {
        const key_holder k("k" + std::to_string(rng() % 500));
        switch (rng() % 3) {
          case 0:
            c.put(k, val(k.text), rng() % 500, distcache::never_expires);
            break;
          case 1: {
            auto v = c.get(k);
            if (v) REQUIRE(str(v) == k.text);
            break;
          }
          default:
            c.remove(k);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(c.largest_shard_bytes() <= c.shard_budget());
}

TEST_CASE("an expired entry gets no second chance, even when it was read") {
  distcache::test::manual_clock clock;
  const auto per = static_cast<std::int64_t>(value_cache::charge(1, 10));
  value_cache c(per * 2, 1, &clock);
  c.put(key_holder("x"), val("x"), 10, clock.now() + std::chrono::seconds(1));
  c.put(key_holder("a"), val("a"), 10, distcache::never_expires);
  CHECK(c.get(key_holder("x")) != nullptr);  // referenced
  clock.advance(std::chrono::seconds(1));
  c.put(key_holder("b"), val("b"), 10, distcache::never_expires);
  CHECK(c.size() == 2);
  CHECK(c.get(key_holder("a")) != nullptr);  // the live entry stayed
  CHECK(c.get(key_holder("b")) != nullptr);
}

TEST_CASE("a read entry gets a second chance before an unread one is evicted") {
  const auto per = static_cast<std::int64_t>(value_cache::charge(1, 10));
  value_cache c(per * 3, 1, nullptr);
  for (const char* k : {"a", "b", "c"}) c.put(key_holder(k), val(k), 10, distcache::never_expires);
  CHECK(c.get(key_holder("a")) != nullptr);
  CHECK(c.get(key_holder("b")) != nullptr);
  c.put(key_holder("d"), val("d"), 10, distcache::never_expires);
  CHECK(c.get(key_holder("c")) == nullptr);  // the only unread one
  CHECK(c.size() == 3);
}

TEST_CASE("a lifetime: fresh, due for refresh, stale within max_stale, then gone") {
  using distcache::detail::freshness;
  auto clock = std::make_shared<distcache::test::manual_clock>();
  value_cache c(1 << 20, 1, clock.get(), std::chrono::seconds(5));
  const auto t0 = clock->now();
  distcache::detail::lifetime life{t0 + std::chrono::seconds(10), t0 + std::chrono::seconds(4)};
  REQUIRE(c.put(key_holder("k"), val("v"), 1, life));
  freshness st = freshness::stale;
  CHECK(str(c.get(key_holder("k"), nullptr, &st)) == "v");
  CHECK(st == freshness::fresh);
  clock->advance(std::chrono::seconds(4));
  st = freshness::fresh;
  CHECK(str(c.get(key_holder("k"), nullptr, &st)) == "v");
  CHECK(st == freshness::refresh);
  CHECK(str(c.get(key_holder("k"))) == "v");  // refresh-due is still a hit without a state
  clock->advance(std::chrono::seconds(6));    // t0 + 10 s: expired
  st = freshness::fresh;
  distcache::time_point expires{};
  CHECK(str(c.get(key_holder("k"), &expires, &st)) == "v");
  CHECK(st == freshness::stale);
  CHECK(expires == t0 + std::chrono::seconds(10));
  CHECK(c.get(key_holder("k")) == nullptr);  // a caller that takes no stale value misses
  clock->advance(std::chrono::milliseconds(4999));
  CHECK(str(c.get(key_holder("k"), nullptr, &st)) == "v");
  std::size_t listed = 0;
  c.for_each_key([&](std::string_view, std::uint64_t) { ++listed; });
  CHECK(listed == 1);
  clock->advance(std::chrono::milliseconds(1));  // expiry + max_stale: gone
  CHECK(c.get(key_holder("k"), nullptr, &st) == nullptr);
  listed = 0;
  c.for_each_key([&](std::string_view, std::uint64_t) { ++listed; });
  CHECK(listed == 0);
}

TEST_CASE("visit calls its function on a fresh value in place, and on nothing else") {
  auto clock = std::make_shared<distcache::test::manual_clock>();
  value_cache c(1 << 20, 1, clock.get(), std::chrono::seconds(5));
  const auto t0 = clock->now();
  auto stored = val("v");
  REQUIRE(c.put(
      key_holder("k"), stored, 1,
      distcache::detail::lifetime{t0 + std::chrono::seconds(10), t0 + std::chrono::seconds(4)}));
  const void* seen = nullptr;
  const auto see = [&](const void* v) {
    seen = v;
    return true;
  };
  CHECK(c.visit(key_holder("k"), see));
  CHECK(seen == stored.get());  // the stored object itself
  CHECK_FALSE(c.visit(key_holder("k"), [](const void*) { return false; }));  // fn's answer
  seen = nullptr;
  CHECK_FALSE(c.visit(key_holder("absent"), see));
  clock->advance(std::chrono::seconds(4));  // due for refresh: not fresh
  CHECK_FALSE(c.visit(key_holder("k"), see));
  clock->advance(std::chrono::seconds(6));  // stale
  CHECK_FALSE(c.visit(key_holder("k"), see));
  CHECK(seen == nullptr);
}

TEST_CASE("visit lets go of the read side when its function throws") {
  value_cache c(1 << 20, 1, nullptr);
  REQUIRE(c.put(key_holder("k"), val("v"), 1, distcache::never_expires));
  CHECK_THROWS_AS(
      c.visit(key_holder("k"), [](const void*) -> bool { throw std::logic_error("x"); }),
      std::logic_error);
  // A writer of the shard waits for every reader: it would wait forever for
  // a reader count left raised.
  std::atomic<bool> stored{false};
  std::thread writer(
      [&] { stored = c.put(key_holder("k"), val("w"), 1, distcache::never_expires); });
  writer.join();
  CHECK(stored);
  CHECK(str(c.get(key_holder("k"))) == "w");
}

TEST_CASE(
    "without max_stale an expired value is gone, state or not; never-expiring is never stale") {
  auto clock = std::make_shared<distcache::test::manual_clock>();
  value_cache c(1 << 20, 1, clock.get());
  const auto t0 = clock->now();
  REQUIRE(c.put(key_holder("k"), val("v"), 1,
                distcache::detail::lifetime::until(t0 + std::chrono::seconds(10))));
  REQUIRE(c.put(key_holder("forever"), val("f"), 1,
                distcache::detail::lifetime::until(distcache::never_expires)));
  clock->advance(std::chrono::seconds(10));
  distcache::detail::freshness st{};
  CHECK(c.get(key_holder("k"), nullptr, &st) == nullptr);
  clock->advance(std::chrono::hours(10000));
  st = distcache::detail::freshness::stale;
  CHECK(str(c.get(key_holder("forever"), nullptr, &st)) == "f");
  CHECK(st == distcache::detail::freshness::fresh);
}

TEST_CASE("the negative marker is non-null, owns nothing and is recognised") {
  const auto& n = distcache::detail::negative_value();
  CHECK(n != nullptr);
  CHECK(n.use_count() == 0);
  CHECK(distcache::detail::is_negative(n));
  CHECK_FALSE(distcache::detail::is_negative(val("x")));
  CHECK_FALSE(distcache::detail::is_negative(nullptr));
  value_cache c(1 << 20, 1, nullptr);
  REQUIRE(c.put(key_holder("ghost"), n, 0, distcache::never_expires));
  CHECK(distcache::detail::is_negative(c.get(key_holder("ghost"))));
  CHECK(c.bytes() == static_cast<std::int64_t>(value_cache::charge(5, 0)));
}

// ---------------------------------------------------------------- frequency sketch and admission

TEST_CASE("frequency sketch: estimates never fall below the true count (up to 15)") {
  distcache::detail::frequency_sketch sk(100000);
  std::vector<unsigned> truth(2000);
  std::mt19937_64 rng(7);
  for (std::size_t i = 0; i < truth.size(); ++i) {
    truth[i] = static_cast<unsigned>(rng() % 12);
    for (unsigned j = 0; j < truth[i]; ++j)
      sk.increment(distcache::detail::hash_key("k" + std::to_string(i)), 1);
  }
  std::size_t exact = 0;
  for (std::size_t i = 0; i < truth.size(); ++i) {
    const unsigned e = sk.estimate(distcache::detail::hash_key("k" + std::to_string(i)));
    CHECK(e >= truth[i]);
    if (e == truth[i]) ++exact;
  }
  CHECK(exact > truth.size() * 9 / 10);  // collisions are rare at this size
  const auto hot = distcache::detail::hash_key("hot");
  for (int i = 0; i < 100; ++i) sk.increment(hot, 1);
  CHECK(sk.estimate(hot) == distcache::detail::frequency_sketch::max_count);  // saturates
  CHECK(sk.estimate(distcache::detail::hash_key("never seen")) <= 1);
}

TEST_CASE("frequency sketch: a dice of zero halves every counter") {
  distcache::detail::frequency_sketch sk(0);  // the smallest table: 64 words
  CHECK(sk.sample_size() == 64 * 16);
  const auto a = distcache::detail::hash_key("a");
  const auto b = distcache::detail::hash_key("b");
  for (int i = 0; i < 12; ++i) sk.increment(a, 1);
  for (int i = 0; i < 5; ++i) sk.increment(b, 1);
  CHECK(sk.estimate(a) >= 12);
  CHECK(sk.halvings() == 0);
  sk.increment(a, sk.sample_size() * 3);  // low bits zero: halves after counting
  CHECK(sk.halvings() == 1);
  CHECK(sk.estimate(a) >= 6);
  CHECK(sk.estimate(a) <= 7);  // (12 or 13, + 1) / 2, collisions aside
  CHECK(sk.estimate(b) <= 3);
}

TEST_CASE("frequency sketch: concurrent increments keep counting") {
  distcache::detail::frequency_sketch sk(4096);
  const auto k = distcache::detail::hash_key("shared");
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 3; ++i) sk.increment(k, 1);
      for (int i = 0; i < 2000; ++i) {
        sk.increment(distcache::detail::hash_key(std::to_string(i)), static_cast<unsigned>(i));
      }
    });
  }
  for (auto& t : threads) t.join();
  // Racing updates of one word may lose some (documented), never all.
  CHECK(sk.estimate(k) >= 1);
  CHECK(sk.halvings() >= 1);  // i = 0 rolls zero
}

TEST_CASE("admission: a rare new key does not evict a frequent one; a frequent one does") {
  distcache::detail::frequency_sketch sk(1024);
  // Room for two entries in one shard.
  value_cache c(static_cast<std::int64_t>(2 * value_cache::charge(1, 1)), 1, nullptr);
  const auto life = distcache::detail::lifetime::until(distcache::never_expires);
  for (int i = 0; i < 5; ++i) {
    sk.increment(key_holder("a").hash, 1);
    sk.increment(key_holder("b").hash, 1);
  }
  REQUIRE(c.put(key_holder("a"), val("A"), 1, life, &sk));  // room: admitted whatever
  REQUIRE(c.put(key_holder("b"), val("B"), 1, life, &sk));
  sk.increment(key_holder("c").hash, 1);
  CHECK_FALSE(c.put(key_holder("c"), val("C"), 1, life, &sk));  // 1 < 5: kept out
  CHECK(c.get(key_holder("c")) == nullptr);
  CHECK(str(c.get(key_holder("a"))) == "A");
  CHECK(str(c.get(key_holder("b"))) == "B");
  CHECK(c.admissions_refused() == 1);
  for (int i = 0; i < 8; ++i) sk.increment(key_holder("d").hash, 1);
  CHECK(c.put(key_holder("d"), val("D"), 1, life, &sk));  // 8 >= 5: evicts one
  CHECK(str(c.get(key_holder("d"))) == "D");
  CHECK(c.size() == 2);
  CHECK(c.admissions_refused() == 1);
  // A value already held is replaced whatever its frequency.
  CHECK(c.put(key_holder("d"), val("D2"), 1, life, &sk));
  CHECK(str(c.get(key_holder("d"))) == "D2");
  // Without a filter, every key gets in.
  CHECK(c.put(key_holder("e"), val("E"), 1, life));
  CHECK(str(c.get(key_holder("e"))) == "E");
}

TEST_CASE("admission: an expired victim always yields") {
  auto clock = std::make_shared<distcache::test::manual_clock>();
  distcache::detail::frequency_sketch sk(1024);
  value_cache c(static_cast<std::int64_t>(value_cache::charge(1, 1)), 1, clock.get());
  for (int i = 0; i < 9; ++i) sk.increment(key_holder("a").hash, 1);
  REQUIRE(c.put(key_holder("a"), val("A"), 1,
                distcache::detail::lifetime::until(clock->now() + std::chrono::seconds(1)), &sk));
  clock->advance(std::chrono::seconds(1));
  CHECK(c.put(key_holder("n"), val("N"), 1,
              distcache::detail::lifetime::until(distcache::never_expires), &sk));
  CHECK(str(c.get(key_holder("n"))) == "N");
}

TEST_CASE("for_each_key visits every live key once") {
  value_cache c(1 << 20, 4, nullptr);
  for (int i = 0; i < 50; ++i) {
    REQUIRE(c.put(key_holder("k" + std::to_string(i)), val("v"), 1, distcache::never_expires));
  }
  std::set<std::string> seen;
  c.for_each_key([&](std::string_view k, std::uint64_t h) {
    CHECK(h == distcache::detail::hash_key(k));
    seen.emplace(k);
  });
  CHECK(seen.size() == 50);
}

TEST_CASE("remove finds what is there after replacement, eviction and clear") {
  // remove() skips the lock when the cache holds nothing: the count it
  // reads must follow every way an entry comes and goes.
  value_cache c(value_cache::charge(1, 1) * 2, 1, nullptr);
  CHECK_FALSE(c.remove(key_holder("a")));  // empty
  REQUIRE(c.put(key_holder("a"), val("1"), 1, distcache::never_expires));
  REQUIRE(c.put(key_holder("a"), val("2"), 1, distcache::never_expires));  // replaced: still one
  CHECK(c.remove(key_holder("a")));
  CHECK_FALSE(c.remove(key_holder("a")));
  for (const char* k : {"b", "c", "d"})
    REQUIRE(c.put(key_holder(k), val("x"), 1, distcache::never_expires));
  CHECK(c.size() == 2);  // one evicted
  CHECK(c.remove(key_holder("d")));
  c.clear();
  CHECK_FALSE(c.remove(key_holder("c")));
  REQUIRE(c.put(key_holder("e"), val("y"), 1, distcache::never_expires));
  CHECK(c.remove(key_holder("e")));
  CHECK(c.size() == 0);
}

TEST_CASE("the table finds every key through colliding hashes, growth, removes and wrap-around") {
  // Hashes picked to collide: a few home slots, some at the end of the
  // table (their runs wrap to its start), equal hashes for different keys.
  // A model (std::map) says what must be found after each step.
  value_cache c(std::int64_t{1} << 30, 1, nullptr);
  std::map<std::string, std::string> model;
  std::mt19937_64 rng(42);
  struct owned {
    std::string text;
    std::uint64_t hash;
  };
  std::vector<owned> keys;
  for (std::uint64_t i = 0; i < 300; ++i) {
    const std::uint64_t home = std::array<std::uint64_t, 5>{0, 1, 15, 31, 1023}[i % 5];
    // Bits above any table size this test reaches: different hashes with
    // the same home slot, and every 7th key the same hash as the one before.
    const std::uint64_t high = (i % 7 == 0 && i > 0 ? i - 1 : i) << 20;
    keys.push_back({"k" + std::to_string(i), home | high});
  }
  for (int step = 0; step < 20000; ++step) {
    const owned& k = keys[rng() % keys.size()];
    const hashed_key hk{k.text, k.hash};
    switch (rng() % 3) {
      case 0:
      case 1: {
        const std::string v = std::to_string(step);
        REQUIRE(c.put(hk, val(v), v.size(), distcache::never_expires));
        model[k.text] = v;
        break;
      }
      default:
        CHECK(c.remove(hk) == (model.erase(k.text) == 1));
    }
    if (step % 97 == 0) {
      for (const auto& key : keys) {
        auto it = model.find(key.text);
        CHECK(str(c.get(hashed_key{key.text, key.hash})) ==
              (it == model.end() ? std::string("<miss>") : it->second));
      }
      CHECK(c.size() == model.size());
    }
  }
  std::set<std::string> visited;
  c.for_each_key([&](std::string_view key, std::uint64_t) { visited.emplace(key); });
  CHECK(visited.size() == model.size());
  c.clear();
  CHECK(c.size() == 0);
  for (const auto& key : keys) CHECK(c.get(hashed_key{key.text, key.hash}) == nullptr);
}

TEST_CASE("readers see whole entries while a writer grows, shrinks and rewrites the table") {
  // Hits take no lock a writer waits on in turn: they announce themselves
  // on their own stripe, and a writer waits for them to leave. Readers here
  // run through every growth of the table and every removal (ASan and TSan
  // report a reader that touched a slot table or entry a writer freed).
  value_cache c(std::int64_t{1} << 30, 2, nullptr);
  std::atomic<bool> done{false};
  std::atomic<long> hits{0};
  std::vector<std::thread> readers;
  readers.reserve(3);
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t));
      while (!done.load()) {
        const key_holder k("k" + std::to_string(rng() % 4000));
        if (auto v = c.get(k)) {
          REQUIRE(str(v).rfind(k.text + "=", 0) == 0);  // this key's value, whole
          hits.fetch_add(1);
        }
      }
    });
  }
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 4000; ++i) {
      const key_holder k("k" + std::to_string(i));
      REQUIRE(c.put(k, val(k.text + "=" + std::to_string(round)), 8, distcache::never_expires));
    }
    for (int i = 0; i < 4000; i += 2) c.remove(key_holder("k" + std::to_string(i)));
  }
  c.clear();
  done.store(true);
  for (auto& t : readers) t.join();
  CHECK(hits.load() > 0);
  CHECK(c.size() == 0);
}
