// discovery::nats against a real nats-server started by the test on a free
// loopback port: rings of engines, a node that stops, the server killed and
// started again on the same port, a node that starts while it is down,
// authentication, and malformed messages published by a raw client.
#include <distcache/discovery/nats.hpp>
//
#include <doctest/doctest.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/buffer.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <distcache/engine.hpp>
#include <distcache/transport/http.hpp>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/keyspaces.hpp"
#include "support/pki.hpp"
#include "support/processes.hpp"
#include "support/sources.hpp"

using distcache::config;
using distcache::discovery::nats;
using distcache::discovery::nats_errc;
using distcache::discovery::nats_options;
using distcache::test::eventually;
using namespace std::chrono_literals;

namespace {

/// nats-server on a loopback port (free when first started; kept across
/// restart()), with extra arguments (authentication).
class nats_server {
 public:
  explicit nats_server(std::vector<std::string> extra = {}) : extra_(std::move(extra)) {
    program_ = distcache::test::find_program("nats-server");
    REQUIRE_MESSAGE(!program_.empty(), "nats-server is not installed (scripts/deps installs it)");
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = distcache::test::free_loopback_port();
      if (start()) return;
    }
    FAIL("nats-server did not start");
  }

  /// Starts it (again) on the same port; true once it answers there. A
  /// server of another test that took the port meanwhile is not taken for
  /// this one: the INFO line must carry this server's name.
  bool start() {
    std::vector<std::string> argv = {program_, "-a", "127.0.0.1", "-p", std::to_string(port_),
                                     "-n",     name_};
    argv.insert(argv.end(), extra_.begin(), extra_.end());
    process_ = distcache::test::child_process(argv, log_.path());
    return eventually([&] { return !process_.running() || answers(); }, 5s) && process_.running();
  }
  void stop() { process_.stop(); }

  [[nodiscard]] std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] std::uint16_t port() const { return port_; }

 private:
  /// True when the server on port_ sends an INFO line naming this server
  /// (within a second: a listener that says nothing is not it).
  [[nodiscard]] bool answers() const {
    boost::asio::io_context ioc;
    boost::asio::ip::tcp::socket s(ioc);
    boost::system::error_code ec;
    s.connect({boost::asio::ip::make_address("127.0.0.1"), port_}, ec);
    if (ec) return false;
    std::string line;
    bool read = false;
    boost::asio::async_read_until(s, boost::asio::dynamic_buffer(line), '\n',
                                  [&](boost::system::error_code e, std::size_t) { read = !e; });
    ioc.run_for(1s);
    return read && line.starts_with("INFO ") &&
           line.find(R"("server_name":")" + name_ + '"') != std::string::npos;
  }

  static std::string unique_name() {
    static std::atomic<int> next{0};
    return "distcache-test-" + std::to_string(::getpid()) + "-" + std::to_string(next++);
  }

  std::string name_ = unique_name();
  std::string program_;
  std::vector<std::string> extra_;
  distcache::test::temp_file log_{""};
  distcache::test::child_process process_;
  std::uint16_t port_ = 0;
};

nats_options options_for(const nats_server& s) {
  nats_options o;
  o.server = s.address();
  // Room for a TLS handshake on a loaded 2-core machine: an attempt cut
  // short is not a refusal, and start() then succeeds (seen at 2 s while a
  // sanitizer build ran beside the tests).
  o.connect_timeout = 5s;
  o.reconnect_min = 20ms;
  o.reconnect_max = 200ms;
  o.log = [](distcache::log_level, std::string_view) {};
  return o;
}

using users = distcache::test::users;  // support/keyspaces.hpp
using nats_engine = distcache::basic_engine<distcache::policies<nats>, users>;

config node_config(distcache::duration discovery_interval = 50ms) {
  config c;
  c.threads = 1;
  c.cluster.enabled = true;
  c.cluster.bind_address = "127.0.0.1";
  c.cluster.port = 0;
  c.cluster.probe_interval = 50ms;
  c.cluster.discovery_interval = discovery_interval;
  c.cluster.join_retry_interval = 20ms;
  c.cluster.peer_timeout = 500ms;
  c.cluster.minimum_peers_quorum = 1;
  c.log = [](distcache::log_level, std::string_view) {};
  return c;
}

/// Started engines that find each other through one nats-server.
struct nats_cluster {
  explicit nats_cluster(const nats_server& server) : server(server) {}
  const nats_server& server;
  std::shared_ptr<distcache::test::source_state> db =
      std::make_shared<distcache::test::source_state>();
  std::vector<std::unique_ptr<nats_engine>> nodes;
  distcache::duration discovery_interval = 50ms;

  nats_engine& add() {
    users u;
    u.source.state = db;
    nodes.push_back(std::make_unique<nats_engine>(node_config(discovery_interval),
                                                  nats(options_for(server)), u));
    REQUIRE(nodes.back()->start());
    return *nodes.back();
  }
  /// Every running node sees the `peers` others, on one ring version.
  bool one_ring(std::size_t peers) {
    const nats_engine* first = nullptr;
    for (auto& n : nodes) {
      if (!n) continue;
      if (n->cluster_peers().size() != peers) return false;
      if (first != nullptr && n->ring_version() != first->ring_version()) return false;
      first = n.get();
    }
    return true;
  }
};

/// Publishes raw payloads on `subject` through a connection of its own.
void publish_raw(const nats_server& s, const std::string& subject,
                 const std::vector<std::string>& payloads) {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::socket sock(ioc);
  sock.connect({boost::asio::ip::make_address("127.0.0.1"), s.port()});
  boost::asio::streambuf in;
  boost::asio::read_until(sock, in, "\r\n");  // INFO
  std::string out = "CONNECT {\"verbose\":false}\r\n";
  for (const auto& p : payloads) {
    out.append("PUB ").append(subject).append(" ").append(std::to_string(p.size()));
    out.append("\r\n").append(p).append("\r\n");
  }
  out += "PING\r\n";
  boost::asio::write(sock, boost::asio::buffer(out));
  std::string line;
  while (line.find("PONG") == std::string::npos) {  // everything before PING was processed
    boost::asio::read_until(sock, in, "\r\n");
    std::istream is(&in);
    std::getline(is, line);
  }
}

}  // namespace

TEST_CASE("nats: three engines form one ring through nats-server; a stopped node leaves it") {
  nats_server server;
  nats_cluster c(server);
  c.db->set("k", "v");
  for (int i = 0; i < 3; ++i) c.add();
  REQUIRE(eventually([&] { return c.one_ring(2); }));
  for (auto& n : c.nodes) CHECK(**n->get<users>("k") == "v");
  CHECK(c.db->calls == 1);
  // stop() deregisters: the others drop the node from discovery, and from their rings.
  REQUIRE(c.nodes[2]->stop());
  c.nodes[2].reset();
  CHECK(eventually([&] { return c.one_ring(1); }));
}

TEST_CASE("nats: an announcement reaches the others' rings at once, not at the next round") {
  nats_server server;
  nats_cluster c(server);
  c.discovery_interval = 1h;  // only the change handler can bring a later node in
  for (int i = 0; i < 3; ++i) c.add();
  CHECK(eventually([&] { return c.one_ring(2); }));
}

TEST_CASE("nats: the server restarted on the same port; a node started meanwhile joins") {
  nats_server server;
  nats_cluster c(server);
  c.add();
  c.add();
  REQUIRE(eventually([&] { return c.one_ring(1); }));
  server.stop();
  // While the server is down, discovery fails (and the ring stays as it was).
  nats probe(options_for(server));
  REQUIRE(probe.initialize());  // an unreachable server is not an error: it retries
  CHECK_FALSE(probe.connected());
  CHECK(probe.discover_peers().error() == nats_errc::not_connected);
  CHECK(c.one_ring(1));
  // A node that starts now starts alone ...
  auto& late = c.add();
  CHECK(late.cluster_peers().empty());
  // ... and once the server is back on the same port, everyone reconnects, announces again
  // and the three form one ring.
  REQUIRE(server.start());
  CHECK(eventually([&] { return c.one_ring(2); }, 15s));
  CHECK(eventually([&] { return probe.connected(); }));
  CHECK(probe.reconnects() == 0);  // its first connection came after the restart
  probe.close();
}

TEST_CASE("nats: refused credentials fail start() with a clear error; token and user work") {
  SUBCASE("token") {
    nats_server server({"--auth", "s3cret"});
    auto o = options_for(server);
    o.token = "wrong";
    nats_engine bad(node_config(), nats(o), users{});
    auto r = bad.start();
    REQUIRE_FALSE(r);
    CHECK(r.error() == nats_errc::authorization);
    CHECK(r.error().message() ==
          "NATS: the server refused the credentials (Authorization Violation)");
    o.token = "s3cret";
    nats good(o);
    REQUIRE(good.initialize());
    CHECK(good.connected());
    good.close();
  }
  SUBCASE("user and password") {
    nats_server server({"--user", "cache", "--pass", "pw"});
    auto o = options_for(server);
    o.user = "cache";
    o.password = "nope";
    nats bad(o);
    CHECK(bad.initialize().error() == nats_errc::authorization);
    bad.close();
    o.password = "pw";
    nats good(o);
    REQUIRE(good.initialize());
    CHECK(good.connected());
    good.close();
  }
}

TEST_CASE("nats: TLS when the server requires it; mutual TLS; refused certificates fail start()") {
  distcache::test::test_pki pki;
  SUBCASE("server TLS: two engines form one ring over it; another CA or name is refused") {
    nats_server server(
        {"--tls", "--tlscert", pki.path("server.crt"), "--tlskey", pki.path("server.key")});
    auto o = options_for(server);
    o.tls_ca_file = pki.path("ca.crt");
    users u;
    nats_engine a(node_config(), nats(o), u);
    nats_engine b(node_config(), nats(o), u);
    REQUIRE(a.start());
    REQUIRE(b.start());
    CHECK(
        eventually([&] { return a.cluster_peers().size() == 1 && b.cluster_peers().size() == 1; }));
    auto other = o;
    other.tls_ca_file = pki.path("other-ca.crt");
    nats_engine c(node_config(), nats(other), u);
    auto r = c.start();
    REQUIRE_FALSE(r);
    CHECK(r.error().category() == boost::asio::error::get_ssl_category());
    CHECK(r.error().message().find("certificate verify failed") != std::string::npos);
    auto wrong_name = o;
    wrong_name.tls_server_name = "nats.other.example";
    nats d(wrong_name);
    CHECK(d.initialize().error().category() == boost::asio::error::get_ssl_category());
    d.close();
    auto by_name = o;  // the certificate's DNS SAN, dialled at 127.0.0.1
    by_name.tls_server_name = "kubernetes.default.svc";
    nats e(by_name);
    CHECK(e.initialize());
    e.close();
  }
  SUBCASE("mutual TLS: a client certificate is required") {
    nats_server server({"--tlsverify", "--tlscert", pki.path("server.crt"), "--tlskey",
                        pki.path("server.key"), "--tlscacert", pki.path("ca.crt")});
    auto o = options_for(server);
    o.tls_ca_file = pki.path("ca.crt");
    nats without(o);
    auto refused = without.initialize();  // the server refuses the handshake
    REQUIRE_FALSE(refused);
    // The TLS 1.3 alert, or the close that overtook it.
    const auto ec = refused.error();
    CHECK((ec.category() == boost::asio::error::get_ssl_category() ||
           ec == boost::asio::error::eof || ec == boost::asio::error::connection_reset ||
           ec == boost::asio::ssl::error::stream_truncated));
    CHECK_FALSE(without.connected());
    without.close();
    o.tls_cert_file = pki.path("client.crt");
    o.tls_key_file = pki.path("client.key");
    nats with(o);
    REQUIRE(with.initialize());
    CHECK(with.connected());
    with.close();
  }
  SUBCASE("tls asked for, server without TLS: refused") {
    nats_server server;
    auto o = options_for(server);
    o.tls = true;
    nats n(o);
    CHECK(n.initialize().error() == nats_errc::tls_unavailable);
    n.close();
  }
  SUBCASE("a certificate without its key is a configuration error") {
    nats_options o;
    o.server = "127.0.0.1:4222";
    o.tls_cert_file = pki.path("client.crt");
    CHECK(nats::check(o) == "nats_options.tls_cert_file/tls_key_file: give both or neither");
  }
}

TEST_CASE("nats: malformed messages on the subjects are counted and never add a peer") {
  nats_server server;
  nats watcher(options_for(server));
  REQUIRE(watcher.initialize());
  REQUIRE(watcher.register_node("127.0.0.1:7001"));
  publish_raw(server, "distcache.distcache.announce",
              {"hello", "+", "+no-port", "+127.0.0.1:0", "+127.0.0.1:99999", "+has space:1",
               "*127.0.0.1:7002",
               std::string("+127.0.0.1:70\x01"
                           "2"),
               "+::1:7002"});
  CHECK(eventually([&] { return watcher.malformed_messages() == 9; }));
  publish_raw(server, "distcache.distcache.announce", {"+127.0.0.1:7003", "+[::1]:7004"});
  CHECK(eventually([&] {
    auto peers = watcher.discover_peers();
    return peers &&
           *peers == std::vector<std::string>{"127.0.0.1:7001", "127.0.0.1:7003", "[::1]:7004"};
  }));
  // "-" removes; other clusters' subjects are not heard.
  publish_raw(server, "distcache.distcache.announce", {"-127.0.0.1:7003"});
  publish_raw(server, "distcache.other.announce", {"+127.0.0.1:7005"});
  CHECK(eventually([&] {
    auto peers = watcher.discover_peers();
    return peers && *peers == std::vector<std::string>{"127.0.0.1:7001", "[::1]:7004"};
  }));
  CHECK(watcher.malformed_messages() == 9);
  watcher.close();
}

TEST_CASE("nats: invalid options are refused at construction, naming the field") {
  auto message_of = [](nats_options o) {
    try {
      nats n(std::move(o));
    } catch (const distcache::config_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  nats_options o;
  CHECK(message_of(o).starts_with("nats_options.server: expected"));
  o.server = "127.0.0.1:4222";
  CHECK(message_of(o) == "no error");
  o.user = "u";
  CHECK(message_of(o).starts_with("nats_options.user/password: give both or neither"));
  o.password = "p";
  o.token = "t";
  CHECK(message_of(o).starts_with("nats_options.token: not together"));
  o = {};
  o.server = "127.0.0.1:4222";
  o.cluster = "a.b";  // would add a subject level
  CHECK(message_of(o).starts_with("nats_options.cluster: must be non-empty"));
  o.cluster = "distcache";
  o.peer_ttl = 0s;
  CHECK(message_of(o).starts_with("nats_options.peer_ttl"));
  nats unset;
  CHECK(unset.initialize().error() == distcache::errc::invalid_config);
}

// The parsers the fuzz target tests/fuzz/nats_fuzz.cpp drives; the empty
// subject case is the crash it found (corpus/nats/crash-empty-subject).
TEST_CASE("nats: MSG heads and announcements are parsed strictly") {
  using distcache::detail::parse_nats_announcement;
  using distcache::detail::parse_nats_msg;
  auto m = parse_nats_msg("MSG distcache.c.announce 1 18");
  REQUIRE(m);
  CHECK(m->subject == "distcache.c.announce");
  CHECK(m->reply.empty());
  CHECK(m->size == 18);
  m = parse_nats_msg("MSG s 2 _INBOX.x 5");
  REQUIRE(m);
  CHECK(m->reply == "_INBOX.x");
  m = parse_nats_msg("MSG  s\t2   5");  // runs of spaces and tabs separate fields
  REQUIRE(m);
  CHECK(m->subject == "s");
  CHECK(m->size == 5);
  CHECK_FALSE(parse_nats_msg("MSG  i. 1"));        // three fields, not an empty subject
  CHECK_FALSE(parse_nats_msg("MSG s 1 r x 5"));    // six fields
  CHECK_FALSE(parse_nats_msg("MSG s 1 12x"));      // size not decimal
  CHECK_FALSE(parse_nats_msg("MSG s 1 1048577"));  // over 1 MiB
  CHECK_FALSE(parse_nats_msg("MSG s 1 99999999999999999999999"));
  CHECK(parse_nats_msg("MSG s 1 1048576"));
  CHECK_FALSE(parse_nats_msg("PUB s 1 5"));
  auto a = parse_nats_announcement("+127.0.0.1:7001");
  REQUIRE(a);
  CHECK(a->joined);
  CHECK(a->address == "127.0.0.1:7001");
  a = parse_nats_announcement("-[::1]:7002");
  REQUIRE(a);
  CHECK_FALSE(a->joined);
  CHECK_FALSE(parse_nats_announcement("+no-port"));
  CHECK_FALSE(parse_nats_announcement("?"));
  CHECK_FALSE(parse_nats_announcement("+"));
  CHECK_FALSE(parse_nats_announcement("*127.0.0.1:7001"));
}
