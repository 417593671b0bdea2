// distcache — the text pieces of the peer protocol's HTTP: decimal header
// values, percent-encoded path segments, and wire text made safe for logs.
// Included by transport/wire.hpp.
#ifndef DISTCACHE_TRANSPORT_DETAIL_HTTP_TEXT_HPP
#define DISTCACHE_TRANSPORT_DETAIL_HTTP_TEXT_HPP

#include <array>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace distcache::detail {

/// Parses a decimal u64 header value (digits only, no sign, no spaces).
inline std::optional<std::uint64_t> parse_decimal_u64(std::string_view s) noexcept {
  if (s.empty() || s.size() > 20) return std::nullopt;
  std::uint64_t v = 0;
  const auto* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, v);
  if (ec != std::errc{} || p != end) return std::nullopt;
  return v;
}

/// Appends the decimal form of `v`.
inline void append_decimal_u64(std::string& out, std::uint64_t v) {
  std::array<char, 24> b{};
  auto [p, ec] = std::to_chars(b.data(), b.data() + b.size(), v);
  (void)ec;  // 24 digits always suffice for a u64
  out.append(b.data(), static_cast<std::size_t>(p - b.data()));
}

inline bool is_uri_unreserved(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

/// Appends `s` percent-encoded as one URI path segment (RFC 3986: every byte
/// outside the unreserved set becomes %XX, upper-case hex).
inline void append_path_segment(std::string& out, std::string_view s) {
  constexpr std::string_view hex = "0123456789ABCDEF";
  for (char c : s) {
    if (is_uri_unreserved(c)) {
      out.push_back(c);
    } else {
      const auto u = static_cast<unsigned char>(c);
      out.push_back('%');
      out.push_back(hex[u >> 4]);
      out.push_back(hex[u & 15]);
    }
  }
}

inline int percent_hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// Decodes a percent-encoded path segment into `out`. False for a malformed
/// escape.
inline bool decode_path_segment(std::string_view s, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return false;
    const int hi = percent_hex_value(s[i + 1]);
    const int lo = percent_hex_value(s[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<char>((hi << 4) | lo));
    i += 2;
  }
  return true;
}

/// A log line must not carry control bytes or unbounded text from the wire.
inline std::string printable_for_log(std::string_view s, std::size_t max = 120) {
  std::string out;
  out.reserve(std::min(s.size(), max) + 3);
  for (std::size_t i = 0; i < s.size() && i < max; ++i) {
    const char c = s[i];
    out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  }
  if (s.size() > max) out += "...";
  return out;
}

}  // namespace distcache::detail

#endif  // DISTCACHE_TRANSPORT_DETAIL_HTTP_TEXT_HPP
