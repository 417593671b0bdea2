// A peer that is slow or answers garbage never fails a get whose data source
// works: the key is loaded locally and the peer counts in peer_errors.
#include <distcache/engine.hpp>
#include <distcache/transport/http.hpp>
//
#include <doctest/doctest.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <memory>
#include <string>
#include <thread>

#include "support/sources.hpp"

using distcache::test::eventually;
using namespace std::chrono_literals;
namespace net = boost::asio;

namespace {

/// A fake node on 127.0.0.1: answers health probes correctly, and every
/// other request with garbage or not at all (per `mode`). A raw socket
/// server, not an HTTP library, so that it can misbehave freely.
class fake_peer {
 public:
  enum class behaviour { garbage, silent };
  explicit fake_peer(behaviour b)
      : mode_(b), acceptor_(ioc_, net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)) {
    accept();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~fake_peer() {
    net::post(ioc_, [this] {
      acceptor_.close();
      for (auto& s : sockets_) {
        boost::system::error_code ignored;
        s->close(ignored);
      }
    });
    ioc_.stop();
    thread_.join();
  }
  [[nodiscard]] std::string name() const {
    return "127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port());
  }
  std::atomic<int> requests{0};

 private:
  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, net::ip::tcp::socket s) {
      if (ec) return;
      auto sock = std::make_shared<net::ip::tcp::socket>(std::move(s));
      sockets_.push_back(sock);
      read(sock, std::make_shared<net::streambuf>());
      accept();
    });
  }
  void read(const std::shared_ptr<net::ip::tcp::socket>& sock,
            const std::shared_ptr<net::streambuf>& buf) {
    net::async_read_until(
        *sock, *buf, "\r\n\r\n", [this, sock, buf](boost::system::error_code ec, std::size_t n) {
          if (ec) return;
          std::string head(static_cast<const char*>(buf->data().data()), n);
          buf->consume(n);
          // Skip a body, if any (small test bodies arrive with the headers).
          const auto cl = head.find("Content-Length: ");
          if (cl != std::string::npos) {
            const std::size_t len = std::stoul(head.substr(cl + 16));
            buf->consume(std::min(len, buf->size()));
          }
          std::string reply;
          if (head.rfind("GET /_distcache/v1/health", 0) == 0) {
            reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
          } else {
            ++requests;
            if (mode_ == behaviour::silent) return;  // never answers, keeps the socket
            reply = "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n\xff\x01garbg";
          }
          net::async_write(*sock, net::buffer(*std::make_shared<std::string>(reply)),
                           [this, sock, buf, keep = std::make_shared<std::string>(reply)](
                               boost::system::error_code e, std::size_t) {
                             if (!e) read(sock, buf);
                           });
        });
  }

  behaviour mode_;
  net::io_context ioc_;
  net::ip::tcp::acceptor acceptor_;
  std::vector<std::shared_ptr<net::ip::tcp::socket>> sockets_;
  std::thread thread_;
};

struct users {
  static constexpr std::string_view name = "users";
  using value_type = std::string;
  std::int64_t max_bytes = 1 << 20;
  distcache::test::scripted_source source;
};

using static_engine =
    distcache::basic_engine<distcache::policies<distcache::discovery::static_peers>, users>;

void check_survives(fake_peer::behaviour b) {
  fake_peer peer(b);
  distcache::config c;
  c.threads = 1;
  c.read_timeout = 300ms;  // bounds the wait on a silent peer
  c.cluster.enabled = true;
  c.cluster.probe_interval = 1h;  // only requests judge the peer here
  c.cluster.failure_threshold = 1000;
  users u;
  for (int i = 0; i < 40; ++i) u.source.state->set("k" + std::to_string(i), "v");
  static_engine e(c, distcache::discovery::static_peers({peer.name()}), u);
  REQUIRE(e.start());
  REQUIRE(e.cluster_peers() == std::vector<std::string>{peer.name()});
  int remote_owned = 0;
  for (int i = 0; i < 40; ++i) {
    const std::string key = "k" + std::to_string(i);
    if (e.owner_of(key) == peer.name()) ++remote_owned;
    auto v = e.get<users>(key);
    REQUIRE(v.has_value());
    CHECK(**v == "v");
  }
  REQUIRE(remote_owned > 0);
  CHECK(peer.requests == remote_owned);
  CHECK(e.stats<users>().peer_errors == static_cast<std::uint64_t>(remote_owned));
  CHECK(u.source.state->calls == 40);  // every key loaded, locally when the peer failed
}

}  // namespace

TEST_CASE("a peer answering garbage never fails a get: the key is loaded locally") {
  check_survives(fake_peer::behaviour::garbage);
}

TEST_CASE("a peer that never answers never fails a get: the key is loaded locally") {
  check_survives(fake_peer::behaviour::silent);
}
