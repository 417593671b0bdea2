#!/usr/bin/env python3
"""A soak of three examples/cluster nodes (scripts/soak runs it; not in CI).

For MINUTES minutes, CLIENTS threads send a mix of GET (80 %), PUT (10 %) and DELETE (10 %)
over KEYS keys to the nodes that are up, while one node after the other is killed (SIGKILL)
and started again every RESTART seconds, on the same ports. Checks:

  - 0 wrong values. Writes to one key are serialized (a lock per key), and each is recorded
    with the time it was sent and the time it was acknowledged. A read that started at t0 and
    ended at t1 may return the state of the last write acknowledged before t0, or of any later
    write sent before t1 (a read concurrent with a write may see either side), or of a write
    sent before t1 whose outcome is unknown (it may land late); anything else is a wrong value:
    a stale copy that a put or remove should have dropped.
  - every node's resident memory stays within its caches' budget (16 MiB main + 2 MiB hot in the
    example) plus a fixed overhead (OVERHEAD_MB, 64 MiB by default), sampled every second.

Requests to a node that is down, or answered 5xx while a node restarts, are counted as
unavailable, not as wrong. Prints a summary and exits 1 on a wrong value or a memory bound
crossed.

  soak.py EXAMPLE_CLUSTER_BINARY [--minutes 10] [--keys 500] [--clients 8] [--restart 60]
"""
import argparse
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

BUDGET_MB = 16 + 2  # the example's main cache and its hot cache (1/8 of it)


def free_ports(n):
    held = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        held.append(s)
    ports = [s.getsockname()[1] for s in held]
    for s in held:
        s.close()
    return ports


def initial(i):
    return {"name": "User %d" % i, "age": i % 100}


class Node:
    def __init__(self, letter, binary, port, http, peers, db, work):
        self.letter, self.binary, self.port, self.http = letter, binary, port, http
        self.peers, self.db, self.work = peers, db, work
        self.proc = None
        self.up = False
        self.max_rss_mb = 0.0

    def start(self):
        out = open(os.path.join(self.work, self.letter + ".out"), "ab")
        err = open(os.path.join(self.work, self.letter + ".log"), "ab")
        self.proc = subprocess.Popen(
            [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--peers", self.peers,
             "--db", self.db, "--http-port", str(self.http)], stdout=out, stderr=err)
        deadline = time.time() + 30
        path = os.path.join(self.work, self.letter + ".out")
        while time.time() < deadline:
            with open(path) as f:
                if f.read().count("ready ") > self.starts:
                    self.starts += 1
                    self.up = True
                    return
            if self.proc.poll() is not None:
                raise RuntimeError("node %s exited at start" % self.letter)
            time.sleep(0.05)
        raise RuntimeError("node %s printed no ready line within 30 s" % self.letter)

    starts = 0

    def kill(self):
        self.up = False
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self):
        self.up = False
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def rss_mb(self):
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024.0
        except (OSError, AttributeError):
            pass
        return 0.0


class History:
    """Per key: the writes in order, each [sent, acked or None, value or None (deleted)]."""

    def __init__(self, keys):
        self.locks = [threading.Lock() for _ in range(keys + 1)]
        self.writes = [[[0.0, 0.0, initial(i)]] for i in range(keys + 1)]
        self.mutex = threading.Lock()

    def allowed(self, k, t0, t1):
        """The states a read that ran from t0 to t1 may return: that of the last write
        acknowledged before t0, or of any later write sent before t1; and that of any write
        whose outcome is unknown (no answer: the node died or the request timed out), sent
        before t1, since it may have taken effect at any time after it was sent."""
        with self.mutex:
            ws = list(self.writes[k])
        base = 0
        for i, w in enumerate(ws):
            if w[1] is not None and w[1] <= t0:
                base = i
        unknown = [w[2] for w in ws[:base] if w[1] is None and w[0] <= t1]
        return unknown + [w[2] for w in ws[base:] if w[0] <= t1]


def call(node, verb, path, body=None, timeout=5):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (node.http, path), data=data,
                                 method=verb)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, OSError):
        return 0, ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--keys", type=int, default=500)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--restart", type=float, default=60)
    ap.add_argument("--overhead-mb", type=float, default=64)
    a = ap.parse_args()

    work = tempfile.mkdtemp(prefix="distcache-soak.")
    db = os.path.join(work, "users.db")
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE users(id TEXT PRIMARY KEY, name TEXT, age INT)")
    con.executemany("INSERT INTO users VALUES (?, ?, ?)",
                    (("soak:%d" % i, "User %d" % i, i % 100) for i in range(1, a.keys + 1)))
    con.commit()
    con.close()

    ports = free_ports(6)
    peers = ",".join("127.0.0.1:%d" % ports[2 * i] for i in range(3))
    nodes = [Node(l, a.binary, ports[2 * i], ports[2 * i + 1], peers, db, work)
             for i, l in enumerate("ABC")]
    for n in nodes:
        n.start()

    hist = History(a.keys)
    stop = threading.Event()
    counts = {"reads": 0, "writes": 0, "deletes": 0, "unavailable": 0, "wrong": 0}
    wrong = []
    cmutex = threading.Lock()

    def count(what, n=1):
        with cmutex:
            counts[what] += n

    def client(seed):
        rnd = random.Random(seed)
        version = 0
        while not stop.is_set():
            up = [n for n in nodes if n.up]
            if not up:
                time.sleep(0.01)
                continue
            node = rnd.choice(up)
            k = rnd.randint(1, a.keys)
            op = rnd.random()
            if op < 0.8:
                t0 = time.time()
                status, body = call(node, "GET", "/users/soak:%d" % k)
                t1 = time.time()
                if status == 200:
                    got = json.loads(body)
                elif status == 404:
                    got = None
                else:
                    count("unavailable")
                    continue
                count("reads")
                if got not in hist.allowed(k, t0, t1):
                    count("wrong")
                    with cmutex:
                        if len(wrong) < 20:
                            wrong.append("soak:%d via %s at %.3f: got %r, allowed %r" %
                                         (k, node.letter, t0, got, hist.allowed(k, t0, t1)))
                continue
            with hist.locks[k]:
                version += 1
                value = None if op >= 0.9 else {"name": "v%d-%d" % (seed, version),
                                                "age": version % 100}
                entry = [time.time(), None, value]
                with hist.mutex:
                    hist.writes[k].append(entry)
                if value is None:
                    status, _ = call(node, "DELETE", "/users/soak:%d" % k)
                else:
                    status, _ = call(node, "PUT", "/users/soak:%d" % k, value)
                if status == 204:
                    with hist.mutex:
                        entry[1] = time.time()
                    count("deletes" if value is None else "writes")
                else:
                    # Unknown outcome (the node died mid-request, or the request timed out):
                    # the write may land at any time from now on; it stays a possible state.
                    count("unavailable")

    threads = [threading.Thread(target=client, args=(i,), daemon=True)
               for i in range(a.clients)]
    for t in threads:
        t.start()

    start = time.time()
    end = start + a.minutes * 60
    next_restart = start + a.restart
    victim = 0
    restarts = 0
    over = []
    try:
        while time.time() < end:
            time.sleep(1)
            for n in nodes:
                if n.up:
                    rss = n.rss_mb()
                    n.max_rss_mb = max(n.max_rss_mb, rss)
                    if rss > BUDGET_MB + a.overhead_mb:
                        over.append("%s %.1f MiB at %.0f s" % (n.letter, rss, time.time() - start))
            if time.time() >= next_restart:
                n = nodes[victim % 3]
                n.kill()
                n.start()
                restarts += 1
                victim += 1
                next_restart += a.restart
            with cmutex:
                snapshot = dict(counts)
            print("[%5.0f s] %s, restarts %d, max RSS %s" % (
                time.time() - start, ", ".join("%s %d" % kv for kv in snapshot.items()), restarts,
                " ".join("%s %.1f MiB" % (n.letter, n.max_rss_mb) for n in nodes)), flush=True)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
        for n in nodes:
            n.stop()

    print("\n== soak: %.1f minutes, %d keys, %d clients, a node killed and restarted every %.0f s"
          % (a.minutes, a.keys, a.clients, a.restart))
    print("== %d reads, %d puts, %d deletes, %d unavailable, %d wrong values; %d restarts" %
          (counts["reads"], counts["writes"], counts["deletes"], counts["unavailable"],
           counts["wrong"], restarts))
    print("== max RSS per node: %s (bound %.0f MiB: budgets %d + overhead %.0f)" % (
        ", ".join("%s %.1f MiB" % (n.letter, n.max_rss_mb) for n in nodes),
        BUDGET_MB + a.overhead_mb, BUDGET_MB, a.overhead_mb))
    for w in wrong:
        print("WRONG: " + w)
    for o in over[:10]:
        print("OVER BOUND: " + o)
    ok = counts["wrong"] == 0 and not over
    print("PASS" if ok else "FAIL")
    if ok:
        subprocess.run(["rm", "-rf", work])
    else:
        print("logs kept in " + work)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
