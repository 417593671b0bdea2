// Compiled against an installed distcache (or one added with
// add_subdirectory, or found with pkg-config): starts an engine, stores a
// value, reads it back and loads a miss from its data source. Built twice by
// tests/install: header-only and against distcache::compiled.
#include <distcache/engine.hpp>
#include <iostream>
#include <string>
#include <string_view>

namespace {

struct greeting_source {
  distcache::fetch_result<std::string> fetch(std::string_view key) const {
    if (key == "absent") return distcache::not_found;
    return "hello " + std::string(key);
  }
};

struct greetings {
  static constexpr std::string_view name = "greetings";
  using value_type = std::string;
  std::int64_t max_bytes = 1 << 20;
  greeting_source source;
};

int fail(const std::string& what) {
  std::cerr << "consumer: " << what << '\n';
  return 1;
}

}  // namespace

int main() {
  distcache::config cfg;
  cfg.threads = 1;
  distcache::engine<greetings> cache{cfg, greetings{}};
  if (auto r = cache.start(); !r) return fail("start: " + r.error().message());
  if (auto r = cache.put<greetings>("stored", "put value"); !r) return fail("put failed");
  auto stored = cache.get<greetings>("stored");
  if (!stored || **stored != "put value") return fail("get of a put value failed");
  auto loaded = cache.get<greetings>("world");
  if (!loaded || **loaded != "hello world") return fail("miss not loaded from the source");
  if (cache.get<greetings>("absent").error() != distcache::errc::not_found) {
    return fail("not_found not reported");
  }
  if (cache.stats<greetings>().local_loads != 1) return fail("expected exactly one source call");
  if (auto r = cache.stop(); !r) return fail("stop failed");
  std::cout << "consumer: started, put, get, miss loaded: ok\n";
  return 0;
}
