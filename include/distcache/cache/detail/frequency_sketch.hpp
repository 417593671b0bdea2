// distcache — frequency_sketch: how often each key was read lately
// (TinyLFU's count-min sketch with aging), for hot-cache admission and for
// the hot keys a warm-up loads.
#ifndef DISTCACHE_CACHE_DETAIL_FREQUENCY_SKETCH_HPP
#define DISTCACHE_CACHE_DETAIL_FREQUENCY_SKETCH_HPP

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace distcache::detail {

/// A count-min sketch of 4-bit counters with periodic halving, as in
/// TinyLFU (Einziger, Friedman, Manes) and Caffeine: each key has four
/// counters, its estimate is the smallest of them (never below its true
/// count while that is under 15, unless an increment was lost: see below),
/// and about every `sample_size()` increments every counter is halved, so old
/// popularity fades and the sketch follows a changing workload.
///
/// The table is 2^n 64-bit words of sixteen counters, in four groups of
/// four. A key's four counters are in one word (one cache line per
/// increment or estimate, as Caffeine's blocked sketch): the word chosen by
/// its hash, and in each group the counter chosen by two more bits of it.
/// It is sized for `expected_keys`: one word per key, at least 64 words, at
/// most 2^18 words (2 MiB; beyond 262,144 keys estimates get coarser).
///
/// Thread safety: every member may be called concurrently. A word is
/// updated with a relaxed atomic load and store, not a read-modify-write:
/// two increments of one word at the same instant (or one racing with a
/// halving) may lose one, which a sketch of sampled reads can afford, while
/// a locked instruction on the hit path cannot be (Caffeine's sketch is not
/// atomic either). A saturated key's word is only read.
class frequency_sketch {
 public:
  /// The largest estimate (4-bit counters).
  static constexpr unsigned max_count = 15;

  explicit frequency_sketch(std::size_t expected_keys) {
    std::size_t words = 64;
    const std::size_t want = std::min<std::size_t>(expected_keys, std::size_t{1} << 18);
    while (words < want) words *= 2;
    mask_ = words - 1;
    table_ = std::make_unique<std::atomic<std::uint64_t>[]>(words);  // NOLINT
    for (std::size_t i = 0; i < words; ++i) table_[i].store(0, std::memory_order_relaxed);
    // Sixteen increments per word between two halvings (Caffeine uses ten):
    // a power of two, so that a random number decides when to halve.
    sample_size_ = words * 16;
  }

  /// Counts one read of the key whose hash is `hash`. `dice` is a uniformly
  /// random number: when its low bits are zero (one time in sample_size())
  /// every counter is halved, so no shared counter of increments is kept.
  void increment(std::uint64_t hash, std::uint64_t dice) noexcept {
    const std::uint64_t h = mix(hash);
    auto& word = table_[static_cast<std::size_t>(h) & mask_];
    const std::uint64_t w = word.load(std::memory_order_relaxed);
    std::uint64_t next = w;
    for (unsigned group = 0; group < 4; ++group) {
      const unsigned shift = nibble(h, group) * 4;
      if (((w >> shift) & 15U) != 15U) next += std::uint64_t{1} << shift;
    }
    if (next != w) word.store(next, std::memory_order_relaxed);
    if ((dice & (sample_size_ - 1)) == 0) halve();
  }

  /// The key's estimated count of reads since it was last halved, 0..15.
  [[nodiscard]] unsigned estimate(std::uint64_t hash) const noexcept {
    const std::uint64_t h = mix(hash);
    const std::uint64_t w =
        table_[static_cast<std::size_t>(h) & mask_].load(std::memory_order_relaxed);
    unsigned m = max_count;
    for (unsigned group = 0; group < 4; ++group) {
      m = std::min(m, static_cast<unsigned>((w >> (nibble(h, group) * 4)) & 15U));
    }
    return m;
  }

  /// Increments between two halvings, on average (a power of two).
  [[nodiscard]] std::size_t sample_size() const noexcept { return sample_size_; }
  /// Number of halvings so far.
  [[nodiscard]] std::uint64_t halvings() const noexcept {
    return halvings_.load(std::memory_order_relaxed);
  }

 private:
  // The engine's hash is xxh3, whose bits are already spread; the mix keeps
  // the word index and the counter choices independent of the bits the
  // caches use for their shards and buckets.
  static std::uint64_t mix(std::uint64_t hash) noexcept {
    std::uint64_t h = (hash ^ (hash >> 31)) * 0x9E3779B97F4A7C15ULL;
    return h ^ (h >> 29);
  }
  // The counter of group `group` (0..3) in the key's word: 4 * group plus
  // two bits from the top of the mixed hash.
  static unsigned nibble(std::uint64_t h, unsigned group) noexcept {
    return group * 4 + static_cast<unsigned>((h >> (56 + group * 2)) & 3U);
  }

  // Halves every counter; one thread does it, the others go on counting.
  void halve() noexcept {
    if (halving_.exchange(true, std::memory_order_acquire)) return;
    for (std::size_t i = 0; i <= mask_; ++i) {
      const std::uint64_t w = table_[i].load(std::memory_order_relaxed);
      table_[i].store((w >> 1) & 0x7777777777777777ULL, std::memory_order_relaxed);
    }
    halvings_.fetch_add(1, std::memory_order_relaxed);
    halving_.store(false, std::memory_order_release);
  }

  std::unique_ptr<std::atomic<std::uint64_t>[]> table_;  // NOLINT(modernize-avoid-c-arrays)
  std::size_t mask_ = 0;
  std::size_t sample_size_ = 0;
  std::atomic<std::uint64_t> halvings_{0};
  std::atomic<bool> halving_{false};
};

}  // namespace distcache::detail

#endif  // DISTCACHE_CACHE_DETAIL_FREQUENCY_SKETCH_HPP
