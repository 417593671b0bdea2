#include <distcache/config.hpp>
//
#include <doctest/doctest.h>

#include <distcache/transport/http.hpp>
#include <string>

#include "support/keyspaces.hpp"

using distcache::config;
using distcache::config_error;
using distcache::test::lengths;
using distcache::test::test_engine;
using distcache::test::users;
using namespace std::chrono_literals;

namespace {
// The what() of the config_error the engine constructor throws, or "" when
// it accepts the configuration.
std::string rejection(const config& c, users u = {}, lengths l = {}) {
  try {
    test_engine e{c, std::move(u), std::move(l)};
    return {};
  } catch (const config_error& e) {
    CHECK(e.code() == distcache::errc::invalid_config);
    return e.what();
  }
}
bool mentions(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}
}  // namespace

TEST_CASE("a default configuration is valid") { CHECK(rejection(config{}).empty()); }

TEST_CASE("engine-level fields are validated and the error names field and value") {
  config c;
  c.read_timeout = 0s;
  CHECK(mentions(rejection(c), "config.read_timeout: must be > 0, got 0s"));
  c = {};
  c.write_timeout = -5ms;
  CHECK(mentions(rejection(c), "config.write_timeout: must be > 0, got -5ms"));
  c = {};
  c.default_ttl = -1s;
  CHECK(mentions(rejection(c), "config.default_ttl: must be >= 0, got -1s"));
  c = {};
  c.max_key_bytes = 0;
  CHECK(mentions(rejection(c), "config.max_key_bytes"));
  c.max_key_bytes = 70000;
  CHECK(mentions(rejection(c), "70000"));
  c = {};
  c.threads = 5000;
  CHECK(mentions(rejection(c), "config.threads"));
  c = {};
  c.fetch_threads = 5000;
  CHECK(mentions(rejection(c), "config.fetch_threads"));
  c = {};
  c.spin_wait = -1us;
  CHECK(mentions(rejection(c), "config.spin_wait: must be between 0 and 10ms, got -1us"));
  c = {};
  c.spin_wait = 11ms;
  CHECK(mentions(rejection(c), "config.spin_wait: must be between 0 and 10ms, got 11ms"));
  c = config{};
  c.io_spin = -1us;
  CHECK(mentions(rejection(c), "config.io_spin: must be between 0 and 10ms, got -1us"));
  c.io_spin = 11ms;
  CHECK(mentions(rejection(c), "config.io_spin: must be between 0 and 10ms, got 11ms"));
  c.io_spin = 10ms;
  CHECK_FALSE(mentions(rejection(c), "io_spin"));
  for (const char* bad : {"", "has space", "a/b", "ünï"}) {
    c = {};
    c.cluster.enabled = true;
    c.cluster.name = bad;
    CHECK_MESSAGE(mentions(rejection(c), "config.cluster.name: must be 1-64 characters"), bad);
  }
  c = {};
  c.cluster.enabled = true;
  c.cluster.name = std::string(65, 'a');
  CHECK(mentions(rejection(c), "config.cluster.name"));
  c.cluster.name = "prod-eu_1.cache";
  CHECK_FALSE(mentions(rejection(c), "config.cluster.name"));
}

TEST_CASE("overrides for a keyspace the engine does not hold are rejected by name") {
  config c;
  c.keyspaces["orders"].max_bytes = 10;
  CHECK(mentions(rejection(c), "'orders' is not one of this engine's keyspaces"));
}

TEST_CASE("per-keyspace overrides are validated and name the keyspace, field and value") {
  config c;
  c.keyspaces["users"].max_bytes = 0;
  CHECK(mentions(rejection(c), "keyspace 'users': options.max_bytes: must be > 0, got 0"));
  c = {};
  c.keyspaces["lengths"].read_timeout = -1s;
  CHECK(mentions(rejection(c), "keyspace 'lengths': options.read_timeout: must be > 0, got -1s"));
  c = {};
  c.keyspaces["users"].write_timeout = 0s;
  CHECK(mentions(rejection(c), "keyspace 'users': options.write_timeout"));
  c = {};
  c.keyspaces["users"].default_ttl = -2s;
  CHECK(mentions(rejection(c), "keyspace 'users': options.default_ttl: must be >= 0, got -2s"));
  c = {};
  c.keyspaces["users"].negative_ttl = -1s;
  CHECK(mentions(rejection(c), "keyspace 'users': options.negative_ttl: must be >= 0, got -1s"));
  c = {};
  c.keyspaces["users"].refresh_after = -3s;
  CHECK(mentions(rejection(c), "keyspace 'users': options.refresh_after: must be >= 0, got -3s"));
  c = {};
  c.keyspaces["lengths"].max_stale = -1ms;
  CHECK(mentions(rejection(c), "keyspace 'lengths': options.max_stale: must be >= 0, got -1ms"));
  c = {};
  c.keyspaces["users"].fetch_batch_keys = 0;
  CHECK(mentions(rejection(c),
                 "keyspace 'users': options.fetch_batch_keys: must be between 1 and 4096, got 0"));
  c = {};
  c.keyspaces["users"].fetch_batch_keys = 5000;
  CHECK(mentions(rejection(c), "options.fetch_batch_keys: must be between 1 and 4096, got 5000"));
  c = {};
  c.keyspaces["users"].fetch_batch_wait = -1us;
  CHECK(mentions(rejection(c),
                 "keyspace 'users': options.fetch_batch_wait: must be between 0 and 1s, got -1us"));
  c = {};
  c.keyspaces["users"].fetch_batch_wait = 2s;
  CHECK(mentions(rejection(c), "options.fetch_batch_wait: must be between 0 and 1s, got 2s"));
  c = {};
  c.warmup.concurrency = 0;
  CHECK(mentions(rejection(c), "config.warmup.concurrency: must be between 1 and 1024, got 0"));
  c = {};
  c.warmup.min_hits = 16;
  CHECK(mentions(rejection(c), "config.warmup.min_hits: must be between 1 and 15, got 16"));
  c = {};
  c.warmup.max_hot_keys = 100001;
  CHECK(mentions(rejection(c), "config.warmup.max_hot_keys: must be at most 100000"));
  c = {};
  c.keyspaces["users"].warmup = distcache::warmup_options{};
  c.keyspaces["users"].warmup->timeout = 0s;
  CHECK(mentions(rejection(c), "keyspace 'users': options.warmup.timeout: must be > 0, got 0"));
  c = {};
  c.keyspaces["users"].hot_max_bytes = -1;
  CHECK(mentions(rejection(c), "keyspace 'users': options.hot_max_bytes"));
  c = {};
  c.keyspaces["users"].shards = 1000;
  CHECK(mentions(rejection(c), "keyspace 'users': options.shards"));
  c = {};
  c.keyspaces["users"].warm_keys = std::vector<std::string>{"ok", ""};
  CHECK(mentions(rejection(c), "keyspace 'users': options.warm_keys"));
}

TEST_CASE("a keyspace definition with a non-positive budget is rejected") {
  users u;
  u.max_bytes = -1;
  CHECK(mentions(rejection(config{}, u), "keyspace 'users': max_bytes: must be > 0, got -1"));
}

TEST_CASE("an override replaces the keyspace's own budget") {
  users u;
  u.max_bytes = 0;  // invalid alone, but overridden
  config c;
  c.keyspaces["users"].max_bytes = 1 << 20;
  CHECK(rejection(c, u).empty());
}

TEST_CASE("durations in messages use the largest exact unit") {
  CHECK(distcache::detail::format_duration(1500ms) == "1500ms");
  CHECK(distcache::detail::format_duration(2s) == "2s");
  CHECK(distcache::detail::format_duration(3us) == "3us");
  CHECK(distcache::detail::format_duration(7ns) == "7ns");
}

TEST_CASE("cluster options are validated only when the cluster is enabled") {
  config c;
  c.cluster.virtual_nodes = 0;
  CHECK(rejection(c).empty());  // ignored while disabled
  c.cluster.enabled = true;
  CHECK(mentions(rejection(c), "config.cluster.virtual_nodes: must be between 1 and 4096, got 0"));
  c.cluster = {};
  c.cluster.enabled = true;
  c.cluster.minimum_peers_quorum = 0;
  CHECK(mentions(rejection(c), "config.cluster.minimum_peers_quorum: must be >= 1"));
  c.cluster = {};
  c.cluster.enabled = true;
  c.cluster.max_join_attempts = 0;
  CHECK(mentions(rejection(c), "config.cluster.max_join_attempts"));
  c.cluster = {};
  c.cluster.enabled = true;
  c.cluster.probe_interval = 0s;
  CHECK(mentions(rejection(c), "config.cluster.probe_interval: must be > 0, got 0s"));
  c.cluster = {};
  c.cluster.enabled = true;
  c.cluster.failure_threshold = 0;
  CHECK(mentions(rejection(c), "config.cluster.failure_threshold"));
  c.cluster = {};
  c.cluster.enabled = true;
  c.cluster.bootstrap_timeout = -1s;
  CHECK(mentions(rejection(c), "config.cluster.bootstrap_timeout"));
  c.cluster = {};
  c.cluster.enabled = true;
  c.cluster.bind_address.clear();
  CHECK(mentions(rejection(c), "config.cluster.bind_address"));
  c.cluster = {};
  c.cluster.enabled = true;
  c.cluster.max_inflight_bytes = 0;
  CHECK(mentions(rejection(c), "config.cluster.max_inflight_bytes: must be >= 1, got 0"));
  c.cluster = {};
  c.cluster.enabled = true;
  c.cluster.max_connections_per_address = 0;
  CHECK(mentions(rejection(c), "config.cluster.max_connections_per_address: must be >= 1, got 0"));
  c.cluster = {};
  c.cluster.enabled = true;
  c.cluster.write_memory = 0s;
  CHECK(mentions(rejection(c), "config.cluster.write_memory: must be > 0, got 0s"));
  c.cluster = {};
  c.cluster.enabled = true;
  c.cluster.write_memory_writes = 0;
  CHECK(mentions(rejection(c), "config.cluster.write_memory_writes: must be >= 1, got 0"));
  c.cluster = {};
  c.cluster.enabled = true;
  c.cluster.max_coalesced_keys = 0;
  CHECK(mentions(rejection(c), "config.cluster.max_coalesced_keys: must be in [1, 1000], got 0"));
  c.cluster.max_coalesced_keys = 1001;
  CHECK(
      mentions(rejection(c), "config.cluster.max_coalesced_keys: must be in [1, 1000], got 1001"));
  c.cluster = {};
  c.cluster.enabled = true;
  c.cluster.coalesce_slow_after = -std::chrono::milliseconds(3);
  CHECK(mentions(rejection(c), "config.cluster.coalesce_slow_after: must be >= 0, got -3ms"));
  c.cluster.coalesce_slow_after = {};  // 0 is valid: requests count until they complete
  CHECK_FALSE(mentions(rejection(c), "coalesce_slow_after"));
}

TEST_CASE("a cluster node whose bind address is not numeric fails start with a clear error") {
  config c;
  c.threads = 1;
  c.cluster.enabled = true;
  c.cluster.bind_address = "not-an-address";
  using http_engine = distcache::basic_engine<
      distcache::policies<distcache::discovery::standalone, distcache::transport::http>, users,
      lengths>;
  http_engine e{c, users{}, lengths{}};
  auto r = e.start();
  REQUIRE(r.has_error());
  CHECK(e.get<users>("k").error() == distcache::errc::not_started);
}

TEST_CASE("an engine without a transport refuses cluster.enabled at construction") {
  config c;
  c.cluster.enabled = true;
  // test_engine has the default policies: discovery::standalone, so transport::none.
  CHECK(mentions(rejection(c),
                 "config.cluster.enabled: true, but the engine's Transport policy "
                 "is transport::none"));
}
