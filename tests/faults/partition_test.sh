#!/usr/bin/env bash
# Fault: a network partition. examples/cluster nodes A, B and C run in network namespaces of their
# own, each joined by a veth pair to a bridge in a fourth namespace (the switch), over one SQLite
# database; cached users live --ttl-ms 8000. The test cuts C's link (its veth on the switch goes
# down: packets are dropped, nothing is refused), writes during the cut, then heals it. Checks that
#
#  - reads keep working on both sides of the cut: every read of a key nobody has read yet, through
#    A (with B, the majority) and through C (alone), answers 200 with the row's value, and both
#    sides leave the other out of their rings;
#  - DELETE and PUT through A during the cut answer 204;
#  - after the link is back, C is in the rings of A and B again;
#  - once the time to live has passed since the writes, no node serves a value that a write during
#    the cut replaced or removed (C, which could not hear them, may until then: counted, printed).
#
# Also checks that the example refuses a bad --ttl-ms (exit 2, the flag named).
#
#   partition_test.sh PATH/TO/example_cluster
#
# Needs root for `ip netns` (exit 77, "skipped", with a message where namespaces cannot be
# created), curl and python3. Every wait has a deadline; the namespaces and processes are removed
# on exit.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../support/cluster_nodes.sh
source "$(dirname "$0")/../support/cluster_nodes.sh"
require_example_cluster "${1:-}" ip
bin=$1

tag=dc$$ # names of the namespaces and links: unique per run, at most 15 characters
if ! ip netns add "${tag}p" 2>/dev/null; then
  echo "SKIP: cannot create a network namespace here ('ip netns add' needs root or CAP_SYS_ADMIN)"
  exit 77
fi
ip netns del "${tag}p"

rows=300
ttl_ms=8000
switch=${tag}s

cluster_setup partition "$rows"
remove_namespaces() {
  local ns
  for ns in "${tag}A" "${tag}B" "${tag}C" "$switch"; do ip netns del "$ns" 2>/dev/null || true; done
}
trap 'cleanup; remove_namespaces' EXIT

# A bad --ttl-ms is refused before anything starts.
for bad in 0 -5 1.5 abc 4294967296; do
  set +e
  out=$("$bin" --port 7001 --http-port 8001 --db "$work/none.db" --peers 127.0.0.1:7001 \
    --ttl-ms "$bad" 2>&1)
  code=$?
  set -e
  [[ $code == 2 && $out == *"--ttl-ms: expected milliseconds"* ]] ||
    fail "--ttl-ms $bad: expected exit 2 naming --ttl-ms, got $code: $out"
done

# The network: a bridge in the switch namespace, one veth pair per node.
ip netns add "$switch"
ip -n "$switch" link add br0 type bridge
ip -n "$switch" link set br0 up
i=1
peers=""
for n in A B C; do
  netns[$n]=$tag$n
  addr[$n]=10.77.0.$i
  http[$n]=8001
  name[$n]=${addr[$n]}:7001
  peers+="${peers:+,}${name[$n]}"
  ip netns add "${netns[$n]}"
  ip link add "v$tag$n" type veth peer name "s$tag$n"
  ip link set "v$tag$n" netns "${netns[$n]}"
  ip link set "s$tag$n" netns "$switch"
  ip -n "$switch" link set "s$tag$n" master br0 up
  ip -n "${netns[$n]}" link set lo up
  ip -n "${netns[$n]}" addr add "${addr[$n]}/24" dev "v$tag$n"
  ip -n "${netns[$n]}" link set "v$tag$n" up
  i=$((i + 1))
done

for n in A B C; do
  ip netns exec "${netns[$n]}" "$bin" --bind "${addr[$n]}" --port 7001 --peers "$peers" \
    --db "$db" --http-port 8001 --ttl-ms "$ttl_ms" >"$work/$n.out" 2>"$work/$n.log" &
  pid[$n]=$!
done
all_ready() {
  local n
  for n in A B C; do
    kill -0 "${pid[$n]}" 2>/dev/null || fail "node $n exited at start"
    grep -q '^ready ' "$work/$n.out" || return 1
  done
}
wait_for 30 "the nodes' ready lines" all_ready
wait_for 20 "one ring of A, B and C" ring_is A B C
log "ring of A=${name[A]} B=${name[B]} C=${name[C]} (each in its own namespace)"

# Keys 1..20 are written during the cut; every node reads them first, so each holds them (as
# owner or as a hot copy).
for k in $(seq 1 20); do
  for n in A B C; do expect_answer GET "$n" "/users/user:$k" -- 200 "$(expected "$k")"; done
done

# read_fresh NODE: reads the next key nobody has read (user:21 ...) through NODE; appends
# "start_ms ms node code ok" to $work/reads.
next_key=21
read_fresh() {
  local start ok=1
  start=$(now_ms)
  request GET "$1" "/users/user:$next_key"
  [[ $status == 200 && $body == "$(expected "$next_key")" ]] || ok=0
  echo "$start $(($(now_ms) - start)) $1 $status $ok" >>"$work/reads"
  next_key=$((next_key + 1))
  ((next_key <= rows)) || fail "out of unread keys"
}
: >"$work/reads"

ip -n "$switch" link set "s${tag}C" down
cut=$(now_ms)
log "cut C's link"
# Reads on both sides until each side has left the other out of its ring (or 30 s).
split() { ring_is A B && ring_is C; }
until split; do
  (($(now_ms) - cut < 30000)) || fail "the rings did not split within 30 s of the cut"
  read_fresh A
  read_fresh C
done
split_ms=$(($(now_ms) - cut))
log "split: A and B form one ring, C another, $split_ms ms after the cut"
for _ in $(seq 1 10); do
  read_fresh A
  read_fresh C
done

# Writes through A during the cut: the table first, then the cache (A and B hear them; C cannot).
for k in $(seq 1 10); do expect_answer DELETE A "/users/user:$k" -- 204; done
for k in $(seq 11 20); do
  expect_answer PUT A "/users/user:$k" "{\"name\":\"New $k\",\"age\":$k}" -- 204
done
written=$(now_ms)
current() { # current K: what a read of user:K must answer now ("404" or the new row)
  if (($1 <= 10)); then echo 404; else printf '200 {"name":"New %s","age":%s}' "$1" "$1"; fi
}
# stale_on NODE: how many of keys 1..20 NODE answers with anything but their current state.
stale_on() {
  local k n=0 want
  for k in $(seq 1 20); do
    request GET "$1" "/users/user:$k"
    want=$(current "$k")
    if [[ $want == 404 ]]; then [[ $status == 404 ]] || n=$((n + 1)); else
      [[ "$status $body" == "$want" ]] || n=$((n + 1))
    fi
  done
  echo "$n"
}
[[ $(stale_on A) == 0 ]] || fail "A serves values older than its own writes during the cut"
[[ $(stale_on B) == 0 ]] || fail "B serves values older than A's writes during the cut"
stale_cut=$(stale_on C)
log "during the cut C answers $stale_cut of the 20 written keys with their old state (it cannot hear the writes)"

ip -n "$switch" link set "s${tag}C" up
healed=$(now_ms)
wait_for 30 "C to be back in the rings of A and B" ring_is A B C
log "healed: one ring again $(($(now_ms) - healed)) ms after the link came back"
for _ in $(seq 1 10); do read_fresh C; done
stale_healed=$(stale_on C)
log "after healing, before the time to live passed: C answers $stale_healed of 20 with their old state"

# Past the time to live of everything cached before the writes, every node answers the current
# state (the one fixed wait of the test: the time to live is what is tested).
past_ttl() { (($(now_ms) >= written + ttl_ms + 200)); }
wait_for $((ttl_ms / 1000 + 5)) "the time to live to pass" past_ttl
for n in A B C; do
  s=$(stale_on "$n")
  [[ $s == 0 ]] || fail "$n answers $s of the 20 keys written during the cut with their old state, past the ${ttl_ms} ms time to live"
done
log "past the time to live: A, B and C answer all 20 written keys with their current state"

python3 - "$work/reads" "$cut" >"$work/verdict" <<'EOF' ||
import sys
reads = [l.split() for l in open(sys.argv[1]) if l.strip()]
cut = int(sys.argv[2])
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p * len(v)))] if v else 0
failed = [r for r in reads if r[4] != "1"]
for side in ("A", "C"):
    ms = [int(r[1]) for r in reads if r[2] == side]
    print("reads through %s: %d, failed %d, p50 %d ms, p99 %d ms, max %d ms" %
          (side, len(ms), sum(1 for r in failed if r[2] == side), pct(ms, .5), pct(ms, .99),
           max(ms or [0])))
for r in failed[:10]:
    print("FAILED read: start %s, %s ms, via %s, HTTP %s" % tuple(r[:4]))
sys.exit(0 if not failed and len(reads) >= 20 else 1)
EOF
  { cat "$work/verdict"; fail "see the figures above"; }
while read -r line; do log "$line"; done <"$work/verdict"
echo "PASS: faults_partition"
