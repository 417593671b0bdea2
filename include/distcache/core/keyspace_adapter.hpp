// distcache — the keyspace adapter: the only code that knows a keyspace's
// type. The engine's core sees keyspaces through it, as type-erased values.
#ifndef DISTCACHE_CORE_KEYSPACE_ADAPTER_HPP
#define DISTCACHE_CORE_KEYSPACE_ADAPTER_HPP

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <distcache/clock.hpp>
#include <distcache/error.hpp>
#include <distcache/keyspace.hpp>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace distcache::detail {

/// Bytes a decoded value holds: its object plus what it owns on the heap.
/// A keyspace may state it exactly with `std::size_t value_bytes(const
/// value_type&) const`; otherwise strings and byte vectors count their
/// capacity, trivially-copyable values their size, and other types their
/// encoded size (computed once, when the value enters the cache).
template <class K>
std::size_t value_bytes(const K& def, const typename K::value_type& v) {
  using V = typename K::value_type;
  if constexpr (requires {
                  { def.value_bytes(v) } -> std::convertible_to<std::size_t>;
                }) {
    return sizeof(V) + def.value_bytes(v);
  } else if constexpr (std::is_same_v<V, std::string>) {
    // Short strings live inside the object (small-string optimisation).
    return sizeof(V) + (v.capacity() > 15 ? v.capacity() + 1 : 0);
  } else if constexpr (std::is_same_v<V, bytes>) {
    return sizeof(V) + v.capacity();
  } else if constexpr (std::is_trivially_copyable_v<V>) {
    return sizeof(V);
  } else {
    std::string encoded;
    keyspace_serializer_t<K>{}.serialize(v, encoded);
    return sizeof(V) + encoded.size();
  }
}

/// A decoded value ready for the cache: the object, the bytes it is charged
/// for, and (from a fetch) its own expiry.
struct loaded_value {
  std::shared_ptr<const void> value;
  std::size_t bytes = 0;
  /// The value's own expiry; time_point::min() when it has none.
  time_point expires_at = time_point::min();
};

/// One keyspace definition seen without its type. Everything the core does
/// with values (fetch, encode, decode, size, expiry) goes through here.
///
/// Thread safety: every member may be called concurrently; fetch() runs on
/// the blocking pool for different keys at once.
class keyspace_adapter {
 public:
  keyspace_adapter() = default;
  keyspace_adapter(const keyspace_adapter&) = delete;
  keyspace_adapter& operator=(const keyspace_adapter&) = delete;
  virtual ~keyspace_adapter() = default;

  /// The keyspace's name.
  [[nodiscard]] virtual std::string_view name() const noexcept = 0;
  /// The definition's byte budget (before overrides).
  [[nodiscard]] virtual std::int64_t max_bytes() const = 0;
  /// Calls the data source. The error is errc::not_found for a not-found
  /// answer. May throw whatever the source throws.
  virtual result<loaded_value> fetch(std::string_view key) = 0;
  /// True when the source has fetch_many (batch_data_source).
  [[nodiscard]] virtual bool batches() const noexcept = 0;
  /// Calls the source's fetch_many: one result per key, in order (a source
  /// without fetch_many is called once per key). May throw whatever the
  /// source throws; the result count is the source's (the caller checks it).
  virtual std::vector<result<loaded_value>> fetch_many(std::span<const std::string_view> keys) = 0;
  /// Appends the encoding of `value` (a value of this keyspace) to `out`.
  virtual void serialize(const void* value, std::string& out) const = 0;
  /// Decodes bytes from a peer; errc::malformed_value when they do not decode.
  [[nodiscard]] virtual result<loaded_value> deserialize(std::string_view bytes) const = 0;
  /// The bytes a value of this keyspace is charged for.
  [[nodiscard]] virtual std::size_t value_bytes(const void* value) const = 0;
  /// The keyspace's expiry for `key` when it declares expires_at(), else empty.
  [[nodiscard]] virtual std::optional<time_point> expires_at(std::string_view key) const = 0;
};

/// The adapter of keyspace K: holds the definition and forwards to it.
template <class K>
class keyspace_adapter_for final : public keyspace_adapter {
 public:
  using value_type = typename K::value_type;

  explicit keyspace_adapter_for(K def) : def_(std::move(def)) {}

  [[nodiscard]] std::string_view name() const noexcept override { return K::name; }
  [[nodiscard]] std::int64_t max_bytes() const override {
    return static_cast<std::int64_t>(def_.max_bytes);
  }
  result<loaded_value> fetch(std::string_view key) override {
    return loaded(def_.source.fetch(key));
  }
  [[nodiscard]] bool batches() const noexcept override {
    return batch_data_source<decltype(def_.source), value_type>;
  }
  std::vector<result<loaded_value>> fetch_many(std::span<const std::string_view> keys) override {
    std::vector<result<loaded_value>> out;
    if constexpr (batch_data_source<decltype(def_.source), value_type>) {
      std::vector<fetch_result<value_type>> all = def_.source.fetch_many(keys);
      out.reserve(all.size());
      for (auto& fr : all) out.push_back(loaded(std::move(fr)));
    } else {
      out.reserve(keys.size());
      for (auto key : keys) out.push_back(fetch(key));
    }
    return out;
  }
  void serialize(const void* value, std::string& out) const override {
    keyspace_serializer_t<K>{}.serialize(*static_cast<const value_type*>(value), out);
  }
  [[nodiscard]] result<loaded_value> deserialize(std::string_view bytes) const override {
    auto decoded = keyspace_serializer_t<K>{}.deserialize(bytes);
    if (!decoded) return make_error_code(errc::malformed_value);
    loaded_value out;
    out.bytes = detail::value_bytes(def_, *decoded);
    out.value = std::make_shared<const value_type>(std::move(*decoded));
    return out;
  }
  [[nodiscard]] std::size_t value_bytes(const void* value) const override {
    return detail::value_bytes(def_, *static_cast<const value_type*>(value));
  }
  [[nodiscard]] std::optional<time_point> expires_at(std::string_view key) const override {
    if constexpr (has_expires_at<K>) {
      return def_.expires_at(key);
    } else {
      (void)key;
      return std::nullopt;
    }
  }

 private:
  result<loaded_value> loaded(fetch_result<value_type> fr) const {
    if (!fr.has_value()) return fr.error();
    loaded_value out;
    out.bytes = detail::value_bytes(def_, fr.value());
    out.expires_at = fr.expires_at();
    out.value = std::make_shared<const value_type>(std::move(fr.value()));
    return out;
  }

  K def_;  // source.fetch() runs concurrently on the blocking pool
};

}  // namespace distcache::detail

#endif  // DISTCACHE_CORE_KEYSPACE_ADAPTER_HPP
