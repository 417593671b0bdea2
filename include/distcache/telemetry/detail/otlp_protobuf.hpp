// distcache — OTLP protobuf encoding of spans and metrics
// (opentelemetry-proto: collector/trace/v1 ExportTraceServiceRequest and
// collector/metrics/v1 ExportMetricsServiceRequest). No I/O.
#ifndef DISTCACHE_TELEMETRY_DETAIL_OTLP_PROTOBUF_HPP
#define DISTCACHE_TELEMETRY_DETAIL_OTLP_PROTOBUF_HPP

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <distcache/telemetry/telemetry.hpp>
#include <span>
#include <string>
#include <string_view>

namespace distcache::telemetry::detail {

/// Appends protobuf wire-format fields to a string.
class pb_writer {
 public:
  explicit pb_writer(std::string& out) : out_(out) {}

  void varint(std::uint64_t v) {
    while (v >= 0x80) {
      out_ += static_cast<char>((v & 0x7fU) | 0x80U);
      v >>= 7U;
    }
    out_ += static_cast<char>(v);
  }
  void tag(std::uint32_t field, std::uint32_t wire) { varint((field << 3U) | wire); }
  void uint_field(std::uint32_t field, std::uint64_t v) {
    if (v == 0) return;  // the default is not written
    tag(field, 0);
    varint(v);
  }
  void fixed64(std::uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      out_ += static_cast<char>(v & 0xffU);
      v >>= 8U;
    }
  }
  void fixed64_field(std::uint32_t field, std::uint64_t v) {
    tag(field, 1);
    fixed64(v);
  }
  void double_field(std::uint32_t field, double d) {
    std::uint64_t bits = 0;
    std::memcpy(&bits, &d, sizeof bits);
    fixed64_field(field, bits);
  }
  void bytes_field(std::uint32_t field, std::string_view b) {
    tag(field, 2);
    varint(b.size());
    out_.append(b.data(), b.size());
  }
  /// A nested message: `body(pb_writer&)` writes its fields.
  template <class Body>
  void message(std::uint32_t field, Body body) {
    std::string nested;
    pb_writer w(nested);
    body(w);
    bytes_field(field, nested);
  }

 private:
  std::string& out_;
};

template <std::size_t N>
std::string_view id_bytes(const std::array<std::uint8_t, N>& id) {
  return {reinterpret_cast<const char*>(id.data()), N};  // NOLINT(*-reinterpret-cast)
}

// common.v1.KeyValue { key = 1; AnyValue value = 2 { string 1 | int 3 } }.
inline void string_attribute(pb_writer& w, std::uint32_t field, std::string_view key,
                             std::string_view value) {
  w.message(field, [&](pb_writer& kv) {
    kv.bytes_field(1, key);
    kv.message(2, [&](pb_writer& v) { v.bytes_field(1, value); });
  });
}
inline void int_attribute(pb_writer& w, std::uint32_t field, std::string_view key,
                          std::int64_t value) {
  w.message(field, [&](pb_writer& kv) {
    kv.bytes_field(1, key);
    kv.message(2, [&](pb_writer& v) {
      v.tag(3, 0);
      v.varint(static_cast<std::uint64_t>(value));
    });
  });
}

// resource.v1.Resource { repeated KeyValue attributes = 1 }.
inline void resource(pb_writer& w, const node_identity& self) {
  w.message(1, [&](pb_writer& r) {
    string_attribute(r, 1, "service.name", self.service_name);
    string_attribute(r, 1, "service.instance.id", self.instance);
    string_attribute(r, 1, "telemetry.sdk.name", "distcache");
    string_attribute(r, 1, "telemetry.sdk.language", "cpp");
  });
}

// common.v1.InstrumentationScope { name = 1 }.
inline void scope(pb_writer& w) {
  w.message(1, [](pb_writer& s) { s.bytes_field(1, "distcache"); });
}

/// An ExportTraceServiceRequest holding `spans`.
inline std::string encode_traces(const node_identity& self, std::span<const span_record> spans) {
  std::string out;
  pb_writer req(out);
  req.message(1, [&](pb_writer& rs) {  // ResourceSpans
    resource(rs, self);
    rs.message(2, [&](pb_writer& ss) {  // ScopeSpans
      scope(ss);
      for (const auto& s : spans) {
        ss.message(2, [&](pb_writer& sp) {  // Span
          sp.bytes_field(1, id_bytes(s.context.trace_id));
          sp.bytes_field(2, id_bytes(s.context.span_id));
          bool has_parent = false;
          for (auto b : s.parent_id) has_parent = has_parent || b != 0;
          if (has_parent) sp.bytes_field(4, id_bytes(s.parent_id));
          sp.bytes_field(5, s.name);
          sp.uint_field(6, static_cast<std::uint64_t>(s.kind));
          sp.fixed64_field(7, s.start_unix_ns);
          sp.fixed64_field(8, s.end_unix_ns);
          string_attribute(sp, 9, "distcache.operation", name(s.op));
          string_attribute(sp, 9, "distcache.keyspace", s.keyspace);
          int_attribute(sp, 9, "distcache.keys", s.keys);
          if (!s.peer.empty()) string_attribute(sp, 9, "distcache.peer", s.peer);
          if (s.error) {
            sp.message(15, [&](pb_writer& st) {  // Status { message = 2; code = 3 }
              st.bytes_field(2, s.status_message);
              st.uint_field(3, 2);  // STATUS_CODE_ERROR
            });
          }
        });
      }
    });
  });
  return out;
}

/// An ExportMetricsServiceRequest of a snapshot (cumulative temporality).
inline std::string encode_metrics(const node_identity& self, const metrics_snapshot& m) {
  constexpr std::uint64_t cumulative = 2;
  std::string out;
  pb_writer req(out);
  auto op_attributes = [](pb_writer& p, std::uint32_t field, const histogram_point& h) {
    string_attribute(p, field, "distcache.operation", name(h.op));
    string_attribute(p, field, "distcache.keyspace", h.keyspace);
  };
  // A metric of one integer point per item: a monotonic cumulative Sum, or
  // a Gauge (no start time, no temporality).
  auto numbers = [&](pb_writer& sm, bool is_sum, std::string_view metric,
                     std::string_view description, std::string_view unit, const auto& items,
                     auto value, auto attributes) {
    sm.message(2, [&](pb_writer& mt) {
      mt.bytes_field(1, metric);
      mt.bytes_field(2, description);
      mt.bytes_field(3, unit);
      mt.message(is_sum ? 7 : 5, [&](pb_writer& data) {
        for (const auto& it : items) {
          data.message(1, [&](pb_writer& p) {  // NumberDataPoint
            if (is_sum) p.fixed64_field(2, m.start_unix_ns);
            p.fixed64_field(3, m.time_unix_ns);
            p.fixed64_field(6, static_cast<std::uint64_t>(value(it)));  // as_int (sfixed64)
            attributes(p, 7, it);
          });
        }
        if (is_sum) {
          data.uint_field(2, cumulative);
          data.uint_field(3, 1);  // is_monotonic
        }
      });
    });
  };
  auto sum = [&](pb_writer& sm, auto&&... args) { numbers(sm, true, args...); };
  auto gauge = [&](pb_writer& sm, auto&&... args) { numbers(sm, false, args...); };
  auto keyspace_attribute = [](pb_writer& p, std::uint32_t field, const keyspace_point& k) {
    string_attribute(p, field, "distcache.keyspace", k.keyspace);
  };
  req.message(1, [&](pb_writer& rm) {  // ResourceMetrics
    resource(rm, self);
    rm.message(2, [&](pb_writer& sm) {  // ScopeMetrics
      scope(sm);
      if (!m.operations.empty()) {
        sm.message(2, [&](pb_writer& mt) {
          mt.bytes_field(1, "distcache.operation.duration");
          mt.bytes_field(2,
                         "Latency of the engine's operations, data-source fetches and peer gets");
          mt.bytes_field(3, "s");
          mt.message(9, [&](pb_writer& h) {  // Histogram
            for (const auto& op : m.operations) {
              h.message(1, [&](pb_writer& p) {  // HistogramDataPoint
                p.fixed64_field(2, m.start_unix_ns);
                p.fixed64_field(3, m.time_unix_ns);
                p.fixed64_field(4, op.count);
                p.double_field(5, static_cast<double>(op.sum_ns) / 1e9);
                std::string counts;
                pb_writer c(counts);
                for (auto n : op.bucket_counts) c.fixed64(n);
                p.bytes_field(6, counts);  // packed fixed64
                std::string bounds;
                pb_writer b(bounds);
                for (double d : m.bounds_s) {
                  std::uint64_t bits = 0;
                  std::memcpy(&bits, &d, sizeof bits);
                  b.fixed64(bits);
                }
                p.bytes_field(7, bounds);  // packed double
                op_attributes(p, 9, op);
              });
            }
            h.uint_field(2, cumulative);
          });
        });
        sum(
            sm, "distcache.operations", "Operations completed", "{operation}", m.operations,
            [](const histogram_point& h) { return h.count; }, op_attributes);
        sum(
            sm, "distcache.operation.errors", "Operations that failed (not_found is no failure)",
            "{operation}", m.operations, [](const histogram_point& h) { return h.errors; },
            op_attributes);
      }
      sum(
          sm, "distcache.cache.hits", "Gets answered from this node's caches", "{get}", m.keyspaces,
          [](const keyspace_point& k) { return k.cache_hits; }, keyspace_attribute);
      sum(
          sm, "distcache.cache.misses", "Gets that had to load the value", "{get}", m.keyspaces,
          [](const keyspace_point& k) { return k.cache_misses; }, keyspace_attribute);
      gauge(
          sm, "distcache.cache.bytes", "Bytes held by the main and hot caches", "By", m.keyspaces,
          [](const keyspace_point& k) { return k.cache_bytes; }, keyspace_attribute);
      const std::array<std::int64_t, 1> peers{m.peers};
      gauge(
          sm, "distcache.peers", "Peers in the ring, this node excluded", "{node}", peers,
          [](std::int64_t n) { return n; }, [](pb_writer&, std::uint32_t, std::int64_t) {});
    });
  });
  return out;
}

}  // namespace distcache::telemetry::detail

#endif  // DISTCACHE_TELEMETRY_DETAIL_OTLP_PROTOBUF_HPP
