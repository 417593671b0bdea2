#!/usr/bin/env bash
# Fault: one of three nodes stalls (SIGSTOP) for 5 s under a steady read load, then resumes
# (SIGCONT). examples/cluster nodes A, B and C (tests/support/cluster_nodes.sh) over one SQLite
# database; a reader asks A and B, in turn, for keys no node has read yet, so every read goes to
# the key's owner, and a third of them to C. Checks that
#
#  - no read fails while C is stopped: each answers 200 with the row's value (A and B wait for C
#    for the peer timeout, then load the key themselves);
#  - the slowest reads during the stall stay within the peer timeout plus a margin: p99 of the
#    reads that started while C was stopped <= peer_timeout (1 s, the example's) + 500 ms for the
#    database, curl and scheduling on a loaded machine; the figures are printed;
#  - after SIGCONT, C is back in the rings of A and B within 15 s, and reads through C succeed.
#
#   sigstop_test.sh PATH/TO/example_cluster
#
# Needs curl and python3 (exit 77, "skipped", without them). Every wait has a deadline; the one
# fixed pause is the 5 s stall itself.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../support/cluster_nodes.sh
source "$(dirname "$0")/../support/cluster_nodes.sh"
require_example_cluster "${1:-}"
bin=$1

rows=20000
stall_s=5
peer_timeout_ms=1000 # the example's cluster.peer_timeout (the default)
p99_bound_ms=$((peer_timeout_ms + 500))

cluster_setup sigstop "$rows"
start_cluster
log "nodes ready: A=${name[A]} B=${name[B]} C=${name[C]}"
wait_for 15 "A, B and C to form one ring" ring_is A B C

# reader FIRST NODES...: reads user:FIRST, user:FIRST+1, ... through NODES in turn until
# $work/stop exists (or 120 s, or the table ends); appends "start_ms ms node code ok" per read to
# $work/reads.
reader() {
  set +e
  local k=$1 i=0 node code ms start got ok deadline=$((SECONDS + 120))
  shift
  local via=("$@")
  while [[ ! -e $work/stop ]] && ((SECONDS < deadline && k <= rows)); do
    node=${via[$((i % ${#via[@]}))]}
    : >"$work/reader.body"
    start=$(now_ms)
    code=$(curl -sS --max-time 5 -o "$work/reader.body" -w '%{http_code}' \
      "http://127.0.0.1:${http[$node]}/users/user:$k" 2>>"$work/reader.curl") || code=000
    ms=$(($(now_ms) - start))
    got=$(<"$work/reader.body")
    ok=1
    [[ $code == 200 && $got == "$(expected "$k")" ]] || ok=0
    echo "$start $ms $node $code $ok" >>"$work/reads"
    k=$((k + 1))
    i=$((i + 1))
  done
}
reads_since() { # reads_since MS: how many reads started at or after MS
  awk -v t="$1" '$1 >= t { n++ } END { print n + 0 }' "$work/reads" 2>/dev/null || echo 0
}
reads_since_at_least() { (($(reads_since "$1") >= $2)); } # reads_since_at_least MS N

: >"$work/reads"
reader 1 A B &
reader_pid=$!
wait_for 30 "40 reads before the stall" reads_since_at_least 0 40

kill -STOP "${pid[C]}"
stopped=$(now_ms)
log "stopped C (${name[C]}) with SIGSTOP"
sleep "$stall_s" # the fault itself: C stays stopped this long
kill -CONT "${pid[C]}"
resumed=$(now_ms)
log "resumed C with SIGCONT after $((resumed - stopped)) ms"

wait_for 15 "C to be back in the rings of A and B" ring_is A B C
log "C back in the ring $(($(now_ms) - resumed)) ms after SIGCONT"
touch "$work/stop"
timeout 30 tail -s 0.1 --pid="$reader_pid" -f /dev/null || fail "the reader did not stop within 30 s"
{ wait "$reader_pid"; } 2>/dev/null || true
reader_pid=""

# Recovery: reads through all three nodes, C included, of keys nobody has read yet.
rm -f "$work/stop"
last=$(awk 'END { print NR }' "$work/reads")
after=$(now_ms)
reader $((last + 1000)) A B C &
reader_pid=$!
wait_for 30 "30 reads after the recovery" reads_since_at_least "$after" 30
touch "$work/stop"
timeout 30 tail -s 0.1 --pid="$reader_pid" -f /dev/null || fail "the reader did not stop within 30 s"
{ wait "$reader_pid"; } 2>/dev/null || true
reader_pid=""

python3 - "$work/reads" "$stopped" "$resumed" "$after" "$p99_bound_ms" >"$work/verdict" <<'EOF' ||
import sys
reads = [l.split() for l in open(sys.argv[1]) if l.strip()]
stopped, resumed, after, bound = map(int, sys.argv[2:6])
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p * len(v)))] if v else 0
before = [int(r[1]) for r in reads if int(r[0]) < stopped]
stall = [int(r[1]) for r in reads if stopped <= int(r[0]) < resumed]
rec = [r for r in reads if int(r[0]) >= after]
failed = [r for r in reads if r[4] != "1"]
print("reads %d, failed %d" % (len(reads), len(failed)))
print("before the stall: %d reads, p50 %d ms, p99 %d ms" % (len(before), pct(before, .5), pct(before, .99)))
print("during the stall: %d reads, p50 %d ms, p99 %d ms, max %d ms (bound %d ms)" %
      (len(stall), pct(stall, .5), pct(stall, .99), max(stall or [0]), bound))
print("after the recovery: %d reads (%d through C), all answered" %
      (len(rec), sum(1 for r in rec if r[2] == "C")))
for r in failed[:10]:
    print("FAILED read: start %s, %s ms, via %s, HTTP %s" % tuple(r[:4]))
ok = not failed and len(stall) >= 3 and pct(stall, .99) <= bound and any(r[2] == "C" for r in rec)
sys.exit(0 if ok else 1)
EOF
  { cat "$work/verdict"; fail "see the figures above"; }
while read -r line; do log "$line"; done <"$work/verdict"
log "A: $(stat_of A '"peer_errors %d, local_loads %d" % (s["peer_errors"], s["local_loads"])')"
log "B: $(stat_of B '"peer_errors %d, local_loads %d" % (s["peer_errors"], s["local_loads"])')"
echo "PASS: faults_sigstop"
