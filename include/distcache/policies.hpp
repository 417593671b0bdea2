// distcache — the policy bundle an engine is built with.
#ifndef DISTCACHE_POLICIES_HPP
#define DISTCACHE_POLICIES_HPP

namespace distcache {

/// The compile-time policies of an engine: transport, discovery, protection
/// (rate limiter, circuit breaker) and telemetry.
///
/// This release runs a single node, so the bundle has no parameters yet: the
/// owner of every key is this node (asked of a one-node ring), and data-source
/// calls are unprotected. Later releases add the policy parameters in this
/// order, each with a default, so `engine<...>` and `basic_engine<policies<>,
/// ...>` stay valid spellings.
template <class... Policies>
struct policies {
  static_assert(sizeof...(Policies) == 0,
                "distcache: this release has no transport, discovery or protection policies yet");
};

/// The policies `engine<...>` uses.
using default_policies = policies<>;

}  // namespace distcache

#endif  // DISTCACHE_POLICIES_HPP
