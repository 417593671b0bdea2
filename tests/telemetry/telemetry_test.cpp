// Telemetry: W3C trace context, the spans of an operation across nodes
// (a recording sink, the seam a user's own policy plugs into), sampling,
// the checks of config.telemetry, and the OTLP/HTTP exporter proven against
// a receiver that decodes with the official OpenTelemetry protobuf
// definitions (tests/telemetry/otlp_receiver.js, Node.js), a collector that
// is down and one that never answers.
#include <distcache/distcache.hpp>
//
#include <doctest/doctest.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/json/parse.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support/http_fixture.hpp"
#include "support/keyspaces.hpp"
#include "support/processes.hpp"
#include "support/source_dir.hpp"
#include "support/sources.hpp"

using distcache::config;
using namespace std::chrono_literals;
namespace tel = distcache::telemetry;

namespace {

using users = distcache::test::users;

// ------------------------------------------------------------ recording sink

struct recorded_span {
  std::string instance;  // the node that recorded it
  tel::span_record span;
};

struct recording {
  std::mutex mutex;
  std::vector<recorded_span> spans;
  std::map<std::string, tel::sink::collect_fn> collectors;
  int started = 0;
  int stopped = 0;
  std::vector<recorded_span> copy() {
    std::lock_guard lock(mutex);
    return spans;
  }
};

recording& recorded() {
  static recording r;
  return r;
}

class recording_sink final : public tel::sink {
 public:
  void start(tel::node_identity self, collect_fn collect) override {
    std::lock_guard lock(recorded().mutex);
    self_ = self.instance;
    recorded().collectors[self_] = std::move(collect);
    ++recorded().started;
  }
  void stop() noexcept override {
    std::lock_guard lock(recorded().mutex);
    ++recorded().stopped;
  }
  void span(tel::span_record&& s) noexcept override {
    std::lock_guard lock(recorded().mutex);
    recorded().spans.push_back({self_, std::move(s)});
  }
  [[nodiscard]] tel::exporter_stats stats() const noexcept override { return {}; }

 private:
  std::string self_;
};

struct recording_policy {
  static std::unique_ptr<tel::sink> make(const distcache::telemetry_options& /*o*/,
                                         const distcache::logger& /*log*/) {
    return std::make_unique<recording_sink>();
  }
};

void reset_recording() {
  std::lock_guard lock(recorded().mutex);
  recorded().spans.clear();
  recorded().collectors.clear();
  recorded().started = recorded().stopped = 0;
}

using recorded_node = distcache::basic_engine<
    distcache::policies<distcache::discovery::in_process, distcache::transport::http,
                        distcache::protection::no_rate_limiter,
                        distcache::protection::no_circuit_breaker, recording_policy>,
    users>;
using solo_recorded_node = distcache::basic_engine<
    distcache::policies<distcache::discovery::standalone, distcache::transport::none,
                        distcache::protection::no_rate_limiter,
                        distcache::protection::no_circuit_breaker, recording_policy>,
    users>;
using otlp_node = distcache::basic_engine<
    distcache::policies<distcache::discovery::in_process, distcache::transport::http,
                        distcache::protection::no_rate_limiter,
                        distcache::protection::no_circuit_breaker, tel::otlp>,
    users>;
using otlp_solo_node = distcache::basic_engine<
    distcache::policies<distcache::discovery::standalone, distcache::transport::http,
                        distcache::protection::no_rate_limiter,
                        distcache::protection::no_circuit_breaker, tel::otlp>,
    users>;

config quiet_config() {
  config c;
  c.threads = 1;
  c.fetch_threads = 2;
  c.log = [](distcache::log_level, std::string_view) {};
  return c;
}

config cluster_config(double ratio = 1.0) {
  auto c = quiet_config();
  c.cluster.enabled = true;
  c.cluster.bind_address = "127.0.0.1";
  c.cluster.probe_interval = 50ms;
  c.cluster.discovery_interval = 50ms;
  c.cluster.join_retry_interval = 20ms;
  c.cluster.bootstrap_timeout = 30s;
  c.telemetry.emplace();
  c.telemetry->trace_sample_ratio = ratio;
  return c;
}

// A key of `owner`'s according to `asker`'s ring.
std::string key_owned_by(const std::string& owner, const auto& asker) {
  for (int i = 0; i < 10000; ++i) {
    auto k = "k" + std::to_string(i);
    if (asker.owner_of(k) == owner) return k;
  }
  FAIL("no key of " << owner);
  return {};
}

const recorded_span* find_span(const std::vector<recorded_span>& spans, std::string_view name,
                               std::string_view instance) {
  for (const auto& s : spans) {
    if (s.span.name == name && s.instance == instance) return &s;
  }
  return nullptr;
}

std::uint64_t get_count(const tel::metrics_snapshot& m, tel::operation op) {
  for (const auto& h : m.operations) {
    if (h.op == op && h.keyspace == "users") return h.count;
  }
  return 0;
}

}  // namespace

TEST_CASE("telemetry: traceparent values are parsed strictly and formatted as version 00") {
  const std::string good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  auto c = tel::parse_traceparent(good);
  REQUIRE(c);
  CHECK(tel::to_hex(c->trace_id) == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(tel::to_hex(c->span_id) == "00f067aa0ba902b7");
  CHECK(c->sampled());
  CHECK(tel::format_traceparent(*c) == good);
  auto unsampled =
      tel::parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  REQUIRE(unsampled);
  CHECK_FALSE(unsampled->sampled());
  // A later version may append fields; its first four are read.
  CHECK(tel::parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"));
  for (const char* bad : {
           "",
           "garbage",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  // 00 is exact
           "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",        // invalid version
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",        // upper case
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",        // zero trace
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",        // zero span
           "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",        // dash misplaced
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",        // not hex
           "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
       }) {
    CHECK_MESSAGE(!tel::parse_traceparent(bad), bad);
  }
}

TEST_CASE("telemetry: config.telemetry is checked, naming the field and value") {
  using otlp_engine = distcache::basic_engine<
      distcache::policies<distcache::discovery::standalone, distcache::transport::none,
                          distcache::protection::no_rate_limiter,
                          distcache::protection::no_circuit_breaker, tel::otlp>,
      users>;
  auto message = [](auto change) -> std::string {
    auto c = quiet_config();
    c.telemetry.emplace();
    change(*c.telemetry);
    try {
      otlp_engine e(c, users{});
    } catch (const distcache::config_error& e) {
      return e.what();
    }
    return "accepted";
  };
  using opts = distcache::telemetry_options;
  CHECK(message([](opts&) {}) == "accepted");
  CHECK(message([](opts& o) { o.otlp.endpoint = "http://[::1]:4318/prefix/"; }) == "accepted");
  CHECK(message([](opts& o) {
          o.otlp.endpoint = "https://collector:4318";
        }).find("config.telemetry.otlp.endpoint: must be http://") != std::string::npos);
  for (const char* bad : {"http://", "http://host:", "http://host:0", "http://host:65536",
                          "http://host:12ab", "collector:4318", "http://[::1"}) {
    CHECK_MESSAGE(message([&](opts& o) {
                    o.otlp.endpoint = bad;
                  }).find("config.telemetry.otlp.endpoint") != std::string::npos,
                  bad);
  }
  CHECK(message([](opts& o) {
          o.trace_sample_ratio = 1.5;
        }).find("config.telemetry.trace_sample_ratio: must be between 0 and 1, got 1.5") !=
        std::string::npos);
  CHECK(message([](opts& o) { o.trace_sample_ratio = -0.1; }).find("trace_sample_ratio") !=
        std::string::npos);
  CHECK(message([](opts& o) { o.service_name.clear(); }).find("config.telemetry.service_name") !=
        std::string::npos);
  CHECK(message([](opts& o) {
          o.otlp.export_interval = 0ms;
        }).find("config.telemetry.otlp.export_interval: must be > 0") != std::string::npos);
  CHECK(message([](opts& o) {
          o.otlp.timeout = -1ms;
        }).find("config.telemetry.otlp.timeout: must be > 0") != std::string::npos);
  CHECK(message([](opts& o) {
          o.otlp.max_queue_spans = 0;
        }).find("config.telemetry.otlp.max_queue_spans") != std::string::npos);
  CHECK(message([](opts& o) {
          o.otlp.max_queue_spans = 10;
          o.otlp.max_batch_spans = 11;
        })
            .find("config.telemetry.otlp.max_batch_spans: must be between 1 and max_queue_spans "
                  "(10), got 11") != std::string::npos);
  CHECK(message([](opts& o) {
          o.otlp.headers["bad name"] = "x";
        }).find("config.telemetry.otlp.headers: \"bad name\" is not an HTTP header name") !=
        std::string::npos);
  CHECK(message([](opts& o) {
          o.otlp.headers["x-key"] = "a\r\nInjected: 1";
        }).find("holds CR, LF or NUL") != std::string::npos);
  // Telemetry configured for an engine that cannot export it.
  auto c = quiet_config();
  c.telemetry.emplace();
  try {
    distcache::engine<users> e(c, users{});
    FAIL("accepted config.telemetry with telemetry::none");
  } catch (const distcache::config_error& e) {
    CHECK(std::string(e.what()).find("config.telemetry: set, but the engine's Telemetry policy "
                                     "is telemetry::none") != std::string::npos);
  }
}

TEST_CASE("telemetry: one get's spans across two nodes form one trace") {
  reset_recording();
  auto registry = std::make_shared<distcache::discovery::in_process::registry>();
  auto c = cluster_config(1.0);
  c.cluster.minimum_peers_quorum = 1;
  users ua;
  users ub;
  recorded_node a(c, distcache::discovery::in_process(registry), ua);
  recorded_node b(c, distcache::discovery::in_process(registry), ub);
  REQUIRE(a.start());
  REQUIRE(b.start());
  REQUIRE(distcache::test::eventually(
      [&] { return a.cluster_peers().size() == 1 && b.cluster_peers().size() == 1; }));
  const std::string key = key_owned_by(b.self_name(), a);
  ub.source.state->set(key, "value");
  reset_recording();  // spans of joining (none expected) and of the set-up are not looked at
  REQUIRE(**a.get<users>(key) == "value");
  REQUIRE(distcache::test::eventually([&] { return recorded().copy().size() >= 4; }));
  const auto spans = recorded().copy();
  const auto* get = find_span(spans, "distcache.get", a.self_name());
  const auto* client = find_span(spans, "distcache.peer.get", a.self_name());
  const auto* server = find_span(spans, "distcache.peer.serve", b.self_name());
  const auto* fetch = find_span(spans, "distcache.fetch", b.self_name());
  REQUIRE(get);
  REQUIRE(client);
  REQUIRE(server);
  REQUIRE(fetch);
  const auto trace = tel::to_hex(get->span.context.trace_id);
  for (const auto* s : {client, server, fetch}) {
    CHECK(tel::to_hex(s->span.context.trace_id) == trace);
  }
  CHECK(tel::to_hex(get->span.parent_id) == "0000000000000000");  // a root
  CHECK(client->span.parent_id == get->span.context.span_id);
  CHECK(server->span.parent_id == client->span.context.span_id);  // carried in traceparent
  CHECK(fetch->span.parent_id == server->span.context.span_id);
  CHECK(get->span.kind == tel::span_kind::internal);
  CHECK(client->span.kind == tel::span_kind::client);
  CHECK(server->span.kind == tel::span_kind::server);
  CHECK(client->span.peer == b.self_name());
  CHECK(server->span.peer == a.self_name());
  CHECK(get->span.keyspace == "users");
  CHECK(get->span.op == tel::operation::get);
  CHECK(get->span.start_unix_ns <= client->span.start_unix_ns);
  CHECK(client->span.end_unix_ns <= get->span.end_unix_ns);
  // Unix times: within a minute of now.
  const auto now_ns =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  CHECK(get->span.end_unix_ns <= now_ns + 60'000'000'000ULL);
  CHECK(get->span.end_unix_ns + 60'000'000'000ULL >= now_ns);
  // Writes: each request of the fan-out is a client span, continued on the peer.
  auto check_chain = [&](std::string_view root, std::string_view client_name,
                         std::string_view server_name) {
    const auto all = recorded().copy();
    const auto* r = find_span(all, root, a.self_name());
    const auto* c = find_span(all, client_name, a.self_name());
    const auto* sv = find_span(all, server_name, b.self_name());
    REQUIRE_MESSAGE(r, root);
    REQUIRE_MESSAGE(c, client_name);
    REQUIRE_MESSAGE(sv, server_name);
    CHECK(c->span.parent_id == r->span.context.span_id);
    CHECK(sv->span.parent_id == c->span.context.span_id);
    CHECK(sv->span.context.trace_id == r->span.context.trace_id);
    CHECK(c->span.kind == tel::span_kind::client);
    CHECK(sv->span.kind == tel::span_kind::server);
    CHECK(c->span.peer == b.self_name());
    CHECK_FALSE(c->span.error);
  };
  reset_recording();
  REQUIRE(a.put<users>(key, "newer"));  // B owns it: a set to B
  check_chain("distcache.put", "distcache.peer.set", "distcache.peer.serve_set");
  reset_recording();
  const std::string mine = key_owned_by(a.self_name(), a);
  REQUIRE(a.put<users>(mine, "here"));  // A owns it: B is told to drop it
  check_chain("distcache.put", "distcache.peer.invalidate", "distcache.peer.serve_invalidate");
  reset_recording();
  REQUIRE(a.remove<users>(key));
  check_chain("distcache.remove", "distcache.peer.remove", "distcache.peer.serve_remove");
  // A miss the source does not know ends as not_found, which is no error.
  reset_recording();
  const std::string missing = key_owned_by(b.self_name(), a) + "-none";
  CHECK(a.get<users>(missing).error() == distcache::errc::not_found);
  for (const auto& s : recorded().copy()) CHECK_FALSE(s.span.error);
  // A failing source makes the fetch and the get errors.
  reset_recording();
  ub.source.state->fail = true;
  std::string fkey;
  for (int i = 0; i < 10000 && fkey.empty(); ++i) {
    auto k = "fail" + std::to_string(i);
    if (a.owner_of(k) == b.self_name()) fkey = k;
  }
  CHECK(a.get<users>(fkey).error() == distcache::errc::data_source_failed);
  const auto failed = recorded().copy();
  const auto* failed_fetch = find_span(failed, "distcache.fetch", b.self_name());
  const auto* failed_get = find_span(failed, "distcache.get", a.self_name());
  REQUIRE(failed_fetch);
  REQUIRE(failed_get);
  CHECK(failed_fetch->span.error);
  CHECK(failed_get->span.error);
  CHECK(!failed_get->span.status_message.empty());
  CHECK(a.stop());
  CHECK(b.stop());
  CHECK(recorded().stopped == 2);
}

TEST_CASE("telemetry: sampling, a parent set by the application, and the histograms") {
  reset_recording();
  auto c = quiet_config();
  c.telemetry.emplace();
  c.telemetry->trace_sample_ratio = 0.0;  // no new traces
  users u;
  u.source.state->set("a", "alpha");
  solo_recorded_node n(c, u);
  REQUIRE(n.start());
  for (int i = 0; i < 5; ++i) REQUIRE(n.get<users>("a"));
  CHECK(recorded().copy().empty());
  // A sampled parent is followed whatever the ratio.
  auto parent = *tel::parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  {
    const tel::scoped_parent scope(parent);
    REQUIRE(n.get<users>("a"));
    REQUIRE(n.put<users>("b", "beta"));
  }
  auto spans = recorded().copy();
  REQUIRE(spans.size() == 2);
  for (const auto& s : spans) {
    CHECK(tel::to_hex(s.span.context.trace_id) == "0af7651916cd43dd8448eb211c80319c");
    CHECK(tel::to_hex(s.span.parent_id) == "b7ad6b7169203331");
  }
  CHECK(spans[0].span.name == "distcache.get");
  CHECK(spans[1].span.name == "distcache.put");
  // An unsampled parent is followed too: nothing is recorded.
  parent.flags = 0;
  {
    const tel::scoped_parent scope(parent);
    REQUIRE(n.get<users>("a"));
  }
  CHECK(recorded().copy().size() == 2);
  // Outside the scope, the thread has no parent again.
  CHECK_FALSE(tel::scoped_parent::current().valid());
  // Every operation was measured, traced or not.
  tel::sink::collect_fn collect;
  {
    std::lock_guard lock(recorded().mutex);
    collect = recorded().collectors.at("self");
  }
  const auto m = collect();
  CHECK(get_count(m, tel::operation::get) == 7);
  CHECK(get_count(m, tel::operation::put) == 1);
  CHECK(get_count(m, tel::operation::fetch) == 1);  // the first get's miss
  REQUIRE(n.remove_many<users>(std::vector<std::string>{"a", "b"}));
  CHECK(get_count(collect(), tel::operation::remove_many) == 1);
  CHECK(get_count(collect(), tel::operation::remove) == 0);
  CHECK(n.stop());
}

TEST_CASE(
    "telemetry: a malformed traceparent from a peer starts a new trace; a valid one is "
    "continued") {
  reset_recording();
  auto registry = std::make_shared<distcache::discovery::in_process::registry>();
  auto c = cluster_config(1.0);
  c.cluster.minimum_peers_quorum = 1;
  users u;
  u.source.state->set("k", "v");
  recorded_node n(c, distcache::discovery::in_process(registry), u);
  REQUIRE(n.start());
  const auto name = n.self_name();
  const auto port = static_cast<std::uint16_t>(std::stoi(name.substr(name.rfind(':') + 1)));
  auto ask = [&](std::string_view traceparent) {
    std::string headers = "DC-From: raw\r\nDC-Cluster: distcache\r\n";
    if (!traceparent.empty()) headers += "traceparent: " + std::string(traceparent) + "\r\n";
    auto r = raw_exchange(port, ks_request("get", key_list({"k"}), "users", headers));
    REQUIRE(r);
    CHECK(r->status == 200);
  };
  ask("00-zz-not-a-trace");
  ask(std::string(200, 'x'));
  ask("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  auto spans = recorded().copy();
  std::vector<const recorded_span*> serves;
  for (const auto& s : spans) {
    if (s.span.name == "distcache.peer.serve") serves.push_back(&s);
  }
  REQUIRE(serves.size() == 3);
  CHECK(tel::to_hex(serves[0]->span.parent_id) == "0000000000000000");
  CHECK(tel::to_hex(serves[1]->span.parent_id) == "0000000000000000");
  CHECK(serves[0]->span.context.trace_id != serves[1]->span.context.trace_id);
  CHECK(tel::to_hex(serves[2]->span.context.trace_id) == "0af7651916cd43dd8448eb211c80319c");
  CHECK(tel::to_hex(serves[2]->span.parent_id) == "b7ad6b7169203331");
  CHECK(serves[0]->span.peer == "raw");
  CHECK(n.stop());
}

namespace {

/// The receiver of tests/telemetry: a Node.js process.
struct otlp_receiver {
  std::string node = distcache::test::find_program("node");
  std::string dir = std::string(distcache::test::source_dir()) + "/telemetry";
  bool available() const {
    return !node.empty() &&
           std::filesystem::exists(dir + "/node_modules/@opentelemetry/otlp-transformer");
  }
  distcache::test::temp_file port_file{""};
  distcache::test::temp_file log{""};
  distcache::test::child_process process;
  std::uint16_t port = 0;

  void start() {
    std::filesystem::remove(port_file.path());
    process = distcache::test::child_process({node, dir + "/otlp_receiver.js", port_file.path()},
                                             log.path());
    REQUIRE(distcache::test::eventually(
        [&] {
          std::ifstream in(port_file.path());
          int p = 0;
          if (in >> p && p > 0) port = static_cast<std::uint16_t>(p);
          return port != 0;
        },
        30s));
  }
  boost::json::value summary() const {
    auto r = raw_exchange(port, "GET /summary HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(r);
    REQUIRE(r->status == 200);
    return boost::json::parse(r->body);
  }
};

}  // namespace

TEST_CASE("telemetry: OTLP/HTTP export decodes with the OpenTelemetry protobuf definitions") {
  otlp_receiver receiver;
  if (!receiver.available()) {
    MESSAGE(
        "node or tests/telemetry/node_modules missing (scripts/deps installs them): the OTLP "
        "export is not decoded");
    return;
  }
  receiver.start();
  auto registry = std::make_shared<distcache::discovery::in_process::registry>();
  auto c = cluster_config(1.0);
  c.cluster.minimum_peers_quorum = 1;
  c.telemetry->service_name = "otlp-test";
  c.telemetry->otlp.endpoint = "http://127.0.0.1:" + std::to_string(receiver.port);
  c.telemetry->otlp.export_interval = 200ms;
  c.telemetry->otlp.headers["X-Test-Key"] = "secret";
  users ua;
  users ub;
  otlp_node a(c, distcache::discovery::in_process(registry), ua);
  otlp_node b(c, distcache::discovery::in_process(registry), ub);
  REQUIRE(a.start());
  REQUIRE(b.start());
  REQUIRE(distcache::test::eventually(
      [&] { return a.cluster_peers().size() == 1 && b.cluster_peers().size() == 1; }));
  const std::string remote = key_owned_by(b.self_name(), a);
  const std::string local = key_owned_by(a.self_name(), a);
  ub.source.state->set(remote, "from-b");
  ua.source.state->set(local, "from-a");
  REQUIRE(**a.get<users>(remote) == "from-b");
  for (int i = 0; i < 4; ++i) REQUIRE(**a.get<users>(local) == "from-a");
  CHECK(a.stop());  // flushes: the last spans and the final metrics
  CHECK(b.stop());
  CHECK(a.telemetry_stats().spans_dropped == 0);
  CHECK(a.telemetry_stats().exports_failed == 0);
  CHECK(a.telemetry_stats().spans_exported >= 6);  // 5 gets, 1 peer get, 1 fetch (+ warm-up)
  CHECK(b.telemetry_stats().spans_exported >= 2);  // serve, fetch

  const auto s = receiver.summary();
  CHECK_MESSAGE(s.at("errors").as_array().empty(), boost::json::serialize(s.at("errors")));
  for (const auto& ct : s.at("content_types").as_array()) {
    CHECK(ct.as_string() == "application/x-protobuf");
  }
  // One trace spans the nodes: get → peer.get (A) → peer.serve → fetch (B).
  const auto& spans = s.at("spans").as_array();
  // The span `name` recorded by `instance`, with that parent or that id.
  auto find = [&](std::string_view name, std::string_view instance, std::string_view parent = {},
                  std::string_view id = {}) -> const boost::json::object* {
    for (const auto& v : spans) {
      const auto& o = v.as_object();
      if (o.at("name").as_string() != name) continue;
      if (o.at("resource").at("service.instance.id").as_string() != instance) continue;
      if (!parent.empty() && o.at("parent_span_id").as_string() != parent) continue;
      if (!id.empty() && o.at("span_id").as_string() != id) continue;
      return &o;
    }
    return nullptr;
  };
  const boost::json::object* client = find("distcache.peer.get", a.self_name());
  REQUIRE(client);
  const std::string trace(client->at("trace_id").as_string());
  const std::string client_id(client->at("span_id").as_string());
  const auto* get =
      find("distcache.get", a.self_name(), {}, client->at("parent_span_id").as_string());
  const auto* server = find("distcache.peer.serve", b.self_name(), client_id);
  REQUIRE(get);
  REQUIRE(server);
  const auto* fetch = find("distcache.fetch", b.self_name(), server->at("span_id").as_string());
  REQUIRE(fetch);
  for (const auto* o : {get, server, fetch}) CHECK(o->at("trace_id").as_string() == trace);
  CHECK(trace.size() == 32);
  CHECK(get->at("parent_span_id").as_string() == "");
  CHECK(client->at("kind").to_number<int>() == 3);  // SPAN_KIND_CLIENT
  CHECK(server->at("kind").to_number<int>() == 2);  // SPAN_KIND_SERVER
  CHECK(get->at("attributes").at("distcache.operation").as_string() == "get");
  CHECK(get->at("attributes").at("distcache.keyspace").as_string() == "users");
  CHECK(client->at("attributes").at("distcache.peer").as_string() == b.self_name());
  CHECK(get->at("resource").at("service.name").as_string() == "otlp-test");
  CHECK(get->at("scope").as_string() == "distcache");
  CHECK(get->at("end").to_number<double>() >= get->at("start").to_number<double>());

  // Metrics: names, attribute keys, and A's final count of gets.
  std::map<std::string, const boost::json::object*> last;  // name → A's last export of it
  for (const auto& v : s.at("metrics").as_array()) {
    const auto& o = v.as_object();
    if (o.at("resource").at("service.instance.id").as_string() == a.self_name()) {
      last[std::string(o.at("name").as_string())] = &o;
    }
  }
  for (const char* name : {"distcache.operation.duration", "distcache.operations",
                           "distcache.operation.errors", "distcache.cache.hits",
                           "distcache.cache.misses", "distcache.cache.bytes", "distcache.peers"}) {
    CHECK_MESSAGE(last.count(name) == 1, name);
  }
  REQUIRE(last.count("distcache.operation.duration") == 1);
  const auto& duration = *last["distcache.operation.duration"];
  CHECK(duration.at("type").as_string() == "histogram");
  CHECK(duration.at("unit").as_string() == "s");
  CHECK(duration.at("temporality").to_number<int>() == 2);  // cumulative
  bool found_get = false;
  for (const auto& p : duration.at("points").as_array()) {
    const auto& attrs = p.at("attributes").as_object();
    CHECK(attrs.contains("distcache.operation"));
    CHECK(attrs.contains("distcache.keyspace"));
    if (attrs.at("distcache.operation").as_string() == "get") {
      found_get = true;
      CHECK(p.at("count").to_number<int>() == 5);
      CHECK(p.at("bucket_counts").as_array().size() == p.at("bounds").as_array().size() + 1);
    }
  }
  CHECK(found_get);
  REQUIRE(last.count("distcache.operations") == 1);
  CHECK(last["distcache.operations"]->at("monotonic").as_bool());
  REQUIRE(last.count("distcache.cache.hits") == 1);
  const auto& hits = last["distcache.cache.hits"]->at("points").as_array();
  REQUIRE(hits.size() == 1);
  CHECK(hits.at(0).at("value").to_number<int>() == 3);  // the local key: 1 miss, then 3 hits
}

TEST_CASE(
    "telemetry: a collector that is down or never answers costs gets nothing; spans are "
    "dropped and counted") {
  using node = otlp_solo_node;
  users u;
  u.source.state->set("a", "alpha");
  SUBCASE("down") {
    auto c = quiet_config();
    c.admin.enabled = true;
    c.telemetry.emplace();
    c.telemetry->trace_sample_ratio = 1.0;
    c.telemetry->otlp.endpoint =
        "http://127.0.0.1:" + std::to_string(distcache::test::free_loopback_port());
    c.telemetry->otlp.max_queue_spans = 8;
    c.telemetry->otlp.max_batch_spans = 4;
    c.telemetry->otlp.export_interval = 20ms;
    node n(c, u);
    REQUIRE(n.start());
    for (int i = 0; i < 200; ++i) REQUIRE(**n.get<users>("a") == "alpha");
    CHECK(distcache::test::eventually([&] { return n.telemetry_stats().exports_failed >= 1; }));
    const auto page =
        raw_exchange(n.admin_port(), "GET /_distcache/admin/metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(page);
    CHECK(page->body.find("distcache_telemetry_spans_dropped_total ") != std::string::npos);
    CHECK(page->body.find("distcache_operation_duration_seconds_count{keyspace=\"users\","
                          "operation=\"get\"} 200") != std::string::npos);
    CHECK(n.stop());
    const auto st = n.telemetry_stats();
    CHECK(st.spans_exported == 0);
    CHECK(st.spans_dropped >= 200);  // every get's span (and the first one's fetch)
  }
  SUBCASE("never answers") {
    boost::asio::io_context io;
    boost::asio::ip::tcp::acceptor acceptor(
        io, {boost::asio::ip::make_address("127.0.0.1"), 0});  // accepts (backlog), never reads
    auto c = quiet_config();
    c.telemetry.emplace();
    c.telemetry->trace_sample_ratio = 1.0;
    c.telemetry->otlp.endpoint =
        "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port());
    c.telemetry->otlp.export_interval = 20ms;
    c.telemetry->otlp.timeout = 100ms;
    node n(c, u);
    REQUIRE(n.start());
    for (int i = 0; i < 50; ++i) REQUIRE(**n.get<users>("a") == "alpha");
    CHECK(distcache::test::eventually([&] { return n.telemetry_stats().exports_failed >= 2; }));
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(n.stop());
    // The final flush is bounded by the timeout per request.
    CHECK(std::chrono::steady_clock::now() - t0 < 10s);
    CHECK(n.telemetry_stats().spans_exported == 0);
  }
}
