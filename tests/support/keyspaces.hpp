// Keyspaces shared by the engine tests.
#ifndef DISTCACHE_TESTS_SUPPORT_KEYSPACES_HPP
#define DISTCACHE_TESTS_SUPPORT_KEYSPACES_HPP

#include <cstdint>
#include <distcache/engine.hpp>
#include <string>
#include <string_view>

#include "support/sources.hpp"

namespace distcache::test {

struct users {
  static constexpr std::string_view name = "users";
  using value_type = std::string;
  std::int64_t max_bytes = 1 << 20;
  scripted_source source;
};

/// Counts loads of int values computed from the key; never fails.
struct counter_source {
  std::shared_ptr<std::atomic<int>> calls = std::make_shared<std::atomic<int>>(0);
  fetch_result<int> fetch(std::string_view key) {
    calls->fetch_add(1);
    return static_cast<int>(key.size());
  }
};

struct lengths {
  static constexpr std::string_view name = "lengths";
  using value_type = int;
  std::int64_t max_bytes = 1 << 20;
  counter_source source;
};

using test_engine = engine<users, lengths>;

}  // namespace distcache::test

#endif  // DISTCACHE_TESTS_SUPPORT_KEYSPACES_HPP
