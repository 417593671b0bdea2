// transport::http over TLS (server_options.tls, client_options.tls): mutual
// TLS with certificates made by the openssl command for each test, what
// each side refuses, session resumption, the identity of DC-From, and
// certificate reload on a call and when the files change, under load.
#include <distcache/transport/https.hpp>
//
#include <doctest/doctest.h>

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <cstdio>
#include <filesystem>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "support/http_fixture.hpp"
#include "support/pki.hpp"

namespace {

using distcache::test::test_pki;

/// The OpenSSL library, as transport::https passes it.
const auto openssl = distcache::transport::https::tls_library();

server_options tls_server(const test_pki& pki, const std::string& name) {
  server_options o;
  o.tls = pki.tls(name);
  return o;
}

/// A client named as a node at 127.0.0.1 (what a certificate with the IP
/// SAN 127.0.0.1 may claim in DC-From).
client_options tls_client(const test_pki& pki, const std::string& name) {
  client_options o = cluster::make_client_options();
  o.self_name = "127.0.0.1:7001";
  o.tls = pki.tls(name);
  return o;
}

/// Whether a new TLS connection to 127.0.0.1:`port` is served the
/// certificate of file `crt` (connecting with the client certificate of
/// `pki`, not verifying the server).
bool serves_certificate(std::uint16_t port, const test_pki& pki, const std::string& crt) {
  net::io_context ioc;
  net::ssl::context ctx(net::ssl::context::tls_client);
  ctx.use_certificate_chain_file(pki.path("client.crt"));
  ctx.use_private_key_file(pki.path("client.key"), net::ssl::context::pem);
  ctx.set_verify_mode(net::ssl::verify_none);
  net::ssl::stream<net::ip::tcp::socket> s(ioc, ctx);
  s.next_layer().connect({net::ip::make_address("127.0.0.1"), port});
  timeval tv{10, 0};  // the bound of these tests: a silent server fails the test
  ::setsockopt(s.next_layer().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  s.handshake(net::ssl::stream_base::client);
  X509* got = SSL_get0_peer_certificate(s.native_handle());
  FILE* f = std::fopen(crt.c_str(), "r");
  REQUIRE(f != nullptr);
  X509* want = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  const bool same = got != nullptr && want != nullptr && X509_cmp(got, want) == 0;
  X509_free(want);
  return same;
}

/// Replaces `to`.crt/.key by `from`.crt/.key the way a deployment does:
/// each file renamed over the old one.
void rotate(const test_pki& pki, const std::string& from, const std::string& to) {
  for (const char* ext : {".crt", ".key"}) {
    std::filesystem::copy_file(pki.path(from + ext), pki.path(to + ext + ".new"),
                               std::filesystem::copy_options::overwrite_existing);
    std::filesystem::rename(pki.path(to + ext + ".new"), pki.path(to + ext));
  }
}

/// Gets from `threads` threads until stopped, counting successes and
/// failures; with max_idle_per_peer 1 most requests open a connection, so
/// handshakes go on all the time.
struct steady_load {
  steady_load(cluster& cl, int threads) {
    for (int i = 0; i < threads; ++i) {
      workers.emplace_back([this, &cl] {
        while (!stop.load()) {
          auto p = std::make_shared<std::promise<error_code>>();
          auto f = p->get_future();
          cl.client->get(cl.peer(), "users", {"k"}, 7, 5s,
                         [p](error_code ec, const std::vector<reply_item>&) { p->set_value(ec); });
          if (f.wait_for(bound) != std::future_status::ready || f.get()) {
            ++failed;
          } else {
            ++ok;
          }
        }
      });
    }
  }
  steady_load(const steady_load&) = delete;
  steady_load& operator=(const steady_load&) = delete;
  ~steady_load() { finish(); }
  void finish() {
    stop = true;
    for (auto& w : workers) {
      if (w.joinable()) w.join();
    }
  }
  /// Waits until `n` more requests succeeded.
  bool wait_more(std::uint64_t n) {
    const std::uint64_t target = ok.load() + n;
    return eventually([&] { return ok.load() >= target || failed.load() > 0; }) &&
           failed.load() == 0;
  }
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> ok{0};
  std::atomic<std::uint64_t> failed{0};
  std::vector<std::thread> workers;
};

}  // namespace

TEST_CASE("TLS: mutual TLS round-trips every request type, and reconnects resume the session") {
  test_pki pki;
  pki.issue("node", "IP:127.0.0.1");
  client_options co = tls_client(pki, "node");
  co.max_idle_per_peer = 0;  // every request on a new connection
  cluster cl(tls_server(pki, "node"), 2, co, openssl);
  CHECK_FALSE(cl.health());
  CHECK_FALSE(cl.set("user:1", "alice", 1500));
  auto [ec, items] = cl.get({"user:1", "nobody"});
  REQUIRE_FALSE(ec);
  CHECK(items.at(0) == reply_item::found("alice", 1500));
  CHECK(items.at(1) == reply_item::missing());
  const std::string large(200000, 'v');  // many TLS records each way
  CHECK_FALSE(cl.set("big", large));
  auto [ec2, big] = cl.get({"big"});
  REQUIRE_FALSE(ec2);
  CHECK(big.at(0).value == large);
  CHECK(cl.remove({"user:1"}).second == 1);
  CHECK_FALSE(cl.invalidate({"s:1"}));

  const auto ss = cl.server->stats();
  const auto cs = cl.client->stats();
  CHECK(cs.tls_handshakes == 7);
  CHECK(cs.tls_handshakes_failed == 0);
  CHECK(ss.tls_handshakes == 7);
  // The first connection had no session to offer; the later ones resume.
  CHECK(cs.tls_resumed >= 5);
  CHECK(ss.tls_resumed == cs.tls_resumed);
}

TEST_CASE("TLS: a client names the host it dials; a DNS SAN serves a host name") {
  test_pki pki;
  pki.issue("named", "DNS:localhost");
  client_options co = tls_client(pki, "named");
  co.self_name = "localhost:7001";
  cluster cl(tls_server(pki, "named"), 2, co, openssl);
  CHECK_FALSE(cl.health("localhost:" + std::to_string(cl.server->port())));
  // Dialled by address, the same server is refused: its certificate does
  // not name 127.0.0.1.
  CHECK(cl.health() == errc::peer_unavailable);
  CHECK(cl.client->stats().tls_handshakes_failed == 1);
  CHECK(cl.client_log.contains("TLS handshake failed"));
}

TEST_CASE("TLS: the server refuses clients it cannot trust, counts them and logs once a minute") {
  test_pki pki;
  pki.issue("node", "IP:127.0.0.1");
  pki.issue("stranger", "IP:127.0.0.1", "other-ca");
  pki.issue("expired", "IP:127.0.0.1", "ca", -1);
  cluster cl(tls_server(pki, "node"), 2, tls_client(pki, "node"), openssl);
  std::uint64_t failed = 0;

  SUBCASE("a certificate from another CA") {
    client_options co = tls_client(pki, "stranger");
    co.tls.ca_file = pki.path("ca.crt");  // it trusts the server; the server does not trust it
    http_client stranger(cl.ioc, co, cl.client_log.logger(), openssl);
    for (int i = 0; i < 3; ++i) {
      std::promise<error_code> p;
      stranger.health(cl.peer(), 5s, [&p](error_code ec) { p.set_value(ec); });
      CHECK(p.get_future().get() == errc::peer_unavailable);
    }
    failed = 3;
    stranger.close();
  }
  SUBCASE("an expired certificate") {
    http_client expired(cl.ioc, tls_client(pki, "expired"), cl.client_log.logger(), openssl);
    for (int i = 0; i < 3; ++i) {
      std::promise<error_code> p;
      expired.health(cl.peer(), 5s, [&p](error_code ec) { p.set_value(ec); });
      CHECK(p.get_future().get() == errc::peer_unavailable);
    }
    failed = 3;
    expired.close();
  }
  SUBCASE("a plaintext client") {
    for (int i = 0; i < 3; ++i) {
      raw_connection raw(cl.server->port());
      REQUIRE(raw.send("GET /_distcache/v1/health HTTP/1.1\r\nHost: x\r\n\r\n"));
      CHECK_FALSE(raw.read_response());  // no HTTP answer: the handshake failed
    }
    failed = 3;
  }
  CHECK(eventually([&] { return cl.server->stats().tls_handshakes_failed == failed; }));
  CHECK(cl.server_log.count("refusing a TLS connection from 127.0.0.1") == 1);
  CHECK(cl.server->stats().tls_handshakes == 0);
  // A trusted client is served meanwhile.
  CHECK_FALSE(cl.health());
  CHECK(cl.server->stats().tls_handshakes == 1);
}

TEST_CASE("TLS: the client refuses servers it cannot trust") {
  test_pki pki;
  pki.issue("node", "IP:127.0.0.1");
  std::string server_cert;
  SUBCASE("another CA") {
    pki.issue("bad", "IP:127.0.0.1", "other-ca");
    server_cert = "bad";
  }
  SUBCASE("expired") {
    pki.issue("bad", "IP:127.0.0.1", "ca", -1);
    server_cert = "bad";
  }
  SUBCASE("a name that is not the address dialled") {
    pki.issue("bad", "IP:127.0.0.9");
    server_cert = "bad";
  }
  server_options so = tls_server(pki, server_cert);
  so.tls.require_client_certificate = true;
  cluster cl(so, 2, tls_client(pki, "node"), openssl);
  for (int i = 0; i < 3; ++i) CHECK(cl.health() == errc::peer_unavailable);
  auto [ec, items] = cl.get({"k"});
  CHECK(ec == errc::peer_unavailable);
  CHECK(cl.client->stats().tls_handshakes_failed == 4);
  CHECK(cl.client->stats().tls_handshakes == 0);
  CHECK(cl.client_log.count("TLS handshake failed") == 1);  // once a minute per peer
  CHECK(cl.client_log.contains("certificate verify failed"));
}

TEST_CASE("TLS: a node may speak only as the node its certificate names") {
  test_pki pki;
  pki.issue("node", "IP:127.0.0.1");
  client_options co = tls_client(pki, "node");
  co.self_name = "127.0.0.5:7001";  // a valid certificate, but for another address
  cluster cl(tls_server(pki, "node"), 2, co, openssl);
  CHECK(cl.health() == errc::peer_unavailable);
  auto [ec, items] = cl.get({"k"});
  CHECK(ec == errc::peer_unavailable);
  CHECK(cl.server_log.contains("the client certificate does not name 127.0.0.5"));
  CHECK(cl.client_log.contains("identity_mismatch"));
  CHECK(cl.server->stats().tls_handshakes >= 1);  // the handshake itself succeeded
}

TEST_CASE("TLS: a plaintext server and a TLS client do not talk") {
  test_pki pki;
  pki.issue("node", "IP:127.0.0.1");
  cluster cl(server_options{}, 2, tls_client(pki, "node"), openssl);
  CHECK(cl.health() == errc::peer_unavailable);
  CHECK(cl.client->stats().tls_handshakes_failed == 1);
}

TEST_CASE("TLS: a connection over max_connections_per_address is closed without a reply") {
  test_pki pki;
  pki.issue("node", "IP:127.0.0.1");
  server_options so = tls_server(pki, "node");
  so.max_connections_per_address = 1;
  cluster cl(so, 2, tls_client(pki, "node"), openssl);
  raw_connection first(cl.server->port());  // holds the one slot, in its handshake
  REQUIRE(eventually([&] { return cl.server->stats().connections_open == 1; }));
  raw_connection second(cl.server->port());
  CHECK(second.wait_closed());
  CHECK(cl.server->stats().connections_refused == 1);
}

TEST_CASE("TLS: options and files are checked when the server starts and the client is made") {
  test_pki pki;
  pki.issue("node", "IP:127.0.0.1");
  pki.issue("other", "IP:127.0.0.1");
  net::io_context ioc;
  map_service svc;
  log_capture log;
  auto start_with = [&](distcache::tls_options t) {
    server_options so;
    so.tls = std::move(t);
    http_server server(ioc, svc, so, log.logger(), openssl);
    auto r = server.start();
    return r ? error_code{} : r.error();
  };
  auto t = pki.tls("node");
  t.certificate_file.clear();
  CHECK(start_with(t) == errc::invalid_config);
  CHECK(log.last().find("server_options.tls.certificate_file: must be set") != std::string::npos);
  t = pki.tls("node");
  t.ca_file.clear();
  CHECK(start_with(t) == errc::invalid_config);
  CHECK(log.last().find("ca_file: must be set") != std::string::npos);
  t = pki.tls("node");
  t.certificate_file = pki.path("missing.crt");
  CHECK(start_with(t) == errc::invalid_config);
  CHECK(log.last().find("cannot load the certificate " + pki.path("missing.crt")) !=
        std::string::npos);
  t = pki.tls("node");
  t.private_key_file = pki.path("other.key");
  CHECK(start_with(t) == errc::invalid_config);
  CHECK(log.last().find("does not match the certificate") != std::string::npos);
  t = pki.tls("node");
  t.ca_file = pki.path("node.key");  // not a certificate
  CHECK(start_with(t) == errc::invalid_config);
  CHECK(log.last().find("cannot load the CA file") != std::string::npos);
  t = pki.tls("node");
  t.reload_interval = -1s;
  CHECK(start_with(t) == errc::invalid_config);
  CHECK(log.last().find("reload_interval: must be >= 0") != std::string::npos);

  client_options co = tls_client(pki, "node");
  co.tls.private_key_file = pki.path("other.key");
  std::string thrown;
  try {
    http_client client(ioc, co, {}, openssl);
  } catch (const distcache::config_error& e) {
    thrown = e.what();
  }
  CHECK(thrown.find("client_options.tls: the private key") != std::string::npos);
  CHECK(thrown.find("does not match") != std::string::npos);

  distcache::config c;
  c.cluster.enabled = true;
  c.cluster.tls.enabled = true;
  CHECK(distcache::detail::validate_engine(c) ==
        "config.cluster.tls.certificate_file: must be set when TLS is enabled");
  c.cluster.tls = pki.tls("node");
  CHECK(distcache::detail::validate_engine(c).empty());
  c.admin.enabled = true;
  c.admin.tls = pki.tls("node");
  c.admin.tls.ca_file.clear();
  CHECK(distcache::detail::validate_engine(c) ==
        "config.admin.tls.ca_file: must be set when TLS is enabled with "
        "require_client_certificate");
  c.admin.tls.require_client_certificate = false;
  CHECK(distcache::detail::validate_engine(c).empty());
}

TEST_CASE("TLS: reload_tls() swaps the certificates under load with no failed request") {
  test_pki pki;
  pki.issue("node", "IP:127.0.0.1");
  pki.issue("next", "IP:127.0.0.1");
  server_options so = tls_server(pki, "node");
  so.tls.reload_interval = 0s;  // only on the call
  client_options co = tls_client(pki, "node");
  co.tls.reload_interval = 0s;
  co.max_idle_per_peer = 1;
  cluster cl(so, 2, co, openssl);
  cl.svc.put("users", "k", reply_item::found("v"));
  const std::string old_cert = pki.path("old.crt");
  std::filesystem::copy_file(pki.path("node.crt"), old_cert);
  CHECK(serves_certificate(cl.server->port(), pki, old_cert));
  {
    steady_load load(cl, 4);
    REQUIRE(load.wait_more(200));
    rotate(pki, "next", "node");
    REQUIRE(cl.server->reload_tls());
    REQUIRE(cl.client->reload_tls());
    CHECK(serves_certificate(cl.server->port(), pki, pki.path("next.crt")));
    CHECK(load.wait_more(200));
    load.finish();
    CHECK(load.failed.load() == 0);
  }
  CHECK(cl.server->stats().tls_reloads == 1);
  CHECK(cl.client->stats().tls_reloads == 1);
  CHECK(cl.server->stats().tls_handshakes_failed == 0);

  // Files that do not load leave the certificates in use, and say why.
  std::ofstream(pki.path("node.crt"), std::ios::trunc) << "not a certificate\n";
  CHECK(cl.server->reload_tls().error() == errc::invalid_config);
  CHECK(cl.server_log.contains("TLS reload failed, keeping the certificates in use"));
  CHECK(cl.server->stats().tls_reload_failures == 1);
  CHECK(serves_certificate(cl.server->port(), pki, pki.path("next.crt")));
  CHECK_FALSE(cl.health());
}

TEST_CASE("TLS: a change of the files is picked up after reload_interval, under load") {
  test_pki pki;
  pki.issue("node", "IP:127.0.0.1");
  pki.issue("next", "IP:127.0.0.1");
  server_options so = tls_server(pki, "node");
  so.tls.reload_interval = 20ms;
  client_options co = tls_client(pki, "node");
  co.tls.reload_interval = 20ms;
  co.max_idle_per_peer = 1;
  cluster cl(so, 2, co, openssl);
  cl.svc.put("users", "k", reply_item::found("v"));
  steady_load load(cl, 4);
  REQUIRE(load.wait_more(100));
  rotate(pki, "next", "node");
  // The watcher may catch the certificate without its key (a failed load,
  // logged); the key's rename is a change again, and that load succeeds.
  CHECK(eventually(
      [&] { return cl.server->stats().tls_reloads == 1 && cl.client->stats().tls_reloads == 1; }));
  CHECK(serves_certificate(cl.server->port(), pki, pki.path("next.crt")));
  CHECK(load.wait_more(100));
  load.finish();
  CHECK(load.failed.load() == 0);
}

TEST_CASE("TLS: a transport without a TLS library refuses TLS options, with the way out") {
  test_pki pki;
  pki.issue("node", "IP:127.0.0.1");
  net::io_context ioc;
  map_service svc;
  log_capture log;
  http_server server(ioc, svc, tls_server(pki, "node"), log.logger());  // no library given
  CHECK(server.start().error() == errc::invalid_config);
  CHECK(log.last().find("server_options.tls.enabled: true, but the engine's Transport policy has "
                        "no TLS; build the engine with policies<Discovery, transport::https>") !=
        std::string::npos);
  std::string thrown;
  try {
    http_client client(ioc, tls_client(pki, "node"));
  } catch (const distcache::config_error& e) {
    thrown = e.what();
  }
  CHECK(thrown.find("client_options.tls.enabled: true") != std::string::npos);
}

TEST_CASE(
    "TLS: a peer that accepts but never completes the handshake fails within connect_timeout") {
  test_pki pki;
  pki.issue("node", "IP:127.0.0.1");
  net::io_context silent_ioc;
  net::ip::tcp::acceptor silent(silent_ioc, {net::ip::make_address("127.0.0.1"), 0});
  // The kernel completes the TCP handshake from the backlog; nothing is ever read or written.
  client_options co = tls_client(pki, "node");
  co.connect_timeout = 200ms;
  cluster cl(tls_server(pki, "node"), 2, co, openssl);
  const std::string peer = "127.0.0.1:" + std::to_string(silent.local_endpoint().port());
  std::promise<error_code> p;
  cl.client->health(peer, 30s, [&p](error_code ec) { p.set_value(ec); });
  auto f = p.get_future();
  REQUIRE(f.wait_for(bound) == std::future_status::ready);
  // Within connect_timeout, as for a connect that hangs: unavailable, not the request's timeout.
  CHECK(f.get() == errc::peer_unavailable);
  CHECK(cl.client_log.contains("connect timed out"));
}
