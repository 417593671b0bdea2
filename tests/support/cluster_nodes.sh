#!/usr/bin/env bash
# Shared by the multi-process tests (cluster/multiprocess_test.sh, faults/*_test.sh): three
# examples/cluster nodes A, B and C on free loopback ports over one SQLite database in a temporary
# directory, and the helpers that drive them over their HTTP API. Source it, then call
# cluster_setup NAME ROWS (the work directory, a users table of ROWS rows user:1 .. user:ROWS, and
# the exit trap that stops every process started) and start_cluster [NODE FLAGS...].
#
# Needs curl and python3: require_example_cluster checks for them (exit 77 without them).
#
# A node may run in a network namespace: netns[NODE] names it, and addr[NODE] is the address its
# HTTP server listens on there (127.0.0.1 when unset); request and the helpers built on it then
# run curl inside that namespace.

# require_example_cluster BIN [TOOLS...]: exits 2 (usage) unless BIN is an executable, 77 (skipped)
# when curl, python3, timeout or one of TOOLS is missing.
require_example_cluster() {
  local tool
  if [[ -z $1 || ! -x $1 ]]; then
    echo "usage: $0 PATH/TO/example_cluster (got '$1')" >&2
    exit 2
  fi
  shift
  for tool in curl python3 timeout "$@"; do
    if ! command -v "$tool" >/dev/null; then
      echo "SKIP: $tool not found"
      exit 77
    fi
  done
}

# cluster_setup NAME ROWS
cluster_setup() {
  work=$(mktemp -d "${TMPDIR:-/tmp}/distcache-$1.XXXXXX")
  db=$work/users.db
  nodes=(A B C)
  declare -gA pid=() http=() name=() letter=() netns=() addr=()
  reader_pid=""
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  make_database "$2"
}

# make_database ROWS: table users(id, name, age) with user:1 .. user:ROWS.
make_database() {
  python3 - "$db" "$1" <<'EOF'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute("CREATE TABLE users(id TEXT PRIMARY KEY, name TEXT, age INT)")
con.executemany("INSERT INTO users VALUES (?, ?, ?)",
                (("user:%d" % i, "User %d" % i, i % 100) for i in range(1, int(sys.argv[2]) + 1)))
con.commit()
EOF
}

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
  local args=(-sS --max-time 5 -X "$verb" -o "$work/body" -w '%{http_code}') in=()
  if [[ -n $data ]]; then args+=(-H 'Content-Type: application/json' --data "$data"); fi
  if [[ -n ${netns[$node]:-} ]]; then in=(ip netns exec "${netns[$node]}"); fi
  : >"$work/body"
  status=$("${in[@]}" curl "${args[@]}" "http://${addr[$node]:-127.0.0.1}:${http[$node]}$path" \
    2>/dev/null) || status=000
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
  local extra=("$@")
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
      --http-port "${http[$n]}" "${extra[@]}" >"$work/$n.out" 2>"$work/$n.log" &
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

# start_cluster [NODE FLAGS...]: start_nodes, three attempts (a port may be taken between its
# choice and the bind).
start_cluster() {
  local attempt
  for attempt in 1 2 3; do
    if start_nodes "$@"; then return 0; fi
    ((attempt < 3)) || fail "the nodes did not start in 3 attempts"
  done
}

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

# run_load MODE ROWS: tests/support/cluster_load.py MODE against A, B and C (reads of user:1 ..
# user:ROWS); logs its figures, or prints them and fails when a check of it failed.
run_load() {
  python3 "$(dirname "${BASH_SOURCE[0]}")/cluster_load.py" "$1" "$work/verdict" "${http[A]}" \
    "${http[B]}" "${http[C]}" "${pid[A]}" "${pid[B]}" "${pid[C]}" "$2" ||
    { cat "$work/verdict"; fail "see the figures above"; }
  local line
  while read -r line; do log "$line"; done <"$work/verdict"
}
