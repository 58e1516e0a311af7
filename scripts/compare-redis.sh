#!/usr/bin/env bash
# The lab's RESP listener against a single redis-server from the system's packages, on this
# machine, in one run: redis-benchmark -t set,get -n N -c 50, with and without -P 16, and with
# -P 16 -r 100000. Without -r, redis-benchmark uses one key for every request; the lab runs a
# connection's commands on one key in order (the later waits for the earlier write), so only the
# -r rows show what pipelining gives it.
#   Redis:  appendonly yes, appendfsync always and everysec (one unreplicated process).
#   Lab:    3 brokers, RF 3, acks=all (min ISR 2), fsync always and never, through broker 1's
#           RESP port (keys of other partitions are forwarded to their leaders).
# Prints a Markdown table and the ratios. Usage: scripts/compare-redis.sh [REQUESTS]
# (build first: cargo build --release; needs redis-server and redis-benchmark).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200000}
bin=./target/release/simplekv-lab
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }
for tool in redis-server redis-benchmark redis-cli; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install redis-server redis-tools" >&2; exit 1; }
done
work=$(mktemp -d)
redis_pid=
cleanup() { [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# "SET rps p50 p99" lines from redis-benchmark --csv output on stdin.
parse() { python3 -c '
import csv, sys
for row in csv.reader(sys.stdin):
    if row and row[0] in ("SET", "GET"):
        print(row[0], row[1], row[4], row[6])'; }

redis_run() { # appendfsync, pipeline args...
  local fsync=$1; shift
  local port=$((20000 + RANDOM % 20000))
  rm -rf "$work/redis" && mkdir -p "$work/redis"
  redis-server --port "$port" --dir "$work/redis" --appendonly yes --appendfsync "$fsync" \
    --save "" --daemonize no --logfile "$work/redis.log" &
  redis_pid=$!
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-benchmark -p "$port" -t set,get -n "$n" -c 50 "$@" --csv | parse
  kill "$redis_pid"; wait "$redis_pid" 2>/dev/null || true; redis_pid=
}

lab_run() { # fsync, pipeline args...
  local fsync=$1; shift
  "$bin" bench --nodes 3 --fsync "$fsync" --redis-benchmark "-t set,get -n $n -c 50 $* --csv" | parse
}

declare -A rps p50 p99
record() { # label, then lines "CMD rps p50 p99" on stdin
  while read -r cmd r a b; do rps[$1,$cmd]=$r; p50[$1,$cmd]=$a; p99[$1,$cmd]=$b; done
}
modes=(1 16 16r)
for pipe in "${modes[@]}"; do
  case $pipe in 1) args=() ;; 16) args=(-P 16) ;; 16r) args=(-P 16 -r 100000) ;; esac
  record "redis always P$pipe" < <(redis_run always "${args[@]}")
  record "lab always P$pipe" < <(lab_run always "${args[@]}")
  record "redis everysec P$pipe" < <(redis_run everysec "${args[@]}")
  record "lab never P$pipe" < <(lab_run never "${args[@]}")
done

echo "redis-benchmark -t set,get -n $n -c 50; $(nproc) cores; $(redis-server --version | cut -d' ' -f3)"
echo
echo "| server | durability | -P (r: -r 100000) | SET/s | SET p50 / p99 ms | GET/s | GET p50 / p99 ms |"
echo "|---|---|---|---|---|---|---|"
for pipe in "${modes[@]}"; do
  for label in "redis always" "lab always" "redis everysec" "lab never"; do
    k="$label P$pipe"
    case $label in
      "redis always") what="Redis, 1 process | appendfsync always" ;;
      "redis everysec") what="Redis, 1 process | appendfsync everysec" ;;
      "lab always") what="lab, 3 brokers RF 3, acks=all | fsync always" ;;
      "lab never") what="lab, 3 brokers RF 3, acks=all | fsync never" ;;
    esac
    echo "| $what | $pipe | ${rps[$k,SET]} | ${p50[$k,SET]} / ${p99[$k,SET]} | ${rps[$k,GET]} | ${p50[$k,GET]} / ${p99[$k,GET]} |"
  done
done
echo
for pipe in "${modes[@]}"; do
  python3 - "$pipe" "${rps[lab always P$pipe,SET]}" "${rps[redis always P$pipe,SET]}" \
    "${rps[lab never P$pipe,SET]}" "${rps[redis everysec P$pipe,SET]}" \
    "${rps[lab always P$pipe,GET]}" "${rps[redis always P$pipe,GET]}" <<'PY'
import sys
p, la, ra, ln, re, lga, rga = sys.argv[1], *map(float, sys.argv[2:])
print(f"-P {p}: SET lab fsync always / Redis appendfsync always = {la/ra:.2f}; "
      f"lab fsync never / Redis everysec = {ln/re:.2f}; GET (same runs) = {lga/rga:.2f}")
PY
done
