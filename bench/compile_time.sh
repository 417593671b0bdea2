#!/usr/bin/env bash
# Compile time of user programs as a ratio to a reference compiled in the same
# run with the same flags (docs/performance.md, "Compile time").
#
# The reference is a minimal Boost.Beast HTTP/1.1 client (asio + beast core +
# http, one synchronous GET). Each translation unit is compiled ROUNDS times
# (default 3) with `c++ -std=c++20 -O2 -c`, without ccache; the median wall
# time is reported, and every ratio is median / reference median.
#
#   bench/compile_time.sh            # ROUNDS=3 CXX=c++
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
cxx=${CXX:-c++}
src=bench/compile_time
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
flags=(-std=c++20 -O2 -Iinclude -I"$src")

# name | extra flags | source
cases=(
  "reference: Beast HTTP client||$src/reference_beast_client.cpp"
  "engine<2 keyspaces>, header-only||$src/user_program.cpp"
  "engine<2 keyspaces>, separate compilation|-DDISTCACHE_SEPARATE_COMPILATION|$src/user_program.cpp"
  "engine<3 keyspaces>, header-only|-DTHIRD_KEYSPACE|$src/user_program.cpp"
  "engine<3 keyspaces>, separate compilation|-DTHIRD_KEYSPACE -DDISTCACHE_SEPARATE_COMPILATION|$src/user_program.cpp"
  "http + static_peers, header-only|-DCLUSTER|$src/user_program.cpp"
  "http + static_peers, separate compilation|-DCLUSTER -DDISTCACHE_SEPARATE_COMPILATION|$src/user_program.cpp"
  "the compiled library (src/distcache.cpp), once|-DDISTCACHE_SEPARATE_COMPILATION|src/distcache.cpp"
)

median_seconds() {  # flags... source
  local times=()
  for ((r = 0; r < rounds; r++)); do
    local start end
    start=$(date +%s.%N)
    # shellcheck disable=SC2068
    "$cxx" "${flags[@]}" $@ -c -o "$out/tu.o"
    end=$(date +%s.%N)
    times+=("$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')")
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((rounds + 1) / 2))p"
}

printf '%-48s %9s %7s\n' "translation unit" "median s" "ratio"
ref=""
for c in "${cases[@]}"; do
  IFS='|' read -r name extra file <<<"$c"
  # shellcheck disable=SC2086
  t=$(median_seconds $extra "$file")
  [[ -z $ref ]] && ref=$t
  printf '%-48s %9.2f %7.2f\n' "$name" "$t" "$(awk -v a="$t" -v b="$ref" 'BEGIN { print a / b }')"
done
echo "($rounds rounds each, $($cxx --version | head -1), flags: ${flags[*]})"
