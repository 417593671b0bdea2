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

run_load overload "$rows"
for n in A B C; do
  log "$n: $(stat_of "$n" '"overloaded %d, local_loads %d, peer_errors %d" % (s["overloaded"], s["local_loads"], s["peer_errors"])')"
done
echo "PASS: faults_overload"
