// distcache — discovery::kubernetes: its vocabulary (errors, options) and
// the reading of the API server's answers (a PodList, a watch event, a
// Status) into peer addresses. No I/O here: kubernetes_client.hpp talks to
// the server.
#ifndef DISTCACHE_DISCOVERY_DETAIL_KUBERNETES_PODS_HPP
#define DISTCACHE_DISCOVERY_DETAIL_KUBERNETES_PODS_HPP

#include <boost/asio/ip/address.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <cstdint>
#include <distcache/clock.hpp>
#include <distcache/config.hpp>
#include <distcache/detail/config.hpp>
#include <distcache/error.hpp>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace distcache::discovery {

/// Why the Kubernetes provider found no peers. Network and TLS failures
/// (connection refused, certificate verify failed) come as their Asio and
/// OpenSSL error codes instead.
enum class kubernetes_errc {
  not_in_cluster = 1,  ///< no api_server given and KUBERNETES_SERVICE_HOST/PORT unset
  credentials,         ///< the token, CA or namespace file is missing, unreadable or empty
  unauthorized,        ///< 401: the API server refused the token
  forbidden,           ///< 403: the service account may not list pods in the namespace
  server_error,        ///< a 5xx answer
  unexpected_status,   ///< another non-200 answer (404, 410, …)
  malformed_response,  ///< not the JSON of a PodList or of a watch event
  timeout,             ///< no complete answer within kubernetes_options.timeout
};

/// The category of kubernetes_errc: "distcache.kubernetes".
inline const boost::system::error_category& kubernetes_category() noexcept {
  class category final : public boost::system::error_category {
   public:
    [[nodiscard]] const char* name() const noexcept override { return "distcache.kubernetes"; }
    [[nodiscard]] std::string message(int ev) const override {
      switch (static_cast<kubernetes_errc>(ev)) {
        case kubernetes_errc::not_in_cluster:
          return "Kubernetes: no API server (api_server empty and KUBERNETES_SERVICE_HOST/PORT "
                 "unset: not running in a pod?)";
        case kubernetes_errc::credentials:
          return "Kubernetes: the service-account token, CA or namespace file cannot be read";
        case kubernetes_errc::unauthorized:
          return "Kubernetes: 401 Unauthorized (the API server refused the token)";
        case kubernetes_errc::forbidden:
          return "Kubernetes: 403 Forbidden (the service account may not list pods; see RBAC)";
        case kubernetes_errc::server_error:
          return "Kubernetes: the API server failed (5xx)";
        case kubernetes_errc::unexpected_status:
          return "Kubernetes: unexpected HTTP status from the API server";
        case kubernetes_errc::malformed_response:
          return "Kubernetes: malformed answer (not a PodList or watch event)";
        case kubernetes_errc::timeout:
          return "Kubernetes: no complete answer before the timeout";
      }
      return "Kubernetes: unknown error";
    }
  };
  static const category c;
  return c;
}

inline error_code make_error_code(kubernetes_errc e) noexcept {
  return {static_cast<int>(e), kubernetes_category()};
}

}  // namespace distcache::discovery

template <>
struct boost::system::is_error_code_enum<distcache::discovery::kubernetes_errc> : std::true_type {};

namespace distcache::discovery {

/// Which pods are the peers, and how to reach the API server. The defaults
/// are the in-cluster configuration of a pod with a service account.
struct kubernetes_options {
  /// Pods with these labels are the cluster (e.g. "app=cache"). Required.
  std::string label_selector;
  /// The name of the container port the peers listen on (e.g. "peer"). Required.
  std::string port_name;
  /// The pods' namespace; empty: read from namespace_file.
  std::string pod_namespace;
  /// "host:port" of the API server (IPv6 in brackets); empty:
  /// KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT.
  std::string api_server;
  /// The name the server's certificate must carry (DNS or IP SAN); empty:
  /// the host of the API server.
  std::string server_name;
  std::string token_file = "/var/run/secrets/kubernetes.io/serviceaccount/token";
  std::string ca_file = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
  std::string namespace_file = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
  /// Bound of one listing: connect, TLS handshake and every page.
  duration timeout = std::chrono::seconds(5);
  /// Pods per page (the `limit` parameter); the `continue` token fetches the rest.
  int page_size = 500;
  /// Watch the pods (`watch=1`) on a thread of the provider's own, so that
  /// discover_peers() answers from memory and changes reach the engine at
  /// once; false: one listing per discover_peers().
  bool watch = false;
  /// How long the server keeps one watch open (`timeoutSeconds`) before the
  /// provider opens the next one from the last resourceVersion.
  duration watch_timeout = std::chrono::minutes(5);
  /// Log lines (failed listings with the server's message, watch restarts);
  /// default: std::cerr.
  logger log;
};

}  // namespace distcache::discovery

namespace distcache::detail::kubernetes {

namespace json = boost::json;

/// The peers of a listing, by pod name, and where a watch resumes.
struct pod_list {
  std::map<std::string, std::string> peers;  // pod name → "ip:port"
  std::string resource_version;
  std::string continue_token;
};

/// One line of a watch stream.
struct watch_event {
  enum class kind { added, modified, deleted, bookmark, error } type = kind::error;
  std::string pod;                     // the pod's name (not for bookmark/error)
  std::optional<std::string> address;  // its peer address when it is a ready peer now
  std::string resource_version;
  std::int64_t code = 0;  // for error: the Status code (410: resourceVersion too old)
  std::string message;    // for error: the Status message
};

inline const json::value* member(const json::value& v, std::string_view key) {
  const auto* o = v.if_object();
  if (o == nullptr) return nullptr;
  const auto it = o->find(key);
  return it == o->end() ? nullptr : &it->value();
}

inline std::string_view string_at(const json::value& v, std::string_view key) {
  const auto* m = member(v, key);
  if (m == nullptr || !m->is_string()) return {};
  return m->get_string();
}

/// The address of `pod` when it is a peer: phase Running, condition Ready
/// True, not being deleted, an IP, and a TCP container port named
/// `port_name`. Anything missing or of another type: not a peer.
inline std::optional<std::string> peer_address(const json::value& pod, std::string_view port_name) {
  const auto* meta = member(pod, "metadata");
  if (meta == nullptr) return std::nullopt;
  if (const auto* del = member(*meta, "deletionTimestamp"); del != nullptr && !del->is_null()) {
    return std::nullopt;  // terminating: leaves before its readiness turns false
  }
  const auto* status = member(pod, "status");
  if (status == nullptr || string_at(*status, "phase") != "Running") return std::nullopt;
  bool ready = false;
  if (const auto* conds = member(*status, "conditions"); conds != nullptr && conds->is_array()) {
    for (const auto& c : conds->get_array()) {
      if (string_at(c, "type") == "Ready") ready = string_at(c, "status") == "True";
    }
  }
  if (!ready) return std::nullopt;
  error_code ec;
  const auto ip = net::ip::make_address(std::string(string_at(*status, "podIP")), ec);
  if (ec) return std::nullopt;
  const auto* spec = member(pod, "spec");
  const auto* containers = spec != nullptr ? member(*spec, "containers") : nullptr;
  if (containers == nullptr || !containers->is_array()) return std::nullopt;
  for (const auto& c : containers->get_array()) {
    const auto* ports = member(c, "ports");
    if (ports == nullptr || !ports->is_array()) continue;
    for (const auto& p : ports->get_array()) {
      if (string_at(p, "name") != port_name) continue;
      const auto proto = string_at(p, "protocol");
      if (!proto.empty() && proto != "TCP") continue;
      const auto* num = member(p, "containerPort");
      if (num == nullptr || !num->is_int64()) continue;
      const auto port = num->get_int64();
      if (port < 1 || port > 65535) continue;
      const auto host = ip.is_v6() ? "[" + ip.to_string() + "]" : ip.to_string();
      return host + ":" + std::to_string(port);
    }
  }
  return std::nullopt;
}

/// Parses a PodList; on failure returns malformed_response and says why.
inline result<pod_list> parse_pod_list(std::string_view body, std::string_view port_name,
                                       std::string& why) {
  error_code ec;
  const json::value doc = json::parse(body, ec);
  if (ec) {
    why = "the body is not JSON (" + ec.message() + ")";
    return make_error_code(discovery::kubernetes_errc::malformed_response);
  }
  const auto* items = member(doc, "items");
  const auto* meta = member(doc, "metadata");
  if (string_at(doc, "kind") != "PodList" || items == nullptr || !items->is_array() ||
      meta == nullptr) {
    why = "expected a PodList with metadata and an items array";
    return make_error_code(discovery::kubernetes_errc::malformed_response);
  }
  pod_list out;
  out.resource_version = std::string(string_at(*meta, "resourceVersion"));
  out.continue_token = std::string(string_at(*meta, "continue"));
  for (const auto& pod : items->get_array()) {
    const auto* pm = member(pod, "metadata");
    const auto name = pm != nullptr ? string_at(*pm, "name") : std::string_view{};
    if (name.empty()) continue;
    if (auto a = peer_address(pod, port_name)) out.peers.emplace(std::string(name), std::move(*a));
  }
  return out;
}

/// Parses one line of a watch stream; on failure returns
/// malformed_response and says why.
inline result<watch_event> parse_watch_event(std::string_view line, std::string_view port_name,
                                             std::string& why) {
  error_code ec;
  const json::value doc = json::parse(line, ec);
  const auto* object = ec ? nullptr : member(doc, "object");
  if (object == nullptr || !object->is_object()) {
    why = "a watch line is not {\"type\":…,\"object\":{…}}";
    return make_error_code(discovery::kubernetes_errc::malformed_response);
  }
  watch_event e;
  const auto type = string_at(doc, "type");
  if (type == "ERROR") {
    e.type = watch_event::kind::error;
    const auto* code = member(*object, "code");
    e.code = code != nullptr && code->is_int64() ? code->get_int64() : 0;
    e.message = std::string(string_at(*object, "message"));
    return e;
  }
  const auto* meta = member(*object, "metadata");
  if (meta == nullptr) {
    why = "a watch event without object.metadata";
    return make_error_code(discovery::kubernetes_errc::malformed_response);
  }
  e.resource_version = std::string(string_at(*meta, "resourceVersion"));
  if (type == "BOOKMARK") {
    e.type = watch_event::kind::bookmark;
    return e;
  }
  if (type == "ADDED") {
    e.type = watch_event::kind::added;
  } else if (type == "MODIFIED") {
    e.type = watch_event::kind::modified;
  } else if (type == "DELETED") {
    e.type = watch_event::kind::deleted;
  } else {
    why = "unknown watch event type \"" + std::string(type) + "\"";
    return make_error_code(discovery::kubernetes_errc::malformed_response);
  }
  e.pod = std::string(string_at(*meta, "name"));
  if (e.pod.empty()) {
    why = "a watch event without the pod's name";
    return make_error_code(discovery::kubernetes_errc::malformed_response);
  }
  if (e.type != watch_event::kind::deleted) e.address = peer_address(*object, port_name);
  return e;
}

/// The message of a Status body ("pods is forbidden: …"), or the start of
/// the body when it is not one.
inline std::string status_message(std::string_view body) {
  error_code ec;
  const json::value doc = json::parse(body, ec);
  if (!ec) {
    if (auto m = string_at(doc, "message"); !m.empty()) return std::string(m);
  }
  return std::string(body.substr(0, 200));
}

}  // namespace distcache::detail::kubernetes

#endif  // DISTCACHE_DISCOVERY_DETAIL_KUBERNETES_PODS_HPP
