#include <distcache/transport/http_server.hpp>
//
#include <distcache/transport/http_client.hpp>
//
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <condition_variable>
#include <distcache/error.hpp>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using distcache::errc;
using distcache::error_code;
using distcache::log_level;
using distcache::transport::client_options;
using distcache::transport::http_client;
using distcache::transport::http_server;
using distcache::transport::reply_item;
using distcache::transport::server_options;
namespace tr = distcache::transport;
namespace net = boost::asio;
namespace http = boost::beast::http;

namespace {

// How long any wait in these tests may take before the test fails; generous
// because sanitizer builds are slow. Nothing waits for it to pass.
constexpr auto bound = 10s;

/// Stands in for the engine: keyspaces "users" and "sessions" backed by
/// std::map. Keys starting with "error:" fail to load; gets of keys starting
/// with "block:" wait until release().
class map_service final : public tr::peer_service {
 public:
  bool has_keyspace(std::string_view ks) const override {
    return ks == "users" || ks == "sessions" || ks == odd_keyspace;
  }

  /// A keyspace name that needs percent-encoding in the path.
  static constexpr std::string_view odd_keyspace = "odd ks/1%\xc3\xa9";

  void on_peer_request(const tr::request_info& info) override {
    std::lock_guard lock(mutex_);
    last_from_ = std::string(info.from);
    last_ring_version_ = info.ring_version;
  }

  void get(std::string_view ks, std::vector<std::string> keys,
           std::function<void(std::vector<reply_item>)> done) override {
    std::unique_lock lock(mutex_);
    ++gets_;
    if (!keys.empty() && keys[0].starts_with("block:")) {
      blocked_.emplace_back([this, ks = std::string(ks), keys, done]() { done(lookup(ks, keys)); });
      cv_.notify_all();
      return;
    }
    auto items = lookup(std::string(ks), keys);
    lock.unlock();
    done(std::move(items));  // inline, as a cache hit in the engine would
  }

  error_code set(std::string_view ks, std::string key, std::string value,
                 std::int64_t ttl_ms) override {
    if (key == "refuse") return errc::value_too_large;
    std::lock_guard lock(mutex_);
    data_[std::string(ks)][key] = reply_item::found(std::move(value), ttl_ms);
    return {};
  }

  std::size_t remove(std::string_view ks, const std::vector<std::string>& keys) override {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (const auto& k : keys) n += data_[std::string(ks)].erase(k);
    return n;
  }

  void invalidate(std::string_view ks, const std::vector<std::string>& keys) override {
    std::lock_guard lock(mutex_);
    for (const auto& k : keys) invalidated_.push_back(std::string(ks) + "/" + k);
  }

  /// Waits until `n` gets are blocked; false after `bound`.
  bool wait_blocked(std::size_t n) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, bound, [&] { return blocked_.size() >= n; });
  }

  /// Completes every blocked get.
  void release() {
    std::vector<std::function<void()>> pending;
    {
      std::lock_guard lock(mutex_);
      pending.swap(blocked_);
    }
    for (auto& p : pending) p();
  }

  void put(const std::string& ks, const std::string& key, reply_item item) {
    std::lock_guard lock(mutex_);
    data_[ks][key] = std::move(item);
  }
  std::optional<reply_item> find(const std::string& ks, const std::string& key) {
    std::lock_guard lock(mutex_);
    auto& m = data_[ks];
    auto it = m.find(key);
    if (it == m.end()) return std::nullopt;
    return it->second;
  }
  std::vector<std::string> invalidated() {
    std::lock_guard lock(mutex_);
    return invalidated_;
  }
  std::pair<std::string, std::uint64_t> last_sender() {
    std::lock_guard lock(mutex_);
    return {last_from_, last_ring_version_};
  }

 private:
  std::vector<reply_item> lookup(const std::string& ks, const std::vector<std::string>& keys) {
    std::vector<reply_item> items;
    for (const auto& k : keys) {
      if (k.starts_with("error:")) {
        items.emplace_back(reply_item::failed(errc::data_source_failed));
        continue;
      }
      auto& m = data_[ks];
      auto it = m.find(k);
      items.push_back(it == m.end() ? reply_item::missing() : it->second);
    }
    return items;
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::map<std::string, std::map<std::string, reply_item>> data_;
  std::vector<std::string> invalidated_;
  std::vector<std::function<void()>> blocked_;
  std::size_t gets_ = 0;
  std::string last_from_;
  std::uint64_t last_ring_version_ = 0;
};

/// Collects log lines; thread-safe.
struct log_capture {
  std::mutex mutex;
  std::vector<std::string> lines;
  distcache::logger logger() {
    return [this](log_level, std::string_view line) {
      std::lock_guard lock(mutex);
      lines.emplace_back(line);
    };
  }
  std::size_t size() {
    std::lock_guard lock(mutex);
    return lines.size();
  }
  std::string last() {
    std::lock_guard lock(mutex);
    return lines.empty() ? std::string() : lines.back();
  }
  bool contains(std::string_view text) {
    std::lock_guard lock(mutex);
    for (const auto& l : lines)
      if (l.find(text) != std::string::npos) return true;
    return false;
  }
};

/// Waits until `pred()` holds, polling; false after `bound`.
template <class Pred>
bool eventually(Pred pred) {
  const auto until = std::chrono::steady_clock::now() + bound;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::yield();
  }
  return true;
}

/// A server and a client on one io_context run by `threads` threads.
struct cluster {
  explicit cluster(server_options so = {}, std::size_t threads = 2,
                   client_options co = make_client_options()) {
    server = std::make_unique<http_server>(ioc, svc, std::move(so), server_log.logger());
    auto started = server->start();
    REQUIRE(started.has_value());
    client = std::make_unique<http_client>(ioc, std::move(co), client_log.logger());
    for (std::size_t i = 0; i < threads; ++i) runners.emplace_back([this] { ioc.run(); });
  }
  cluster(const cluster&) = delete;
  cluster& operator=(const cluster&) = delete;

  ~cluster() {  // NOLINT(bugprone-exception-escape): test teardown
    client->close();
    server->stop();
    svc.release();
    CHECK(server->wait_idle(bound));
    work.reset();
    ioc.stop();
    for (auto& t : runners) t.join();
    client.reset();
    server.reset();
  }

  static client_options make_client_options() {
    client_options o;
    o.self_name = "node-a";
    return o;
  }

  [[nodiscard]] std::string peer() const { return "127.0.0.1:" + std::to_string(server->port()); }

  std::pair<error_code, std::vector<reply_item>> get(std::vector<std::string> keys,
                                                     const std::string& ks = "users",
                                                     distcache::duration timeout = 5s,
                                                     const std::string& to = {}) {
    std::promise<std::pair<error_code, std::vector<reply_item>>> p;
    auto f = p.get_future();
    client->get(to.empty() ? peer() : to, ks, std::move(keys), 7, timeout,
                [&p](error_code ec, std::vector<reply_item> items) {
                  p.set_value({ec, std::move(items)});
                });
    REQUIRE(f.wait_for(bound) == std::future_status::ready);
    return f.get();
  }

  error_code set(const std::string& key, std::string value, std::int64_t ttl = -1,
                 const std::string& ks = "users") {
    std::promise<error_code> p;
    auto f = p.get_future();
    client->set(peer(), ks, key, std::move(value), ttl, 7, 5s,
                [&p](error_code ec) { p.set_value(ec); });
    REQUIRE(f.wait_for(bound) == std::future_status::ready);
    return f.get();
  }

  std::pair<error_code, std::size_t> remove(std::vector<std::string> keys) {
    std::promise<std::pair<error_code, std::size_t>> p;
    auto f = p.get_future();
    client->remove(peer(), "users", std::move(keys), 7, 5s, [&p](error_code ec, std::size_t n) {
      p.set_value({ec, n});
    });
    REQUIRE(f.wait_for(bound) == std::future_status::ready);
    return f.get();
  }

  error_code invalidate(std::vector<std::string> keys) {
    std::promise<error_code> p;
    auto f = p.get_future();
    client->invalidate(peer(), "sessions", std::move(keys), 7, 5s,
                       [&p](error_code ec) { p.set_value(ec); });
    REQUIRE(f.wait_for(bound) == std::future_status::ready);
    return f.get();
  }

  error_code health(const std::string& to = {}) {
    std::promise<error_code> p;
    auto f = p.get_future();
    client->health(to.empty() ? peer() : to, 5s, [&p](error_code ec) { p.set_value(ec); });
    REQUIRE(f.wait_for(bound) == std::future_status::ready);
    return f.get();
  }

  map_service svc;
  log_capture server_log;
  log_capture client_log;
  net::io_context ioc;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work{ioc.get_executor()};
  std::unique_ptr<http_server> server;
  std::unique_ptr<http_client> client;
  std::vector<std::thread> runners;
};

/// A response read by raw_connection.
struct raw_response {
  unsigned status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // names lower-case
  bool keep_alive = true;
};

/// A plain blocking socket, for sending what no correct client sends. Every
/// read has a deadline.
class raw_connection {
 public:
  explicit raw_connection(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    REQUIRE(fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;  // NOLINT
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  raw_connection(const raw_connection&) = delete;
  raw_connection& operator=(const raw_connection&) = delete;
  ~raw_connection() {
    if (fd_ >= 0) ::close(fd_);
  }

  [[nodiscard]] bool connected() const { return connected_; }

  /// Sends everything; false when the peer reset the connection.
  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      const auto n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }

  void close() {
    ::close(fd_);
    fd_ = -1;
  }

  /// Reads one response; nullopt when the connection closed (or reset)
  /// before a complete one. Fails the test after `bound`.
  std::optional<raw_response> read_response() {
    http::response_parser<http::string_body> parser;
    parser.body_limit(1 << 30);
    parser.eager(true);
    for (;;) {
      if (!pending_.empty()) {
        boost::beast::error_code ec;
        const auto used = parser.put(net::buffer(pending_), ec);
        pending_.erase(0, used);
        if (ec && ec != http::error::need_more) return std::nullopt;
        if (parser.is_done()) {
          raw_response r;
          auto& msg = parser.get();
          r.status = msg.result_int();
          r.body = msg.body();
          r.keep_alive = msg.keep_alive();
          for (const auto& f : msg) {
            std::string name(f.name_string());
            for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            r.headers[name] = std::string(f.value());
          }
          return r;
        }
        if (!ec && used > 0 && !pending_.empty()) continue;
      }
      if (!receive()) return std::nullopt;
    }
  }

  /// True when the server closes the connection within `bound` (after
  /// possibly sending something); reads and discards.
  bool wait_closed() {
    while (receive()) pending_.clear();
    return closed_;
  }

 private:
  /// Appends what arrives to pending_; false on EOF or error. Fails the test
  /// when nothing arrives within `bound`.
  bool receive() {
    pollfd p{fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(std::chrono::milliseconds(bound).count()));
    REQUIRE_MESSAGE(ready == 1, "no data and no close from the server within the bound");
    char buf[65536];
    const auto n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      closed_ = true;
      return false;
    }
    pending_.append(buf, static_cast<std::size_t>(n));
    return true;
  }

  int fd_;
  bool connected_ = false;
  bool closed_ = false;
  std::string pending_;
};

std::string key_list(const std::vector<std::string>& keys) {
  std::string out;
  tr::encode_key_list(out, keys);
  return out;
}

/// A POST to a keyspace operation with a DC-From header.
std::string ks_request(std::string_view op, std::string_view body, std::string_view ks = "users",
                       std::string_view extra = "DC-From: raw\r\nDC-Ring-Version: 3\r\n",
                       std::string_view method = "POST") {
  std::string r(method);
  r += " /_distcache/v1/ks/";
  r += ks;
  r += "/";
  r += op;
  r += " HTTP/1.1\r\nHost: x\r\n";
  r += extra;
  r += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  r += body;
  return r;
}

/// Sends `request` on a new connection and returns the response (nullopt if
/// the server closed without one).
std::optional<raw_response> raw_exchange(std::uint16_t port, std::string_view request) {
  raw_connection c(port);
  REQUIRE(c.connected());
  c.send(request);
  return c.read_response();
}

}  // namespace

TEST_CASE("http client and server round-trip every request type") {
  cluster cl;
  CHECK_FALSE(cl.health());

  CHECK_FALSE(cl.set("user:1", "alice", 1500));
  auto stored = cl.svc.find("users", "user:1");
  REQUIRE(stored);
  CHECK(stored->value == "alice");
  CHECK(stored->ttl_ms == 1500);
  CHECK(cl.svc.last_sender() == std::pair<std::string, std::uint64_t>{"node-a", 7});

  auto [ec, items] = cl.get({"user:1"});
  REQUIRE_FALSE(ec);
  REQUIRE(items.size() == 1);
  CHECK(items[0] == reply_item::found("alice", 1500));

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
    c.send("GET /_distcache/v1/health HTTP/1.1\r\nHost: x\r\n\r\n");
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
         "GET /_distcache/v1/health HTTP/1.1\r\n\r\n");
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
       ks_request("get", key_list({"a"}), "users", "DC-From: r\r\nDC-Ring-Version: x\r\n"), 400,
       "DC-Ring-Version"},
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
  c.send("GET /_distcache/v1/health HTTP/1.1\r\n\r\n");
  auto ok = c.read_response();
  REQUIRE(ok);
  CHECK(ok->status == 200);
}

TEST_CASE("http server rejects a body over max_body_bytes from its Content-Length") {
  cluster cl;
  raw_connection c(cl.server->port());
  c.send("POST /_distcache/v1/ks/users/set HTTP/1.1\r\nDC-From: raw\r\nContent-Length: " +
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
      "POST /_distcache/v1/ks/users/set HTTP/1.1\r\nDC-From: raw\r\nContent-Length: 100\r\n\r\n"
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
      "POST /_distcache/v1/ks/users/set HTTP/1.1\r\nDC-From: raw\r\n"
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
      "POST /_distcache/v1/ks/users/set HTTP/1.1\r\nDC-From: raw\r\nExpect: 100-continue\r\n"
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
  idle.send("GET /_distcache/v1/health HTTP/1.1\r\n\r\n");
  REQUIRE(idle.read_response());

  raw_connection busy(cl.server->port());
  // A get that blocks, and behind it on the same connection a request that
  // the server reads only after stop().
  busy.send(ks_request("get", key_list({"block:3"})) +
            "GET /_distcache/v1/health HTTP/1.1\r\n\r\n");
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
