// libFuzzer target: json_serializer's decode (a value read from a peer or a
// cache goes through it). Any text either decodes or gives
// errc::malformed_value; what decodes must survive a round trip.
#include <distcache/serializers.hpp>

#include <algorithm>
#include <boost/describe/class.hpp>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct address {
  std::string city;
  std::vector<std::int64_t> codes;
};
BOOST_DESCRIBE_STRUCT(address, (), (city, codes))

struct user {
  std::string name;
  std::int64_t age = 0;
  double score = 0;
  bool active = false;
  std::vector<address> addresses;
  std::map<std::string, std::string> tags;
};
BOOST_DESCRIBE_STRUCT(user, (), (name, age, score, active, addresses, tags))

bool same(const address& a, const address& b) { return a.city == b.city && a.codes == b.codes; }

bool same(const user& a, const user& b) {
  if (a.name != b.name || a.age != b.age || a.active != b.active || a.tags != b.tags ||
      a.addresses.size() != b.addresses.size()) {
    return false;
  }
  // Boost.JSON 1.81 does not always round a decimal to the nearest double
  // (Boost 1.83 added a precise mode), so a double may come back a few
  // units in the last place off (docs/concepts.md#serializers). Infinities
  // never decode (json_numbers_finite).
  const double scale = std::max(std::abs(a.score), std::abs(b.score));
  if (std::abs(a.score - b.score) > 4 * std::numeric_limits<double>::epsilon() * scale +
                                        4 * std::numeric_limits<double>::denorm_min()) {
    return false;
  }
  for (std::size_t i = 0; i < a.addresses.size(); ++i) {
    if (!same(a.addresses[i], b.addresses[i])) return false;
  }
  return true;
}

void check(bool ok) {
  if (!ok) std::abort();  // libFuzzer reports the input
}

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): the entry point libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using serializer = distcache::json_serializer<user>;
  const std::string_view text(reinterpret_cast<const char*>(data), size);  // NOLINT
  auto decoded = serializer::deserialize(text);
  if (!decoded) {
    check(decoded.error() == distcache::errc::malformed_value);
    return 0;
  }
  std::string again;
  serializer::serialize(*decoded, again);
  auto twice = serializer::deserialize(again);
  check(twice.has_value() && same(*decoded, *twice));
  return 0;
}
