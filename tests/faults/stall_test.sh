#!/usr/bin/env bash
# Fault: a data source that stalls. examples/cluster nodes A, B and C
# (tests/support/cluster_nodes.sh) over one SQLite database whose queries never answer while the
# test runs (--source-delay-ms 60000), with at most 2 queries at once per node (--max-fetches) and
# at most 8 loads waiting for one (--max-queued-fetches). Reads of keys nobody has read yet are
# sent at 40 per second for 4 s through A, B and C in turn (tests/support/cluster_load.py stall).
# Checks that
#
#  - every read is answered, and only with 503 overloaded (refused at once: the queue is full) or
#    504 timeout (it waited in the queue or for the hung query until the read timeout, 5 s in the
#    example): at least half are refused, their p99 is under 500 ms, and no read waits longer
#    than the read timeout + 1.5 s;
#  - resident memory stays flat: no node grows by more than 10 MiB, none passes 100 MiB;
#  - the stalled queries are the only ones: at most 2 per node (the concurrency limit);
#  - SIGTERM stops every node within 5 s although its queries hang (the example ends its delay).
#
#   stall_test.sh PATH/TO/example_cluster
#
# Needs curl and python3 (exit 77, "skipped", without them). Every phase is bounded in time.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../support/cluster_nodes.sh
source "$(dirname "$0")/../support/cluster_nodes.sh"
require_example_cluster "${1:-}"
bin=$1

rows=1000
cluster_setup stall "$rows"
start_cluster --source-delay-ms 60000 --max-fetches 2 --max-queued-fetches 8
log "nodes ready: A=${name[A]} B=${name[B]} C=${name[C]}"
wait_for 15 "A, B and C to form one ring" ring_is A B C

run_load stall "$rows"
for n in A B C; do
  queries=$(stat_of "$n" 's["source_queries"]')
  log "$n: $(stat_of "$n" '"source_queries %d, overloaded %d" % (s["source_queries"], s["overloaded"])')"
  ((queries <= 2)) || fail "$n ran $queries queries: more than its concurrency limit of 2"
done
for n in A B C; do
  start=$(now_ms)
  kill -TERM "${pid[$n]}"
  timeout 5 tail -s 0.1 --pid="${pid[$n]}" -f /dev/null || fail "$n did not stop within 5 s of SIGTERM"
  code=0
  wait "${pid[$n]}" || code=$?
  unset "pid[$n]"
  ((code == 0)) || fail "$n exited with status $code after SIGTERM"
  log "$n stopped $(($(now_ms) - start)) ms after SIGTERM, with its queries hung"
done
echo "PASS: faults_stall"
