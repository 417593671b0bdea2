// libFuzzer target: the Kubernetes API answers the discovery provider parses
// (a PodList page, one line of a watch stream). The first byte picks which.
// Whatever parses must name only valid peer addresses: a hostile or broken
// API server must not put garbage into the ring.
#include <distcache/discovery/detail/kubernetes_pods.hpp>
#include <distcache/discovery/provider.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace k8s = distcache::detail::kubernetes;

namespace {

void check(bool ok) {
  if (!ok) std::abort();  // libFuzzer reports the input
}

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): the entry point libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);  // NOLINT
  std::string why;
  if (data[0] % 2 == 0) {
    auto list = k8s::parse_pod_list(text, "peer", why);
    if (list) {
      for (const auto& [pod, address] : list->peers) {
        check(!pod.empty() && distcache::detail::valid_peer_address(address));
      }
    } else {
      check(!why.empty());
    }
  } else {
    auto event = k8s::parse_watch_event(text, "peer", why);
    if (event) {
      if (event->address) check(distcache::detail::valid_peer_address(*event->address));
    } else {
      check(!why.empty());
    }
  }
  return 0;
}
