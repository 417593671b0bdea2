// libFuzzer target: the wire decoders of protocol v1 (docs/protocol.md).
// The first byte picks the decoder, the rest is the body. Whatever decodes
// must encode back to the same bytes (the wire has one spelling per
// message), so a decoder that accepts more than it should is caught too.
#include <distcache/transport/wire.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace tr = distcache::transport;

namespace {

void check(bool ok) {
  if (!ok) std::abort();  // libFuzzer reports the input
}

tr::wire_limits small_limits() {
  tr::wire_limits l;
  l.max_key_bytes = 64;
  l.max_value_bytes = 4096;
  l.max_batch = 64;
  return l;
}

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): the entry point libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);  // NOLINT
  static const tr::wire_limits limits = small_limits();
  switch (data[0] % 5) {
    case 0: {
      std::vector<std::string> keys;
      if (!tr::decode_key_list(body, limits, keys)) {
        std::string again;
        tr::encode_key_list(again, keys);
        check(again == body);
        check(keys.size() <= limits.max_batch);
        for (const auto& k : keys) check(!k.empty() && k.size() <= limits.max_key_bytes);
      }
      break;
    }
    case 1: {
      tr::reply_item item;
      if (!tr::decode_get_reply(body, limits, item)) {
        std::string again;
        tr::encode_get_reply(again, item);
        check(again == body);
      }
      break;
    }
    case 2: {
      std::vector<tr::reply_item> items;
      if (!tr::decode_get_many_reply(body, limits, items)) {
        std::string again;
        tr::encode_get_many_reply(again, items);
        check(again == body);
      }
      break;
    }
    case 3: {
      tr::set_body_view set;
      if (!tr::decode_set_body(body, limits, set)) {
        std::string again;
        tr::encode_set_body(again, set.key, set.value, set.ttl_ms);
        check(again == body);
        check(set.ttl_ms >= -1 && set.value.size() <= limits.max_value_bytes);
      }
      break;
    }
    default: {
      std::string segment;
      if (distcache::detail::decode_path_segment(body, segment)) {
        std::string again;
        distcache::detail::append_path_segment(again, segment);
        std::string twice;
        check(distcache::detail::decode_path_segment(again, twice) && twice == segment);
      }
      break;
    }
  }
  return 0;
}
