// discovery::dns against a real dnsmasq started by the test on a free
// loopback port (A, AAAA and SRV records, NXDOMAIN, empty answers, REFUSED,
// an unreachable upstream), a loopback socket that never answers (timeout),
// one that answers SERVFAIL, and three engines that form one ring from SRV
// records.
#include <distcache/discovery/dns.hpp>
//
#include <doctest/doctest.h>
#include <poll.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <distcache/engine.hpp>
#include <distcache/transport/http.hpp>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/keyspaces.hpp"
#include "support/processes.hpp"
#include "support/sources.hpp"

using distcache::config;
using distcache::discovery::dns;
using distcache::discovery::dns_errc;
using distcache::discovery::dns_options;
using distcache::test::eventually;
using namespace std::chrono_literals;

namespace {

/// dnsmasq serving `hosts` (an /etc/hosts-style file) and `extra` options on
/// a free loopback port, authoritative for ".test" (unknown names there are
/// NXDOMAIN). Construction waits until it answers.
class dnsmasq {
 public:
  explicit dnsmasq(const std::string& hosts, const std::vector<std::string>& extra = {})
      : hosts_(hosts), log_("") {
    const std::string program = distcache::test::find_program("dnsmasq");
    REQUIRE_MESSAGE(!program.empty(), "dnsmasq is not installed (scripts/deps installs it)");
    for (int attempt = 0; attempt < 5 && !ready_; ++attempt) {
      port_ = distcache::test::free_loopback_port();
      std::vector<std::string> argv = {program,
                                       "--no-daemon",
                                       "--port=" + std::to_string(port_),
                                       "--listen-address=127.0.0.1",
                                       "--bind-interfaces",
                                       "--no-resolv",
                                       "--no-hosts",
                                       "--pid-file=",
                                       "--addn-hosts=" + hosts_.path(),
                                       "--local=/test/"};
      argv.insert(argv.end(), extra.begin(), extra.end());
      process_ = distcache::test::child_process(argv, log_.path());
      // Ready when it answers a name it serves (bounded; a port lost to a
      // race makes the process exit, and the next attempt takes another).
      dns probe(options("ready.test"));
      ready_ = eventually([&] { return !process_.running() || probe.discover_peers().has_value(); },
                          5s) &&
               process_.running();
    }
    REQUIRE_MESSAGE(ready_, "dnsmasq did not start");
  }

  [[nodiscard]] std::string nameserver() const { return "127.0.0.1:" + std::to_string(port_); }

  /// Options for `name` with this server, short timeouts and port 7001.
  [[nodiscard]] dns_options options(std::string name) const {
    dns_options o;
    o.name = std::move(name);
    o.port = 7001;
    o.nameserver = nameserver();
    o.timeout = 500ms;
    o.tries = 2;
    return o;
  }

  void stop() { process_.stop(); }

 private:
  distcache::test::temp_file hosts_;
  distcache::test::temp_file log_;
  distcache::test::child_process process_;
  std::uint16_t port_ = 0;
  bool ready_ = false;
};

const char* const hosts_file =
    "127.0.0.1 ready.test\n"
    "127.0.0.1 cache.test\n"
    "127.0.0.2 cache.test\n"
    "127.0.0.3 cache.test\n"
    "::1 six.test\n"
    "127.0.0.9 dual.test\n"
    "::9 dual.test\n"
    "127.0.0.1 n1.test n2.test n3.test\n";

/// A UDP socket on a free loopback port that answers every query with
/// `rcode` (or, with rcode < 0, never answers) until destroyed.
class raw_dns_server {
 public:
  explicit raw_dns_server(int rcode) : rcode_(rcode) {
    fd_ = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  raw_dns_server(const raw_dns_server&) = delete;
  raw_dns_server& operator=(const raw_dns_server&) = delete;
  ~raw_dns_server() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  [[nodiscard]] std::string nameserver() const { return "127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] int queries() const { return queries_.load(); }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;  // re-checks stop_ every 20 ms
      unsigned char buf[512];
      sockaddr_in from{};
      socklen_t len = sizeof from;
      const auto n = ::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n < 12) continue;
      ++queries_;
      if (rcode_ < 0) continue;
      buf[2] = static_cast<unsigned char>(buf[2] | 0x80);  // QR: a response
      buf[3] = static_cast<unsigned char>((buf[3] & 0xf0) | rcode_);
      ::sendto(fd_, buf, static_cast<std::size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), len);
    }
  }
  int rcode_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> queries_{0};
  std::thread thread_;
};

std::vector<std::string> peers_of(dns_options o) {
  dns d(std::move(o));
  REQUIRE(d.initialize());
  auto r = d.discover_peers();
  REQUIRE_MESSAGE(r.has_value(), r.error().message());
  return *r;
}

distcache::error_code error_of(dns_options o) {
  dns d(std::move(o));
  REQUIRE(d.initialize());
  auto r = d.discover_peers();
  REQUIRE_FALSE(r.has_value());
  return r.error();
}

}  // namespace

TEST_CASE("dns: the A records of a name, each with the configured port, sorted") {
  dnsmasq server(hosts_file);
  CHECK(peers_of(server.options("cache.test")) ==
        std::vector<std::string>{"127.0.0.1:7001", "127.0.0.2:7001", "127.0.0.3:7001"});
}

TEST_CASE("dns: AAAA records in brackets; the family selects the records") {
  dnsmasq server(hosts_file);
  auto o = server.options("six.test");
  o.family = dns_options::address_family::ipv6;
  CHECK(peers_of(o) == std::vector<std::string>{"[::1]:7001"});
  o = server.options("dual.test");
  o.family = dns_options::address_family::both;
  CHECK(peers_of(o) == std::vector<std::string>{"127.0.0.9:7001", "[::9]:7001"});
  o.family = dns_options::address_family::ipv4;
  CHECK(peers_of(o) == std::vector<std::string>{"127.0.0.9:7001"});
  o.family = dns_options::address_family::ipv6;
  CHECK(peers_of(o) == std::vector<std::string>{"[::9]:7001"});
}

TEST_CASE("dns: SRV records give each peer its own port; a target without address is skipped") {
  dnsmasq server(hosts_file, {"--srv-host=_cache._tcp.srv.test,n1.test,7101",
                              "--srv-host=_cache._tcp.srv.test,n2.test,7102",
                              "--srv-host=_cache._tcp.srv.test,gone.test,7104"});
  auto o = server.options("_cache._tcp.srv.test");
  o.type = dns_options::record_type::srv;
  o.port = 0;  // unused for SRV
  CHECK(peers_of(o) == std::vector<std::string>{"127.0.0.1:7101", "127.0.0.1:7102"});
}

TEST_CASE("dns: NXDOMAIN, an empty answer and REFUSED are clear errors") {
  dnsmasq server(hosts_file);
  auto missing = error_of(server.options("missing.test"));
  CHECK(missing == dns_errc::not_found);
  CHECK(missing.message() == "DNS: no such name (NXDOMAIN)");
  auto o = server.options("six.test");  // has AAAA only
  o.family = dns_options::address_family::ipv4;
  CHECK(error_of(o) == dns_errc::no_records);
  auto srv = server.options("cache.test");  // has A records, no SRV
  srv.type = dns_options::record_type::srv;
  CHECK(error_of(srv) == dns_errc::no_records);
  // Outside ".test", with no upstream: dnsmasq refuses.
  auto refused = error_of(server.options("example.invalid"));
  CHECK(refused == dns_errc::refused);
}

TEST_CASE("dns: a nameserver that never answers times out within timeout x tries") {
  raw_dns_server silent(-1);
  dns_options o;
  o.name = "cache.test";
  o.port = 7001;
  o.nameserver = silent.nameserver();
  o.timeout = 100ms;
  o.tries = 2;
  const auto start = std::chrono::steady_clock::now();
  CHECK(error_of(o) == dns_errc::timeout);
  CHECK(std::chrono::steady_clock::now() - start < 5s);  // bounded, not a hang
  CHECK(silent.queries() >= 2);                          // every try was sent
}

TEST_CASE("dns: SERVFAIL from the nameserver is reported as such") {
  raw_dns_server failing(2);  // RCODE 2: SERVFAIL
  dns_options o;
  o.name = "cache.test";
  o.port = 7001;
  o.nameserver = failing.nameserver();
  o.timeout = 200ms;
  o.tries = 1;
  auto ec = error_of(o);
  CHECK(ec == dns_errc::server_failure);
  CHECK(ec.message() == "DNS: the nameserver failed (SERVFAIL)");
}

TEST_CASE("dns: invalid options are refused at construction, naming the field") {
  auto message_of = [](dns_options o) {
    try {
      dns d(std::move(o));
    } catch (const distcache::config_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  dns_options o;
  o.port = 7001;
  CHECK(message_of(o).starts_with("dns_options.name: must not be empty"));
  o.name = "cache.test";
  o.port = 0;
  CHECK(message_of(o).starts_with("dns_options.port: must be 1-65535"));
  o.port = 7001;
  for (const char* bad : {"nameserver.example:53", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:99999",
                          "::1:53", "[::1]53"}) {
    o.nameserver = bad;
    CHECK_MESSAGE(message_of(o).starts_with("dns_options.nameserver: expected"), bad);
  }
  o.nameserver = "[::1]:5353";
  CHECK(message_of(o) == "no error");
  o.timeout = 0ms;
  CHECK(message_of(o).starts_with("dns_options.timeout: must be > 0"));
  o.timeout = 1s;
  o.tries = 0;
  CHECK(message_of(o).starts_with("dns_options.tries: must be >= 1, got 0"));
  // A default-constructed provider (the engine's default) reports the
  // missing name from initialize(), i.e. from start().
  dns unset;
  CHECK(unset.initialize().error() == distcache::errc::invalid_config);
}

namespace {

using users = distcache::test::users;  // support/keyspaces.hpp
using dns_engine = distcache::basic_engine<distcache::policies<dns>, users>;

}  // namespace

TEST_CASE("dns: three engines form one ring from SRV records; a resolver outage keeps it") {
  // Held until the nodes have bound them: no other socket takes them meanwhile.
  const std::array<distcache::test::reserved_port, 3> reserved{};
  std::vector<std::uint16_t> ports;
  for (const auto& r : reserved) ports.push_back(r.port());
  std::vector<std::string> srv;
  srv.reserve(3);
  for (int i = 0; i < 3; ++i) {
    srv.push_back("--srv-host=_cache._tcp.ring.test,n" + std::to_string(i + 1) + ".test," +
                  std::to_string(ports[i]));
  }
  dnsmasq server(hosts_file, srv);
  auto db = std::make_shared<distcache::test::source_state>();
  db->set("k", "v");
  std::atomic<int> discovery_failures{0};
  std::vector<std::unique_ptr<dns_engine>> nodes;
  for (auto p : ports) {
    config c;
    c.threads = 1;
    c.cluster.enabled = true;
    c.cluster.bind_address = "127.0.0.1";
    c.cluster.port = p;
    c.cluster.probe_interval = 50ms;
    c.cluster.discovery_interval = 50ms;
    c.cluster.peer_timeout = 500ms;
    c.cluster.minimum_peers_quorum = 1;
    c.log = [&](distcache::log_level level, std::string_view line) {
      if (line.starts_with("discovery failed: DNS")) ++discovery_failures;
      if (level == distcache::log_level::error) {  // why a start failed
        std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
      }
    };
    auto o = server.options("_cache._tcp.ring.test");
    o.type = dns_options::record_type::srv;
    o.port = 0;
    o.timeout = 100ms;
    o.tries = 1;
    users u;
    u.source.state = db;
    nodes.push_back(std::make_unique<dns_engine>(c, dns(o), u));
  }
  // Started together: each node's bootstrap waits for the others to answer.
  std::vector<std::thread> starters;
  starters.reserve(3);
  std::vector<int> started(3, 0);
  for (int i = 0; i < 3; ++i) {
    starters.emplace_back([&, i] { started[i] = nodes[i]->start().has_value() ? 1 : 0; });
  }
  for (auto& t : starters) t.join();
  REQUIRE(started == std::vector<int>{1, 1, 1});
  auto one_ring = [&](std::size_t peers) {
    for (auto& n : nodes) {
      if (n->cluster_peers().size() != peers) return false;
      if (n->ring_version() != nodes[0]->ring_version()) return false;
    }
    return true;
  };
  REQUIRE(eventually([&] { return one_ring(2); }));
  CHECK(**nodes[0]->get<users>("k") == "v");
  CHECK(**nodes[1]->get<users>("k") == "v");
  CHECK(**nodes[2]->get<users>("k") == "v");
  CHECK(db->calls == 1);  // one load, on the key's owner

  // The resolver goes away: discovery fails (logged) and the ring stays.
  const auto version = nodes[0]->ring_version();
  server.stop();
  const int before = discovery_failures.load();
  REQUIRE(eventually([&] { return discovery_failures.load() >= before + 6; }));
  CHECK(one_ring(2));
  CHECK(nodes[0]->ring_version() == version);

  // A stopped node leaves the others' rings (its probes fail), although its
  // record would still be there.
  REQUIRE(nodes[2]->stop());
  CHECK(eventually([&] {
    return nodes[0]->cluster_peers().size() == 1 && nodes[1]->cluster_peers().size() == 1 &&
           nodes[0]->ring_version() == nodes[1]->ring_version();
  }));
}
