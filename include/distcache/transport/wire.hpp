// distcache — protocol v1 wire codec: the binary bodies that nodes exchange.
//
// Every integer is big-endian. Every parser checks each length against the
// bytes that remain and against wire_limits before it reads, and returns an
// error_code (never undefined behaviour) for truncated, oversized or garbage
// input. The encodings are prefix-free: a strict prefix of a valid body is
// never a valid body. docs/protocol.md is the specification.
#ifndef DISTCACHE_TRANSPORT_WIRE_HPP
#define DISTCACHE_TRANSPORT_WIRE_HPP

#include <algorithm>
#include <array>
#include <boost/system/error_category.hpp>
#include <charconv>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <distcache/error.hpp>
#include <distcache/transport/detail/http_text.hpp>
#include <limits>
#include <optional>
#include <ranges>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace distcache::transport {

/// Bounds on what a node accepts from a peer (and sends to one). A body or
/// field over a bound is rejected before it is buffered.
struct wire_limits {
  /// Longest key, in bytes. 1..65536; match config::max_key_bytes.
  std::size_t max_key_bytes = 1024;
  /// Longest value, in bytes. 1..2^32-1.
  std::size_t max_value_bytes = std::size_t{64} << 20;
  /// Most keys in one request (key list) or reply (get-many). 1..2^32-1.
  std::size_t max_batch = 1000;
  /// Longest HTTP body, in bytes (Content-Length or the sum of chunks).
  std::size_t max_body_bytes = std::size_t{128} << 20;
  /// Longest HTTP header block (request or status line plus fields), in
  /// bytes. 512..2^32-1.
  std::size_t max_header_bytes = std::size_t{8} << 10;
};

/// Checks `l`; returns an empty string or a message naming the field and the
/// value (prefixed with `prefix`, e.g. "server_options.limits").
inline std::string validate(const wire_limits& l, std::string_view prefix) {
  constexpr std::size_t u32_max = std::numeric_limits<std::uint32_t>::max();
  auto bad = [&](std::string_view field, std::size_t v, std::string_view rule) {
    return std::string(prefix) + "." + std::string(field) + ": must be " + std::string(rule) +
           ", got " + std::to_string(v);
  };
  if (l.max_key_bytes < 1 || l.max_key_bytes > 65536)
    return bad("max_key_bytes", l.max_key_bytes, "between 1 and 65536");
  if (l.max_value_bytes < 1 || l.max_value_bytes > u32_max)
    return bad("max_value_bytes", l.max_value_bytes, "between 1 and 4294967295");
  if (l.max_batch < 1 || l.max_batch > u32_max)
    return bad("max_batch", l.max_batch, "between 1 and 4294967295");
  if (l.max_body_bytes < 1) return bad("max_body_bytes", l.max_body_bytes, ">= 1");
  if (l.max_header_bytes < 512 || l.max_header_bytes > u32_max)
    return bad("max_header_bytes", l.max_header_bytes, "between 512 and 4294967295");
  return {};
}

/// Why a body could not be decoded. The messages are the text of the
/// server's 400 replies.
enum class wire_errc {
  /// The body ends inside a field.
  truncated = 1,
  /// Bytes follow the last field of the body.
  trailing_bytes,
  /// A key has length 0.
  empty_key,
  /// A key is longer than max_key_bytes.
  key_too_long,
  /// A value is longer than max_value_bytes.
  value_too_large,
  /// A key list or reply holds more than max_batch entries.
  batch_too_large,
  /// A reply item's status byte is not 0, 1, 2 or 3.
  bad_status,
  /// A TTL is negative and not -1.
  bad_ttl,
  /// An error reply item carries error code 0.
  bad_error_code,
  /// A get body does not hold exactly one key, or a reply holds a different
  /// number of items than keys were asked for.
  wrong_count,
};

}  // namespace distcache::transport

namespace distcache::detail {

class wire_category_impl final : public boost::system::error_category {
 public:
  constexpr wire_category_impl() noexcept : error_category(0x6463'7769'7265'0001ULL) {}
  [[nodiscard]] const char* name() const noexcept override { return "distcache.wire"; }
  [[nodiscard]] std::string message(int ev) const override { return describe(ev); }
  char const* message(int ev, char* /*buffer*/, std::size_t /*len*/) const noexcept override {
    return describe(ev);
  }

 private:
  static const char* describe(int ev) noexcept {
    switch (static_cast<transport::wire_errc>(ev)) {
      case transport::wire_errc::truncated:
        return "the body ends inside a field (truncated)";
      case transport::wire_errc::trailing_bytes:
        return "unexpected bytes after the last field of the body";
      case transport::wire_errc::empty_key:
        return "a key is empty";
      case transport::wire_errc::key_too_long:
        return "a key is longer than max_key_bytes";
      case transport::wire_errc::value_too_large:
        return "a value is longer than max_value_bytes";
      case transport::wire_errc::batch_too_large:
        return "more entries than max_batch";
      case transport::wire_errc::bad_status:
        return "a reply item's status byte is not 0, 1, 2 or 3";
      case transport::wire_errc::bad_ttl:
        return "a ttl is negative and not -1";
      case transport::wire_errc::bad_error_code:
        return "an error reply item carries error code 0";
      case transport::wire_errc::wrong_count:
        return "the number of keys or items is not the expected one";
    }
    return "unknown wire error";
  }
};

}  // namespace distcache::detail

namespace distcache::transport {

/// The category of every wire_errc value ("distcache.wire").
inline const boost::system::error_category& wire_category() noexcept {
  static const detail::wire_category_impl instance;
  return instance;
}

/// Makes an error_code of the wire category.
inline error_code make_error_code(wire_errc e) noexcept {
  return {static_cast<int>(e), wire_category()};
}

}  // namespace distcache::transport

template <>
struct boost::system::is_error_code_enum<distcache::transport::wire_errc> : std::true_type {};

namespace distcache::transport {

/// The answer for one key of a get or get-many.
struct reply_item {
  /// What the node has for the key.
  enum class kind : std::uint8_t {
    /// `value` holds the serialized value and `ttl_ms` its remaining TTL.
    value = 0,
    /// The key has no value (the data source said not_found).
    not_found = 1,
    /// Loading failed; `error` says why.
    error = 2,
    /// The node is still loading the key and did not finish within the wait
    /// the request announced (DC-Wait-Ms): ask again, do not load it
    /// elsewhere. Sent only in reply to a request that carried DC-Wait-Ms.
    loading = 3,
  } status = kind::not_found;
  /// The serialized value (status value only).
  std::string value;
  /// Remaining time to live in milliseconds; -1 means it never expires
  /// (status value only). 0 means already expired.
  std::int64_t ttl_ms = -1;
  /// Why the load failed (status error only). Travels as a u16, so only
  /// distcache::errc values survive; map other categories before replying.
  distcache::errc error{};

  /// A value with remaining TTL `ttl` ms (-1: never expires).
  static reply_item found(std::string v, std::int64_t ttl = -1) {
    reply_item r;
    r.status = kind::value;
    r.value = std::move(v);
    r.ttl_ms = ttl;
    return r;
  }
  /// No value for the key.
  static reply_item missing() { return {}; }
  /// Still loading: ask again.
  static reply_item still_loading() {
    reply_item r;
    r.status = kind::loading;
    return r;
  }
  /// The load failed with `e`.
  static reply_item failed(distcache::errc e) {
    reply_item r;
    r.status = kind::error;
    r.error = e;
    return r;
  }

  friend bool operator==(const reply_item&, const reply_item&) = default;
};

/// A decoded set body; the views point into the decoded buffer.
struct set_body_view {
  std::string_view key;
  std::string_view value;
  std::int64_t ttl_ms = -1;
};

}  // namespace distcache::transport

namespace distcache::detail {

inline void wire_put_u8(std::string& out, std::uint8_t v) { out.push_back(static_cast<char>(v)); }

inline void wire_put_u16(std::string& out, std::uint16_t v) {
  const std::array<char, 2> b{static_cast<char>(v >> 8), static_cast<char>(v)};
  out.append(b.data(), b.size());
}

inline void wire_put_u32(std::string& out, std::uint32_t v) {
  const std::array<char, 4> b{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                              static_cast<char>(v >> 8), static_cast<char>(v)};
  out.append(b.data(), b.size());
}

inline void wire_put_i64(std::string& out, std::int64_t s) {
  const auto v = static_cast<std::uint64_t>(s);
  std::array<char, 8> b{};
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (56 - 8 * i));  // NOLINT
  out.append(b.data(), b.size());
}

inline void wire_put_bytes(std::string& out, std::string_view bytes) {
  wire_put_u32(out, static_cast<std::uint32_t>(bytes.size()));
  out.append(bytes);
}

/// Reads big-endian fields from a buffer. Every read checks the remaining
/// length first and returns false, consuming nothing, when it is too short.
class wire_reader {
 public:
  explicit wire_reader(std::string_view in) noexcept : in_(in) {}

  [[nodiscard]] std::size_t remaining() const noexcept { return in_.size(); }
  [[nodiscard]] bool done() const noexcept { return in_.empty(); }

  bool u8(std::uint8_t& v) noexcept {
    if (in_.empty()) return false;
    v = byte(0);
    in_.remove_prefix(1);
    return true;
  }
  bool u16(std::uint16_t& v) noexcept {
    if (in_.size() < 2) return false;
    v = static_cast<std::uint16_t>((byte(0) << 8) | byte(1));
    in_.remove_prefix(2);
    return true;
  }
  bool u32(std::uint32_t& v) noexcept {
    if (in_.size() < 4) return false;
    v = (std::uint32_t{byte(0)} << 24) | (std::uint32_t{byte(1)} << 16) |
        (std::uint32_t{byte(2)} << 8) | std::uint32_t{byte(3)};
    in_.remove_prefix(4);
    return true;
  }
  bool i64(std::int64_t& v) noexcept {
    if (in_.size() < 8) return false;
    std::uint64_t u = 0;
    for (std::size_t i = 0; i < 8; ++i) u = (u << 8) | byte(i);
    v = static_cast<std::int64_t>(u);  // two's complement, defined since C++20
    in_.remove_prefix(8);
    return true;
  }
  bool bytes(std::size_t n, std::string_view& v) noexcept {
    if (in_.size() < n) return false;
    v = in_.substr(0, n);
    in_.remove_prefix(n);
    return true;
  }

 private:
  [[nodiscard]] std::uint8_t byte(std::size_t i) const noexcept {
    return static_cast<std::uint8_t>(in_[i]);
  }
  std::string_view in_;
};

/// Reads a u32-length-prefixed key and checks it against the limits.
inline error_code wire_read_key(wire_reader& r, const transport::wire_limits& limits,
                                std::string_view& key) {
  std::uint32_t len = 0;
  if (!r.u32(len)) return transport::wire_errc::truncated;
  if (len == 0) return transport::wire_errc::empty_key;
  if (len > limits.max_key_bytes) return transport::wire_errc::key_too_long;
  if (!r.bytes(len, key)) return transport::wire_errc::truncated;
  return {};
}

/// Reads one reply item (status byte and what follows it).
inline error_code wire_read_reply_item(wire_reader& r, const transport::wire_limits& limits,
                                       transport::reply_item& item) {
  std::uint8_t status = 0;
  if (!r.u8(status)) return transport::wire_errc::truncated;
  switch (status) {
    case 0: {
      std::int64_t ttl = 0;
      std::uint32_t len = 0;
      std::string_view bytes;
      if (!r.i64(ttl)) return transport::wire_errc::truncated;
      if (ttl < -1) return transport::wire_errc::bad_ttl;
      if (!r.u32(len)) return transport::wire_errc::truncated;
      if (len > limits.max_value_bytes) return transport::wire_errc::value_too_large;
      if (!r.bytes(len, bytes)) return transport::wire_errc::truncated;
      item.status = transport::reply_item::kind::value;
      item.ttl_ms = ttl;
      item.value.assign(bytes);
      item.error = {};
      return {};
    }
    case 1:
    case 3:  // not_found, loading: nothing follows
      item.status = status == 1 ? transport::reply_item::kind::not_found
                                : transport::reply_item::kind::loading;
      item.value.clear();
      item.ttl_ms = -1;
      item.error = {};
      return {};
    case 2: {
      std::uint16_t code = 0;
      if (!r.u16(code)) return transport::wire_errc::truncated;
      if (code == 0) return transport::wire_errc::bad_error_code;
      item.status = transport::reply_item::kind::error;
      item.value.clear();
      item.ttl_ms = -1;
      item.error = static_cast<distcache::errc>(code);
      return {};
    }
    default:
      return transport::wire_errc::bad_status;
  }
}

/// The encoded size of a reply item.
inline std::size_t reply_item_size(const transport::reply_item& item) noexcept {
  switch (item.status) {
    case transport::reply_item::kind::value:
      return 1 + 8 + 4 + item.value.size();
    case transport::reply_item::kind::error:
      return 1 + 2;
    case transport::reply_item::kind::not_found:
    case transport::reply_item::kind::loading:
      break;
  }
  return 1;
}

/// Appends everything of a reply item except the value bytes themselves (for
/// writes that send the value from its own buffer).
inline void wire_put_reply_item_head(std::string& out, const transport::reply_item& item) {
  switch (item.status) {
    case transport::reply_item::kind::value:
      wire_put_u8(out, 0);
      // A TTL below -1 is meaningless; send "already expired" rather than a
      // body the receiver rejects.
      wire_put_i64(out, item.ttl_ms < -1 ? 0 : item.ttl_ms);
      wire_put_u32(out, static_cast<std::uint32_t>(item.value.size()));
      return;
    case transport::reply_item::kind::not_found:
      wire_put_u8(out, 1);
      return;
    case transport::reply_item::kind::error:
      wire_put_u8(out, 2);
      wire_put_u16(out, static_cast<std::uint16_t>(item.error));
      return;
    case transport::reply_item::kind::loading:
      wire_put_u8(out, 3);
      return;
  }
  wire_put_u8(out, 1);
}

}  // namespace distcache::detail

namespace distcache::transport {

/// A range whose elements convert to std::string_view (std::string,
/// std::string_view, const char*).
template <class R>
concept key_range = std::ranges::sized_range<R> &&
    std::convertible_to<std::ranges::range_reference_t<R>, std::string_view>;

/// Appends a key list: u32 count, then per key u32 length and bytes.
/// Precondition: fewer than 2^32 keys, each shorter than 2^32 bytes.
template <key_range Keys>
void encode_key_list(std::string& out, const Keys& keys) {
  std::size_t size = 4;
  for (std::string_view k : keys) size += 4 + k.size();
  out.reserve(out.size() + size);
  detail::wire_put_u32(out, static_cast<std::uint32_t>(std::ranges::size(keys)));
  for (std::string_view k : keys) detail::wire_put_bytes(out, k);
}

/// Decodes a whole body as a key list into `keys` (replacing its contents).
/// Errors: truncated, trailing_bytes, empty_key, key_too_long,
/// batch_too_large.
inline error_code decode_key_list(std::string_view body, const wire_limits& limits,
                                  std::vector<std::string>& keys) {
  keys.clear();
  detail::wire_reader r(body);
  std::uint32_t count = 0;
  if (!r.u32(count)) return wire_errc::truncated;
  if (count > limits.max_batch) return wire_errc::batch_too_large;
  // Each key takes at least 4 bytes; a count the body cannot hold is
  // reported before anything is reserved for it.
  if (r.remaining() / 4 < count) return wire_errc::truncated;
  keys.reserve(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    std::string_view key;
    if (auto ec = detail::wire_read_key(r, limits, key)) return ec;
    keys.emplace_back(key);
  }
  if (!r.done()) return wire_errc::trailing_bytes;
  return {};
}

/// Appends one reply item: u8 status; for a value i64 ttl_ms, u32 length and
/// bytes; for an error u16 errc value.
inline void encode_reply_item(std::string& out, const reply_item& item) {
  detail::wire_put_reply_item_head(out, item);
  if (item.status == reply_item::kind::value) out.append(item.value);
}

/// Appends a get reply body: exactly one reply item.
inline void encode_get_reply(std::string& out, const reply_item& item) {
  out.reserve(out.size() + detail::reply_item_size(item));
  encode_reply_item(out, item);
}

/// Decodes a whole body as a get reply (one item).
inline error_code decode_get_reply(std::string_view body, const wire_limits& limits,
                                   reply_item& item) {
  detail::wire_reader r(body);
  if (auto ec = detail::wire_read_reply_item(r, limits, item)) return ec;
  if (!r.done()) return wire_errc::trailing_bytes;
  return {};
}

/// Appends a get-many reply body: u32 count, then the items in key order.
inline void encode_get_many_reply(std::string& out, std::span<const reply_item> items) {
  std::size_t size = 4;
  for (const auto& item : items) size += detail::reply_item_size(item);
  out.reserve(out.size() + size);
  detail::wire_put_u32(out, static_cast<std::uint32_t>(items.size()));
  for (const auto& item : items) encode_reply_item(out, item);
}

/// Decodes a whole body as a get-many reply into `items` (replacing its
/// contents).
inline error_code decode_get_many_reply(std::string_view body, const wire_limits& limits,
                                        std::vector<reply_item>& items) {
  items.clear();
  detail::wire_reader r(body);
  std::uint32_t count = 0;
  if (!r.u32(count)) return wire_errc::truncated;
  if (count > limits.max_batch) return wire_errc::batch_too_large;
  if (r.remaining() < count) return wire_errc::truncated;  // >= 1 byte per item
  items.resize(count);
  for (auto& item : items)
    if (auto ec = detail::wire_read_reply_item(r, limits, item)) return ec;
  if (!r.done()) return wire_errc::trailing_bytes;
  return {};
}

/// Appends the part of a set body before the value bytes: u32 key length,
/// key, i64 ttl_ms, u32 value length. Followed by `value_size` value bytes it
/// is a set body; this lets a writer send a large value from its own buffer.
inline void encode_set_body_head(std::string& out, std::string_view key, std::int64_t ttl_ms,
                                 std::size_t value_size) {
  out.reserve(out.size() + 4 + key.size() + 8 + 4);
  detail::wire_put_bytes(out, key);
  detail::wire_put_i64(out, ttl_ms);
  detail::wire_put_u32(out, static_cast<std::uint32_t>(value_size));
}

/// Appends a set body: u32 key length, key, i64 ttl_ms (-1: no expiry,
/// >= 0: remaining ms), u32 value length, value.
inline void encode_set_body(std::string& out, std::string_view key, std::string_view value,
                            std::int64_t ttl_ms) {
  out.reserve(out.size() + 4 + key.size() + 8 + 4 + value.size());
  encode_set_body_head(out, key, ttl_ms, value.size());
  out.append(value);
}

/// Decodes a whole body as a set body. The views in `out` point into `body`.
/// Errors: truncated, trailing_bytes, empty_key, key_too_long, bad_ttl,
/// value_too_large.
inline error_code decode_set_body(std::string_view body, const wire_limits& limits,
                                  set_body_view& out) {
  detail::wire_reader r(body);
  std::string_view key;
  if (auto ec = detail::wire_read_key(r, limits, key)) return ec;
  std::int64_t ttl = 0;
  if (!r.i64(ttl)) return wire_errc::truncated;
  if (ttl < -1) return wire_errc::bad_ttl;
  std::uint32_t len = 0;
  if (!r.u32(len)) return wire_errc::truncated;
  if (len > limits.max_value_bytes) return wire_errc::value_too_large;
  std::string_view value;
  if (!r.bytes(len, value)) return wire_errc::truncated;
  if (!r.done()) return wire_errc::trailing_bytes;
  out = {key, value, ttl};
  return {};
}

}  // namespace distcache::transport

#endif  // DISTCACHE_TRANSPORT_WIRE_HPP
