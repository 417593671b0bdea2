#!/usr/bin/env bash
# A cluster of three processes: examples/cluster nodes A, B and C on free loopback ports, sharing
# a fresh SQLite database in a temporary directory. Checks that
#
#  - all nodes agree on the owner of each key, and each node owns some of them;
#  - a PUT on A is read on B, and a DELETE on B is seen on A;
#  - while A and B serve a steady read load, C is killed with SIGKILL, and no read fails: every
#    GET answers 200 with the row's value;
#  - C leaves A's and B's rings within 10 s; then the ownership and PUT/DELETE checks hold again
#    on the two survivors;
#  - SIGTERM stops A and B cleanly (exit status 0).
#
# The load reads, in rounds, 50 keys that no node has read yet (alternating A and B), so every
# read is a miss that goes to the key's owner: the reads of C's keys around the kill exercise the
# failover (a failed call to C, then a load from the database), not a cached copy.
#
#   multiprocess_test.sh PATH/TO/example_cluster
#
# Needs curl and python3 (exit 77, "skipped", without them). Every wait has a deadline, every
# curl a --max-time, and every process started is stopped on exit. Exits 1 with a FAIL line (and
# the nodes' logs) when a check fails.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../support/cluster_nodes.sh
source "$(dirname "$0")/../support/cluster_nodes.sh"
require_example_cluster "${1:-}"
bin=$1

keys_per_round=50
max_rounds=120 # the database holds keys for this many rounds
cluster_setup multiprocess $((keys_per_round * max_rounds))
start_cluster
log "nodes ready: A=${name[A]} B=${name[B]} C=${name[C]}"

wait_for 15 "A, B and C to form one ring" ring_is A B C
log "ring formed: every node has the two others as peers, same ring version"

# check_owners NODES...: for user:1 .. user:50, every node of NODES names the same owner, that
# owner is one of NODES, and each of NODES owns at least one key.
check_owners() {
  local k n first answer
  declare -A count=()
  for ((k = 1; k <= keys_per_round; k++)); do
    first=""
    for n in "$@"; do
      request GET "$n" "/owner/user:$k"
      [[ $status == 200 ]] || fail "GET /owner/user:$k on $n: $status $body"
      answer=${letter[$body]:-}
      [[ -n $answer ]] || fail "GET /owner/user:$k on $n names '$body', not one of the nodes"
      [[ -z $first || $answer == "$first" ]] ||
        fail "user:$k: $n says its owner is $answer, another node says $first"
      first=$answer
    done
    [[ " $* " == *" $first "* ]] || fail "user:$k is owned by $first, which is not in the ring ($*)"
    count[$first]=$((${count[$first]:-0} + 1))
  done
  local summary=""
  for n in "$@"; do
    ((${count[$n]:-0} > 0)) || fail "$n owns none of user:1 .. user:$keys_per_round"
    summary+=" $n:${count[$n]}"
  done
  log "ownership of user:1 .. user:$keys_per_round on $*: one owner per key, all agree;$summary"
}

# check_writes WRITER READER KEY: a PUT on WRITER is read on READER; a DELETE on READER is seen
# on WRITER. Both nodes read the key first, so that a stale copy would show.
check_writes() {
  local a=$1 b=$2 key=$3
  expect_answer PUT "$a" "/users/$key" '{"name":"Before","age":1}' -- 204
  expect_answer GET "$a" "/users/$key" -- 200 '{"name":"Before","age":1}'
  expect_answer GET "$b" "/users/$key" -- 200 '{"name":"Before","age":1}'
  expect_answer PUT "$a" "/users/$key" '{"name":"After","age":2}' -- 204
  expect_answer GET "$b" "/users/$key" -- 200 '{"name":"After","age":2}'
  expect_answer GET "$a" "/users/$key" -- 200 '{"name":"After","age":2}'
  expect_answer DELETE "$b" "/users/$key" -- 204
  expect_answer GET "$a" "/users/$key" -- 404
  expect_answer GET "$b" "/users/$key" -- 404
  log "$key: a PUT on $a is read on $b, a DELETE on $b is seen on $a"
}

check_owners A B C
check_writes A B write:1

# ------------------------------------------------------------------ read load, kill C

# reader: in round r, reads user:(50r+1) .. user:(50r+50), alternating A and B, and checks each
# answer. Appends failures to $work/failures and "rounds reads" to $work/progress after each
# round. Ends when $work/stop exists, after max_rounds rounds or after 120 s.
reader() {
  set +e
  local round=0 reads=0 i k node code got deadline=$((SECONDS + 120))
  while [[ ! -e $work/stop ]] && ((round < max_rounds && SECONDS < deadline)); do
    for ((i = 1; i <= keys_per_round; i++)); do
      k=$((round * keys_per_round + i))
      if (((i + round) % 2 == 0)); then node=A; else node=B; fi
      : >"$work/reader.body"
      code=$(curl -sS --max-time 5 -o "$work/reader.body" -w '%{http_code}' \
        "http://127.0.0.1:${http[$node]}/users/user:$k" 2>>"$work/reader.curl") || code="000 (curl failed)"
      got=$(<"$work/reader.body")
      if [[ $code != 200 || $got != "$(expected "$k")" ]]; then
        echo "[$(date +%H:%M:%S.%3N)] GET /users/user:$k on $node -> $code $got" >>"$work/failures"
      fi
      reads=$((reads + 1))
    done
    round=$((round + 1))
    echo "$round $reads" >"$work/progress"
  done
}

rounds_done() { if [[ -s $work/progress ]]; then cut -d' ' -f1 <"$work/progress"; else echo 0; fi; }
rounds_at_least() { (($(rounds_done) >= $1)); }

: >"$work/failures"
reader &
reader_pid=$!
wait_for 60 "the reader's first round" rounds_at_least 1

exec 3>&2 2>/dev/null # no "Killed" job notice from bash
kill -KILL "${pid[C]}"
wait "${pid[C]}" || true
exec 2>&3 3>&-
unset "pid[C]"
killed=$(now_ms)
log "killed C (${name[C]}) with SIGKILL during read round $(($(rounds_done) + 1))"

c_gone() {
  local n
  for n in A B; do
    [[ $(stat_of "$n" "'${name[C]}' in s['peers']") == False ]] || return 1
  done
}
wait_for 10 "C to leave the rings of A and B" c_gone
log "C left the rings of A and B $(($(now_ms) - killed)) ms after the kill"

# Two more full rounds with the new ring, then stop the reader.
target=$(($(rounds_done) + 2))
wait_for 60 "the reader to finish round $target" rounds_at_least "$target"
touch "$work/stop"
timeout 30 tail -s 0.1 --pid="$reader_pid" -f /dev/null || fail "the reader did not stop within 30 s"
{ wait "$reader_pid"; } 2>/dev/null || true
reader_pid=""

read -r rounds reads <"$work/progress"
failures=$(wc -l <"$work/failures")
log "reader: $reads reads in $rounds rounds through A and B, $failures failed"
log "A: $(stat_of A '"peer_loads %d, peer_errors %d, local_loads %d, source_queries %d" % (s["peer_loads"], s["peer_errors"], s["local_loads"], s["source_queries"])')"
log "B: $(stat_of B '"peer_loads %d, peer_errors %d, local_loads %d, source_queries %d" % (s["peer_loads"], s["peer_errors"], s["local_loads"], s["source_queries"])')"
if ((failures > 0)); then
  head -n 20 "$work/failures"
  fail "$failures of $reads reads failed while C was killed"
fi
((rounds >= 3)) || fail "the reader did only $rounds rounds"

# ------------------------------------------------------------------ the survivors

wait_for 10 "A and B to agree on a ring of the two of them" ring_is A B
check_owners A B
check_writes A B write:2

# SIGTERM stops a node cleanly: exit status 0 and its "stopped" line.
for n in A B; do
  kill -TERM "${pid[$n]}"
  timeout 10 tail -s 0.1 --pid="${pid[$n]}" -f /dev/null || fail "$n did not stop within 10 s of SIGTERM"
  rc=0
  { wait "${pid[$n]}"; } 2>/dev/null || rc=$?
  unset "pid[$n]"
  ((rc == 0)) || fail "$n exited with status $rc after SIGTERM"
  grep -q "^stopped ${name[$n]}\$" "$work/$n.out" || fail "$n printed no 'stopped ${name[$n]}' line"
done
log "A and B stopped cleanly on SIGTERM"

echo "PASS: cluster_multiprocess"
