// The engine's small bookkeeping: striped counters, and the memory of recent writes.
#include <distcache/cache/detail/counters.hpp>
#include <distcache/cache/detail/recent_writes.hpp>
//
#include <doctest/doctest.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

TEST_CASE("a striped counter sums what many threads add") {
  // 40 threads alive at once: 16 hold a stripe each (plain load and store),
  // the others share the overflow cell (fetch_add). A thread without a
  // stripe writing to a held one would lose increments against its holder.
  distcache::detail::striped_counter c;
  constexpr int count = 40;
  constexpr int adds = 1000000;
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  threads.reserve(count);
  for (int t = 0; t < count; ++t) {
    threads.emplace_back([&] {
      c.add(0);  // takes this thread's stripe, or none
      ready.fetch_add(1);
      while (ready.load() < count) std::this_thread::yield();
      for (int i = 0; i < adds; ++i) c.add();
      c.add(5);
    });
  }
  for (auto& t : threads) t.join();
  CHECK(c.load() == std::uint64_t{count} * (adds + 5));
}

TEST_CASE("keyspace counters start at zero and count independently") {
  distcache::detail::keyspace_counters k;
  k.cache_hits.add(3);
  k.loads.add();
  CHECK(k.cache_hits.load() == 3);
  CHECK(k.loads.load() == 1);
  CHECK(k.peer_errors.load() == 0);
}

TEST_CASE("recent_writes remembers a key for its window, and every key after an overflow") {
  using distcache::detail::recent_writes;
  const distcache::time_point t0{std::chrono::seconds(100)};
  recent_writes w(std::chrono::seconds(10), 3);
  CHECK_FALSE(w.written(1, t0));
  w.note(1, t0);
  CHECK(w.written(1, t0 + std::chrono::seconds(9)));
  CHECK_FALSE(w.written(1, t0 + std::chrono::seconds(10)));  // the window has passed
  CHECK_FALSE(w.written(2, t0));
  // A key written again is remembered from its last write.
  w.note(1, t0 + std::chrono::seconds(5));
  w.note(2, t0 + std::chrono::seconds(11));  // forgets the write at t0, not the later one
  CHECK(w.written(1, t0 + std::chrono::seconds(14)));
  CHECK(w.size() == 2);
  w.note(2, t0 + std::chrono::seconds(30));  // both older writes forgotten
  CHECK(w.size() == 1);
  CHECK_FALSE(w.written(1, t0 + std::chrono::seconds(30)));
  // More writes than it can hold within a window: it cannot tell which keys
  // were written, so every key counts as written until a window has passed.
  const auto t1 = t0 + std::chrono::seconds(31);
  for (std::uint64_t k = 10; k < 14; ++k) w.note(k, t1);
  CHECK(w.size() <= 3);
  CHECK(w.written(999, t1 + std::chrono::seconds(9)));
  CHECK_FALSE(w.written(999, t1 + std::chrono::seconds(10)));
}
