#include <distcache/cache/detail/singleflight.hpp>
//
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <distcache/detail/hash.hpp>
#include <memory>
#include <string>
#include <vector>

using distcache::errc;
using distcache::detail::hashed_key;
using distcache::detail::singleflight;

namespace {
struct recording_waiter final : distcache::detail::waiter {
  int completions = 0;
  distcache::error_code ec;
  std::shared_ptr<const void> value;
  void complete(distcache::error_code e, std::shared_ptr<const void> v) override {
    ++completions;
    ec = e;
    value = std::move(v);
  }
};
hashed_key key(const std::string& s) { return {s, distcache::detail::hash_key(s)}; }
}  // namespace

TEST_CASE("singleflight makes the first caller the leader and the others wait") {
  singleflight sf;
  const std::string k = "user:1";
  std::vector<std::shared_ptr<recording_waiter>> ws;
  int leaders = 0;
  for (int i = 0; i < 10; ++i) {
    ws.push_back(std::make_shared<recording_waiter>());
    if (sf.join(key(k), ws.back())) ++leaders;
  }
  CHECK(leaders == 1);
  CHECK(sf.in_flight() == 1);
  auto value = std::make_shared<const std::string>("v");
  int published = 0;
  CHECK(sf.finish(key(k), {}, value, [&] {
    ++published;
    return distcache::error_code{};
  }) == 10);
  CHECK(published == 1);
  for (auto& w : ws) {
    CHECK(w->completions == 1);
    CHECK(!w->ec);
    CHECK(w->value == value);
  }
  CHECK(sf.in_flight() == 0);
}

TEST_CASE("singleflight delivers an error to every waiter and publishes nothing") {
  singleflight sf;
  auto a = std::make_shared<recording_waiter>();
  auto b = std::make_shared<recording_waiter>();
  sf.join(key("k"), a);
  sf.join(key("k"), b);
  bool published = false;
  sf.finish(key("k"), distcache::make_error_code(errc::data_source_failed), nullptr, [&] {
    published = true;
    return distcache::error_code{};
  });
  CHECK(!published);
  CHECK(a->ec == errc::data_source_failed);
  CHECK(b->ec == errc::data_source_failed);
}

TEST_CASE("an abandoned waiter leaves alone; the flight goes on for the others") {
  singleflight sf;
  auto a = std::make_shared<recording_waiter>();
  auto b = std::make_shared<recording_waiter>();
  sf.join(key("k"), a);
  sf.join(key("k"), b);
  CHECK(sf.abandon(key("k"), a.get()));
  CHECK(!sf.abandon(key("k"), a.get()));  // only once
  CHECK(sf.in_flight() == 1);
  sf.finish(key("k"), {}, std::make_shared<const int>(1), [] { return distcache::error_code{}; });
  CHECK(a->completions == 0);  // the abandoner completes it, not the flight
  CHECK(b->completions == 1);
  CHECK(!sf.abandon(key("k"), b.get()));  // already taken by the flight
}

TEST_CASE("an invalidated flight does not publish but still answers its waiters") {
  singleflight sf;
  auto a = std::make_shared<recording_waiter>();
  sf.join(key("k"), a);
  sf.invalidate(key("k"));
  bool published = false;
  sf.finish(key("k"), {}, std::make_shared<const int>(1), [&] {
    published = true;
    return distcache::error_code{};
  });
  CHECK(!published);
  CHECK(a->completions == 1);
  CHECK(!a->ec);
  // Told that the value was overtaken, so that a peer is not told to keep it.
  CHECK(a->expires_at == distcache::detail::superseded_expiry);
  auto b = std::make_shared<recording_waiter>();
  sf.join(key("k"), b);
  const auto later = distcache::clock_type::now() + std::chrono::seconds(5);
  sf.finish(
      key("k"), {}, std::make_shared<const int>(2), [] { return distcache::error_code{}; }, later);
  CHECK(b->expires_at == later);
}

TEST_CASE("a publish error replaces the outcome for every waiter") {
  singleflight sf;
  auto a = std::make_shared<recording_waiter>();
  sf.join(key("k"), a);
  sf.finish(key("k"), {}, std::make_shared<const int>(1),
            [] { return distcache::make_error_code(errc::value_too_large); });
  CHECK(a->ec == errc::value_too_large);
  CHECK(a->value == nullptr);
}

TEST_CASE("abandon_all completes every waiter of every flight") {
  singleflight sf;
  auto a = std::make_shared<recording_waiter>();
  auto b = std::make_shared<recording_waiter>();
  sf.join(key("x"), a);
  sf.join(key("y"), b);
  sf.abandon_all(distcache::make_error_code(errc::stopped));
  CHECK(a->ec == errc::stopped);
  CHECK(b->ec == errc::stopped);
  CHECK(sf.in_flight() == 0);
  // A load finishing afterwards finds no flight and completes nobody.
  CHECK(sf.finish(key("x"), {}, nullptr, [] { return distcache::error_code{}; }) == 0);
}

TEST_CASE("a join after abandon_all completes at once with the same error") {
  singleflight sf;
  sf.abandon_all(distcache::make_error_code(errc::stopped));
  auto late = std::make_shared<recording_waiter>();
  CHECK(!sf.join(key("k"), late));  // never the leader: nothing must load
  CHECK(late->completions == 1);
  CHECK(late->ec == errc::stopped);
  CHECK(sf.in_flight() == 0);
}

TEST_CASE("lead starts a flight without a waiter; later callers join it") {
  singleflight sf;
  CHECK(sf.lead(key("k")));
  CHECK_FALSE(sf.lead(key("k")));  // one background reload at a time
  auto w = std::make_shared<recording_waiter>();
  CHECK_FALSE(sf.join(key("k"), w));  // joins the reload, does not lead
  auto value = std::make_shared<const int>(7);
  CHECK(sf.finish(key("k"), {}, value, [] { return distcache::error_code{}; }) == 1);
  CHECK(w->value == value);
  CHECK(sf.in_flight() == 0);
  sf.abandon_all(distcache::make_error_code(errc::stopped));
  CHECK_FALSE(sf.lead(key("k")));  // closed
}

TEST_CASE("finish_not_found publishes unless invalidated and answers not_found") {
  singleflight sf;
  auto w = std::make_shared<recording_waiter>();
  REQUIRE(sf.join(key("a"), w));
  int published = 0;
  CHECK(sf.finish_not_found(key("a"), [&] { ++published; }) == 1);
  CHECK(published == 1);
  CHECK(w->ec == errc::not_found);
  CHECK(w->value == nullptr);
  auto w2 = std::make_shared<recording_waiter>();
  REQUIRE(sf.join(key("b"), w2));
  sf.invalidate(key("b"));  // a put arrived while the source said not_found
  CHECK(sf.finish_not_found(key("b"), [&] { ++published; }) == 1);
  CHECK(published == 1);
  CHECK(w2->ec == errc::not_found);
  CHECK(w2->expires_at == distcache::detail::superseded_expiry);
  CHECK(w->expires_at == distcache::never_expires);
  CHECK(sf.finish_not_found(key("none"), [&] { ++published; }) == 0);
}
