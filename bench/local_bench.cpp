// distcache — single-node benchmarks, each against a baseline in the same binary.
//
// Every operation is measured twice: through a started distcache::engine
// ("<op>/distcache") and through the plain structure one would write by hand,
// std::unordered_map<std::string, std::shared_ptr<const std::string>> guarded by
// a std::shared_mutex ("<op>/baseline"). Both sides use the same prebuilt keys
// in the same pseudo-random order and 100-byte std::string values, run at 1 and
// 2 threads with real (wall-clock) time, and count items (keys) per second.
//
// The cost of hot-key tracking (on by default) is measured by running the
// binary twice, alternately, with DISTCACHE_BENCH_TRACK_HOT_KEYS=0 (tracking
// off in every keyspace) and without: one binary, one memory layout.
//
// The cost of telemetry is measured the same way: "<op>/observed" runs the
// operation through an engine whose Telemetry policy keeps the latency
// histograms but samples no trace (trace_sample_ratio 0), "<op>/traced"
// through one that records a span for every operation (ratio 1), both into a
// sink that discards what it gets; the summary prints each against
// "<op>/distcache" (telemetry::none).
//
// After the usual output the binary prints a summary: for each operation and
// thread count the ratio of distcache's time per item to the baseline's, and
// each side's 2-thread/1-thread throughput scaling (on stderr when
// --benchmark_format=json, so that stdout stays valid JSON; a JSON file is also
// available with --benchmark_out=FILE --benchmark_out_format=json).
// See docs/performance.md for the figures and how they were taken.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <distcache/distcache.hpp>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include <unistd.h>

#include "baseline.hpp"

namespace {

constexpr std::size_t key_count = 10'000;
constexpr std::size_t value_size = 100;
constexpr std::size_t order_size = std::size_t{1} << 16;  // length of the shuffled key sequence
constexpr std::size_t order_mask = order_size - 1;
constexpr std::size_t batch = 100;                  // keys per get_many
constexpr std::size_t baseline_miss_window = 8192;  // entries each thread keeps in the miss map

// Not `return {value_size, 'v'};`: braces would make a string of two characters.
std::string make_value() {
  return std::string(value_size, 'v');  // NOLINT(modernize-return-braced-init-list)
}

/// A data source that answers every key at once with a 100-byte value.
struct instant_source {
  distcache::fetch_result<std::string> fetch(std::string_view /*key*/) { return make_value(); }
};

/// Preloaded keys for get and get_many.
struct hits {
  static constexpr std::string_view name = "hits";
  using value_type = std::string;
  std::int64_t max_bytes = std::int64_t{64} << 20;
  instant_source source;
};

/// Keys overwritten by put.
struct puts {
  static constexpr std::string_view name = "puts";
  using value_type = std::string;
  std::int64_t max_bytes = std::int64_t{64} << 20;
  instant_source source;
};

/// Fresh keys: every get is a miss and a load. 4 MiB holds about 13k entries,
/// so the cache runs full and evicts, like the baseline's bounded map.
struct loads {
  static constexpr std::string_view name = "loads";
  using value_type = std::string;
  std::int64_t max_bytes = std::int64_t{4} << 20;
  instant_source source;
};

/// The same as loads, configured with fetch_on_caller_thread: a blocking
/// get's miss calls the source on the caller's thread.
struct loads_here {
  static constexpr std::string_view name = "loads_here";
  using value_type = std::string;
  std::int64_t max_bytes = std::int64_t{4} << 20;
  instant_source source;
};

using engine_type = distcache::engine<hits, puts, loads, loads_here>;

/// A sink that drops every span: what is measured is the engine's side.
class discarding_sink final : public distcache::telemetry::sink {
 public:
  void start(distcache::telemetry::node_identity /*self*/, collect_fn /*collect*/) override {}
  void stop() noexcept override {}
  void span(distcache::telemetry::span_record&& s) noexcept override {
    benchmark::DoNotOptimize(s);
  }
  [[nodiscard]] distcache::telemetry::exporter_stats stats() const noexcept override { return {}; }
};
struct discarding_telemetry {
  static std::unique_ptr<distcache::telemetry::sink> make(const distcache::telemetry_options&,
                                                          const distcache::logger&) {
    return std::make_unique<discarding_sink>();
  }
};
using observed_engine_type = distcache::basic_engine<
    distcache::policies<distcache::discovery::standalone, distcache::transport::none,
                        distcache::protection::no_rate_limiter,
                        distcache::protection::no_circuit_breaker, discarding_telemetry>,
    hits, puts, loads>;

distcache::config telemetry_config(double ratio) {
  distcache::config c;
  c.telemetry.emplace();
  c.telemetry->trace_sample_ratio = ratio;
  return c;
}
/// The engine's configuration: the defaults, except that
/// DISTCACHE_BENCH_TRACK_HOT_KEYS=0 in the environment turns hot-key tracking
/// off in every keyspace. Comparing two runs of one binary this way keeps
/// everything else (allocation order, memory layout) the same.
distcache::config engine_config() {
  distcache::config c;
  const char* track = std::getenv("DISTCACHE_BENCH_TRACK_HOT_KEYS");
  if (track != nullptr && std::string_view(track) == "0") {
    for (const char* name : {"hits", "puts", "loads", "loads_here"}) {
      c.keyspaces[name].track_hot_keys = false;
    }
  }
  c.keyspaces["loads_here"].fetch_on_caller_thread = true;
  return c;
}
distcache::config nospin_config() {
  distcache::config c = engine_config();
  c.spin_wait = distcache::duration::zero();
  return c;
}
using bench::locked_map;
using bench::value_ptr;

/// Everything the benchmarks share, built once before any runs.
struct fixture {
  std::vector<std::string> keys;      // "key:00000" .. "key:09999"
  std::vector<std::string> shuffled;  // order_size + batch keys in a fixed pseudo-random order
  std::string value = make_value();
  engine_type engine{engine_config(), hits{}, puts{}, loads{}, loads_here{}};
  // The same with config::spin_wait 0: the fetch pool and a blocking get
  // sleep at once (miss_load/nospin, the baseline of the spinning).
  engine_type nospin{nospin_config(), hits{}, puts{}, loads{}, loads_here{}};
  observed_engine_type observed{telemetry_config(0.0), hits{}, puts{}, loads{}};
  observed_engine_type traced{telemetry_config(1.0), hits{}, puts{}, loads{}};
  locked_map hit_map;
  locked_map put_map;
  locked_map miss_map;
  std::atomic<std::uint64_t> next_miss_prefix{1};

  fixture() {
    keys.reserve(key_count);
    for (std::size_t i = 0; i < key_count; ++i) {
      char buf[16];
      auto [end, ec] = std::to_chars(buf, buf + sizeof buf, i + 100'000);
      (void)ec;
      keys.push_back("key:" + std::string(buf + 1, end));  // zero-padded to 5 digits
    }
    std::uint64_t x = 0x9E3779B97F4A7C15ULL;  // xorshift64: the same order every run
    shuffled.reserve(order_size + batch);
    for (std::size_t i = 0; i < order_size + batch; ++i) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      shuffled.push_back(keys[x % key_count]);
    }
    if (!engine.start() || !nospin.start() || !observed.start() || !traced.start()) {
      throw std::runtime_error("engine.start() failed");
    }
    for (const auto& k : keys) {
      if (!engine.put<hits>(k, value) || !engine.put<puts>(k, value)) {
        throw std::runtime_error("preloading put failed");
      }
      hit_map.map.emplace(k, std::make_shared<const std::string>(value));
      put_map.map.emplace(k, std::make_shared<const std::string>(value));
    }
    // The telemetry engines after, one at a time, so that each one's entries
    // are allocated together as the first engine's are (interleaving them
    // made every lookup of theirs touch more cache lines).
    for (auto* e : {&observed, &traced}) {
      for (const auto& k : keys) {
        if (!e->put<hits>(k, value) || !e->put<puts>(k, value)) {
          throw std::runtime_error("preloading put failed");
        }
      }
    }
  }
};

fixture* fx = nullptr;

/// Where thread `t` starts in the shuffled sequence: the threads walk
/// different parts of it.
std::size_t start_of(const benchmark::State& state) {
  return static_cast<std::size_t>(state.thread_index()) * (order_size / 2);
}

/// A key no run has used before: a prefix unique to this thread and run, then a counter.
struct fresh_keys {
  std::uint64_t prefix;
  std::uint64_t n = 0;
  explicit fresh_keys(fixture& f) : prefix(f.next_miss_prefix.fetch_add(1)) {}
  std::string next() {
    char buf[32];
    buf[0] = 'm';
    char* p = std::to_chars(buf + 1, buf + 16, prefix, 36).ptr;
    *p++ = ':';
    p = std::to_chars(p, buf + sizeof buf, n++, 36).ptr;
    return {buf, p};  // at most 15 characters: no heap allocation
  }
};

// ------------------------------------------------------------------ get (hit)

template <auto Engine>
void hit_get_distcache(benchmark::State& state) {
  auto& eng = fx->*Engine;
  std::size_t i = start_of(state);
  for (auto _ : state) {
    auto r = eng.template get<hits>(fx->shuffled[i++ & order_mask]);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}

void hit_get_baseline(benchmark::State& state) {
  auto& m = fx->hit_map;
  std::size_t i = start_of(state);
  for (auto _ : state) {
    value_ptr v = m.find(fx->shuffled[i++ & order_mask]);
    benchmark::DoNotOptimize(v);
  }
  state.SetItemsProcessed(state.iterations());
}

// ------------------------------------------------------------------ read (hit, in place)

template <auto Engine>
void hit_read_distcache(benchmark::State& state) {
  auto& eng = fx->*Engine;
  std::size_t i = start_of(state);
  for (auto _ : state) {
    auto r = eng.template read<hits>(fx->shuffled[i++ & order_mask],
                                     [](const std::string& v) { return v.size(); });
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}

void hit_read_baseline(benchmark::State& state) {
  auto& m = fx->hit_map;
  std::size_t i = start_of(state);
  for (auto _ : state) {
    auto r = m.read(fx->shuffled[i++ & order_mask], [](const std::string& v) { return v.size(); });
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}

// ------------------------------------------------------------------ get (miss + load)

template <auto Engine, class Keyspace = loads>
void miss_load_distcache(benchmark::State& state) {
  auto& eng = fx->*Engine;
  fresh_keys fresh(*fx);
  for (auto _ : state) {
    auto r = eng.template get<Keyspace>(fresh.next());
    if (!r) state.SkipWithError("get failed");
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}

void miss_load_baseline(benchmark::State& state) {
  auto& m = fx->miss_map;
  fresh_keys fresh(*fx);
  std::vector<std::string> inserted(baseline_miss_window);  // FIFO eviction bounds the map
  std::size_t slot = 0;
  for (auto _ : state) {
    std::string key = fresh.next();
    value_ptr v = m.find(key);  // the miss
    if (!v) {
      auto loaded = std::make_shared<const std::string>(make_value());  // the "load"
      std::unique_lock lock(m.mutex);
      v = m.map.try_emplace(key, std::move(loaded)).first->second;
      if (!inserted[slot].empty()) m.map.erase(inserted[slot]);
    }
    inserted[slot] = std::move(key);
    slot = (slot + 1) % baseline_miss_window;
    benchmark::DoNotOptimize(v);
  }
  std::unique_lock lock(m.mutex);
  for (const auto& k : inserted) m.map.erase(k);
  state.SetItemsProcessed(state.iterations());
}

// ------------------------------------------------------------------ put

template <auto Engine>
void put_distcache(benchmark::State& state) {
  auto& eng = fx->*Engine;
  const std::string& value = fx->value;
  std::size_t i = start_of(state);
  for (auto _ : state) {
    auto r = eng.template put<puts>(fx->shuffled[i++ & order_mask], value);  // copies the value
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}

void put_baseline(benchmark::State& state) {
  auto& m = fx->put_map;
  const std::string& value = fx->value;
  std::size_t i = start_of(state);
  for (auto _ : state) {
    auto v = std::make_shared<const std::string>(value);  // the same copy and allocation
    std::unique_lock lock(m.mutex);
    m.map.insert_or_assign(fx->shuffled[i++ & order_mask], std::move(v));
  }
  state.SetItemsProcessed(state.iterations());
}

// ------------------------------------------------------------------ get_many (100 hits)

void get_many_distcache(benchmark::State& state) {
  auto& eng = fx->engine;
  std::size_t i = start_of(state);
  for (auto _ : state) {
    const std::span<const std::string> keys(&fx->shuffled[i & order_mask], batch);
    i += batch;
    auto r = eng.get_many<hits>(keys);
    if (!r || r->size() != batch) state.SkipWithError("get_many<hits> failed");
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch));
}

void get_many_baseline(benchmark::State& state) {
  auto& m = fx->hit_map;
  std::size_t i = start_of(state);
  for (auto _ : state) {
    const std::span<const std::string> keys(&fx->shuffled[i & order_mask], batch);
    i += batch;
    std::vector<value_ptr> out;
    out.reserve(batch);
    for (const auto& k : keys) out.push_back(m.find(k));
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch));
}

// ------------------------------------------------------------------ registration

void register_all() {
  struct entry {
    const char* name;
    void (*fn)(benchmark::State&);
  };
  constexpr auto plain = &fixture::engine;
  constexpr auto observed = &fixture::observed;
  constexpr auto traced = &fixture::traced;
  constexpr auto nospin = &fixture::nospin;
  const std::array<entry, 18> all{{
      {"hit_get/distcache", hit_get_distcache<plain>},
      {"hit_get/baseline", hit_get_baseline},
      {"hit_get/observed", hit_get_distcache<observed>},
      {"hit_get/traced", hit_get_distcache<traced>},
      {"hit_read/distcache", hit_read_distcache<plain>},
      {"hit_read/baseline", hit_read_baseline},
      {"miss_load/distcache", miss_load_distcache<plain>},
      {"miss_load/baseline", miss_load_baseline},
      {"miss_load/observed", miss_load_distcache<observed>},
      {"miss_load/traced", miss_load_distcache<traced>},
      {"miss_load/here", miss_load_distcache<plain, loads_here>},
      {"miss_load/nospin", miss_load_distcache<nospin>},
      {"put/distcache", put_distcache<plain>},
      {"put/baseline", put_baseline},
      {"put/observed", put_distcache<observed>},
      {"put/traced", put_distcache<traced>},
      {"get_many/distcache", get_many_distcache},
      {"get_many/baseline", get_many_baseline},
  }};
  for (const auto& e : all) {
    benchmark::RegisterBenchmark(e.name, e.fn)->Threads(1)->Threads(2)->UseRealTime();
  }
}

// ------------------------------------------------------------------ summary

/// Forwards every report to the display reporter chosen by
/// --benchmark_format (console or json) and remembers each run's time per
/// item, to print the ratios once every benchmark has run: on stdout after
/// the console table, on stderr with json (so that stdout stays valid JSON).
/// With --benchmark_repetitions the summary uses the median repetition.
class summary_reporter : public benchmark::BenchmarkReporter {
 public:
  summary_reporter(std::unique_ptr<benchmark::BenchmarkReporter> inner, std::ostream& summary_out)
      : inner_(std::move(inner)), summary_out_(summary_out) {}

  bool ReportContext(const Context& context) override { return inner_->ReportContext(context); }

  void ReportRuns(const std::vector<Run>& runs) override {
    inner_->ReportRuns(runs);
    for (const auto& run : runs) {
      if (run.run_type != Run::RT_Iteration || run.error_occurred) continue;
      const auto items = run.counters.find("items_per_second");
      if (items == run.counters.end() || items->second.value <= 0) continue;
      const std::string& fn = run.run_name.function_name;  // "<op>/<impl>"
      const auto slash = fn.find('/');
      if (slash == std::string::npos || run.real_accumulated_time <= 0) continue;
      auto& s = samples_[{fn.substr(0, slash), fn.substr(slash + 1), run.threads}];
      s.ns_per_item.push_back(1e9 / items->second.value);
      // Share of the wall-clock time the benchmark threads spent on a CPU:
      // about 1 when they never wait; lower when they sleep (on a lock, for
      // another thread) or another process takes the CPU.
      s.on_cpu.push_back(run.cpu_accumulated_time /
                         (run.real_accumulated_time * static_cast<double>(run.threads)));
    }
  }

  void Finalize() override {
    inner_->Finalize();
    auto& out = summary_out_;
    char line[200];
    out << "\nSummary: wall-clock ns per item; ratio = distcache / baseline (lower is better);\n"
           "on-CPU = share of the time the benchmark threads were running\n";
    std::snprintf(line, sizeof line, "%-10s %7s %13s %13s %8s %9s %9s\n", "operation", "threads",
                  "distcache ns", "baseline ns", "ratio", "on-CPU d", "on-CPU b");
    out << line;
    std::vector<std::string> ops;
    for (const auto& entry : samples_) {
      const std::string& op = std::get<0>(entry.first);
      if (std::find(ops.begin(), ops.end(), op) == ops.end()) ops.push_back(op);
    }
    for (const auto& op : ops) {
      for (const std::int64_t t : {1, 2}) {
        const auto* ours = find(op, "distcache", t);
        const auto* base = find(op, "baseline", t);
        if (ours == nullptr || base == nullptr) continue;
        const double o = median(ours->ns_per_item);
        const double b = median(base->ns_per_item);
        std::snprintf(line, sizeof line, "%-10s %7lld %13.1f %13.1f %7.2fx %9.2f %9.2f\n",
                      op.c_str(), static_cast<long long>(t), o, b, o / b, median(ours->on_cpu),
                      median(base->on_cpu));
        out << line;
      }
    }
    // hit_get/baseline only takes reader locks, so its threads never sleep:
    // when they were off the CPU, another process had it.
    for (const std::int64_t t : {1, 2}) {
      if (const auto* probe = find("hit_get", "baseline", t)) {
        const double share = median(probe->on_cpu);
        if (share < 0.9) {
          std::snprintf(line, sizeof line,
                        "warning: at %lld thread(s) hit_get/baseline ran only %.0f%% of the time: "
                        "another process took a CPU; these figures are not representative\n",
                        static_cast<long long>(t), share * 100);
          out << line;
        }
      }
    }
    out << "\nTelemetry: ratio to <op>/distcache (telemetry::none), wall-clock ns per item\n";
    std::snprintf(line, sizeof line, "%-10s %7s %13s %10s %13s %10s\n", "operation", "threads",
                  "observed ns", "ratio", "traced ns", "ratio");
    out << line;
    for (const auto& op : ops) {
      for (const std::int64_t t : {1, 2}) {
        const auto* ours = find(op, "distcache", t);
        const auto* obs = find(op, "observed", t);
        const auto* tr = find(op, "traced", t);
        if (ours == nullptr || obs == nullptr || tr == nullptr) continue;
        const double o = median(ours->ns_per_item);
        std::snprintf(line, sizeof line, "%-10s %7lld %13.1f %9.2fx %13.1f %9.2fx\n", op.c_str(),
                      static_cast<long long>(t), median(obs->ns_per_item),
                      median(obs->ns_per_item) / o, median(tr->ns_per_item),
                      median(tr->ns_per_item) / o);
        out << line;
      }
    }
    out << "\nmiss_load through the pool (spin_wait 20us, and 0: nospin) and with "
           "fetch_on_caller_thread (here):\nwall-clock ns per item; over = x - baseline\n";
    std::snprintf(line, sizeof line, "%-10s %7s %11s %9s %9s %9s %9s %9s\n", "operation", "threads",
                  "baseline ns", "pool ns", "over", "nospin ns", "over", "here over");
    out << line;
    for (const std::int64_t t : {1, 2}) {
      const auto* here = find("miss_load", "here", t);
      const auto* base = find("miss_load", "baseline", t);
      const auto* pool = find("miss_load", "distcache", t);
      const auto* nospin = find("miss_load", "nospin", t);
      if (here == nullptr || base == nullptr || pool == nullptr || nospin == nullptr) continue;
      const double h = median(here->ns_per_item);
      const double b = median(base->ns_per_item);
      const double p = median(pool->ns_per_item);
      const double n = median(nospin->ns_per_item);
      std::snprintf(line, sizeof line, "%-10s %7lld %11.1f %9.1f %9.1f %9.1f %9.1f %9.1f\n",
                    "miss_load", static_cast<long long>(t), b, p, p - b, n, n - b, h - b);
      out << line;
    }
    out << "\nThroughput scaling, 2 threads / 1 thread (items per second)\n";
    std::snprintf(line, sizeof line, "%-10s %12s %12s\n", "operation", "distcache", "baseline");
    out << line;
    for (const auto& op : ops) {
      const double ours = scaling(op, "distcache");
      const double base = scaling(op, "baseline");
      if (ours <= 0 && base <= 0) continue;
      std::snprintf(line, sizeof line, "%-10s %11.2fx %11.2fx\n", op.c_str(), ours, base);
      out << line;
    }
    out.flush();
  }

 private:
  struct sample {
    std::vector<double> ns_per_item;
    std::vector<double> on_cpu;
  };
  static double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  }
  const sample* find(const std::string& op, const std::string& impl, std::int64_t threads) const {
    auto it = samples_.find({op, impl, threads});
    return it == samples_.end() || it->second.ns_per_item.empty() ? nullptr : &it->second;
  }
  double scaling(const std::string& op, const std::string& impl) const {
    const auto* one = find(op, impl, 1);
    const auto* two = find(op, impl, 2);
    return one != nullptr && two != nullptr ? median(one->ns_per_item) / median(two->ns_per_item)
                                            : 0.0;
  }

  std::unique_ptr<benchmark::BenchmarkReporter> inner_;
  std::ostream& summary_out_;
  std::map<std::tuple<std::string, std::string, std::int64_t>, sample> samples_;
};

/// The value of --NAME=VALUE among the arguments, or "" (read before
/// benchmark::Initialize consumes the library's flags).
std::string flag_value(int argc, char** argv, std::string_view name) {
  std::string value;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg(argv[i]);
    if (arg.size() > name.size() + 3 && arg.substr(0, 2) == "--" &&
        arg.substr(2, name.size()) == name && arg[name.size() + 2] == '=') {
      value = std::string(arg.substr(name.size() + 3));
    }
  }
  return value;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string format = flag_value(argc, argv, "benchmark_format");
  const std::string color = flag_value(argc, argv, "benchmark_color");
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  std::unique_ptr<benchmark::BenchmarkReporter> display;
  std::ostream* summary_out = &std::cout;
  if (format == "json") {
    display = std::make_unique<benchmark::JSONReporter>();
    summary_out = &std::cerr;
  } else {
    const bool colored = color.empty() || color == "auto" ? isatty(STDOUT_FILENO) != 0
                                                          : color == "true" || color == "yes" ||
                                                                color == "1" || color == "always";
    display = std::make_unique<benchmark::ConsoleReporter>(
        colored ? benchmark::ConsoleReporter::OO_ColorTabular
                : benchmark::ConsoleReporter::OO_Tabular);
  }
  summary_reporter reporter(std::move(display), *summary_out);

  auto shared = std::make_unique<fixture>();  // started engine, preloaded keys
  fx = shared.get();
  register_all();
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  fx = nullptr;
  shared.reset();  // stops the engine
  return 0;
}
