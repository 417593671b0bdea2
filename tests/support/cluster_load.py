#!/usr/bin/env python3
"""Load for the fault tests (tests/faults/overload_test.sh, stall_test.sh) against three
examples/cluster nodes: every read is of a key nobody has read yet (user:1, user:2, ...), through
the nodes in turn, over keep-alive connections; resident memory of the nodes sampled every 0.25 s.
Writes its figures and FAIL lines to VERDICT; exits 1 when a check fails.

  cluster_load.py overload|stall VERDICT HTTP_PORT_A HTTP_PORT_B HTTP_PORT_C PID_A PID_B PID_C ROWS

overload: measures the capacity (16 clients, closed loop, 3 s), reads at twice it for 5 s on a
fixed schedule, then 20 reads one after the other (overload_test.sh says what is checked).
stall: the source never answers; reads at 40/s for 4 s (stall_test.sh says what is checked).
"""
import http.client
import itertools
import json
import sys
import threading
import time

mode = sys.argv[1]
out = open(sys.argv[2], "w")
ports = [int(p) for p in sys.argv[3:6]]
pids = [int(p) for p in sys.argv[6:9]]
rows = int(sys.argv[9])
keys = itertools.count(1)
key_lock = threading.Lock()
state = {"ok": True, "sampling": True}

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
def sample():
    while state["sampling"]:
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

def check(cond, what):
    if not cond:
        state["ok"] = False
        say("FAIL: " + what)



def open_loop(rate, seconds, workers=96):
    """Reads at `rate` per second for `seconds` on a fixed schedule; a late answer delays no
    later read, and latency counts from the scheduled time. [(offset s, ms, status, kind)]."""
    total = int(rate * seconds)
    results = []
    lock = threading.Lock()
    start = time.monotonic() + 0.2
    schedule = iter(range(total))

    def worker():
        while True:
            with lock:
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
            with lock:
                results.append((i / rate, ms, status, kind))

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(len(results) == total, "not every scheduled read was sent")
    return results


def kinds_of(results):
    kinds = {}
    for r in results:
        kinds[r[3]] = kinds.get(r[3], 0) + 1
    return kinds


def overload():
    # 1. capacity: closed loop, 16 clients, 3 s.
    answered = [0]
    stop_at = time.monotonic() + 3.0

    def closed(n):
        while time.monotonic() < stop_at:
            k = next_key()
            status, body = read(ports[n % 3], k)
            n += 1
            if status == 200 and json.loads(body) == expected(k):
                with key_lock:
                    answered[0] += 1

    t0 = time.monotonic()
    threads = [threading.Thread(target=closed, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    capacity = answered[0] / (time.monotonic() - t0)
    say("capacity: %.0f reads/s answered (16 clients, 3 s; every read a query of 40 ms, "
        "2 at once per node)" % capacity)
    check(capacity > 10, "the capacity phase answered almost nothing")

    # 2. overload: twice the capacity on a fixed schedule, 5 s.
    rate, seconds = 2 * capacity, 5.0
    results = open_loop(rate, seconds)
    kinds = kinds_of(results)
    served = [r[1] for r in results if r[3] == "value"]
    refused = [r[1] for r in results if r[3] == "overloaded"]
    say("overload: %d reads sent at %.0f/s (2x) for %.0f s: %s" % (len(results), rate, seconds,
        ", ".join("%s %d" % kv for kv in sorted(kinds.items()))))
    say("answered with the value: %.0f/s (%.0f %% of capacity), p50 %.0f ms, p99 %.0f ms, "
        "max %.0f ms" % (len(served) / seconds, 100 * len(served) / seconds / capacity,
                         pct(served, .5), pct(served, .99), max(served or [0])))
    say("refused (overloaded): p50 %.0f ms, p99 %.0f ms" % (pct(refused, .5), pct(refused, .99)))
    others = [k for k in kinds if k not in ("value", "overloaded", "timeout")]
    check(not others, "answers other than the value, overloaded or timeout: %s" % others)
    check(len(refused) >= 0.1 * len(results),
          "fewer than 10 % of the reads refused: is the queue bounded?")
    check(len(served) / seconds >= 0.6 * capacity,
          "the answered reads fell under 60 % of the capacity")
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


def stall():
    rss_before = [rss_mb(p) for p in pids]
    results = open_loop(40, 4.0)
    kinds = kinds_of(results)
    refused = [r[1] for r in results if r[3] == "overloaded"]
    timed_out = [r[1] for r in results if r[3] == "timeout"]
    say("stalled source: %d reads sent at 40/s over 4 s: %s" % (len(results), ", ".join(
        "%s %d" % kv for kv in sorted(kinds.items()))))
    say("refused (overloaded): p50 %.0f ms, p99 %.0f ms; timed out: p50 %.0f ms, max %.0f ms" %
        (pct(refused, .5), pct(refused, .99), pct(timed_out, .5), max(timed_out or [0])))
    others = [k for k in kinds if k not in ("overloaded", "timeout")]
    check(not others, "answers other than overloaded or timeout: %s" % others)
    check(len(refused) >= 0.5 * len(results), "fewer than half of the reads refused at once")
    check(pct(refused, .99) <= 500, "p99 of the refusals over 500 ms")
    check(max(timed_out or [0]) <= 6500, "a read waited longer than the read timeout + 1.5 s")
    growth = max(rss_mb(p) - b for p, b in zip(pids, rss_before))
    say("resident memory grew by at most %.1f MiB during the stall" % growth)
    check(growth <= 10, "a node's resident memory grew by more than 10 MiB")


if mode == "overload":
    overload()
elif mode == "stall":
    stall()
else:
    raise SystemExit("unknown mode " + mode)
state["sampling"] = False
sampler.join()
say("max resident memory: A %.1f MiB, B %.1f MiB, C %.1f MiB (bound 100)" % tuple(max_rss))
check(max(max_rss) <= 100, "a node's resident memory passed 100 MiB")
sys.exit(0 if state["ok"] else 1)
