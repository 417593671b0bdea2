// distcache — value_cache: the byte-bounded, sharded CLOCK cache that holds a
// keyspace's values (main and hot), with per-entry expiry, refresh time and
// stale window (docs/freshness.md).
#ifndef DISTCACHE_CACHE_DETAIL_VALUE_CACHE_HPP
#define DISTCACHE_CACHE_DETAIL_VALUE_CACHE_HPP

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <distcache/cache/detail/counters.hpp>
#include <distcache/cache/detail/frequency_sketch.hpp>
#include <distcache/cache/detail/hashed_key.hpp>
#include <distcache/cache/detail/lifetime.hpp>
#include <distcache/clock.hpp>
#include <distcache/detail/spin.hpp>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace distcache::detail {

/// A byte-bounded cache of decoded values with CLOCK (second-chance LRU)
/// eviction, split into shards by the key's hash so that concurrent
/// operations on different keys rarely share a lock.
///
/// A hit writes no cache line another thread writes (two threads reading
/// one shard used to move its lock's line between their cores on every
/// hit): each shard has a reader count per counter stripe
/// (striped_counter::stripe(), one per live thread), laid out so a thread's
/// counts for every shard sit on its own lines. A reader raises its count,
/// then checks the shard's `writing` flag; a writer takes the shard's mutex,
/// raises the flag, then waits until every stripe's count for the shard is
/// zero. Both sides use sequentially consistent operations, so either the
/// reader sees the flag (it backs off and takes the mutex) or the writer
/// sees the count (it waits): a "big-reader" lock. Writes pay for it by
/// reading one count per stripe.
///
/// Each shard indexes its entries in an open-addressing table (linear
/// probing, backward-shift deletion) of 16-byte slots, each the key's full
/// hash and its entry: a lookup reads one slot line, then only the entry
/// whose hash matches, whose first 64 bytes hold everything a hit reads
/// (value, refresh time, referenced bit, key). std::unordered_map read the
/// bucket, the node before the first of the bucket, then a 104-byte node
/// over two lines (docs/performance.md, "the hit path").
///
/// It is not templated on the value type: values are type-erased read-only
/// handles (shared_ptr<const void>) and the caller states how many bytes each
/// one holds. Every entry is charged `charge(key, value_bytes)`: the key, the
/// value bytes and a fixed per-entry overhead (hash node, list links, control
/// block, allocator headers). The sum of charges in a shard never exceeds the
/// shard's budget, max_bytes / shards, which is also the largest value it
/// accepts.
///
/// Expired entries are never returned; a lookup that finds one misses and
/// leaves it for a write of its key, remove() or eviction to drop.
///
/// Thread safety: every member function may be called concurrently.
/// Invariant: no lock is held while user code runs (values are destroyed
/// outside the shard lock when an eviction releases the last handle), but
/// for visit()'s function, which runs on the read side. The statistics
/// (bytes(), size(), evictions(), admissions_refused()) take no lock, so
/// that such a function may read them while a writer waits for it.
class value_cache {
 public:
  /// Bytes charged per entry on top of its key and value bytes.
  static constexpr std::size_t entry_overhead = 160;

  /// Bytes an entry of this key and value size is charged.
  static constexpr std::size_t charge(std::size_t key_bytes, std::size_t value_bytes) noexcept {
    return entry_overhead + key_bytes + value_bytes;
  }

  /// The shard count used for a budget when none is configured: a power of
  /// two up to 16, keeping every shard at least 256 KiB.
  static std::size_t default_shards(std::int64_t max_bytes) noexcept {
    std::size_t n = 1;
    while (n < 16 && max_bytes / static_cast<std::int64_t>(n * 2) >= (256 << 10)) n *= 2;
    return n;
  }

  /// A cache of at most `max_bytes` over `shards` shards (rounded up to a power
  /// of two, at least 1). `clock` may be null: the steady clock is used.
  /// `max_stale`: how long an entry is kept after its value expires, to be
  /// served as stale (get() with a state); 0 drops it at its expiry.
  value_cache(std::int64_t max_bytes, std::size_t shards, const clock_source* clock,
              duration max_stale = duration::zero())
      : clock_(clock), max_stale_(max_stale) {
    std::size_t n = 1;
    while (n < std::max<std::size_t>(shards, 1)) n *= 2;
    mask_ = n - 1;
    shard_budget_ = std::max<std::int64_t>(max_bytes, 0) / static_cast<std::int64_t>(n);
    shards_ = std::make_unique<shard[]>(n);  // NOLINT(modernize-avoid-c-arrays)
    reader_lines_ = (n + 15) / 16;
    readers_ = std::make_unique<reader_line[]>(  // NOLINT(modernize-avoid-c-arrays)
        striped_counter::stripe_count * reader_lines_);
    shard_count_ = n;
  }

  /// The value of `key`, or null when absent or gone. A hit only marks
  /// the entry as referenced (CLOCK), on the read side of the shard's
  /// big-reader lock, so concurrent hits on a shard neither wait for each
  /// other nor write a shared line nor relink the list; `expires_at`, when
  /// given, receives the value's expiry.
  ///
  /// `state`, when given, receives the hit's freshness: a value past its
  /// refresh time is `refresh`, an expired one within max_stale of its
  /// expiry `stale`. Without `state` a stale value is a miss. An entry past
  /// its stale window is never returned; it is dropped by a put() of its
  /// key, remove(), or eviction (which gives expired entries no second
  /// chance).
  [[nodiscard]] std::shared_ptr<const void> get(hashed_key key, time_point* expires_at = nullptr,
                                                freshness* state = nullptr) {
    const std::size_t si = shard_index(key.hash);
    shard& s = shards_[si];
    std::atomic<std::uint32_t>& readers = reader_count(striped_counter::stripe(), si);
    readers.fetch_add(1, std::memory_order_seq_cst);
    if (s.writing.load(std::memory_order_seq_cst)) [[unlikely]] {
      readers.fetch_sub(1, std::memory_order_release);
      std::lock_guard lock(s.mutex);  // a write is under way: wait for it
      return lookup(s, key, expires_at, state);
    }
    auto v = lookup(s, key, expires_at, state);
    readers.fetch_sub(1, std::memory_order_release);
    return v;
  }

  /// Calls `fn(const void* value)` with the fresh value of `key` and returns
  /// what fn returns (true: the caller is served); returns false without
  /// calling fn when the key is absent or not fresh. fn runs on the read
  /// side of the shard's big-reader lock, so it reads the stored object in
  /// place, without copying its handle; a writer of the shard waits until it
  /// returns, and fn must not write to this cache (it would wait for itself).
  /// During a write the value's handle is copied under the mutex and fn runs
  /// after it is released. An exception from fn leaves the lock released.
  template <class Fn>
  bool visit(hashed_key key, Fn&& fn) {
    const std::size_t si = shard_index(key.hash);
    shard& s = shards_[si];
    std::atomic<std::uint32_t>& readers = reader_count(striped_counter::stripe(), si);
    readers.fetch_add(1, std::memory_order_seq_cst);
    if (s.writing.load(std::memory_order_seq_cst)) [[unlikely]] {
      readers.fetch_sub(1, std::memory_order_release);
      std::shared_ptr<const void> v;
      {
        std::lock_guard lock(s.mutex);  // a write is under way: wait for it
        freshness state = freshness::fresh;
        v = lookup(s, key, nullptr, &state);
        if (state != freshness::fresh) return false;
      }
      return v != nullptr && fn(v.get());
    }
    class leave {
     public:
      explicit leave(std::atomic<std::uint32_t>& count) noexcept : count_(count) {}
      leave(const leave&) = delete;
      leave& operator=(const leave&) = delete;
      ~leave() { count_.fetch_sub(1, std::memory_order_release); }

     private:
      std::atomic<std::uint32_t>& count_;
    } const guard(readers);
    freshness state = freshness::fresh;
    const node* e = find_live(s, key, &state);
    return e != nullptr && state == freshness::fresh && fn(e->value.get());
  }

  /// Stores `value` under `key`, fresh until `expires_at` and then gone
  /// (see the overload taking a lifetime).
  bool put(hashed_key key, std::shared_ptr<const void> value, std::size_t value_bytes,
           time_point expires_at) {
    return put(key, std::move(value), value_bytes, lifetime::until(expires_at));
  }

  /// Stores `value` under `key` with `life`, replacing any previous value,
  /// evicting least recently used entries of the shard until it fits.
  /// Returns false, storing nothing and leaving any previous value in place,
  /// when the entry alone is larger than the shard budget.
  ///
  /// `admit`, when given, is TinyLFU's admission filter: a new key that
  /// needs room is stored only when its estimated frequency is at least
  /// that of the entry it would evict first (an expired victim always
  /// yields); otherwise nothing changes, the refusal is counted
  /// (admissions_refused()) and put returns false.
  bool put(hashed_key key, std::shared_ptr<const void> value, std::size_t value_bytes,
           const lifetime& life, const frequency_sketch* admit = nullptr) {
    const time_point soft_at = std::min(life.refresh_at, life.expires_at);
    const auto cost = static_cast<std::int64_t>(charge(key.text.size(), value_bytes));
    // An entry's charge is kept in 32 bits (a smaller node): at most 4 GiB.
    if (cost > shard_budget_ || cost > std::int64_t{UINT32_MAX}) return false;
    shard& s = shard_for(key.hash);
    // Values let go of are destroyed after unlocking: the one replaced, and
    // those evicted (a vector only when there are some).
    std::shared_ptr<const void> replaced;
    std::vector<std::shared_ptr<const void>> released;
    const write_lock lock(*this, shard_index(key.hash));
    node* self = s.find(key);   // the entry being stored: never its own victim
    node* candidate = nullptr;  // a new key's node, while admission is undecided
    if (self != nullptr) {
      node& n = *self;
      replaced = std::exchange(n.value, std::move(value));
      s.bytes += cost - static_cast<std::int64_t>(n.cost);
      n.cost = static_cast<std::uint32_t>(cost);
      n.soft_at = soft_at;
      n.expires_at = life.expires_at;
      n.referenced = false;
      s.touch(self);
    } else {
      auto fresh = std::make_unique<node>();
      node& n = *fresh;
      n.value = std::move(value);
      n.soft_at = soft_at;
      n.key.assign(key.text);
      n.cost = static_cast<std::uint32_t>(cost);
      n.hash = key.hash;
      n.expires_at = life.expires_at;
      s.insert(fresh.get());  // may throw (bad_alloc): then nothing changed
      self = fresh.release();
      entries_.fetch_add(1, std::memory_order_relaxed);
      s.bytes += cost;
      s.link_front(self);
      if (admit != nullptr) candidate = self;
    }
    // CLOCK: a referenced entry at the tail gets a second chance (its bit is
    // cleared and it moves to the head), unless it has expired (a stale
    // entry is the first to go). Each pass clears bits, so the loop ends
    // within two passes over the shard.
    const time_point t = s.bytes > shard_budget_ ? now() : time_point{};
    while (s.bytes > shard_budget_ && s.tail != nullptr) {
      node* victim = s.tail;
      const bool expired = victim->expires_at != never_expires && t >= victim->expires_at;
      // The entry being stored reaches the tail when every entry behind it
      // had its second chance: it goes round once more rather than evict
      // itself (it fits alone, so another entry remains to evict).
      if (victim == self || (victim->referenced && !expired)) {
        victim->referenced = false;
        s.touch(victim);
        continue;
      }
      if (candidate != nullptr) {
        // TinyLFU: the first victim decides; ties go to the newcomer.
        const bool refused = !expired && admit->estimate(key.hash) < admit->estimate(victim->hash);
        if (refused) {
          released.push_back(std::move(candidate->value));
          s.erase(candidate, entries_);
          ++s.refused;
          return false;
        }
        candidate = nullptr;
      }
      released.push_back(std::move(victim->value));
      s.erase(victim, entries_);
      ++s.evictions;
    }
    return true;
  }

  /// Removes `key`; returns true when an entry was removed.
  bool remove(hashed_key key) {
    // An empty cache (the hot cache of a node alone, say) takes no lock. An
    // entry stored before this call (happens-before) is seen in the count.
    if (entries_.load(std::memory_order_relaxed) == 0) return false;
    shard& s = shard_for(key.hash);
    std::shared_ptr<const void> doomed;
    const write_lock lock(*this, shard_index(key.hash));
    node* n = s.find(key);
    if (n == nullptr) return false;
    doomed = std::move(n->value);
    s.erase(n, entries_);
    return true;
  }

  /// Removes every entry.
  void clear() {
    for (std::size_t i = 0; i < shard_count_; ++i) {
      shard& s = shards_[i];
      node* doomed = nullptr;  // the list of the shard's entries, freed unlocked
      {
        const write_lock lock(*this, i);
        doomed = s.head;
        entries_.fetch_sub(s.count, std::memory_order_relaxed);
        s.reset_table();
        s.head = s.tail = nullptr;
        s.bytes = 0;
      }
      shard::free_list(doomed);
    }
  }

  /// Bytes charged by the entries held now.
  [[nodiscard]] std::int64_t bytes() const noexcept {
    std::int64_t total = 0;
    for (std::size_t i = 0; i < shard_count_; ++i) total += shards_[i].bytes;
    return total;
  }

  /// Number of entries held now (expired ones not yet looked up included).
  [[nodiscard]] std::size_t size() const noexcept {
    return entries_.load(std::memory_order_relaxed);
  }

  /// Entries evicted to make room since construction.
  [[nodiscard]] std::uint64_t evictions() const noexcept {
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < shard_count_; ++i) total += shards_[i].evictions;
    return total;
  }

  /// New keys the admission filter kept out since construction.
  [[nodiscard]] std::uint64_t admissions_refused() const noexcept {
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < shard_count_; ++i) total += shards_[i].refused;
    return total;
  }

  /// Calls `fn(key, hash)` for every entry not past its stale window, shard by
  /// shard under the shard's mutex, which holds its writers off (fn must not
  /// call this cache).
  template <class Fn>
  void for_each_key(Fn&& fn) const {
    for (std::size_t i = 0; i < shard_count_; ++i) {
      const shard& s = shards_[i];
      std::lock_guard lock(s.mutex);
      const time_point t = now();
      for (const node* e = s.head; e != nullptr; e = e->next) {
        if (e->expires_at == never_expires || t < e->expires_at + max_stale_) {
          fn(std::string_view(e->key), e->hash);
        }
      }
    }
  }

  /// The budget of each shard (the largest sum of charges it holds).
  [[nodiscard]] std::int64_t shard_budget() const noexcept { return shard_budget_; }
  /// The largest charge one entry may have: the shard budget, at most 4 GiB.
  [[nodiscard]] std::int64_t max_entry_charge() const noexcept {
    return std::min<std::int64_t>(shard_budget_, std::int64_t{UINT32_MAX});
  }
  /// The number of shards.
  [[nodiscard]] std::size_t shards() const noexcept { return shard_count_; }
  /// The largest sum of charges a shard ever holds is shard_budget(); this is
  /// the largest any shard holds now (tests check the invariant with it).
  [[nodiscard]] std::int64_t largest_shard_bytes() const {
    std::int64_t m = 0;
    for (std::size_t i = 0; i < shard_count_; ++i) m = std::max(m, shards_[i].bytes.get());
    return m;
  }

 private:
  /// One entry: what a hit reads (value, refresh time, key, referenced bit)
  /// in its first 64 bytes; the links and the expiry, which writes and
  /// eviction use, after. Not aligned to a cache line on purpose: an
  /// over-aligned allocation (glibc's memalign) lands the entry away from the
  /// value allocated just before it and cost 40 % at 1M keys
  /// (docs/performance.md).
  struct node {
    std::shared_ptr<const void> value;
    time_point soft_at = never_expires;  // min(refresh_at, expires_at): before it, fresh
    std::string key;
    std::uint32_t cost = 0;   // the charge (put refuses more than 4 GiB)
    bool referenced = false;  // read since it last reached the tail (CLOCK)
    std::uint64_t hash = 0;
    time_point expires_at = never_expires;  // after it, stale; max_stale later, gone
    node* prev = nullptr;                   // towards the most recently used
    node* next = nullptr;                   // towards the least recently used
  };

  /// A slot of a shard's table: the key's full hash and its entry (null:
  /// empty). Four to a cache line.
  struct slot {
    std::uint64_t hash = 0;
    node* entry = nullptr;
  };

  // Aligned so two shards' locks never share a cache line.
  struct alignas(64) shard {
    mutable std::mutex mutex;          // writers, and readers during a write
    std::atomic<bool> writing{false};  // a writer holds the mutex (or waits for readers)
    std::unique_ptr<slot[]> table;     // NOLINT(modernize-avoid-c-arrays): a power of two
    std::size_t table_mask = 0;        // slots - 1 (0: no table yet)
    std::size_t count = 0;             // entries
    node* head = nullptr;              // most recently used
    node* tail = nullptr;              // least recently used
    lock_written<std::int64_t> bytes;
    lock_written<std::uint64_t> evictions;
    lock_written<std::uint64_t> refused;  // new keys the admission filter kept out

    shard() = default;
    shard(const shard&) = delete;
    shard& operator=(const shard&) = delete;
    ~shard() { free_list(head); }

    static void free_list(node* n) noexcept {
      while (n != nullptr) {
        node* next = n->next;
        delete n;  // NOLINT(cppcoreguidelines-owning-memory): the list owns its nodes
        n = next;
      }
    }

    /// The entry of `key`, or null.
    [[nodiscard]] node* find(hashed_key key) const noexcept {
      if (table == nullptr) return nullptr;
      for (std::size_t i = key.hash & table_mask;; i = (i + 1) & table_mask) {
        const slot& sl = table[i];
        if (sl.entry == nullptr) return nullptr;
        if (sl.hash == key.hash && std::string_view(sl.entry->key) == key.text) return sl.entry;
      }
    }
    /// Adds `n` (its key absent), growing the table past 70 % full.
    void insert(node* n) {
      if (table == nullptr || (count + 1) * 10 > (table_mask + 1) * 7) {
        grow(table == nullptr ? 16 : (table_mask + 1) * 2);
      }
      place(n);
      ++count;
    }
    void place(node* n) noexcept {
      std::size_t i = n->hash & table_mask;
      while (table[i].entry != nullptr) i = (i + 1) & table_mask;
      table[i] = slot{n->hash, n};
    }
    void grow(std::size_t slots) {
      const std::size_t old_slots = table == nullptr ? 0 : table_mask + 1;
      auto old = std::make_unique<slot[]>(slots);  // NOLINT(modernize-avoid-c-arrays)
      old.swap(table);                             // allocated first: a bad_alloc changes nothing
      table_mask = slots - 1;
      for (std::size_t i = 0; i < old_slots; ++i) {
        if (old[i].entry != nullptr) place(old[i].entry);
      }
    }
    /// Takes `n` out of the table (backward-shift deletion: the entries
    /// after it in its run move back, so no tombstone is left).
    void unindex(const node* n) noexcept {
      std::size_t i = n->hash & table_mask;
      while (table[i].entry != n) i = (i + 1) & table_mask;
      for (std::size_t j = (i + 1) & table_mask; table[j].entry != nullptr;
           j = (j + 1) & table_mask) {
        const std::size_t home = table[j].hash & table_mask;
        // The entry at j may fill the hole at i when i lies on its probe
        // path, from its home slot to j.
        if (((j - home) & table_mask) >= ((j - i) & table_mask)) {
          table[i] = table[j];
          i = j;
        }
      }
      table[i] = slot{};
    }
    void reset_table() noexcept {
      table.reset();
      table_mask = 0;
      count = 0;
    }

    void unlink(node* n) noexcept {
      (n->prev != nullptr ? n->prev->next : head) = n->next;
      (n->next != nullptr ? n->next->prev : tail) = n->prev;
      n->prev = n->next = nullptr;
    }
    void link_front(node* n) noexcept {
      n->prev = nullptr;
      n->next = head;
      if (head != nullptr) head->prev = n;
      head = n;
      if (tail == nullptr) tail = n;
    }
    void touch(node* n) noexcept {
      if (head == n) return;
      unlink(n);
      link_front(n);
    }
    /// Removes `n` (its value already moved out, to be released unlocked).
    void erase(node* n, std::atomic<std::size_t>& entries) noexcept {
      unindex(n);
      unlink(n);
      bytes -= static_cast<std::int64_t>(n->cost);
      --count;
      delete n;  // NOLINT(cppcoreguidelines-owning-memory): the list owns its nodes
      entries.fetch_sub(1, std::memory_order_relaxed);
    }
  };

  /// get()'s lookup, under either side of the shard's lock.
  std::shared_ptr<const void> lookup(const shard& s, hashed_key key, time_point* expires_at,
                                     freshness* state) const {
    const node* e = find_live(s, key, state);
    if (e == nullptr) return nullptr;
    if (expires_at != nullptr) *expires_at = e->expires_at;
    return e->value;
  }

  /// The entry of `key` when it may be served (see get()), marked as
  /// referenced; null otherwise. Under either side of the shard's lock.
  const node* find_live(const shard& s, hashed_key key, freshness* state) const {
    const node* found_node = s.find(key);
    if (found_node == nullptr) return nullptr;
    const node& e = *found_node;
    // One comparison for an entry that never expires nor refreshes; the
    // clock is read only for one that does.
    freshness found = freshness::fresh;
    if (e.soft_at != never_expires) {
      const time_point t = now();
      if (t >= e.soft_at) {
        if (t >= e.expires_at) {  // finite here, so the sum cannot overflow
          if (state == nullptr || t >= e.expires_at + max_stale_) return nullptr;
          found = freshness::stale;
        } else {
          found = freshness::refresh;
        }
      }
    }
    if (state != nullptr) *state = found;
    // Several readers may set the bit at once: through atomic_ref, and only
    // when not already set, so a hot entry's cache line is not rewritten.
    std::atomic_ref<bool> referenced(const_cast<bool&>(e.referenced));  // NOLINT
    if (!referenced.load(std::memory_order_relaxed)) {
      referenced.store(true, std::memory_order_relaxed);
    }
    return found_node;
  }

  shard& shard_for(std::uint64_t hash) noexcept { return shards_[shard_index(hash)]; }
  [[nodiscard]] std::size_t shard_index(std::uint64_t hash) const noexcept {
    // The high bits pick the shard; the table uses the low bits.
    return static_cast<std::size_t>(hash >> 48) & mask_;
  }
  /// The readers of shard `si` on stripe `stripe`: each stripe's counts of
  /// all shards are one row of whole cache lines.
  std::atomic<std::uint32_t>& reader_count(std::size_t stripe, std::size_t si) noexcept {
    return readers_[stripe * reader_lines_ + si / 16].cells[si % 16].count;
  }

  /// The shard's mutex, its `writing` flag raised and no reader inside.
  class write_lock {
   public:
    write_lock(value_cache& c, std::size_t si) : s_(c.shards_[si]), lock_(s_.mutex) {
      s_.writing.store(true, std::memory_order_seq_cst);
      for (std::size_t stripe = 0; stripe < striped_counter::stripe_count; ++stripe) {
        const auto& readers = c.reader_count(stripe, si);
        // A get is inside for a few dozen nanoseconds, unless its thread was
        // preempted there: then give the core away rather than spin. A read()
        // function may stay longer: then sleep between looks.
        for (unsigned spins = 1; readers.load(std::memory_order_seq_cst) != 0; ++spins) {
          if (spins < 1024) {
            spin_relax();
          } else if (spins < 1024 + 64) {
            std::this_thread::yield();
          } else {
            std::this_thread::sleep_for(std::chrono::microseconds(50));
          }
        }
      }
    }
    write_lock(const write_lock&) = delete;
    write_lock& operator=(const write_lock&) = delete;
    ~write_lock() { s_.writing.store(false, std::memory_order_release); }

   private:
    shard& s_;
    std::lock_guard<std::mutex> lock_;
  };
  time_point now() const noexcept { return clock_ != nullptr ? clock_->now() : clock_type::now(); }

  const clock_source* clock_;
  duration max_stale_;
  std::unique_ptr<shard[]> shards_;  // NOLINT(modernize-avoid-c-arrays)
  struct reader_cell {
    std::atomic<std::uint32_t> count{0};
  };
  struct alignas(64) reader_line {  // NOLINT: allocated as whole lines
    std::array<reader_cell, 16> cells;
  };
  std::size_t reader_lines_ = 1;            // lines per stripe: the shards' counts, 16 to a line
  std::unique_ptr<reader_line[]> readers_;  // NOLINT(modernize-avoid-c-arrays)
  std::size_t shard_count_ = 1;
  std::size_t mask_ = 0;
  std::int64_t shard_budget_ = 0;
  std::atomic<std::size_t> entries_{0};  // in all shards (changed under their locks)
};

}  // namespace distcache::detail

#endif  // DISTCACHE_CACHE_DETAIL_VALUE_CACHE_HPP
