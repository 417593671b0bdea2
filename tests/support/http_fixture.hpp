// Test doubles and helpers of the HTTP transport tests: a peer_service over a
// map, a logger that captures lines, a client+server pair on 127.0.0.1, and
// raw sockets that send exactly the bytes a test writes.
#ifndef DISTCACHE_TESTS_SUPPORT_HTTP_FIXTURE_HPP
#define DISTCACHE_TESTS_SUPPORT_HTTP_FIXTURE_HPP

#include <doctest/doctest.h>

#include <distcache/transport/http_client.hpp>
#include <distcache/transport/http_server.hpp>

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
    last_wait_ms_ = info.wait_ms;
    last_push_read_ms_ = info.push_read_ms;
  }

  void get(std::string_view ks, std::vector<std::string> keys,
           std::function<void(std::vector<reply_item>)> done) override {
    std::unique_lock lock(mutex_);
    ++gets_;
    get_requests_.push_back(keys);
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
    remove_requests_.push_back(keys);
    std::size_t n = 0;
    for (const auto& k : keys) n += data_[std::string(ks)].erase(k);
    return n;
  }

  void invalidate(std::string_view ks, const std::vector<std::string>& keys) override {
    std::lock_guard lock(mutex_);
    invalidate_requests_.push_back(keys);
    for (const auto& k : keys) invalidated_.push_back(std::string(ks) + "/" + k);
  }

  /// The key list of every get (or get-many), remove and invalidate request
  /// received, in arrival order.
  std::vector<std::vector<std::string>> get_requests() {
    std::lock_guard lock(mutex_);
    return get_requests_;
  }
  std::vector<std::vector<std::string>> remove_requests() {
    std::lock_guard lock(mutex_);
    return remove_requests_;
  }
  std::vector<std::vector<std::string>> invalidate_requests() {
    std::lock_guard lock(mutex_);
    return invalidate_requests_;
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
  /// The DC-Push-Read-Ms of the last keyspace request (0: none).
  std::uint64_t last_push_read_ms() {
    std::lock_guard lock(mutex_);
    return last_push_read_ms_;
  }
  /// The DC-Wait-Ms of the last keyspace request (0: none).
  std::uint64_t last_wait_ms() {
    std::lock_guard lock(mutex_);
    return last_wait_ms_;
  }

 private:
  std::vector<reply_item> lookup(const std::string& ks, const std::vector<std::string>& keys) {
    std::vector<reply_item> items;
    for (const auto& k : keys) {
      if (k.starts_with("error:")) {
        items.emplace_back(reply_item::failed(errc::data_source_failed));
        continue;
      }
      if (k.starts_with("loading:")) {
        items.emplace_back(reply_item::still_loading());
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
  std::vector<std::vector<std::string>> get_requests_;
  std::vector<std::vector<std::string>> remove_requests_;
  std::vector<std::vector<std::string>> invalidate_requests_;
  std::vector<std::function<void()>> blocked_;
  std::size_t gets_ = 0;
  std::string last_from_;
  std::uint64_t last_ring_version_ = 0;
  std::uint64_t last_wait_ms_ = 0;
  std::uint64_t last_push_read_ms_ = 0;
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
  bool contains(std::string_view text) { return count(text) > 0; }
  /// Lines that contain `text`.
  std::size_t count(std::string_view text) {
    std::lock_guard lock(mutex);
    std::size_t n = 0;
    for (const auto& l : lines) n += l.find(text) != std::string::npos ? 1 : 0;
    return n;
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
  /// `tls`: the TLS library of both sides (tests of TLS pass OpenSSL's).
  explicit cluster(server_options so = {}, std::size_t threads = 2,
                   client_options co = make_client_options(),
                   const std::shared_ptr<const distcache::detail::tls_backend>& tls = nullptr) {
    server = std::make_unique<http_server>(ioc, svc, std::move(so), server_log.logger(), tls);
    auto started = server->start();
    REQUIRE(started.has_value());
    client = std::make_unique<http_client>(ioc, std::move(co), client_log.logger(), tls);
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

  /// A warm-up push read at `read_ms`.
  error_code push(const std::string& key, std::string value, std::uint64_t read_ms) {
    std::promise<error_code> p;
    auto f = p.get_future();
    client->push(peer(), "users", key, std::move(value), -1, 7, read_ms, 5s, {},
                 [&p](error_code ec) { p.set_value(ec); });
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
  /// Connects to 127.0.0.1:`port` from `from` (another loopback address
  /// such as "127.0.0.2" stands for another host).
  explicit raw_connection(std::uint16_t port, const char* from = nullptr)
      : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    REQUIRE(fd_ >= 0);
    if (from != nullptr) {
      sockaddr_in local{};
      local.sin_family = AF_INET;
      REQUIRE(::inet_pton(AF_INET, from, &local.sin_addr) == 1);
      REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) == 0);  // NOLINT
    }
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

[[maybe_unused]] std::string key_list(const std::vector<std::string>& keys) {
  std::string out;
  tr::encode_key_list(out, keys);
  return out;
}

/// A POST to a keyspace operation with a DC-From header.
[[maybe_unused]] std::string ks_request(
    std::string_view op, std::string_view body, std::string_view ks = "users",
    std::string_view extra = "DC-From: raw\r\nDC-Cluster: distcache\r\nDC-Ring-Version: 3\r\n",
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
[[maybe_unused]] std::optional<raw_response> raw_exchange(std::uint16_t port,
                                                          std::string_view request) {
  raw_connection c(port);
  REQUIRE(c.connected());
  c.send(request);
  return c.read_response();
}

}  // namespace

#endif  // DISTCACHE_TESTS_SUPPORT_HTTP_FIXTURE_HPP
