// distcache — discovery::dns: peers from DNS records (A/AAAA of a name plus a
// port, or SRV records), resolved with c-ares.
//
// Header-only and optional: a program that uses it links c-ares (`-lcares`;
// CMake: `pkg_check_modules(CARES REQUIRED IMPORTED_TARGET libcares)` and
// `PkgConfig::CARES`). Nothing else in distcache includes this header.
#ifndef DISTCACHE_DISCOVERY_DNS_HPP
#define DISTCACHE_DISCOVERY_DNS_HPP

#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <distcache/clock.hpp>
#include <distcache/discovery/provider.hpp>
#include <distcache/error.hpp>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace distcache::discovery {

/// Why a DNS lookup found no peers. Each value is the c-ares status it
/// stands for; dns_category() names them.
enum class dns_errc {
  not_found = ARES_ENOTFOUND,              ///< NXDOMAIN: the name does not exist
  no_records = ARES_ENODATA,               ///< the name exists but has no record of the asked type
  server_failure = ARES_ESERVFAIL,         ///< SERVFAIL from the nameserver
  refused = ARES_EREFUSED,                 ///< the nameserver refused the query
  timeout = ARES_ETIMEOUT,                 ///< no answer within timeout × tries
  connection_refused = ARES_ECONNREFUSED,  ///< the nameserver's port is closed
  bad_response = ARES_EBADRESP,            ///< an answer that could not be parsed
};

/// The category of dns_errc (and of every other c-ares status): "distcache.dns".
inline const boost::system::error_category& dns_category() noexcept {
  class category final : public boost::system::error_category {
   public:
    [[nodiscard]] const char* name() const noexcept override { return "distcache.dns"; }
    [[nodiscard]] std::string message(int ev) const override {
      switch (static_cast<dns_errc>(ev)) {
        case dns_errc::not_found:
          return "DNS: no such name (NXDOMAIN)";
        case dns_errc::no_records:
          return "DNS: the name has no record of the asked type";
        case dns_errc::server_failure:
          return "DNS: the nameserver failed (SERVFAIL)";
        case dns_errc::refused:
          return "DNS: the nameserver refused the query";
        case dns_errc::timeout:
          return "DNS: no answer before the timeout";
        case dns_errc::connection_refused:
          return "DNS: no nameserver answered (refused, failed or unreachable)";
        case dns_errc::bad_response:
          return "DNS: malformed answer";
      }
      return std::string("DNS: ") + ares_strerror(ev);
    }
  };
  static const category c;
  return c;
}

inline error_code make_error_code(dns_errc e) noexcept {
  return {static_cast<int>(e), dns_category()};
}

}  // namespace distcache::discovery

template <>
struct boost::system::is_error_code_enum<distcache::discovery::dns_errc> : std::true_type {};

namespace distcache::discovery {

/// What to ask DNS for, and where.
struct dns_options {
  /// Which records name the peers.
  enum class record_type {
    address,  ///< A and/or AAAA records of `name`; every peer listens on `port`
    srv,      ///< SRV records of `name` (e.g. "_cache._tcp.example.com"); each gives its port
  };
  /// Which address families an address lookup (and an SRV target) keeps.
  enum class address_family { ipv4, ipv6, both };

  std::string name;  ///< required
  record_type type = record_type::address;
  std::uint16_t port = 0;  ///< required for `address`, unused for `srv`
  address_family family = address_family::ipv4;
  /// "host:port" (IPv6: "[addr]:port") of the nameserver to ask; empty: the
  /// system's resolver configuration (/etc/resolv.conf, and /etc/hosts for
  /// address lookups).
  std::string nameserver;
  duration timeout = std::chrono::seconds(2);  ///< per try
  int tries = 2;                               ///< attempts per query, ≥ 1
};

/// Discovers peers from DNS. register_node/deregister_node do nothing: the
/// records are managed outside (a headless Service, a zone file, Consul).
///
/// Every discover_peers() runs one lookup on the calling thread (start()'s
/// thread or the engine's blocking pool, never a network thread), bounded
/// by timeout × tries, and returns the peers sorted; an error (NXDOMAIN,
/// SERVFAIL, timeout, an empty answer) is returned as a dns_errc and the
/// engine keeps the peers it had. The options are checked by the
/// constructor, which throws config_error naming the field and the value.
/// Copies share one resolver channel; calls are serialised.
class dns {
 public:
  dns() = default;  // unusable until assigned: initialize() reports the missing name
  explicit dns(dns_options opts) : opts_(std::move(opts)) {
    if (auto why = check(opts_); !why.empty()) throw config_error(why);
  }

  result<void> initialize() {
    if (opts_.name.empty()) return make_error_code(errc::invalid_config);
    if (state_) return {};
    auto s = std::make_shared<state>();
    static std::once_flag library;
    std::call_once(library, [] { ares_library_init(ARES_LIB_INIT_ALL); });
    ares_options o{};
    o.timeout = static_cast<int>(std::max<std::int64_t>(
        1, std::chrono::ceil<std::chrono::milliseconds>(opts_.timeout).count()));
    o.tries = opts_.tries;
    int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
    std::string lookups = "b";  // a configured nameserver: DNS only, never /etc/hosts
    if (!opts_.nameserver.empty()) {
      o.lookups = lookups.data();
      // One server: report its SERVFAIL or REFUSED as such, instead of
      // c-ares's "try the next server" ending in ECONNREFUSED.
      o.flags = ARES_FLAG_NOCHECKRESP;
      mask |= ARES_OPT_LOOKUPS | ARES_OPT_FLAGS;
    }
    if (int rc = ares_init_options(&s->channel, &o, mask); rc != ARES_SUCCESS) {
      s->channel = nullptr;
      return error_code(rc, dns_category());
    }
    if (!opts_.nameserver.empty()) {
      if (int rc = ares_set_servers_ports_csv(s->channel, nameserver_csv(opts_.nameserver).c_str());
          rc != ARES_SUCCESS) {
        return error_code(rc, dns_category());
      }
    }
    state_ = std::move(s);
    return {};
  }
  result<void> register_node(const std::string& /*self*/) { return {}; }
  result<void> deregister_node(const std::string& /*self*/) { return {}; }

  result<std::vector<std::string>> discover_peers() {
    if (!state_) {
      if (auto r = initialize(); !r) return r.error();
    }
    std::lock_guard lock(state_->mutex);
    std::vector<std::string> peers;
    if (opts_.type == dns_options::record_type::address) {
      auto addrs = resolve(opts_.name);
      if (!addrs) return addrs.error();
      for (const auto& a : *addrs) peers.push_back(join_host_port(a, opts_.port));
    } else {
      auto targets = query_srv(opts_.name);
      if (!targets) return targets.error();
      for (const auto& [host, port] : *targets) {
        auto addrs = resolve(host);
        if (!addrs) {
          if (addrs.error() == dns_errc::not_found || addrs.error() == dns_errc::no_records) {
            continue;  // one stale target does not hide the others
          }
          return addrs.error();
        }
        for (const auto& a : *addrs) peers.push_back(join_host_port(a, port));
      }
      if (peers.empty()) return make_error_code(dns_errc::no_records);
    }
    std::sort(peers.begin(), peers.end());
    peers.erase(std::unique(peers.begin(), peers.end()), peers.end());
    return peers;
  }

  void close() { state_.reset(); }

  [[nodiscard]] const dns_options& options() const noexcept { return opts_; }

  /// Why `o` is invalid ("" when it is valid); the message names the field.
  static std::string check(const dns_options& o) {
    if (o.name.empty()) return "dns_options.name: must not be empty";
    if (o.name.size() > 253) return "dns_options.name: longer than 253 characters";
    if (o.type == dns_options::record_type::address && o.port == 0) {
      return "dns_options.port: must be 1-65535 for address records, got 0";
    }
    if (o.timeout <= duration::zero()) return "dns_options.timeout: must be > 0";
    if (o.tries < 1) return "dns_options.tries: must be >= 1, got " + std::to_string(o.tries);
    if (!o.nameserver.empty() && nameserver_csv(o.nameserver).empty()) {
      return "dns_options.nameserver: expected \"host:port\" with a numeric address "
             "(IPv6 in brackets), got \"" +
             o.nameserver + "\"";
    }
    return {};
  }

 private:
  struct state {
    std::mutex mutex;
    ares_channel channel = nullptr;  // null until ares_init_options succeeded
    state() = default;
    state(const state&) = delete;
    state& operator=(const state&) = delete;
    ~state() {
      if (channel != nullptr) ares_destroy(channel);
    }
  };

  // "127.0.0.1:5353" → "127.0.0.1:5353"; "[::1]:53" → "[::1]:53"; anything
  // else (a name, no port, a bad port) → "".
  static std::string nameserver_csv(std::string_view s) {
    std::string_view host;
    std::string_view port;
    if (s.starts_with('[')) {
      auto close = s.find(']');
      if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':')
        return {};
      host = s.substr(1, close - 1);
      port = s.substr(close + 2);
    } else {
      auto colon = s.rfind(':');
      if (colon == std::string_view::npos) return {};
      host = s.substr(0, colon);
      port = s.substr(colon + 1);
      if (host.find(':') != std::string_view::npos) return {};  // IPv6 needs brackets
    }
    if (port.empty() || port.size() > 5 ||
        !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return {};
    }
    const int p = std::stoi(std::string(port));
    if (p < 1 || p > 65535) return {};
    unsigned char buf[sizeof(in6_addr)];
    const std::string h(host);
    if (inet_pton(AF_INET, h.c_str(), buf) == 1) return h + ":" + std::string(port);
    if (inet_pton(AF_INET6, h.c_str(), buf) == 1) return "[" + h + "]:" + std::string(port);
    return {};
  }

  static std::string join_host_port(const std::string& addr, std::uint16_t port) {
    if (addr.find(':') != std::string::npos) return "[" + addr + "]:" + std::to_string(port);
    return addr + ":" + std::to_string(port);
  }

  // Runs the channel until `done` is set (c-ares bounds every query by
  // timeout × tries, so this ends).
  void run_until(const bool& done) {
    ares_channel ch = state_->channel;
    while (!done) {
      ares_socket_t socks[ARES_GETSOCK_MAXNUM];
      const int bits = ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM);
      pollfd fds[ARES_GETSOCK_MAXNUM];
      nfds_t n = 0;
      for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
        short events = 0;
        if (ARES_GETSOCK_READABLE(bits, i)) events |= POLLIN;
        if (ARES_GETSOCK_WRITABLE(bits, i)) events |= POLLOUT;
        if (events == 0) continue;
        fds[n++] = pollfd{socks[i], events, 0};
      }
      timeval tv{};
      timeval max{1, 0};
      const timeval* t = ares_timeout(ch, &max, &tv);
      const int ms = static_cast<int>(t->tv_sec * 1000 + (t->tv_usec + 999) / 1000);
      const int ready = ::poll(fds, n, ms);
      if (ready <= 0) {
        ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // timeouts
        continue;
      }
      for (nfds_t i = 0; i < n; ++i) {
        const bool r = (fds[i].revents & (POLLIN | POLLERR | POLLHUP)) != 0;
        const bool w = (fds[i].revents & POLLOUT) != 0;
        if (r || w) {
          ares_process_fd(ch, r ? fds[i].fd : ARES_SOCKET_BAD, w ? fds[i].fd : ARES_SOCKET_BAD);
        }
      }
    }
  }

  // The addresses of `host`, as text, in the configured families.
  result<std::vector<std::string>> resolve(const std::string& host) {
    struct outcome {
      bool done = false;
      int status = ARES_SUCCESS;
      std::vector<std::string> addrs;
    } out;
    ares_addrinfo_hints hints{};
    hints.ai_family = opts_.family == dns_options::address_family::ipv4   ? AF_INET
                      : opts_.family == dns_options::address_family::ipv6 ? AF_INET6
                                                                          : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    ares_getaddrinfo(
        state_->channel, host.c_str(), nullptr, &hints,
        [](void* arg, int status, int /*timeouts*/, ares_addrinfo* res) {
          auto* o = static_cast<outcome*>(arg);
          o->status = status;
          if (status == ARES_SUCCESS && res != nullptr) {
            for (auto* node = res->nodes; node != nullptr; node = node->ai_next) {
              char text[INET6_ADDRSTRLEN] = {};
              if (node->ai_family == AF_INET) {
                const auto* sa = reinterpret_cast<const sockaddr_in*>(node->ai_addr);
                inet_ntop(AF_INET, &sa->sin_addr, text, sizeof text);
              } else if (node->ai_family == AF_INET6) {
                const auto* sa = reinterpret_cast<const sockaddr_in6*>(node->ai_addr);
                inet_ntop(AF_INET6, &sa->sin6_addr, text, sizeof text);
              } else {
                continue;
              }
              o->addrs.emplace_back(text);
            }
          }
          if (res != nullptr) ares_freeaddrinfo(res);
          o->done = true;
        },
        &out);
    run_until(out.done);
    if (out.status != ARES_SUCCESS) return error_code(out.status, dns_category());
    if (out.addrs.empty()) return make_error_code(dns_errc::no_records);
    return std::move(out.addrs);
  }

  // The (target, port) pairs of the SRV records of `name`.
  result<std::vector<std::pair<std::string, std::uint16_t>>> query_srv(const std::string& name) {
    struct outcome {
      bool done = false;
      int status = ARES_SUCCESS;
      std::vector<std::pair<std::string, std::uint16_t>> targets;
    } out;
    ares_query(
        state_->channel, name.c_str(), 1 /* C_IN */, 33 /* T_SRV */,
        [](void* arg, int status, int /*timeouts*/, unsigned char* abuf, int alen) {
          auto* o = static_cast<outcome*>(arg);
          o->status = status;
          if (status == ARES_SUCCESS) {
            ares_srv_reply* srv = nullptr;
            o->status = ares_parse_srv_reply(abuf, alen, &srv);
            for (auto* r = srv; r != nullptr; r = r->next) {
              if (r->port != 0 && r->host != nullptr && r->host[0] != '\0') {
                o->targets.emplace_back(r->host, r->port);
              }
            }
            if (srv != nullptr) ares_free_data(srv);
          }
          o->done = true;
        },
        &out);
    run_until(out.done);
    if (out.status != ARES_SUCCESS) return error_code(out.status, dns_category());
    if (out.targets.empty()) return make_error_code(dns_errc::no_records);
    return std::move(out.targets);
  }

  dns_options opts_;
  std::shared_ptr<state> state_;
};

static_assert(discovery_provider<dns>);

}  // namespace distcache::discovery

#endif  // DISTCACHE_DISCOVERY_DNS_HPP
