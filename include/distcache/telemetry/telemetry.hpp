// distcache — the telemetry seam: operations, W3C trace context, spans, the
// sink the engine reports to, the telemetry_policy concept and
// telemetry::none. No Asio here: an engine built with the default policy
// compiles nothing of an exporter.
#ifndef DISTCACHE_TELEMETRY_TELEMETRY_HPP
#define DISTCACHE_TELEMETRY_TELEMETRY_HPP

#include <array>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <distcache/config.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace distcache::telemetry {

/// What the engine measures: one value per public operation, plus the data
/// source call (fetch) and the requests to other nodes (peer_get to a key's
/// owner; peer_set, peer_remove, peer_invalidate: the fan-out of put and
/// remove). The attribute `distcache.operation` carries name(op).
enum class operation : std::uint8_t {
  get,
  get_many,
  put,
  put_many,
  remove,
  remove_many,
  update_keyspace,
  delete_keyspace,
  fetch,
  peer_get,
  peer_set,
  peer_remove,
  peer_invalidate,
};
/// How many operation values there are.
inline constexpr std::size_t operation_count = 13;

/// The operation's name as exported ("get", "get_many", …, "fetch", "peer_get", …).
constexpr std::string_view name(operation op) noexcept {
  constexpr std::array<std::string_view, operation_count> names = {"get",
                                                                   "get_many",
                                                                   "put",
                                                                   "put_many",
                                                                   "remove",
                                                                   "remove_many",
                                                                   "update_keyspace",
                                                                   "delete_keyspace",
                                                                   "fetch",
                                                                   "peer_get",
                                                                   "peer_set",
                                                                   "peer_remove",
                                                                   "peer_invalidate"};
  return names[static_cast<std::size_t>(op)];
}

/// A W3C trace context (https://www.w3.org/TR/trace-context/): the trace, the
/// span and whether the trace is sampled.
struct span_context {
  std::array<std::uint8_t, 16> trace_id{};
  std::array<std::uint8_t, 8> span_id{};
  /// Bit 0: sampled.
  std::uint8_t flags = 0;

  /// A context with a non-zero trace and span id.
  [[nodiscard]] bool valid() const noexcept {
    bool t = false;
    bool s = false;
    for (auto b : trace_id) t = t || b != 0;
    for (auto b : span_id) s = s || b != 0;
    return t && s;
  }
  [[nodiscard]] bool sampled() const noexcept { return (flags & 1U) != 0; }
};

namespace detail {
constexpr int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // upper case is not allowed by the specification
}
template <std::size_t N>
constexpr bool parse_hex(std::string_view s, std::array<std::uint8_t, N>& out) noexcept {
  if (s.size() != 2 * N) return false;
  for (std::size_t i = 0; i < N; ++i) {
    const int hi = hex_value(s[2 * i]);
    const int lo = hex_value(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return true;
}
template <std::size_t N>
void append_hex(std::string& out, const std::array<std::uint8_t, N>& in) {
  constexpr std::string_view digits = "0123456789abcdef";
  for (auto b : in) {
    out += digits[b >> 4U];
    out += digits[b & 15U];
  }
}
}  // namespace detail

/// Parses a `traceparent` header value. Version 00 must be exactly
/// "00-<32 hex>-<16 hex>-<2 hex>"; a later version is read by its first
/// four fields (as the specification asks); version ff, upper-case hex, an
/// all-zero trace or span id, or any other shape gives nullopt (the caller
/// then starts a new trace).
inline std::optional<span_context> parse_traceparent(std::string_view v) noexcept {
  if (v.size() < 55) return std::nullopt;
  std::array<std::uint8_t, 1> version{};
  if (!detail::parse_hex(v.substr(0, 2), version) || version[0] == 0xff) return std::nullopt;
  if (version[0] == 0 && v.size() != 55) return std::nullopt;
  if (version[0] != 0 && v.size() > 55 && v[55] != '-') return std::nullopt;
  if (v[2] != '-' || v[35] != '-' || v[52] != '-') return std::nullopt;
  span_context c;
  std::array<std::uint8_t, 1> flags{};
  if (!detail::parse_hex(v.substr(3, 32), c.trace_id) ||
      !detail::parse_hex(v.substr(36, 16), c.span_id) ||
      !detail::parse_hex(v.substr(53, 2), flags)) {
    return std::nullopt;
  }
  c.flags = flags[0];
  if (!c.valid()) return std::nullopt;
  return c;
}

/// The `traceparent` header value of `c` (version 00).
inline std::string format_traceparent(const span_context& c) {
  std::string out;
  out.reserve(55);
  out += "00-";
  detail::append_hex(out, c.trace_id);
  out += '-';
  detail::append_hex(out, c.span_id);
  out += c.sampled() ? "-01" : "-00";
  return out;
}

/// Lowercase hex of a trace or span id (for logs and tests).
template <std::size_t N>
std::string to_hex(const std::array<std::uint8_t, N>& id) {
  std::string out;
  detail::append_hex(out, id);
  return out;
}

/// The span kinds of OTLP.
enum class span_kind : std::uint8_t { internal = 1, server = 2, client = 3 };

/// One finished span, as the engine hands it to a sink.
struct span_record {
  span_context context;                     // trace, this span's id, flags
  std::array<std::uint8_t, 8> parent_id{};  // zero: a root span
  std::string_view name;                    // static text: "distcache.get", …
  span_kind kind = span_kind::internal;
  std::uint64_t start_unix_ns = 0;
  std::uint64_t end_unix_ns = 0;
  std::string_view keyspace;  // valid until the sink's stop()
  operation op = operation::get;
  std::uint32_t keys = 1;  // keys the operation covered
  std::string peer;        // client spans: the peer asked; server spans: the sender
  bool error = false;
  std::string status_message;  // the error's message when error
};

/// The counters of an exporter, for /metrics and tests.
struct exporter_stats {
  std::uint64_t spans_exported = 0;
  std::uint64_t spans_dropped = 0;   // queue full, or their export failed
  std::uint64_t exports_failed = 0;  // requests that failed (timeout, refused, non-2xx)
  std::uint64_t metric_exports = 0;  // metric requests accepted by the collector
};

/// One histogram's cumulative state (durations in nanoseconds).
struct histogram_point {
  std::string_view keyspace;
  operation op = operation::get;
  std::vector<std::uint64_t> bucket_counts;  // one per bound, plus +Inf
  std::uint64_t count = 0;
  std::uint64_t sum_ns = 0;
  std::uint64_t errors = 0;
};

/// Per keyspace figures of a snapshot.
struct keyspace_point {
  std::string_view keyspace;
  std::uint64_t cache_hits = 0;
  std::uint64_t cache_misses = 0;  // gets that had to load (the engine's `loads`)
  std::int64_t cache_bytes = 0;    // main + hot
};

/// What the engine's metrics are now: cumulative since `start_unix_ns`.
struct metrics_snapshot {
  std::uint64_t start_unix_ns = 0;
  std::uint64_t time_unix_ns = 0;
  /// Upper bounds of the latency buckets, in seconds.
  std::vector<double> bounds_s;
  std::vector<histogram_point> operations;
  std::vector<keyspace_point> keyspaces;
  std::int64_t peers = 0;  // peers in the ring, this node excluded
};

/// Who this node is, for the resource attributes of what a sink exports.
struct node_identity {
  std::string service_name;  // service.name
  std::string instance;      // service.instance.id: the node's name
};

/// Where the engine's spans and metrics go. The engine calls `span()` from
/// any thread, on its hot paths: it must not block (queue, drop when full).
/// `start()` is called once at the engine's first start, `stop()` once at
/// its stop; after stop() nothing more arrives.
class sink {
 public:
  using collect_fn = std::function<metrics_snapshot()>;
  sink() = default;
  sink(const sink&) = delete;
  sink& operator=(const sink&) = delete;
  virtual ~sink() = default;

  /// Begins exporting; `collect` returns the engine's metrics when called
  /// (from the sink's own thread).
  virtual void start(node_identity self, collect_fn collect) = 0;
  /// Flushes what is queued (bounded by the sink's timeout) and ends.
  virtual void stop() noexcept = 0;
  /// Takes a finished span. Never blocks; drops (and counts) when full.
  virtual void span(span_record&& s) noexcept = 0;
  [[nodiscard]] virtual exporter_stats stats() const noexcept = 0;
};

/// No telemetry: the engine creates no spans and exports nothing; its
/// operations then cost one predictable branch more (docs/performance.md).
/// Latency histograms for the admin server's /metrics are still kept when
/// the admin server is enabled.
struct none {};

/// A telemetry policy says where spans and metrics go: telemetry::none, or
/// a type with `static std::unique_ptr<telemetry::sink> make(const
/// telemetry_options&, const logger&)`. Models: telemetry::none (default),
/// telemetry::otlp (<distcache/telemetry/otlp.hpp>).
template <class T>
concept telemetry_policy = std::same_as<T, none> ||
    requires(const telemetry_options& o, const logger& log) {
  { T::make(o, log) } -> std::convertible_to<std::unique_ptr<sink>>;
};

/// OTLP/HTTP (protobuf) export to an OpenTelemetry Collector. Declared here,
/// defined by <distcache/telemetry/otlp.hpp>.
struct otlp;

/// Sets the parent of the engine operations the calling thread starts while
/// it lives (a blocking call, or the initiation of an async_ one), so the
/// engine's spans join the application's trace. Nests; restores the
/// previous parent when destroyed.
class scoped_parent {
 public:
  explicit scoped_parent(const span_context& parent) noexcept : previous_(current()) {
    current() = parent;
  }
  scoped_parent(const scoped_parent&) = delete;
  scoped_parent& operator=(const scoped_parent&) = delete;
  ~scoped_parent() { current() = previous_; }

  /// The calling thread's parent (invalid when none is set).
  static span_context& current() noexcept {
    thread_local span_context parent;
    return parent;
  }

 private:
  span_context previous_;
};

}  // namespace distcache::telemetry

#endif  // DISTCACHE_TELEMETRY_TELEMETRY_HPP
