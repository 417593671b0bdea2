// The policy concepts, with types that model them and types that must not:
// transport_policy, discovery_provider, rate_limiter_policy,
// circuit_breaker_policy.
#include <distcache/discovery/provider.hpp>
#include <distcache/protection/protection.hpp>
#include <distcache/transport/peer.hpp>
//
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

namespace policy_cases {

namespace net = boost::asio;
namespace dt = distcache::transport;

// ---------------------------------------------------------------- transport

/// A transport of one's own: the two factories are all the concept asks.
struct loopback_transport {
  static std::unique_ptr<dt::peer_server> make_server(net::io_context&, dt::peer_service&,
                                                      const dt::server_options&,
                                                      const distcache::logger&) {
    return nullptr;
  }
  static std::unique_ptr<dt::peer_client> make_client(net::io_context&, const dt::client_options&,
                                                      const distcache::logger&) {
    return nullptr;
  }
};
/// The shape of transport policies before the seams: member types only.
struct types_only_transport {
  using server_type = int;
  using client_type = int;
};
/// A server factory but no client factory.
struct server_only_transport {
  static std::unique_ptr<dt::peer_server> make_server(net::io_context&, dt::peer_service&,
                                                      const dt::server_options&,
                                                      const distcache::logger&) {
    return nullptr;
  }
};
/// A client factory that returns something that is no peer_client.
struct wrong_client_transport {
  static std::unique_ptr<dt::peer_server> make_server(net::io_context&, dt::peer_service&,
                                                      const dt::server_options&,
                                                      const distcache::logger&) {
    return nullptr;
  }
  static std::unique_ptr<int> make_client(net::io_context&, const dt::client_options&,
                                          const distcache::logger&) {
    return nullptr;
  }
};

static_assert(dt::transport_policy<dt::none>);
static_assert(dt::transport_policy<loopback_transport>);
static_assert(!dt::transport_policy<types_only_transport>);
static_assert(!dt::transport_policy<server_only_transport>);
static_assert(!dt::transport_policy<wrong_client_transport>);
static_assert(!dt::transport_policy<int>);

// ---------------------------------------------------------------- discovery

struct bool_initialize {  // initialize() must return result<void>
  bool initialize() { return true; }
  distcache::result<void> register_node(const std::string&) { return {}; }
  distcache::result<void> deregister_node(const std::string&) { return {}; }
  distcache::result<std::vector<std::string>> discover_peers() { return {}; }
  void close() {}
};
struct bare_list {  // discover_peers() must return a result
  distcache::result<void> initialize() { return {}; }
  distcache::result<void> register_node(const std::string&) { return {}; }
  distcache::result<void> deregister_node(const std::string&) { return {}; }
  std::vector<std::string> discover_peers() { return {}; }
  void close() {}
};
struct no_close {
  distcache::result<void> initialize() { return {}; }
  distcache::result<void> register_node(const std::string&) { return {}; }
  distcache::result<void> deregister_node(const std::string&) { return {}; }
  distcache::result<std::vector<std::string>> discover_peers() { return {}; }
};

static_assert(distcache::discovery_provider<distcache::discovery::standalone>);
static_assert(distcache::discovery_provider<distcache::discovery::static_peers>);
static_assert(distcache::discovery_provider<distcache::discovery::in_process>);
static_assert(!distcache::discovery_provider<bool_initialize>);
static_assert(!distcache::discovery_provider<bare_list>);
static_assert(!distcache::discovery_provider<no_close>);

// ---------------------------------------------------------------- protection

namespace p = distcache::protection;

struct fixed_delay_limiter {
  fixed_delay_limiter(const p::rate_limit&, const distcache::clock_source*) {}
  distcache::duration try_acquire() { return distcache::duration::zero(); }
};
struct bool_limiter {  // try_acquire() must say how long to wait, not yes/no
  bool_limiter(const p::rate_limit&, const distcache::clock_source*) {}
  bool try_acquire() { return true; }
};
struct default_only_limiter {  // must be built from its settings and a clock
  distcache::duration try_acquire() { return distcache::duration::zero(); }
};

static_assert(p::rate_limiter_policy<p::token_bucket>);
static_assert(p::rate_limiter_policy<p::no_rate_limiter>);
static_assert(p::rate_limiter_policy<fixed_delay_limiter>);
static_assert(!p::rate_limiter_policy<bool_limiter>);
static_assert(!p::rate_limiter_policy<default_only_limiter>);

struct always_closed {
  always_closed(const p::circuit_breaker_options&, const distcache::clock_source*) {}
  bool allow() { return true; }
  void on_success() {}
  void on_failure() {}
  void on_neutral() {}
  [[nodiscard]] p::breaker_state state() const { return p::breaker_state::closed; }
  [[nodiscard]] distcache::time_point last_change() const { return {}; }
  [[nodiscard]] std::uint64_t rejected() const { return 0; }
};
struct no_neutral {  // a refusal that is not a failure must be reportable
  no_neutral(const p::circuit_breaker_options&, const distcache::clock_source*) {}
  bool allow() { return true; }
  void on_success() {}
  void on_failure() {}
  [[nodiscard]] p::breaker_state state() const { return p::breaker_state::closed; }
  [[nodiscard]] distcache::time_point last_change() const { return {}; }
  [[nodiscard]] std::uint64_t rejected() const { return 0; }
};
struct no_stats {  // state, last_change and rejected feed keyspace_stats
  no_stats(const p::circuit_breaker_options&, const distcache::clock_source*) {}
  bool allow() { return true; }
  void on_success() {}
  void on_failure() {}
  void on_neutral() {}
};

static_assert(p::circuit_breaker_policy<p::circuit_breaker>);
static_assert(p::circuit_breaker_policy<p::no_circuit_breaker>);
static_assert(p::circuit_breaker_policy<always_closed>);
static_assert(!p::circuit_breaker_policy<no_neutral>);
static_assert(!p::circuit_breaker_policy<no_stats>);

}  // namespace policy_cases

TEST_CASE("policy concepts accept their models and reject their non-models") {
  // The static_asserts above are the test; this case records that the file
  // was compiled into the suite.
  CHECK(distcache::transport::transport_policy<policy_cases::loopback_transport>);
  CHECK_FALSE(distcache::transport::transport_policy<policy_cases::types_only_transport>);
}
