// Must not compile: `orders` is not one of the engine's keyspaces. The test
// checks that the compiler names the problem in one readable line.
#include <distcache/engine.hpp>

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
struct orders {
  static constexpr std::string_view name = "orders";
  using value_type = std::string;
  std::int64_t max_bytes = 1 << 20;
  str_source source;
};
}  // namespace

int main() {
  distcache::engine<users> e{distcache::config{}, users{}};
  (void)e.get<orders>("o:1");
}
