// Must not compile, once per CASE_*: each mistake a user can make with an
// engine's template arguments stops the compilation with one readable
// static_assert, and tests/CMakeLists.txt checks its message.
#include <distcache/engine.hpp>
#include <string>
#include <string_view>

namespace {
struct str_source {
  distcache::fetch_result<std::string> fetch(std::string_view k) { return std::string(k); }
};
struct users {
  static constexpr std::string_view name = "users";
  using value_type = std::string;
  std::int64_t max_bytes = 1 << 20;
  str_source source;
};

#if defined(CASE_NO_NAME)
struct bad {
  using value_type = std::string;
  std::int64_t max_bytes = 1 << 20;
  str_source source;
};
#elif defined(CASE_NO_VALUE_TYPE)
struct bad {
  static constexpr std::string_view name = "bad";
  std::int64_t max_bytes = 1 << 20;
  str_source source;
};
#elif defined(CASE_NO_MAX_BYTES)
struct bad {
  static constexpr std::string_view name = "bad";
  using value_type = std::string;
  str_source source;
};
#elif defined(CASE_NO_SOURCE)
struct bad {
  static constexpr std::string_view name = "bad";
  using value_type = std::string;
  std::int64_t max_bytes = 1 << 20;
};
#elif defined(CASE_NO_SERIALIZER)
struct opaque {
  std::string text;  // not trivially copyable, not described: nothing to deduce
};
struct opaque_source {
  distcache::fetch_result<opaque> fetch(std::string_view k) { return opaque{std::string(k)}; }
};
struct bad {
  static constexpr std::string_view name = "bad";
  using value_type = opaque;
  std::int64_t max_bytes = 1 << 20;
  opaque_source source;
};
#elif defined(CASE_BAD_SERIALIZER)
struct not_a_serializer {};
struct bad {
  static constexpr std::string_view name = "bad";
  using value_type = std::string;
  using serializer = not_a_serializer;
  std::int64_t max_bytes = 1 << 20;
  str_source source;
};
#elif defined(CASE_UNKNOWN_KEYSPACE)
struct orders {  // a keyspace, but not one of the engine's
  static constexpr std::string_view name = "orders";
  using value_type = std::string;
  std::int64_t max_bytes = 1 << 20;
  str_source source;
};
#elif defined(CASE_DUPLICATE_NAMES)
struct bad {
  static constexpr std::string_view name = "users";  // as the other keyspace
  using value_type = std::string;
  std::int64_t max_bytes = 1 << 20;
  str_source source;
};
#endif

struct not_a_policy {};
}  // namespace

int main() {
#if defined(CASE_NO_KEYSPACE)
  distcache::basic_engine<distcache::policies<>> e{distcache::config{}};
#elif defined(CASE_UNKNOWN_KEYSPACE)
  distcache::engine<users> e{distcache::config{}, users{}};
  (void)e.get<orders>("o:1");
#elif defined(CASE_HTTP_NOT_INCLUDED)
  // transport::automatic picks transport::http for a non-standalone provider;
  // <distcache/transport/http.hpp> is not included here.
  distcache::basic_engine<distcache::policies<distcache::discovery::static_peers>, users> e{
      distcache::config{}, users{}};
#elif defined(CASE_BAD_TRANSPORT)
  distcache::basic_engine<distcache::policies<distcache::discovery::standalone, not_a_policy>,
                          users>
      e{distcache::config{}, users{}};
#elif defined(CASE_BAD_DISCOVERY)
  distcache::basic_engine<distcache::policies<not_a_policy>, users> e{distcache::config{}, users{}};
#elif defined(CASE_BAD_RATE_LIMITER)
  distcache::basic_engine<distcache::policies<distcache::discovery::standalone,
                                              distcache::transport::none, not_a_policy>,
                          users>
      e{distcache::config{}, users{}};
#elif defined(CASE_BAD_CIRCUIT_BREAKER)
  distcache::basic_engine<
      distcache::policies<distcache::discovery::standalone, distcache::transport::none,
                          distcache::protection::no_rate_limiter, not_a_policy>,
      users>
      e{distcache::config{}, users{}};
#elif defined(CASE_OTLP_NOT_INCLUDED)
  // telemetry::otlp is declared by <distcache/engine.hpp>, defined by
  // <distcache/telemetry/otlp.hpp>, which is not included here.
  distcache::basic_engine<
      distcache::policies<distcache::discovery::standalone, distcache::transport::none,
                          distcache::protection::no_rate_limiter,
                          distcache::protection::no_circuit_breaker, distcache::telemetry::otlp>,
      users>
      e{distcache::config{}, users{}};
#elif defined(CASE_BAD_TELEMETRY)
  distcache::basic_engine<
      distcache::policies<distcache::discovery::standalone, distcache::transport::none,
                          distcache::protection::no_rate_limiter,
                          distcache::protection::no_circuit_breaker, not_a_policy>,
      users>
      e{distcache::config{}, users{}};
#elif defined(CASE_READ_RETURNS_REFERENCE)
  distcache::engine<users> e{distcache::config{}, users{}};
  // A reference into the cached value would outlive the read lock.
  (void)e.read<users>("u:1", [](const std::string& v) -> const std::string& { return v; });
#else
  distcache::engine<users, bad> e{distcache::config{}, users{}, bad{}};
#endif
  (void)e;
}
