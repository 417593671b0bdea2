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
/// TinyLFU (Einziger, Friedman, Manes) and Caffeine: each key has one
/// counter in each of four rows, its estimate is the smallest of the four
/// (never below its true count while that is under 15), and once
/// `sample_size` increments were made every counter is halved, so old
/// popularity fades and the sketch follows a changing workload.
///
/// The table is 2^n 64-bit words of sixteen counters; the four rows share
/// it, each key reaching four words by four derived indexes. It is sized for
/// `expected_keys`: one word per key, at least 64 words, at most 2^18 words
/// (2 MiB; beyond 262,144 keys estimates get coarser).
///
/// Thread safety: every member may be called concurrently. Counters are
/// updated with relaxed atomics (a saturated counter is only read, so the
/// hottest keys cost no writes); a halving racing with increments may lose
/// some of them, which only makes estimates a little lower.
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
    // Caffeine's ratio: ten increments per word between two halvings, so a
    // counter takes 2.5 of them on average and a cold key's estimate stays
    // near its count.
    sample_size_ = words * 10;
  }

  /// Counts one read of the key whose hash is `hash`.
  void increment(std::uint64_t hash) noexcept {
    bool added = false;
    for (unsigned row = 0; row < 4; ++row) added = bump(slot(hash, row)) || added;
    if (added && additions_.fetch_add(1, std::memory_order_relaxed) + 1 >= sample_size_) {
      halve();
    }
  }

  /// The key's estimated count of reads since it was last halved, 0..15.
  [[nodiscard]] unsigned estimate(std::uint64_t hash) const noexcept {
    unsigned m = max_count;
    for (unsigned row = 0; row < 4; ++row) m = std::min(m, read(slot(hash, row)));
    return m;
  }

  /// Increments between two halvings.
  [[nodiscard]] std::size_t sample_size() const noexcept { return sample_size_; }
  /// Number of halvings so far.
  [[nodiscard]] std::uint64_t halvings() const noexcept {
    return halvings_.load(std::memory_order_relaxed);
  }

 private:
  struct position {
    std::size_t word;
    unsigned shift;  // of the 4-bit counter in the word
  };

  // Row `row` of `hash`: a word and one of its sixteen counters, from a
  // mix of the hash with the row's seed (the engine's hash is xxh3, so its
  // bits are already spread; the mix makes the rows independent).
  [[nodiscard]] position slot(std::uint64_t hash, unsigned row) const noexcept {
    static constexpr std::uint64_t seeds[4] = {0x9E3779B97F4A7C15ULL, 0xC2B2AE3D27D4EB4FULL,
                                               0x165667B19E3779F9ULL, 0xD6E8FEB86659FD93ULL};
    std::uint64_t h = (hash ^ (hash >> 29)) * seeds[row];  // NOLINT
    h ^= h >> 32;
    return {static_cast<std::size_t>(h) & mask_, static_cast<unsigned>((h >> 58) & 15U) * 4};
  }

  [[nodiscard]] unsigned read(position p) const noexcept {
    return static_cast<unsigned>((table_[p.word].load(std::memory_order_relaxed) >> p.shift) & 15U);
  }

  // Saturating increment of one counter; false when it was already full.
  bool bump(position p) noexcept {
    auto& word = table_[p.word];
    std::uint64_t w = word.load(std::memory_order_relaxed);
    while (((w >> p.shift) & 15U) != 15U) {
      if (word.compare_exchange_weak(w, w + (std::uint64_t{1} << p.shift),
                                     std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }

  // Halves every counter; one thread does it, the others go on counting.
  void halve() noexcept {
    if (halving_.exchange(true, std::memory_order_acquire)) return;
    for (std::size_t i = 0; i <= mask_; ++i) {
      std::uint64_t w = table_[i].load(std::memory_order_relaxed);
      while (!table_[i].compare_exchange_weak(w, (w >> 1) & 0x7777777777777777ULL,
                                              std::memory_order_relaxed)) {
      }
    }
    additions_.store(sample_size_ / 2, std::memory_order_relaxed);
    halvings_.fetch_add(1, std::memory_order_relaxed);
    halving_.store(false, std::memory_order_release);
  }

  std::unique_ptr<std::atomic<std::uint64_t>[]> table_;  // NOLINT(modernize-avoid-c-arrays)
  std::size_t mask_ = 0;
  std::size_t sample_size_ = 0;
  std::atomic<std::size_t> additions_{0};
  std::atomic<std::uint64_t> halvings_{0};
  std::atomic<bool> halving_{false};
};

}  // namespace distcache::detail

#endif  // DISTCACHE_CACHE_DETAIL_FREQUENCY_SKETCH_HPP
