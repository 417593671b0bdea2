#include <distcache/keyspace.hpp>
//
#include <doctest/doctest.h>

#include <boost/describe/class.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace concept_cases {

struct point {
  int x;
  int y;
};

struct person {
  std::string name;
  int age;
};
BOOST_DESCRIBE_STRUCT(person, (), (name, age))

struct opaque {  // neither trivially copyable nor described
  std::string text;
  std::vector<int> numbers;
};

struct string_source {
  distcache::fetch_result<std::string> fetch(std::string_view k) { return std::string(k); }
};
struct person_source {
  distcache::fetch_result<person> fetch(std::string_view) { return distcache::not_found; }
};
struct plain_value_source {  // returns a bare value: convertible to fetch_result
  int fetch(std::string_view) { return 7; }
};
struct wrong_source {
  std::string load(std::string_view k) { return std::string(k); }
};
struct wrong_type_source {
  distcache::fetch_result<int> fetch(std::string_view) { return 1; }
};

struct good {
  static constexpr std::string_view name = "good";
  using value_type = std::string;
  std::int64_t max_bytes = 1 << 20;
  string_source source;
};
struct described {
  static constexpr std::string_view name = "people";
  using value_type = person;
  std::int64_t max_bytes = 1 << 20;
  person_source source;
  distcache::time_point expires_at(std::string_view) const { return distcache::never_expires; }
};
struct trivially {
  static constexpr std::string_view name = "ints";
  using value_type = int;
  std::int64_t max_bytes = 1 << 20;
  plain_value_source source;
};
struct no_name {
  using value_type = std::string;
  std::int64_t max_bytes = 1;
  string_source source;
};
struct runtime_name {  // the name must be a compile-time constant
  std::string name = "x";
  using value_type = std::string;
  std::int64_t max_bytes = 1;
  string_source source;
};
struct no_budget {
  static constexpr std::string_view name = "nb";
  using value_type = std::string;
  string_source source;
};
struct bad_source {
  static constexpr std::string_view name = "bs";
  using value_type = std::string;
  std::int64_t max_bytes = 1;
  wrong_source source;
};
struct mismatched_source {
  static constexpr std::string_view name = "ms";
  using value_type = std::string;
  std::int64_t max_bytes = 1;
  wrong_type_source source;
};
struct opaque_source {
  distcache::fetch_result<opaque> fetch(std::string_view) { return distcache::not_found; }
};
struct no_serializer {
  static constexpr std::string_view name = "ns";
  using value_type = opaque;
  std::int64_t max_bytes = 1;
  opaque_source source;
};
struct opaque_serializer {
  void serialize(const opaque& v, std::string& out) const { out += v.text; }
  distcache::result<opaque> deserialize(std::string_view in) const {
    return opaque{std::string(in), {}};
  }
};
struct named_serializer {
  static constexpr std::string_view name = "named";
  using value_type = opaque;
  using serializer = opaque_serializer;
  std::int64_t max_bytes = 1;
  opaque_source source;
};
struct half_serializer {  // no deserialize
  void serialize(const opaque&, std::string&) const {}
};

}  // namespace concept_cases

using namespace concept_cases;

// Models.
static_assert(distcache::keyspace<good>);
static_assert(distcache::keyspace<described>);
static_assert(distcache::keyspace<trivially>);
static_assert(distcache::keyspace<named_serializer>);
static_assert(distcache::has_expires_at<described>);
static_assert(!distcache::has_expires_at<good>);
static_assert(distcache::data_source<string_source, std::string>);
static_assert(distcache::data_source<plain_value_source, int>);
static_assert(distcache::serializer_for<distcache::string_serializer, std::string>);
static_assert(distcache::serializer_for<distcache::bytes_serializer, distcache::bytes>);
static_assert(distcache::serializer_for<distcache::json_serializer<person>, person>);
static_assert(distcache::serializer_for<distcache::trivial_serializer<point>, point>);
static_assert(distcache::serializer_for<opaque_serializer, opaque>);

// Non-models.
static_assert(!distcache::keyspace<no_name>);
static_assert(!distcache::keyspace<runtime_name>);
static_assert(!distcache::keyspace<no_budget>);
static_assert(!distcache::keyspace<bad_source>);
static_assert(!distcache::keyspace<mismatched_source>);
static_assert(!distcache::keyspace<no_serializer>);
static_assert(!distcache::data_source<wrong_source, std::string>);
static_assert(!distcache::data_source<wrong_type_source, std::string>);
static_assert(!distcache::serializer_for<half_serializer, opaque>);
static_assert(!distcache::serializer_for<distcache::string_serializer, int>);

// Deduced serializers.
static_assert(std::is_same_v<distcache::keyspace_serializer_t<good>, distcache::string_serializer>);
static_assert(std::is_same_v<distcache::keyspace_serializer_t<described>,
                             distcache::json_serializer<person>>);
static_assert(std::is_same_v<distcache::keyspace_serializer_t<trivially>,
                             distcache::trivial_serializer<int>>);
static_assert(
    std::is_same_v<distcache::keyspace_serializer_t<named_serializer>, opaque_serializer>);
static_assert(std::is_void_v<distcache::default_serializer_t<opaque>>);
static_assert(std::is_void_v<distcache::default_serializer_t<int*>>);

TEST_CASE("fetch_result distinguishes a value, not_found and an error") {
  distcache::fetch_result<std::string> v = std::string("x");
  distcache::fetch_result<std::string> nf = distcache::not_found;
  distcache::fetch_result<std::string> err = distcache::make_error_code(distcache::errc::timeout);
  CHECK(v.has_value());
  CHECK(v.value() == "x");
  CHECK(!v.error());
  CHECK(!v.has_expiry());
  CHECK(nf.is_not_found());
  CHECK(nf.error() == distcache::errc::not_found);
  CHECK(!err.has_value());
  CHECK(!err.is_not_found());
  CHECK(err.error() == distcache::errc::timeout);
  distcache::fetch_result<std::string> timed(std::string("y"), distcache::time_point{});
  CHECK(timed.has_expiry());
}
