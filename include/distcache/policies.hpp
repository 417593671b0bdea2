// distcache — the policy bundle an engine is built with.
#ifndef DISTCACHE_POLICIES_HPP
#define DISTCACHE_POLICIES_HPP

#include <distcache/discovery/provider.hpp>
#include <distcache/protection/protection.hpp>
#include <distcache/telemetry/telemetry.hpp>
#include <distcache/transport/peer.hpp>
#include <type_traits>

namespace distcache {

namespace transport {
/// The Transport policy's default: transport::none when the Discovery policy
/// is discovery::standalone (a node alone needs no wire), transport::http
/// otherwise.
struct automatic {};
}  // namespace transport

/// The compile-time policies of an engine.
///
/// - `Discovery` (a discovery_provider): who the peers are. Default
///   discovery::standalone (no peers); discovery::static_peers takes a list.
/// - `Transport` (a transport::transport_policy): how nodes talk. Default
///   transport::automatic: transport::none for a standalone node, else
///   transport::http (Boost.Beast, HTTP/1.1, protocol v1 of
///   docs/protocol.md), whose definition a program includes with
///   <distcache/transport/http.hpp> (or <distcache/distcache.hpp>).
/// - `RateLimiter` (a protection::rate_limiter_policy): default
///   protection::no_rate_limiter; protection::token_bucket limits data-source
///   calls per second as configured (config.rate_limiter).
/// - `CircuitBreaker` (a protection::circuit_breaker_policy): default
///   protection::no_circuit_breaker; protection::circuit_breaker stops calling
///   a failing source as configured (config.circuit_breaker).
///
/// - `Telemetry` (a telemetry::telemetry_policy): default telemetry::none
///   (no spans, nothing exported); telemetry::otlp exports spans and metrics
///   over OTLP/HTTP as configured (config.telemetry), from
///   <distcache/telemetry/otlp.hpp>.
template <class Discovery = discovery::standalone, class Transport = transport::automatic,
          class RateLimiter = protection::no_rate_limiter,
          class CircuitBreaker = protection::no_circuit_breaker, class Telemetry = telemetry::none>
struct policies {
  static_assert(discovery_provider<Discovery>,
                "distcache: the Discovery policy must model distcache::discovery_provider "
                "(initialize, register_node, deregister_node, discover_peers, close)");
  static_assert(protection::rate_limiter_policy<RateLimiter>,
                "distcache: the RateLimiter policy must model protection::rate_limiter_policy");
  static_assert(protection::circuit_breaker_policy<CircuitBreaker>,
                "distcache: the CircuitBreaker policy must model "
                "protection::circuit_breaker_policy");
  /// The telemetry policy type (checked by the engine, where telemetry::otlp
  /// must be complete).
  using telemetry_type = Telemetry;
  /// The rate limiter type.
  using rate_limiter_type = RateLimiter;
  /// The circuit breaker type.
  using circuit_breaker_type = CircuitBreaker;
  /// The discovery provider type.
  using discovery_type = Discovery;
  /// The transport policy type (checked by the engine, where transport::http
  /// must be complete).
  using transport_type =
      std::conditional_t<std::is_same_v<Transport, transport::automatic>,
                         std::conditional_t<std::is_same_v<Discovery, discovery::standalone>,
                                            transport::none, transport::http>,
                         Transport>;
};

/// The policies `engine<...>` uses.
using default_policies = policies<>;

}  // namespace distcache

#endif  // DISTCACHE_POLICIES_HPP
