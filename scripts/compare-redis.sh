#!/usr/bin/env bash
# The lab's RESP listener against a single redis-server from the system's packages, on this
# machine, in one run: redis-benchmark -t set,get -n N -c 50, with and without -P 16, and with
# -P 16 -r 100000.
#   Redis:  appendonly yes, appendfsync always and everysec (one unreplicated process).
#   Lab:    3 brokers, RF 3, acks=all (min ISR 2), fsync always and never, through the RESP port
#           of broker 2, which leads redis-benchmark's key (served in-process), and of broker 1
#           (forwarded to broker 2 over gRPC).
# Without -r, redis-benchmark uses one key for every request, and the lab sends a connection's
# run of SETs to one key as one request (kept in order); with -r each SET is a request of its
# own, and two thirds of the keys belong to other leaders. Prints a Markdown table and the ratios.
# Usage: scripts/compare-redis.sh [REQUESTS]   (cargo build --release first; needs redis-server)
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

redis_run() { # appendfsync, redis-benchmark args...
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

lab_run() { # fsync, via broker, redis-benchmark args...
  local fsync=$1 via=$2; shift 2
  "$bin" bench --nodes 3 --fsync "$fsync" --via "$via" \
    --redis-benchmark "-t set,get -n $n -c 50 $* --csv" | parse
}

declare -A rps p50 p99
record() { # label, then lines "CMD rps p50 p99" on stdin
  while read -r cmd r a b; do rps[$1,$cmd]=$r; p50[$1,$cmd]=$a; p99[$1,$cmd]=$b; done
}
labels=("redis always" "lab always via 2" "lab always via 1" "redis everysec" "lab never via 2" "lab never via 1")
modes=(1 16 16r)
for mode in "${modes[@]}"; do
  case $mode in 1) args=() ;; 16) args=(-P 16) ;; 16r) args=(-P 16 -r 100000) ;; esac
  record "redis always $mode" < <(redis_run always "${args[@]}")
  record "lab always via 2 $mode" < <(lab_run always 2 "${args[@]}")
  record "lab always via 1 $mode" < <(lab_run always 1 "${args[@]}")
  record "redis everysec $mode" < <(redis_run everysec "${args[@]}")
  record "lab never via 2 $mode" < <(lab_run never 2 "${args[@]}")
  record "lab never via 1 $mode" < <(lab_run never 1 "${args[@]}")
done

echo "redis-benchmark -t set,get -n $n -c 50; $(nproc) cores; redis-server $(redis-server --version | cut -d' ' -f3)"
echo
echo "| server | durability | -P (r: -r 100000) | SET/s | SET p50 / p99 ms | GET/s | GET p50 / p99 ms |"
echo "|---|---|---|---|---|---|---|"
for mode in "${modes[@]}"; do
  for label in "${labels[@]}"; do
    k="$label $mode"
    case $label in
      "redis always") what="Redis, 1 process | appendfsync always" ;;
      "redis everysec") what="Redis, 1 process | appendfsync everysec" ;;
      "lab always via 2") what="lab, RF 3 acks=all, via the key's leader | fsync always" ;;
      "lab always via 1") what="lab, RF 3 acks=all, via another broker | fsync always" ;;
      "lab never via 2") what="lab, RF 3 acks=all, via the key's leader | fsync never" ;;
      "lab never via 1") what="lab, RF 3 acks=all, via another broker | fsync never" ;;
    esac
    echo "| $what | ${mode/r/ r} | ${rps[$k,SET]} | ${p50[$k,SET]} / ${p99[$k,SET]} | ${rps[$k,GET]} | ${p50[$k,GET]} / ${p99[$k,GET]} |"
  done
done
echo
for mode in "${modes[@]}"; do
  python3 - "$mode" "${rps[redis always $mode,SET]}" "${rps[lab always via 2 $mode,SET]}" \
    "${rps[lab always via 1 $mode,SET]}" "${rps[redis everysec $mode,SET]}" \
    "${rps[lab never via 2 $mode,SET]}" "${rps[lab never via 1 $mode,SET]}" <<'PY'
import sys
mode, ra, la2, la1, re, ln2, ln1 = sys.argv[1], *map(float, sys.argv[2:])
print(f"-P {mode}: SET lab fsync always / Redis appendfsync always = {la2/ra:.2f} via the leader, "
      f"{la1/ra:.2f} via another broker; lab fsync never / Redis everysec = {ln2/re:.2f}, {ln1/re:.2f}")
PY
done
