#include <distcache/core/keyspace_adapter.hpp>
//
#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace adapter_cases {

using namespace std::chrono_literals;

struct answers {
  distcache::fetch_result<std::string> fetch(std::string_view key) const {
    if (key == "missing") return distcache::not_found;
    if (key == "broken") return distcache::make_error_code(distcache::errc::data_source_failed);
    if (key == "throws") throw std::runtime_error("source down");
    if (key == "dated") return {std::string(40, 'd'), distcache::time_point{} + 5s};
    return std::string(key);
  }
};
struct texts {
  static constexpr std::string_view name = "texts";
  using value_type = std::string;
  std::int64_t max_bytes = 1 << 20;
  answers source;
};
struct counted {  // states its own size and its expiry
  static constexpr std::string_view name = "counted";
  using value_type = std::string;
  std::int64_t max_bytes = 1 << 20;
  answers source;
  std::size_t value_bytes(const std::string& v) const { return 1000 + v.size(); }
  distcache::time_point expires_at(std::string_view) const { return distcache::time_point{} + 9s; }
};
struct numbers_source {
  distcache::fetch_result<std::int64_t> fetch(std::string_view key) const {
    return static_cast<std::int64_t>(key.size());
  }
};
struct numbers {
  static constexpr std::string_view name = "numbers";
  using value_type = std::int64_t;
  std::int64_t max_bytes = 4096;
  numbers_source source;
};

}  // namespace adapter_cases

using namespace adapter_cases;
using distcache::detail::keyspace_adapter_for;

TEST_CASE("the keyspace adapter fetches, measures and dates a value") {
  keyspace_adapter_for<texts> a{texts{}};
  CHECK(a.name() == "texts");
  CHECK(a.max_bytes() == (1 << 20));
  auto v = a.fetch("a key that is longer than the small-string buffer");
  REQUIRE(v.has_value());
  const auto& text = *static_cast<const std::string*>(v->value.get());
  CHECK(text == "a key that is longer than the small-string buffer");
  CHECK(v->bytes == sizeof(std::string) + text.capacity() + 1);  // heap bytes counted
  CHECK(v->expires_at == distcache::time_point::min());          // no expiry of its own
  auto dated = a.fetch("dated");
  REQUIRE(dated.has_value());
  CHECK(dated->expires_at == distcache::time_point{} + 5s);
  CHECK_FALSE(a.expires_at("k").has_value());  // the keyspace declares none
}

TEST_CASE("the keyspace adapter reports not_found and errors, and lets exceptions through") {
  keyspace_adapter_for<texts> a{texts{}};
  CHECK(a.fetch("missing").error() == distcache::errc::not_found);
  CHECK(a.fetch("broken").error() == distcache::errc::data_source_failed);
  CHECK_THROWS_AS((void)a.fetch("throws"), std::runtime_error);  // the core catches it
}

TEST_CASE("the keyspace adapter uses a keyspace's own value_bytes and expires_at") {
  keyspace_adapter_for<counted> a{counted{}};
  auto v = a.fetch("abc");
  REQUIRE(v.has_value());
  CHECK(v->bytes == sizeof(std::string) + 1000 + 3);
  CHECK(a.value_bytes(v->value.get()) == v->bytes);
  REQUIRE(a.expires_at("abc").has_value());
  CHECK(*a.expires_at("abc") == distcache::time_point{} + 9s);
}

TEST_CASE("the keyspace adapter encodes and decodes through the keyspace's serializer") {
  keyspace_adapter_for<numbers> a{numbers{}};
  auto v = a.fetch("four");
  REQUIRE(v.has_value());
  std::string encoded;
  a.serialize(v->value.get(), encoded);
  CHECK(encoded.size() == sizeof(std::int64_t));
  auto decoded = a.deserialize(encoded);
  REQUIRE(decoded.has_value());
  CHECK(*static_cast<const std::int64_t*>(decoded->value.get()) == 4);
  CHECK(decoded->bytes == sizeof(std::int64_t));
  CHECK(a.deserialize("short").error() == distcache::errc::malformed_value);  // garbage from a peer
}
