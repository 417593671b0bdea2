// libFuzzer target: what the NATS discovery provider parses from its server
// (a MSG line's head) and from other nodes (an announcement payload). The
// first byte picks which. A MSG head must point into the line and announce
// at most 1 MiB; an announcement must name a valid peer address.
#include <distcache/discovery/detail/nats_connection.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <string_view>

namespace {

void check(bool ok) {
  if (!ok) std::abort();  // libFuzzer reports the input
}

bool inside(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (std::less_equal<>()(whole.data(), part.data()) &&
          std::less_equal<>()(part.data() + part.size(), whole.data() + whole.size()));
}

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): the entry point libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);  // NOLINT
  if (data[0] % 2 == 0) {
    if (auto head = distcache::detail::parse_nats_msg(text)) {
      check(head->size <= (std::size_t{1} << 20));
      check(!head->subject.empty() && inside(head->subject, text) && inside(head->reply, text));
      check(head->subject.find(' ') == std::string_view::npos);
    }
  } else {
    if (auto a = distcache::detail::parse_nats_announcement(text)) {
      check(distcache::detail::valid_peer_address(a->address) && inside(a->address, text));
    }
  }
  return 0;
}
