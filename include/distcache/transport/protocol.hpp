// distcache — protocol v1 in one place: paths, error names on the wire, and
// which answers mean "this peer is alive but cannot serve". The bodies are
// in wire.hpp; docs/protocol.md is the specification.
#ifndef DISTCACHE_TRANSPORT_PROTOCOL_HPP
#define DISTCACHE_TRANSPORT_PROTOCOL_HPP

#include <array>
#include <cstddef>
#include <distcache/error.hpp>
#include <distcache/transport/wire.hpp>
#include <optional>
#include <string_view>

namespace distcache::detail {

/// Protocol v1 paths.
inline constexpr std::string_view dc_api_prefix = "/_distcache/v1/";
inline constexpr std::string_view dc_health_path = "/_distcache/v1/health";
inline constexpr std::string_view dc_keyspace_prefix = "/_distcache/v1/ks/";

/// The protocol names of distcache::errc values (the DC-Error header).
inline constexpr std::array<std::string_view, 18> errc_names = {
    "",
    "keyspace_not_found",
    "not_found",
    "data_source_rate_limited",
    "data_source_circuit_open",
    "data_source_failed",
    "timeout",
    "cluster_quorum",
    "invalid_key",
    "value_too_large",
    "peer_unavailable",
    "invalid_config",
    "not_started",
    "stopped",
    "malformed_value",
    "blocking_call_on_engine_thread",
    "cluster_mismatch",
    "overloaded",
};

/// The protocol name of `e`, or an empty view for a value this version does
/// not know.
inline std::string_view errc_name(distcache::errc e) noexcept {
  const auto i = static_cast<std::size_t>(e);
  return i < errc_names.size() ? errc_names[i] : std::string_view{};
}

/// The errc named `name`, if this version knows it.
inline std::optional<distcache::errc> errc_from_name(std::string_view name) noexcept {
  for (std::size_t i = 1; i < errc_names.size(); ++i)
    if (errc_names[i] == name) return static_cast<distcache::errc>(i);
  return std::nullopt;
}

}  // namespace distcache::detail

namespace distcache::transport {

/// True when a peer's answer `ec` says it cannot serve now (it is still
/// joining, stopping, or lacks the keyspace): the asker treats it like a
/// failed peer and loads the key itself, but keeps the peer in its ring.
inline bool peer_not_serving(const error_code& ec) noexcept {
  return ec == errc::not_started || ec == errc::stopped || ec == errc::keyspace_not_found ||
         ec == errc::blocking_call_on_engine_thread;
}

/// peer_not_serving() for a reply item.
inline bool peer_not_serving(const reply_item& item) noexcept {
  return item.status == reply_item::kind::error && peer_not_serving(make_error_code(item.error));
}

}  // namespace distcache::transport

#endif  // DISTCACHE_TRANSPORT_PROTOCOL_HPP
