// distcache — serializers: raw bytes, std::string, JSON, trivially-copyable types.
#ifndef DISTCACHE_SERIALIZERS_HPP
#define DISTCACHE_SERIALIZERS_HPP

#include <boost/describe/class.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <boost/json/value_from.hpp>
#include <boost/json/value_to.hpp>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <distcache/error.hpp>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace distcache {

/// Raw bytes.
using bytes = std::vector<std::byte>;

/// Serializer for distcache::bytes: the value is its own encoding.
struct bytes_serializer {
  /// Appends the encoding of `v` to `out`.
  static void serialize(const bytes& v, std::string& out) {
    const auto* p = reinterpret_cast<const char*>(v.data());  // NOLINT: byte view
    out.append(p, v.size());
  }
  /// Decodes bytes; never fails.
  static result<bytes> deserialize(std::string_view in) {
    bytes v(in.size());
    if (!in.empty()) std::memcpy(v.data(), in.data(), in.size());
    return v;
  }
};

/// Serializer for std::string: the value is its own encoding.
struct string_serializer {
  /// Appends `v` to `out`.
  static void serialize(const std::string& v, std::string& out) { out.append(v); }
  /// Decodes bytes; never fails.
  static result<std::string> deserialize(std::string_view in) { return std::string(in); }
};

/// Serializer for trivially-copyable types (integers, floats, PODs without
/// pointers): the object representation, in this machine's byte order.
/// Decoding checks the length, so truncated or extended input is an error.
template <class T>
requires(std::is_trivially_copyable_v<T> && !std::is_pointer_v<T>) struct trivial_serializer {
  /// Appends the sizeof(T) bytes of `v` to `out`.
  static void serialize(const T& v, std::string& out) {
    const auto* p = reinterpret_cast<const char*>(&v);  // NOLINT: object representation
    out.append(p, sizeof(T));
  }
  /// Decodes exactly sizeof(T) bytes; any other length is errc::malformed_value.
  static result<T> deserialize(std::string_view in) {
    if (in.size() != sizeof(T)) return make_error_code(errc::malformed_value);
    T v;  // NOLINT(cppcoreguidelines-pro-type-member-init): memcpy fills every byte
    std::memcpy(&v, in.data(), sizeof(T));
    return v;
  }
};

namespace detail {

/// True when every number in `v` is finite. Boost.JSON reads a number too
/// large for a double (1e400) as an infinity, which JSON cannot write back:
/// a value holding one would serialize to text ("Infinity") that no node
/// can read. The parser's depth limit (32) bounds the recursion.
inline bool json_numbers_finite(const boost::json::value& v) noexcept {
  switch (v.kind()) {
    case boost::json::kind::double_:
      return std::isfinite(v.get_double());
    case boost::json::kind::array:
      for (const auto& e : v.get_array()) {
        if (!json_numbers_finite(e)) return false;
      }
      return true;
    case boost::json::kind::object:
      for (const auto& kv : v.get_object()) {
        if (!json_numbers_finite(kv.value())) return false;
      }
      return true;
    default:
      return true;
  }
}

}  // namespace detail

/// Serializer through Boost.JSON, for types described with
/// BOOST_DESCRIBE_STRUCT or given tag_invoke value_from/value_to overloads.
/// Malformed JSON, a number out of the range of a double (1e400), a missing
/// member or a member of the wrong type decode to errc::malformed_value. A
/// value holding a NaN or an infinity serializes to text JSON cannot carry
/// ("NaN", "Infinity"), which then decodes to errc::malformed_value.
template <class T>
struct json_serializer {
  /// Appends the JSON text of `v` to `out`.
  static void serialize(const T& v, std::string& out) {
    out.append(boost::json::serialize(boost::json::value_from(v)));
  }
  /// Parses JSON text into a T.
  static result<T> deserialize(std::string_view in) {
    boost::system::error_code ec;
    boost::json::value jv = boost::json::parse(in, ec);
    if (ec || !detail::json_numbers_finite(jv)) return make_error_code(errc::malformed_value);
    auto r = boost::json::try_value_to<T>(jv);
    if (!r) return make_error_code(errc::malformed_value);
    return std::move(*r);
  }
};

namespace detail {

template <class T>
struct default_serializer {
  // No serializer can be deduced for T: the keyspace must name one.
  using type = void;
};
template <>
struct default_serializer<std::string> {
  using type = string_serializer;
};
template <>
struct default_serializer<bytes> {
  using type = bytes_serializer;
};
template <class T>
requires(std::is_trivially_copyable_v<T> && !std::is_pointer_v<T>) struct default_serializer<T> {
  using type = trivial_serializer<T>;
};
template <class T>
requires(!std::is_trivially_copyable_v<T> &&
         (boost::describe::has_describe_members<T>::value ||
          boost::json::has_value_from<T>::value)) struct default_serializer<T> {
  using type = json_serializer<T>;
};

}  // namespace detail

/// The serializer used when a keyspace names none: string_serializer for
/// std::string, bytes_serializer for bytes, trivial_serializer for
/// trivially-copyable types, json_serializer for described or JSON-convertible
/// types; void when none applies.
template <class T>
using default_serializer_t = typename detail::default_serializer<T>::type;

}  // namespace distcache

#endif  // DISTCACHE_SERIALIZERS_HPP
