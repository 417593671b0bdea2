// transport::http_client: requests of every type, limits, batches, pooling,
// failures and close; and the client and server together under load.
#include <distcache/transport/http_client.hpp>
//
#include <doctest/doctest.h>

#include "support/http_fixture.hpp"

TEST_CASE("http client and server round-trip every request type") {
  cluster cl;
  CHECK_FALSE(cl.health());

  CHECK_FALSE(cl.set("user:1", "alice", 1500));
  auto stored = cl.svc.find("users", "user:1");
  REQUIRE(stored);
  CHECK(stored->value == "alice");
  CHECK(stored->ttl_ms == 1500);
  CHECK(cl.svc.last_sender() == std::pair<std::string, std::uint64_t>{"node-a", 7});
  CHECK(cl.svc.last_wait_ms() == 0);       // only gets say how long they wait
  CHECK(cl.svc.last_push_read_ms() == 0);  // a put's set is no push

  CHECK_FALSE(cl.push("user:2", "bob", 1'764'000'000'123));
  CHECK(cl.svc.find("users", "user:2")->value == "bob");
  CHECK(cl.svc.last_push_read_ms() == 1'764'000'000'123);  // as DC-Push-Read-Ms

  auto [ec, items] = cl.get({"user:1"});
  REQUIRE_FALSE(ec);
  REQUIRE(items.size() == 1);
  CHECK(items[0] == reply_item::found("alice", 1500));
  CHECK(cl.svc.last_wait_ms() == 5000);  // the call's timeout, as DC-Wait-Ms

  auto [ec2, missing] = cl.get({"user:404"});
  REQUIRE_FALSE(ec2);
  REQUIRE(missing.size() == 1);
  CHECK(missing[0].status == reply_item::kind::not_found);

  CHECK_FALSE(cl.set("user:2", std::string("b\0b", 3)));
  auto [ec3, many] = cl.get({"user:2", "nobody", "error:x", "user:1"});
  REQUIRE_FALSE(ec3);
  REQUIRE(many.size() == 4);
  CHECK(many[0] == reply_item::found(std::string("b\0b", 3), -1));
  CHECK(many[1] == reply_item::missing());
  CHECK(many[2] == reply_item::failed(errc::data_source_failed));
  CHECK(many[3] == reply_item::found("alice", 1500));
  auto [ec5, loading] = cl.get({"loading:1", "user:1"}, "users", 2s);
  REQUIRE_FALSE(ec5);
  CHECK(loading ==
        std::vector<reply_item>{reply_item::still_loading(), reply_item::found("alice", 1500)});
  CHECK(cl.svc.last_wait_ms() == 2000);

  auto [ec4, removed] = cl.remove({"user:1", "user:2", "nobody"});
  REQUIRE_FALSE(ec4);
  CHECK(removed == 2);
  CHECK_FALSE(cl.svc.find("users", "user:1"));

  CHECK_FALSE(cl.invalidate({"s:1", "s:2"}));
  CHECK(cl.svc.invalidated() == std::vector<std::string>{"sessions/s:1", "sessions/s:2"});
}

TEST_CASE("http client percent-encodes keyspace names and the server decodes them") {
  cluster cl;
  const std::string ks(map_service::odd_keyspace);
  REQUIRE_FALSE(cl.set("k", "v", -1, ks));
  CHECK(cl.svc.find(ks, "k")->value == "v");
  auto [ec, items] = cl.get({"k"}, ks);
  REQUIRE_FALSE(ec);
  CHECK(items.at(0) == reply_item::found("v"));
}

TEST_CASE("http server answers a get-many of no keys with an empty reply") {
  cluster cl;
  auto r = raw_exchange(cl.server->port(), ks_request("get-many", key_list({})));
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == std::string("\0\0\0\0", 4));
}

TEST_CASE("http client reports the peer's keyspace and set errors") {
  cluster cl;
  auto [ec, items] = cl.get({"k"}, "orders");
  CHECK(ec == errc::keyspace_not_found);
  CHECK(items.empty());
  CHECK(cl.set("k", "v", -1, "orders") == errc::keyspace_not_found);
  CHECK(cl.set("refuse", "v") == errc::value_too_large);
  CHECK(cl.server_log.contains("422"));
}

TEST_CASE("http client rejects arguments over the limits before sending") {
  cluster cl;
  CHECK(cl.get({std::string(1025, 'k')}).first == errc::invalid_key);
  CHECK(cl.get({""}).first == errc::invalid_key);
  CHECK(cl.set(std::string(1025, 'k'), "v") == errc::invalid_key);
  CHECK(cl.set("k", std::string((64 << 20) + 1, 'v')) == errc::value_too_large);
  CHECK(cl.get({"k"}, "").first == errc::keyspace_not_found);
  CHECK(cl.set("k", "v", -1, "") == errc::keyspace_not_found);
  auto [ec, none] = cl.get({});
  CHECK_FALSE(ec);
  CHECK(none.empty());
  CHECK(cl.server->accepted_connections() == 0);
}

TEST_CASE("http client splits batches over max_batch and keeps key order") {
  cluster cl;
  std::vector<std::string> keys;
  for (int i = 0; i < 2500; ++i) {
    keys.push_back("k" + std::to_string(i));
    if (i % 3 == 0) cl.svc.put("users", keys.back(), reply_item::found("v" + std::to_string(i)));
  }
  auto [ec, items] = cl.get(keys);
  REQUIRE_FALSE(ec);
  REQUIRE(items.size() == 2500);
  for (int i = 0; i < 2500; ++i) {
    CAPTURE(i);
    if (i % 3 == 0) {
      CHECK(items[i] == reply_item::found("v" + std::to_string(i)));
    } else {
      CHECK(items[i].status == reply_item::kind::not_found);
    }
  }
  auto [rec, removed] = cl.remove(keys);
  REQUIRE_FALSE(rec);
  CHECK(removed == 834);
}

TEST_CASE("http client carries large values in both directions") {
  cluster cl;
  std::string big(5 << 20, 'x');
  for (std::size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>(i / 4096);
  REQUIRE_FALSE(cl.set("big", big, 60000));
  auto [ec, items] = cl.get({"big"});
  REQUIRE_FALSE(ec);
  REQUIRE(items.size() == 1);
  CHECK(items[0].value == big);
  CHECK(items[0].ttl_ms == 60000);
}

TEST_CASE("http client reuses keep-alive connections") {
  cluster cl;
  cl.svc.put("users", "k", reply_item::found("v"));
  for (int i = 0; i < 20; ++i) REQUIRE_FALSE(cl.get({"k"}).first);
  CHECK(cl.server->accepted_connections() == 1);
  CHECK(cl.client->connections(cl.peer()) == 1);

  // 8 at once need more connections, which then stay pooled.
  std::vector<std::future<error_code>> fs;
  std::vector<std::promise<error_code>> ps(8);
  for (auto& p : ps) {
    fs.push_back(p.get_future());
    cl.client->get(cl.peer(), "users", {"k"}, 1, 5s,
                   [&p](error_code ec, const std::vector<reply_item>&) { p.set_value(ec); });
  }
  for (auto& f : fs) {
    REQUIRE(f.wait_for(bound) == std::future_status::ready);
    CHECK_FALSE(f.get());
  }
  const auto after_burst = cl.server->accepted_connections();
  CHECK(after_burst <= 8);
  for (int i = 0; i < 20; ++i) REQUIRE_FALSE(cl.get({"k"}).first);
  CHECK(cl.server->accepted_connections() == after_burst);
}

TEST_CASE("http client sends a call made in a completion at once, and never completes inside it") {
  // A call made from a completion callback (on a thread that runs the
  // io_context) starts at once on the connection just freed; its own
  // completion still never runs inside the call that made it, and the
  // chain, 500 calls deep, neither nests nor loses a call.
  cluster cl;
  cl.svc.put("users", "k", reply_item::found("v"));
  constexpr int calls = 500;
  std::atomic<int> completed{0};
  std::atomic<int> failures{0};
  static thread_local int depth = 0;  // calls of get() this thread is inside of
  std::promise<void> all_done;
  std::function<void()> next;
  next = [&] {
    ++depth;
    cl.client->get(cl.peer(), "users", {"k"}, 1, 5s,
                   [&](error_code ec, const std::vector<reply_item>& items) {
                     if (depth != 0) ++failures;  // completed inside get()
                     if (ec || items != std::vector{reply_item::found("v")}) ++failures;
                     if (++completed == calls) {
                       all_done.set_value();
                       return;
                     }
                     next();
                   });
    --depth;
  };
  next();
  REQUIRE(all_done.get_future().wait_for(bound) == std::future_status::ready);
  CHECK(failures == 0);
  CHECK(cl.server->accepted_connections() == 1);
}

TEST_CASE("http client keeps at most max_idle_per_peer idle connections") {
  client_options co = cluster::make_client_options();
  co.max_idle_per_peer = 0;
  cluster cl({}, 2, co);
  for (int i = 0; i < 3; ++i) REQUIRE_FALSE(cl.health());
  CHECK(cl.server->accepted_connections() == 3);
  CHECK(eventually([&] { return cl.client->connections(cl.peer()) == 0; }));
}

TEST_CASE("http client resends once when a pooled connection was closed by the server") {
  server_options so;
  so.idle_timeout = 100ms;
  so.read_timeout = 100ms;
  cluster cl(so);
  REQUIRE_FALSE(cl.health());
  CHECK(eventually([&] { return cl.server->connections() == 0; }));  // idle_timeout closed it
  CHECK_FALSE(cl.health());
  CHECK(cl.server->accepted_connections() == 2);
}

TEST_CASE("http client times out a request whose peer does not answer") {
  cluster cl;
  const auto started = std::chrono::steady_clock::now();
  auto [ec, items] = cl.get({"block:1"}, "users", 200ms);
  const auto took = std::chrono::steady_clock::now() - started;
  CHECK(ec == errc::timeout);
  CHECK(items.empty());
  CHECK(took >= 200ms);
  CHECK(took < bound);
  REQUIRE(cl.svc.wait_blocked(1));
  cl.svc.release();  // the server's late answer meets a closed connection
  CHECK_FALSE(cl.health());
  cl.svc.put("users", "k", reply_item::found("v"));
  CHECK_FALSE(cl.get({"k"}).first);
}

TEST_CASE("http client reports a peer that is down as unavailable") {
  std::uint16_t port = 0;
  {
    net::io_context probe;
    net::ip::tcp::acceptor a(probe, {net::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }  // closed: nothing listens there now
  cluster cl;
  const std::string down = "127.0.0.1:" + std::to_string(port);
  CHECK(cl.get({"k"}, "users", 2s, down).first == errc::peer_unavailable);
  CHECK(cl.health(down) == errc::peer_unavailable);
  CHECK(cl.health("not-an-address") == errc::peer_unavailable);
  CHECK(cl.health("127.0.0.1:0") == errc::peer_unavailable);
  CHECK(cl.health("127.0.0.1:99999") == errc::peer_unavailable);
}

TEST_CASE("http client resolves host names") {
  cluster cl;
  CHECK_FALSE(cl.health("localhost:" + std::to_string(cl.server->port())));
}

TEST_CASE("http client treats garbage and error statuses as an unavailable peer") {
  // A fake peer that answers every request with the next canned response.
  net::io_context ioc;
  net::ip::tcp::acceptor acceptor(ioc, {net::ip::make_address("127.0.0.1"), 0});
  const std::vector<std::string> canned{
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",                      // undecodable
      "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nboom",  // error status
      "HTTP/1.1 204 No Content\r\n\r\n",                                      // wrong status
      "NOT HTTP AT ALL\r\n\r\n",                                              // garbage
      "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",                     // truncated
  };
  std::thread fake([&] {
    for (const auto& reply : canned) {
      net::ip::tcp::socket s(ioc);
      acceptor.accept(s);
      std::array<char, 4096> buf{};
      boost::system::error_code ec;
      s.read_some(net::buffer(buf), ec);
      net::write(s, net::buffer(reply), ec);
      s.shutdown(net::ip::tcp::socket::shutdown_both, ec);
    }
  });
  cluster cl;
  const std::string fake_peer = "127.0.0.1:" + std::to_string(acceptor.local_endpoint().port());
  for (std::size_t i = 0; i < canned.size(); ++i) {
    CAPTURE(i);
    CHECK(cl.get({"k"}, "users", 5s, fake_peer).first == errc::peer_unavailable);
  }
  fake.join();
}

TEST_CASE("http client fails every call with stopped after close") {
  cluster cl;
  REQUIRE_FALSE(cl.health());
  cl.client->close();
  CHECK(cl.health() == errc::stopped);
  CHECK(cl.get({"k"}).first == errc::stopped);
  CHECK(cl.set("k", "v") == errc::stopped);
}

TEST_CASE("http client close completes a request in flight with stopped") {
  cluster cl;
  std::promise<error_code> p;
  auto f = p.get_future();
  cl.client->get(cl.peer(), "users", {"block:2"}, 1, 30s,
                 [&p](error_code ec, const std::vector<reply_item>&) { p.set_value(ec); });
  REQUIRE(cl.svc.wait_blocked(1));
  cl.client->close();
  REQUIRE(f.wait_for(bound) == std::future_status::ready);
  CHECK(f.get() == errc::stopped);
}

TEST_CASE("http client options are validated at construction") {
  net::io_context ioc;
  CHECK_THROWS_AS(http_client(ioc, client_options{}), distcache::config_error);
  client_options o = cluster::make_client_options();
  o.self_name = "bad name";
  CHECK_THROWS_AS(http_client(ioc, o), distcache::config_error);
  o = cluster::make_client_options();
  o.connect_timeout = 0s;
  CHECK_THROWS_AS(http_client(ioc, o), distcache::config_error);
}

TEST_CASE("http client and server stay consistent under concurrent load") {
  cluster cl({}, 2);
  for (int i = 0; i < 50; ++i)
    cl.svc.put("users", "k" + std::to_string(i), reply_item::found("v" + std::to_string(i)));
  std::atomic<int> failures{0};
  std::atomic<int> completed{0};
  std::vector<std::thread> callers;
  callers.reserve(4);
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&, t] {
      for (int i = 0; i < 150; ++i) {
        const int k = (t * 7 + i) % 60;
        std::promise<void> p;
        auto f = p.get_future();
        cl.client->get(cl.peer(), "users", {"k" + std::to_string(k)}, 1, 5s,
                       [&, k](error_code ec, std::vector<reply_item> items) {
                         const bool ok =
                             !ec && items.size() == 1 &&
                             (k < 50 ? items[0] == reply_item::found("v" + std::to_string(k))
                                     : items[0].status == reply_item::kind::not_found);
                         if (!ok) ++failures;
                         ++completed;
                         p.set_value();
                       });
        if (f.wait_for(bound) != std::future_status::ready) ++failures;
      }
    });
  }
  for (auto& t : callers) t.join();
  CHECK(failures == 0);
  CHECK(completed == 600);
  CHECK(cl.server->accepted_connections() <= 4);
}

// ---------------------------------------------------------------- coalescing

namespace {

/// A call sent without waiting for it; its outcome arrives in `f`.
struct pending_get {
  std::promise<std::pair<error_code, std::vector<reply_item>>> p;
  std::future<std::pair<error_code, std::vector<reply_item>>> f = p.get_future();

  /// The outcome, once the call completed within `bound`.
  std::pair<error_code, std::vector<reply_item>> result() {
    REQUIRE(f.wait_for(bound) == std::future_status::ready);
    return f.get();
  }
};

std::shared_ptr<pending_get> start_get(cluster& cl, std::vector<std::string> keys,
                                       const std::string& ks = "users",
                                       distcache::duration timeout = 5s,
                                       const std::string& to = {}) {
  auto g = std::make_shared<pending_get>();
  cl.client->get(to.empty() ? cl.peer() : to, ks, std::move(keys), 7, timeout,
                 [g](error_code ec, std::vector<reply_item> items) {
                   g->p.set_value({ec, std::move(items)});
                 });
  return g;
}

/// Coalescing at `in_flight`; a request counts toward it until it completes
/// (the tests hold requests as long as they need), unless `slow_after`.
client_options coalescing_options(std::size_t in_flight, std::size_t max_keys = 256,
                                  distcache::duration slow_after = {}) {
  client_options co = cluster::make_client_options();
  co.coalesce_in_flight = in_flight;
  co.max_coalesced_keys = max_keys;
  co.coalesce_slow_after = slow_after;
  return co;
}

using key_lists = std::vector<std::vector<std::string>>;

}  // namespace

TEST_CASE("http client coalesces the calls that wait for a busy peer and splits the reply") {
  cluster cl({}, 2, coalescing_options(1));
  cl.svc.put("users", "k1", reply_item::found("v1", 1000));
  cl.svc.put("users", "k3", reply_item::found("v3"));
  auto blocker = start_get(cl, {"block:1"});
  REQUIRE(cl.svc.wait_blocked(1));
  // The one request allowed in flight is busy: these wait.
  auto a = start_get(cl, {"k1"});
  auto b = start_get(cl, {"error:2"});
  auto c = start_get(cl, {"nobody", "k3"});
  auto d = start_get(cl, {"k1"}, "sessions");
  REQUIRE(eventually([&] { return cl.client->stats().calls_waiting == 4; }));
  CHECK(cl.svc.get_requests().size() == 1);
  cl.svc.release();

  CHECK(blocker->result() == std::pair{error_code{}, std::vector{reply_item::missing()}});
  CHECK(a->result() == std::pair{error_code{}, std::vector{reply_item::found("v1", 1000)}});
  CHECK(b->result() ==
        std::pair{error_code{}, std::vector{reply_item::failed(errc::data_source_failed)}});
  CHECK(c->result() ==
        std::pair{error_code{}, std::vector{reply_item::missing(), reply_item::found("v3")}});
  CHECK(d->result() == std::pair{error_code{}, std::vector{reply_item::missing()}});
  // One request for the three calls of "users", one for the call of "sessions".
  CHECK(cl.svc.get_requests() == key_lists{{"block:1"}, {"k1", "error:2", "nobody", "k3"}, {"k1"}});
  const auto s = cl.client->stats();
  CHECK(s.coalesced_requests == 1);
  CHECK(s.coalesced_calls == 3);
  CHECK(s.calls_waiting == 0);
}

TEST_CASE("http client sends the calls a completion makes with the ones that waited") {
  cluster cl({}, 2, coalescing_options(1));
  cl.svc.put("users", "k1", reply_item::found("v1"));
  cl.svc.put("users", "k2", reply_item::found("v2"));
  // The blocker's callback makes a call, as a caller that keeps a number of
  // gets in flight does: it leaves in one request with the call that waited
  // (sent before the callbacks ran, it would have gone alone).
  std::promise<std::shared_ptr<pending_get>> made;
  auto made_f = made.get_future();
  auto blocker = std::make_shared<pending_get>();
  cl.client->get(cl.peer(), "users", {"block:1"}, 7, 5s,
                 [&cl, &made, blocker](error_code ec, std::vector<reply_item> items) {
                   made.set_value(start_get(cl, {"k2"}));
                   blocker->p.set_value({ec, std::move(items)});
                 });
  REQUIRE(cl.svc.wait_blocked(1));
  auto a = start_get(cl, {"k1"});
  REQUIRE(eventually([&] { return cl.client->stats().calls_waiting == 1; }));
  cl.svc.release();
  CHECK_FALSE(blocker->result().first);
  REQUIRE(made_f.wait_for(bound) == std::future_status::ready);
  auto b = made_f.get();
  CHECK(a->result() == std::pair{error_code{}, std::vector{reply_item::found("v1")}});
  CHECK(b->result() == std::pair{error_code{}, std::vector{reply_item::found("v2")}});
  CHECK(cl.svc.get_requests() == key_lists{{"block:1"}, {"k1", "k2"}});
  CHECK(cl.client->stats().coalesced_calls == 2);
}

TEST_CASE("http client stops holding calls back behind a request in flight past slow_after") {
  // An owner that holds a request open (its source stalls) must not hold
  // back the calls behind it for as long: past coalesce_slow_after the
  // request stops counting toward coalesce_in_flight, and the waiting call
  // leaves without any other call to push it.
  constexpr auto slow_after = 300ms;
  cluster cl({}, 2, coalescing_options(1, 256, slow_after));
  cl.svc.put("users", "k1", reply_item::found("v1"));
  cl.svc.put("users", "k2", reply_item::found("v2"));
  const auto t0 = std::chrono::steady_clock::now();
  auto blocker = start_get(cl, {"block:1"});
  REQUIRE(cl.svc.wait_blocked(1));
  auto a = start_get(cl, {"k1"});
  const std::size_t waited = cl.client->stats().calls_waiting;
  if (std::chrono::steady_clock::now() - t0 < slow_after) CHECK(waited == 1);
  CHECK(a->result() == std::pair{error_code{}, std::vector{reply_item::found("v1")}});
  CHECK(blocker->f.wait_for(0s) == std::future_status::timeout);  // still held
  CHECK(cl.client->stats().slow_requests == 1);
  cl.svc.release();
  CHECK(blocker->result() == std::pair{error_code{}, std::vector{reply_item::missing()}});
  // The slow request gave its place back once: with none in flight, a call
  // leaves (at once, or with a flush still running; with a place counted
  // twice it would wait for its timeout).
  auto b = start_get(cl, {"k2"}, "users", 5s);
  CHECK(b->result() == std::pair{error_code{}, std::vector{reply_item::found("v2")}});
  CHECK(cl.svc.get_requests() == key_lists{{"block:1"}, {"k1"}, {"k2"}});
}

TEST_CASE("http client frees the place of a request sent by a flush once it is slow too") {
  // The wait timer freed the blocker's place and the flush sent x, which the
  // peer holds as well; y (another keyspace, so not in x's request) waits.
  // The timer must fire again when x can have become slow, not only at y's
  // deadline.
  cluster cl({}, 2, coalescing_options(1, 256, 100ms));
  cl.svc.put("users", "k1", reply_item::found("v1"));
  auto blocker = start_get(cl, {"block:1"}, "users", 8s);
  REQUIRE(cl.svc.wait_blocked(1));
  auto x = start_get(cl, {"block:2"}, "sessions", 8s);
  auto y = start_get(cl, {"k1"}, "users", 5s);
  CHECK(y->result() == std::pair{error_code{}, std::vector{reply_item::found("v1")}});
  CHECK(blocker->f.wait_for(0s) == std::future_status::timeout);  // both still held
  CHECK(x->f.wait_for(0s) == std::future_status::timeout);
  CHECK(cl.svc.wait_blocked(2));
  CHECK(cl.client->stats().slow_requests == 2);
  cl.svc.release();
  CHECK_FALSE(blocker->result().first);
  CHECK_FALSE(x->result().first);
}

TEST_CASE("http client keeps at most 64 slow requests to a peer in flight") {
  // A peer that holds every request open gets one more each time the last
  // became slow, up to 64 slow ones; then the last request keeps its place
  // and calls wait as without coalesce_slow_after.
  cluster cl({}, 2, coalescing_options(1, 256, 5ms));
  std::vector<std::shared_ptr<pending_get>> held;
  for (std::size_t i = 1; i <= 65; ++i) {
    held.push_back(start_get(cl, {"block:" + std::to_string(i)}));
    // It leaves once the one before it became slow (at once, or when the
    // wait timer frees that one's place); it may be slow itself by now.
    REQUIRE(cl.svc.wait_blocked(i));
    const auto slow = cl.client->stats().slow_requests;
    CHECK(slow >= i - 1);
    CHECK(slow <= std::min<std::size_t>(i, 64));
  }
  auto last = start_get(cl, {"k"});
  REQUIRE(eventually([&] { return cl.client->stats().calls_waiting == 1; }));
  CHECK(cl.svc.wait_blocked(65));
  CHECK(cl.client->stats().slow_requests == 64);  // the 65th kept its place
  cl.svc.release();
  for (auto& h : held) CHECK_FALSE(h->result().first);
  CHECK_FALSE(last->result().first);
}

TEST_CASE("http client keeps a coalesced request within max_coalesced_keys") {
  cluster cl({}, 2, coalescing_options(1, 3));
  for (int i = 1; i <= 8; ++i) {
    const auto k = "a" + std::to_string(i);
    cl.svc.put("users", k, reply_item::found("v" + k));
  }
  auto blocker = start_get(cl, {"block:1"});
  REQUIRE(cl.svc.wait_blocked(1));
  auto a1 = start_get(cl, {"a1"});
  auto a2 = start_get(cl, {"a2"});
  auto big = start_get(cl, {"a3", "a4", "a5", "a6"});  // over the limit: goes alone
  auto a7 = start_get(cl, {"a7"});
  auto a8 = start_get(cl, {"a8"});
  REQUIRE(eventually([&] { return cl.client->stats().calls_waiting == 5; }));
  cl.svc.release();
  CHECK_FALSE(blocker->result().first);
  CHECK(a1->result().second == std::vector{reply_item::found("va1")});
  CHECK(a2->result().second == std::vector{reply_item::found("va2")});
  CHECK(big->result().second == std::vector{reply_item::found("va3"), reply_item::found("va4"),
                                            reply_item::found("va5"), reply_item::found("va6")});
  CHECK(a7->result().second == std::vector{reply_item::found("va7")});
  CHECK(a8->result().second == std::vector{reply_item::found("va8")});
  CHECK(cl.svc.get_requests() ==
        key_lists{{"block:1"}, {"a1", "a2"}, {"a3", "a4", "a5", "a6"}, {"a7", "a8"}});
}

TEST_CASE("http client coalesces removes and invalidations") {
  cluster cl({}, 2, coalescing_options(1));
  cl.svc.put("users", "r1", reply_item::found("x"));
  cl.svc.put("users", "r3", reply_item::found("y"));
  auto blocker = start_get(cl, {"block:1"});  // gets, removes and invalidations share the bound
  REQUIRE(cl.svc.wait_blocked(1));
  std::promise<std::size_t> removed1;
  std::promise<std::size_t> removed2;
  std::promise<error_code> inv1;
  std::promise<error_code> inv2;
  cl.client->remove(cl.peer(), "users", {"r1"}, 7, 5s,
                    [&](error_code ec, std::size_t n) { removed1.set_value(ec ? 99 : n); });
  cl.client->invalidate(cl.peer(), "sessions", {"s:1"}, 7, 5s,
                        [&](error_code ec) { inv1.set_value(ec); });
  cl.client->remove(cl.peer(), "users", {"r2", "r3"}, 7, 5s,
                    [&](error_code ec, std::size_t n) { removed2.set_value(ec ? 99 : n); });
  cl.client->invalidate(cl.peer(), "sessions", {"s:2"}, 7, 5s,
                        [&](error_code ec) { inv2.set_value(ec); });
  REQUIRE(eventually([&] { return cl.client->stats().calls_waiting == 4; }));
  cl.svc.release();
  CHECK_FALSE(blocker->result().first);
  auto f1 = removed1.get_future();
  auto f2 = removed2.get_future();
  auto g1 = inv1.get_future();
  auto g2 = inv2.get_future();
  REQUIRE(f2.wait_for(bound) == std::future_status::ready);
  REQUIRE(g2.wait_for(bound) == std::future_status::ready);
  // Each remove learns how many keys of the whole request the peer held.
  CHECK(f1.get() == 2);
  CHECK(f2.get() == 2);
  CHECK_FALSE(g1.get());
  CHECK_FALSE(g2.get());
  CHECK(cl.svc.remove_requests() == key_lists{{"r1", "r2", "r3"}});
  CHECK(cl.svc.invalidate_requests() == key_lists{{"s:1", "s:2"}});
  CHECK_FALSE(cl.svc.find("users", "r1"));
  CHECK_FALSE(cl.svc.find("users", "r3"));
}

TEST_CASE("http client fails every call of a coalesced request its peer drops") {
  // A fake peer: answers the first request, then reads the coalesced one and
  // closes the connection without answering (and the one resend too).
  net::io_context fio;
  net::ip::tcp::acceptor acceptor(fio, {net::ip::make_address("127.0.0.1"), 0});
  std::promise<void> go;
  auto go_f = go.get_future();
  std::string batch_request;
  auto read_request = [](net::ip::tcp::socket& s) {
    std::string in;
    std::array<char, 4096> buf{};
    boost::system::error_code ec;
    for (;;) {  // the head, then Content-Length bytes
      const auto end = in.find("\r\n\r\n");
      if (end != std::string::npos) {
        const auto at = in.find("Content-Length: ");
        const auto len = std::stoul(in.substr(at + 16));
        if (in.size() >= end + 4 + len) return in;
      }
      const auto n = s.read_some(net::buffer(buf), ec);
      if (ec) return in;
      in.append(buf.data(), n);
    }
  };
  std::thread fake([&] {
    net::ip::tcp::socket s(fio);
    acceptor.accept(s);
    (void)read_request(s);
    go_f.wait();
    std::string body;
    distcache::transport::encode_get_reply(body, reply_item::found("v"));
    const std::string reply =
        "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    boost::system::error_code ec;
    net::write(s, net::buffer(reply), ec);
    batch_request = read_request(s);
    s.close(ec);
    net::ip::tcp::socket again(fio);
    acceptor.accept(again);
    (void)read_request(again);
    again.close(ec);
  });
  cluster cl({}, 2, coalescing_options(1));
  const std::string fake_peer = "127.0.0.1:" + std::to_string(acceptor.local_endpoint().port());
  auto first = start_get(cl, {"k"}, "users", 5s, fake_peer);
  auto a = start_get(cl, {"x1"}, "users", 5s, fake_peer);
  auto b = start_get(cl, {"x2", "x3"}, "users", 5s, fake_peer);
  REQUIRE(eventually([&] { return cl.client->stats().calls_waiting == 2; }));
  go.set_value();
  CHECK(first->result() == std::pair{error_code{}, std::vector{reply_item::found("v")}});
  CHECK(a->result() ==
        std::pair{make_error_code(errc::peer_unavailable), std::vector<reply_item>{}});
  CHECK(b->result() ==
        std::pair{make_error_code(errc::peer_unavailable), std::vector<reply_item>{}});
  fake.join();
  CHECK(batch_request.starts_with("POST /_distcache/v1/ks/users/get-many "));
  CHECK(batch_request.find("x1") != std::string::npos);
  CHECK(batch_request.find("x3") != std::string::npos);
}

TEST_CASE("http client ends a waiting call at its own timeout") {
  cluster cl({}, 2, coalescing_options(1));
  auto blocker = start_get(cl, {"block:1"}, "users", 30s);
  REQUIRE(cl.svc.wait_blocked(1));
  const auto started = std::chrono::steady_clock::now();
  auto late = start_get(cl, {"k"}, "users", 150ms);
  auto [ec, items] = late->result();  // while the blocker still is
  CHECK(ec == errc::timeout);
  CHECK(std::chrono::steady_clock::now() - started >= 150ms);
  CHECK(cl.client->stats().calls_waiting == 0);
  CHECK(blocker->f.wait_for(0s) == std::future_status::timeout);
  cl.svc.release();
  CHECK_FALSE(blocker->result().first);
  CHECK(cl.svc.get_requests() == key_lists{{"block:1"}});  // the late call was never sent
}

TEST_CASE("http client close fails waiting calls with stopped") {
  cluster cl({}, 2, coalescing_options(1));
  auto blocker = start_get(cl, {"block:1"}, "users", 30s);
  REQUIRE(cl.svc.wait_blocked(1));
  auto waiting = start_get(cl, {"k"});
  REQUIRE(eventually([&] { return cl.client->stats().calls_waiting == 1; }));
  cl.client->close();
  CHECK(waiting->result().first == errc::stopped);
  CHECK(blocker->result().first == errc::stopped);
}

TEST_CASE("http client ends the waiting calls of a dropped peer at once") {
  cluster cl({}, 2, coalescing_options(1));
  auto blocker = start_get(cl, {"block:1"}, "users", 30s);
  REQUIRE(cl.svc.wait_blocked(1));
  auto waiting = start_get(cl, {"k"}, "users", 30s);
  REQUIRE(eventually([&] { return cl.client->stats().calls_waiting == 1; }));
  cl.client->drop_peer(cl.peer());  // the request in flight finishes normally
  CHECK(waiting->result().first == errc::peer_unavailable);  // while the blocker still waits
  CHECK(cl.client->stats().calls_waiting == 0);
  cl.svc.release();
  CHECK_FALSE(blocker->result().first);
  CHECK(cl.svc.get_requests() == key_lists{{"block:1"}});
}

TEST_CASE("http client sends every call at once when coalescing is off") {
  cluster cl({}, 2, coalescing_options(0));
  cl.svc.put("users", "k", reply_item::found("v"));
  auto blocker = start_get(cl, {"block:1"}, "users", 30s);
  REQUIRE(cl.svc.wait_blocked(1));
  auto [ec, items] = start_get(cl, {"k"})->result();  // while the blocker is in flight
  CHECK_FALSE(ec);
  CHECK(items == std::vector{reply_item::found("v")});
  cl.svc.release();
  CHECK_FALSE(blocker->result().first);
  CHECK(cl.client->stats().coalesced_requests == 0);
}

TEST_CASE("http client validates the coalescing options") {
  net::io_context ioc;
  CHECK_THROWS_WITH_AS(http_client(ioc, coalescing_options(4, 0)),
                       doctest::Contains("client_options.max_coalesced_keys: must be in [1, "
                                         "limits.max_batch (1000)], got 0"),
                       distcache::config_error);
  CHECK_THROWS_AS(http_client(ioc, coalescing_options(4, 1001)), distcache::config_error);
  CHECK_NOTHROW(http_client(ioc, coalescing_options(0, 1000)));
}
