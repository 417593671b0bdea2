// Keyspaces of the compile-time benchmark's user programs.
#ifndef DISTCACHE_BENCH_COMPILE_TIME_USER_KEYSPACES_HPP
#define DISTCACHE_BENCH_COMPILE_TIME_USER_KEYSPACES_HPP

#include <cstdint>
#include <distcache/keyspace.hpp>
#include <string>
#include <string_view>

struct point {
  double x, y;
};

struct name_source {
  distcache::fetch_result<std::string> fetch(std::string_view key) const {
    return std::string(key);
  }
};
struct point_source {
  distcache::fetch_result<point> fetch(std::string_view key) const {
    return point{static_cast<double>(key.size()), 0};
  }
};
struct label_source {
  distcache::fetch_result<std::int64_t> fetch(std::string_view key) const {
    return static_cast<std::int64_t>(key.size());
  }
};

struct names {
  static constexpr std::string_view name = "names";
  using value_type = std::string;
  std::int64_t max_bytes = 1 << 20;
  name_source source;
};
struct points {
  static constexpr std::string_view name = "points";
  using value_type = point;
  std::int64_t max_bytes = 1 << 20;
  point_source source;
};
struct labels {
  static constexpr std::string_view name = "labels";
  using value_type = std::int64_t;
  std::int64_t max_bytes = 1 << 20;
  label_source source;
};

#endif  // DISTCACHE_BENCH_COMPILE_TIME_USER_KEYSPACES_HPP
