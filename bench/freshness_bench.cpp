// distcache — freshness and load shaping under a Zipf(1.0) workload.
//
// Three engines in one process on 127.0.0.1 (transport::http, found through
// discovery::in_process) share a data source that takes --source-us (default
// 1000 µs) per call, for fetch and fetch_many alike, over --keys keys (default
// 1,000,000) of which one in ten does not exist. Values live --ttl-ms (default
// 2000 ms). --threads client threads (default 8), spread over the nodes, make
// blocking gets of Zipf(1.0)-distributed keys for --warmup seconds (default
// 3, not measured: the caches fill) and then --seconds (default 5, measured)
// per configuration. Every configuration runs in this one process on a
// fresh, cold cluster with the same key sequence per thread:
//
//   baseline    every feature below off (the hot cache admits every value)
//   negative    negative_ttl = ttl: not_found answers are cached
//   refresh     refresh_after = ttl / 2: read keys are reloaded before they expire
//   stale       max_stale = ttl: expired keys are served while one reload runs
//   batched     the source has fetch_many (64 keys, 200 µs)
//   admission   track_hot_keys: TinyLFU admission to a hot cache of --hot-kib KiB
//               (default 256, about 900 values); baseline's is the same size
//   all         everything on
//
// For each: gets, source calls per 1,000 gets, keys the source loaded per
// 1,000 gets, p50 / p99 / p99.9 get latency, and the freshness counters. The
// last lines are machine-readable ("RESULT config=... key=value ...").
//
//   bench_freshness --seconds 5 --threads 8

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <distcache/engine.hpp>
#include <distcache/transport/http.hpp>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

struct options {
  double seconds = 5;
  double warmup = 3;
  int threads = 8;
  std::size_t keys = 1'000'000;
  long ttl_ms = 2000;
  long source_us = 1000;
  std::int64_t hot_kib = 256;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "bench_freshness: %s\n"
               "usage: bench_freshness [--seconds S] [--warmup S] [--threads T] [--keys N]\n"
               "                       [--ttl-ms MS] [--source-us US] [--hot-kib KIB]\n",
               why);
  std::exit(2);
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "-h" || flag == "--help") usage("help");
    if (i + 1 >= argc) usage(("missing value after " + std::string(flag)).c_str());
    char* end = nullptr;
    const double v = std::strtod(argv[++i], &end);
    if (end == argv[i] || *end != '\0' || !(v > 0)) {
      usage((std::string(flag) + ": expected a number > 0").c_str());
    }
    if (flag == "--seconds") {
      o.seconds = v;
    } else if (flag == "--warmup") {
      o.warmup = v;
    } else if (flag == "--threads") {
      o.threads = static_cast<int>(v);
    } else if (flag == "--keys") {
      o.keys = static_cast<std::size_t>(v);
    } else if (flag == "--ttl-ms") {
      o.ttl_ms = static_cast<long>(v);
    } else if (flag == "--source-us") {
      o.source_us = static_cast<long>(v);
    } else if (flag == "--hot-kib") {
      o.hot_kib = static_cast<std::int64_t>(v);
    } else {
      usage(("unknown flag " + std::string(flag)).c_str());
    }
  }
  return o;
}

// ------------------------------------------------------------------ the source

/// The "database": one in ten keys is missing; every call takes `delay`.
struct database {
  std::chrono::microseconds delay{1000};
  std::atomic<std::uint64_t> calls{0};
  std::atomic<std::uint64_t> keys{0};

  distcache::fetch_result<std::string> one(std::string_view key) const {
    // "k<number>": missing when the number ends in 0.
    if (key.back() == '0') return distcache::not_found;
    return std::string(100, key.back());
  }
};

struct single_source {
  std::shared_ptr<database> db;
  distcache::fetch_result<std::string> fetch(std::string_view key) {
    db->calls.fetch_add(1, std::memory_order_relaxed);
    db->keys.fetch_add(1, std::memory_order_relaxed);
    std::this_thread::sleep_for(db->delay);
    return db->one(key);
  }
};

struct batch_source {
  std::shared_ptr<database> db;
  distcache::fetch_result<std::string> fetch(std::string_view key) {
    return single_source{db}.fetch(key);
  }
  std::vector<distcache::fetch_result<std::string>> fetch_many(
      std::span<const std::string_view> keys) {
    db->calls.fetch_add(1, std::memory_order_relaxed);
    db->keys.fetch_add(keys.size(), std::memory_order_relaxed);
    std::this_thread::sleep_for(db->delay);
    std::vector<distcache::fetch_result<std::string>> out;
    out.reserve(keys.size());
    for (auto k : keys) out.push_back(db->one(k));
    return out;
  }
};

struct items {
  static constexpr std::string_view name = "items";
  using value_type = std::string;
  std::int64_t max_bytes = std::int64_t{256} << 20;
  single_source source;
};
struct batched_items {
  static constexpr std::string_view name = "items";
  using value_type = std::string;
  std::int64_t max_bytes = std::int64_t{256} << 20;
  batch_source source;
};

// ------------------------------------------------------------------ workload

/// Zipf(1.0) ranks over n keys, mapped to keys by a fixed permutation.
class zipf_keys {
 public:
  explicit zipf_keys(std::size_t n) : cdf_(n), perm_(n) {
    double sum = 0;
    for (std::size_t i = 0; i < n; ++i) {
      sum += 1.0 / static_cast<double>(i + 1);
      cdf_[i] = sum;
    }
    for (auto& c : cdf_) c /= sum;
    for (std::size_t i = 0; i < n; ++i) perm_[i] = static_cast<std::uint32_t>(i);
    std::mt19937_64 rng(42);
    std::shuffle(perm_.begin(), perm_.end(), rng);
  }
  std::string next(std::mt19937_64& rng) const {
    const double u = std::uniform_real_distribution<double>(0, 1)(rng);
    const auto rank = std::min<std::size_t>(
        static_cast<std::size_t>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin()),
        perm_.size() - 1);
    return "k" + std::to_string(perm_[rank]);
  }

 private:
  std::vector<double> cdf_;
  std::vector<std::uint32_t> perm_;
};

struct feature_set {
  const char* name = "";
  bool negative = false;
  bool refresh = false;
  bool stale = false;
  bool batched = false;
  bool admission = false;
};

struct outcome {
  std::uint64_t gets = 0;
  std::uint64_t errors = 0;
  std::uint64_t calls = 0;
  std::uint64_t keys_loaded = 0;
  double p50_us = 0, p99_us = 0, p999_us = 0;
  std::uint64_t stale_served = 0, negative_hits = 0, refreshes = 0, hot_refused = 0;
};

double percentile(std::vector<std::uint32_t>& v, double q) {
  if (v.empty()) return 0;
  const auto k = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k] / 1000.0;
}

template <class K>
outcome run(const options& o, const feature_set& f, const zipf_keys& keys) {
  using node_engine = distcache::basic_engine<
      distcache::policies<distcache::discovery::in_process, distcache::transport::http>, K>;
  auto db = std::make_shared<database>();
  db->delay = std::chrono::microseconds(o.source_us);
  distcache::config c;
  c.threads = 1;
  c.fetch_threads = 16;
  c.read_timeout = std::chrono::seconds(5);
  c.cluster.enabled = true;
  c.cluster.bind_address = "127.0.0.1";
  c.cluster.probe_interval = std::chrono::milliseconds(200);
  c.cluster.discovery_interval = std::chrono::milliseconds(100);
  c.cluster.join_retry_interval = std::chrono::milliseconds(10);
  c.cluster.minimum_peers_quorum = 1;
  c.log = [](distcache::log_level, std::string_view) {};
  auto& ks = c.keyspaces["items"];
  const auto ttl = std::chrono::milliseconds(o.ttl_ms);
  ks.default_ttl = ttl;
  ks.hot_max_bytes = o.hot_kib << 10;
  ks.track_hot_keys = f.admission;
  if (f.negative) ks.negative_ttl = ttl;
  if (f.refresh) ks.refresh_after = ttl / 2;
  if (f.stale) ks.max_stale = ttl;
  auto reg = std::make_shared<distcache::discovery::in_process::registry>();
  std::vector<std::unique_ptr<node_engine>> nodes;
  for (int i = 0; i < 3; ++i) {
    K def;
    def.source.db = db;
    nodes.push_back(
        std::make_unique<node_engine>(c, distcache::discovery::in_process(reg), std::move(def)));
    if (!nodes.back()->start()) {
      std::fprintf(stderr, "bench_freshness: start failed\n");
      std::exit(1);
    }
  }
  const auto joined = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::any_of(nodes.begin(), nodes.end(),
                     [](const auto& n) { return n->cluster_peers().size() != 2; })) {
    if (std::chrono::steady_clock::now() > joined) {
      std::fprintf(stderr, "bench_freshness: the nodes did not find each other\n");
      std::exit(1);
    }
    std::this_thread::yield();
  }

  std::atomic<bool> stop{false};
  std::atomic<bool> measuring{false};
  std::vector<std::vector<std::uint32_t>> latencies(static_cast<std::size_t>(o.threads));
  std::vector<std::uint64_t> errors(static_cast<std::size_t>(o.threads), 0);
  std::vector<std::thread> clients;
  clients.reserve(static_cast<std::size_t>(o.threads));
  for (int t = 0; t < o.threads; ++t) {
    clients.emplace_back([&, t] {
      auto& node = *nodes[static_cast<std::size_t>(t) % nodes.size()];
      std::mt19937_64 rng(1000 + static_cast<std::uint64_t>(t));  // same sequence per config
      auto& lat = latencies[static_cast<std::size_t>(t)];
      lat.reserve(1 << 20);
      while (!stop.load(std::memory_order_relaxed)) {
        const std::string key = keys.next(rng);
        const auto t0 = std::chrono::steady_clock::now();
        auto r = node.template get<K>(key);
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::steady_clock::now() - t0)
                            .count();
        if (!measuring.load(std::memory_order_relaxed)) continue;
        lat.push_back(static_cast<std::uint32_t>(std::min<long long>(ns, UINT32_MAX)));
        if (!r && r.error() != distcache::errc::not_found) ++errors[static_cast<std::size_t>(t)];
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(o.warmup));
  const std::uint64_t calls_before = db->calls.load();
  const std::uint64_t keys_before = db->keys.load();
  // The freshness counters summed over the nodes.
  const auto counters = [&nodes] {
    outcome sum;
    for (auto& n : nodes) {
      const auto s = n->template stats<K>();
      sum.stale_served += s.stale_served;
      sum.negative_hits += s.negative_hits;
      sum.refreshes += s.refreshes;
      sum.hot_refused += s.hot_refused;
    }
    return sum;
  };
  const outcome before = counters();
  measuring = true;
  std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
  stop = true;
  for (auto& th : clients) th.join();

  outcome out;
  std::vector<std::uint32_t> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  for (auto e : errors) out.errors += e;
  out.gets = all.size();
  out.calls = db->calls.load() - calls_before;  // gets in flight at the edges: noise
  out.keys_loaded = db->keys.load() - keys_before;
  out.p50_us = percentile(all, 0.50);
  out.p99_us = percentile(all, 0.99);
  out.p999_us = percentile(all, 0.999);
  const outcome after = counters();
  out.stale_served = after.stale_served - before.stale_served;
  out.negative_hits = after.negative_hits - before.negative_hits;
  out.refreshes = after.refreshes - before.refreshes;
  out.hot_refused = after.hot_refused - before.hot_refused;
  for (auto& n : nodes) (void)n->stop();
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
  const zipf_keys keys(o.keys);
  const feature_set sets[] = {
      {"baseline"},
      {"negative", true},
      {"refresh", false, true},
      {"stale", false, false, true},
      {"batched", false, false, false, true},
      {"admission", false, false, false, false, true},
      {"all", true, true, true, true, true},
  };
  std::printf(
      "3 nodes, %d client threads, Zipf(1.0) over %zu keys (10%% missing), source %ld us per "
      "call, ttl %ld ms, hot cache %lld KiB, %.1f s warm-up + %.1f s measured per "
      "configuration\n\n",
      o.threads, o.keys, o.source_us, o.ttl_ms, static_cast<long long>(o.hot_kib), o.warmup,
      o.seconds);
  std::printf("%-10s %9s %11s %11s %9s %9s %9s %8s %8s %8s %8s\n", "config", "gets", "calls/1000",
              "keys/1000", "p50 us", "p99 us", "p99.9 us", "stale", "negative", "refresh",
              "refused");
  std::vector<std::pair<const char*, outcome>> results;
  for (const auto& f : sets) {
    const outcome r = f.batched ? run<batched_items>(o, f, keys) : run<items>(o, f, keys);
    const double per = r.gets > 0 ? 1000.0 / static_cast<double>(r.gets) : 0;
    std::printf("%-10s %9llu %11.1f %11.1f %9.1f %9.1f %9.1f %8llu %8llu %8llu %8llu\n", f.name,
                static_cast<unsigned long long>(r.gets), static_cast<double>(r.calls) * per,
                static_cast<double>(r.keys_loaded) * per, r.p50_us, r.p99_us, r.p999_us,
                static_cast<unsigned long long>(r.stale_served),
                static_cast<unsigned long long>(r.negative_hits),
                static_cast<unsigned long long>(r.refreshes),
                static_cast<unsigned long long>(r.hot_refused));
    std::fflush(stdout);
    if (r.errors != 0) {
      std::printf("  (%llu gets failed)\n", static_cast<unsigned long long>(r.errors));
    }
    results.emplace_back(f.name, r);
  }
  const auto& base = results.front().second;
  const double base_calls = static_cast<double>(base.calls) / static_cast<double>(base.gets);
  std::printf("\nratio to baseline: source calls per get, p99\n");
  for (const auto& [name, r] : results) {
    const double calls = static_cast<double>(r.calls) / static_cast<double>(r.gets);
    std::printf("%-10s %8.2fx %8.2fx\n", name, calls / base_calls, r.p99_us / base.p99_us);
  }
  for (const auto& [name, r] : results) {
    std::printf(
        "RESULT config=%s gets=%llu calls_per_1000=%.2f keys_per_1000=%.2f p50_us=%.1f "
        "p99_us=%.1f p999_us=%.1f errors=%llu\n",
        name, static_cast<unsigned long long>(r.gets),
        1000.0 * static_cast<double>(r.calls) / static_cast<double>(r.gets),
        1000.0 * static_cast<double>(r.keys_loaded) / static_cast<double>(r.gets), r.p50_us,
        r.p99_us, r.p999_us, static_cast<unsigned long long>(r.errors));
  }
  return 0;
}
