// distcache — what the engine sees of its admin server: a page renderer it
// hands over, and start/stop. The HTTP implementation comes with the
// transport::http policy (admin/admin_server.hpp), so an engine without it
// compiles no HTTP server.
#ifndef DISTCACHE_ADMIN_ADMIN_SERVICE_HPP
#define DISTCACHE_ADMIN_ADMIN_SERVICE_HPP

#include <cstdint>
#include <distcache/error.hpp>
#include <functional>
#include <string>
#include <string_view>

namespace distcache::admin {

/// One answer of the admin server.
struct reply {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
};

/// Renders the page of an endpoint ("peers", "keyspaces", "healthz",
/// "readyz", "metrics"); called on the admin server's thread.
using page_source = std::function<reply(std::string_view endpoint)>;

/// The endpoints under the base path.
inline bool known_endpoint(std::string_view e) {
  return e == "peers" || e == "keyspaces" || e == "healthz" || e == "readyz" || e == "metrics";
}

/// An admin listener as the engine holds it.
class admin_service {
 public:
  admin_service() = default;
  admin_service(const admin_service&) = delete;
  admin_service& operator=(const admin_service&) = delete;
  virtual ~admin_service() = default;
  /// Binds and starts serving; errors such as address_in_use are returned.
  virtual result<void> start() = 0;
  /// Closes the listener and every connection. Idempotent.
  virtual void stop() = 0;
  /// The bound port; 0 before start().
  [[nodiscard]] virtual std::uint16_t port() const noexcept = 0;
  /// Loads its TLS files again (admin_options.tls); the default, for a
  /// server without TLS, does nothing.
  virtual result<void> reload_tls() { return {}; }
};

}  // namespace distcache::admin

#endif  // DISTCACHE_ADMIN_ADMIN_SERVICE_HPP
