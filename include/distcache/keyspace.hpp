// distcache — the keyspace, data_source and serializer_for concepts.
#ifndef DISTCACHE_KEYSPACE_HPP
#define DISTCACHE_KEYSPACE_HPP

#include <concepts>
#include <cstdint>
#include <distcache/clock.hpp>
#include <distcache/error.hpp>
#include <distcache/serializers.hpp>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace distcache {

/// Tag a data source returns when it has no value for a key.
struct not_found_t {
  explicit constexpr not_found_t() = default;
};
/// The not-found answer of a data source: `return distcache::not_found;`.
inline constexpr not_found_t not_found{};

/// What a data source returns for one key: a value (optionally with its own
/// expiry), not_found, or an error code.
template <class T>
class fetch_result {
 public:
  /// A value without an expiry of its own.
  fetch_result(T value) : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT
  /// A value that expires at `expires_at` (wins over the keyspace's TTL).
  fetch_result(T value, time_point expires_at)
      : state_(std::in_place_index<0>, std::move(value)), expires_at_(expires_at) {}
  /// The source has no value for the key.
  fetch_result(not_found_t) : state_(std::in_place_index<1>) {}  // NOLINT
  /// The source failed; `ec` reaches every caller waiting for the key.
  fetch_result(error_code ec) : state_(std::in_place_index<2>, ec) {}  // NOLINT

  /// True when a value is present.
  [[nodiscard]] bool has_value() const noexcept { return state_.index() == 0; }
  /// True when the source answered not_found.
  [[nodiscard]] bool is_not_found() const noexcept { return state_.index() == 1; }
  /// The error; errc::not_found for a not-found answer; empty with a value.
  [[nodiscard]] error_code error() const noexcept {
    if (state_.index() == 1) return make_error_code(errc::not_found);
    if (state_.index() == 2) return *std::get_if<2>(&state_);
    return {};
  }
  /// The value. Precondition: has_value().
  [[nodiscard]] T& value() & noexcept { return *std::get_if<0>(&state_); }
  /// The value's own expiry; time_point::min() when it has none (see has_expiry()).
  [[nodiscard]] time_point expires_at() const noexcept { return expires_at_; }
  /// True when the source gave the value an expiry of its own.
  [[nodiscard]] bool has_expiry() const noexcept { return expires_at_ != time_point::min(); }

 private:
  std::variant<T, not_found_t, error_code> state_;
  time_point expires_at_ = time_point::min();
};

/// A serializer turns a T into bytes and back.
///
/// A model is default-constructible and provides
/// - `serialize(const T&, std::string& out)`: appends the encoding to `out`;
/// - `deserialize(std::string_view) -> result<T>`: decodes, and returns an
///   error (errc::malformed_value) for truncated or garbage input instead of
///   invoking undefined behaviour.
/// Why: values cross the network between nodes, and bytes from a peer are
/// untrusted.
template <class S, class T>
concept serializer_for = std::default_initializable<S> &&
    requires(const S& s, const T& v, std::string& out, std::string_view in) {
  s.serialize(v, out);
  { s.deserialize(in) } -> std::same_as<result<T>>;
};

/// A data source loads the value of a key on a cache miss.
///
/// A model provides `fetch(std::string_view key)` returning something
/// convertible to fetch_result<T>: a T, `distcache::not_found`, or an
/// error_code. fetch runs on the engine's blocking pool, concurrently for
/// different keys, so it must be thread-safe; it may block (a database query).
/// An exception it throws becomes errc::data_source_failed for every caller
/// waiting for that key.
template <class S, class T>
concept data_source = requires(S& s, std::string_view key) {
  { s.fetch(key) } -> std::convertible_to<fetch_result<T>>;
};

/// A data source that can also load many keys in one call (a `WHERE id IN
/// (...)` query, a batch API): `fetch_many(std::span<const std::string_view>
/// keys)` returns one result per key, in the order of the keys, each
/// convertible to fetch_result<T>. The engine then groups the misses that
/// arrive together into one call (docs/freshness.md#batched-loads). It runs
/// on the blocking pool like fetch, and an exception it throws (or a result
/// count that differs from the key count) fails every key of the call with
/// errc::data_source_failed.
template <class S, class T>
concept batch_data_source = data_source<S, T> &&
    requires(S& s, std::span<const std::string_view> keys) {
  { s.fetch_many(keys) } -> std::convertible_to<std::vector<fetch_result<T>>>;
};

namespace detail {
template <class K>
struct keyspace_serializer {
  using type = default_serializer_t<typename K::value_type>;
};
template <class K>
requires requires { typename K::serializer; }
struct keyspace_serializer<K> {
  using type = typename K::serializer;
};

// `name` must be a static data member of type std::string_view ...
template <class K>
concept has_static_string_view_name = requires {
  { &K::name } -> std::convertible_to<const std::string_view*>;
};
// ... and a constant expression (checked only once the first part holds).
template <class K>
concept has_static_name = has_static_string_view_name<K> && requires {
  typename std::integral_constant<std::size_t, K::name.size()>;
};
}  // namespace detail

/// The serializer of keyspace K: K::serializer when declared, otherwise
/// default_serializer_t<K::value_type>.
template <class K>
using keyspace_serializer_t = typename detail::keyspace_serializer<K>::type;

/// A keyspace declares one kind of cached value.
///
/// A model is a movable struct with
/// - `static constexpr std::string_view name`: unique, non-empty, the name
///   used on the wire, in stats and in the runtime operations;
/// - `using value_type = ...`: the cached value type;
/// - optionally `using serializer = ...` (see serializer_for); deduced when
///   absent (default_serializer_t);
/// - `max_bytes`: the byte budget of the keyspace's main cache;
/// - `source`: a data_source<value_type>;
/// - optionally `time_point expires_at(std::string_view key) const`: the
///   expiry of a key's value, which wins over the keyspace's default TTL.
/// Why: everything the engine needs to know about a kind of value is in one
/// type, so `get<users>` is checked and dispatched at compile time.
template <class K>
concept keyspace = std::move_constructible<K> && detail::has_static_name<K> && requires {
  typename K::value_type;
} && requires(const K& k) {
  { k.max_bytes } -> std::convertible_to<std::int64_t>;
} && data_source<decltype(std::declval<K&>().source), typename K::value_type> &&
    serializer_for < keyspace_serializer_t<K>,
typename K::value_type > ;

/// True when keyspace K declares `expires_at(key)`.
template <class K>
concept has_expires_at = requires(const K& k, std::string_view key) {
  { k.expires_at(key) } -> std::convertible_to<time_point>;
};

namespace detail {
/// One readable static_assert per missing piece, instead of a page of
/// template errors, when K does not model keyspace.
template <class K>
constexpr bool check_keyspace() {
  static_assert(detail::has_static_name<K>,
                "distcache: a keyspace needs `static constexpr std::string_view name = \"...\";`");
  static_assert(
      requires { typename K::value_type; },
      "distcache: a keyspace needs `using value_type = ...;`");
  if constexpr (requires { typename K::value_type; }) {
    static_assert(
        requires(const K& k) {
          { k.max_bytes } -> std::convertible_to<std::int64_t>;
        },
        "distcache: a keyspace needs a `std::int64_t max_bytes` member (its byte budget)");
    constexpr bool has_source = requires(K & k) { k.source; };
    static_assert(has_source,
                  "distcache: a keyspace needs a `source` member with `fetch(std::string_view)` "
                  "returning fetch_result<value_type> (a value, distcache::not_found or an "
                  "error_code)");
    if constexpr (has_source) {
      static_assert(
          data_source<decltype(std::declval<K&>().source), typename K::value_type>,
          "distcache: a keyspace needs a `source` member with `fetch(std::string_view)` "
          "returning fetch_result<value_type> (a value, distcache::not_found or an error_code)");
    }
    static_assert(!std::is_void_v<keyspace_serializer_t<K>>,
                  "distcache: no serializer can be deduced for this keyspace's value_type; declare "
                  "`using serializer = ...;` (or describe the type with BOOST_DESCRIBE_STRUCT)");
    if constexpr (!std::is_void_v<keyspace_serializer_t<K>>) {
      static_assert(
          serializer_for<keyspace_serializer_t<K>, typename K::value_type>,
          "distcache: the keyspace's serializer does not model serializer_for<value_type>");
    }
  }
  return keyspace<K>;
}
}  // namespace detail

}  // namespace distcache

#endif  // DISTCACHE_KEYSPACE_HPP
