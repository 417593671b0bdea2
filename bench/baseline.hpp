// What the benchmarks compare against and measure with, shared by bench_local
// and bench_scale: the baseline map, and the process's resident memory.
#ifndef DISTCACHE_BENCH_BASELINE_HPP
#define DISTCACHE_BENCH_BASELINE_HPP

#include <unistd.h>

#include <cstddef>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>

namespace bench {

using value_ptr = std::shared_ptr<const std::string>;

/// The baseline: a hash map under a reader/writer lock.
struct locked_map {
  std::shared_mutex mutex;
  std::unordered_map<std::string, value_ptr> map;

  value_ptr find(const std::string& key) {
    std::shared_lock lock(mutex);
    auto it = map.find(key);
    return it == map.end() ? nullptr : it->second;
  }

  /// `fn(value)` under the reader lock, without copying the handle: what
  /// read() is compared with. Returns std::nullopt when `key` is absent.
  template <class Fn>
  auto read(const std::string& key, Fn&& fn) -> std::optional<decltype(fn(std::string()))> {
    std::shared_lock lock(mutex);
    auto it = map.find(key);
    if (it == map.end()) return std::nullopt;
    return fn(*it->second);
  }
};

/// Resident memory of this process, in bytes.
inline std::size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t pages = 0;
  std::size_t resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace bench

#endif  // DISTCACHE_BENCH_BASELINE_HPP
