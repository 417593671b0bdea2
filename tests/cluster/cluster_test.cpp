// Three engines in one process on 127.0.0.1 with OS-chosen ports, finding
// each other through a discovery provider written here.
#include <distcache/engine.hpp>
#include <distcache/transport/http.hpp>
#include <distcache/transport/https.hpp>
//
#include <doctest/doctest.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_future.hpp>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/keyspaces.hpp"
#include "support/manual_clock.hpp"
#include "support/pki.hpp"
#include "support/sources.hpp"

using distcache::config;
using distcache::errc;
using distcache::test::eventually;
using namespace std::chrono_literals;

namespace {

/// A custom discovery provider: nodes register in a shared in-memory
/// registry and discover each other through it. It is all a provider needs
/// to be (the concept is enough).
struct registry {
  std::mutex mutex;
  std::set<std::string> nodes;
};
class registry_discovery {
 public:
  registry_discovery() = default;
  explicit registry_discovery(std::shared_ptr<registry> r) : r_(std::move(r)) {}
  distcache::result<void> initialize() { return {}; }
  distcache::result<void> register_node(const std::string& self) {
    std::lock_guard lock(r_->mutex);
    r_->nodes.insert(self);
    return {};
  }
  distcache::result<void> deregister_node(const std::string& self) {
    std::lock_guard lock(r_->mutex);
    r_->nodes.erase(self);
    return {};
  }
  distcache::result<std::vector<std::string>> discover_peers() {
    std::lock_guard lock(r_->mutex);
    return std::vector<std::string>(r_->nodes.begin(), r_->nodes.end());
  }
  void close() {}

 private:
  std::shared_ptr<registry> r_ = std::make_shared<registry>();
};
static_assert(distcache::discovery_provider<registry_discovery>);

using users = distcache::test::users;  // support/keyspaces.hpp

using node_engine = distcache::basic_engine<distcache::policies<registry_discovery>, users>;

config node_config() {
  config c;
  c.threads = 1;
  c.fetch_threads = 4;
  c.cluster.enabled = true;
  c.cluster.bind_address = "127.0.0.1";
  c.cluster.port = 0;
  c.cluster.probe_interval = 50ms;
  c.cluster.discovery_interval = 50ms;
  c.cluster.peer_timeout = 500ms;
  c.cluster.failure_threshold = 2;
  c.cluster.join_retry_interval = 10ms;
  return c;
}

/// Three started nodes sharing one "database" (the scripted source state).
template <class Engine>
struct basic_cluster3 {
  std::shared_ptr<registry> reg = std::make_shared<registry>();
  std::shared_ptr<distcache::test::source_state> db =
      std::make_shared<distcache::test::source_state>();
  std::vector<std::unique_ptr<Engine>> nodes;

  explicit basic_cluster3(const config& c = node_config()) {
    for (int i = 0; i < 3; ++i) {
      users u;
      u.source.state = db;
      nodes.push_back(std::make_unique<Engine>(c, registry_discovery(reg), u));
      REQUIRE(nodes.back()->start());
    }
    // Every node sees the two others, and all agree on the ring.
    REQUIRE(eventually([&] {
      for (auto& n : nodes) {
        if (n->cluster_peers().size() != 2) return false;
      }
      return nodes[0]->ring_version() == nodes[1]->ring_version() &&
             nodes[1]->ring_version() == nodes[2]->ring_version();
    }));
  }
  Engine& owner_node(std::string_view key) {
    const std::string owner = nodes[0]->owner_of(key);
    for (auto& n : nodes) {
      if (n->self_name() == owner) return *n;
    }
    FAIL("no node owns " << key);
    return *nodes[0];
  }
  Engine& non_owner(std::string_view key, int which = 0) {
    const std::string owner = nodes[0]->owner_of(key);
    for (auto& n : nodes) {
      if (n->self_name() != owner && which-- == 0) return *n;
    }
    return *nodes[0];
  }
};

using cluster3 = basic_cluster3<node_engine>;
/// Nodes over transport::https (TLS when config.cluster.tls says so).
using tls_node_engine =
    distcache::basic_engine<distcache::policies<registry_discovery, distcache::transport::https>,
                            users>;
using tls_cluster3 = basic_cluster3<tls_node_engine>;

}  // namespace

TEST_CASE("every key is owned by exactly one node, and all nodes agree") {
  cluster3 c;
  std::map<std::string, int> per_owner;
  for (int i = 0; i < 300; ++i) {
    const std::string key = "k" + std::to_string(i);
    const std::string owner = c.nodes[0]->owner_of(key);
    CHECK(c.nodes[1]->owner_of(key) == owner);
    CHECK(c.nodes[2]->owner_of(key) == owner);
    ++per_owner[owner];
  }
  CHECK(per_owner.size() == 3);  // keys spread over all three
}

TEST_CASE("a get on a non-owner loads once on the owner and fills its hot cache") {
  cluster3 c;
  c.db->set("user:1", "Ada");
  auto& reader = c.non_owner("user:1");
  auto v = reader.get<users>("user:1");
  REQUIRE(v.has_value());
  CHECK(**v == "Ada");
  CHECK(c.db->calls == 1);
  CHECK(reader.stats<users>().peer_loads == 1);
  CHECK(reader.stats<users>().hot_cache_items == 1);
  CHECK(c.owner_node("user:1").stats<users>().main_cache_items == 1);
  // Read again anywhere: no new source call.
  for (auto& n : c.nodes) CHECK(**n->get<users>("user:1") == "Ada");
  CHECK(c.db->calls == 1);
}

TEST_CASE("a put on one node is read on another; other nodes drop their copies") {
  cluster3 c;
  c.db->set("user:2", "old");
  // Every node caches the old value (owner: main, others: hot).
  for (auto& n : c.nodes) CHECK(**n->get<users>("user:2") == "old");
  auto& writer = c.non_owner("user:2", 0);
  auto& reader = c.non_owner("user:2", 1);
  REQUIRE(writer.put<users>("user:2", "new"));
  CHECK(**reader.get<users>("user:2") == "new");
  CHECK(**writer.get<users>("user:2") == "new");
  CHECK(**c.owner_node("user:2").get<users>("user:2") == "new");
  CHECK(c.db->calls == 1);
}

TEST_CASE("a remove on one node is seen on every node") {
  cluster3 c;
  c.db->set("user:3", "v1");
  for (auto& n : c.nodes) CHECK(**n->get<users>("user:3") == "v1");
  c.db->set("user:3", "v2");
  REQUIRE(c.nodes[2]->remove<users>("user:3"));
  for (auto& n : c.nodes) CHECK(**n->get<users>("user:3") == "v2");
  std::uint64_t requests = 0;
  for (auto& n : c.nodes) requests += n->stats<users>().remove_keys_requests;
  CHECK(requests == 3);  // counted on every receiving node
}

TEST_CASE("100 concurrent gets of one missing key over 3 nodes make one source call") {
  cluster3 c;
  c.db->set("hot", "value");
  c.db->close_gate();
  auto& owner = c.owner_node("hot");
  std::vector<std::thread> callers;
  callers.reserve(100);
  std::atomic<int> ok{0};
  for (int i = 0; i < 100; ++i) {
    callers.emplace_back([&, i] {
      auto r = c.nodes[i % 3]->get<users>("hot");
      if (r && **r == "value") ok.fetch_add(1);
    });
  }
  // Hold the load until every caller waits in a flight, and both other
  // nodes' requests have joined the owner's flight. Node n has the callers
  // i % 3 == n (34, 33, 33); the owner also counts each request of the two
  // others, which ask again while it is still loading (peer_waits).
  CHECK(eventually([&] {
    for (std::size_t n = 0; n < 3; ++n) {
      const std::uint64_t callers = n == 0 ? 34 : 33;
      const std::uint64_t loads = c.nodes[n]->stats<users>().loads;
      if (c.nodes[n].get() == &owner ? loads < callers + 2 : loads != callers) return false;
    }
    return true;
  }));
  c.db->open_gate();
  for (auto& t : callers) t.join();
  CHECK(ok == 100);
  CHECK(c.db->calls == 1);
}

TEST_CASE("refresh-ahead over 3 nodes: one source call per key per interval, on the owner") {
  auto clock = std::make_shared<distcache::test::manual_clock>();
  config cfg = node_config();
  cfg.clock = clock;
  cfg.fetch_threads = 8;
  auto& o = cfg.keyspaces["users"];
  o.default_ttl = 1min;
  o.refresh_after = 5s;
  o.hot_max_bytes = 0;  // every get on a non-owner reaches the owner
  cluster3 c(cfg);
  std::vector<std::string> keys;
  for (int i = 0; i < 20; ++i) {
    keys.push_back("r" + std::to_string(i));
    c.db->set(keys.back(), "v0");
  }
  for (const auto& k : keys) REQUIRE(c.nodes[0]->get<users>(k));
  REQUIRE(c.db->calls == 20);
  for (int interval = 1; interval <= 3; ++interval) {
    for (const auto& k : keys) c.db->set(k, "v" + std::to_string(interval));
    clock->advance(5s);
    // Every node reads every key several times at once: each read is
    // answered at once, and only the owners reload.
    std::vector<std::thread> readers;
    std::atomic<int> failed{0};
    for (auto& n : c.nodes) {
      readers.emplace_back([&, node = n.get()] {
        for (int round = 0; round < 5; ++round) {
          for (const auto& k : keys) {
            if (!node->get<users>(k)) failed.fetch_add(1);
          }
        }
      });
    }
    for (auto& t : readers) t.join();
    CHECK(failed == 0);
    CHECK(eventually([&] {
      for (const auto& k : keys) {
        for (auto& n : c.nodes) {
          auto v = n->get<users>(k);
          if (!v || **v != "v" + std::to_string(interval)) return false;
        }
      }
      return true;
    }));
    CHECK(c.db->calls == 20 * (interval + 1));
    std::uint64_t refreshes = 0;
    for (auto& n : c.nodes) refreshes += n->stats<users>().refreshes;
    CHECK(refreshes == 20U * static_cast<unsigned>(interval));
  }
}

TEST_CASE("negative caching over 3 nodes: a not_found is cached where it was asked; a put wins") {
  config cfg = node_config();
  cfg.keyspaces["users"].negative_ttl = 1min;
  cluster3 c(cfg);
  auto& reader = c.non_owner("ghost");
  auto& writer = c.non_owner("ghost", 1);
  CHECK(reader.get<users>("ghost").error() == errc::not_found);
  CHECK(reader.get<users>("ghost").error() == errc::not_found);
  CHECK(c.owner_node("ghost").get<users>("ghost").error() == errc::not_found);
  CHECK(c.db->calls == 1);
  CHECK(reader.stats<users>().negative_hits == 1);  // from its hot cache
  CHECK(reader.stats<users>().hot_cache_items == 1);
  CHECK(c.owner_node("ghost").stats<users>().negative_hits == 1);
  REQUIRE(writer.put<users>("ghost", std::string("here")));
  for (auto& n : c.nodes) CHECK(**n->get<users>("ghost") == "here");
  CHECK(c.db->calls == 1);
}

TEST_CASE("hot-cache admission: a key read once does not push out keys read often") {
  config cfg = node_config();
  auto& o = cfg.keyspaces["users"];
  o.shards = 1;
  // Room for two values of the size below in the reader's hot cache.
  o.hot_max_bytes = 2 * static_cast<std::int64_t>(distcache::detail::value_cache::charge(3, 40));
  cluster3 c(cfg);
  auto& reader = *c.nodes[0];
  // Keys another node owns, each with a value of 32 + 1 bytes (charged ~200).
  std::vector<std::string> keys;
  for (int i = 0; keys.size() < 4 && i < 1000; ++i) {
    const std::string k = "h" + std::to_string(i);
    if (reader.owner_of(k) != reader.self_name()) keys.push_back(k);
  }
  REQUIRE(keys.size() == 4);
  for (const auto& k : keys) c.db->set(k, "x");
  const auto peer_loads = [&] { return reader.stats<users>().peer_loads; };
  // Two frequent keys, admitted while there is room. About one read in
  // sample_every is counted: 31 samples' worth saturate their counters (15).
  constexpr int every = distcache::detail::keyspace_runtime::sample_every;
  for (int i = 0; i < 31 * every; ++i) {
    REQUIRE(reader.get<users>(keys[0]));
    REQUIRE(reader.get<users>(keys[1]));
  }
  CHECK(peer_loads() == 2);
  CHECK(reader.stats<users>().hot_cache_items == 2);
  REQUIRE(reader.get<users>(keys[2]));  // read once: kept out
  CHECK(reader.stats<users>().hot_refused == 1);
  const auto before = peer_loads();
  REQUIRE(reader.get<users>(keys[0]));
  REQUIRE(reader.get<users>(keys[1]));
  CHECK(peer_loads() == before);  // both still answered from the hot cache
  // A key read as often gets in: its reads reach the owner until then.
  for (int i = 0; i < 62 * every; ++i) REQUIRE(reader.get<users>(keys[3]));
  CHECK(peer_loads() < before + std::uint64_t{62} * every);
  CHECK(reader.stats<users>().hot_refused > 1);
}

TEST_CASE("warm join: a node that joins gets the hot keys it takes over, with no source call") {
  auto reg = std::make_shared<registry>();
  auto db = std::make_shared<distcache::test::source_state>();
  std::vector<std::unique_ptr<node_engine>> nodes;
  const auto add_node = [&] {
    users u;
    u.source.state = db;
    nodes.push_back(std::make_unique<node_engine>(node_config(), registry_discovery(reg), u));
    REQUIRE(nodes.back()->start());
  };
  add_node();
  add_node();
  REQUIRE(eventually([&] {
    return nodes[0]->cluster_peers().size() == 1 && nodes[1]->cluster_peers().size() == 1;
  }));
  std::vector<std::string> keys;
  for (int i = 0; i < 60; ++i) {
    keys.push_back("w" + std::to_string(i));
    db->set(keys.back(), "v" + std::to_string(i));
  }
  // Each key read often on its owner: it is among the owner's hot keys
  // (about one read in sample_every is counted; 12 samples' worth of reads
  // make an estimate >= 1).
  constexpr int every = distcache::detail::keyspace_runtime::sample_every;
  for (const auto& k : keys) {
    auto& owner = nodes[0]->owner_of(k) == nodes[0]->self_name() ? *nodes[0] : *nodes[1];
    for (int i = 0; i < 12 * every; ++i) REQUIRE(owner.get<users>(k));
  }
  REQUIRE(db->calls == 60);
  add_node();  // the third node joins
  auto& joined = *nodes[2];
  REQUIRE(eventually([&] {
    for (auto& n : nodes) {
      if (n->cluster_peers().size() != 2) return false;
    }
    return nodes[0]->ring_version() == joined.ring_version() &&
           nodes[1]->ring_version() == joined.ring_version();
  }));
  std::vector<std::string> moved;
  for (const auto& k : keys) {
    if (joined.owner_of(k) == joined.self_name()) moved.push_back(k);
  }
  REQUIRE(!moved.empty());
  // The previous owners push the values: the new owner holds them without
  // having asked the source.
  CHECK(eventually([&] { return joined.stats<users>().main_cache_items >= moved.size(); }));
  CHECK(eventually([&] {  // counted when the push's answer arrives
    return nodes[0]->stats<users>().warmed_keys + nodes[1]->stats<users>().warmed_keys >=
           moved.size();
  }));
  for (const auto& k : moved) {
    auto v = joined.get<users>(k);
    REQUIRE(v.has_value());
    CHECK(**v == "v" + k.substr(1));
  }
  CHECK(db->calls == 60);
}

TEST_CASE("warm-up on leave: a node that takes over keys moves its hot copies to its main cache") {
  cluster3 c;
  auto& reader = *c.nodes[0];
  auto& leaving = *c.nodes[2];
  std::vector<std::string> keys;
  for (int i = 0; keys.size() < 40 && i < 2000; ++i) {
    const std::string k = "l" + std::to_string(i);
    if (reader.owner_of(k) == leaving.self_name()) {
      keys.push_back(k);
      c.db->set(k, "x" + std::to_string(i));
    }
  }
  REQUIRE(keys.size() == 40);
  constexpr int every = distcache::detail::keyspace_runtime::sample_every;
  for (const auto& k : keys) {
    for (int i = 0; i < 12 * every; ++i) REQUIRE(reader.get<users>(k));  // hot copies, read often
  }
  REQUIRE(c.db->calls == 40);
  REQUIRE(leaving.stop());
  REQUIRE(eventually([&] { return reader.cluster_peers().size() == 1; }));
  std::vector<std::string> taken;
  for (const auto& k : keys) {
    if (reader.owner_of(k) == reader.self_name()) taken.push_back(k);
  }
  REQUIRE(!taken.empty());
  CHECK(eventually([&] { return reader.stats<users>().main_cache_items >= taken.size(); }));
  CHECK(eventually([&] { return reader.stats<users>().warmed_keys >= taken.size(); }));
  for (const auto& k : taken) REQUIRE(reader.get<users>(k));
  CHECK(c.db->calls == 40);  // moved, not loaded again
}

TEST_CASE("get_many over 3 nodes answers in order with one request per owner") {
  cluster3 c;
  std::vector<std::string> keys;
  for (int i = 0; i < 30; ++i) {
    keys.push_back("m" + std::to_string(i));
    if (i != 7) c.db->set(keys.back(), "v" + std::to_string(i));
  }
  auto r = c.nodes[0]->get_many<users>(keys);
  REQUIRE(r.has_value());
  REQUIRE(r->size() == keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (i == 7) {
      CHECK((*r)[i].error() == errc::not_found);
    } else {
      REQUIRE((*r)[i].has_value());
      CHECK(**(*r)[i] == "v" + std::to_string(i));
    }
  }
  CHECK(c.db->calls == 30);
  CHECK(c.nodes[0]->stats<users>().peer_errors == 0);
}

TEST_CASE("a remove during a get_many batch keeps the batch's older value out of the hot cache") {
  // get_many's batch reply goes through the key's flight, as a single get's
  // does, so a remove that lands while the batch is in flight wins.
  cluster3 c;
  c.db->set("race:1", "old");
  auto& asker = c.non_owner("race:1");
  c.db->close_gate();
  const std::vector<std::string> keys{"race:1"};
  auto pending = asker.async_get_many<users>(keys, boost::asio::use_future);
  REQUIRE(eventually([&] { return c.db->in_flight == 1; }));  // the owner's fetch has begun
  REQUIRE(asker.remove<users>("race:1"));
  c.db->open_gate();
  auto batch = pending.get();
  REQUIRE(batch.size() == 1);
  REQUIRE(batch[0].has_value());
  CHECK(**batch[0] == "old");  // the callers of the load in flight get its value ...
  CHECK(asker.stats<users>().hot_cache_items == 0);  // ... but it is not cached after the remove
  c.db->set("race:1", "new");
  auto after = asker.get<users>("race:1");
  REQUIRE(after.has_value());
  CHECK(**after == "new");
  CHECK(c.db->calls == 2);
}

TEST_CASE("a node that stops leaves the ring and no read fails meanwhile") {
  cluster3 c;
  for (int i = 0; i < 50; ++i) c.db->set("s" + std::to_string(i), "v");
  const std::string gone = c.nodes[2]->self_name();
  // Stop without deregistering first: the others must notice by themselves.
  REQUIRE(c.nodes[2]->stop());
  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < 50; ++i) {
      auto v = c.nodes[round % 2]->get<users>("s" + std::to_string(i));
      REQUIRE(v.has_value());
    }
  }
  CHECK(eventually([&] {
    return c.nodes[0]->cluster_peers().size() == 1 && c.nodes[1]->cluster_peers().size() == 1;
  }));
  CHECK(c.nodes[0]->owner_of("anything") != gone);
}

TEST_CASE("membership events reach subscribers") {
  auto reg = std::make_shared<registry>();
  std::mutex m;
  std::vector<distcache::peer_event> seen;
  users u;
  node_engine a(node_config(), registry_discovery(reg), u);
  a.subscribe([&](const distcache::peer_event& e) {
    std::lock_guard lock(m);
    seen.push_back(e);
  });
  REQUIRE(a.start());
  node_engine b(node_config(), registry_discovery(reg), u);
  REQUIRE(b.start());
  const std::string bname = b.self_name();
  CHECK(eventually([&] {
    std::lock_guard lock(m);
    return !seen.empty();
  }));
  {
    std::lock_guard lock(m);
    CHECK(seen[0].kind == distcache::peer_event_kind::joined);
    CHECK(seen[0].peer == bname);
  }
  REQUIRE(b.stop());
  CHECK(eventually([&] {
    std::lock_guard lock(m);
    return seen.size() >= 2 && seen.back().kind == distcache::peer_event_kind::left;
  }));
}

TEST_CASE("start fails with cluster_quorum when too few nodes answer, and cleans up") {
  config c = node_config();
  c.cluster.minimum_peers_quorum = 3;
  c.cluster.max_join_attempts = 3;
  c.cluster.bootstrap_timeout = 2s;
  node_engine lonely(c, registry_discovery(), users{});
  CHECK(lonely.start().error() == errc::cluster_quorum);
  CHECK(lonely.get<users>("k").error() == errc::not_started);
  CHECK(lonely.start().error() == errc::cluster_quorum);  // a retry starts from clean state
}

TEST_CASE("a node of another cluster found through the same provider never enters the ring") {
  auto reg = std::make_shared<registry>();
  auto db = std::make_shared<distcache::test::source_state>();
  std::atomic<int> mismatches{0};
  std::vector<std::unique_ptr<node_engine>> nodes;
  for (const char* name : {"blue", "green", "blue"}) {
    config c = node_config();
    c.cluster.name = name;
    c.log = [&](distcache::log_level, std::string_view line) {
      if (line.find("belongs to another cluster") != std::string_view::npos) ++mismatches;
    };
    users u;
    u.source.state = db;
    nodes.push_back(std::make_unique<node_engine>(c, registry_discovery(reg), u));
    REQUIRE(nodes.back()->start());
  }
  // The two "blue" nodes form a ring; "green" is listed by the same registry but both sides
  // refuse it (403 cluster_mismatch on every probe), so it stays alone.
  CHECK(eventually([&] {
    return nodes[0]->cluster_peers() == std::vector<std::string>{nodes[2]->self_name()} &&
           nodes[2]->cluster_peers() == std::vector<std::string>{nodes[0]->self_name()} &&
           mismatches.load() >= 4;
  }));
  CHECK(nodes[1]->cluster_peers().empty());
  CHECK(nodes[0]->ring_version() == nodes[2]->ring_version());
  CHECK(nodes[1]->ring_version() != nodes[0]->ring_version());
}

TEST_CASE("static_peers: nodes listed up front find each other") {
  // Ports chosen by the OS, then released and given to the nodes.
  std::vector<std::uint16_t> ports;
  {
    boost::asio::io_context ioc;
    std::vector<boost::asio::ip::tcp::acceptor> held;
    for (int i = 0; i < 2; ++i) {
      held.emplace_back(
          ioc, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
      ports.push_back(held.back().local_endpoint().port());
    }
  }
  std::vector<std::string> list;
  list.reserve(ports.size());
  for (auto p : ports) list.push_back("127.0.0.1:" + std::to_string(p));
  using static_engine =
      distcache::basic_engine<distcache::policies<distcache::discovery::static_peers>, users>;
  std::vector<std::unique_ptr<static_engine>> nodes;
  auto db = std::make_shared<distcache::test::source_state>();
  db->set("k", "v");
  for (auto p : ports) {
    config c = node_config();
    c.cluster.port = p;
    c.cluster.minimum_peers_quorum = 1;
    users u;
    u.source.state = db;
    nodes.push_back(
        std::make_unique<static_engine>(c, distcache::discovery::static_peers(list), u));
    REQUIRE(nodes.back()->start());
  }
  CHECK(eventually([&] {
    return nodes[0]->cluster_peers().size() == 1 && nodes[1]->cluster_peers().size() == 1;
  }));
  CHECK(**nodes[0]->get<users>("k") == "v");
  CHECK(**nodes[1]->get<users>("k") == "v");
  CHECK(db->calls == 1);
}

TEST_CASE("an owner that cannot serve a keyspace makes the asking node load locally") {
  cluster3 c;
  c.db->set("user:9", "Lin");
  auto& owner = c.owner_node("user:9");
  auto& reader = c.non_owner("user:9");
  REQUIRE(owner.delete_keyspace("users"));  // the owner now answers keyspace_not_found
  auto v = reader.get<users>("user:9");
  REQUIRE(v.has_value());
  CHECK(**v == "Lin");
  CHECK(reader.stats<users>().peer_errors == 1);
  const std::vector<std::string> keys{"user:9"};
  auto many = c.non_owner("user:9", 1).get_many<users>(keys);
  REQUIRE(many.has_value());
  CHECK(**(*many)[0] == "Lin");
}

TEST_CASE("a slow owner is not a dead one: the asker waits for its load, one source call") {
  // The asker waits min(peer_timeout, read_timeout / 2) = 1 s per request;
  // the owner answers "loading" at three quarters of that, and the asker asks
  // again until the read timeout, without loading the key itself.
  auto cfg = node_config();
  cfg.cluster.peer_timeout = 1s;
  cfg.keyspaces["users"].read_timeout = 10s;
  cluster3 c(cfg);
  c.db->set("slow", "value");
  c.db->close_gate();
  auto& reader = c.non_owner("slow");
  auto& owner = c.owner_node("slow");
  auto pending = std::async(std::launch::async, [&] { return reader.get<users>("slow"); });
  // Several times the peer timeout pass while the owner loads.
  CHECK(eventually([&] { return reader.stats<users>().peer_waits >= 2; }));
  c.db->open_gate();
  auto v = pending.get();
  REQUIRE(v.has_value());
  CHECK(**v == "value");
  CHECK(c.db->calls == 1);
  CHECK(reader.stats<users>().local_loads == 0);
  CHECK(reader.stats<users>().peer_errors == 0);
  CHECK(reader.stats<users>().peer_loads == 1);
  CHECK(owner.stats<users>().local_loads == 1);
  CHECK(reader.cluster_peers().size() == 2);  // the owner stayed in the ring
}

TEST_CASE("an owner whose source takes 80% of the read timeout: exactly one source call") {
  auto cfg = node_config();
  cfg.keyspaces["users"].read_timeout = 2s;  // peer requests wait 1 s
  cluster3 c(cfg);
  c.db->set("k", "v");
  c.db->latency = 1600ms;
  auto& reader = c.non_owner("k");
  auto v = reader.get<users>("k");
  REQUIRE(v.has_value());
  CHECK(**v == "v");
  CHECK(c.db->calls == 1);
  CHECK(reader.stats<users>().peer_waits >= 1);
  CHECK(reader.stats<users>().local_loads == 0);
}

TEST_CASE("an owner still loading past the read timeout: the asker times out, loads nothing") {
  auto cfg = node_config();
  cfg.cluster.peer_timeout = 400ms;  // the owner answers "loading" after 300 ms
  cfg.keyspaces["users"].read_timeout = 1200ms;
  cluster3 c(cfg);
  c.db->set("stuck", "v");
  c.db->close_gate();
  auto& reader = c.non_owner("stuck");
  auto v = reader.get<users>("stuck");
  REQUIRE_FALSE(v.has_value());
  CHECK(v.error() == errc::timeout);
  // The flight ends when the owner's last "loading" answer comes after the
  // deadline; until then a second get joins it.
  CHECK(eventually([&] { return reader.stats<users>().peer_waits >= 2; }));
  c.db->open_gate();
  auto& owner = c.owner_node("stuck");
  CHECK(eventually([&] { return owner.stats<users>().local_loads == 1; }));
  CHECK(c.db->calls == 1);
  CHECK(reader.stats<users>().local_loads == 0);
}

TEST_CASE("ring agreement: a request carrying another ring version makes the receiver discover") {
  // A and B look for peers once an hour; C joins after them. C's ring has
  // three nodes, A's and B's two, until a request from C reaches A.
  auto reg = std::make_shared<registry>();
  auto db = std::make_shared<distcache::test::source_state>();
  auto slow = node_config();
  slow.cluster.discovery_interval = std::chrono::hours(1);
  slow.cluster.minimum_peers_quorum = 2;  // started together, each start finds the other
  std::vector<std::unique_ptr<node_engine>> nodes;
  for (int i = 0; i < 2; ++i) {
    users u;
    u.source.state = db;
    nodes.push_back(std::make_unique<node_engine>(slow, registry_discovery(reg), u));
  }
  auto& a = *nodes[0];
  auto& b = *nodes[1];
  auto started_b = std::async(std::launch::async, [&] { return b.start().has_value(); });
  REQUIRE(a.start());
  REQUIRE(started_b.get());
  REQUIRE(eventually(
      [&] { return a.cluster_peers().size() == 1 && a.ring_version() == b.ring_version(); }));
  users u;
  u.source.state = db;
  node_engine c(node_config(), registry_discovery(reg), u);
  REQUIRE(c.start());
  REQUIRE(eventually([&] { return c.cluster_peers().size() == 2; }));
  const auto two_nodes = a.ring_version();
  CHECK(c.ring_version() != two_nodes);
  CHECK(a.ring_version() == two_nodes);  // no round in the next hour would change it
  // A key A owns in C's ring: C asks A for it, with C's ring version.
  std::string key;
  for (int i = 0; key.empty(); ++i) {
    const std::string k = "agree:" + std::to_string(i);
    if (c.owner_of(k) == a.self_name()) key = k;
  }
  db->set(key, "v");
  auto v = c.get<users>(key);
  REQUIRE(v.has_value());
  CHECK(**v == "v");
  CHECK(eventually([&] { return a.ring_version() == c.ring_version(); }));
  CHECK(a.cluster_peers().size() == 2);
}

TEST_CASE("removes win across nodes: a value the owner loaded before a remove is cached nowhere") {
  // The owner's source read the old value, then a remove ran on every node;
  // a node that asks the owner only after the remove reached it joins the
  // owner's (overtaken) load. It may hand that value to its callers, but
  // keeps it in no cache: the owner sends it with 0 ms to live.
  cluster3 c;
  c.db->set("doc", "v1");
  c.db->read_before_gate = true;
  c.db->close_gate();
  auto& owner = c.owner_node("doc");
  auto& asker = c.non_owner("doc", 0);
  auto& remover = c.non_owner("doc", 1);
  auto first = std::async(std::launch::async, [&] { return owner.get<users>("doc"); });
  // v1 read, the reply held (the source sets fetched_on and reads under its
  // lock, and waits on the gate without it).
  REQUIRE(eventually([&] { return c.db->thread_of("doc") != std::thread::id{}; }));
  c.db->set("doc", "v2");
  REQUIRE(remover.remove<users>("doc"));  // on every node: the owner's load is overtaken
  auto second = std::async(std::launch::async, [&] { return asker.get<users>("doc"); });
  // Joined the flight (asking again while it loads counts again).
  REQUIRE(eventually([&] { return owner.stats<users>().loads >= 2; }));
  c.db->open_gate();
  REQUIRE(first.get().has_value());
  auto late = second.get();
  REQUIRE(late.has_value());
  CHECK(**late == "v1");  // handed to the callers of that load, as on one node
  CHECK(asker.stats<users>().hot_cache_items == 0);
  CHECK(owner.stats<users>().main_cache_items == 0);
  c.db->read_before_gate = false;
  for (auto& n : c.nodes) CHECK(**n->get<users>("doc") == "v2");
}

TEST_CASE("removes win across nodes: a not_found loaded before a remove is cached nowhere") {
  auto cfg = node_config();
  cfg.keyspaces["users"].negative_ttl = std::chrono::hours(1);
  cluster3 c(cfg);
  c.db->read_before_gate = true;
  c.db->close_gate();
  auto& owner = c.owner_node("new");
  auto& asker = c.non_owner("new", 0);
  auto& remover = c.non_owner("new", 1);
  auto first = std::async(std::launch::async, [&] { return owner.get<users>("new"); });
  // "No such key" read, the reply held.
  REQUIRE(eventually([&] { return c.db->thread_of("new") != std::thread::id{}; }));
  c.db->set("new", "made");
  REQUIRE(remover.remove<users>("new"));
  auto second = std::async(std::launch::async, [&] { return asker.get<users>("new"); });
  // Joined the flight (asking again while it loads counts again).
  REQUIRE(eventually([&] { return owner.stats<users>().loads >= 2; }));
  c.db->open_gate();
  CHECK(first.get().error() == errc::not_found);  // the owner's own caller: as on one node
  // A not_found carries no time to live: the asker is told to ask again,
  // and then gets what the source holds now.
  auto late = second.get();
  REQUIRE(late.has_value());
  CHECK(**late == "made");
  CHECK(asker.stats<users>().peer_waits >= 1);
  CHECK(**asker.get<users>("new") == "made");
  CHECK(asker.stats<users>().negative_hits == 0);
}

namespace {

/// Speaks the nodes' protocol as another node would ("sender"), with a
/// client of its own: to push values and send writes as a peer does.
struct peer_sender {
  boost::asio::io_context ioc;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work =
      boost::asio::make_work_guard(ioc);
  distcache::transport::http_client client{ioc, [] {
                                             distcache::transport::client_options o;
                                             o.self_name = "sender";
                                             return o;
                                           }()};
  std::thread runner{[this] { ioc.run(); }};

  peer_sender() = default;
  peer_sender(const peer_sender&) = delete;
  peer_sender& operator=(const peer_sender&) = delete;
  ~peer_sender() {  // NOLINT(bugprone-exception-escape): test teardown
    client.close();
    work.reset();
    runner.join();
  }

  static std::uint64_t unix_ms_now() {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
  }
  distcache::error_code push(const std::string& peer, const std::string& key, std::string value,
                             std::uint64_t read_ms = unix_ms_now()) {
    std::promise<distcache::error_code> p;
    client.push(peer, "users", key, std::move(value), -1, 0, read_ms, 2s, {},
                [&p](distcache::error_code ec) { p.set_value(ec); });
    return p.get_future().get();
  }
  distcache::error_code invalidate(const std::string& peer, std::vector<std::string> keys,
                                   std::uint64_t ring_version) {
    std::promise<distcache::error_code> p;
    client.invalidate(peer, "users", std::move(keys), ring_version, 2s,
                      [&p](distcache::error_code ec) { p.set_value(ec); });
    return p.get_future().get();
  }
};

}  // namespace

TEST_CASE("writes win over warm-up: a push of a key written lately, or read long ago, is refused") {
  cluster3 c;
  peer_sender sender;
  auto& owner = c.owner_node("doc");
  const std::string at = owner.self_name();
  // No write of "doc" reached the owner: the push is stored, no source call.
  REQUIRE_FALSE(sender.push(at, "doc", "pushed"));
  CHECK(**owner.get<users>("doc") == "pushed");
  CHECK(c.db->calls == 0);
  // A remove reaches every node; a push of a value read before it arrives
  // later (as a warm-up push crossing the remove): refused, answered as stored.
  c.db->set("doc", "fresh");
  REQUIRE(c.non_owner("doc").remove<users>("doc"));
  REQUIRE_FALSE(sender.push(at, "doc", "stale"));
  CHECK(owner.stats<users>().pushes_refused == 1);
  CHECK(**owner.get<users>("doc") == "fresh");  // loaded: the push was not stored
  // A put wins the same way.
  REQUIRE(c.non_owner("doc").put<users>("doc", "put"));
  REQUIRE_FALSE(sender.push(at, "doc", "stale"));
  CHECK(**owner.get<users>("doc") == "put");
  CHECK(owner.stats<users>().pushes_refused == 2);
  // A push read more than write_memory / 2 ago (10 s by default) is refused
  // even for a key never written: it may have waited in a stalled node.
  auto& other_owner = c.owner_node("old");
  c.db->set("old", "fresh");
  REQUIRE_FALSE(
      sender.push(other_owner.self_name(), "old", "stale", peer_sender::unix_ms_now() - 6'000));
  CHECK(**other_owner.get<users>("old") == "fresh");
}

TEST_CASE("a put's invalidation that outruns its store: the owner's older answer is not kept") {
  // A put sends its store to the owner and its invalidations to the other
  // nodes at once. Here an invalidation reaches a node first, that node is
  // asked for the key, and the owner, which has not stored the new value
  // yet, answers the old one: the node hands it out (the put has not
  // returned) but keeps no hot copy, which would outlive the put.
  cluster3 c;
  peer_sender sender;
  c.db->set("doc", "v1");
  auto& owner = c.owner_node("doc");
  auto& reader = c.non_owner("doc");
  REQUIRE(**owner.get<users>("doc") == "v1");                        // held by the owner
  REQUIRE_FALSE(sender.invalidate(reader.self_name(), {"doc"}, 0));  // the put's invalidation
  CHECK(**reader.get<users>("doc") == "v1");  // the owner's answer, before the store lands
  CHECK(reader.stats<users>().hot_cache_items == 0);
  REQUIRE(owner.put<users>("doc", "v2"));  // the store lands (and tells the reader again)
  CHECK(**reader.get<users>("doc") == "v2");
  // Once write_timeout has passed since the write, answers are kept again:
  // with no write, the first read fills the hot cache.
  c.db->set("other", "o");
  auto& other_reader = c.non_owner("other");
  CHECK(**other_reader.get<users>("other") == "o");
  CHECK(other_reader.stats<users>().hot_cache_items >= 1);
}

TEST_CASE("ring agreement for writes: a write from another ring is passed on once") {
  cluster3 c;
  peer_sender sender;
  c.db->set("doc", "v1");
  // Every node holds "doc": the owner in its main cache, the others as hot copies.
  for (auto& n : c.nodes) REQUIRE(**n->get<users>("doc") == "v1");
  auto held = [](const std::unique_ptr<node_engine>& n) {
    const auto s = n->stats<users>();
    return s.main_cache_items + s.hot_cache_items;
  };
  for (auto& n : c.nodes) REQUIRE(held(n) == 1);
  // An invalidation with ring version 0 (one passed on already) stays where it lands.
  REQUIRE_FALSE(sender.invalidate(c.nodes[0]->self_name(), {"doc"}, 0));
  CHECK(held(c.nodes[0]) == 0);
  CHECK(held(c.nodes[1]) == 1);
  CHECK(held(c.nodes[2]) == 1);
  // One from a ring that differs from the receiver's reaches every node it knows.
  REQUIRE_FALSE(sender.invalidate(c.nodes[1]->self_name(), {"doc"}, 12345));
  CHECK(held(c.nodes[1]) == 0);
  CHECK(eventually([&] { return held(c.nodes[2]) == 0; }));
}

namespace {

/// Counts log lines that contain a text; thread-safe.
struct line_counter {
  std::mutex mutex;
  std::map<std::string, int> counts;
  std::vector<std::string> texts;
  explicit line_counter(std::vector<std::string> t) : texts(std::move(t)) {}
  distcache::logger logger() {
    return [this](distcache::log_level, std::string_view line) {
      std::lock_guard lock(mutex);
      for (const auto& t : texts) {
        if (line.find(t) != std::string_view::npos) ++counts[t];
      }
    };
  }
  int operator[](const std::string& t) {
    std::lock_guard lock(mutex);
    return counts[t];
  }
};

}  // namespace

TEST_CASE("mutual TLS: 3 nodes form a ring; untrusted, expired and misnamed nodes are refused") {
  distcache::test::test_pki pki;
  pki.issue("node", "IP:127.0.0.1");
  pki.issue("stranger", "IP:127.0.0.1", "other-ca");
  pki.issue("expired", "IP:127.0.0.1", "ca", -1);
  pki.issue("misnamed", "IP:127.0.0.9");  // signed by the cluster's CA, for another address
  line_counter good_log({"refusing a TLS connection from 127.0.0.1", "TLS handshake failed",
                         "does not name 127.0.0.1"});
  config c = node_config();
  c.cluster.tls = pki.tls("node");
  c.log = good_log.logger();
  tls_cluster3 good(c);
  for (int i = 0; i < 30; ++i) good.db->set("k" + std::to_string(i), "v" + std::to_string(i));

  std::vector<std::unique_ptr<tls_node_engine>> hostile;
  for (const char* name : {"stranger", "expired", "misnamed"}) {
    config h = node_config();
    h.cluster.tls = pki.tls(name);
    h.log = [](distcache::log_level, std::string_view) {};
    users u;
    u.source.state = good.db;
    hostile.push_back(std::make_unique<tls_node_engine>(h, registry_discovery(good.reg), u));
    REQUIRE(hostile.back()->start());  // alone: its quorum is 1
  }
  // Every good node refuses the three hostile servers (their certificates do
  // not verify or do not name 127.0.0.1) and the stranger's and expired
  // node's client certificates; the misnamed node's requests fail the
  // identity check (403), so it never sees the good nodes either.
  CHECK(eventually([&] {
    for (auto& n : good.nodes) {
      if (n->peer_client_stats().tls_handshakes_failed < 3 ||
          n->peer_server_stats().tls_handshakes_failed < 2)
        return false;
    }
    return good_log["does not name 127.0.0.1"] >= 1;
  }));
  for (auto& n : good.nodes) CHECK(n->cluster_peers().size() == 2);
  for (auto& n : hostile) CHECK(n->cluster_peers().empty());
  // Gets never fail because of them: the good nodes serve each other, the
  // hostile ones load locally.
  for (int i = 0; i < 30; ++i) {
    const std::string key = "k" + std::to_string(i);
    for (auto& n : good.nodes) CHECK(**n->get<users>(key) == "v" + std::to_string(i));
    for (auto& n : hostile) CHECK(**n->get<users>(key) == "v" + std::to_string(i));
  }
  for (auto& n : good.nodes) CHECK(n->peer_server_stats().tls_handshakes >= 2);
  // Counted every time, logged once a minute: per address on the server
  // side (all of them are 127.0.0.1), per peer on the client side.
  CHECK(good_log["refusing a TLS connection from 127.0.0.1"] == 3);
  CHECK(good_log["TLS handshake failed"] == 9);
  CHECK(good_log["does not name 127.0.0.1"] <= 3);  // the misnamed node probes every 50 ms
}

TEST_CASE("mutual TLS: certificates reloaded under a steady get load fail no get") {
  distcache::test::test_pki pki;
  pki.issue("node", "IP:127.0.0.1");
  pki.issue("next", "IP:127.0.0.1");
  config c = node_config();
  c.cluster.tls = pki.tls("node");
  c.cluster.tls.reload_interval = 0s;  // on the call only
  tls_cluster3 good(c);
  constexpr int keys = 20000;
  for (int i = 0; i < keys; ++i) good.db->set("k" + std::to_string(i), "v");
  std::atomic<int> next{0};
  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> load;
  load.reserve(3);
  for (int t = 0; t < 3; ++t) {
    load.emplace_back([&] {
      // Every get a new key, so most go to their owner over TLS.
      for (int i = next++; i < keys && !stop.load(); i = next++) {
        if (good.nodes[static_cast<std::size_t>(i) % 3]->get<users>("k" + std::to_string(i))) {
          ++ok;
        } else {
          ++failed;
        }
      }
    });
  }
  CHECK(eventually([&] { return ok.load() >= 300; }));
  for (const char* ext : {".crt", ".key"}) {
    std::filesystem::copy_file(pki.path(std::string("next") + ext),
                               pki.path(std::string("node") + ext + ".new"));
    std::filesystem::rename(pki.path(std::string("node") + ext + ".new"),
                            pki.path(std::string("node") + ext));
  }
  for (auto& n : good.nodes) CHECK(n->reload_tls());
  const int at_reload = ok.load();
  CHECK(eventually([&] { return ok.load() >= at_reload + 300; }));
  stop = true;
  for (auto& t : load) t.join();
  CHECK(failed.load() == 0);
  for (auto& n : good.nodes) {
    CHECK(n->peer_server_stats().tls_reloads == 1);
    CHECK(n->peer_client_stats().tls_reloads == 1);
    CHECK(n->peer_client_stats().tls_handshakes_failed == 0);
  }
}

TEST_CASE("cluster.tls needs a transport with TLS, and the error says which") {
  distcache::test::test_pki pki;
  pki.issue("node", "IP:127.0.0.1");
  config c = node_config();
  c.cluster.tls = pki.tls("node");
  CHECK_THROWS_WITH_AS(
      node_engine(c, registry_discovery(), users{}),
      doctest::Contains("config.cluster.tls.enabled: true, but the engine's Transport policy has "
                        "no TLS; build the engine with policies<Discovery, transport::https> "
                        "(include <distcache/transport/https.hpp> and link OpenSSL)"),
      distcache::config_error);
  c.cluster.tls.private_key_file = pki.path("ca.key");  // not the certificate's key
  tls_node_engine bad(c, registry_discovery(), users{});
  CHECK(bad.start().error() == errc::invalid_config);
}
