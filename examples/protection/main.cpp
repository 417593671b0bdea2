// distcache example: a data-source outage behind a circuit breaker.
//
// The source starts failing; after three failures the breaker opens and
// callers get data_source_circuit_open at once, without touching the source;
// keys already cached keep serving; once the source recovers, one trial call
// after reset_timeout closes the breaker again. Exits non-zero if any of that
// does not happen.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <distcache/distcache.hpp>
#include <string>
#include <thread>

namespace {

struct flaky_state {
  std::atomic<bool> down{false};
  std::atomic<int> calls{0};
};

struct price_source {
  std::shared_ptr<flaky_state> state = std::make_shared<flaky_state>();
  distcache::fetch_result<std::string> fetch(std::string_view key) {
    state->calls.fetch_add(1);
    if (state->down) return distcache::make_error_code(distcache::errc::data_source_failed);
    return "price of " + std::string(key);
  }
};

struct prices {
  static constexpr std::string_view name = "prices";
  using value_type = std::string;
  std::int64_t max_bytes = 1 << 20;
  price_source source;
};

using protected_engine = distcache::basic_engine<
    distcache::policies<distcache::discovery::standalone, distcache::transport::http,
                        distcache::protection::token_bucket,
                        distcache::protection::circuit_breaker>,
    prices>;

int failures = 0;
void check(bool ok, const char* what) {
  if (!ok) {
    std::printf("FAIL: %s\n", what);
    ++failures;
  }
}

const char* state_name(distcache::protection::breaker_state s) {
  switch (s) {
    case distcache::protection::breaker_state::closed:
      return "closed";
    case distcache::protection::breaker_state::open:
      return "open";
    case distcache::protection::breaker_state::half_open:
      return "half-open";
  }
  return "?";
}

}  // namespace

int main() {
  using namespace std::chrono_literals;
  distcache::config cfg;
  cfg.threads = 1;
  cfg.circuit_breaker = distcache::protection::circuit_breaker_options{3, 300ms};
  cfg.rate_limiter = distcache::protection::rate_limit{1000, 100, 0s};
  prices def;
  auto state = def.source.state;
  protected_engine cache(cfg, def);
  if (!cache.start()) return 1;

  auto show = [&](const char* step, const std::string& key) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = cache.get<prices>(key);
    const auto us =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    std::printf("%-22s get %-8s -> %-34s %6lld us  source calls: %d  breaker: %s\n", step,
                key.c_str(), r ? (**r).c_str() : r.error().message().substr(0, 34).c_str(),
                static_cast<long long>(us), state->calls.load(),
                state_name(cache.stats<prices>().circuit_state));
    return r;
  };

  check(show("[healthy]", "apple").has_value(), "a healthy source serves");
  state->down = true;
  std::printf("-- the data source goes down --\n");
  for (const char* k : {"pear", "plum", "fig"}) {
    check(show("[failing]", k).error() == distcache::errc::data_source_failed,
          "failures reach the caller");
  }
  const int calls_when_opened = state->calls;
  check(cache.stats<prices>().circuit_state == distcache::protection::breaker_state::open,
        "the breaker opens after 3 failures");
  for (const char* k : {"kiwi", "lime"}) {
    check(show("[open: fast refusal]", k).error() == distcache::errc::data_source_circuit_open,
          "callers get data_source_circuit_open");
  }
  check(state->calls == calls_when_opened, "an open breaker does not call the source");
  check(show("[cached key]", "apple").has_value(), "cached keys keep serving");
  state->down = false;
  std::printf("-- the data source recovers; waiting for reset_timeout (300 ms) --\n");
  // Poll until the breaker lets its trial call through (bounded: 5 s).
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  distcache::result<distcache::value_ptr<std::string>> r =
      distcache::make_error_code(distcache::errc::data_source_circuit_open);
  while (!r && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);  // demo pacing, not synchronisation
    r = cache.get<prices>("kiwi");
  }
  show("[recovered]", "kiwi");
  check(r.has_value(), "the trial call succeeds after reset_timeout");
  check(cache.stats<prices>().circuit_state == distcache::protection::breaker_state::closed,
        "the breaker closes again");
  const auto s = cache.stats<prices>();
  std::printf(
      "\nstats: loads %llu, local_loads %llu, local_load_errs %llu, circuit_rejected %llu\n",
      static_cast<unsigned long long>(s.loads), static_cast<unsigned long long>(s.local_loads),
      static_cast<unsigned long long>(s.local_load_errs),
      static_cast<unsigned long long>(s.circuit_rejected));
  (void)cache.stop();
  std::printf(failures == 0 ? "\nall checks passed\n" : "\n%d checks FAILED\n", failures);
  return failures == 0 ? 0 : 1;
}
