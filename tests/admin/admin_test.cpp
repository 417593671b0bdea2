// The admin server: its endpoints over real HTTP on loopback (Beast client),
// readiness through the lifecycle, the bearer token, bad input, and the
// Prometheus text checked by promtool when it is installed.
#include <distcache/distcache.hpp>
#include <distcache/transport/https.hpp>
//
#include <doctest/doctest.h>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <array>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/keyspaces.hpp"
#include "support/pki.hpp"
#include "support/processes.hpp"
#include "support/sources.hpp"

using distcache::config;
using distcache::test::eventually;
using namespace std::chrono_literals;
namespace http = boost::beast::http;

namespace {

using users = distcache::test::users;
using node = distcache::basic_engine<
    distcache::policies<distcache::discovery::standalone, distcache::transport::http>, users>;
using tls_node = distcache::basic_engine<
    distcache::policies<distcache::discovery::standalone, distcache::transport::https>, users>;
using cluster_node = distcache::basic_engine<
    distcache::policies<distcache::discovery::in_process, distcache::transport::http>, users>;

struct answer {
  unsigned status = 0;
  std::string body;
  std::map<std::string, std::string> headers;
};

/// One request on a fresh connection to 127.0.0.1:port.
answer request(std::uint16_t port, const std::string& target, http::verb method = http::verb::get,
               const std::map<std::string, std::string>& headers = {},
               const std::string& body = {}) {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::socket s(ioc);
  s.connect({boost::asio::ip::make_address("127.0.0.1"), port});
  http::request<http::string_body> req{method, target, 11};
  req.set(http::field::host, "127.0.0.1");
  for (const auto& [k, v] : headers) req.set(k, v);
  if (!body.empty()) {
    req.body() = body;
    req.prepare_payload();
  }
  http::write(s, req);
  boost::beast::flat_buffer buf;
  http::response<http::string_body> res;
  boost::system::error_code ec;
  http::read(s, buf, res, ec);
  answer a;
  if (ec) return a;
  a.status = res.result_int();
  a.body = res.body();
  for (const auto& f : res) a.headers[std::string(f.name_string())] = std::string(f.value());
  return a;
}

/// One GET over TLS to 127.0.0.1:port, verifying the server against `ca`
/// (its certificate must name 127.0.0.1) and presenting `cert`/`key` when
/// given. Status 0 when the handshake or the exchange failed.
answer tls_request(std::uint16_t port, const std::string& target, const std::string& ca,
                   const std::string& cert = {}, const std::string& key = {},
                   const std::map<std::string, std::string>& headers = {}) {
  namespace ssl = boost::asio::ssl;
  boost::asio::io_context ioc;
  ssl::context ctx(ssl::context::tls_client);
  ctx.load_verify_file(ca);
  if (!cert.empty()) {
    ctx.use_certificate_chain_file(cert);
    ctx.use_private_key_file(key, ssl::context::pem);
  }
  ctx.set_verify_mode(ssl::verify_peer);
  ssl::stream<boost::asio::ip::tcp::socket> s(ioc, ctx);
  X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s.native_handle()), "127.0.0.1");
  s.next_layer().connect({boost::asio::ip::make_address("127.0.0.1"), port});
  timeval tv{10, 0};  // a server that never answers fails the test instead of hanging it
  ::setsockopt(s.next_layer().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  boost::system::error_code ec;
  s.handshake(ssl::stream_base::client, ec);
  answer a;
  if (ec) return a;
  http::request<http::string_body> req{http::verb::get, target, 11};
  req.set(http::field::host, "127.0.0.1");
  for (const auto& [k, v] : headers) req.set(k, v);
  http::write(s, req, ec);
  boost::beast::flat_buffer buf;
  http::response<http::string_body> res;
  if (!ec) http::read(s, buf, res, ec);
  if (ec) return a;
  a.status = res.result_int();
  a.body = res.body();
  return a;
}

config admin_config() {
  config c;
  c.threads = 1;
  c.admin.enabled = true;
  c.admin.port = 0;
  c.log = [](distcache::log_level, std::string_view) {};
  return c;
}

const std::string base = "/_distcache/admin/";

}  // namespace

TEST_CASE("admin: options are checked, and the admin server needs a transport that brings it") {
  auto c = admin_config();
  c.admin.base_path = "no-slash";
  CHECK_THROWS_WITH_AS(node(c, users{}), doctest::Contains("config.admin.base_path"),
                       distcache::config_error);
  c.admin.base_path = "/x/";
  CHECK_THROWS_AS(node(c, users{}), distcache::config_error);
  c = admin_config();
  c.admin.read_timeout = 0s;
  CHECK_THROWS_WITH_AS(node(c, users{}), doctest::Contains("config.admin.read_timeout"),
                       distcache::config_error);
  c = admin_config();
  c.admin.max_header_bytes = 10;
  CHECK_THROWS_WITH_AS(node(c, users{}), doctest::Contains("config.admin.max_header_bytes"),
                       distcache::config_error);
  using alone = distcache::basic_engine<distcache::policies<>, users>;
  CHECK_THROWS_WITH_AS(alone(admin_config(), users{}),
                       doctest::Contains("config.admin.enabled: true, but the engine's Transport"),
                       distcache::config_error);
  c = admin_config();
  c.admin.bind_address = "not-an-address";
  node bad(c, users{});
  CHECK(bad.start().error() == distcache::errc::invalid_config);
}

TEST_CASE("admin: health, readiness, keyspaces and metrics of a single node") {
  users u;
  u.source.state->set("a", "alpha");
  node n(admin_config(), u);
  CHECK(n.admin_port() == 0);
  REQUIRE(n.start());
  const auto port = n.admin_port();
  REQUIRE(port != 0);
  CHECK(request(port, base + "healthz").status == 200);
  auto ready = request(port, base + "readyz");
  CHECK(ready.status == 200);
  CHECK(ready.body == "{\"ready\":true}\n");

  for (int i = 0; i < 3; ++i) REQUIRE(n.get<users>("a"));
  CHECK(n.get<users>("missing").error() == distcache::errc::not_found);
  auto ks = request(port, base + "keyspaces");
  REQUIRE(ks.status == 200);
  CHECK(ks.headers["Content-Type"] == "application/json");
  const auto doc = boost::json::parse(ks.body);
  const auto& k = doc.at("keyspaces").at(0);
  CHECK(k.at("name").as_string() == "users");
  CHECK(k.at("max_bytes").as_int64() == 1 << 20);
  CHECK(k.at("default_ttl_ms").as_int64() == 0);
  CHECK(k.at("read_timeout_ms").as_int64() == 5000);
  CHECK(k.at("circuit_state").as_string() == "closed");
  CHECK(k.at("main_cache_items").to_number<int>() == 1);
  const auto& s = k.at("stats");
  CHECK(s.at("gets").to_number<int>() == 4);
  CHECK(s.at("cache_hits").to_number<int>() == 2);
  CHECK(s.at("loads").to_number<int>() == 2);
  CHECK(s.at("local_loads").to_number<int>() == 1);

  auto m = request(port, base + "metrics");
  REQUIRE(m.status == 200);
  CHECK(m.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(m.body.find("distcache_gets_total{keyspace=\"users\"} 4\n") != std::string::npos);
  CHECK(m.body.find("distcache_cache_hits_total{keyspace=\"users\"} 2\n") != std::string::npos);
  CHECK(m.body.find("distcache_cache_items{keyspace=\"users\",cache=\"main\"} 1\n") !=
        std::string::npos);
  CHECK(m.body.find("distcache_up 1\n") != std::string::npos);
  // The peer server's limits (docs/security.md): zeros on a node that serves no peers.
  for (const char* line :
       {"distcache_peer_connections 0\n", "distcache_peer_connections_refused_total 0\n",
        "distcache_peer_requests_refused_total 0\n", "distcache_peer_inflight_bytes 0\n",
        "distcache_peer_coalesced_requests_total 0\n", "distcache_peer_calls_waiting 0\n",
        "distcache_peer_slow_requests_total 0\n"}) {
    CHECK(m.body.find(line) != std::string::npos);
  }
  // Latency histograms: 4 gets (not_found is no error), 2 fetches, every bucket line cumulative.
  const std::string get_series = R"({keyspace="users",operation="get")";
  CHECK(m.body.find("distcache_operation_duration_seconds_count" + get_series + "} 4\n") !=
        std::string::npos);
  CHECK(m.body.find("distcache_operation_duration_seconds_bucket" + get_series +
                    ",le=\"+Inf\"} 4\n") != std::string::npos);
  CHECK(m.body.find("distcache_operation_duration_seconds_count{keyspace=\"users\","
                    "operation=\"fetch\"} 2\n") != std::string::npos);
  CHECK(m.body.find("distcache_operation_errors_total" + get_series + "} 0\n") !=
        std::string::npos);
  CHECK(m.body.find("operation=\"put\"") == std::string::npos);  // never run: no series
  if (const auto promtool = distcache::test::find_program("promtool"); !promtool.empty()) {
    distcache::test::temp_file metrics(m.body);
    distcache::test::temp_file out("");
    // promtool reads the exposition on stdin: run it through sh.
    CHECK(distcache::test::run_to_completion(
              {"/bin/sh", "-c", promtool + " check metrics < " + metrics.path()}, out.path()) == 0);
  } else {
    MESSAGE("promtool not installed: the exposition format is not checked by it");
  }

  auto peers = boost::json::parse(request(port, base + "peers").body);
  CHECK(peers.at("self").as_string() == "self");
  CHECK(peers.at("cluster_enabled").as_bool() == false);
  CHECK(peers.at("members").as_array().empty());

  REQUIRE(n.stop());
  ready = request(port, base + "readyz");
  CHECK(ready.status == 503);
  CHECK(ready.body == "{\"ready\":false,\"reason\":\"stopped\"}\n");
  CHECK(request(port, base + "healthz").status == 200);  // the process still serves
  CHECK(request(port, base + "metrics").body.find("distcache_up 0\n") != std::string::npos);
}

TEST_CASE("admin: bad input gets a 4xx and the node keeps serving") {
  users u;
  u.source.state->set("a", "alpha");
  auto c = admin_config();
  c.admin.token = "s3cret";
  c.admin.max_header_bytes = 1024;
  c.admin.read_timeout = 300ms;
  node n(c, u);
  REQUIRE(n.start());
  const auto port = n.admin_port();
  const std::map<std::string, std::string> auth = {{"Authorization", "Bearer s3cret"}};
  CHECK(request(port, base + "healthz", http::verb::get, auth).status == 200);
  auto missing = request(port, base + "healthz");
  CHECK(missing.status == 401);
  CHECK(missing.headers["WWW-Authenticate"] == "Bearer");
  CHECK(request(port, base + "healthz", http::verb::get, {{"Authorization", "Bearer wrong"}})
            .status == 401);
  CHECK(request(port, base + "healthz", http::verb::get, {{"Authorization", "Bearer s3cret2"}})
            .status == 401);
  auto post = request(port, base + "keyspaces", http::verb::post, auth);
  CHECK(post.status == 405);
  CHECK(post.headers["Allow"] == "GET");
  CHECK(request(port, base + "delete", http::verb::get, auth).status == 404);
  CHECK(request(port, "/elsewhere", http::verb::get, auth).status == 404);
  CHECK(request(port, base + "metrics", http::verb::get, auth, "a body").status == 413);
  auto big = auth;
  big["X-Padding"] = std::string(4096, 'x');
  CHECK(request(port, base + "metrics", http::verb::get, big).status == 431);
  // Garbage instead of HTTP.
  {
    boost::asio::io_context ioc;
    boost::asio::ip::tcp::socket s(ioc);
    s.connect({boost::asio::ip::make_address("127.0.0.1"), port});
    boost::asio::write(s, boost::asio::buffer(std::string("\x01\x02 nonsense\r\n\r\n")));
    std::string got(64, '\0');
    boost::system::error_code ec;
    const auto n_read = s.read_some(boost::asio::buffer(got), ec);
    CHECK(got.substr(0, std::min<std::size_t>(n_read, 12)) == "HTTP/1.1 400");
  }
  // Half a request, then silence: closed after read_timeout.
  {
    boost::asio::io_context ioc;
    boost::asio::ip::tcp::socket s(ioc);
    s.connect({boost::asio::ip::make_address("127.0.0.1"), port});
    boost::asio::write(s, boost::asio::buffer(std::string("GET " + base + "healthz HTTP/1.1\r\n")));
    std::array<char, 16> got{};
    boost::system::error_code ec;
    const auto t0 = std::chrono::steady_clock::now();
    (void)s.read_some(boost::asio::buffer(got), ec);
    CHECK(ec == boost::asio::error::eof);
    CHECK(std::chrono::steady_clock::now() - t0 < 10s);
  }
  CHECK(**n.get<users>("a") == "alpha");  // the node kept serving
  CHECK(request(port, base + "readyz", http::verb::get, auth).status == 200);
}

TEST_CASE("admin: readiness while joining, and the peers a node knows") {
  auto registry = std::make_shared<distcache::discovery::in_process::registry>();
  auto make = [&](std::size_t quorum) {
    auto c = admin_config();
    c.cluster.enabled = true;
    c.cluster.bind_address = "127.0.0.1";
    c.cluster.probe_interval = 50ms;
    c.cluster.discovery_interval = 50ms;
    c.cluster.join_retry_interval = 20ms;
    c.cluster.minimum_peers_quorum = quorum;
    c.cluster.bootstrap_timeout = 30s;
    return std::make_unique<cluster_node>(c, distcache::discovery::in_process(registry), users{});
  };
  auto a = make(2);  // waits for a second node
  std::thread starter([&] { CHECK(a->start()); });
  REQUIRE(eventually([&] { return a->admin_port() != 0; }));
  auto joining = request(a->admin_port(), base + "readyz");
  CHECK(joining.status == 503);
  CHECK(joining.body.find("starting: joining the cluster") != std::string::npos);
  auto b = make(1);
  REQUIRE(b->start());
  starter.join();
  CHECK(eventually([&] { return request(a->admin_port(), base + "readyz").status == 200; }));
  REQUIRE(eventually([&] { return a->cluster_peers().size() == 1; }));
  const auto peers = boost::json::parse(request(a->admin_port(), base + "peers").body);
  CHECK(peers.at("self").as_string() == a->self_name());
  CHECK(peers.at("cluster").as_string() == "distcache");
  CHECK(peers.at("ring_size").to_number<int>() == 2);
  CHECK(peers.at("ring_version").to_number<std::uint64_t>() == a->ring_version());
  const auto& member = peers.at("members").at(0);
  CHECK(member.at("address").as_string() == b->self_name());
  CHECK(member.at("state").as_string() == "alive");
  CHECK(member.at("in_ring").as_bool());
  CHECK(member.at("last_seen_ms_ago").to_number<std::int64_t>() >= 0);
  // b stops: it leaves a's ring, and /peers says so.
  REQUIRE(b->stop());
  CHECK(eventually([&] {
    const auto p = boost::json::parse(request(a->admin_port(), base + "peers").body);
    const auto& m = p.at("members").as_array();
    return p.at("ring_size").to_number<int>() == 1 &&
           (m.empty() || m.at(0).at("state").as_string() != "alive");
  }));
}

namespace {

/// Runs a real Prometheus that scrapes the admin server on 127.0.0.1:`admin_port` (with
/// `scrape_extra`, more lines of its scrape job) and asks its query API for the gets counter of
/// keyspace users until it reads "7". Returns whether it did; `value` is the last value read.
bool prometheus_reads_seven(const std::string& program, std::uint16_t admin_port,
                            const std::string& scrape_extra, std::string& value) {
  char dir[] = "/tmp/distcache-prometheus-XXXXXX";
  REQUIRE(::mkdtemp(dir) != nullptr);
  const std::string data = dir;
  distcache::test::temp_file cfg(
      "global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\n"
      "scrape_configs:\n  - job_name: distcache\n    metrics_path: /_distcache/admin/metrics\n" +
      scrape_extra +
      "    static_configs:\n      - targets: ['127.0.0.1:" + std::to_string(admin_port) + "']\n");
  distcache::test::temp_file log("");
  const auto prom_log = [&] {
    std::ifstream in(log.path());
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  const std::string query = "/api/v1/query?query=distcache_gets_total%7Bkeyspace%3D%22users%22%7D";
  bool scraped = false;
  // A free port can be taken by another process before Prometheus binds it
  // (a CI run saw "bind: address already in use"): then try another one.
  for (int attempt = 0; attempt < 5 && !scraped; ++attempt) {
    const auto web_port = distcache::test::free_loopback_port();
    distcache::test::child_process prom(
        {program, "--config.file=" + cfg.path(), "--storage.tsdb.path=" + data,
         "--web.listen-address=127.0.0.1:" + std::to_string(web_port), "--log.level=warn"},
        log.path());
    bool port_taken = false;
    scraped = eventually(
                  [&] {
                    if (prom_log().find("address already in use") != std::string::npos) {
                      port_taken = true;
                      return true;  // stop waiting: this attempt cannot succeed
                    }
                    try {
                      const auto a = request(web_port, query);
                      if (a.status != 200) return false;
                      const auto doc = boost::json::parse(a.body);
                      const auto& result = doc.at("data").at("result").as_array();
                      if (result.empty()) return false;
                      value = std::string(result.at(0).at("value").at(1).as_string());
                      return value == "7";
                    } catch (const std::exception&) {
                      return false;  // not listening yet
                    }
                  },
                  60s) &&
              !port_taken;
    prom.stop();
    if (!port_taken) break;
    std::ofstream(log.path(), std::ios::trunc).flush();  // the next attempt's log only
  }
  if (!scraped) MESSAGE("prometheus log: " << prom_log().substr(0, 4000));
  (void)distcache::test::run_to_completion({"/bin/rm", "-rf", data}, log.path());
  return scraped;
}

}  // namespace

TEST_CASE("admin: a real Prometheus scrapes /metrics and its query API returns the counter") {
  const std::string program = distcache::test::find_program("prometheus");
  if (program.empty()) {
    MESSAGE("prometheus not installed (scripts/deps installs it): scrape not tested");
    return;
  }
  users u;
  u.source.state->set("a", "alpha");
  node n(admin_config(), u);
  REQUIRE(n.start());
  for (int i = 0; i < 7; ++i) REQUIRE(n.get<users>("a"));
  std::string value;
  const bool scraped = prometheus_reads_seven(program, n.admin_port(), "", value);
  if (!scraped) {
    MESSAGE("our /metrics: "
            << request(n.admin_port(), "/_distcache/admin/metrics").body.substr(0, 4000));
  }
  CHECK_MESSAGE(scraped, "last value seen: " << value);
}

TEST_CASE("admin: a real Prometheus scrapes over mutual TLS with a bearer token") {
  const std::string program = distcache::test::find_program("prometheus");
  if (program.empty()) {
    MESSAGE("prometheus not installed (scripts/deps installs it): scrape not tested");
    return;
  }
  distcache::test::test_pki pki;
  pki.issue("admin", "IP:127.0.0.1");
  auto c = admin_config();
  c.admin.token = "s3cret";
  c.admin.tls = pki.tls("admin");
  users u;
  u.source.state->set("a", "alpha");
  tls_node n(c, u);
  REQUIRE(n.start());
  for (int i = 0; i < 7; ++i) REQUIRE(n.get<users>("a"));
  // What docs/operations.md tells a Prometheus user to add.
  const std::string extra =
      "    scheme: https\n    authorization: {credentials: s3cret}\n"
      "    tls_config:\n      ca_file: " +
      pki.path("ca.crt") + "\n      cert_file: " + pki.path("client.crt") +
      "\n      key_file: " + pki.path("client.key") + "\n";
  std::string value;
  CHECK_MESSAGE(prometheus_reads_seven(program, n.admin_port(), extra, value),
                "last value seen: " << value);
}

TEST_CASE("admin: TLS, with client certificates (the default) or the bearer token alone") {
  distcache::test::test_pki pki;
  pki.issue("admin", "IP:127.0.0.1");
  pki.issue("stranger", "", "other-ca");
  auto c = admin_config();
  c.admin.token = "s3cret";
  c.admin.tls = pki.tls("admin");
  const std::map<std::string, std::string> bearer{{"Authorization", "Bearer s3cret"}};
  const std::string ca = pki.path("ca.crt");
  const std::string healthz = base + "healthz";

  SUBCASE("client certificates required") {
    tls_node n(c, users{});
    REQUIRE(n.start());
    const auto port = n.admin_port();
    CHECK(tls_request(port, healthz, ca, pki.path("client.crt"), pki.path("client.key"), bearer)
              .status == 200);
    CHECK(tls_request(port, healthz, ca, pki.path("client.crt"), pki.path("client.key")).status ==
          401);
    CHECK(tls_request(port, healthz, ca, {}, {}, bearer).status == 0);  // no certificate
    CHECK(tls_request(port, healthz, ca, pki.path("stranger.crt"), pki.path("stranger.key"), bearer)
              .status == 0);
    CHECK(request(port, healthz, http::verb::get, bearer).status == 0);  // plaintext
    CHECK(n.reload_tls());
    CHECK(tls_request(port, healthz, ca, pki.path("client.crt"), pki.path("client.key"), bearer)
              .status == 200);
  }
  SUBCASE("the token alone") {
    c.admin.tls.require_client_certificate = false;
    c.admin.tls.ca_file.clear();
    tls_node n(c, users{});
    REQUIRE(n.start());
    const auto port = n.admin_port();
    CHECK(tls_request(port, healthz, ca, {}, {}, bearer).status == 200);
    CHECK(tls_request(port, healthz, ca).status == 401);
  }
  SUBCASE("a transport without TLS refuses admin.tls") {
    CHECK_THROWS_WITH_AS(node(c, users{}), doctest::Contains("config.admin.tls.enabled: true"),
                         distcache::config_error);
  }
  SUBCASE("files that do not load stop start()") {
    c.admin.tls.private_key_file = pki.path("stranger.key");
    tls_node n(c, users{});
    CHECK(n.start().error() == distcache::errc::invalid_config);
  }
}
