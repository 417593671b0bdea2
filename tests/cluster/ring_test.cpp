#include <distcache/cluster/ring.hpp>
//
#include <doctest/doctest.h>

#include <algorithm>
#include <distcache/config.hpp>
#include <distcache/detail/hash.hpp>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace {
std::vector<std::string> names(int n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::string> out;
  while (static_cast<int>(out.size()) < n) {
    out.push_back("127.0.0.1:" + std::to_string(20000 + rng() % 40000));
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
  }
  return out;
}
double busiest_over_mean(const distcache::ring& r, int keys) {
  std::vector<int> count(r.nodes().size());
  for (int k = 0; k < keys; ++k) {
    ++count[r.owner_index(distcache::detail::hash_key("key:" + std::to_string(k)))];
  }
  const double mean = static_cast<double>(keys) / static_cast<double>(count.size());
  return *std::max_element(count.begin(), count.end()) / mean;
}
}  // namespace

TEST_CASE("the default virtual node count keeps the busiest of 3, 5 and 10 nodes under 1.15x") {
  const std::size_t vnodes = distcache::cluster_options{}.virtual_nodes;
  for (int n : {3, 5, 10}) {
    for (std::uint32_t seed : {1U, 2U, 3U, 4U, 5U}) {
      distcache::ring r(names(n, seed * 100 + static_cast<std::uint32_t>(n)), vnodes, 1);
      CHECK(busiest_over_mean(r, 100000) <= 1.15);
    }
  }
}

TEST_CASE("a ring gives every key one owner, the same for equal member lists in any order") {
  distcache::ring a({"n1:1", "n2:2", "n3:3"}, 64, 1);
  distcache::ring b({"n3:3", "n1:1", "n2:2", "n1:1"}, 64, 1);
  CHECK(a.nodes().size() == 3);
  CHECK(b.nodes() == a.nodes());
  for (int k = 0; k < 1000; ++k) {
    const auto h = distcache::detail::hash_key("k" + std::to_string(k));
    CHECK(a.owner_index(h) == b.owner_index(h));
  }
}

TEST_CASE("removing a node only moves the keys it owned") {
  distcache::ring before({"a:1", "b:2", "c:3"}, 128, 1);
  distcache::ring after({"a:1", "b:2"}, 128, 2);
  int moved = 0;
  for (int k = 0; k < 10000; ++k) {
    const auto h = distcache::detail::hash_key("k" + std::to_string(k));
    const auto& was = before.nodes()[before.owner_index(h)];
    const auto& now = after.nodes()[after.owner_index(h)];
    if (was != "c:3") {
      CHECK(was == now);
    } else {
      ++moved;
    }
  }
  CHECK(moved > 0);
}

TEST_CASE("an empty ring has no owner") {
  distcache::ring r({}, 16, 0);
  CHECK(r.owner_index(42) == distcache::ring::npos);
}
