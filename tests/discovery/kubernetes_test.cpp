// discovery::kubernetes against an HTTPS server started by the test (Beast
// over Asio SSL, a CA and certificate made with the openssl command) that
// answers the pod API paths with the JSON shapes of the API server: pages,
// pods not ready or without an IP, 401, 403, 500, malformed JSON, a slow
// answer, certificates that must be refused, watch streams; and three
// engines that form one ring from it.
#include <distcache/discovery/kubernetes.hpp>
//
#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <boost/asio/ssl/error.hpp>
#include <chrono>
#include <distcache/engine.hpp>
#include <distcache/transport/http.hpp>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support/keyspaces.hpp"
#include "support/kubernetes_api.hpp"
#include "support/processes.hpp"
#include "support/sources.hpp"

using distcache::config;
using distcache::discovery::kubernetes;
using distcache::discovery::kubernetes_errc;
using distcache::discovery::kubernetes_options;
using distcache::test::eventually;
using distcache::test::fake_kubernetes_api;
using namespace std::chrono_literals;

namespace {

/// What makes a pod a peer or not.
struct pod_spec {
  std::string name;
  std::string ip;
  int port = 7001;
  std::string phase = "Running";
  bool ready = true;
  std::string port_name = "peer";
  bool deleting = false;
};

std::string pod_json(const pod_spec& p, const std::string& version = "1") {
  std::string j = R"({"metadata":{"name":")" + p.name + R"(","namespace":"cache-ns",)" +
                  R"("resourceVersion":")" + version + R"(","labels":{"app":"cache"})";
  if (p.deleting) j += R"(,"deletionTimestamp":"2026-12-01T00:00:00Z")";
  j += R"(},"spec":{"containers":[{"name":"cache","ports":[{"name":"metrics","containerPort":9090,)"
       R"("protocol":"TCP"},{"name":")" +
       p.port_name + R"(","containerPort":)" + std::to_string(p.port) +
       R"(,"protocol":"TCP"}]}]},"status":{"phase":")" + p.phase +
       R"(","conditions":[{"type":"PodScheduled","status":"True"},{"type":"Ready","status":")" +
       (p.ready ? "True" : "False") + R"("}])";
  if (!p.ip.empty()) j += R"(,"podIP":")" + p.ip + R"(","podIPs":[{"ip":")" + p.ip + R"("}])";
  return j + "}}";
}

std::string pod_list_json(const std::vector<pod_spec>& pods, const std::string& version = "100",
                          const std::string& next = "") {
  std::string j =
      R"({"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":")" + version + "\"";
  if (!next.empty()) j += R"(,"continue":")" + next + "\"";
  j += R"(},"items":[)";
  for (std::size_t i = 0; i < pods.size(); ++i) j += (i ? "," : "") + pod_json(pods[i]);
  return j + "]}";
}

std::string event_json(const std::string& type, const pod_spec& p, const std::string& version) {
  return R"({"type":")" + type + R"(","object":)" + pod_json(p, version) + "}";
}

std::string status_json(int code, const std::string& reason, const std::string& message) {
  return R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":")" +
         message + R"(","reason":")" + reason + R"(","code":)" + std::to_string(code) + "}";
}

/// A PKI, a token file and the options that reach `api` with them.
struct k8s_env {
  distcache::test::test_pki pki;
  distcache::test::temp_file token{"tok-1\n"};

  [[nodiscard]] kubernetes_options options(const fake_kubernetes_api& api) const {
    kubernetes_options o;
    o.api_server = api.address();
    o.label_selector = "app=cache";
    o.port_name = "peer";
    o.pod_namespace = "cache-ns";
    o.token_file = token.path();
    o.ca_file = pki.path("ca.crt");
    o.timeout = 2s;
    o.log = [](distcache::log_level, std::string_view) {};
    return o;
  }
};

fake_kubernetes_api::reply watch_stream() {
  fake_kubernetes_api::reply r;
  r.stream = true;
  return r;
}

fake_kubernetes_api::reply never_answer() {
  fake_kubernetes_api::reply r;
  r.slow = true;
  return r;
}

/// Answers every listing with `body` (200) when the token is right.
fake_kubernetes_api::handler answer(std::string body) {
  return [body = std::move(body)](const std::string&, const std::string& auth) {
    if (auth != "Bearer tok-1") return fake_kubernetes_api::reply{401, status_json(401, "", "")};
    return fake_kubernetes_api::reply{200, body};
  };
}

}  // namespace

TEST_CASE("kubernetes: options are checked, naming the field") {
  kubernetes_options o;
  o.port_name = "peer";
  auto message = [](const kubernetes_options& opts) {
    try {
      kubernetes k(opts);
    } catch (const distcache::config_error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  CHECK(message(o).find("kubernetes_options.label_selector: required") != std::string::npos);
  o.label_selector = "app=cache";
  o.port_name = "";
  CHECK(message(o).find("kubernetes_options.port_name") != std::string::npos);
  o.port_name = "a-port-name-too-long";
  CHECK(message(o).find("kubernetes_options.port_name") != std::string::npos);
  o.port_name = "peer";
  o.api_server = "no-port";
  CHECK(message(o).find(R"(kubernetes_options.api_server: expected "host:port")") !=
        std::string::npos);
  o.api_server = "";
  o.timeout = 0s;
  CHECK(message(o).find("kubernetes_options.timeout") != std::string::npos);
  o.timeout = 1s;
  o.page_size = 0;
  CHECK(message(o).find("kubernetes_options.page_size: must be >= 1, got 0") != std::string::npos);
  o.page_size = 10;
  o.watch_timeout = 10ms;
  CHECK(message(o).find("kubernetes_options.watch_timeout") != std::string::npos);
  o.watch_timeout = 1s;
  CHECK(message(o) == "accepted");
  kubernetes unset;
  CHECK(unset.initialize().error() == distcache::errc::invalid_config);
}

TEST_CASE("kubernetes: the in-cluster environment and files, each missing one a clear error") {
  k8s_env env;
  fake_kubernetes_api api(env.pki, answer(pod_list_json({{"a", "127.0.0.1"}})));
  auto o = env.options(api);
  SUBCASE("no API server: not_in_cluster") {
    o.api_server.clear();
    ::unsetenv("KUBERNETES_SERVICE_HOST");
    kubernetes k(o);
    CHECK(k.initialize().error() == kubernetes_errc::not_in_cluster);
    CHECK(k.last_error().find("KUBERNETES_SERVICE_HOST") != std::string::npos);
  }
  SUBCASE("KUBERNETES_SERVICE_HOST/PORT and the namespace file, as in a pod") {
    o.api_server.clear();
    o.pod_namespace.clear();
    distcache::test::temp_file ns("cache-ns\n");
    o.namespace_file = ns.path();
    const auto colon = api.address().rfind(':');
    ::setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
    ::setenv("KUBERNETES_SERVICE_PORT", api.address().substr(colon + 1).c_str(), 1);
    kubernetes k(o);
    REQUIRE(k.initialize());
    ::unsetenv("KUBERNETES_SERVICE_HOST");
    ::unsetenv("KUBERNETES_SERVICE_PORT");
    CHECK(*k.discover_peers() == std::vector<std::string>{"127.0.0.1:7001"});
    CHECK(api.targets().back().starts_with("/api/v1/namespaces/cache-ns/pods?"));
  }
  SUBCASE("no namespace file") {
    o.pod_namespace.clear();
    o.namespace_file = "/nonexistent/namespace";
    kubernetes k(o);
    CHECK(k.initialize().error() == kubernetes_errc::credentials);
    CHECK(k.last_error().find("/nonexistent/namespace") != std::string::npos);
  }
  SUBCASE("no token file") {
    o.token_file = "/nonexistent/token";
    kubernetes k(o);
    CHECK(k.initialize().error() == kubernetes_errc::credentials);
  }
  SUBCASE("no CA file") {
    o.ca_file = "/nonexistent/ca.crt";
    kubernetes k(o);
    CHECK(k.initialize().error() == kubernetes_errc::credentials);
    CHECK(k.last_error().find("/nonexistent/ca.crt") != std::string::npos);
  }
}

TEST_CASE("kubernetes: ready pods with the named port, from every page, with the token") {
  k8s_env env;
  const std::vector<pod_spec> page1 = {
      {.name = "a", .ip = "127.0.0.1"},
      {.name = "pending", .ip = "127.0.0.2", .phase = "Pending"},
      {.name = "unready", .ip = "127.0.0.3", .ready = false},
      {.name = "no-ip", .ip = ""},
      {.name = "leaving", .ip = "127.0.0.5", .deleting = true},
      {.name = "other-port", .ip = "127.0.0.6", .port_name = "http"},
      {.name = "six", .ip = "fd00::7", .port = 7007},
  };
  const std::vector<pod_spec> page2 = {{.name = "h", .ip = "127.0.0.8", .port = 7008}};
  fake_kubernetes_api api(env.pki, [&](const std::string& target, const std::string& auth) {
    const std::string expected = auth == "Bearer tok-2" ? "tok-2" : "tok-1";
    if (auth != "Bearer " + expected) return fake_kubernetes_api::reply{401, ""};
    if (target.find("continue=c%2B1") != std::string::npos) {
      return fake_kubernetes_api::reply{200, pod_list_json(page2, "101")};
    }
    return fake_kubernetes_api::reply{200, pod_list_json(page1, "101", "c+1")};
  });
  auto o = env.options(api);
  o.page_size = 7;
  kubernetes k(o);
  REQUIRE(k.initialize());
  const std::vector<std::string> want = {"127.0.0.1:7001", "127.0.0.8:7008", "[fd00::7]:7007"};
  CHECK(*k.discover_peers() == want);
  const auto targets = api.targets();
  REQUIRE(targets.size() == 4);  // initialize() and discover_peers(), two pages each
  CHECK(targets[2] == "/api/v1/namespaces/cache-ns/pods?labelSelector=app%3Dcache&limit=7");
  CHECK(targets[3] ==
        "/api/v1/namespaces/cache-ns/pods?labelSelector=app%3Dcache&limit=7&continue=c%2B1");
  CHECK(api.authorizations().back() == "Bearer tok-1");
  // A rotated token is read at the next listing.
  std::ofstream(env.token.path()) << "tok-2\n";
  CHECK(*k.discover_peers() == want);
  CHECK(api.authorizations().back() == "Bearer tok-2");
  CHECK(k.lists() == 3);
  k.close();
}

TEST_CASE("kubernetes: each failure is a clear error, and start() fails only on lasting ones") {
  k8s_env env;
  fake_kubernetes_api api(env.pki, answer(pod_list_json({{"a", "127.0.0.1"}})));
  auto o = env.options(api);
  kubernetes k(o);
  REQUIRE(k.initialize());
  REQUIRE(k.discover_peers().has_value());
  using reply = fake_kubernetes_api::reply;
  auto fails_with = [&](const reply& r, distcache::error_code want, const std::string& detail) {
    api.set_handler([r](const std::string&, const std::string&) { return r; });
    auto peers = k.discover_peers();
    CHECK_MESSAGE(!peers.has_value(), detail);
    if (peers) return;
    CHECK_MESSAGE(peers.error() == want, peers.error().message());
    CHECK_MESSAGE(k.last_error().find(detail) != std::string::npos, k.last_error());
  };
  fails_with({401, status_json(401, "Unauthorized", "Unauthorized")}, kubernetes_errc::unauthorized,
             "401 Unauthorized");
  fails_with({403, status_json(403, "Forbidden",
                               "pods is forbidden: User \\\"system:serviceaccount:cache-ns:default"
                               "\\\" cannot list resource \\\"pods\\\"")},
             kubernetes_errc::forbidden, "pods is forbidden: User \"system:serviceaccount");
  fails_with({500, status_json(500, "InternalError", "etcdserver: request timed out")},
             kubernetes_errc::server_error, "500 etcdserver: request timed out");
  fails_with({404, status_json(404, "NotFound", "the server could not find the resource")},
             kubernetes_errc::unexpected_status, "404 the server could not find");
  fails_with({200, R"({"kind":"PodList","items":[)"}, kubernetes_errc::malformed_response,
             "not JSON");
  fails_with({200, R"({"kind":"PodList","metadata":{},"items":{}})"},
             kubernetes_errc::malformed_response, "items array");
  fails_with({200, R"({"kind":"Status","metadata":{}})"}, kubernetes_errc::malformed_response,
             "expected a PodList");
  fails_with({200, pod_list_json({{"a", "127.0.0.1"}}, "1", "same")},
             kubernetes_errc::malformed_response, "continue token does not advance");
  {
    api.set_handler([](const std::string&, const std::string&) { return never_answer(); });
    auto short_wait = o;
    short_wait.timeout = 300ms;
    kubernetes impatient(short_wait);
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(impatient.initialize());  // a slow server is not a reason to refuse to start
    auto peers = impatient.discover_peers();
    const auto took = std::chrono::steady_clock::now() - t0;
    REQUIRE_FALSE(peers.has_value());
    CHECK(peers.error() == kubernetes_errc::timeout);
    CHECK(took < 2s);  // two listings of 300 ms each, not the server's hour
  }
  // Lasting failures make start() fail.
  api.set_handler([](const std::string&, const std::string&) {
    return reply{403, status_json(403, "", "")};
  });
  kubernetes refused(o);
  CHECK(refused.initialize().error() == kubernetes_errc::forbidden);
  api.set_handler(answer(pod_list_json({{"a", "127.0.0.1"}})));
  {
    auto other_ca = o;
    other_ca.ca_file = env.pki.path("other-ca.crt");
    kubernetes k2(other_ca);
    auto r = k2.initialize();
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().category() == boost::asio::error::get_ssl_category());
    CHECK(k2.last_error().find("certificate verify failed") != std::string::npos);
  }
  {
    auto wrong_name = o;
    wrong_name.server_name = "api.other.example";
    kubernetes k3(wrong_name);
    auto r = k3.initialize();
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().category() == boost::asio::error::get_ssl_category());
    auto dns_name = o;  // the certificate's DNS SAN, dialled at 127.0.0.1
    dns_name.server_name = "kubernetes.default.svc";
    kubernetes k4(dns_name);
    CHECK(k4.initialize());
  }
  // A server that is down is not a reason to refuse to start either.
  auto down = o;
  down.api_server = "127.0.0.1:" + std::to_string(distcache::test::free_loopback_port());
  kubernetes k5(down);
  CHECK(k5.initialize());
  CHECK(k5.discover_peers().error() == boost::asio::error::connection_refused);
  k.close();
}

TEST_CASE("kubernetes: a watch keeps the peers current without listing again") {
  k8s_env env;
  std::atomic<int> list_version{100};
  fake_kubernetes_api api(env.pki, [&](const std::string& target, const std::string&) {
    if (target.find("watch=1") != std::string::npos) {
      return watch_stream();
    }
    return fake_kubernetes_api::reply{
        200, pod_list_json({{"a", "127.0.0.1"}}, std::to_string(list_version.load()))};
  });
  auto o = env.options(api);
  o.watch = true;
  o.watch_timeout = 60s;
  kubernetes k(o);
  std::atomic<int> changes{0};
  REQUIRE(k.initialize());
  k.set_change_handler([&] { ++changes; });
  REQUIRE(eventually([&] { return api.open_watches() == 1; }));
  CHECK(k.watching());
  CHECK(api.targets().back() ==
        "/api/v1/namespaces/cache-ns/pods?labelSelector=app%3Dcache&watch=1&"
        "allowWatchBookmarks=true&timeoutSeconds=60&resourceVersion=100");
  CHECK(*k.discover_peers() == std::vector<std::string>{"127.0.0.1:7001"});
  auto peers_are = [&](std::vector<std::string> want) {
    return eventually([&] { return k.discover_peers().value() == want; });
  };

  api.push(event_json("ADDED", {.name = "b", .ip = "127.0.0.2"}, "101"), 101);
  CHECK(peers_are({"127.0.0.1:7001", "127.0.0.2:7001"}));
  CHECK(eventually([&] { return changes.load() == 1; }));
  api.push(event_json("MODIFIED", {.name = "b", .ip = "127.0.0.2", .ready = false}, "102"), 102);
  CHECK(peers_are({"127.0.0.1:7001"}));
  api.push(event_json("MODIFIED", {.name = "b", .ip = "127.0.0.2"}, "103"), 103);
  CHECK(peers_are({"127.0.0.1:7001", "127.0.0.2:7001"}));
  api.push(event_json("DELETED", {.name = "a", .ip = "127.0.0.1"}, "104"), 104);
  CHECK(peers_are({"127.0.0.2:7001"}));
  api.push(R"({"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"150"}}})",
           150);
  CHECK(api.count("limit=") == 1);  // one listing; every change came on the watch
  CHECK(k.lists() == 1);

  // The server ends the watch: the next one resumes from the last version seen.
  api.end_watches();
  REQUIRE(eventually([&] { return api.count("resourceVersion=150") == 1; }));
  REQUIRE(eventually([&] { return api.open_watches() == 1; }));
  CHECK(api.count("limit=") == 1);

  // A malformed line is counted, never adds a peer, and the provider lists again.
  list_version = 200;
  api.push(R"({"type":"ADDED","object":"not a pod"})");
  REQUIRE(eventually([&] { return api.count("resourceVersion=200") == 1; }));
  CHECK(k.malformed_events() == 1);
  CHECK(peers_are({"127.0.0.1:7001"}));  // the new listing's pods
  CHECK(api.count("limit=") == 2);

  // 410 Gone (the version is too old): list again at once.
  list_version = 300;
  api.push(R"({"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired",)"
           R"j("message":"too old resource version: 200 (250)"}})j");
  REQUIRE(eventually([&] { return api.count("resourceVersion=300") == 1; }));
  CHECK(k.watch_restarts() == 2);
  CHECK(k.malformed_events() == 1);

  REQUIRE(eventually([&] { return api.open_watches() == 1; }));
  // The watch fails and the server answers 500: discover_peers() lists by
  // itself and reports the error; the peers seen are not kept as current.
  api.set_handler([](const std::string&, const std::string&) {
    return fake_kubernetes_api::reply{500, status_json(500, "InternalError", "etcd is down")};
  });
  api.end_watches();
  REQUIRE(eventually([&] { return !k.watching(); }));
  auto failed = k.discover_peers();
  REQUIRE_FALSE(failed.has_value());
  CHECK(failed.error() == kubernetes_errc::server_error);
  k.close();
}

namespace {

using users = distcache::test::users;  // support/keyspaces.hpp
using k8s_engine = distcache::basic_engine<distcache::policies<kubernetes>, users>;

}  // namespace

TEST_CASE("kubernetes: three engines form one ring from the pods; changes arrive on the watch") {
  k8s_env env;
  std::mutex mutex;
  std::map<std::string, pod_spec> pods;  // what the listing answers
  long version = 100;
  auto serve_pods = [&](const std::string& target, const std::string&) {
    if (target.find("watch=1") != std::string::npos) {
      return watch_stream();
    }
    std::lock_guard lock(mutex);
    std::vector<pod_spec> list;
    list.reserve(pods.size());
    for (const auto& [name, p] : pods) list.push_back(p);
    return fake_kubernetes_api::reply{200, pod_list_json(list, std::to_string(version))};
  };
  fake_kubernetes_api api(env.pki, serve_pods);
  // Held until the nodes have bound them: no other socket takes them meanwhile.
  const std::array<distcache::test::reserved_port, 3> reserved{};
  std::vector<std::uint16_t> ports;
  for (const auto& r : reserved) ports.push_back(r.port());
  auto db = std::make_shared<distcache::test::source_state>();
  db->set("k", "v");
  std::vector<std::unique_ptr<k8s_engine>> nodes;
  auto add_pod = [&](int i) {  // the node is ready: its pod is listed, and a watch event says so
    const pod_spec p{.name = "cache-" + std::to_string(i), .ip = "127.0.0.1", .port = ports[i]};
    std::lock_guard lock(mutex);
    pods[p.name] = p;
    ++version;
    api.push(event_json("ADDED", p, std::to_string(version)), version);
  };
  auto start = [&](int i) {
    config c;
    c.threads = 1;
    c.cluster.enabled = true;
    c.cluster.bind_address = "127.0.0.1";
    c.cluster.port = ports[i];
    c.cluster.probe_interval = 50ms;
    c.cluster.discovery_interval = 1h;  // only the watch can bring changes in time
    c.cluster.peer_timeout = 500ms;
    c.cluster.minimum_peers_quorum = 1;
    auto o = env.options(api);
    o.watch = true;
    users u;
    u.source.state = db;
    nodes.push_back(std::make_unique<k8s_engine>(c, kubernetes(o), u));
    add_pod(i);
    REQUIRE(nodes.back()->start());
  };
  auto one_ring = [&](std::size_t peers) {
    for (auto& n : nodes) {
      if (!n) continue;
      if (n->cluster_peers().size() != peers || n->ring_version() != nodes[0]->ring_version()) {
        return false;
      }
    }
    return true;
  };
  for (int i = 0; i < 3; ++i) start(i);
  REQUIRE(eventually([&] { return one_ring(2); }));
  for (auto& n : nodes) CHECK(**n->get<users>("k") == "v");
  CHECK(db->calls == 1);

  // The API server fails: discovery errors, the ring stays.
  const auto ring = nodes[0]->ring_version();
  api.set_handler([](const std::string&, const std::string&) {
    return fake_kubernetes_api::reply{503, status_json(503, "ServiceUnavailable", "")};
  });
  api.end_watches();
  REQUIRE(eventually([&] { return api.count("limit=") >= 6; }));  // the watches relist, and fail
  CHECK(one_ring(2));
  CHECK(nodes[0]->ring_version() == ring);

  // Back again: a node that stops has its pod deleted, and the others drop it at once.
  api.set_handler(serve_pods);
  REQUIRE(eventually([&] { return api.open_watches() == 3; }, 15s));
  REQUIRE(nodes[2]->stop());
  nodes[2].reset();
  {
    std::lock_guard lock(mutex);
    ++version;
    api.push(event_json("DELETED", pods["cache-2"], std::to_string(version)), version);
    pods.erase("cache-2");
  }
  CHECK(eventually([&] { return one_ring(1); }));
}
