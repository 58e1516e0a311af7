#!/usr/bin/env bash
# Where the CPU goes for one SET: redis-benchmark -t set -n N -c 50 [-P P] against redis-server
# (appendonly yes, appendfsync always) and against the lab's RESP port (3 brokers, RF 3,
# acks=all, fsync always, through the key's leader), in one run on this machine. Prints SET/s and
# the CPU microseconds each SET cost the server and the load generator.
#
# When the machine is saturated (2 cores running servers and redis-benchmark), throughput
# follows CPU per request: the ratio of the two servers' SET/s is close to
#   (Redis's CPU + its load generator's) / (the lab's CPU + its load generator's)
# per SET, which the last line prints beside the measured ratio.
#
# This machine's speed drifts by ±30 % within minutes, so one pair proves little: ROUNDS pairs
# run Redis first in odd rounds and the lab first in even ones, and the last line gives the
# median ratio and the range.
#
# NODES (3 by default) sets the lab's brokers and so its copies: with 1, the lab keeps one copy, as
# Redis does, and the ratio compares what one copy costs each.
# Usage: scripts/cpu-per-set.sh [REQUESTS] [PIPELINE] [ROUNDS] [NODES]   (cargo build --release first)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-300000}
pipeline=${2:-1}
rounds=${3:-1}
nodes=${4:-3}
# The benchmark's one key lives on partition 1, whose leader is its first replica, broker
# 1 % NODES + 1 (DESIGN's placement rule).
via=$(( 1 % nodes + 1 ))
bin=./target/release/simplekv-lab
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }
for tool in redis-server redis-benchmark redis-cli; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install redis-server redis-tools" >&2; exit 1; }
done
hz=$(getconf CLK_TCK)
work=$(mktemp -d)
redis_pid=
cleanup() { [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }           # utime + stime of a live process
set_rps() { python3 -c 'import csv,sys
for r in csv.reader(sys.stdin):
    if r and r[0] == "SET": print(r[1])'; }

# Redis: the server's ticks from /proc before it stops; redis-benchmark's from `time`.
run_redis() {
  port=$((20000 + RANDOM % 20000))
  rm -rf "$work/redis" && mkdir "$work/redis"
  redis-server --port "$port" --dir "$work/redis" --appendonly yes --appendfsync always --save "" \
    --daemonize no --logfile "$work/redis.log" &
  redis_pid=$!
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  before=$(ticks "$redis_pid")
  /usr/bin/time -f "%U %S" -o "$work/rb-time" \
    redis-benchmark -p "$port" -t set -n "$n" -c 50 -P "$pipeline" --csv > "$work/redis.csv"
  redis_srv=$(( $(ticks "$redis_pid") - before ))
  kill "$redis_pid"; wait "$redis_pid" 2>/dev/null || true; redis_pid=
  redis_rps=$(set_rps < "$work/redis.csv")
  redis_load=$(awk '{print $1 + $2}' "$work/rb-time")
}

# The lab: `bench --redis-benchmark` prints the CPU of its own threads and of redis-benchmark.
run_lab() {
  "$bin" bench --nodes "$nodes" --fsync always --via "$via" \
    --redis-benchmark "-t set -n $n -c 50 -P $pipeline --csv" > "$work/lab.out"
  lab_rps=$(set_rps < "$work/lab.out")
  read -r lab_srv lab_load < <(sed -n 's/^cpu: brokers \([0-9.]*\)s, fsync \([0-9.]*\)s, other lab threads \([0-9.]*\)s, redis-benchmark \([0-9.]*\)s$/\1 \2 \3 \4/p' "$work/lab.out" \
    | awk '{print $1 + $2 + $3, $4}')
}

for round in $(seq "$rounds"); do
  if (( round % 2 == 1 )); then run_redis; run_lab; else run_lab; run_redis; fi
  [ "$rounds" -gt 1 ] && echo "round $round of $rounds ($( (( round % 2 == 1 )) && echo "Redis first" || echo "lab first"))"
python3 - "$n" "$hz" "$redis_rps" "$redis_srv" "$redis_load" "$lab_rps" "$lab_srv" "$lab_load" "$pipeline" "$work/ratios" "$nodes" <<'PY'
import sys
n, hz = int(sys.argv[1]), float(sys.argv[2])
r_rps, r_srv, r_load = float(sys.argv[3]), int(sys.argv[4]) / hz, float(sys.argv[5])
l_rps, l_srv, l_load = float(sys.argv[6]), float(sys.argv[7]), float(sys.argv[8])
us = lambda s: s / n * 1e6
print(f"redis-benchmark -t set -n {n} -c 50 -P {sys.argv[9]}; CPU microseconds per SET (server / load generator)")
print(f"| server | SET/s | server µs/SET | redis-benchmark µs/SET |")
print(f"|---|---|---|---|")
print(f"| Redis, 1 process, appendfsync always | {r_rps:,.0f} | {us(r_srv):.1f} | {us(r_load):.1f} |")
print(f"| lab, RF {min(int(sys.argv[11]), 3)} acks=all, fsync always, via the key's leader | {l_rps:,.0f} | {us(l_srv):.1f} | {us(l_load):.1f} |")
print(f"measured ratio lab/Redis {l_rps / r_rps:.2f}; CPU-bound estimate "
      f"{(us(r_srv) + us(r_load)) / (us(l_srv) + us(l_load)):.2f}")
with open(sys.argv[10], "a") as f:
    f.write(f"{l_rps / r_rps}\n")
PY
done

if [ "$rounds" -gt 1 ]; then
  python3 - "$work/ratios" <<'PY'
import statistics, sys
r = sorted(float(x) for x in open(sys.argv[1]))
print(f"{len(r)} rounds: median ratio lab/Redis {statistics.median(r):.2f}, range {r[0]:.2f}-{r[-1]:.2f}")
PY
fi
