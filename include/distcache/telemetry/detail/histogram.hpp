// distcache — latency histograms of the engine's operations, written from
// many threads (striped like the counters), read by /metrics and exporters.
#ifndef DISTCACHE_TELEMETRY_DETAIL_HISTOGRAM_HPP
#define DISTCACHE_TELEMETRY_DETAIL_HISTOGRAM_HPP

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <distcache/cache/detail/counters.hpp>
#include <distcache/telemetry/telemetry.hpp>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define DISTCACHE_HAS_TSC 1  // __builtin_ia32_rdtsc: no intrinsics header to parse
#else
#define DISTCACHE_HAS_TSC 0
#endif

namespace distcache::telemetry::detail {

/// The clock operations are timed with: the CPU's time-stamp counter on
/// x86-64 when the kernel itself keeps time with it (its clocksource is
/// "tsc": invariant and synchronized across cores), read in about 9 ns
/// against 21 ns for steady_clock here (docs/performance.md); else
/// steady_clock. ticks() values are converted with to_ns().
class tick_clock {
 public:
  static std::uint64_t ticks() noexcept {
#if DISTCACHE_HAS_TSC
    if (instance().tsc_) return __builtin_ia32_rdtsc();
#endif
    return steady_ns();
  }
  /// Nanoseconds between two ticks() values (0 when `to` is earlier).
  static std::uint64_t to_ns(std::uint64_t from, std::uint64_t to) noexcept {
    if (to <= from) return 0;
    return static_cast<std::uint64_t>(static_cast<double>(to - from) * instance().ns_per_tick_);
  }
  static std::uint64_t steady_ns() noexcept {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::steady_clock::now().time_since_epoch())
                                          .count());
  }
  /// Measures the counter's rate once per process (a 2 ms spin), on first use.
  static void calibrate() noexcept { (void)instance(); }

 private:
  tick_clock() noexcept {
#if DISTCACHE_HAS_TSC
    // NOLINTNEXTLINE(cppcoreguidelines-owning-memory): closed below
    if (std::FILE* f =
            std::fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r")) {
      std::array<char, 32> source{};
      tsc_ = std::fgets(source.data(), static_cast<int>(source.size()), f) != nullptr &&
             std::strncmp(source.data(), "tsc\n", sizeof "tsc\n") == 0;
      std::fclose(f);  // NOLINT(cert-err33-c): nothing to do when closing a read file fails
    }
    if (tsc_) {
      const std::uint64_t t0 = steady_ns();
      const std::uint64_t c0 = __builtin_ia32_rdtsc();
      std::uint64_t t1 = t0;
      while (t1 - t0 < 2'000'000) t1 = steady_ns();
      const std::uint64_t c1 = __builtin_ia32_rdtsc();
      if (c1 > c0) {
        ns_per_tick_ = static_cast<double>(t1 - t0) / static_cast<double>(c1 - c0);
      } else {
        tsc_ = false;
      }
    }
#endif
  }
  static const tick_clock& instance() noexcept {
    static const tick_clock clock;
    return clock;
  }
  bool tsc_ = false;
  double ns_per_tick_ = 1.0;
};

/// Upper bounds of the latency buckets, in nanoseconds: 10 µs … 10 s. A hit
/// (well under 10 µs) is found at the first comparison.
inline constexpr std::array<std::uint64_t, 19> latency_bounds_ns = {
    10'000,        25'000,        50'000,        100'000,       250'000,
    500'000,       1'000'000,     2'500'000,     5'000'000,     10'000'000,
    25'000'000,    50'000'000,    100'000'000,   250'000'000,   500'000'000,
    1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000};
/// Buckets: one per bound plus +Inf.
inline constexpr std::size_t latency_buckets = latency_bounds_ns.size() + 1;

/// A cumulative latency histogram with an error count.
class latency_histogram {
 public:
  void record(std::uint64_t ns, bool error) noexcept {
    auto& c = cells_[distcache::detail::striped_counter::stripe()];
    std::size_t b = 0;
    while (b < latency_bounds_ns.size() && ns > latency_bounds_ns[b]) ++b;
    c.buckets[b].fetch_add(1, std::memory_order_relaxed);
    c.sum_ns.fetch_add(ns, std::memory_order_relaxed);
    if (error) c.errors.fetch_add(1, std::memory_order_relaxed);
  }

  /// Adds this histogram's state to `out` (bucket_counts sized latency_buckets).
  void read(histogram_point& out) const {
    out.bucket_counts.assign(latency_buckets, 0);
    for (const auto& c : cells_) {
      for (std::size_t b = 0; b < latency_buckets; ++b) {
        const auto n = c.buckets[b].load(std::memory_order_relaxed);
        out.bucket_counts[b] += n;
        out.count += n;
      }
      out.sum_ns += c.sum_ns.load(std::memory_order_relaxed);
      out.errors += c.errors.load(std::memory_order_relaxed);
    }
  }

 private:
  struct alignas(64) cell {
    std::array<std::atomic<std::uint64_t>, latency_buckets> buckets{};
    std::atomic<std::uint64_t> sum_ns{0};
    std::atomic<std::uint64_t> errors{0};
  };
  std::array<cell, distcache::detail::striped_counter::stripe_count> cells_{};
};

/// The latency histograms of one keyspace, one per operation.
struct operation_metrics {
  std::array<latency_histogram, operation_count> by_op{};
  latency_histogram& operator[](operation op) noexcept {
    return by_op[static_cast<std::size_t>(op)];
  }
  const latency_histogram& operator[](operation op) const noexcept {
    return by_op[static_cast<std::size_t>(op)];
  }
};

}  // namespace distcache::telemetry::detail

#endif  // DISTCACHE_TELEMETRY_DETAIL_HISTOGRAM_HPP
