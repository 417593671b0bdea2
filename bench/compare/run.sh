#!/usr/bin/env bash
# Compares one distcache peer hop with golang/groupcache and memcached, in the
# same run on this machine, and prints a table with ratios.
#
#   bench/compare/run.sh            # ~1 min with the defaults
#   ROUNDS=3 SECONDS_PER_RUN=5 bench/compare/run.sh
#   COALESCE=2 bench/compare/run.sh   # cluster.coalesce_in_flight of the distcache rows
#   IO_SPIN=20 bench/compare/run.sh   # config.io_spin (µs) of the distcache-spin row
#
# Workload (the same for every system): 10,000 keys, 100-byte values, keys
# drawn uniformly, 1 and 16 requests in flight, a warm-up before each
# measurement.
#   distcache   bench_cluster_load --mode remote-hit: 3 nodes in one process;
#               node A asks for keys node B owns and has pre-loaded, A's hot
#               cache is off, so every get is one HTTP round trip A -> B.
#               B and C run on SERVER_CPU, A and the client thread on CLIENT_CPU
#               (thread affinity set inside the process). Row "distcache":
#               completions run on node A's engine thread and issue the next
#               get there (--threads 0: one client-side thread, like the Go
#               caller and memcached_get); row "distcache-1t": completions go
#               to one separate client thread (--threads 1), one thread hop more
#               each way. Row "distcache-tls": as "distcache", every node
#               over mutual TLS (bench_cluster_load --tls; certificates made
#               here with the openssl command), reported as a ratio to the
#               plaintext row of the same round. Row "distcache-spin": as
#               "distcache" with config.io_spin = IO_SPIN µs (default 50): idle
#               io threads poll before they sleep, so a reply or request
#               finds its thread awake. Also a get-many run (100 keys
#               over 3 nodes) that checks one request per owner.
#   groupcache  bench/compare/groupcache_bench: 3 processes (HTTPPool); A
#               (CLIENT_CPU) calls group.Get for keys B (SERVER_CPU) owns and
#               has pre-loaded; A's group budget is 0, so no hot-cache copies.
#   memcached   memcached -t 1 on SERVER_CPU; bench/compare/memcached_get (a
#               small Asio client, one GET in flight per connection) on
#               CLIENT_CPU with 1 and 16 connections.
# With ROUNDS > 1 each figure is the median of the rounds (rounds interleave
# the systems, so a noisy moment does not hit one system only). Each tool also
# reports the CPU time per request of the server (node B / memcached) and of
# the client side in the measured window (Linux schedstat), which other work
# on the machine disturbs much less than the rates.
#
# NICE=-20 (as root) shields the figures from other work on a shared machine:
# the script re-runs itself in a session of its own (setsid) and gives that
# session's scheduler autogroup and its processes that niceness (with
# autogroups enabled, a plain nice only ranks processes within one session).
# Ctrl-C does not reach a script re-run that way; stop it with kill.
#
# The table is also drawn as a chart (gnuplot): throughput, p50 and p99 per
# system and in-flight count, in $out/compare.png (CHART=path to put it
# elsewhere; docs/performance.md shows a copy, docs/img/compare.png).
#
# Installs what is missing (scripts/deps: golang-go,
# golang-github-golang-groupcache-dev, memcached, gnuplot-nox and the build
# packages). Debian
# packages no memcached load tool that reports latency percentiles, hence
# memcached_get.cpp. Every server this script starts is stopped on exit.
set -euo pipefail
NICE=${NICE:-0}
if [[ $NICE != 0 && -z ${DISTCACHE_COMPARE_SESSION:-} ]]; then
  export DISTCACHE_COMPARE_SESSION=1
  exec setsid --wait "$(realpath "$0")" "$@"
fi
cd "$(dirname "$0")/../.."
root=$(pwd)

SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
WARMUP=${WARMUP:-1}
KEYS=${KEYS:-10000}
VALUE_BYTES=${VALUE_BYTES:-100}
ROUNDS=${ROUNDS:-1}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
BUILD_DIR=${BUILD_DIR:-$root/build/bench-compare}
INFLIGHT=(1 16)

out=$BUILD_DIR/compare
mkdir -p "$out"
results=$out/results.txt
: >"$results"

# ---------------------------------------------------------------- cleanup
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ $NICE != 0 ]]; then
  renice -n "$NICE" -p $$ >/dev/null # children inherit it
  if [[ -w /proc/$$/autogroup ]]; then
    echo "$NICE" >"/proc/$$/autogroup" 2>/dev/null || true
  fi
fi

# ---------------------------------------------------------------- packages, build
"$root/scripts/deps" golang-go golang-github-golang-groupcache-dev memcached gnuplot-nox

echo "== build"
cmake -S "$root" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DDISTCACHE_BUILD_TESTS=OFF -DDISTCACHE_BUILD_EXAMPLES=OFF -DDISTCACHE_BUILD_BENCH=ON >/dev/null
cmake --build "$BUILD_DIR" --target bench_cluster_load
cluster_load=$BUILD_DIR/bench/bench_cluster_load
(
  cd "$root/bench/compare/groupcache_bench"
  GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off GOFLAGS='' go build -o "$out/groupcache_bench" .
)
c++ -std=c++20 -O2 -Wall -Wextra -Wpedantic -pthread "$root/bench/compare/memcached_get.cpp" \
  -o "$out/memcached_get"

# ---------------------------------------------------------------- pinning, ports
pin_server=()
pin_client=()
server_cpu_flag=()
if (($(nproc) >= 2)) && command -v taskset >/dev/null &&
  taskset -c "$SERVER_CPU" true 2>/dev/null && taskset -c "$CLIENT_CPU" true 2>/dev/null; then
  pin_server=(taskset -c "$SERVER_CPU")
  pin_client=(taskset -c "$CLIENT_CPU")
  server_cpu_flag=(--server-cpu "$SERVER_CPU" --client-cpu "$CLIENT_CPU")
  pinning="servers on CPU $SERVER_CPU, clients on CPU $CLIENT_CPU"
else
  pinning="none (fewer than 2 CPUs or no taskset)"
fi

# A TCP port nothing listens on now (random in 20000-59999, checked with ss).
free_port() {
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 40000))
    if ! ss -Htln "sport = :$p" | grep -q .; then
      echo "$p"
      return 0
    fi
  done
  echo "run.sh: no free port found" >&2
  return 1
}

# Waits (bounded) until 127.0.0.1:$1 accepts connections.
wait_port() {
  local i
  for ((i = 0; i < 200; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "run.sh: nothing listens on port $1 after 10 s" >&2
  return 1
}

stop_pid() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# Appends "system inflight ops p50 p99 server_cpu client_cpu" from the RESULT
# lines of file $2.
collect() {
  local system=$1 file=$2 line
  field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$line"; }
  while read -r line; do
    echo "$system $(field inflight) $(field ops_per_s) $(field p50_us) $(field p99_us)" \
      "$(field server_cpu_us) $(field client_cpu_us)" >>"$results"
  done < <(grep '^RESULT' "$file")
}

common=(--keys "$KEYS" --value-bytes "$VALUE_BYTES" --seconds "$SECONDS_PER_RUN" --warmup "$WARMUP")
# COALESCE=N: config.cluster.coalesce_in_flight of the distcache rows (default: the library's)
coalesce=()
if [[ -n ${COALESCE:-} ]]; then coalesce=(--coalesce "$COALESCE"); fi
IO_SPIN=${IO_SPIN:-50}

# A CA and one node certificate (IP SAN 127.0.0.1) for the TLS row.
tls_dir=$out/tls
make_certificates() {
  mkdir -p "$tls_dir"
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${ec[@]}" -keyout "$tls_dir/ca.key" -out "$tls_dir/ca.crt" \
    -subj "/CN=distcache bench CA" -days 2 2>/dev/null
  openssl req "${ec[@]}" -keyout "$tls_dir/node.key" -out "$tls_dir/node.csr" \
    -subj "/CN=distcache bench node" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\n' >"$tls_dir/ext.cnf"
  openssl x509 -req -in "$tls_dir/node.csr" -CA "$tls_dir/ca.crt" -CAkey "$tls_dir/ca.key" \
    -CAcreateserial -out "$tls_dir/node.crt" -days 2 -extfile "$tls_dir/ext.cnf" 2>/dev/null
}
make_certificates

# run_distcache ROW CLIENT_THREADS [EXTRA FLAGS...]
run_distcache() {
  local row=$1 threads=$2 n log
  shift 2
  for n in "${INFLIGHT[@]}"; do
    log=$out/${row}_$n.log
    timeout 120 "$cluster_load" --mode remote-hit --clients "$n" --threads "$threads" \
      "${common[@]}" "${coalesce[@]}" "${server_cpu_flag[@]}" "$@" >"$log" 2>&1 || { cat "$log"; return 1; }
    grep -E '^(measured|CPU|node B)' "$log" | sed "s/^/  [$row] /"
    collect "$row" "$log"
  done
}

run_get_many() {
  local log=$out/distcache_get_many.log
  timeout 120 "$cluster_load" --mode get-many --clients 4 --batch 100 "${common[@]}" \
    "${server_cpu_flag[@]}" >"$log" 2>&1 || { cat "$log"; return 1; }
  grep -E '^(measured|node|CPU)' "$log" | sed 's/^/  /'
  sed -n 's/.*max_owner_requests_per_call=\([0-9.]*\).*/get_many \1/p' "$log" >>"$results"
}

run_groupcache() {
  local pa pb pc a b c peers log
  pa=$(free_port) && pb=$(free_port) && pc=$(free_port)
  a=http://127.0.0.1:$pa b=http://127.0.0.1:$pb c=http://127.0.0.1:$pc
  peers=$a,$b,$c
  "${pin_server[@]}" "$out/groupcache_bench" -role node -self "$b" -peers "$peers" \
    -value-bytes "$VALUE_BYTES" >"$out/groupcache_b.log" 2>&1 &
  local pid_b=$!
  pids+=("$pid_b")
  "${pin_server[@]}" "$out/groupcache_bench" -role node -self "$c" -peers "$peers" \
    -value-bytes "$VALUE_BYTES" >"$out/groupcache_c.log" 2>&1 &
  local pid_c=$!
  pids+=("$pid_c")
  wait_port "$pb" && wait_port "$pc"
  log=$out/groupcache.log
  local inflight_list
  inflight_list=$(
    IFS=,
    echo "${INFLIGHT[*]}"
  )
  timeout 180 "${pin_client[@]}" "$out/groupcache_bench" -role caller -self "$a" -peers "$peers" \
    -owner "$b" -inflight "$inflight_list" -keys "$KEYS" -value-bytes "$VALUE_BYTES" \
    -seconds "$SECONDS_PER_RUN" -warmup "$WARMUP" >"$log" 2>&1 || { cat "$log"; return 1; }
  grep -v '^RESULT' "$log" | sed 's/^/  /'
  collect groupcache "$log"
  stop_pid "$pid_b"
  stop_pid "$pid_c"
}

run_memcached() {
  local port n log
  port=$(free_port)
  # One worker thread: the server gets one core, as distcache's node B and
  # groupcache's node B do. -U 0: no UDP.
  "${pin_server[@]}" memcached -l 127.0.0.1 -p "$port" -U 0 -t 1 -m 256 -c 1024 -u "$(id -un)" \
    >"$out/memcached.log" 2>&1 &
  local pid_m=$!
  pids+=("$pid_m")
  wait_port "$port"
  for n in "${INFLIGHT[@]}"; do
    log=$out/memcached_$n.log
    timeout 120 "${pin_client[@]}" "$out/memcached_get" --port "$port" --conns "$n" \
      --server-pid "$pid_m" "${common[@]}" >"$log" 2>&1 || { cat "$log"; return 1; }
    grep -v '^RESULT' "$log" | sed 's/^/  /'
    collect memcached "$log"
  done
  stop_pid "$pid_m"
}

# ---------------------------------------------------------------- runs
echo "== machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)," \
  "$(uname -sr), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== pinning: $pinning; $KEYS keys, $VALUE_BYTES-byte values, ${SECONDS_PER_RUN}s per figure" \
  "after ${WARMUP}s warm-up, $ROUNDS round(s), niceness $NICE"
echo "== $(go version | cut -d' ' -f3), memcached $(memcached -V | cut -d' ' -f2)," \
  "groupcache $(dpkg-query -W -f='${Version}' golang-github-golang-groupcache-dev)"
for ((round = 1; round <= ROUNDS; round++)); do
  echo "== round $round/$ROUNDS"
  echo "-- distcache remote hit"
  run_distcache distcache 0
  run_distcache distcache-1t 1
  run_distcache distcache-tls 0 --tls "$tls_dir"
  run_distcache distcache-spin 0 --io-spin "$IO_SPIN"
  echo "-- golang/groupcache remote hit"
  run_groupcache
  echo "-- memcached GET"
  run_memcached
  echo "-- distcache get_many, 100 keys over 3 nodes"
  run_get_many
done

# ---------------------------------------------------------------- table
# median SYSTEM INFLIGHT COLUMN (3: ops/s, 4: p50, 5: p99, 6: server CPU, 7: client CPU)
median() {
  awk -v s="$1" -v n="$2" -v c="$3" '$1 == s && $2 == n { print $c }' "$results" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }

echo
echo "== results (median of $ROUNDS round(s); $pinning)"
echo "(server/client CPU: CPU time per request in the measured window, node B or memcached /"
echo " the client side: node A and the load generator)"
printf '%-14s %9s %10s %8s %8s %12s %12s\n' system "in flight" "ops/s" "p50 us" "p99 us" \
  "server CPU" "client CPU"
for system in distcache distcache-1t distcache-tls distcache-spin groupcache memcached; do
  for n in "${INFLIGHT[@]}"; do
    printf '%-14s %9s %10.0f %8.1f %8.1f %10.1fus %10.1fus\n' "$system" "$n" \
      "$(median "$system" "$n" 3)" "$(median "$system" "$n" 4)" "$(median "$system" "$n" 5)" \
      "$(median "$system" "$n" 6)" "$(median "$system" "$n" 7)"
  done
done
echo
echo "ratios, distcache (completions on node A's thread) over the others:"
printf '%-9s %14s %14s %14s %14s %18s %18s\n' "in flight" "ops/s vs gc" "ops/s vs mc" \
  "p50 vs gc" "p50 vs mc" "server CPU vs gc" "server CPU vs mc"
for n in "${INFLIGHT[@]}"; do
  printf '%-9s %14s %14s %14s %14s %18s %18s\n' "$n" \
    "$(ratio "$(median distcache "$n" 3)" "$(median groupcache "$n" 3)")" \
    "$(ratio "$(median distcache "$n" 3)" "$(median memcached "$n" 3)")" \
    "$(ratio "$(median distcache "$n" 4)" "$(median groupcache "$n" 4)")" \
    "$(ratio "$(median distcache "$n" 4)" "$(median memcached "$n" 4)")" \
    "$(ratio "$(median distcache "$n" 6)" "$(median groupcache "$n" 6)")" \
    "$(ratio "$(median distcache "$n" 6)" "$(median memcached "$n" 6)")"
done

echo
echo "TLS (mutual, TLS 1.3) over plaintext, distcache remote hit:"
printf '%-9s %10s %10s %18s\n' "in flight" "ops/s" "p50" "server CPU"
for n in "${INFLIGHT[@]}"; do
  printf '%-9s %10s %10s %18s\n' "$n" \
    "$(ratio "$(median distcache-tls "$n" 3)" "$(median distcache "$n" 3)")" \
    "$(ratio "$(median distcache-tls "$n" 4)" "$(median distcache "$n" 4)")" \
    "$(ratio "$(median distcache-tls "$n" 6)" "$(median distcache "$n" 6)")"
done

echo
echo "io_spin ${IO_SPIN}us (distcache-spin) over the default (distcache), and over memcached GET:"
printf '%-9s %10s %10s %10s %12s %12s\n' "in flight" "ops/s" "p50" "p99" "ops/s vs mc" "p50 vs mc"
for n in "${INFLIGHT[@]}"; do
  printf '%-9s %10s %10s %10s %12s %12s\n' "$n" \
    "$(ratio "$(median distcache-spin "$n" 3)" "$(median distcache "$n" 3)")" \
    "$(ratio "$(median distcache-spin "$n" 4)" "$(median distcache "$n" 4)")" \
    "$(ratio "$(median distcache-spin "$n" 5)" "$(median distcache "$n" 5)")" \
    "$(ratio "$(median distcache-spin "$n" 3)" "$(median memcached "$n" 3)")" \
    "$(ratio "$(median distcache-spin "$n" 4)" "$(median memcached "$n" 4)")"
done

# ---------------------------------------------------------------- chart
chart=${CHART:-$out/compare.png}
if command -v gnuplot >/dev/null 2>&1; then
  data=$out/chart.dat
  {
    printf '# system'
    for col in ops p50 p99; do for n in "${INFLIGHT[@]}"; do printf ' %s_%s' "$col" "$n"; done; done
    printf '\n'
    for system in distcache distcache-tls distcache-spin groupcache memcached; do
      printf '%s' "$system"
      for col in 3 4 5; do for n in "${INFLIGHT[@]}"; do printf ' %s' "$(median "$system" "$n" "$col")"; done; done
      printf '\n'
    done
  } >"$data"
  k=${#INFLIGHT[@]}
  panel() { # TITLE FIRST_COLUMN
    local plot="plot '$data' using $2:xtic(1) title '${INFLIGHT[0]} in flight'" i
    for ((i = 1; i < k; i++)); do
      plot+=", '' using $(($2 + i)) title '${INFLIGHT[$i]} in flight'"
    done
    printf 'set title "%s"\n%s\n' "$1" "$plot"
  }
  {
    echo "set terminal pngcairo size 1500,450 noenhanced font ',10'"
    echo "set output '$chart'"
    echo "set multiplot layout 1,3 title 'one peer hop, 10,000 keys, 100-byte values (median of $ROUNDS round(s); $pinning)'"
    echo "set style data histograms; set style histogram clustered gap 1"
    echo "set style fill solid 0.8 border -1; set grid ytics; set key top left; set yrange [0:*]"
    echo "set xtics rotate by -25 nomirror; set bmargin 5; set offsets 0, 0, graph 0.2, 0"
    panel "throughput (gets/s)" 2
    panel "p50 latency (us)" $((2 + k))
    panel "p99 latency (us)" $((2 + 2 * k))
    echo "unset multiplot"
  } | gnuplot
  echo
  echo "chart: $chart"
else
  echo "(no gnuplot: no chart)"
fi

# ---------------------------------------------------------------- targets (reported, not asserted)
last=${INFLIGHT[${#INFLIGHT[@]} - 1]}
d16=$(median distcache "$last" 3)
g16=$(median groupcache "$last" 3)
m16=$(median memcached "$last" 3)
p1=$(median distcache 1 4)
mp1=$(median memcached 1 4)
p99=$(median distcache "$last" 5)
mp99=$(median memcached "$last" 5)
many=$(awk '$1 == "get_many" { print $2 }' "$results" | sort -g | tail -1)
verdict() { if awk "BEGIN { exit !($1) }"; then echo met; else echo "NOT met"; fi; }
echo
echo "== targets (issue 12, issue 11)"
echo "remote hit at $last in flight >= 5x groupcache: $(ratio "$d16" "$g16")x -> $(verdict "$d16 >= 5 * $g16")"
echo "remote hit at $last in flight >= 1.5x memcached GET: $(ratio "$d16" "$m16")x -> $(verdict "$d16 >= 1.5 * $m16")"
echo "p50 at 1 in flight <= 1.0x memcached's: $(ratio "$p1" "$mp1")x -> $(verdict "$p1 <= $mp1")"
sp1=$(median distcache-spin 1 4)
echo "  the same with io_spin ${IO_SPIN}us: $(ratio "$sp1" "$mp1")x -> $(verdict "$sp1 <= $mp1")"
echo "p99 at $last in flight <= memcached's: $(ratio "$p99" "$mp99")x -> $(verdict "$p99 <= $mp99")"
t16=$(median distcache-tls "$last" 3)
echo "remote hit over TLS at $last in flight >= 0.8x plaintext: $(ratio "$t16" "$d16")x" \
  "-> $(verdict "$t16 >= 0.8 * $d16")"
echo "get_many of 100 keys over 3 nodes, get requests per owner per call: ${many:-nan}" \
  "-> $(verdict "${many:-2} <= 1")"
echo "(logs and results.txt in $out)"
