#!/usr/bin/env bash
# Fault: overload at twice the measured capacity. examples/cluster nodes A, B and C
# (tests/support/cluster_nodes.sh) over one SQLite database whose every query takes 40 ms
# (--source-delay-ms), at most 2 queries at once per node (--max-fetches) and at most 8 loads
# waiting for one (--max-queued-fetches). Every read is of a key nobody has read yet, so every read
# costs a query at the key's owner: the cluster's capacity is the queries it can run.
#
#  1. capacity: 16 clients read as fast as they are answered for 3 s, through A, B and C in turn;
#     the reads answered per second are the capacity;
#  2. overload: reads are sent at twice that rate for 5 s, on a fixed schedule (a late answer
#     delays no later request; latency counts from the scheduled time);
#  3. recovery: 20 reads one after the other.
#
# Checks that, during the overload, every read is answered: 200 with the row's value, 503 naming the
# full queue (errc::overloaded, refused at once), or 504 (timeout), and nothing else; that loads are
# refused (the queue is bounded) while the answered reads keep at least 60 % of the capacity; that
# the p99 latency of the answered reads stays under 1.5 s (the example's read timeout is 5 s, what
# an unbounded queue would make them wait); that no node's resident memory passes 100 MiB (its
# budgets are 18 MiB); and that every read after the overload is answered 200. Figures are printed.
#
# Also checks that the example refuses bad values of the three flags (exit 2, the flag named).
#
#   overload_test.sh PATH/TO/example_cluster
#
# Needs curl and python3 (exit 77, "skipped", without them). Every phase is bounded in time.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../support/cluster_nodes.sh
source "$(dirname "$0")/../support/cluster_nodes.sh"
require_example_cluster "${1:-}"
bin=$1

rows=60000
cluster_setup overload "$rows"

for bad in "--max-fetches 0" "--max-fetches x" "--max-queued-fetches 4" \
  "--max-fetches 2 --max-queued-fetches 0" "--source-delay-ms 60001" "--source-delay-ms -1"; do
  set +e
  # shellcheck disable=SC2086 # the flags and their values, split on purpose
  out=$("$bin" --port 7001 --http-port 8001 --db "$work/none.db" --peers 127.0.0.1:7001 $bad 2>&1)
  code=$?
  set -e
  flag=${bad%% *}
  [[ $bad == "--max-fetches 2 --max-queued-fetches 0" ]] && flag=--max-queued-fetches
  [[ $code == 2 && $out == *"$flag: "* ]] ||
    fail "$bad: expected exit 2 naming $flag, got $code: $out"
done

start_cluster --source-delay-ms 40 --max-fetches 2 --max-queued-fetches 8
log "nodes ready: A=${name[A]} B=${name[B]} C=${name[C]}"
wait_for 15 "A, B and C to form one ring" ring_is A B C

python3 - "$work/verdict" "${http[A]}" "${http[B]}" "${http[C]}" "${pid[A]}" "${pid[B]}" \
  "${pid[C]}" "$rows" <<'EOF' || { cat "$work/verdict"; fail "see the figures above"; }
import http.client, itertools, json, os, sys, threading, time

out = open(sys.argv[1], "w")
ports = [int(p) for p in sys.argv[2:5]]
pids = [int(p) for p in sys.argv[5:8]]
rows = int(sys.argv[8])
keys = itertools.count(1)
key_lock = threading.Lock()

def say(*a):
    print(*a, file=out, flush=True)

def next_key():
    with key_lock:
        k = next(keys)
    if k > rows:
        raise SystemExit("out of unread keys")
    return k

def expected(k):
    return {"name": "User %d" % k, "age": k % 100}

local = threading.local()
def read(port, k):
    """(status, body) of GET /users/user:k, over a keep-alive connection of this thread."""
    conns = getattr(local, "conns", None)
    if conns is None:
        conns = local.conns = {}
    for attempt in (0, 1):
        c = conns.get(port)
        if c is None:
            c = conns[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            c.request("GET", "/users/user:%d" % k)
            r = c.getresponse()
            return r.status, r.read().decode()
        except (ConnectionError, http.client.HTTPException, OSError):
            c.close()
            conns.pop(port, None)
            if attempt:
                return 0, "no answer"

def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0

max_rss = [0.0] * 3
sampling = True
def sample():
    while sampling:
        for i, p in enumerate(pids):
            try:
                max_rss[i] = max(max_rss[i], rss_mb(p))
            except OSError:
                pass
        time.sleep(0.25)
sampler = threading.Thread(target=sample)
sampler.start()

def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p * len(v)))] if v else 0.0

ok = True
def check(cond, what):
    global ok
    if not cond:
        ok = False
        say("FAIL: " + what)

# 1. capacity: closed loop, 16 clients, 3 s.
answered = [0]
stop_at = time.monotonic() + 3.0
def closed(i):
    n = i
    while time.monotonic() < stop_at:
        k = next_key()
        status, body = read(ports[n % 3], k)
        n += 1
        if status == 200 and json.loads(body) == expected(k):
            with key_lock:
                answered[0] += 1
t0 = time.monotonic()
threads = [threading.Thread(target=closed, args=(i,)) for i in range(16)]
for t in threads: t.start()
for t in threads: t.join()
capacity = answered[0] / (time.monotonic() - t0)
say("capacity: %.0f reads/s answered (16 clients, 3 s; every read a query of 40 ms, 2 at once per node)" % capacity)
check(capacity > 10, "the capacity phase answered almost nothing")

# 2. overload: 2x capacity on a fixed schedule, 5 s.
rate = 2 * capacity
seconds = 5.0
total = int(rate * seconds)
results = []  # (scheduled offset s, latency ms, status, kind)
res_lock = threading.Lock()
start = time.monotonic() + 0.2
schedule = iter(range(total))
def opened():
    while True:
        with res_lock:
            i = next(schedule, None)
        if i is None:
            return
        at = start + i / rate
        delay = at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        k = next_key()
        status, body = read(ports[i % 3], k)
        ms = (time.monotonic() - at) * 1000
        if status == 200:
            kind = "value" if json.loads(body) == expected(k) else "wrong"
        elif status == 503 and "queue is full" in body:
            kind = "overloaded"
        elif status == 504:
            kind = "timeout"
        else:
            kind = "other %d %s" % (status, body[:80])
        with res_lock:
            results.append((i / rate, ms, status, kind))
threads = [threading.Thread(target=opened) for _ in range(96)]
for t in threads: t.start()
for t in threads: t.join()
wall = time.monotonic() - start
kinds = {}
for r in results:
    kinds[r[3]] = kinds.get(r[3], 0) + 1
served = [r[1] for r in results if r[3] == "value"]
refused = [r[1] for r in results if r[3] == "overloaded"]
say("overload: %d reads sent at %.0f/s (2x) over %.1f s: %s" % (len(results), rate, wall,
    ", ".join("%s %d" % kv for kv in sorted(kinds.items()))))
say("answered with the value: %.0f/s (%.0f %% of capacity), p50 %.0f ms, p99 %.0f ms, max %.0f ms" %
    (len(served) / seconds, 100 * len(served) / seconds / capacity, pct(served, .5),
     pct(served, .99), max(served or [0])))
say("refused (overloaded): p50 %.0f ms, p99 %.0f ms" % (pct(refused, .5), pct(refused, .99)))
others = [k for k in kinds if k not in ("value", "overloaded", "timeout")]
check(not others, "answers other than the value, overloaded or timeout: %s" % others)
check(len(results) == total, "not every scheduled read was sent")
check(kinds.get("overloaded", 0) >= 0.1 * total, "fewer than 10 % of the reads refused: is the queue bounded?")
check(len(served) / seconds >= 0.6 * capacity, "the answered reads fell under 60 % of the capacity")
check(pct(served, .99) <= 1500, "p99 of the answered reads over 1.5 s")

# 3. recovery.
failed = 0
for i in range(20):
    k = next_key()
    status, body = read(ports[i % 3], k)
    if status != 200 or json.loads(body) != expected(k):
        failed += 1
say("after the overload: %d of 20 reads failed" % failed)
check(failed == 0, "reads failed after the overload")

sampling = False
sampler.join()
say("max resident memory: A %.1f MiB, B %.1f MiB, C %.1f MiB (bound 100)" % tuple(max_rss))
check(max(max_rss) <= 100, "a node's resident memory passed 100 MiB")
sys.exit(0 if ok else 1)
EOF
while read -r line; do log "$line"; done <"$work/verdict"
for n in A B C; do
  log "$n: $(stat_of "$n" '"overloaded %d, local_loads %d, peer_errors %d" % (s["overloaded"], s["local_loads"], s["peer_errors"])')"
done
echo "PASS: faults_overload"
