// libFuzzer target: the peer server's request path, bytes in -> response or
// close. One real http_server on 127.0.0.1 serves every input: each input is
// sent on a new TCP connection, whose write side is then shut; the server
// must answer what it can and close the connection within the deadline,
// and every answer must be an HTTP/1.1 response. Every 256 inputs a health
// request checks that the server still serves.
#include <distcache/transport/http_server.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace tr = distcache::transport;
namespace net = boost::asio;

namespace {

/// A keyspace "users" in a map: enough for every operation to do its work.
class map_service final : public tr::peer_service {
 public:
  [[nodiscard]] bool has_keyspace(std::string_view ks) const override { return ks == "users"; }
  void get(std::string_view /*ks*/, std::vector<std::string> keys,
           std::function<void(std::vector<tr::reply_item>)> done) override {
    std::vector<tr::reply_item> items;
    items.reserve(keys.size());
    {
      std::lock_guard lock(mutex_);
      for (const auto& k : keys) {
        auto it = values_.find(k);
        items.push_back(it == values_.end() ? tr::reply_item::missing()
                                            : tr::reply_item::found(it->second, 1000));
      }
    }
    done(std::move(items));
  }
  distcache::error_code set(std::string_view /*ks*/, std::string key, std::string value,
                            std::int64_t /*ttl_ms*/) override {
    std::lock_guard lock(mutex_);
    if (values_.size() >= 1000) values_.clear();  // bounded across millions of inputs
    values_[std::move(key)] = std::move(value);
    return {};
  }
  std::size_t remove(std::string_view /*ks*/, const std::vector<std::string>& keys) override {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (const auto& k : keys) n += values_.erase(k);
    return n;
  }
  void invalidate(std::string_view ks, const std::vector<std::string>& keys) override {
    (void)remove(ks, keys);
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::string> values_;
};

struct server_fixture {
  server_fixture() {
    tr::server_options o;
    o.read_timeout = std::chrono::seconds(1);
    o.idle_timeout = std::chrono::seconds(1);
    o.limits.max_body_bytes = std::size_t{1} << 20;
    o.limits.max_value_bytes = std::size_t{64} << 10;
    o.max_inflight_bytes = std::size_t{4} << 20;
    server = std::make_unique<tr::http_server>(ioc, service, o,
                                               [](distcache::log_level, std::string_view) {});
    if (!server->start()) std::abort();
    port = server->port();
    runner = std::thread([this] { ioc.run(); });
  }
  // Lives until the process exits (libFuzzer exits without unwinding).
  net::io_context ioc;
  net::executor_work_guard<net::io_context::executor_type> work{ioc.get_executor()};
  map_service service;
  std::unique_ptr<tr::http_server> server;
  std::uint16_t port = 0;
  std::thread runner;
};

server_fixture& fixture() {
  static auto* f = new server_fixture;  // NOLINT(cppcoreguidelines-owning-memory): never freed
  return *f;
}

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "peer_request_fuzz: %s\n", what);
    std::abort();  // libFuzzer reports the input
  }
}

/// One connection's outcome: what the server sent until it closed, or that
/// the server never saw the connection.
struct attempt {
  bool stalled = false;  // never accepted by the server: the kernel's doing
  std::string reply;
};

/// Sends `bytes` on a new connection, shuts the write side and reads all
/// the server sends until it closes; aborts when the server accepted the
/// connection but neither answered nor closed within 5 s.
attempt try_exchange(server_fixture& f, std::string_view bytes) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  check(fd >= 0, "socket");
  // Each connection comes from the next of 4,096 loopback addresses: this
  // side closes first, so every connection leaves a socket in TIME_WAIT for
  // a minute, tens of thousands at this rate, and a connect() may find its
  // port taken or (rarely) complete without reaching the listener.
  static std::uint32_t next_source = 0;
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_addr.s_addr = htonl(0x7F010000U + (next_source++ % 4096));  // 127.1.0.0/20
  ::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local);        // NOLINT
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(f.port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const auto accepted_before = f.server->stats().connections_accepted;
  attempt out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {  // NOLINT
    // A source port still in TIME_WAIT (see above): another address will do.
    ::close(fd);
    out.stalled = true;
    return out;
  }
  while (!bytes.empty()) {
    const auto n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may close early (a 4xx); that is fine
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  ::shutdown(fd, SHUT_WR);
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) == 1) {
      char buf[16384];
      const auto n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      out.reply.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    const auto waited = std::chrono::steady_clock::now() - start;
    // After tens of thousands of connections from 127.0.0.0/8 in a minute,
    // Linux now and then completes a connect() whose connection never
    // reaches the listener (seen about once in 30,000): the server cannot
    // answer what it never accepted, so that is retried, not reported.
    if (waited > std::chrono::seconds(1) && out.reply.empty() &&
        f.server->stats().connections_accepted == accepted_before) {
      out.stalled = true;
      break;
    }
    check(waited < std::chrono::seconds(5), "the server neither answered nor closed within 5 s");
  }
  ::close(fd);
  return out;
}

/// try_exchange, again on a new connection when the kernel stalled one.
std::string exchange(server_fixture& f, std::string_view bytes) {
  for (int i = 0; i < 5; ++i) {
    auto a = try_exchange(f, bytes);
    if (!a.stalled) return std::move(a.reply);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // let the kernel settle
  }
  check(false, "five connections in a row never reached the server");
  return {};
}

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): the entry point libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto& f = fixture();
  const std::string reply =
      exchange(f, std::string_view(reinterpret_cast<const char*>(data), size));  // NOLINT
  check(reply.empty() || reply.starts_with("HTTP/1.1 "), "an answer that is not HTTP/1.1");
  static unsigned count = 0;
  if (++count % 256 == 0) {
    const std::string health = exchange(
        f, "GET /_distcache/v1/health HTTP/1.1\r\nHost: x\r\nDC-Cluster: distcache\r\n\r\n");
    check(health.starts_with("HTTP/1.1 200 OK"), "health failed after an input");
  }
  return 0;
}
