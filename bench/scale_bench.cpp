// bench_scale: how costs grow with the work (docs/performance.md, "How cost
// grows"). Each figure is a ratio measured in the same run:
//
//   ring      keys that move when one node joins or leaves a ring of 10, 100
//             and 1,000 nodes (the real ring code, 512 points per node),
//             against the ideal 1/N;
//   hit       a local hit on one thread at 10k, 1M and 10M cached keys,
//             against the baseline (an unordered_map under a shared_mutex)
//             holding the same keys;
//   rss       resident memory per cached 100-byte entry, against the charge
//             the cache counts for it (max_bytes is a budget of charges);
//   get_many  latency of get_many of 10, 100 and 1,000 cached keys, against
//             the baseline's lookups of the same keys.
//
//   bench_scale [--max-keys N] [--lookups N] [--only ring|hit|get_many]
//
// --max-keys caps the largest size (default 10,000,000: about 6 GB of RSS
// for both maps). The last line is machine-readable: "RESULT key=value ...".

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <distcache/cluster/ring.hpp>
#include <distcache/engine.hpp>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "baseline.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

constexpr std::size_t value_size = 100;

struct instant_source {
  distcache::fetch_result<std::string> fetch(std::string_view /*key*/) {
    return std::string(value_size, 'v');
  }
};

struct items {
  static constexpr std::string_view name = "items";
  using value_type = std::string;
  std::int64_t max_bytes = std::int64_t{16} << 30;  // never evicts here
  instant_source source;
};

using engine_type = distcache::engine<items>;
using bench::locked_map;
using bench::resident_bytes;
using bench::value_ptr;

std::string key_of(std::size_t i) {
  char buf[24] = "key:";
  auto [end, ec] = std::to_chars(buf + 4, buf + sizeof buf, i);
  (void)ec;
  return {buf, end};
}

/// xorshift64: the same sequence every run.
struct rng {
  std::uint64_t x = 0x9E3779B97F4A7C15ULL;
  std::uint64_t next() {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  }
};

template <class Fn>
double ns_per(std::size_t n, Fn fn) {
  const auto t0 = clock_type::now();
  fn();
  const auto t1 = clock_type::now();
  return std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(n);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

std::string results;  // the RESULT line

void result(const std::string& k, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, " %s=%.3f", k.c_str(), v);
  results += buf;
}

// ------------------------------------------------------------------ ring

void bench_ring() {
  std::printf(
      "ring: keys moved when one node joins or leaves (1,000,000 keys, 512 points per "
      "node)\n%-7s %12s %12s %12s %12s\n",
      "nodes", "join moved", "join / 1/N", "leave moved", "leave / 1/N");
  constexpr std::size_t keys = 1'000'000;
  std::vector<std::uint64_t> hashes(keys);
  for (std::size_t i = 0; i < keys; ++i) hashes[i] = distcache::detail::hash_key(key_of(i));
  for (const std::size_t n : {10, 100, 1000}) {
    std::vector<std::string> names;
    for (std::size_t i = 0; i < n + 1; ++i)
      names.push_back("10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250) + ":7946");
    const std::vector<std::string> base(names.begin(), names.begin() + static_cast<long>(n));
    std::vector<std::string> fewer(base.begin() + 1, base.end());  // the first one leaves
    const distcache::ring before(base, 512, 1);
    const distcache::ring joined(names, 512, 2);
    const distcache::ring left(fewer, 512, 3);
    std::size_t moved_join = 0;
    std::size_t moved_leave = 0;
    for (const auto h : hashes) {
      const auto& owner = before.nodes()[before.owner_index(h)];
      moved_join += joined.nodes()[joined.owner_index(h)] != owner ? 1 : 0;
      moved_leave += left.nodes()[left.owner_index(h)] != owner ? 1 : 0;
    }
    const double join = static_cast<double>(moved_join) / keys;
    const double leave = static_cast<double>(moved_leave) / keys;
    const double join_ratio = join * static_cast<double>(n + 1);  // ideal: 1/(n+1) move
    const double leave_ratio = leave * static_cast<double>(n);    // ideal: 1/n move
    std::printf("%-7zu %11.4f%% %11.2fx %11.4f%% %11.2fx\n", n, join * 100, join_ratio, leave * 100,
                leave_ratio);
    result("ring_join_" + std::to_string(n), join_ratio);
    result("ring_leave_" + std::to_string(n), leave_ratio);
  }
}

// ------------------------------------------------------------------ hit, rss

void bench_hit(std::size_t max_keys, std::size_t lookups) {
  std::printf(
      "\nhit: one thread, random cached keys, wall-clock ns per lookup (median of 3 "
      "alternating runs)\n%-10s %12s %12s %8s %14s %14s %10s\n",
      "keys", "distcache", "baseline", "ratio", "RSS/entry B", "charge/entry B", "RSS/charge");
  const std::string value(value_size, 'v');
  for (const std::size_t n :
       {std::size_t{10'000}, std::size_t{1'000'000}, std::size_t{10'000'000}}) {
    if (n > max_keys) break;
    std::vector<std::string> keys;
    keys.reserve(n);
    for (std::size_t i = 0; i < n; ++i) keys.push_back(key_of(i));
    std::vector<std::uint32_t> order(lookups);
    rng r;
    for (auto& o : order) o = static_cast<std::uint32_t>(r.next() % n);

    auto engine = std::make_unique<engine_type>(distcache::config{}, items{});
    if (!engine->start()) std::abort();
    const std::size_t rss0 = resident_bytes();  // the empty engine's own memory excluded
    for (const auto& k : keys) {
      if (!engine->put<items>(k, value)) std::abort();
    }
    const std::size_t rss1 = resident_bytes();
    const auto st = engine->stats<items>();
    const double rss_per = static_cast<double>(rss1 - rss0) / static_cast<double>(n);
    const double charge_per =
        static_cast<double>(st.main_cache_bytes) / static_cast<double>(st.main_cache_items);

    locked_map base;
    base.map.reserve(n);
    for (const auto& k : keys) base.map.emplace(k, std::make_shared<const std::string>(value));

    std::vector<double> ours;
    std::vector<double> theirs;
    for (int round = 0; round < 3; ++round) {
      ours.push_back(ns_per(lookups, [&] {
        for (const auto i : order) {
          auto v = engine->get<items>(keys[i]);
          if (!v) std::abort();
        }
      }));
      theirs.push_back(ns_per(lookups, [&] {
        for (const auto i : order) {
          auto v = base.find(keys[i]);
          if (!v) std::abort();
        }
      }));
    }
    const double o = median(ours);
    const double b = median(theirs);
    std::printf("%-10zu %12.1f %12.1f %7.2fx %14.0f %14.0f %9.2fx\n", n, o, b, o / b, rss_per,
                charge_per, rss_per / charge_per);
    result("hit_ratio_" + std::to_string(n), o / b);
    result("rss_per_charge_" + std::to_string(n), rss_per / charge_per);
    engine->stop();
  }
}

// ------------------------------------------------------------------ get_many

void bench_get_many() {
  std::printf(
      "\nget_many: cached keys, wall-clock µs per call (p50 and p99 of 2,000 calls)\n"
      "%-6s %12s %12s %12s %12s %8s\n",
      "keys", "p50 µs", "p99 µs", "ns per key", "baseline p50", "ratio");
  constexpr std::size_t n = 100'000;
  const std::string value(value_size, 'v');
  std::vector<std::string> keys;
  for (std::size_t i = 0; i < n; ++i) keys.push_back(key_of(i));
  engine_type engine(distcache::config{}, items{});
  if (!engine.start()) std::abort();
  locked_map base;
  for (const auto& k : keys) {
    if (!engine.put<items>(k, value)) std::abort();
    base.map.emplace(k, std::make_shared<const std::string>(value));
  }
  rng r;
  for (const std::size_t batch : {10, 100, 1000}) {
    std::vector<double> ours;
    std::vector<double> theirs;
    std::vector<std::string> picked(batch);
    for (int call = 0; call < 2000; ++call) {
      for (auto& k : picked) k = keys[r.next() % n];
      ours.push_back(ns_per(1, [&] {
        auto v = engine.get_many<items>(std::span<const std::string>(picked));
        if (!v || v->size() != batch) std::abort();
      }));
      theirs.push_back(ns_per(1, [&] {
        std::vector<value_ptr> out;
        out.reserve(batch);
        for (const auto& k : picked) out.push_back(base.find(k));
      }));
    }
    std::sort(ours.begin(), ours.end());
    const double p50 = ours[ours.size() / 2];
    const double p99 = ours[ours.size() * 99 / 100];
    const double b50 = median(theirs);
    std::printf("%-6zu %12.2f %12.2f %12.1f %12.2f %7.2fx\n", batch, p50 / 1000, p99 / 1000,
                p50 / static_cast<double>(batch), b50 / 1000, p50 / b50);
    result("get_many_p50_us_" + std::to_string(batch), p50 / 1000);
    result("get_many_ratio_" + std::to_string(batch), p50 / b50);
  }
  engine.stop();
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "bench_scale: %s\nusage: bench_scale [--max-keys N] [--lookups N] "
               "[--only ring|hit|get_many]\n",
               why);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t max_keys = 10'000'000;
  std::size_t lookups = 2'000'000;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "-h" || flag == "--help") usage("help");
    if (i + 1 >= argc) usage("a flag needs a value");
    const std::string_view v = argv[++i];
    std::size_t n = 0;
    if (flag == "--only") {
      only = v;
      if (only != "ring" && only != "hit" && only != "get_many")
        usage("--only: ring, hit or get_many");
      continue;
    }
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc{} || end != v.data() + v.size() || n == 0) usage("not a positive number");
    if (flag == "--max-keys") {
      max_keys = n;
    } else if (flag == "--lookups") {
      lookups = n;
    } else {
      usage("unknown flag");
    }
  }
  if (only.empty() || only == "ring") bench_ring();
  if (only.empty() || only == "hit") bench_hit(max_keys, lookups);
  if (only.empty() || only == "get_many") bench_get_many();
  std::printf("RESULT%s\n", results.c_str());
  return 0;
}
