// distcache — cluster load generator: N nodes in one process on 127.0.0.1.
//
// Starts --nodes engines (default 3) with OS-chosen ports that find each other
// through a shared in-memory registry (distcache::discovery::in_process), pre-loads the keys on
// their owners, then keeps --clients requests in flight for --seconds from node A (node 0) and
// reports ops/s, p50/p99 latency and data-source calls.
//
// Modes:
//   remote-hit  every key is owned by node B (node 1) and pre-loaded into B's
//               main cache; A's hot cache is off (hot_max_bytes = 0), so every
//               get is exactly one network hop A -> B answered from B's cache.
//   mixed       keys owned by any node; requests are issued round-robin from all
//               nodes, whose hot caches keep their default budget (or
//               --hot-bytes): local hits, hot hits and remote hits mixed.
//   get-many    get_many of --batch keys (default 100) owned by any node, from A
//               with A's hot cache off; reports the get requests each owner
//               received per call (at most one round trip per owner means <= 1).
//
// The peer server of every node counts the get requests it receives (a
// transport policy wrapping transport::http), which checks the hop count of
// every mode. Completions run on --threads client threads (default 1); with
// --threads 0 they run on node A's own engine thread.
//
// Pinning (Linux): --server-cpu pins the threads of every node but A, and
// --client-cpu pins node A's threads and the client threads (threads inherit
// the affinity of the thread that creates them, so main pins itself before
// starting each group). The comparison script uses 0 and 1.
//
// --tls DIR runs every node over mutual TLS with DIR/node.crt, node.key
// (a certificate naming IP 127.0.0.1) and DIR/ca.crt (bench/compare/run.sh
// makes them with the openssl command).
//
// --coalesce N sets config.cluster.coalesce_in_flight (0: coalescing off;
// default: the library's default). --io-spin US sets config.io_spin of every
// node, in microseconds (default: the library's, 0).
//
// The last line of output is machine-readable: "RESULT key=value ...".
//
//   bench_cluster_load --mode remote-hit --clients 16 --seconds 5
//   bench_cluster_load --mode get-many --clients 4 --dist zipf

#include <algorithm>
#include <atomic>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <distcache/engine.hpp>
#include <distcache/transport/http_client.hpp>
#include <distcache/transport/http_server.hpp>
#include <distcache/transport/https.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <pthread.h>
#include <sched.h>

namespace {

namespace net = boost::asio;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

// ------------------------------------------------------------------ options

enum class run_mode { remote_hit, mixed, get_many };
enum class key_dist { uniform, zipf };

struct options {
  int nodes = 3;
  int clients = 16;
  std::size_t keys = 10'000;
  key_dist dist = key_dist::uniform;
  double zipf_s = 0.99;
  double seconds = 5;
  double warmup = 1;
  std::size_t value_bytes = 100;
  run_mode mode = run_mode::remote_hit;
  int threads = 1;
  std::size_t node_threads = 1;
  std::size_t batch = 100;
  std::int64_t hot_bytes = -1;  // -1: the mode's default
  int server_cpu = -1;
  int client_cpu = -1;
  std::string tls_dir;   // empty: plaintext; else DIR/node.crt, node.key, ca.crt
  long coalesce = -1;    // config.cluster.coalesce_in_flight; -1: its default
  long io_spin_us = -1;  // config.io_spin in microseconds; -1: its default
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "bench_cluster_load: %s\n"
               "usage: bench_cluster_load [--nodes N] [--clients C] [--keys K]\n"
               "         [--dist uniform|zipf] [--zipf-s S] [--seconds S] [--warmup S]\n"
               "         [--value-bytes B] [--mode remote-hit|mixed|get-many] [--threads T]\n"
               "         [--node-threads T] [--batch N] [--hot-bytes N]\n"
               "         [--server-cpu CPU] [--client-cpu CPU] [--tls DIR] [--coalesce N]\n"
               "         [--io-spin US]\n",
               why);
  std::exit(2);
}

template <class T>
T parse_number(std::string_view flag, const char* text) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text, &end);
  if (errno != 0 || end == text || *end != '\0') {
    usage((std::string(flag) + ": not a number: " + text).c_str());
  }
  return static_cast<T>(v);
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "-h" || flag == "--help") usage("help");
    if (i + 1 >= argc) usage(("missing value after " + std::string(flag)).c_str());
    const char* v = argv[++i];
    if (flag == "--nodes") {
      o.nodes = parse_number<int>(flag, v);
    } else if (flag == "--clients") {
      o.clients = parse_number<int>(flag, v);
    } else if (flag == "--keys") {
      o.keys = parse_number<std::size_t>(flag, v);
    } else if (flag == "--dist") {
      const std::string_view d = v;
      if (d == "uniform") {
        o.dist = key_dist::uniform;
      } else if (d == "zipf") {
        o.dist = key_dist::zipf;
      } else {
        usage("--dist: uniform or zipf");
      }
    } else if (flag == "--zipf-s") {
      o.zipf_s = parse_number<double>(flag, v);
    } else if (flag == "--seconds") {
      o.seconds = parse_number<double>(flag, v);
    } else if (flag == "--warmup") {
      o.warmup = parse_number<double>(flag, v);
    } else if (flag == "--value-bytes") {
      o.value_bytes = parse_number<std::size_t>(flag, v);
    } else if (flag == "--mode") {
      const std::string_view m = v;
      if (m == "remote-hit") {
        o.mode = run_mode::remote_hit;
      } else if (m == "mixed") {
        o.mode = run_mode::mixed;
      } else if (m == "get-many") {
        o.mode = run_mode::get_many;
      } else {
        usage("--mode: remote-hit, mixed or get-many");
      }
    } else if (flag == "--threads") {
      o.threads = parse_number<int>(flag, v);
    } else if (flag == "--node-threads") {
      o.node_threads = parse_number<std::size_t>(flag, v);
    } else if (flag == "--batch") {
      o.batch = parse_number<std::size_t>(flag, v);
    } else if (flag == "--hot-bytes") {
      o.hot_bytes = parse_number<std::int64_t>(flag, v);
    } else if (flag == "--server-cpu") {
      o.server_cpu = parse_number<int>(flag, v);
    } else if (flag == "--client-cpu") {
      o.client_cpu = parse_number<int>(flag, v);
    } else if (flag == "--tls") {
      o.tls_dir = v;
    } else if (flag == "--coalesce") {
      o.coalesce = parse_number<long>(flag, v);
    } else if (flag == "--io-spin") {
      o.io_spin_us = parse_number<long>(flag, v);
    } else {
      usage(("unknown flag " + std::string(flag)).c_str());
    }
  }
  if (o.nodes < 2 || o.nodes > 64) usage("--nodes: 2..64");
  if (o.clients < 1 || o.clients > 4096) usage("--clients: 1..4096");
  if (o.keys < 1) usage("--keys: >= 1");
  if (o.seconds <= 0 || o.seconds > 3600) usage("--seconds: (0, 3600]");
  if (o.warmup < 0 || o.warmup > 600) usage("--warmup: [0, 600]");
  if (o.value_bytes > (std::size_t{64} << 20)) usage("--value-bytes: at most 64 MiB");
  if (o.threads < 0 || o.threads > 64) usage("--threads: 0..64");
  if (o.node_threads < 1 || o.node_threads > 64) usage("--node-threads: 1..64");
  if (o.io_spin_us < -1 || o.io_spin_us > 10'000) usage("--io-spin: 0..10000 (microseconds)");
  if (o.batch < 1 || o.batch > 10'000) usage("--batch: 1..10000");
  if (o.zipf_s <= 0) usage("--zipf-s: > 0");
  return o;
}

const char* mode_name(run_mode m) {
  switch (m) {
    case run_mode::remote_hit:
      return "remote-hit";
    case run_mode::mixed:
      return "mixed";
    case run_mode::get_many:
      return "get-many";
  }
  return "?";
}

/// Pins the calling thread to `cpu` (no-op for a negative cpu). Threads it
/// creates afterwards inherit the mask.
void pin_this_thread(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (int rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set); rc != 0) {
    std::fprintf(stderr, "bench_cluster_load: cannot pin to CPU %d: %s\n", cpu, std::strerror(rc));
  }
}

/// The ids of this process's threads (/proc/self/task).
std::set<long> task_ids() {
  std::set<long> ids;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    ids.insert(std::strtol(e.path().filename().c_str(), nullptr, 10));
  }
  return ids;
}

/// CPU time the threads `tids` ran, in ns (/proc/self/task/TID/schedstat;
/// a thread that ended counts 0).
std::uint64_t cpu_ns(const std::set<long>& tids) {
  std::uint64_t sum = 0;
  for (long tid : tids) {
    std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/schedstat");
    std::uint64_t ns = 0;
    if (in >> ns) sum += ns;
  }
  return sum;
}

// ------------------------------------------------------------------ discovery

// Nodes find each other through distcache::discovery::in_process.
using registry_discovery = distcache::discovery::in_process;
using registry = distcache::discovery::in_process::registry;

// ------------------------------------------------------------------ counting transport

/// Get requests (and keys in them) one node's peer server received.
struct peer_counters {
  std::atomic<std::uint64_t> get_requests{0};
  std::atomic<std::uint64_t> get_keys{0};
};

/// Counters by server port, filled when a server starts.
struct counter_registry {
  std::mutex mutex;
  std::map<std::uint16_t, std::shared_ptr<peer_counters>> by_port;

  static counter_registry& instance() {
    static counter_registry r;
    return r;
  }
  std::shared_ptr<peer_counters> find(std::uint16_t port) {
    std::lock_guard lock(mutex);
    auto it = by_port.find(port);
    return it == by_port.end() ? nullptr : it->second;
  }
};

/// Forwards every call to the engine's peer_service and counts the gets.
class counting_service final : public distcache::transport::peer_service {
 public:
  counting_service(peer_service& inner, peer_counters& counters)
      : inner_(inner), counters_(counters) {}
  [[nodiscard]] bool has_keyspace(std::string_view keyspace) const override {
    return inner_.has_keyspace(keyspace);
  }
  void on_peer_request(const distcache::transport::request_info& info) override {
    inner_.on_peer_request(info);
  }
  void get(std::string_view keyspace, std::vector<std::string> keys,
           std::function<void(std::vector<distcache::transport::reply_item>)> done) override {
    counters_.get_requests.fetch_add(1, std::memory_order_relaxed);
    counters_.get_keys.fetch_add(keys.size(), std::memory_order_relaxed);
    inner_.get(keyspace, std::move(keys), std::move(done));
  }
  distcache::error_code set(std::string_view keyspace, std::string key, std::string value,
                            std::int64_t ttl_ms) override {
    return inner_.set(keyspace, std::move(key), std::move(value), ttl_ms);
  }
  std::size_t remove(std::string_view keyspace, const std::vector<std::string>& keys) override {
    return inner_.remove(keyspace, keys);
  }
  void invalidate(std::string_view keyspace, const std::vector<std::string>& keys) override {
    inner_.invalidate(keyspace, keys);
  }

 private:
  peer_service& inner_;
  peer_counters& counters_;
};

/// transport::http_server behind a counting_service.
class counting_server final : public distcache::transport::peer_server {
 public:
  counting_server(net::io_context& ioc, distcache::transport::peer_service& service,
                  distcache::transport::server_options options, distcache::logger log)
      : counters_(std::make_shared<peer_counters>()),
        service_(service, *counters_),
        inner_(ioc, service_, std::move(options), std::move(log),
               distcache::transport::https::tls_library()) {}
  distcache::result<void> start() override {
    auto r = inner_.start();
    if (r) {
      auto& reg = counter_registry::instance();
      std::lock_guard lock(reg.mutex);
      reg.by_port[inner_.port()] = counters_;
    }
    return r;
  }
  void stop() override { inner_.stop(); }
  [[nodiscard]] std::uint16_t port() const noexcept override { return inner_.port(); }

 private:
  std::shared_ptr<peer_counters> counters_;
  counting_service service_;
  distcache::transport::http_server inner_;
};

/// transport::https (transport::http with TLS when --tls asks for it) with
/// counted server-side gets.
struct counting_http {
  static constexpr bool supports_tls = true;
  static std::unique_ptr<distcache::transport::peer_server> make_server(
      net::io_context& ioc, distcache::transport::peer_service& service,
      const distcache::transport::server_options& options, const distcache::logger& log) {
    return std::make_unique<counting_server>(ioc, service, options, log);
  }
  static std::unique_ptr<distcache::transport::peer_client> make_client(
      net::io_context& ioc, const distcache::transport::client_options& options,
      const distcache::logger& log) {
    return std::make_unique<distcache::transport::http_client>(
        ioc, options, log, distcache::transport::https::tls_library());
  }
};
static_assert(distcache::transport::transport_policy<counting_http>);

// ------------------------------------------------------------------ keyspace

/// Returns value_bytes-byte values and counts its calls.
struct sized_source {
  std::shared_ptr<std::atomic<std::uint64_t>> calls =
      std::make_shared<std::atomic<std::uint64_t>>(0);
  std::size_t value_bytes = 100;

  distcache::fetch_result<std::string> fetch(std::string_view key) const {
    calls->fetch_add(1, std::memory_order_relaxed);
    std::string v(value_bytes, 'v');
    std::copy_n(key.begin(), std::min(key.size(), v.size()), v.begin());
    return v;
  }
};

struct bench_keyspace {
  static constexpr std::string_view name = "bench";
  using value_type = std::string;
  std::int64_t max_bytes = std::int64_t{1} << 30;
  sized_source source;
};

using node_engine =
    distcache::basic_engine<distcache::policies<registry_discovery, counting_http>, bench_keyspace>;
using value_ptr = distcache::value_ptr<std::string>;

// ------------------------------------------------------------------ keys

/// Draws key indexes: uniform, or Zipf(s) over a random permutation.
class key_picker {
 public:
  key_picker(const options& o, std::size_t n) : uniform_(0, n - 1) {
    if (o.dist == key_dist::zipf) {
      cdf_.resize(n);
      double sum = 0;
      for (std::size_t i = 0; i < n; ++i) {
        sum += 1.0 / std::pow(static_cast<double>(i + 1), o.zipf_s);
        cdf_[i] = sum;
      }
      for (auto& c : cdf_) c /= sum;
      perm_.resize(n);
      for (std::size_t i = 0; i < n; ++i) perm_[i] = i;
      std::mt19937_64 shuffle_rng(42);
      std::shuffle(perm_.begin(), perm_.end(), shuffle_rng);
    }
  }
  std::size_t operator()(std::mt19937_64& rng) const {
    if (cdf_.empty()) return uniform_(rng);
    const double u = std::uniform_real_distribution<double>(0, 1)(rng);
    auto it = std::lower_bound(cdf_.begin(), cdf_.end(), u);
    const auto rank =
        std::min<std::size_t>(static_cast<std::size_t>(it - cdf_.begin()), perm_.size() - 1);
    return perm_[rank];
  }

 private:
  mutable std::uniform_int_distribution<std::size_t> uniform_;
  std::vector<double> cdf_;
  std::vector<std::size_t> perm_;
};

// ------------------------------------------------------------------ load

/// One request stream: at most one request in flight at a time.
struct lane {
  std::mt19937_64 rng;
  std::vector<std::uint32_t> latencies_ns;  // measured requests only
  std::uint64_t completed = 0;              // every completion, all phases
  std::uint64_t errors = 0;                 // completions (or get_many items) that failed
  std::uint64_t keys_completed = 0;         // measured keys (get_many: batch per call)
  std::vector<std::string> batch;           // get_many keys of the call in flight
};

struct run_state {
  const options& opt;
  std::vector<std::unique_ptr<node_engine>>& nodes;
  const std::vector<std::string>& keys;
  key_picker picker;
  std::vector<lane> lanes;
  std::optional<net::io_context::executor_type> client_ex;  // empty: engine threads
  std::atomic<std::int64_t> measure_from{std::numeric_limits<std::int64_t>::max()};
  std::atomic<std::int64_t> measure_until{std::numeric_limits<std::int64_t>::max()};
  std::atomic<bool> stopping{false};
  std::mutex mutex;
  std::condition_variable cv;
  int running = 0;

  run_state(const options& o, std::vector<std::unique_ptr<node_engine>>& n,
            const std::vector<std::string>& k)
      : opt(o), nodes(n), keys(k), picker(o, k.size()), lanes(static_cast<std::size_t>(o.clients)) {
    for (std::size_t i = 0; i < lanes.size(); ++i) lanes[i].rng.seed(1000 + i);
  }

  static std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               clock_type::now().time_since_epoch())
        .count();
  }

  void lane_done() {
    std::lock_guard lock(mutex);
    if (--running == 0) cv.notify_all();
  }

  /// Records a completion that started at t0; true when it counts.
  bool record(lane& l, std::int64_t t0) {
    ++l.completed;
    const std::int64_t t1 = now_ns();
    if (t0 < measure_from.load(std::memory_order_relaxed) ||
        t1 > measure_until.load(std::memory_order_relaxed)) {
      return false;
    }
    l.latencies_ns.push_back(static_cast<std::uint32_t>(
        std::min<std::int64_t>(t1 - t0, std::numeric_limits<std::uint32_t>::max())));
    return true;
  }

  template <class Handler>
  void get_from(node_engine& node, const std::string& key, Handler&& h) {
    if (client_ex) {
      node.async_get<bench_keyspace>(key, net::bind_executor(*client_ex, std::forward<Handler>(h)));
    } else {
      node.async_get<bench_keyspace>(key, std::forward<Handler>(h));
    }
  }

  template <class Handler>
  void get_many_from(node_engine& node, const std::vector<std::string>& batch, Handler&& h) {
    if (client_ex) {
      node.async_get_many<bench_keyspace>(batch,
                                          net::bind_executor(*client_ex, std::forward<Handler>(h)));
    } else {
      node.async_get_many<bench_keyspace>(batch, std::forward<Handler>(h));
    }
  }

  void issue(std::size_t li) {
    lane& l = lanes[li];
    if (stopping.load(std::memory_order_relaxed)) return lane_done();
    const std::int64_t t0 = now_ns();
    if (opt.mode == run_mode::get_many) {
      l.batch.clear();
      for (std::size_t i = 0; i < opt.batch; ++i) l.batch.push_back(keys[picker(l.rng)]);
      get_many_from(*nodes[0], l.batch,
                    [this, li, t0](distcache::error_code ec,
                                   const std::vector<distcache::result<value_ptr>>& items) {
                      lane& me = lanes[li];
                      if (ec) ++me.errors;
                      for (const auto& item : items) {
                        if (!item || !*item) ++me.errors;
                      }
                      if (record(me, t0)) me.keys_completed += items.size();
                      issue(li);
                    });
      return;
    }
    node_engine& node = opt.mode == run_mode::mixed ? *nodes[li % nodes.size()] : *nodes[0];
    get_from(node, keys[picker(l.rng)],
             [this, li, t0](distcache::error_code ec, const value_ptr& v) {
               lane& me = lanes[li];
               if (ec || !v) ++me.errors;
               if (record(me, t0)) ++me.keys_completed;
               issue(li);
             });
  }
};

// ------------------------------------------------------------------ cluster

distcache::config node_config(const options& o, bool caller) {
  distcache::config c;
  c.threads = o.node_threads;
  c.fetch_threads = 2;
  c.log = [](distcache::log_level level, std::string_view line) {
    if (level >= distcache::log_level::warning) {
      std::fprintf(stderr, "node: %.*s\n", static_cast<int>(line.size()), line.data());
    }
  };
  c.cluster.enabled = true;
  c.cluster.bind_address = "127.0.0.1";
  c.cluster.port = 0;
  c.cluster.probe_interval = 500ms;
  c.cluster.discovery_interval = 1s;
  c.cluster.join_retry_interval = 10ms;
  c.cluster.peer_timeout = 1s;
  if (o.coalesce >= 0) c.cluster.coalesce_in_flight = static_cast<std::size_t>(o.coalesce);
  if (o.io_spin_us >= 0) c.io_spin = std::chrono::microseconds(o.io_spin_us);
  if (!o.tls_dir.empty()) {  // mutual TLS, one certificate for every node (IP SAN 127.0.0.1)
    c.cluster.tls.enabled = true;
    c.cluster.tls.certificate_file = o.tls_dir + "/node.crt";
    c.cluster.tls.private_key_file = o.tls_dir + "/node.key";
    c.cluster.tls.ca_file = o.tls_dir + "/ca.crt";
  }
  distcache::keyspace_options ks;
  std::int64_t hot = o.hot_bytes;
  // remote-hit and get-many measure the network path: the caller keeps no
  // copies of what it receives.
  if (hot < 0 && caller && o.mode != run_mode::mixed) hot = 0;
  if (hot >= 0) ks.hot_max_bytes = hot;
  c.keyspaces["bench"] = ks;
  return c;
}

template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds timeout) {
  const auto deadline = clock_type::now() + timeout;
  while (!pred()) {
    if (clock_type::now() > deadline) return pred();
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

std::uint16_t port_of(const std::string& name) {
  const auto colon = name.rfind(':');
  return static_cast<std::uint16_t>(std::strtoul(name.c_str() + colon + 1, nullptr, 10));
}

struct snapshot {
  std::vector<std::uint64_t> source_calls, peer_requests, peer_keys;
  std::vector<distcache::keyspace_stats> stats;
};

snapshot take_snapshot(const std::vector<std::unique_ptr<node_engine>>& nodes,
                       const std::vector<std::shared_ptr<std::atomic<std::uint64_t>>>& calls,
                       const std::vector<std::shared_ptr<peer_counters>>& counters) {
  snapshot s;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    s.source_calls.push_back(calls[i]->load());
    s.peer_requests.push_back(counters[i]->get_requests.load());
    s.peer_keys.push_back(counters[i]->get_keys.load());
    s.stats.push_back(nodes[i]->stats<bench_keyspace>());
  }
  return s;
}

double percentile_us(std::vector<std::uint32_t>& v, double p) {
  if (v.empty()) return 0;
  const auto k =
      std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k] / 1000.0;
}

int run(const options& o) {
  // Node A (the caller) on the client CPU, every other node on the server CPU.
  auto reg = std::make_shared<registry>();
  std::vector<std::unique_ptr<node_engine>> nodes;
  std::vector<std::shared_ptr<std::atomic<std::uint64_t>>> calls;
  for (int i = 0; i < o.nodes; ++i) {
    bench_keyspace ks;
    ks.source.value_bytes = o.value_bytes;
    ks.max_bytes = std::max<std::int64_t>(
        std::int64_t{64} << 20, static_cast<std::int64_t>(o.keys * (o.value_bytes + 256) * 2));
    calls.push_back(ks.source.calls);
    nodes.push_back(std::make_unique<node_engine>(node_config(o, i == 0), registry_discovery(reg),
                                                  std::move(ks)));
  }
  // The threads each node starts, for its CPU time (the engine creates all
  // of its threads in start()).
  std::vector<std::set<long>> node_tids(nodes.size());
  for (int i = o.nodes - 1; i >= 0; --i) {  // A last: main ends pinned like the clients
    pin_this_thread(i == 0 ? o.client_cpu : o.server_cpu);
    const auto existing = task_ids();
    if (auto r = nodes[static_cast<std::size_t>(i)]->start(); !r) {
      std::fprintf(stderr, "bench_cluster_load: node %d does not start: %s\n", i,
                   r.error().message().c_str());
      return 1;
    }
    for (long tid : task_ids()) {
      if (!existing.contains(tid)) node_tids[static_cast<std::size_t>(i)].insert(tid);
    }
  }
  const bool joined = wait_until(
      [&] {
        for (auto& n : nodes) {
          if (n->cluster_peers().size() != nodes.size() - 1) return false;
          if (n->ring_version() != nodes[0]->ring_version()) return false;
        }
        return true;
      },
      10s);
  if (!joined) {
    std::fprintf(stderr, "bench_cluster_load: the nodes did not agree on the ring in 10 s\n");
    return 1;
  }
  std::vector<std::shared_ptr<peer_counters>> counters;
  std::map<std::string, std::size_t> index_of_name;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    counters.push_back(counter_registry::instance().find(port_of(nodes[i]->self_name())));
    index_of_name[nodes[i]->self_name()] = i;
  }

  // Keys: remote-hit takes only keys node B owns; the other modes take all.
  std::vector<std::string> keys;
  const std::string b_name = nodes[1]->self_name();
  for (std::size_t i = 0; keys.size() < o.keys; ++i) {
    std::string k = "key:" + std::to_string(i);
    if (o.mode != run_mode::remote_hit || nodes[0]->owner_of(k) == b_name) {
      keys.push_back(std::move(k));
    }
  }
  // Pre-load every key into its owner's main cache (a local load there).
  {
    std::vector<std::vector<std::string>> by_owner(nodes.size());
    for (const auto& k : keys) by_owner[index_of_name.at(nodes[0]->owner_of(k))].push_back(k);
    for (std::size_t n = 0; n < nodes.size(); ++n) {
      for (std::size_t from = 0; from < by_owner[n].size(); from += 1000) {
        const auto to = std::min(by_owner[n].size(), from + 1000);
        std::vector<std::string> chunk(by_owner[n].begin() + static_cast<std::ptrdiff_t>(from),
                                       by_owner[n].begin() + static_cast<std::ptrdiff_t>(to));
        auto r = nodes[n]->get_many<bench_keyspace>(chunk);
        if (!r) {
          std::fprintf(stderr, "bench_cluster_load: pre-load failed: %s\n",
                       r.error().message().c_str());
          return 1;
        }
      }
    }
  }
  std::map<std::size_t, std::size_t> keys_per_owner;
  for (const auto& k : keys) ++keys_per_owner[index_of_name.at(nodes[0]->owner_of(k))];

  const snapshot before = take_snapshot(nodes, calls, counters);

  // Client threads (pinned with main).
  net::io_context client_ioc(std::max(1, o.threads));
  auto work = net::make_work_guard(client_ioc);
  std::vector<std::thread> client_threads;
  run_state st(o, nodes, keys);
  if (o.threads > 0) {
    st.client_ex = client_ioc.get_executor();
    for (int i = 0; i < o.threads; ++i) client_threads.emplace_back([&] { client_ioc.run(); });
  }
  st.running = o.clients;
  for (std::size_t li = 0; li < st.lanes.size(); ++li) {
    if (st.client_ex) {
      net::post(*st.client_ex, [&st, li] { st.issue(li); });
    } else {
      st.issue(li);
    }
  }
  // CPU time in the measured window: node B's threads (the server side of
  // every remote hit) and the client side (node A's threads, the client
  // threads and main).
  std::set<long> client_tids = task_ids();
  for (std::size_t i = 1; i < nodes.size(); ++i) {
    for (long tid : node_tids[i]) client_tids.erase(tid);
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(o.warmup));
  const std::uint64_t b_cpu0 = cpu_ns(node_tids[1]);
  const std::uint64_t client_cpu0 = cpu_ns(client_tids);
  const std::uint64_t b_requests0 = counters[1]->get_requests.load();
  const std::int64_t from = run_state::now_ns();
  st.measure_from.store(from);
  std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
  const std::int64_t until = run_state::now_ns();
  st.measure_until.store(until);
  const std::uint64_t b_cpu = cpu_ns(node_tids[1]) - b_cpu0;
  const std::uint64_t client_cpu = cpu_ns(client_tids) - client_cpu0;
  const std::uint64_t b_requests = counters[1]->get_requests.load() - b_requests0;
  st.stopping.store(true);
  bool drained = false;
  {
    std::unique_lock lock(st.mutex);
    drained = st.cv.wait_for(lock, 15s, [&] { return st.running == 0; });
  }
  work.reset();
  if (!drained) client_ioc.stop();
  for (auto& t : client_threads) t.join();
  if (!drained) {
    std::fprintf(stderr, "bench_cluster_load: requests still in flight 15 s after the end\n");
    return 1;
  }
  const snapshot after = take_snapshot(nodes, calls, counters);

  // ---------------------------------------------------------------- report
  std::vector<std::uint32_t> lat;
  std::uint64_t completed = 0, errors = 0, measured_keys = 0;
  for (auto& l : st.lanes) {
    lat.insert(lat.end(), l.latencies_ns.begin(), l.latencies_ns.end());
    completed += l.completed;
    errors += l.errors;
    measured_keys += l.keys_completed;
  }
  const double secs = static_cast<double>(until - from) / 1e9;
  const double ops = static_cast<double>(lat.size()) / secs;
  const double keys_per_s = static_cast<double>(measured_keys) / secs;
  const double p50 = percentile_us(lat, 0.50);
  const double p99 = percentile_us(lat, 0.99);
  const double p999 = percentile_us(lat, 0.999);
  std::uint64_t load_source_calls = 0, preload_source_calls = 0;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    load_source_calls += after.source_calls[i] - before.source_calls[i];
    preload_source_calls += before.source_calls[i];
  }
  const auto wall_ns = static_cast<double>(until - from);
  const double b_cpu_per_request_us =
      b_requests ? static_cast<double>(b_cpu) / static_cast<double>(b_requests) / 1000 : 0;
  const double client_cpu_per_op_us =
      lat.empty() ? 0 : static_cast<double>(client_cpu) / static_cast<double>(lat.size()) / 1000;
  const auto& a0 = before.stats[0];
  const auto& a1 = after.stats[0];

  std::printf(
      "mode %s, %d nodes, %d in flight, %zu keys (%s), %zu-byte values, %d client thread(s)",
      mode_name(o.mode), o.nodes, o.clients, keys.size(),
      o.dist == key_dist::zipf ? "zipf" : "uniform", o.value_bytes, o.threads);
  if (o.mode == run_mode::get_many) std::printf(", %zu keys per get_many", o.batch);
  std::printf("\n");
  if (o.server_cpu >= 0 || o.client_cpu >= 0) {
    std::printf("pinned: node A and clients on CPU %d, other nodes on CPU %d\n", o.client_cpu,
                o.server_cpu);
  }
  std::printf("measured %.2f s: %.0f %s/s", secs, ops,
              o.mode == run_mode::get_many ? "get_many calls" : "gets");
  if (o.mode == run_mode::get_many) std::printf(" (%.0f keys/s)", keys_per_s);
  std::printf(", p50 %.1f us, p99 %.1f us, p99.9 %.1f us\n", p50, p99, p999);
  std::printf(
      "CPU in the measured window: node B %.1f us per request it served (%.0f%% of a core), "
      "client side (node A + client threads) %.1f us per %s (%.0f%% of a core)\n",
      b_cpu_per_request_us, 100.0 * static_cast<double>(b_cpu) / wall_ns, client_cpu_per_op_us,
      o.mode == run_mode::get_many ? "call" : "get",
      100.0 * static_cast<double>(client_cpu) / wall_ns);
  std::printf("requests completed (warm-up and drain included): %llu, errors: %llu\n",
              static_cast<unsigned long long>(completed), static_cast<unsigned long long>(errors));
  std::printf("data-source calls: %llu while pre-loading, %llu under load\n",
              static_cast<unsigned long long>(preload_source_calls),
              static_cast<unsigned long long>(load_source_calls));
  std::printf("node A: gets %llu, cache hits %llu, peer loads %llu, peer errors %llu\n",
              static_cast<unsigned long long>(a1.gets - a0.gets),
              static_cast<unsigned long long>(a1.cache_hits - a0.cache_hits),
              static_cast<unsigned long long>(a1.peer_loads - a0.peer_loads),
              static_cast<unsigned long long>(a1.peer_errors - a0.peer_errors));
  double max_requests_per_call = 0;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const auto req = after.peer_requests[i] - before.peer_requests[i];
    const auto k = after.peer_keys[i] - before.peer_keys[i];
    const double per_call =
        completed ? static_cast<double>(req) / static_cast<double>(completed) : 0;
    if (i != 0) max_requests_per_call = std::max(max_requests_per_call, per_call);
    const std::string label =
        i < 26 ? std::string(1, static_cast<char>('A' + i)) : std::to_string(i);
    std::printf(
        "node %s (%s, owns %zu keys): received %llu get requests (%llu keys), %.3f per %s\n",
        label.c_str(), nodes[i]->self_name().c_str(),
        keys_per_owner.count(i) ? keys_per_owner[i] : 0, static_cast<unsigned long long>(req),
        static_cast<unsigned long long>(k), per_call,
        o.mode == run_mode::get_many ? "get_many call" : "client request");
    if (o.mode == run_mode::mixed && i != 0) {  // every node is a caller
      const auto& s0 = before.stats[i];
      const auto& s1 = after.stats[i];
      std::printf("node %s: gets %llu, cache hits %llu, peer loads %llu, peer errors %llu\n",
                  label.c_str(), static_cast<unsigned long long>(s1.gets - s0.gets),
                  static_cast<unsigned long long>(s1.cache_hits - s0.cache_hits),
                  static_cast<unsigned long long>(s1.peer_loads - s0.peer_loads),
                  static_cast<unsigned long long>(s1.peer_errors - s0.peer_errors));
    }
  }
  std::printf(
      "RESULT mode=%s nodes=%d inflight=%d keys=%zu dist=%s value_bytes=%zu threads=%d "
      "ops_per_s=%.0f keys_per_s=%.0f p50_us=%.1f p99_us=%.1f p999_us=%.1f errors=%llu "
      "source_calls=%llu peer_loads=%llu max_owner_requests_per_call=%.3f "
      "server_cpu_us=%.2f client_cpu_us=%.2f server_busy=%.2f client_busy=%.2f\n",
      mode_name(o.mode), o.nodes, o.clients, keys.size(),
      o.dist == key_dist::zipf ? "zipf" : "uniform", o.value_bytes, o.threads, ops, keys_per_s, p50,
      p99, p999, static_cast<unsigned long long>(errors),
      static_cast<unsigned long long>(load_source_calls),
      static_cast<unsigned long long>(a1.peer_loads - a0.peer_loads), max_requests_per_call,
      b_cpu_per_request_us, client_cpu_per_op_us, static_cast<double>(b_cpu) / wall_ns,
      static_cast<double>(client_cpu) / wall_ns);
  std::fflush(stdout);
  for (auto& n : nodes) (void)n->stop();
  return errors == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cluster_load: %s\n", e.what());
    return 1;
  }
}
