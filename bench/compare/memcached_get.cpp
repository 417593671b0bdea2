// memcached_get: a tiny memcached GET load client for bench/compare/run.sh.
//
// Stores --keys keys of --value-bytes bytes ("set", text protocol), then keeps
// one GET in flight on each of --conns connections for --seconds after a
// --warmup, on one thread (Boost.Asio), and prints ops/s and p50/p99 latency:
//
//   RESULT system=memcached inflight=C ops_per_s=... p50_us=... p99_us=... p999_us=... errors=...
//          server_cpu_us=... client_cpu_us=... server_busy=... client_busy=...
//
// The CPU figures are per GET in the measured window: this process's threads,
// and with --server-pid those of the memcached process (Linux schedstat).
//
//   memcached_get --port 11311 --conns 16 --keys 10000 --value-bytes 100 --seconds 5
//
// Build: c++ -std=c++20 -O2 -Wall -Wextra -pthread memcached_get.cpp -o memcached_get

#include <algorithm>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <istream>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using clock_type = std::chrono::steady_clock;

struct options {
  std::string host = "127.0.0.1";
  std::string port = "11211";
  int conns = 1;
  std::size_t keys = 10'000;
  std::size_t value_bytes = 100;
  double seconds = 5;
  double warmup = 1;
  std::string server_pid;  // empty: no server CPU figure
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "memcached_get: %s\nusage: memcached_get [--host H] [--port P] [--conns C] "
               "[--keys K] [--value-bytes B] [--seconds S] [--warmup S] [--server-pid PID]\n",
               why);
  std::exit(2);
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (i + 1 >= argc) usage("missing value");
    const char* v = argv[++i];
    if (flag == "--host") {
      o.host = v;
    } else if (flag == "--port") {
      o.port = v;
    } else if (flag == "--conns") {
      o.conns = std::atoi(v);
    } else if (flag == "--keys") {
      o.keys = std::strtoull(v, nullptr, 10);
    } else if (flag == "--value-bytes") {
      o.value_bytes = std::strtoull(v, nullptr, 10);
    } else if (flag == "--seconds") {
      o.seconds = std::atof(v);
    } else if (flag == "--warmup") {
      o.warmup = std::atof(v);
    } else if (flag == "--server-pid") {
      o.server_pid = v;
    } else {
      usage("unknown flag");
    }
  }
  if (o.conns < 1 || o.conns > 4096) usage("--conns: 1..4096");
  if (o.keys < 1) usage("--keys: >= 1");
  if (o.seconds <= 0 || o.seconds > 3600) usage("--seconds: (0, 3600]");
  if (o.warmup < 0 || o.warmup > 600) usage("--warmup: [0, 600]");
  return o;
}

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch())
      .count();
}

/// CPU time the threads of process `pid` ("self" or a number) ran, in ns.
std::uint64_t process_cpu_ns(const std::string& pid) {
  std::uint64_t sum = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + pid + "/task", ec)) {
    std::ifstream in(e.path() / "schedstat");
    std::uint64_t ns = 0;
    if (in >> ns) sum += ns;
  }
  return sum;
}

std::string key_of(std::size_t i) { return "key:" + std::to_string(i); }

/// One connection with one GET in flight at a time.
struct conn : std::enable_shared_from_this<conn> {
  conn(net::io_context& ioc, const options& o, std::uint64_t seed)
      : socket(ioc), opt(o), rng(seed) {}
  tcp::socket socket;
  const options& opt;
  std::mt19937_64 rng;
  net::streambuf in;
  std::string out;
  std::int64_t t0 = 0;
  std::vector<std::uint32_t> latencies_ns;
  std::uint64_t errors = 0;
  const std::atomic<std::int64_t>* from = nullptr;
  const std::atomic<std::int64_t>* until = nullptr;
  const std::atomic<bool>* stop = nullptr;

  void next() {
    if (stop->load(std::memory_order_relaxed)) return;
    out =
        "get " + key_of(std::uniform_int_distribution<std::size_t>(0, opt.keys - 1)(rng)) + "\r\n";
    t0 = now_ns();
    net::async_write(
        socket, net::buffer(out),
        [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
          if (ec) {
            ++self->errors;
            return;
          }
          net::async_read_until(
              self->socket, self->in, "END\r\n",
              [self](boost::system::error_code ec2, std::size_t n) {
                if (ec2) {
                  ++self->errors;
                  return;
                }
                const auto t1 = now_ns();
                // The reply: "VALUE <key> <flags> <bytes>\r\n<data>\r\nEND\r\n".
                auto data = self->in.data();
                const std::string_view head(static_cast<const char*>(data.data()),
                                            std::min<std::size_t>(n, 5));
                if (head != "VALUE") ++self->errors;
                self->in.consume(n);
                if (self->t0 >= self->from->load(std::memory_order_relaxed) &&
                    t1 <= self->until->load(std::memory_order_relaxed)) {
                  self->latencies_ns.push_back(static_cast<std::uint32_t>(std::min<std::int64_t>(
                      t1 - self->t0, std::numeric_limits<std::uint32_t>::max())));
                }
                self->next();
              });
        });
  }
};

double percentile_us(std::vector<std::uint32_t>& v, double p) {
  if (v.empty()) return 0;
  const auto k =
      std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k] / 1000.0;
}

int run(const options& o) {
  net::io_context ioc(1);
  tcp::resolver resolver(ioc);
  const auto endpoints = resolver.resolve(o.host, o.port);

  // Store the keys, pipelined in chunks of 100 sets.
  {
    tcp::socket s(ioc);
    net::connect(s, endpoints);
    const std::string value(o.value_bytes, 'v');
    net::streambuf in;
    for (std::size_t from = 0; from < o.keys; from += 100) {
      const std::size_t to = std::min(o.keys, from + 100);
      std::string req;
      for (std::size_t i = from; i < to; ++i) {
        req +=
            "set " + key_of(i) + " 0 0 " + std::to_string(o.value_bytes) + "\r\n" + value + "\r\n";
      }
      net::write(s, net::buffer(req));
      for (std::size_t i = from; i < to; ++i) {
        const std::size_t n = net::read_until(s, in, "\r\n");
        std::string line(static_cast<const char*>(in.data().data()), n);
        in.consume(n);
        if (line != "STORED\r\n") {
          std::fprintf(stderr, "memcached_get: set failed: %s", line.c_str());
          return 1;
        }
      }
    }
  }

  std::atomic<std::int64_t> from{std::numeric_limits<std::int64_t>::max()};
  std::atomic<std::int64_t> until{std::numeric_limits<std::int64_t>::max()};
  std::atomic<bool> stop{false};
  std::vector<std::shared_ptr<conn>> conns;
  for (int i = 0; i < o.conns; ++i) {
    auto c = std::make_shared<conn>(ioc, o, 1000 + static_cast<std::uint64_t>(i));
    net::connect(c->socket, endpoints);
    c->socket.set_option(tcp::no_delay(true));
    c->from = &from;
    c->until = &until;
    c->stop = &stop;
    conns.push_back(c);
  }
  for (auto& c : conns) c->next();
  std::thread runner([&] { ioc.run(); });  // ends once every connection stopped
  std::this_thread::sleep_for(std::chrono::duration<double>(o.warmup));
  const std::uint64_t server_cpu0 = o.server_pid.empty() ? 0 : process_cpu_ns(o.server_pid);
  const std::uint64_t client_cpu0 = process_cpu_ns("self");
  const auto t_from = now_ns();
  from.store(t_from);
  std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
  const auto t_until = now_ns();
  until.store(t_until);
  const std::uint64_t server_cpu =
      o.server_pid.empty() ? 0 : process_cpu_ns(o.server_pid) - server_cpu0;
  const std::uint64_t client_cpu = process_cpu_ns("self") - client_cpu0;
  stop.store(true);
  runner.join();

  std::vector<std::uint32_t> lat;
  std::uint64_t errors = 0;
  for (auto& c : conns) {
    lat.insert(lat.end(), c->latencies_ns.begin(), c->latencies_ns.end());
    errors += c->errors;
  }
  const double secs = static_cast<double>(t_until - t_from) / 1e9;
  const double ops = static_cast<double>(lat.size()) / secs;
  const double p50 = percentile_us(lat, 0.50), p99 = percentile_us(lat, 0.99),
               p999 = percentile_us(lat, 0.999);
  std::printf(
      "memcached GET, %d connection(s), %zu-byte values: %.0f gets/s, p50 %.1f us, p99 %.1f us\n",
      o.conns, o.value_bytes, ops, p50, p99);
  const auto wall = static_cast<double>(t_until - t_from);
  const double n = lat.empty() ? 1 : static_cast<double>(lat.size());
  const double server_us = static_cast<double>(server_cpu) / n / 1000;
  const double client_us = static_cast<double>(client_cpu) / n / 1000;
  std::printf(
      "CPU in the measured window: memcached %.1f us per GET (%.0f%% of a core), client %.1f us "
      "per GET (%.0f%% of a core)\n",
      server_us, 100.0 * static_cast<double>(server_cpu) / wall, client_us,
      100.0 * static_cast<double>(client_cpu) / wall);
  std::printf(
      "RESULT system=memcached inflight=%d ops_per_s=%.0f p50_us=%.1f p99_us=%.1f p999_us=%.1f "
      "errors=%llu server_cpu_us=%.2f client_cpu_us=%.2f server_busy=%.2f client_busy=%.2f\n",
      o.conns, ops, p50, p99, p999, static_cast<unsigned long long>(errors), server_us, client_us,
      static_cast<double>(server_cpu) / wall, static_cast<double>(client_cpu) / wall);
  return errors == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "memcached_get: %s\n", e.what());
    return 1;
  }
}
