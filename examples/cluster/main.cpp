// distcache example: one node of a cluster, with an application HTTP API in front of it.
//
// Each node runs an engine with one keyspace, `users`, whose data source reads the SQLite table
// users(id TEXT PRIMARY KEY, name TEXT, age INT). The nodes find each other through a fixed list
// of peer addresses (discovery::static_peers, --peers), through DNS (discovery::dns, A/AAAA or
// SRV records, --discovery dns), through a NATS server (discovery::nats, --discovery nats) or
// from the ready pods of a Kubernetes label selector (discovery::kubernetes, --discovery
// kubernetes); one provider type chosen at run time wraps the four. Every key is
// owned by one node of the ring: only the owner queries the database for it; the other nodes ask
// the owner and keep a hot copy. An HTTP server (Boost.Beast) lets people and scripts use the
// cache:
//
//   GET    /users/<id>   200 and the user as JSON ({"name":"Ada","age":36}), or 404
//   PUT    /users/<id>   body {"name":"Ada","age":37}: writes the row, then put()s the value: 204
//   DELETE /users/<id>   deletes the row, then remove()s the key on every node: 204
//   GET    /owner/<id>   the name of the node that owns the key now ("127.0.0.1:7001"), as text
//   GET    /stats        JSON: this node's name, its peers in the ring, the ring version, the
//                        number of SQL queries its data source ran (source_queries) and the
//                        statistics of the keyspace (gets, cache_hits, peer_loads, ...)
//
// The nodes of a cluster share the database file, as they would share a database server: PUT and
// DELETE change the table before the cache, so a later load agrees with what the cache was told.
//
//   example_cluster --port 7001 --http-port 8001 --db /tmp/users.db
//                   --peers 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 [--bind 127.0.0.1]
//   example_cluster --port 7001 --http-port 8001 --db /tmp/users.db --discovery dns
//                   --dns-name _cache._tcp.example.test --dns-type srv --dns-server 127.0.0.1:5353
//   example_cluster --port 7001 --http-port 8001 --db /tmp/users.db --discovery nats
//                   --nats-server 127.0.0.1:4222 [--nats-token T | --nats-user U --nats-password P]
//   example_cluster --port 7001 --http-port 8001 --db /tmp/users.db --bind $POD_IP
//                   --discovery kubernetes --k8s-selector app=cache [--k8s-port-name peer]
//
// Once the engine has started, the node prints "ready <name> http=<port>" (and " admin=<port>"
// with --admin-port) on stdout. SIGINT and
// SIGTERM stop it: the HTTP server, then the engine; it then prints "stopped <name>". Log lines
// (peers joining and leaving the ring, failures) go to stderr. Exit status: 0 after a clean stop,
// 1 when the node cannot start, 2 for bad flags.
//
// scripts/demo starts three of these and talks to them with curl.

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/describe/class.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <boost/json/value_from.hpp>
#include <boost/json/value_to.hpp>
#include <boost/system/error_category.hpp>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <ctime>
#include <distcache/discovery/dns.hpp>
#include <distcache/discovery/kubernetes.hpp>
#include <distcache/discovery/nats.hpp>
#include <distcache/distcache.hpp>
#include <exception>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

constexpr std::string_view usage_line =
    "usage: example_cluster --port N --db FILE --http-port N [--bind ADDRESS] [--admin-port N]\n"
    "         (--peers ADDRESS:PORT[,ADDRESS:PORT...] | --discovery dns --dns-name NAME\n"
    "          [--dns-type a|aaaa|srv] [--dns-port N] [--dns-server ADDRESS:PORT]\n"
    "          | --discovery nats --nats-server ADDRESS:PORT [--nats-token T]\n"
    "          [--nats-user U --nats-password P] [--nats-ca F] [--nats-cert F --nats-key F]\n"
    "          | --discovery kubernetes --k8s-selector SELECTOR [--k8s-port-name NAME]\n"
    "          [--k8s-namespace NS] [--k8s-api-server ADDRESS:PORT] [--k8s-server-name NAME]\n"
    "          [--k8s-token-file FILE] [--k8s-ca-file FILE] [--k8s-watch on|off])";

constexpr std::string_view help_text = R"(
  --bind ADDRESS     numeric IP address of both servers (default 127.0.0.1); peers reach this
                     node at ADDRESS:PORT, which is also its name
  --port N           port of the peer server, which the other nodes call (1-65535)
  --discovery KIND   how the nodes find each other: static (default, --peers), dns, nats or
                     kubernetes
  --peers LIST       static: comma-separated ADDRESS:PORT of the cluster's nodes, as given to
                     their --bind and --port ([::1]:7001 for IPv6); listing this node too is fine
  --dns-name NAME    dns: the name to resolve (an SRV name such as _cache._tcp.example.test)
  --dns-type TYPE    dns: a (default), aaaa (IPv6) or srv (each record gives its node's port)
  --dns-port N       dns, a/aaaa: the peers' port (default: --port)
  --dns-server A:P   dns: the nameserver to ask (default: the system resolver)
  --nats-server A:P  nats: the NATS server (subjects distcache.distcache.announce|discover)
  --nats-token T     nats: authentication token
  --nats-user U      nats: user name (with --nats-password P)
  --nats-ca F        nats: TLS: the CA file that verifies the server (default: the system's);
                     TLS is used whenever the server requires it
  --nats-cert F      nats: TLS client certificate (with --nats-key F), for --tlsverify servers
  --k8s-selector S   kubernetes: the label selector of the cluster's pods (e.g. app=cache)
  --k8s-port-name N  kubernetes: the name of the container port of the peer server (default peer)
  --k8s-namespace NS kubernetes: the pods' namespace (default: the service account's)
  --k8s-api-server A:P  kubernetes: the API server (default KUBERNETES_SERVICE_HOST/PORT)
  --k8s-server-name N   kubernetes: the name its certificate carries (default: its host)
  --k8s-token-file F    kubernetes: bearer token (default: the service account's)
  --k8s-ca-file F       kubernetes: CA bundle (default: the service account's)
  --k8s-watch on|off    kubernetes: watch the pods (default on) or list them every second
  --db FILE          SQLite database with the table users(id TEXT PRIMARY KEY, name TEXT, age INT),
                     created when missing; the nodes of a cluster share it
  --http-port N      port of the application HTTP server (1-65535):
                     GET|PUT|DELETE /users/<id>, GET /owner/<id>, GET /stats
  --admin-port N     port of distcache's admin server on --bind (docs/operations.md):
                     /_distcache/admin/peers|keyspaces|healthz|readyz|metrics; default: none
  --ttl-ms N         time to live of a cached user, in milliseconds (1 or more); default: none,
                     a user stays cached until it is written or evicted
  --max-fetches N    at most N database queries at once (max_concurrent_fetches); default: no limit
  --max-queued-fetches N
                     at most N loads waiting for one of those; one more is refused at once, 503
                     overloaded (max_queued_fetches); default: no bound besides the read timeout
  --source-delay-ms N
                     each query waits N ms first (0-60000): a slower database, for the fault tests
  --help             this text
)";

// ------------------------------------------------------------------ the value

/// A row of the users table (its id is the key). Described, so the keyspace needs no serializer
/// of its own: json_serializer<user> is deduced, and the HTTP API uses the same JSON.
struct user {
  std::string name;
  int age = 0;
};
BOOST_DESCRIBE_STRUCT(user, (), (name, age))

// ------------------------------------------------------------------ flags

/// A bad command line: main() prints the message and the usage line and exits 2.
class usage_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct options {
  std::string bind = "127.0.0.1";
  std::uint16_t port = 0;
  std::vector<std::string> peers;                               // without this node
  std::optional<distcache::discovery::dns_options> dns;         // set by --discovery dns
  std::optional<distcache::discovery::nats_options> nats;       // set by --discovery nats
  std::optional<distcache::discovery::kubernetes_options> k8s;  // by --discovery kubernetes
  std::string db;
  std::uint16_t http_port = 0;
  std::uint16_t admin_port = 0;        // 0: no admin server
  std::chrono::milliseconds ttl{0};    // 0: no expiry
  std::size_t max_fetches = 0;         // 0: no limit
  std::size_t max_queued_fetches = 0;  // 0: no bound
  std::chrono::milliseconds source_delay{0};
  bool help = false;
};

std::uint16_t parse_port(std::string_view flag, std::string_view text) {
  unsigned value = 0;
  const char* end = text.data() + text.size();
  auto [next, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc{} || next != end || value < 1 || value > 65535) {
    throw usage_error(std::string(flag) + ": expected a port number from 1 to 65535, got '" +
                      std::string(text) + "'");
  }
  return static_cast<std::uint16_t>(value);
}

/// "address:port", with an IPv6 address in brackets: the engine's self_name().
std::string node_name(const std::string& address, std::uint16_t port) {
  const bool v6 = address.find(':') != std::string::npos;
  return (v6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
}

/// A --peers entry, "address:port" or "[v6 address]:port". The address must be numeric: a node
/// is named after its --bind address and --port, and all nodes must give a node the same name,
/// or they would build different rings (localhost:7001 and 127.0.0.1:7001 are two names).
std::pair<net::ip::address, std::uint16_t> parse_peer(std::string_view text) {
  const auto bad = [&](std::string_view why) {
    return usage_error("--peers: '" + std::string(text) + "' " + std::string(why));
  };
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) throw bad("is not ADDRESS:PORT");
  std::string_view host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    throw bad("is not ADDRESS:PORT (write an IPv6 address in brackets: [::1]:7001)");
  }
  boost::system::error_code ec;
  const auto address = net::ip::make_address(host, ec);
  if (ec) {
    throw bad(
        "does not start with a numeric IP address (nodes are named by their --bind address and "
        "--port, and every node must name the others alike)");
  }
  return {address, parse_port("--peers", text.substr(colon + 1))};
}

options parse_options(int argc, char** argv) {
  options o;
  std::optional<std::string> bind, port, peers, db, http_port, admin_port, ttl_ms, max_fetches,
      max_queued_fetches, source_delay_ms, discovery, dns_name, dns_type, dns_port, dns_server,
      nats_server, nats_token, nats_user, nats_password, nats_ca, nats_cert, nats_key, k8s_selector,
      k8s_port_name, k8s_namespace, k8s_api_server, k8s_server_name, k8s_token_file, k8s_ca_file,
      k8s_watch;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      o.help = true;
      return o;
    }
    std::optional<std::string> inline_value;
    if (const auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      inline_value = std::string(arg.substr(eq + 1));
      arg = arg.substr(0, eq);
    }
    std::optional<std::string>* slot = nullptr;
    if (arg == "--bind") {
      slot = &bind;
    } else if (arg == "--port") {
      slot = &port;
    } else if (arg == "--peers") {
      slot = &peers;
    } else if (arg == "--db") {
      slot = &db;
    } else if (arg == "--http-port") {
      slot = &http_port;
    } else if (arg == "--admin-port") {
      slot = &admin_port;
    } else if (arg == "--ttl-ms") {
      slot = &ttl_ms;
    } else if (arg == "--max-fetches") {
      slot = &max_fetches;
    } else if (arg == "--max-queued-fetches") {
      slot = &max_queued_fetches;
    } else if (arg == "--source-delay-ms") {
      slot = &source_delay_ms;
    } else if (arg == "--discovery") {
      slot = &discovery;
    } else if (arg == "--dns-name") {
      slot = &dns_name;
    } else if (arg == "--dns-type") {
      slot = &dns_type;
    } else if (arg == "--dns-port") {
      slot = &dns_port;
    } else if (arg == "--dns-server") {
      slot = &dns_server;
    } else if (arg == "--nats-server") {
      slot = &nats_server;
    } else if (arg == "--nats-token") {
      slot = &nats_token;
    } else if (arg == "--nats-user") {
      slot = &nats_user;
    } else if (arg == "--nats-password") {
      slot = &nats_password;
    } else if (arg == "--nats-ca") {
      slot = &nats_ca;
    } else if (arg == "--nats-cert") {
      slot = &nats_cert;
    } else if (arg == "--nats-key") {
      slot = &nats_key;
    } else if (arg == "--k8s-selector") {
      slot = &k8s_selector;
    } else if (arg == "--k8s-port-name") {
      slot = &k8s_port_name;
    } else if (arg == "--k8s-namespace") {
      slot = &k8s_namespace;
    } else if (arg == "--k8s-api-server") {
      slot = &k8s_api_server;
    } else if (arg == "--k8s-server-name") {
      slot = &k8s_server_name;
    } else if (arg == "--k8s-token-file") {
      slot = &k8s_token_file;
    } else if (arg == "--k8s-ca-file") {
      slot = &k8s_ca_file;
    } else if (arg == "--k8s-watch") {
      slot = &k8s_watch;
    } else {
      throw usage_error("unknown argument '" + std::string(arg) + "'");
    }
    if (slot->has_value()) throw usage_error(std::string(arg) + ": given twice");
    if (inline_value) {
      *slot = std::move(*inline_value);
    } else if (i + 1 < argc) {
      *slot = argv[++i];
    } else {
      throw usage_error(std::string(arg) + ": missing value");
    }
  }
  const std::string kind = discovery.value_or("static");
  if (kind != "static" && kind != "dns" && kind != "nats" && kind != "kubernetes") {
    throw usage_error("--discovery: expected static, dns, nats or kubernetes, got '" + kind + "'");
  }
  for (const auto& [flag, value] :
       {std::pair{"--port", &port}, std::pair{"--db", &db}, std::pair{"--http-port", &http_port},
        std::pair{kind == "static" ? "--peers"
                  : kind == "dns"  ? "--dns-name"
                  : kind == "nats" ? "--nats-server"
                                   : "--k8s-selector",
                  kind == "static" ? &peers
                  : kind == "dns"  ? &dns_name
                  : kind == "nats" ? &nats_server
                                   : &k8s_selector}}) {
    if (!value->has_value()) throw usage_error(std::string(flag) + " is required");
  }
  const auto only_with = [&](const char* flag, const std::optional<std::string>& value,
                             const char* mode) {
    if (value.has_value()) {
      throw usage_error(std::string(flag) + ": only with --discovery " + mode);
    }
  };
  if (kind != "dns") {
    only_with("--dns-name", dns_name, "dns");
    only_with("--dns-type", dns_type, "dns");
    only_with("--dns-port", dns_port, "dns");
    only_with("--dns-server", dns_server, "dns");
  }
  if (kind != "nats") {
    only_with("--nats-server", nats_server, "nats");
    only_with("--nats-token", nats_token, "nats");
    only_with("--nats-user", nats_user, "nats");
    only_with("--nats-password", nats_password, "nats");
    only_with("--nats-ca", nats_ca, "nats");
    only_with("--nats-cert", nats_cert, "nats");
    only_with("--nats-key", nats_key, "nats");
  }
  if (kind != "kubernetes") {
    for (const auto& [flag, value] :
         {std::pair{"--k8s-selector", &k8s_selector}, std::pair{"--k8s-port-name", &k8s_port_name},
          std::pair{"--k8s-namespace", &k8s_namespace},
          std::pair{"--k8s-api-server", &k8s_api_server},
          std::pair{"--k8s-server-name", &k8s_server_name},
          std::pair{"--k8s-token-file", &k8s_token_file}, std::pair{"--k8s-ca-file", &k8s_ca_file},
          std::pair{"--k8s-watch", &k8s_watch}}) {
      only_with(flag, *value, "kubernetes");
    }
  }
  if (kind != "static") only_with("--peers", peers, "static");
  if (bind) o.bind = *bind;
  boost::system::error_code ec;
  const auto bind_address = net::ip::make_address(o.bind, ec);
  if (ec) throw usage_error("--bind: '" + o.bind + "' is not a numeric IPv4 or IPv6 address");
  if (bind_address.is_unspecified()) {
    throw usage_error("--bind: '" + o.bind +
                      "' is not an address peers can reach; bind a specific address");
  }
  o.bind = bind_address.to_string();
  o.port = parse_port("--port", *port);
  o.http_port = parse_port("--http-port", *http_port);
  if (o.http_port == o.port) throw usage_error("--http-port: must differ from --port");
  if (admin_port) {
    o.admin_port = parse_port("--admin-port", *admin_port);
    if (o.admin_port == o.port || o.admin_port == o.http_port) {
      throw usage_error("--admin-port: must differ from --port and --http-port");
    }
  }
  // A whole number in [low, high] from a flag's text.
  const auto number = [](std::string_view flag, const std::string& text, std::uint32_t low,
                         std::uint32_t high, std::string_view what) {
    std::uint32_t value = 0;
    const char* end = text.data() + text.size();
    auto [next, parsed] = std::from_chars(text.data(), end, value);
    if (text.empty() || parsed != std::errc{} || next != end || value < low || value > high) {
      throw usage_error(std::string(flag) + ": expected " + std::string(what) + " from " +
                        std::to_string(low) + " to " + std::to_string(high) + ", got '" + text +
                        "'");
    }
    return value;
  };
  if (ttl_ms) {
    o.ttl = std::chrono::milliseconds(number("--ttl-ms", *ttl_ms, 1, 4294967295U, "milliseconds"));
  }
  if (max_fetches) o.max_fetches = number("--max-fetches", *max_fetches, 1, 100000, "a count");
  if (max_queued_fetches) {
    if (!max_fetches) throw usage_error("--max-queued-fetches: only with --max-fetches");
    o.max_queued_fetches =
        number("--max-queued-fetches", *max_queued_fetches, 1, 1000000, "a count");
  }
  if (source_delay_ms) {
    o.source_delay = std::chrono::milliseconds(
        number("--source-delay-ms", *source_delay_ms, 0, 60000, "milliseconds"));
  }
  if (db->empty()) throw usage_error("--db: must not be empty");
  o.db = *db;
  if (kind == "dns") {
    distcache::discovery::dns_options d;
    d.name = *dns_name;
    const std::string type = dns_type.value_or("a");
    if (type == "srv") {
      d.type = distcache::discovery::dns_options::record_type::srv;
      if (dns_port) throw usage_error("--dns-port: SRV records give each node's port");
    } else if (type == "a" || type == "aaaa") {
      d.family = type == "a" ? distcache::discovery::dns_options::address_family::ipv4
                             : distcache::discovery::dns_options::address_family::ipv6;
      d.port = dns_port ? parse_port("--dns-port", *dns_port) : o.port;
    } else {
      throw usage_error("--dns-type: expected a, aaaa or srv, got '" + type + "'");
    }
    d.nameserver = dns_server.value_or("");
    d.timeout = 500ms;
    if (auto why = distcache::discovery::dns::check(d); !why.empty()) {
      throw usage_error("--discovery dns: " + why);  // names the dns_options field
    }
    o.dns = std::move(d);
    return o;
  }
  if (kind == "nats") {
    distcache::discovery::nats_options n;
    n.server = *nats_server;
    n.token = nats_token.value_or("");
    n.user = nats_user.value_or("");
    n.password = nats_password.value_or("");
    n.tls_ca_file = nats_ca.value_or("");
    n.tls_cert_file = nats_cert.value_or("");
    n.tls_key_file = nats_key.value_or("");
    if (auto why = distcache::discovery::nats::check(n); !why.empty()) {
      throw usage_error("--discovery nats: " + why);  // names the nats_options field
    }
    o.nats = std::move(n);
    return o;
  }
  if (kind == "kubernetes") {
    distcache::discovery::kubernetes_options k;
    k.label_selector = *k8s_selector;
    k.port_name = k8s_port_name.value_or("peer");
    k.pod_namespace = k8s_namespace.value_or("");
    k.api_server = k8s_api_server.value_or("");
    k.server_name = k8s_server_name.value_or("");
    if (k8s_token_file) k.token_file = *k8s_token_file;
    if (k8s_ca_file) k.ca_file = *k8s_ca_file;
    const std::string watch = k8s_watch.value_or("on");
    if (watch != "on" && watch != "off") {
      throw usage_error("--k8s-watch: expected on or off, got '" + watch + "'");
    }
    k.watch = watch == "on";
    if (auto why = distcache::discovery::kubernetes::check(k); !why.empty()) {
      throw usage_error("--discovery kubernetes: " + why);  // names the kubernetes_options field
    }
    o.k8s = std::move(k);
    return o;
  }
  std::string_view list = *peers;
  while (true) {
    const auto comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item.empty()) throw usage_error("--peers: empty entry in '" + *peers + "'");
    const auto [address, peer_port] = parse_peer(item);
    if (address != bind_address || peer_port != o.port) {  // this node itself is left out
      o.peers.push_back(node_name(address.to_string(), peer_port));
    }
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return o;
}

// ------------------------------------------------------------------ SQLite

/// SQLite result codes as error codes, so a failed query reaches the caller with SQLite's message.
class sqlite_category final : public boost::system::error_category {
 public:
  [[nodiscard]] const char* name() const noexcept override { return "sqlite"; }
  [[nodiscard]] std::string message(int ev) const override { return sqlite3_errstr(ev); }
};

distcache::error_code sqlite_error(int rc) {
  static const sqlite_category category;
  return {rc, category};
}

/// A connection that closes itself; shared by the copies of a data source.
using connection = std::shared_ptr<sqlite3>;

connection open_database(const std::string& path, int flags) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  connection conn(db, sqlite3_close);  // closes a half-opened handle too
  if (rc != SQLITE_OK) {
    throw std::runtime_error("cannot open database " + path + ": " + sqlite3_errstr(rc));
  }
  // Three processes share the file: wait for another's write lock instead of failing at once.
  sqlite3_busy_timeout(db, 5000);
  return conn;
}

using statement = std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)>;

/// Prepares `sql` and binds `id` to ?1.
distcache::error_code prepare(sqlite3* db, const char* sql, std::string_view id, statement& out) {
  sqlite3_stmt* raw = nullptr;
  const int rc = sqlite3_prepare_v2(db, sql, -1, &raw, nullptr);
  out.reset(raw);
  if (rc != SQLITE_OK) return sqlite_error(rc);
  const int brc =
      sqlite3_bind_text(raw, 1, id.data(), static_cast<int>(id.size()), SQLITE_TRANSIENT);
  if (brc != SQLITE_OK) return sqlite_error(brc);
  return {};
}

/// Reads users by id: the keyspace's data source. The engine runs fetch() on its pool, for
/// different keys at once, so the connection is opened in serialized mode (FULLMUTEX) and each
/// fetch() uses a statement of its own. Counts the queries it runs.
class user_source {
 public:
  /// `delay`: each query waits that long first (--source-delay-ms), or until `*stopping`.
  user_source(connection db, std::shared_ptr<std::atomic<std::uint64_t>> queries,
              std::chrono::milliseconds delay = {},
              std::shared_ptr<const std::atomic<bool>> stopping = nullptr)
      : db_(std::move(db)),
        queries_(std::move(queries)),
        delay_(delay),
        stopping_(std::move(stopping)) {}

  /// The user, distcache::not_found for a missing row, or an SQLite error code.
  distcache::fetch_result<user> fetch(std::string_view id) {
    queries_->fetch_add(1, std::memory_order_relaxed);
    // --source-delay-ms: a slower (or, with a long delay, a stalled) database; a stopping node
    // does not wait for it.
    const auto until = std::chrono::steady_clock::now() + delay_;
    while (std::chrono::steady_clock::now() < until && !(stopping_ && stopping_->load())) {
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
          until - std::chrono::steady_clock::now(), std::chrono::milliseconds(10)));
    }
    statement stmt(nullptr, sqlite3_finalize);
    if (auto ec = prepare(db_.get(), "SELECT name, age FROM users WHERE id = ?1", id, stmt)) {
      return ec;
    }
    const int rc = sqlite3_step(stmt.get());
    if (rc == SQLITE_DONE) return distcache::not_found;
    if (rc != SQLITE_ROW) return sqlite_error(rc);
    const auto* name = reinterpret_cast<const char*>(sqlite3_column_text(stmt.get(), 0));
    return user{name != nullptr ? name : "", sqlite3_column_int(stmt.get(), 1)};
  }

 private:
  connection db_;
  std::shared_ptr<std::atomic<std::uint64_t>> queries_;
  std::chrono::milliseconds delay_;
  std::shared_ptr<const std::atomic<bool>> stopping_;
};

/// Writes to the users table (PUT and DELETE), on the program's own read-write connection.
class user_table {
 public:
  explicit user_table(connection db) : db_(std::move(db)) {}

  distcache::error_code upsert(std::string_view id, const user& u) {
    statement stmt(nullptr, sqlite3_finalize);
    if (auto ec = prepare(db_.get(),
                          "INSERT INTO users(id, name, age) VALUES (?1, ?2, ?3) "
                          "ON CONFLICT(id) DO UPDATE SET name = excluded.name, age = excluded.age",
                          id, stmt)) {
      return ec;
    }
    int rc = sqlite3_bind_text(stmt.get(), 2, u.name.data(), static_cast<int>(u.name.size()),
                               SQLITE_TRANSIENT);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int(stmt.get(), 3, u.age);
    if (rc != SQLITE_OK) return sqlite_error(rc);
    return step_done(stmt);
  }

  distcache::error_code erase(std::string_view id) {
    statement stmt(nullptr, sqlite3_finalize);
    if (auto ec = prepare(db_.get(), "DELETE FROM users WHERE id = ?1", id, stmt)) return ec;
    return step_done(stmt);
  }

 private:
  static distcache::error_code step_done(const statement& stmt) {
    const int rc = sqlite3_step(stmt.get());
    return rc == SQLITE_DONE ? distcache::error_code{} : sqlite_error(rc);
  }

  connection db_;
};

// ------------------------------------------------------------------ the keyspace and engine

/// The users keyspace: values of type user, read by user_source.
struct users {
  static constexpr std::string_view name = "users";
  using value_type = user;
  std::int64_t max_bytes = 16 << 20;  // 16 MiB for the main cache (the hot cache gets 1/8 more)
  user_source source;
};

/// The node's discovery provider, chosen at run time. A provider is any type with the five member
/// functions of the discovery_provider concept, so wrapping the four is enough; the optional
/// set_change_handler is passed on to those that have it (NATS, Kubernetes), so their changes
/// reach the ring at once.
class node_discovery {
 public:
  node_discovery() = default;
  explicit node_discovery(const options& o) {
    if (o.dns) {
      provider_ = distcache::discovery::dns(*o.dns);
    } else if (o.nats) {
      provider_ = distcache::discovery::nats(*o.nats);
    } else if (o.k8s) {
      provider_ = distcache::discovery::kubernetes(*o.k8s);
    } else {
      provider_ = distcache::discovery::static_peers(o.peers);
    }
  }
  distcache::result<void> initialize() {
    return std::visit([](auto& p) { return p.initialize(); }, provider_);
  }
  distcache::result<void> register_node(const std::string& self) {
    return std::visit([&](auto& p) { return p.register_node(self); }, provider_);
  }
  distcache::result<void> deregister_node(const std::string& self) {
    return std::visit([&](auto& p) { return p.deregister_node(self); }, provider_);
  }
  distcache::result<std::vector<std::string>> discover_peers() {
    return std::visit([](auto& p) { return p.discover_peers(); }, provider_);
  }
  void close() {
    std::visit([](auto& p) { p.close(); }, provider_);
  }
  void set_change_handler(const std::function<void()>& on_change) {
    std::visit(
        [&](auto& p) {
          if constexpr (distcache::discovery_with_change_handler<std::decay_t<decltype(p)>>) {
            p.set_change_handler(on_change);
          }
        },
        provider_);
  }

 private:
  std::variant<distcache::discovery::static_peers, distcache::discovery::dns,
               distcache::discovery::nats, distcache::discovery::kubernetes>
      provider_;
};
static_assert(distcache::discovery_provider<node_discovery>);

/// An engine whose peers come from node_discovery.
using node_engine = distcache::basic_engine<distcache::policies<node_discovery>, users>;

// ------------------------------------------------------------------ HTTP

using request = http::request<http::string_body>;
using response = http::response<http::string_body>;

response reply(const request& req, http::status status, std::string body,
               std::string_view content_type) {
  response res{status, req.version()};
  res.keep_alive(req.keep_alive());
  if (!body.empty()) res.set(http::field::content_type, content_type);
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

response json_reply(const request& req, http::status status, const json::value& v) {
  return reply(req, status, json::serialize(v) + "\n", "application/json");
}

response error_reply(const request& req, http::status status, std::string_view message) {
  return json_reply(req, status, json::object{{"error", message}});
}

/// The HTTP status for an error of the engine (or of the data source).
http::status status_of(distcache::error_code ec) {
  using distcache::errc;
  if (ec == errc::not_found) return http::status::not_found;
  if (ec == errc::invalid_key) return http::status::bad_request;
  if (ec == errc::value_too_large) return http::status::payload_too_large;
  if (ec == errc::timeout) return http::status::gateway_timeout;
  if (ec == errc::peer_unavailable || ec == errc::cluster_quorum || ec == errc::stopped ||
      ec == errc::not_started || ec == errc::data_source_rate_limited ||
      ec == errc::data_source_circuit_open || ec == errc::overloaded) {
    return http::status::service_unavailable;
  }
  return http::status::internal_server_error;  // data_source_failed, an SQLite error, ...
}

/// Decodes %XX escapes of a path segment; nullopt for a malformed escape.
std::optional<std::string> percent_decode(std::string_view s) {
  const auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    const int hi = hex(s[i + 1]);
    const int lo = hex(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

/// Runs `work` (a blocking SQLite call) on `pool`, not on an HTTP thread, and resumes the
/// calling coroutine on its own executor with the result.
template <class F>
net::awaitable<std::invoke_result_t<F&>> on_pool(net::thread_pool& pool, F work) {
  co_return co_await net::co_spawn(
      pool,
      [work = std::move(work)]() mutable -> net::awaitable<std::invoke_result_t<F&>> {
        co_return work();
      },
      net::use_awaitable);
}

/// The HTTP API over one node's engine.
class api {
 public:
  api(node_engine& cache, user_table& table, const std::atomic<std::uint64_t>& source_queries,
      net::thread_pool& db_pool)
      : cache_(cache), table_(table), source_queries_(source_queries), db_pool_(db_pool) {}

  net::awaitable<response> handle(const request& req) {
    std::string_view path = req.target();
    path = path.substr(0, path.find('?'));
    const auto verb = req.method();
    if (path == "/stats") {
      if (verb != http::verb::get) co_return not_allowed(req, "GET");
      co_return stats(req);
    }
    constexpr std::string_view users_prefix = "/users/";
    constexpr std::string_view owner_prefix = "/owner/";
    const bool is_users = path.starts_with(users_prefix);
    const bool is_owner = path.starts_with(owner_prefix);
    if (!is_users && !is_owner) {
      co_return error_reply(req, http::status::not_found,
                            "no such resource; try /users/<id>, /owner/<id> or /stats");
    }
    const auto key =
        percent_decode(path.substr(is_users ? users_prefix.size() : owner_prefix.size()));
    if (!key || key->empty()) co_return error_reply(req, http::status::bad_request, "bad key");
    if (is_owner) {
      if (verb != http::verb::get) co_return not_allowed(req, "GET");
      co_return reply(req, http::status::ok, cache_.owner_of(*key) + "\n", "text/plain");
    }
    switch (verb) {
      case http::verb::get:
        co_return co_await get(req, *key);
      case http::verb::put:
        co_return co_await put(req, *key);
      case http::verb::delete_:
        co_return co_await remove(req, *key);
      default:
        co_return not_allowed(req, "GET, PUT, DELETE");
    }
  }

 private:
  static response not_allowed(const request& req, std::string_view allow) {
    auto res = error_reply(req, http::status::method_not_allowed, "method not allowed");
    res.set(http::field::allow, allow);
    return res;
  }

  net::awaitable<response> get(const request& req, const std::string& key) {
    auto [ec, value] = co_await cache_.async_get<users>(key, net::as_tuple(net::use_awaitable));
    if (ec) co_return error_reply(req, status_of(ec), ec.message());
    co_return json_reply(req, http::status::ok, json::value_from(*value));
  }

  net::awaitable<response> put(const request& req, const std::string& key) {
    boost::system::error_code jec;
    const json::value body = json::parse(req.body(), jec);
    if (jec) co_return error_reply(req, http::status::bad_request, "body: " + jec.message());
    auto u = json::try_value_to<user>(body);
    if (!u) {
      co_return error_reply(req, http::status::bad_request,
                            R"(body: expected {"name": string, "age": integer})");
    }
    // The database first, then the cache: a load after this reads the new row anyway.
    const auto db_ec = co_await on_pool(db_pool_, [&] { return table_.upsert(key, *u); });
    if (db_ec) {
      co_return error_reply(req, http::status::internal_server_error,
                            "database: " + db_ec.message());
    }
    auto [ec] = co_await cache_.async_put<users>(key, std::move(*u), distcache::duration::zero(),
                                                 net::as_tuple(net::use_awaitable));
    if (ec) {
      co_return error_reply(req, status_of(ec),
                            "the row was written, the cache was not updated: " + ec.message());
    }
    co_return reply(req, http::status::no_content, {}, {});
  }

  net::awaitable<response> remove(const request& req, const std::string& key) {
    const auto db_ec = co_await on_pool(db_pool_, [&] { return table_.erase(key); });
    if (db_ec) {
      co_return error_reply(req, http::status::internal_server_error,
                            "database: " + db_ec.message());
    }
    auto [ec] = co_await cache_.async_remove<users>(key, net::as_tuple(net::use_awaitable));
    if (ec) {
      co_return error_reply(req, status_of(ec),
                            "the row was deleted, not every node confirmed: " + ec.message());
    }
    co_return reply(req, http::status::no_content, {}, {});
  }

  response stats(const request& req) const {
    const distcache::keyspace_stats s = cache_.stats<users>();
    json::array peers;
    for (const auto& p : cache_.cluster_peers()) peers.emplace_back(p);
    const json::object out{
        {"node", cache_.self_name()},
        {"peers", std::move(peers)},
        {"ring_version", cache_.ring_version()},
        {"keyspace", users::name},
        {"source_queries", source_queries_.load(std::memory_order_relaxed)},
        {"gets", s.gets},
        {"cache_hits", s.cache_hits},
        {"peer_loads", s.peer_loads},
        {"peer_errors", s.peer_errors},
        {"loads", s.loads},
        {"loads_deduped", s.loads_deduped},
        {"local_loads", s.local_loads},
        {"local_load_errs", s.local_load_errs},
        {"remove_keys_requests", s.remove_keys_requests},
        {"removed_keys", s.removed_keys},
        {"main_cache_items", s.main_cache_items},
        {"hot_cache_items", s.hot_cache_items},
        {"main_cache_bytes", s.main_cache_bytes},
        {"hot_cache_bytes", s.hot_cache_bytes},
        {"evictions", s.evictions},
        {"overloaded", s.overloaded},
        {"pushes_refused", s.pushes_refused},
    };
    return json_reply(req, http::status::ok, out);
  }

  node_engine& cache_;
  user_table& table_;
  const std::atomic<std::uint64_t>& source_queries_;
  net::thread_pool& db_pool_;
};

/// Serves the requests of one connection, one after the other (HTTP/1.1 keep-alive).
net::awaitable<void> serve_connection(tcp::socket socket, api& app) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(std::uint64_t{64} * 1024);
    stream.expires_after(30s);
    auto [ec, n] =
        co_await http::async_read(stream, buffer, parser, net::as_tuple(net::use_awaitable));
    (void)n;
    if (ec == http::error::body_limit) {
      request head;
      head.version(parser.get().version());
      auto res = error_reply(head, http::status::payload_too_large, "body over 64 KiB");
      res.keep_alive(false);
      stream.expires_after(30s);
      (void)co_await http::async_write(stream, res, net::as_tuple(net::use_awaitable));
      break;
    }
    if (ec) break;  // closed by the client, timed out, or not HTTP
    const request req = parser.release();
    response res = co_await app.handle(req);
    stream.expires_after(30s);
    auto [write_ec, written] =
        co_await http::async_write(stream, res, net::as_tuple(net::use_awaitable));
    (void)written;
    if (write_ec || !res.keep_alive()) break;
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

net::awaitable<void> accept_loop(tcp::acceptor& acceptor, api& app) {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(net::as_tuple(net::use_awaitable));
    if (ec == net::error::operation_aborted || !acceptor.is_open()) co_return;  // stopping
    if (ec) continue;  // e.g. too many open files: try the next connection
    net::co_spawn(acceptor.get_executor(), serve_connection(std::move(socket), app), net::detached);
  }
}

// ------------------------------------------------------------------ the node

/// The local time of day with milliseconds, "14:03:07.412".
std::string time_of_day() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm local{};
  localtime_r(&t, &local);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  char text[16];
  const std::size_t n = std::strftime(text, sizeof text, "%H:%M:%S", &local);
  return std::string(text, n) + "." + std::to_string(1000 + ms).substr(1);
}

/// Log lines (info and above) to stderr: the time, the node's name, the level and the line.
distcache::logger make_logger(std::string name) {
  auto mutex = std::make_shared<std::mutex>();
  return [name = std::move(name), mutex](distcache::log_level level, std::string_view line) {
    if (level < distcache::log_level::info) return;
    const char* tag = level == distcache::log_level::error     ? "error"
                      : level == distcache::log_level::warning ? "warning"
                                                               : "info";
    const std::string when = time_of_day();
    std::lock_guard lock(*mutex);
    std::cerr << when << ' ' << name << ' ' << tag << ": " << line << '\n';
  };
}

int run(const options& opts) {
  const std::string name = node_name(opts.bind, opts.port);
  const distcache::logger log = make_logger(name);

  // The database: the table is created when missing; the data source reads through a read-only
  // connection of its own, PUT and DELETE write through `table`.
  connection admin =
      open_database(opts.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX);
  char* sql_error = nullptr;
  if (sqlite3_exec(admin.get(),
                   "CREATE TABLE IF NOT EXISTS users(id TEXT PRIMARY KEY, name TEXT, age INT)",
                   nullptr, nullptr, &sql_error) != SQLITE_OK) {
    const std::string what = sql_error != nullptr ? sql_error : "unknown error";
    sqlite3_free(sql_error);
    throw std::runtime_error("cannot create table users in " + opts.db + ": " + what);
  }
  user_table table(admin);
  auto source_queries = std::make_shared<std::atomic<std::uint64_t>>(0);
  auto stopping = std::make_shared<std::atomic<bool>>(false);
  user_source source(open_database(opts.db, SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX),
                     source_queries, opts.source_delay, stopping);

  distcache::config cfg;
  cfg.threads = 2;
  cfg.fetch_threads = 4;
  cfg.log = log;
  cfg.cluster.enabled = true;
  cfg.cluster.bind_address = opts.bind;
  cfg.cluster.port = opts.port;
  // Quick to notice a node that died: a demo shows it within a second.
  cfg.cluster.probe_interval = 200ms;
  cfg.cluster.failure_threshold = 2;
  cfg.cluster.discovery_interval = 1s;
  // Start alone if need be: the others join the ring as they come up.
  cfg.cluster.minimum_peers_quorum = 1;
  if (opts.ttl.count() > 0) cfg.keyspaces["users"].default_ttl = opts.ttl;
  cfg.max_concurrent_fetches = opts.max_fetches;
  cfg.max_queued_fetches = opts.max_queued_fetches;
  if (opts.admin_port != 0) {
    cfg.admin.enabled = true;
    cfg.admin.bind_address = opts.bind;
    cfg.admin.port = opts.admin_port;
  }
  node_engine cache(cfg, node_discovery(opts), users{.source = std::move(source)});

  // Declared after the engine, so destroyed before it: handlers queued here may refer to it.
  net::thread_pool db_pool(1);
  net::io_context ioc;
  net::signal_set signals(ioc, SIGINT, SIGTERM);  // before start(): a signal then is kept

  // The HTTP port is taken before the cluster is joined, so a port in use fails early.
  tcp::acceptor acceptor(ioc);
  {
    const tcp::endpoint endpoint(net::ip::make_address(opts.bind), opts.http_port);
    boost::system::error_code ec;
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      std::cerr << "example_cluster: cannot listen on " << node_name(opts.bind, opts.http_port)
                << ": " << ec.message() << '\n';
      return 1;
    }
  }

  if (auto r = cache.start(); !r) {
    std::cerr << "example_cluster: cannot start the engine: " << r.error().message() << '\n';
    return 1;
  }

  api app(cache, table, *source_queries, db_pool);
  net::co_spawn(ioc, accept_loop(acceptor, app), net::detached);
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    log(distcache::log_level::info,
        std::string("stopping on ") + (signal == SIGINT ? "SIGINT" : "SIGTERM"));
    stopping->store(true);
    boost::system::error_code ignored;
    acceptor.close(ignored);
    ioc.stop();
  });

  std::cout << "ready " << cache.self_name() << " http=" << acceptor.local_endpoint().port();
  if (cache.admin_port() != 0) std::cout << " admin=" << cache.admin_port();
  std::cout << std::endl;  // flushed: scripts wait for this line

  std::vector<std::thread> http_threads;
  http_threads.reserve(3);
  for (int i = 0; i < 3; ++i) http_threads.emplace_back([&ioc] { ioc.run(); });
  ioc.run();
  for (auto& t : http_threads) t.join();
  // No HTTP handler runs any more. Let the database writes in progress end, then stop the engine:
  // it completes the operations still waiting (their handlers are dropped with `ioc`).
  db_pool.join();
  if (auto r = cache.stop(); !r) {
    std::cerr << "example_cluster: stop: " << r.error().message() << '\n';
    return 1;
  }
  std::cout << "stopped " << name << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  options opts;
  try {
    opts = parse_options(argc, argv);
  } catch (const usage_error& e) {
    std::cerr << "example_cluster: " << e.what() << '\n' << usage_line << '\n';
    return 2;
  }
  if (opts.help) {
    std::cout << usage_line << '\n' << help_text;
    return 0;
  }
  try {
    return run(opts);
  } catch (const std::exception& e) {
    std::cerr << "example_cluster: " << e.what() << '\n';
    return 1;
  }
}
