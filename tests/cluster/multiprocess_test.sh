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

bin=${1:-}
if [[ -z $bin || ! -x $bin ]]; then
  echo "usage: $0 PATH/TO/example_cluster (got '${bin}')" >&2
  exit 2
fi
for tool in curl python3 timeout; do
  if ! command -v "$tool" >/dev/null; then
    echo "SKIP: $tool not found"
    exit 77
  fi
done

keys_per_round=50
max_rounds=120 # the database holds keys for this many rounds
work=$(mktemp -d "${TMPDIR:-/tmp}/distcache-multiprocess.XXXXXX")
db=$work/users.db
nodes=(A B C)
declare -A pid=() http=() name=() letter=()
reader_pid=""

log() { printf '[%s] %s\n' "$(date +%H:%M:%S.%3N)" "$*"; }

stop_pid() { # stop_pid PID: SIGTERM, up to 5 s for a clean exit, then SIGKILL
  kill -TERM "$1" 2>/dev/null || return 0
  timeout 5 tail -s 0.1 --pid="$1" -f /dev/null 2>/dev/null || kill -KILL "$1" 2>/dev/null || true
  { wait "$1"; } 2>/dev/null || true
}

cleanup() {
  local n
  touch "$work/stop"
  if [[ -n $reader_pid ]]; then stop_pid "$reader_pid"; fi
  for n in "${!pid[@]}"; do stop_pid "${pid[$n]}"; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
  local n
  echo "FAIL: $*"
  for n in "${nodes[@]}"; do
    if [[ -f $work/$n.log ]]; then
      echo "---- node $n (${name[$n]:-}) stderr, last 30 lines:"
      tail -n 30 "$work/$n.log"
    fi
  done
  exit 1
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# wait_for SECONDS WHAT COMMAND...: runs COMMAND every 100 ms until it succeeds; fails after SECONDS.
wait_for() {
  local limit_ms=$(($1 * 1000)) what=$2
  shift 2
  local start
  start=$(now_ms)
  until "$@"; do
    (($(now_ms) - start < limit_ms)) || fail "timed out after $((limit_ms / 1000)) s waiting for $what"
    sleep 0.1
  done
}

expected() { printf '{"name":"User %s","age":%s}' "$1" "$(($1 % 100))"; }

# request VERB NODE PATH [JSON]: sets $status (000 when the node did not answer) and $body.
request() {
  local verb=$1 node=$2 path=$3 data=${4:-}
  local args=(-sS --max-time 5 -X "$verb" -o "$work/body" -w '%{http_code}')
  if [[ -n $data ]]; then args+=(-H 'Content-Type: application/json' --data "$data"); fi
  : >"$work/body"
  status=$(curl "${args[@]}" "http://127.0.0.1:${http[$node]}$path" 2>/dev/null) || status=000
  body=$(<"$work/body")
}

# expect_answer VERB NODE PATH [JSON] -- STATUS [BODY]: the request must answer STATUS (and BODY).
expect_answer() {
  local args=()
  while [[ $1 != -- ]]; do
    args+=("$1")
    shift
  done
  shift
  request "${args[@]}"
  if [[ $status != "$1" ]] || [[ $# -ge 2 && $body != "$2" ]]; then
    fail "${args[0]} ${args[2]} on ${args[1]}: expected $1${2:+ $2}, got $status $body"
  fi
}

# stat_of NODE EXPR: EXPR (Python, over the dict `s` of GET /stats) on NODE's statistics.
stat_of() {
  request GET "$1" /stats
  [[ $status == 200 ]] || return 1
  python3 -c 'import json, sys; s = json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$body" "$2"
}

# ------------------------------------------------------------------ database and nodes

python3 - "$db" "$((keys_per_round * max_rounds))" <<'EOF'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute("CREATE TABLE users(id TEXT PRIMARY KEY, name TEXT, age INT)")
con.executemany("INSERT INTO users VALUES (?, ?, ?)",
                (("user:%d" % i, "User %d" % i, i % 100) for i in range(1, int(sys.argv[2]) + 1)))
con.commit()
EOF

free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
held = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    held.append(s)
print(" ".join(str(s.getsockname()[1]) for s in held))
EOF
}

# start_nodes: starts A, B and C on free ports and waits for their "ready" lines; returns 1 when a
# node exits first (a port taken between the choice and the bind), having stopped the others.
start_nodes() {
  local ports peer_list="" i n start
  read -r -a ports <<<"$(free_ports 6)"
  for i in 0 1 2; do
    n=${nodes[$i]}
    name[$n]=127.0.0.1:${ports[$((2 * i))]}
    http[$n]=${ports[$((2 * i + 1))]}
    letter[${name[$n]}]=$n
    peer_list+="${peer_list:+,}${name[$n]}"
  done
  for n in "${nodes[@]}"; do
    "$bin" --bind 127.0.0.1 --port "${name[$n]##*:}" --peers "$peer_list" --db "$db" \
      --http-port "${http[$n]}" >"$work/$n.out" 2>"$work/$n.log" &
    pid[$n]=$!
  done
  start=$(now_ms)
  for n in "${nodes[@]}"; do
    until grep -q '^ready ' "$work/$n.out"; do
      if ! kill -0 "${pid[$n]}" 2>/dev/null; then
        log "node $n exited before it was ready: $(tr '\n' ' ' <"$work/$n.log")"
        for i in "${nodes[@]}"; do stop_pid "${pid[$i]}"; done
        pid=()
        return 1
      fi
      (($(now_ms) - start < 30000)) || fail "node $n printed no ready line within 30 s"
      sleep 0.05
    done
  done
}

for attempt in 1 2 3; do
  if start_nodes; then break; fi
  ((attempt < 3)) || fail "the nodes did not start in 3 attempts"
done
log "nodes ready: A=${name[A]} B=${name[B]} C=${name[C]}"

# ring_is NODES...: each of NODES has exactly the others as peers, and they share a ring version.
ring_is() {
  local n p version="" v want got others
  for n in "$@"; do
    others=()
    for p in "$@"; do if [[ $p != "$n" ]]; then others+=("${name[$p]}"); fi; done
    want=$(printf '%s\n' "${others[@]}" | LC_ALL=C sort | paste -sd' ')
    got=$(stat_of "$n" '" ".join(sorted(s["peers"]))') || return 1
    [[ $got == "$want" ]] || return 1
    v=$(stat_of "$n" 's["ring_version"]') || return 1
    [[ -z $version || $v == "$version" ]] || return 1
    version=$v
  done
}
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
