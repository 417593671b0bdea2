// distcache — formatting of values in error messages.
#ifndef DISTCACHE_DETAIL_FORMAT_HPP
#define DISTCACHE_DETAIL_FORMAT_HPP

#include <chrono>
#include <distcache/clock.hpp>
#include <string>

namespace distcache::detail {

/// A duration in the largest unit that shows it exactly ("1500ms", "2s").
inline std::string format_duration(duration d) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  if (ns % 1'000'000'000 == 0) return std::to_string(ns / 1'000'000'000) + "s";
  if (ns % 1'000'000 == 0) return std::to_string(ns / 1'000'000) + "ms";
  if (ns % 1'000 == 0) return std::to_string(ns / 1'000) + "us";
  return std::to_string(ns) + "ns";
}

}  // namespace distcache::detail

#endif  // DISTCACHE_DETAIL_FORMAT_HPP
