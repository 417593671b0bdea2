// distcache — discovery::kubernetes: the peers are the ready pods of a label
// selector, listed (and optionally watched) through the Kubernetes API over
// HTTPS with the pod's service account.
//
// Header-only and optional: a program that uses it links OpenSSL
// (`-lssl -lcrypto`; CMake: `find_package(OpenSSL)` and `OpenSSL::SSL`).
// Nothing else in distcache includes this header.
#ifndef DISTCACHE_DISCOVERY_KUBERNETES_HPP
#define DISTCACHE_DISCOVERY_KUBERNETES_HPP

#include <algorithm>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <distcache/clock.hpp>
#include <distcache/config.hpp>
#include <distcache/discovery/detail/kubernetes_client.hpp>
#include <distcache/discovery/detail/kubernetes_pods.hpp>
#include <distcache/discovery/provider.hpp>
#include <distcache/error.hpp>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace distcache::detail::kubernetes {

/// The provider's shared state: the API client, the last failure, and with
/// watch on, the pods seen and the watch's thread.
struct provider_state : std::enable_shared_from_this<provider_state> {
  provider_state(const discovery::kubernetes_options& o, api_endpoint ep)
      : opts(o), api(o, std::move(ep)), backoff(ioc) {}

  discovery::kubernetes_options opts;
  api_client api;

  mutable std::mutex mutex;
  std::condition_variable cv;
  std::map<std::string, std::string> pods;  // with watch: pod name → address
  bool synced = false;                      // pods is current (listed, watch open)
  bool attempted = false;                   // the watch's first listing has ended
  error_code first_error;
  std::string last_error;
  std::function<void()> on_change;

  std::atomic<std::uint64_t> lists{0};
  std::atomic<std::uint64_t> watch_restarts{0};
  std::atomic<std::uint64_t> malformed{0};

  // The watch, on `thread`; `current` and `stopping` only there.
  net::io_context ioc;
  net::steady_timer backoff;
  std::thread thread;
  connection* current = nullptr;
  bool stopping = false;

  void log_line(log_level level, const std::string& line) const {
    log_quietly(opts.log, level, "discovery::kubernetes: " + line);
  }

  void failed(error_code ec, const std::string& why) {
    {
      std::lock_guard lock(mutex);
      last_error = why.empty() ? ec.message() : why;
    }
    log_line(log_level::warning, why.empty() ? ec.message() : ec.message() + " (" + why + ")");
  }

  /// Replaces or edits the pods seen; tells the engine when peers changed.
  template <class Edit>
  void edit_pods(Edit edit) {
    std::function<void()> notify;
    {
      std::lock_guard lock(mutex);
      const auto before = pods;
      edit(pods);
      synced = true;
      if (before != pods) notify = on_change;
    }
    if (notify) notify();
  }

  void start_watch() {
    net::co_spawn(ioc, watch_loop(shared_from_this()), net::detached);
    thread = std::thread([this] { ioc.run(); });
  }

  void stop_watch() {
    if (!thread.joinable()) return;
    net::post(ioc, [this] {
      stopping = true;
      backoff.cancel();
      if (current != nullptr) beast::get_lowest_layer(current->stream).close();
    });
    thread.join();
  }

  net::awaitable<void> pause(duration d) {
    backoff.expires_after(d);
    co_await backoff.async_wait(as_tuple);
  }

  // List, then watch from the listing's resourceVersion; when a watch ends
  // resume from the last version seen; on an error or an ERROR event list
  // again. Failures back off from 250 ms, doubling up to 30 s.
  static net::awaitable<void> watch_loop(std::shared_ptr<provider_state> self) {
    constexpr duration first_wait = std::chrono::milliseconds(250);
    duration wait = first_wait;
    std::string version;
    bool listed = false;
    while (!self->stopping) {
      std::string why;
      if (!listed) {
        ++self->lists;
        auto r =
            co_await self->api.list(clock_type::now() + self->opts.timeout, why, &self->current);
        if (self->stopping) break;
        if (!r) {
          self->failed(r.error(), why);
          {
            std::lock_guard lock(self->mutex);
            self->synced = false;
            if (!self->attempted) self->first_error = r.error();
            self->attempted = true;
          }
          self->cv.notify_all();
          co_await self->pause(wait);
          wait = std::min<duration>(wait * 2, std::chrono::seconds(30));
          continue;
        }
        version = r->resource_version;
        self->edit_pods([&](auto& pods) { pods = std::move(r->peers); });
        {
          std::lock_guard lock(self->mutex);
          self->attempted = true;
        }
        self->cv.notify_all();
        listed = true;
      }
      bool lines = false;
      bool gone = false;
      auto on_line = [&](std::string_view line) {
        lines = true;
        std::string bad;
        auto e = parse_watch_event(line, self->opts.port_name, bad);
        if (!e) {
          ++self->malformed;
          why = bad;
          return false;
        }
        if (e->type == watch_event::kind::error) {
          gone = e->code == 410;  // the version is too old: list again, at once
          why = "watch ERROR " + std::to_string(e->code) + ": " + e->message;
          return false;
        }
        if (!e->resource_version.empty()) version = e->resource_version;
        if (e->type == watch_event::kind::bookmark) return true;
        self->edit_pods([&](auto& pods) {
          if (e->address) {
            pods[e->pod] = *e->address;
          } else {
            pods.erase(e->pod);
          }
        });
        return true;
      };
      auto ec = co_await self->api.watch(version, on_line, why, &self->current);
      if (self->stopping) break;
      if (lines) wait = first_wait;
      if (!ec) {  // the server ended the watch (timeoutSeconds): resume
        if (!lines) {
          co_await self->pause(wait);
          wait = std::min<duration>(wait * 2, std::chrono::seconds(30));
        }
        continue;
      }
      ++self->watch_restarts;
      listed = false;
      if (gone) {
        self->log_line(log_level::info, why + "; listing again");
        continue;
      }
      self->failed(ec, why);
      {
        std::lock_guard lock(self->mutex);
        self->synced = false;  // discover_peers() lists by itself until the watch is back
      }
      co_await self->pause(wait);
      wait = std::min<duration>(wait * 2, std::chrono::seconds(30));
    }
  }
};

/// Errors that do not go away by retrying: start() fails with them.
inline bool fatal(error_code ec) {
  using discovery::kubernetes_errc;
  return ec == kubernetes_errc::not_in_cluster || ec == kubernetes_errc::credentials ||
         ec == kubernetes_errc::unauthorized || ec == kubernetes_errc::forbidden ||
         ec.category() == net::error::get_ssl_category();
}

}  // namespace distcache::detail::kubernetes

namespace distcache::discovery {

/// Discovers peers from the Kubernetes API: the pods of `label_selector` in
/// the namespace whose phase is Running, whose Ready condition is True and
/// that are not being deleted, each at its pod IP and its container port
/// named `port_name`. register_node/deregister_node do nothing: readiness
/// is the membership (a pod that fails its readiness probe, or is deleted,
/// leaves).
///
/// Without watch, every discover_peers() lists the pods on the calling
/// thread (start()'s or the engine's blocking pool), all pages within
/// `timeout`. With watch, a thread of the provider's own lists once and then
/// watches; discover_peers() answers from memory and each change tells the
/// engine at once. Any failure returns an error (a kubernetes_errc, or the
/// Asio/OpenSSL code of a network or TLS failure), logs the server's
/// message (also in last_error()), and the engine keeps its peers.
///
/// initialize() lists once: a missing API server or credentials, 401, 403
/// and TLS verification failures make start() fail; an unreachable or
/// failing server does not (the node starts and keeps trying). The options
/// are checked by the constructor, which throws config_error naming the
/// field and the value. Copies share one state.
class kubernetes {
 public:
  kubernetes() = default;  // unusable until assigned: initialize() reports invalid_config
  explicit kubernetes(kubernetes_options opts) : opts_(std::move(opts)) {
    if (auto why = check(opts_); !why.empty()) throw config_error(why);
  }

  result<void> initialize() {
    if (opts_.label_selector.empty()) return make_error_code(errc::invalid_config);
    if (st_) return {};
    std::string why;
    auto ep = resolve(opts_, why);
    if (!ep) {
      last_error_ = why;
      return ep.error();
    }
    auto s = std::make_shared<state>(opts_, std::move(*ep));
    error_code first;
    if (opts_.watch) {
      s->start_watch();
      stopper_ = std::shared_ptr<void>(nullptr, [s](void*) { s->stop_watch(); });
      std::unique_lock lock(s->mutex);
      s->cv.wait_for(lock, opts_.timeout + std::chrono::seconds(1), [&] { return s->attempted; });
      first = s->first_error;
    } else {
      ++s->lists;
      auto r = s->api.list_blocking(why);
      if (!r) {
        s->failed(r.error(), why);
        first = r.error();
      }
    }
    st_ = s;
    if (first && detail::kubernetes::fatal(first)) {
      close();
      return first;
    }
    return {};
  }

  result<void> register_node(const std::string& /*self*/) { return {}; }
  result<void> deregister_node(const std::string& /*self*/) { return {}; }

  result<std::vector<std::string>> discover_peers() {
    if (!st_) return make_error_code(errc::invalid_config);
    std::vector<std::string> peers;
    bool current = false;
    {
      std::lock_guard lock(st_->mutex);
      current = st_->synced;
      if (current) {
        for (const auto& [pod, address] : st_->pods) peers.push_back(address);
      }
    }
    if (!current) {
      std::string why;
      ++st_->lists;
      auto r = st_->api.list_blocking(why);
      if (!r) {
        st_->failed(r.error(), why);
        return r.error();
      }
      for (auto& [pod, address] : r->peers) peers.push_back(std::move(address));
    }
    std::sort(peers.begin(), peers.end());
    peers.erase(std::unique(peers.begin(), peers.end()), peers.end());
    return peers;
  }

  void close() {
    if (st_) last_error_ = last_error();
    stopper_.reset();  // stops the watch when this is the last copy
    st_.reset();
  }

  /// Called (from the watch's thread) when the pods seen change; the engine
  /// sets it to run a discovery round at once.
  void set_change_handler(std::function<void()> on_change) {
    if (!st_) return;
    std::lock_guard lock(st_->mutex);
    st_->on_change = std::move(on_change);
  }

  /// The last failure, with the server's message ("pods is forbidden: …").
  [[nodiscard]] std::string last_error() const {
    if (!st_) return last_error_;
    std::lock_guard lock(st_->mutex);
    return st_->last_error;
  }
  /// True while a watch keeps the pods current (watch on, listed, no error since).
  [[nodiscard]] bool watching() const {
    if (!st_ || !opts_.watch) return false;
    std::lock_guard lock(st_->mutex);
    return st_->synced;
  }
  /// Listings started (each of every page).
  [[nodiscard]] std::uint64_t lists() const { return st_ ? st_->lists.load() : 0; }
  /// Watches abandoned for an error, an ERROR event or a malformed line.
  [[nodiscard]] std::uint64_t watch_restarts() const {
    return st_ ? st_->watch_restarts.load() : 0;
  }
  /// Watch lines that were not a valid event (each also restarts the watch).
  [[nodiscard]] std::uint64_t malformed_events() const { return st_ ? st_->malformed.load() : 0; }

  /// Why `o` is invalid ("" when valid); the message names the field.
  static std::string check(const kubernetes_options& o) {
    if (o.label_selector.empty()) {
      return "kubernetes_options.label_selector: required (e.g. \"app=cache\"); an empty "
             "selector would make every pod of the namespace a peer";
    }
    if (o.port_name.empty() || o.port_name.size() > 15) {
      return "kubernetes_options.port_name: the name of a container port (1-15 characters), got "
             "\"" +
             o.port_name + "\"";
    }
    if (!o.api_server.empty() && !detail::valid_peer_address(o.api_server)) {
      return R"(kubernetes_options.api_server: expected "host:port" (IPv6 in brackets), got ")" +
             o.api_server + "\"";
    }
    if (o.timeout <= duration::zero()) return "kubernetes_options.timeout: must be > 0";
    if (o.page_size < 1) {
      return "kubernetes_options.page_size: must be >= 1, got " + std::to_string(o.page_size);
    }
    if (o.watch_timeout < std::chrono::seconds(1)) {
      return "kubernetes_options.watch_timeout: must be >= 1 s";
    }
    return {};
  }

 private:
  using state = detail::kubernetes::provider_state;

  // The API server (api_server, else the in-cluster environment), the
  // namespace (pod_namespace, else its file) and the presence of the token.
  static result<detail::kubernetes::api_endpoint> resolve(const kubernetes_options& o,
                                                          std::string& why) {
    detail::kubernetes::api_endpoint ep;
    std::string server = o.api_server;
    if (server.empty()) {
      const char* host = std::getenv("KUBERNETES_SERVICE_HOST");  // NOLINT(concurrency-mt-unsafe)
      const char* port = std::getenv("KUBERNETES_SERVICE_PORT");  // NOLINT(concurrency-mt-unsafe)
      if (host == nullptr || port == nullptr || *host == '\0' || *port == '\0') {
        why = "api_server is empty and KUBERNETES_SERVICE_HOST/PORT are not set";
        return make_error_code(kubernetes_errc::not_in_cluster);
      }
      const std::string h = host;
      server = (h.find(':') != std::string::npos ? "[" + h + "]" : h) + ":" + port;
      if (!detail::valid_peer_address(server)) {
        why = "KUBERNETES_SERVICE_HOST/PORT do not form host:port: " + server;
        return make_error_code(kubernetes_errc::not_in_cluster);
      }
    }
    const auto colon = server.rfind(':');
    ep.host = server.substr(0, colon);
    if (ep.host.front() == '[') ep.host = ep.host.substr(1, ep.host.size() - 2);
    ep.port = server.substr(colon + 1);
    ep.server_name = o.server_name.empty() ? ep.host : o.server_name;
    ep.token_file = o.token_file;
    ep.ca_file = o.ca_file;
    ep.pod_namespace = o.pod_namespace;
    if (ep.pod_namespace.empty()) {
      auto ns = detail::kubernetes::read_file(o.namespace_file);
      if (!ns || ns->empty()) {
        why =
            "pod_namespace is empty and the namespace file " + o.namespace_file + " cannot be read";
        return make_error_code(kubernetes_errc::credentials);
      }
      ep.pod_namespace = *ns;
    }
    if (auto token = detail::kubernetes::read_file(o.token_file); !token || token->empty()) {
      why = "cannot read the token file " + o.token_file;
      return make_error_code(kubernetes_errc::credentials);
    }
    return ep;
  }

  kubernetes_options opts_;
  std::shared_ptr<state> st_;
  std::shared_ptr<void> stopper_;
  std::string last_error_;
};

static_assert(discovery_provider<kubernetes>);

}  // namespace distcache::discovery

#endif  // DISTCACHE_DISCOVERY_KUBERNETES_HPP
