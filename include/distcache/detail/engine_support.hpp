// distcache — what basic_engine (engine.hpp) builds on that needs none of
// its members: checks of its keyspaces, copies of key ranges, its policies
// erased for the core, read()'s visitor.
#ifndef DISTCACHE_DETAIL_ENGINE_SUPPORT_HPP
#define DISTCACHE_DETAIL_ENGINE_SUPPORT_HPP

#include <cstddef>
#include <distcache/cluster/controller.hpp>
#include <distcache/config.hpp>
#include <distcache/core/engine_core.hpp>
#include <distcache/policies.hpp>
#include <distcache/protection/source_guard.hpp>
#include <distcache/telemetry/telemetry.hpp>
#include <memory>
#include <ranges>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace distcache::detail {

template <class... K>
consteval bool unique_names() {
  constexpr std::string_view names[] = {std::string_view{K::name}...};  // NOLINT
  for (std::size_t i = 0; i < sizeof...(K); ++i) {
    if (names[i].empty()) return false;
    for (std::size_t j = i + 1; j < sizeof...(K); ++j) {
      if (names[i] == names[j]) return false;
    }
  }
  return true;
}

template <class T>
concept complete_type = requires {
  sizeof(T);
};

/// Copies a range of string-like keys.
template <class Range>
std::vector<std::string> copy_keys(const Range& keys) {
  std::vector<std::string> owned;
  if constexpr (std::ranges::sized_range<const Range&>) owned.reserve(std::ranges::size(keys));
  for (const auto& k : keys) owned.emplace_back(std::string_view(k));
  return owned;
}

/// The engine's policies as the type-erased core takes them: factories for
/// the cluster, the admin server and the telemetry sink, and the source
/// guards.
template <class Policies>
erased_policies erase_policies(typename Policies::discovery_type discovery) {
  using discovery_type = typename Policies::discovery_type;
  using transport_type = typename Policies::transport_type;
  erased_policies p;
  p.make_cluster = make_cluster_factory<discovery_type, transport_type>(std::move(discovery));
  if constexpr (!std::is_same_v<transport_type, transport::none>) {
    p.make_cluster_operations = [](engine_core& c) {
      return engine_core::cluster_operations_of(c);
    };
  }
  if constexpr (requires { transport_type::supports_tls; }) p.tls = transport_type::supports_tls;
  if constexpr (requires { &transport_type::make_admin; }) {
    p.make_admin = [](const admin_options& o, const engine_core& core, const logger& log) {
      return transport_type::make_admin(
          o, [&core](std::string_view endpoint) { return core.admin_page(endpoint); }, log);
    };
  }
  using telemetry_type = typename Policies::telemetry_type;
  if constexpr (!std::is_same_v<telemetry_type, telemetry::none>) {
    p.make_telemetry = [](const telemetry_options& o, const logger& log) {
      return std::unique_ptr<telemetry::sink>(telemetry_type::make(o, log));
    };
  }
  p.guards = make_guard_policies<typename Policies::rate_limiter_type,
                                 typename Policies::circuit_breaker_type>();
  return p;
}

/// read()'s function `call(const void*)` as the core takes it.
template <class Call>
value_visitor visitor_of(Call& call) noexcept {
  return {&call, [](void* c, const void* v) { (*static_cast<Call*>(c))(v); }};
}

}  // namespace distcache::detail

#endif  // DISTCACHE_DETAIL_ENGINE_SUPPORT_HPP
