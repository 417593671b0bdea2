#include <distcache/serializers.hpp>
//
#include <doctest/doctest.h>

#include <boost/describe/class.hpp>
#include <boost/json/value_from.hpp>
#include <boost/json/value_to.hpp>
#include <cstdint>
#include <distcache/keyspace.hpp>
#include <string>

namespace ser_cases {
struct user {
  std::string name;
  int age = 0;
  bool operator==(const user&) const = default;
};
BOOST_DESCRIBE_STRUCT(user, (), (name, age))

// A type converted with hand-written value_from/value_to overloads.
struct money {
  std::int64_t cents = 0;
  bool operator==(const money&) const = default;
};
void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const money& m) {
  jv = boost::json::value{{"cents", m.cents}};
}
boost::json::result_for<money, boost::json::value>::type tag_invoke(
    boost::json::try_value_to_tag<money>, const boost::json::value& jv) {
  const auto* obj = jv.if_object();
  if (obj == nullptr) return boost::json::make_error_code(boost::json::error::not_object);
  const auto* c = obj->if_contains("cents");
  if (c == nullptr || !c->is_int64()) {
    return boost::json::make_error_code(boost::json::error::not_number);
  }
  return money{c->as_int64()};
}

// A double member, for numbers out of the range of a double.
struct reading {
  double value = 0;
  bool operator==(const reading&) const = default;
};
BOOST_DESCRIBE_STRUCT(reading, (), (value))

struct pod {
  std::int32_t a;
  double b;
};
}  // namespace ser_cases

using namespace ser_cases;
using distcache::errc;

template <class S, class T>
T round_trip(const T& v) {
  std::string bytes;
  S{}.serialize(v, bytes);
  auto r = S{}.deserialize(bytes);
  REQUIRE(r.has_value());
  return *r;
}

TEST_CASE("string and bytes serializers round-trip any content, including NUL bytes") {
  const std::string s("a\0b\xff", 4);
  CHECK(round_trip<distcache::string_serializer>(s) == s);
  CHECK(round_trip<distcache::string_serializer>(std::string()).empty());
  distcache::bytes b{std::byte{0}, std::byte{1}, std::byte{255}};
  CHECK(round_trip<distcache::bytes_serializer>(b) == b);
  CHECK(round_trip<distcache::bytes_serializer>(distcache::bytes{}).empty());
}

TEST_CASE("trivial serializer round-trips and rejects truncated or extended input") {
  pod p{42, 2.5};
  pod q = round_trip<distcache::trivial_serializer<pod>>(p);
  CHECK(q.a == 42);
  CHECK(q.b == 2.5);
  std::string bytes;
  distcache::trivial_serializer<pod>{}.serialize(p, bytes);
  auto truncated = distcache::trivial_serializer<pod>{}.deserialize(
      std::string_view(bytes).substr(0, bytes.size() - 1));
  CHECK(truncated.error() == errc::malformed_value);
  auto extended = distcache::trivial_serializer<pod>{}.deserialize(bytes + "x");
  CHECK(extended.error() == errc::malformed_value);
  CHECK(distcache::trivial_serializer<int>{}.deserialize("").error() == errc::malformed_value);
}

TEST_CASE("json serializer round-trips described structs and value_from/value_to types") {
  user u{"Ada", 36};
  CHECK(round_trip<distcache::json_serializer<user>>(u) == u);
  money m{1234};
  CHECK(round_trip<distcache::json_serializer<money>>(m) == m);
  std::string text;
  distcache::json_serializer<user>{}.serialize(u, text);
  CHECK(text.find("\"Ada\"") != std::string::npos);
}

TEST_CASE("json serializer turns garbage, truncation and wrong shapes into malformed_value") {
  distcache::json_serializer<user> s;
  CHECK(s.deserialize("").error() == errc::malformed_value);
  CHECK(s.deserialize("{\"name\":\"Ada\",\"age\":3").error() == errc::malformed_value);
  CHECK(s.deserialize("\x01\x02\xff garbage").error() == errc::malformed_value);
  CHECK(s.deserialize("[1,2,3]").error() == errc::malformed_value);
  CHECK(s.deserialize("{\"name\":\"Ada\"}").error() == errc::malformed_value);
  CHECK(s.deserialize("{\"name\":1,\"age\":\"x\"}").error() == errc::malformed_value);
  CHECK(distcache::json_serializer<money>{}.deserialize("{\"cents\":\"no\"}").error() ==
        errc::malformed_value);
  CHECK(distcache::json_serializer<money>{}.deserialize("7").error() == errc::malformed_value);
}

// Found by tests/fuzz/json_fuzz.cpp (corpus/json/crash-infinity-exponent):
// Boost.JSON reads 1e320 as an infinity, which serialized back as
// "Infinity", text no node could decode.
TEST_CASE("json serializer refuses numbers a double cannot hold, so what decodes re-encodes") {
  distcache::json_serializer<reading> s;
  CHECK(s.deserialize("{\"value\":1e320}").error() == errc::malformed_value);
  CHECK(s.deserialize("{\"value\":-1e320}").error() == errc::malformed_value);
  CHECK(s.deserialize("{\"value\":[1e999]}").error() == errc::malformed_value);
  auto big = s.deserialize("{\"value\":1.7976931348623157e308}");
  REQUIRE(big.has_value());
  std::string text;
  s.serialize(*big, text);
  auto again = s.deserialize(text);
  REQUIRE(again.has_value());
  CHECK(*again == *big);
}

TEST_CASE("default serializers are deduced from the value type") {
  CHECK(std::is_same_v<distcache::default_serializer_t<std::string>, distcache::string_serializer>);
  CHECK(std::is_same_v<distcache::default_serializer_t<distcache::bytes>,
                       distcache::bytes_serializer>);
  CHECK(std::is_same_v<distcache::default_serializer_t<pod>, distcache::trivial_serializer<pod>>);
  CHECK(std::is_same_v<distcache::default_serializer_t<user>, distcache::json_serializer<user>>);
  // Trivially-copyable types take the trivial serializer even when they also
  // convert to JSON; a keyspace names json_serializer to choose otherwise.
  CHECK(
      std::is_same_v<distcache::default_serializer_t<money>, distcache::trivial_serializer<money>>);
}
