#!/usr/bin/env bash
# Hot-key tracking's cost on a local hit: alternates runs of one local_bench
# binary with tracking on (the default) and off (DISTCACHE_BENCH_TRACK_HOT_KEYS=0),
# one short run at a time, and prints the median and minimum of each side
# with their ratio. Usage: bench/track_ab.sh BINARY [ROUNDS=30]
set -euo pipefail
bin=$1
rounds=${2:-30}
filter='hit_get/distcache/real_time/threads:1$'
one() { python3 -c 'import json,sys; print(json.load(sys.stdin)["benchmarks"][0]["real_time"])'; }
for _ in $(seq "$rounds"); do
  echo "on $("$bin" --benchmark_filter="$filter" --benchmark_min_time=0.3 --benchmark_format=json 2>/dev/null | one)"
  echo "off $(DISTCACHE_BENCH_TRACK_HOT_KEYS=0 "$bin" --benchmark_filter="$filter" --benchmark_min_time=0.3 --benchmark_format=json 2>/dev/null | one)"
done | python3 -c '
import statistics, sys
d = {"on": [], "off": []}
for line in sys.stdin:
    k, v = line.split()
    d[k].append(float(v))
for f in (statistics.median, min):
    a, b = f(d["on"]), f(d["off"])
    print("%-6s on %.1f ns  off %.1f ns  %+.1f %%" % (f.__name__, a, b, (a / b - 1) * 100))
'
