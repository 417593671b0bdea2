// distcache — error codes, error category and result<T>.
#ifndef DISTCACHE_ERROR_HPP
#define DISTCACHE_ERROR_HPP

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <boost/system/system_error.hpp>
#include <string>
#include <type_traits>

namespace distcache {

/// The error code type used by every operation.
using error_code = boost::system::error_code;

/// The outcome of a blocking operation: a value of type T, or an error_code.
template <class T>
using result = boost::system::result<T, error_code>;

/// The errors distcache reports. Every operation returns one of these (or an
/// error code of Asio's categories for cancellation) instead of throwing.
enum class errc {
  /// The keyspace is not configured on this engine, or it was deleted.
  keyspace_not_found = 1,
  /// The data source has no value for the key; nothing was cached.
  not_found,
  /// The rate limiter refused the data-source call.
  data_source_rate_limited,
  /// The circuit breaker is open: the data source was not called.
  data_source_circuit_open,
  /// The data source returned an error or threw an exception.
  data_source_failed,
  /// The data source (or a peer) did not answer within the read timeout.
  timeout,
  /// Fewer peers than the configured quorum are reachable.
  cluster_quorum,
  /// The key is empty or longer than the configured limit.
  invalid_key,
  /// The value does not fit in the keyspace's byte budget.
  value_too_large,
  /// A peer did not answer or answered with garbage.
  peer_unavailable,
  /// A configuration value is invalid; the log line names the field.
  invalid_config,
  /// The operation was called before start().
  not_started,
  /// The operation was called after stop().
  stopped,
  /// Bytes could not be decoded into the keyspace's value type.
  malformed_value,
  /// A blocking operation was called from one of the engine's own threads,
  /// where it would deadlock; use the async_ form there.
  blocking_call_on_engine_thread,
  /// A peer belongs to another cluster (its cluster.name differs): it is
  /// refused and never enters the ring.
  cluster_mismatch,
  /// The data source's queue is full (max_queued_fetches): the load was
  /// refused at once instead of waiting. Retry later.
  overloaded,
  /// An engine call was made inside the function given to read(), which
  /// may run under a shard's read lock; copy what you need out of it and
  /// call the engine after it returns.
  call_inside_read,
};

namespace detail {

class error_category_impl final : public boost::system::error_category {
 public:
  // A fixed identifier keeps the category comparable across shared objects.
  constexpr error_category_impl() noexcept : error_category(0x6469'7374'6361'6368ULL) {}

  [[nodiscard]] const char* name() const noexcept override { return "distcache"; }

  [[nodiscard]] std::string message(int ev) const override { return describe(ev); }

  char const* message(int ev, char* /*buffer*/, std::size_t /*len*/) const noexcept override {
    return describe(ev);
  }

 private:
  static const char* describe(int ev) noexcept {
    switch (static_cast<errc>(ev)) {
      case errc::keyspace_not_found:
        return "the keyspace is not configured on this engine or was deleted";
      case errc::not_found:
        return "the data source has no value for this key";
      case errc::data_source_rate_limited:
        return "the data source's rate limit refused the call; retry later or raise the limit";
      case errc::data_source_circuit_open:
        return "the data source's circuit breaker is open after repeated failures; the source "
               "was not called";
      case errc::data_source_failed:
        return "the data source failed (it threw an exception or reported a failure)";
      case errc::timeout:
        return "the operation did not complete within its timeout";
      case errc::cluster_quorum:
        return "fewer peers than minimum_peers_quorum are reachable";
      case errc::invalid_key:
        return "the key is empty or longer than max_key_bytes";
      case errc::value_too_large:
        return "the value is larger than the keyspace's per-shard byte budget";
      case errc::peer_unavailable:
        return "the peer owning the key did not answer correctly";
      case errc::invalid_config:
        return "the configuration or argument is invalid (the error text or the log names the "
               "field and value)";
      case errc::not_started:
        return "the engine is not started; call start() first";
      case errc::stopped:
        return "the engine is stopped";
      case errc::malformed_value:
        return "the bytes could not be decoded into the keyspace's value type";
      case errc::blocking_call_on_engine_thread:
        return "a blocking operation was called on an engine thread, where it would deadlock; "
               "use the async_ form";
      case errc::cluster_mismatch:
        return "the peer belongs to another cluster (its cluster.name differs)";
      case errc::overloaded:
        return "the data source's queue is full (max_queued_fetches); the load was refused at "
               "once, retry later";
      case errc::call_inside_read:
        return "an engine call was made inside the function given to read(); call the engine "
               "after it returns";
    }
    return "unknown distcache error";
  }
};

}  // namespace detail

/// The category of every distcache::errc value.
inline const boost::system::error_category& error_category() noexcept {
  static const detail::error_category_impl instance;
  return instance;
}

/// Makes an error_code of the distcache category.
inline error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

/// Thrown only by constructors given an invalid configuration; what() names
/// the field and the bad value.
class config_error : public boost::system::system_error {
 public:
  explicit config_error(const std::string& what_arg)
      : system_error(make_error_code(errc::invalid_config), what_arg) {}
};

}  // namespace distcache

template <>
struct boost::system::is_error_code_enum<distcache::errc> : std::true_type {};

#endif  // DISTCACHE_ERROR_HPP
