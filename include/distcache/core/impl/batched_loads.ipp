// distcache — engine_core: batched loads (docs/freshness.md#batched-loads).
// For a data source with fetch_many, the flights this node leads for its
// own keys do not call fetch one by one: their keys wait in the keyspace's
// load_batch until fetch_batch_keys are there or fetch_batch_wait has passed
// since the first, then leave in one fetch_many call, through the source
// guard once (one token, one concurrency slot, one outcome for the breaker).
#ifndef DISTCACHE_CORE_IMPL_BATCHED_LOADS_IPP
#define DISTCACHE_CORE_IMPL_BATCHED_LOADS_IPP

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <distcache/core/engine_core.hpp>
#include <exception>

namespace distcache::detail {

void engine_core::load_batched(keyspace_slot& slot, keyspace_runtime& rt, std::string key,
                               std::uint64_t hash) {
  std::vector<batched_key> full;
  bool arm = false;
  {
    std::lock_guard lock(rt.batch.mutex);
    rt.batch.keys.push_back({std::move(key), hash});
    if (rt.batch.keys.size() >= rt.opts.fetch_batch_keys) {
      full.swap(rt.batch.keys);  // an armed timer sends the keys that come next
    } else if (!rt.batch.armed) {
      rt.batch.armed = true;
      arm = true;
    }
  }
  if (!full.empty()) return fetch_batch(slot, rt, std::move(full));
  if (!arm) return;
  auto self = rt.shared_from_this();
  if (rt.opts.fetch_batch_wait == duration::zero()) {
    // No wait: the keys joined by the handler running now (a get_many, a
    // burst of peer requests) still leave together.
    net::post(ioc_, [this, &slot, self] { send_batch(slot, *self); });
    return;
  }
  auto timer = std::make_shared<net::steady_timer>(ioc_, rt.opts.fetch_batch_wait);
  timer->async_wait([this, &slot, self, timer](error_code) { send_batch(slot, *self); });
}

void engine_core::send_batch(keyspace_slot& slot, keyspace_runtime& rt) {
  std::vector<batched_key> keys;
  {
    std::lock_guard lock(rt.batch.mutex);
    keys.swap(rt.batch.keys);
    rt.batch.armed = false;
  }
  // The keys waiting may be more than a call takes (a full batch left while
  // the timer ran, and more came): one call per fetch_batch_keys.
  const std::size_t n = rt.opts.fetch_batch_keys;
  for (std::size_t first = 0; first < keys.size(); first += n) {
    const auto last = std::min(keys.size(), first + n);
    std::vector<batched_key> part(std::make_move_iterator(keys.begin() + static_cast<long>(first)),
                                  std::make_move_iterator(keys.begin() + static_cast<long>(last)));
    fetch_batch(slot, rt, std::move(part));
  }
}

void engine_core::fetch_batch(keyspace_slot& slot, keyspace_runtime& rt,
                              std::vector<batched_key> keys) {
  guard_context ctx{&ioc_, pool_.get(), &running_, cfg_.clock.get()};
  auto shared = std::make_shared<std::vector<batched_key>>(std::move(keys));
  rt.guard.admit(ctx, [this, &slot, rt = rt.shared_from_this(), shared](error_code refused) {
    if (refused) {
      for (const auto& k : *shared) {
        rt->flights.finish({k.key, k.hash}, refused, nullptr, [] { return error_code{}; });
      }
      return;
    }
    fetch_batch_on_pool(slot, *rt, *shared);
  });
}

void engine_core::fetch_batch_on_pool(keyspace_slot& slot, keyspace_runtime& rt,
                                      const std::vector<batched_key>& keys) {
  if (!running_.load(std::memory_order_acquire)) {
    rt.guard.abandon();  // stop() has answered every caller: no source call
    for (const auto& k : keys) {
      rt.flights.finish({k.key, k.hash}, make_error_code(errc::stopped), nullptr,
                        [] { return error_code{}; });
    }
    return;
  }
  const telemetry::span_context none;  // one call for many callers: measured, not traced
  auto scope = begin_op(slot, telemetry::operation::fetch, keys.size(), &none,
                        telemetry::span_kind::internal, false);
  std::vector<std::string_view> names;
  names.reserve(keys.size());
  for (const auto& k : keys) names.emplace_back(k.key);
  std::vector<result<loaded_value>> answers;
  error_code failed;  // the whole call failed
  {
    const engine_thread_mark mark(this);
    try {
      answers = rt.adapter->fetch_many(names);
      if (answers.size() != keys.size()) {
        failed = make_error_code(errc::data_source_failed);
        cfg_.log(log_level::warning, "keyspace '" + slot.name + "': fetch_many returned " +
                                         std::to_string(answers.size()) + " results for " +
                                         std::to_string(keys.size()) + " keys");
      }
    } catch (const std::exception& e) {
      failed = make_error_code(errc::data_source_failed);
      cfg_.log(log_level::warning, "keyspace '" + slot.name + "': fetch_many threw for " +
                                       std::to_string(keys.size()) + " keys: " + e.what());
    } catch (...) {
      failed = make_error_code(errc::data_source_failed);
      cfg_.log(log_level::warning,
               "keyspace '" + slot.name + "': fetch_many threw a non-standard exception");
    }
  }
  // One call, one outcome for the breaker: failed when it threw or when any
  // key failed (not_found is an answer, not a failure).
  error_code outcome = failed;
  for (std::size_t i = 0; !outcome && i < answers.size(); ++i) {
    if (!answers[i] && answers[i].error() != errc::not_found) outcome = answers[i].error();
  }
  rt.guard.finish(outcome);
  end_op(scope, outcome);
  const loaded_value nothing;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const error_code ec = failed ? failed : (answers[i] ? error_code{} : answers[i].error());
    if (!ec) {
      slot.counters.local_loads.add();
    } else if (ec != errc::not_found) {
      slot.counters.local_load_errs.add();
    }
    settle(rt, keys[i].key, keys[i].hash, ec, ec ? nothing : *answers[i]);
  }
}

}  // namespace distcache::detail

#endif  // DISTCACHE_CORE_IMPL_BATCHED_LOADS_IPP
