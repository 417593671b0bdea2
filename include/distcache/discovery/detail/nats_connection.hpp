// distcache — discovery::nats: its vocabulary (errors, options) and the
// connection to the NATS server that runs on the provider's own thread.
#ifndef DISTCACHE_DISCOVERY_DETAIL_NATS_CONNECTION_HPP
#define DISTCACHE_DISCOVERY_DETAIL_NATS_CONNECTION_HPP

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <distcache/clock.hpp>
#include <distcache/config.hpp>
#include <distcache/detail/config.hpp>
#include <distcache/discovery/detail/tls_client.hpp>
#include <distcache/discovery/provider.hpp>
#include <distcache/error.hpp>
#include <functional>
#include <future>
#include <istream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace distcache::discovery {

/// Why the NATS provider cannot answer.
enum class nats_errc {
  not_connected = 1,  ///< no connection to the server now (it reconnects by itself)
  authorization,      ///< the server refused the credentials
  tls_unavailable,    ///< nats_options.tls is set but the server does not offer TLS
  connect_timeout,    ///< no answer from the server within connect_timeout
};

/// The category of nats_errc: "distcache.nats".
inline const boost::system::error_category& nats_category() noexcept {
  class category final : public boost::system::error_category {
   public:
    [[nodiscard]] const char* name() const noexcept override { return "distcache.nats"; }
    [[nodiscard]] std::string message(int ev) const override {
      switch (static_cast<nats_errc>(ev)) {
        case nats_errc::not_connected:
          return "NATS: not connected to the server (reconnecting)";
        case nats_errc::authorization:
          return "NATS: the server refused the credentials (Authorization Violation)";
        case nats_errc::tls_unavailable:
          return "NATS: TLS was asked for (nats_options.tls) but the server does not offer it";
        case nats_errc::connect_timeout:
          return "NATS: the server did not complete the handshake within connect_timeout";
      }
      return "NATS: unknown error";
    }
  };
  static const category c;
  return c;
}

inline error_code make_error_code(nats_errc e) noexcept {
  return {static_cast<int>(e), nats_category()};
}

}  // namespace distcache::discovery

template <>
struct boost::system::is_error_code_enum<distcache::discovery::nats_errc> : std::true_type {};

namespace distcache::discovery {

/// Where the NATS server is and how to talk to it.
struct nats_options {
  /// "host:port" of the server (IPv6 in brackets). Required.
  std::string server;
  /// Username and password (nats-server --user/--pass); both or neither.
  std::string user;
  std::string password;
  /// Token (nats-server --auth); not with user/password.
  std::string token;
  /// TLS is used when the server requires it (its INFO says tls_required),
  /// or always with `tls` true (a server without TLS is then refused). The
  /// server's certificate is verified against `tls_ca_file` (empty: the
  /// system's CAs) and `tls_server_name` (empty: the host of `server`).
  bool tls = false;
  std::string tls_ca_file;
  /// A client certificate and its key, for servers that verify clients
  /// (nats-server --tlsverify); both or neither.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_server_name;
  /// First part of the subjects; the cluster name is the second.
  std::string subject_prefix = "distcache";
  /// The cluster's name (use config.cluster.name): nodes of other clusters on
  /// the same server use other subjects.
  std::string cluster = "distcache";
  /// How long initialize() waits for the first handshake.
  duration connect_timeout = std::chrono::seconds(2);
  /// Reconnect backoff: the first wait, doubled up to the second.
  duration reconnect_min = std::chrono::milliseconds(100);
  duration reconnect_max = std::chrono::seconds(2);
  /// How long an address stays known after it was last heard.
  duration peer_ttl = std::chrono::seconds(30);
  /// Log lines (connects, losses, malformed messages); default: std::cerr.
  logger log;
};

}  // namespace distcache::discovery

namespace distcache::detail {

/// The head of a NATS `MSG <subject> <sid> [reply-to] <#bytes>` line.
struct nats_msg_head {
  std::string_view subject;
  std::string_view reply;  // empty when the line has none
  std::size_t size = 0;    // payload bytes that follow the line (and CRLF)
};

/// Parses a MSG line (without its CRLF); nullopt when it is not one this
/// client accepts: not 4 or 5 fields separated by runs of spaces or tabs
/// (the protocol's whitespace), or a size that is not decimal or over
/// 1 MiB. The views point into `line`.
inline std::optional<nats_msg_head> parse_nats_msg(std::string_view line) {
  if (!line.starts_with("MSG ")) return std::nullopt;
  std::array<std::string_view, 5> parts{};
  std::size_t count = 0;
  constexpr std::string_view blanks = " \t";
  for (std::size_t at = line.find_first_not_of(blanks); at != std::string_view::npos;
       at = line.find_first_not_of(blanks, at)) {
    if (count == parts.size()) return std::nullopt;
    const auto end = std::min(line.find_first_of(blanks, at), line.size());
    parts[count++] = line.substr(at, end - at);
    at = end;
  }
  if (count != 4 && count != 5) return std::nullopt;
  const std::string_view digits = parts[count - 1];
  if (digits.empty()) return std::nullopt;
  std::size_t n = 0;
  for (char c : digits) {
    if (c < '0' || c > '9' || n > (std::size_t{1} << 20)) return std::nullopt;
    n = n * 10 + static_cast<std::size_t>(c - '0');
  }
  if (n > (std::size_t{1} << 20)) return std::nullopt;
  return nats_msg_head{parts[1], count == 5 ? parts[3] : std::string_view{}, n};
}

/// A node's announcement: "+host:port" (here) or "-host:port" (leaving).
struct nats_announcement {
  bool joined = false;
  std::string_view address;
};

/// Parses an announcement payload; nullopt unless it is '+' or '-' and a
/// valid peer address.
inline std::optional<nats_announcement> parse_nats_announcement(std::string_view payload) {
  if (payload.size() < 2 || (payload[0] != '+' && payload[0] != '-')) return std::nullopt;
  if (!valid_peer_address(payload.substr(1))) return std::nullopt;
  return nats_announcement{payload[0] == '+', payload.substr(1)};
}

/// One connection to a NATS server on a thread of its own: handshake,
/// reconnects with backoff, subscriptions, announcements, answers to
/// discovery requests, and the addresses heard (under `mutex`).
struct nats_connection : std::enable_shared_from_this<nats_connection> {
  explicit nats_connection(discovery::nats_options o)
      : opts(std::move(o)), socket(ioc), backoff_timer(ioc) {
    std::random_device rd;
    inbox = "_INBOX.distcache." + std::to_string(rd()) + std::to_string(rd());
  }

  void start() {
    net::co_spawn(ioc, run(shared_from_this()), net::detached);
    thread = std::thread([this] { ioc.run(); });
  }

  void stop() {
    if (!thread.joinable()) return;
    net::post(ioc, [this] {
      stopping = true;
      error_code ignored;
      socket.close(ignored);
      backoff_timer.cancel();
    });
    if (thread.joinable()) thread.join();
  }

  void log_line(log_level level, const std::string& line) const {
    log_quietly(opts.log, level, "discovery::nats " + opts.server + ": " + line);
  }

  [[nodiscard]] std::string subject(std::string_view what) const {
    return opts.subject_prefix + "." + opts.cluster + "." + std::string(what);
  }

  // ---- on the provider's thread ----------------------------------------

  // The connection's stream: TLS over the socket once start_tls() ran.
  template <class Op>
  decltype(auto) io(Op&& op) {
    return tls ? op(*tls) : op(socket);
  }

  void send(std::string bytes) {
    if (!connected_now) return;
    outbox.push_back(std::move(bytes));
    if (!writing) write_next();
  }
  void write_next() {
    if (outbox.empty()) {
      writing = false;
      auto waiting = std::move(flush_waiters);
      flush_waiters.clear();
      for (auto& f : waiting) f();
      return;
    }
    writing = true;
    io([&](auto& stream) {
      net::async_write(stream, net::buffer(outbox.front()),
                       [self = shared_from_this()](error_code ec, std::size_t) {
                         self->outbox.pop_front();
                         if (ec) {
                           self->outbox.clear();
                           self->writing = false;
                           auto waiting = std::move(self->flush_waiters);
                           self->flush_waiters.clear();
                           for (auto& f : waiting) f();
                           return;
                         }
                         self->write_next();
                       });
    });
  }
  void flush_then(std::function<void()> f) {
    if (!writing) return f();
    flush_waiters.push_back(std::move(f));
  }
  void publish(const std::string& subj, const std::string& reply, const std::string& payload) {
    std::string m = "PUB " + subj;
    if (!reply.empty()) m += " " + reply;
    m += " " + std::to_string(payload.size()) + "\r\n" + payload + "\r\n";
    send(std::move(m));
  }
  [[nodiscard]] std::string self_now() {
    std::lock_guard lock(mutex);
    return self;
  }
  void announce() {
    const auto me = self_now();
    if (me.empty() || !connected_now) return;
    publish(subject("announce"), "", "+" + me);
    request_discovery();
  }
  void request_discovery() {
    if (connected_now) publish(subject("discover"), inbox, "?");
  }

  void on_message(std::string_view subj, std::string_view reply, std::string_view payload) {
    if (subj == subject("discover")) {
      const auto me = self_now();
      if (!me.empty() && !reply.empty()) publish(std::string(reply), "", "+" + me);
      return;
    }
    // announce or our inbox: "+addr" or "-addr"
    const auto announcement = parse_nats_announcement(payload);
    if (!announcement) {
      ++malformed;
      log_line(log_level::warning, "malformed message on " + std::string(subj) + " ignored (" +
                                       std::to_string(payload.size()) + " bytes)");
      return;
    }
    const std::string addr(announcement->address);
    std::function<void()> notify;
    {
      std::lock_guard lock(mutex);
      bool changed = false;
      if (announcement->joined) {
        changed = known.insert_or_assign(addr, clock_type::now()).second;
      } else {
        changed = known.erase(addr) > 0;
      }
      if (changed && addr != self) notify = on_change;
    }
    if (notify) notify();  // a node came or left: the engine asks at once
  }

  static net::awaitable<void> run(std::shared_ptr<nats_connection> self) {
    duration wait = self->opts.reconnect_min;
    bool ever = false;
    while (!self->stopping) {
      const error_code ec = co_await self->session(ever);
      if (self->stopping) break;
      {
        std::lock_guard lock(self->mutex);
        if (self->connected) self->log_line(log_level::warning, "connection lost: " + ec.message());
        self->connected = false;
        self->attempted = true;
      }
      self->connected_now = false;
      self->cv.notify_all();
      if (self->handshook) {
        ever = true;
        self->handshook = false;
        wait = self->opts.reconnect_min;
      }
      self->backoff_timer.expires_after(wait);
      error_code ignored;
      co_await self->backoff_timer.async_wait(net::redirect_error(net::use_awaitable, ignored));
      wait = std::min<duration>(wait * 2, self->opts.reconnect_max);
    }
  }

  // One connection: handshake, subscriptions, then messages until it fails.
  net::awaitable<error_code> session(bool reconnect) {
    error_code ec;
    tls.reset();  // it refers to the socket
    socket = net::ip::tcp::socket(ioc);
    net::ip::tcp::resolver resolver(ioc);
    std::string host;
    std::string port;
    split(opts.server, host, port);
    auto endpoints =
        co_await resolver.async_resolve(host, port, net::redirect_error(net::use_awaitable, ec));
    if (ec) co_return ec;
    // The handshake has connect_timeout: a server that accepts and says
    // nothing does not hold the loop.
    net::steady_timer guard(ioc, opts.connect_timeout);
    guard.async_wait([this](error_code e) {
      if (!e && !handshook) {
        error_code ignored;
        socket.close(ignored);
      }
    });
    co_await net::async_connect(socket, endpoints, net::redirect_error(net::use_awaitable, ec));
    if (ec) co_return ec;
    net::streambuf in(1 << 20);
    std::string line;
    if (ec = co_await read_line(in, line); ec) co_return ec;
    if (!line.starts_with("INFO ")) co_return make_error_code(errc::peer_unavailable);
    const bool server_tls = line.find("\"tls_required\":true") != std::string::npos;
    if (opts.tls && !server_tls) {
      fail_fatal(make_error_code(discovery::nats_errc::tls_unavailable));
      co_return make_error_code(discovery::nats_errc::tls_unavailable);
    }
    if (server_tls) {
      // The server upgrades after its INFO; the verification failures of
      // TLS (another CA, another name, no client certificate) are lasting.
      if (ec = co_await start_tls(); ec) {
        if (ec.category() == net::error::get_ssl_category()) fail_fatal(ec);
        co_return ec;
      }
    }
    std::string connect = R"(CONNECT {"verbose":false,"pedantic":false,"lang":"cpp",)"
                          R"("name":"distcache","version":"1","protocol":1)";
    if (!opts.user.empty()) {
      connect +=
          R"(,"user":)" + json_string(opts.user) + R"(,"pass":)" + json_string(opts.password);
    }
    if (!opts.token.empty()) connect += R"(,"auth_token":)" + json_string(opts.token);
    connect += "}\r\nPING\r\n";
    co_await io([&](auto& stream) {
      return net::async_write(stream, net::buffer(connect),
                              net::redirect_error(net::use_awaitable, ec));
    });
    if (ec) co_return ec;
    while (true) {
      if (ec = co_await read_line(in, line); ec) {
        // TLS 1.3: a server that refuses our certificate (or its absence)
        // says so after the handshake, with an alert, and closes. When the
        // close overtakes the alert (a reset discards it), the refusal
        // reaches us as a plain end of stream. Before the first PONG ever,
        // over TLS, either is the server's refusal: lasting.
        if (ec.category() == net::error::get_ssl_category() || (server_tls && !reconnect)) {
          if (ec.category() != net::error::get_ssl_category()) {
            log_line(log_level::error,
                     "the server closed the connection after the TLS handshake (" + ec.message() +
                         "): it refuses this client's certificate, or its absence");
          }
          fail_fatal(ec);
        }
        co_return ec;
      }
      if (line == "PONG") break;
      if (line.starts_with("-ERR")) {
        log_line(log_level::error, "server said " + line);
        if (line.find("uthorization") != std::string::npos ||
            line.find("uthentication") != std::string::npos) {
          fail_fatal(make_error_code(discovery::nats_errc::authorization));
          co_return make_error_code(discovery::nats_errc::authorization);
        }
        co_return make_error_code(errc::peer_unavailable);
      }
      if (line == "PING") co_await write_now("PONG\r\n");
    }
    handshook = true;
    guard.cancel();
    connected_now = true;
    if (reconnect) ++reconnects;
    send("SUB " + subject("announce") + " 1\r\nSUB " + subject("discover") + " 2\r\nSUB " + inbox +
         " 3\r\n");
    {
      std::lock_guard lock(mutex);
      connected = true;
      attempted = true;
      fatal = {};
    }
    cv.notify_all();
    log_line(reconnect ? log_level::info : log_level::debug,
             reconnect ? "reconnected" : "connected");
    announce();
    // Messages until the connection fails.
    while (true) {
      if (ec = co_await read_line(in, line); ec) co_return ec;
      if (line == "PING") {
        send("PONG\r\n");
      } else if (line.starts_with("MSG ")) {
        const auto head = parse_nats_msg(line);
        if (!head) co_return make_error_code(errc::peer_unavailable);
        const std::size_t n = head->size;
        if (in.size() < n + 2) {
          co_await io([&](auto& stream) {
            return net::async_read(stream, in, net::transfer_exactly(n + 2 - in.size()),
                                   net::redirect_error(net::use_awaitable, ec));
          });
          if (ec) co_return ec;
        }
        std::string payload(n + 2, '\0');
        in.sgetn(payload.data(), static_cast<std::streamsize>(n + 2));
        payload.resize(n);
        const std::string subj(head->subject);
        const std::string reply(head->reply);
        on_message(subj, reply, payload);
      } else if (line.starts_with("-ERR")) {
        log_line(log_level::warning, "server said " + line);
      }
      // +OK, PONG, INFO (cluster updates): nothing to do.
    }
  }

  net::awaitable<error_code> read_line(net::streambuf& in, std::string& line) {
    error_code ec;
    const std::size_t n = co_await io([&](auto& stream) {
      return net::async_read_until(stream, in, "\r\n", net::redirect_error(net::use_awaitable, ec));
    });
    if (ec) co_return ec;
    line.resize(n);
    in.sgetn(line.data(), static_cast<std::streamsize>(n));
    line.resize(n - 2);
    co_return error_code{};
  }
  net::awaitable<void> write_now(std::string bytes) {
    error_code ec;
    co_await io([&](auto& stream) {
      return net::async_write(stream, net::buffer(bytes),
                              net::redirect_error(net::use_awaitable, ec));
    });
  }

  net::awaitable<error_code> start_tls() {
    std::string why;
    tls_context = std::make_unique<net::ssl::context>(net::ssl::context::tls_client);
    if (auto ec = configure_tls_client(*tls_context, opts.tls_ca_file, opts.tls_cert_file,
                                       opts.tls_key_file, why)) {
      log_line(log_level::error, why);
      fail_fatal(ec);
      co_return ec;
    }
    tls = std::make_unique<net::ssl::stream<net::ip::tcp::socket&>>(socket, *tls_context);
    std::string host;
    std::string port;
    split(opts.server, host, port);
    const std::string& name = opts.tls_server_name.empty() ? host : opts.tls_server_name;
    if (!expect_server_name(tls->native_handle(), name)) {
      log_line(log_level::error, "TLS: cannot check the server name '" + name + "'");
      co_return make_error_code(net::error::invalid_argument);
    }
    error_code ec;
    co_await tls->async_handshake(net::ssl::stream_base::client,
                                  net::redirect_error(net::use_awaitable, ec));
    if (ec) log_line(log_level::error, "TLS handshake: " + ec.message());
    co_return ec;
  }
  void fail_fatal(error_code ec) {
    {
      std::lock_guard lock(mutex);
      fatal = ec;
      attempted = true;
    }
    cv.notify_all();
  }
  static void split(const std::string& a, std::string& host, std::string& port) {
    if (a.front() == '[') {
      const auto close = a.find(']');
      host = a.substr(1, close - 1);
      port = a.substr(close + 2);
    } else {
      const auto colon = a.rfind(':');
      host = a.substr(0, colon);
      port = a.substr(colon + 1);
    }
  }
  static std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
      if (c == '"' || c == '\\') {
        out += '\\';
        out += c;
      } else if (static_cast<unsigned char>(c) < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out += buf;
      } else {
        out += c;
      }
    }
    return out + "\"";
  }

  discovery::nats_options opts;
  net::io_context ioc{1};
  net::ip::tcp::socket socket;
  std::unique_ptr<net::ssl::context> tls_context;
  std::unique_ptr<net::ssl::stream<net::ip::tcp::socket&>> tls;  // when the server speaks TLS
  net::steady_timer backoff_timer;
  std::thread thread;
  std::string inbox;
  // Provider thread only.
  bool stopping = false;
  bool handshook = false;
  bool connected_now = false;
  bool writing = false;
  std::deque<std::string> outbox;
  std::vector<std::function<void()>> flush_waiters;
  // Shared, under `mutex`.
  std::mutex mutex;
  std::condition_variable cv;
  bool attempted = false;
  bool connected = false;
  error_code fatal;
  std::string self;
  std::map<std::string, clock_type::time_point> known;
  std::function<void()> on_change;  // under mutex
  std::atomic<std::uint64_t> malformed{0};
  std::atomic<std::uint64_t> reconnects{0};
};

}  // namespace distcache::detail

#endif  // DISTCACHE_DISCOVERY_DETAIL_NATS_CONNECTION_HPP
