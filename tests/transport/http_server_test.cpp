// transport::http_server: start, health, pipelining, and every bad request a
// peer can send (each gets a 4xx or a closed connection, and the server serves on).
#include <distcache/transport/http_server.hpp>
//
#include <doctest/doctest.h>

#include "support/http_fixture.hpp"

TEST_CASE("http server reports bind errors and bad options from start") {
  cluster cl;
  map_service svc;
  net::io_context ioc;
  log_capture log;
  server_options same_port;
  same_port.port = cl.server->port();
  http_server taken(ioc, svc, same_port, log.logger());
  CHECK(taken.start().error() == net::error::address_in_use);
  server_options bad_address;
  bad_address.bind_address = "not-an-ip";
  http_server bad(ioc, svc, bad_address, log.logger());
  CHECK(bad.start().error() == errc::invalid_config);
  CHECK(log.contains("server_options.bind_address"));
  server_options bad_timeout;
  bad_timeout.read_timeout = 0s;
  http_server zero(ioc, svc, bad_timeout, log.logger());
  CHECK(zero.start().error() == errc::invalid_config);
  CHECK(log.contains("server_options.read_timeout"));
}

TEST_CASE("http server answers health and keeps the connection alive") {
  cluster cl;
  raw_connection c(cl.server->port());
  for (int i = 0; i < 3; ++i) {
    c.send("GET /_distcache/v1/health HTTP/1.1\r\nHost: x\r\nDC-Cluster: distcache\r\n\r\n");
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "ok");
  }
  CHECK(cl.server->accepted_connections() == 1);
}

TEST_CASE("http server answers pipelined requests in order") {
  cluster cl;
  cl.svc.put("users", "a", reply_item::found("A"));
  raw_connection c(cl.server->port());
  c.send(ks_request("get", key_list({"a"})) + ks_request("get", key_list({"b"})) +
         "GET /_distcache/v1/health HTTP/1.1\r\nDC-Cluster: distcache\r\n\r\n");
  auto r1 = c.read_response();
  auto r2 = c.read_response();
  auto r3 = c.read_response();
  REQUIRE((r1 && r2 && r3));
  std::string a;
  tr::encode_get_reply(a, reply_item::found("A"));
  CHECK(r1->body == a);
  CHECK(r2->body == "\x01");
  CHECK(r3->body == "ok");
}

TEST_CASE("http server rejects bad requests with a 4xx and a log line, and serves on") {
  cluster cl;
  const auto port = cl.server->port();
  struct bad_case {
    const char* name;
    std::string request;
    unsigned status;
    std::string_view body_contains;
  };
  std::string chunk_body = key_list({"a"});
  const std::vector<bad_case> cases{
      {"unknown path", "GET /nothing HTTP/1.1\r\n\r\n", 404, "unknown path"},
      {"unknown operation", ks_request("frobnicate", key_list({"a"})), 404, "unknown path"},
      {"unknown keyspace", ks_request("get", key_list({"a"}), "orders"), 404, "orders"},
      {"wrong method on health", "POST /_distcache/v1/health HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
       405, "GET"},
      {"wrong method on get", ks_request("get", "", "users", "DC-From: raw\r\n", "GET"), 405,
       "POST"},
      {"missing DC-From", ks_request("get", key_list({"a"}), "users", ""), 400, "DC-From"},
      {"bad ring version",
       ks_request("get", key_list({"a"}), "users",
                  "DC-From: r\r\nDC-Cluster: distcache\r\nDC-Ring-Version: x\r\n"),
       400, "DC-Ring-Version"},
      {"bad wait",
       ks_request("get", key_list({"a"}), "users",
                  "DC-From: r\r\nDC-Cluster: distcache\r\nDC-Wait-Ms: -5\r\n"),
       400, "DC-Wait-Ms"},
      {"bad push time",
       ks_request("set", "", "users",
                  "DC-From: r\r\nDC-Cluster: distcache\r\nDC-Push-Read-Ms: soon\r\n"),
       400, "DC-Push-Read-Ms"},
      {"push time 0",
       ks_request("set", "", "users",
                  "DC-From: r\r\nDC-Cluster: distcache\r\nDC-Push-Read-Ms: 0\r\n"),
       400, "DC-Push-Read-Ms"},
      {"health from another cluster",
       "GET /_distcache/v1/health HTTP/1.1\r\nDC-Cluster: other\r\n\r\n", 403,
       "belongs to cluster 'distcache', not 'other'"},
      {"health without DC-Cluster", "GET /_distcache/v1/health HTTP/1.1\r\n\r\n", 403,
       "missing DC-Cluster"},
      {"get from another cluster",
       ks_request("get", key_list({"a"}), "users", "DC-From: r\r\nDC-Cluster: other\r\n"), 403,
       "not 'other'"},
      {"get without DC-Cluster", ks_request("get", key_list({"a"}), "users", "DC-From: r\r\n"), 403,
       "missing DC-Cluster"},
      {"bad keyspace escape", ks_request("get", key_list({"a"}), "us%zz"), 400, "keyspace"},
      {"truncated key list", ks_request("get", key_list({"abc"}).substr(0, 9)), 400, "truncated"},
      {"get with two keys", ks_request("get", key_list({"a", "b"})), 400, "exactly one key"},
      {"get with no keys", ks_request("get", key_list({})), 400, "exactly one key"},
      {"empty body", ks_request("remove", ""), 400, "truncated"},
      {"trailing bytes", ks_request("invalidate", key_list({"a"}) + "!"), 400, "after the last"},
      {"oversized key", ks_request("get", key_list({std::string(1025, 'k')})), 400,
       "max_key_bytes"},
      {"empty key", ks_request("remove", key_list({""})), 400, "empty"},
      {"oversized batch", ks_request("get-many", key_list(std::vector<std::string>(1001, "k"))),
       400, "max_batch"},
      {"oversized value claim",
       ks_request("set",
                  [] {
                    std::string b;
                    tr::encode_set_body_head(b, "k", -1, (64 << 20) + 1);
                    return b + "tiny";
                  }()),
       400, "max_value_bytes"},
      {"bad ttl",
       ks_request("set",
                  [] {
                    std::string b;
                    tr::encode_set_body(b, "k", "v", -5);
                    return b;
                  }()),
       400, "ttl"},
      {"truncated set body",
       ks_request("set",
                  [] {
                    std::string b;
                    tr::encode_set_body(b, "k", "value", 1);
                    return b.substr(0, b.size() - 2);
                  }()),
       400, "truncated"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    const auto lines_before = cl.server_log.size();
    auto r = raw_exchange(port, c.request);
    REQUIRE(r);
    CHECK(r->status == c.status);
    CHECK(r->body.find(c.body_contains) != std::string::npos);
    CHECK(cl.server_log.size() == lines_before + 1);
    CHECK(cl.server_log.last().find(std::to_string(c.status)) != std::string::npos);
  }
  auto unknown = raw_exchange(port, ks_request("get", key_list({"a"}), "orders"));
  REQUIRE(unknown);
  CHECK(unknown->headers["dc-error"] == "keyspace_not_found");
  auto method = raw_exchange(port, ks_request("set", "", "users", "DC-From: raw\r\n", "PUT"));
  REQUIRE(method);
  CHECK(method->headers["allow"] == "POST");
  CHECK_FALSE(cl.health());
}

TEST_CASE("http server keeps the connection after a rejected but well-framed request") {
  cluster cl;
  raw_connection c(cl.server->port());
  c.send(ks_request("get", key_list({std::string(2000, 'k')})));
  auto r = c.read_response();
  REQUIRE(r);
  CHECK(r->status == 400);
  CHECK(r->keep_alive);
  c.send("GET /_distcache/v1/health HTTP/1.1\r\nDC-Cluster: distcache\r\n\r\n");
  auto ok = c.read_response();
  REQUIRE(ok);
  CHECK(ok->status == 200);
}

TEST_CASE("http server rejects a body over max_body_bytes from its Content-Length") {
  cluster cl;
  raw_connection c(cl.server->port());
  c.send(
      "POST /_distcache/v1/ks/users/set HTTP/1.1\r\nDC-From: raw\r\nDC-Cluster: "
      "distcache\r\nContent-Length: " +
      std::to_string((std::size_t{128} << 20) + 1) + "\r\n\r\nabc");
  auto r = c.read_response();
  REQUIRE(r);
  CHECK(r->status == 413);
  CHECK_FALSE(r->keep_alive);
  CHECK(c.wait_closed());
  CHECK(cl.server_log.contains("413"));
  CHECK_FALSE(cl.health());
}

TEST_CASE("http server rejects headers over max_header_bytes") {
  cluster cl;
  raw_connection c(cl.server->port());
  c.send("GET /_distcache/v1/health HTTP/1.1\r\nX-Big: " + std::string(10000, 'a') + "\r\n\r\n");
  auto r = c.read_response();
  if (r) CHECK(r->status == 431);  // or the connection closed without an answer
  CHECK(c.wait_closed());
  CHECK(cl.server_log.contains("431"));
  CHECK_FALSE(cl.health());
}

TEST_CASE("http server answers garbage with 400 and closes") {
  cluster cl;
  for (std::string_view garbage :
       {std::string_view("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11),
        std::string_view("hello there\r\n\r\n"), std::string_view("GET / HTTP/9.9\r\n\r\n"),
        std::string_view(
            "POST /_distcache/v1/ks/users/get HTTP/1.1\r\nContent-Length: x\r\n\r\n")}) {
    raw_connection c(cl.server->port());
    c.send(garbage);
    auto r = c.read_response();
    if (r) CHECK(r->status == 400);
    CHECK(c.wait_closed());
  }
  CHECK(cl.server_log.contains("malformed HTTP request"));
  CHECK_FALSE(cl.health());
}

TEST_CASE("http server closes a connection whose body stops mid-way after read_timeout") {
  server_options so;
  so.read_timeout = 200ms;
  cluster cl(so);
  raw_connection c(cl.server->port());
  const auto started = std::chrono::steady_clock::now();
  c.send(
      "POST /_distcache/v1/ks/users/set HTTP/1.1\r\nDC-From: raw\r\nDC-Cluster: "
      "distcache\r\nContent-Length: 100\r\n\r\n"
      "0123456789");
  CHECK(c.wait_closed());
  CHECK(std::chrono::steady_clock::now() - started >= 200ms);
  CHECK(eventually([&] { return cl.server_log.contains("read_timeout"); }));
  CHECK_FALSE(cl.health());
}

TEST_CASE("http server closes a connection that trickles its headers past read_timeout") {
  server_options so;
  so.read_timeout = 200ms;
  cluster cl(so);
  raw_connection c(cl.server->port());
  c.send("GET /_distcache/v1/health HTTP/1.1\r\n");
  CHECK(c.wait_closed());
  CHECK_FALSE(cl.health());
}

TEST_CASE("http server stop closes a connection in the middle of a request at once") {
  server_options so;
  so.read_timeout = 30s;  // without the close at stop, the connection would stay this long
  cluster cl(so);
  raw_connection c(cl.server->port());
  c.send(
      "POST /_distcache/v1/ks/users/set HTTP/1.1\r\nDC-From: raw\r\nDC-Cluster: "
      "distcache\r\nContent-Length: 100\r\n\r\n"
      "0123456789");
  REQUIRE_FALSE(cl.health());  // a request on another connection: the server has read the first one
  const auto stopped_at = std::chrono::steady_clock::now();
  cl.server->stop();
  CHECK(c.wait_closed());
  CHECK(cl.server->wait_idle(bound));
  CHECK(std::chrono::steady_clock::now() - stopped_at < 5s);
}

TEST_CASE("http server survives a truncated body followed by close") {
  cluster cl;
  {
    raw_connection c(cl.server->port());
    const std::string full = ks_request("set", [] {
      std::string b;
      tr::encode_set_body(b, "k", "value", 1);
      return b;
    }());
    c.send(full.substr(0, full.size() - 3));
    c.shutdown_write();
    CHECK(c.wait_closed());
  }
  CHECK(eventually([&] { return cl.server_log.contains("truncated"); }));
  CHECK_FALSE(cl.svc.find("users", "k"));
  CHECK_FALSE(cl.health());
}

TEST_CASE("http server accepts chunked bodies and Expect: 100-continue") {
  cluster cl;
  std::string body;
  tr::encode_set_body(body, "chunked", "yes", -1);
  raw_connection c(cl.server->port());
  std::string req =
      "POST /_distcache/v1/ks/users/set HTTP/1.1\r\nDC-From: raw\r\nDC-Cluster: distcache\r\n"
      "Transfer-Encoding: chunked\r\n\r\n";
  char size[16];
  std::snprintf(size, sizeof size, "%zx\r\n", body.size() - 4);
  req += size + body.substr(0, body.size() - 4) + "\r\n4\r\n" + body.substr(body.size() - 4) +
         "\r\n0\r\n\r\n";
  c.send(req);
  auto r = c.read_response();
  REQUIRE(r);
  CHECK(r->status == 204);
  CHECK(cl.svc.find("users", "chunked")->value == "yes");

  std::string body2;
  tr::encode_set_body(body2, "expect", "continue", -1);
  c.send(
      "POST /_distcache/v1/ks/users/set HTTP/1.1\r\nDC-From: raw\r\nDC-Cluster: "
      "distcache\r\nExpect: 100-continue\r\n"
      "Content-Length: " +
      std::to_string(body2.size()) + "\r\n\r\n");
  auto interim = c.read_response();
  REQUIRE(interim);
  CHECK(interim->status == 100);
  c.send(body2);
  auto done = c.read_response();
  REQUIRE(done);
  CHECK(done->status == 204);
  CHECK(cl.svc.find("users", "expect")->value == "continue");
}

TEST_CASE("http server stop closes idle connections, finishes requests in flight, then idles") {
  cluster cl;
  raw_connection idle(cl.server->port());
  idle.send("GET /_distcache/v1/health HTTP/1.1\r\nDC-Cluster: distcache\r\n\r\n");
  REQUIRE(idle.read_response());

  raw_connection busy(cl.server->port());
  // A get that blocks, and behind it on the same connection a request that
  // the server reads only after stop().
  busy.send(ks_request("get", key_list({"block:3"})) +
            "GET /_distcache/v1/health HTTP/1.1\r\nDC-Cluster: distcache\r\n\r\n");
  REQUIRE(cl.svc.wait_blocked(1));

  cl.server->stop();
  CHECK(idle.wait_closed());
  CHECK_FALSE(cl.server->idle());
  CHECK(eventually([&] {
    raw_connection probe(cl.server->port());
    return !probe.connected();
  }));

  cl.svc.release();
  auto first = busy.read_response();
  REQUIRE(first);
  CHECK(first->status == 200);
  auto second = busy.read_response();
  REQUIRE(second);
  CHECK(second->status == 503);
  CHECK_FALSE(second->keep_alive);
  CHECK(busy.wait_closed());
  busy.close();  // ends the server's lingering close at once
  CHECK(cl.server->wait_idle(bound));
  CHECK(cl.server->idle());
  CHECK(cl.health() == errc::peer_unavailable);
}

// ------------------------------------------- memory and connection limits

namespace {

/// The head of a set request announcing a body of `length` bytes.
std::string set_head(std::size_t length, std::string_view framing = {}) {
  std::string r =
      "POST /_distcache/v1/ks/users/set HTTP/1.1\r\nHost: x\r\nDC-From: raw\r\n"
      "DC-Cluster: distcache\r\n";
  if (framing.empty()) {
    r += "Content-Length: " + std::to_string(length) + "\r\n\r\n";
  } else {
    r += framing;
  }
  return r;
}

const char* const health_request =
    "GET /_distcache/v1/health HTTP/1.1\r\nHost: x\r\nDC-Cluster: distcache\r\n\r\n";

}  // namespace

TEST_CASE("http server refuses a body that does not fit max_inflight_bytes before reading it") {
  server_options so;
  so.max_inflight_bytes = std::size_t{1} << 20;  // bodies over 64 KiB may use 896 KiB of it
  cluster cl(so);
  const auto port = cl.server->port();
  // A set of 800 KiB whose body has not all arrived holds 800 KiB.
  std::string value((std::size_t{800} << 10) - 64, 'v');
  std::string body;
  tr::encode_set_body(body, "big", value, 0);
  raw_connection slow(port);
  REQUIRE(slow.send(set_head(body.size()) + body.substr(0, 1000)));
  REQUIRE(eventually([&] { return cl.server->stats().inflight_bytes >= body.size(); }));
  // A second large request does not fit: 503 and close, its body unread.
  raw_connection refused(port);
  REQUIRE(refused.send(set_head(std::size_t{200} << 10)));
  auto r = refused.read_response();
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK_FALSE(r->keep_alive);
  CHECK(r->body.find("max_inflight_bytes 1048576") != std::string::npos);
  CHECK(cl.server->stats().requests_refused == 1);
  CHECK(cl.server_log.contains("503 to 127.0.0.1"));
  // Small requests keep the last eighth: a get is answered meanwhile.
  cl.svc.put("users", "a", reply_item::found("A"));
  auto g = raw_exchange(port, ks_request("get", key_list({"a"})));
  REQUIRE(g);
  CHECK(g->status == 200);
  // The slow set completes and gives its bytes back.
  REQUIRE(slow.send(std::string_view(body).substr(1000)));
  auto s = slow.read_response();
  REQUIRE(s);
  CHECK(s->status == 204);
  CHECK(cl.svc.find("users", "big").has_value());
  REQUIRE(eventually([&] { return cl.server->stats().inflight_bytes == 0; }));
  // Now the same second request fits.
  std::string small;
  tr::encode_set_body(small, "later", std::string(std::size_t{200} << 10, 'w'), 0);
  auto later = raw_exchange(port, set_head(small.size()) + small);
  REQUIRE(later);
  CHECK(later->status == 204);
  CHECK(cl.server->stats().requests_refused == 1);
}

TEST_CASE("http server refuses a chunked body when it outgrows max_inflight_bytes") {
  server_options so;
  so.max_inflight_bytes = std::size_t{1} << 20;
  cluster cl(so);
  raw_connection c(cl.server->port());
  const std::string chunk(std::size_t{512} << 10, 'x');
  std::string request = set_head(0, "Transfer-Encoding: chunked\r\n\r\n");
  for (int i = 0; i < 2; ++i) request += "80000\r\n" + chunk + "\r\n";
  c.send(request);  // may meet a closed connection: the answer matters
  auto r = c.read_response();
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK_FALSE(r->keep_alive);
  CHECK(cl.server->stats().requests_refused == 1);
  REQUIRE(eventually([&] { return cl.server->stats().inflight_bytes == 0; }));
}

TEST_CASE("http server refuses connections over max_connections_per_address, logging once") {
  server_options so;
  so.max_connections_per_address = 2;
  cluster cl(so);
  const auto port = cl.server->port();
  auto a = std::make_unique<raw_connection>(port, "127.0.0.2");
  raw_connection b(port, "127.0.0.2");
  for (auto* c : {a.get(), &b}) {
    REQUIRE(c->send(health_request));
    auto r = c->read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
  }
  // The third from that address is answered 503 at once, unread.
  raw_connection third(port, "127.0.0.2");
  auto r = third.read_response();
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK_FALSE(r->keep_alive);
  CHECK(r->body.find("max_connections_per_address 2") != std::string::npos);
  CHECK(cl.server->stats().connections_refused == 1);
  // Another address is served.
  auto other = raw_exchange(port, health_request);
  REQUIRE(other);
  CHECK(other->status == 200);
  // A second refusal within the minute is counted, not logged again.
  raw_connection fourth(port, "127.0.0.2");
  REQUIRE(fourth.read_response());
  CHECK(cl.server->stats().connections_refused == 2);
  CHECK(cl.server_log.count("refusing connections from 127.0.0.2") == 1);
  // When one of its connections closes, the address may open another.
  a.reset();
  REQUIRE(eventually([&] { return cl.server->stats().connections_open == 1; }));
  raw_connection again(port, "127.0.0.2");
  REQUIRE(again.send(health_request));
  auto ok = again.read_response();
  REQUIRE(ok);
  CHECK(ok->status == 200);
}

TEST_CASE("http server refuses zero limits at start") {
  map_service svc;
  net::io_context ioc;
  log_capture log;
  server_options no_budget;
  no_budget.max_inflight_bytes = 0;
  http_server a(ioc, svc, no_budget, log.logger());
  CHECK(a.start().error() == errc::invalid_config);
  CHECK(log.contains("server_options.max_inflight_bytes"));
  server_options no_connections;
  no_connections.max_connections_per_address = 0;
  http_server b(ioc, svc, no_connections, log.logger());
  CHECK(b.start().error() == errc::invalid_config);
  CHECK(log.contains("server_options.max_connections_per_address"));
}
