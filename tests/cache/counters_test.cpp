#include <distcache/cache/detail/counters.hpp>
//
#include <doctest/doctest.h>

#include <thread>
#include <vector>

TEST_CASE("a striped counter sums what many threads add") {
  distcache::detail::striped_counter c;
  std::vector<std::thread> threads;
  threads.reserve(24);  // more threads than stripes: some share one
  for (int t = 0; t < 24; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) c.add();
      c.add(5);
    });
  }
  for (auto& t : threads) t.join();
  CHECK(c.load() == 24 * 1005);
}

TEST_CASE("keyspace counters start at zero and count independently") {
  distcache::detail::keyspace_counters k;
  k.cache_hits.add(3);
  k.loads.add();
  CHECK(k.cache_hits.load() == 3);
  CHECK(k.loads.load() == 1);
  CHECK(k.peer_errors.load() == 0);
}
