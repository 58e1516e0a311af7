#!/usr/bin/env bash
# Runs `simplekv-lab bench --nodes 3` over acks 0/1/all, 1 and 3 partitions, 1/8/64 clients and
# fsync never/always, and prints one Markdown table row per run with the command that reproduces
# it. Usage: scripts/bench-cluster.sh [SECONDS_PER_RUN]   (build with cargo build --release first)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-4}
bin=./target/release/simplekv-lab
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }
echo "| fsync | acks | partitions | clients | ops/s | p50 ms | p99 ms | p99.9 ms | errors | command |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for fsync in never always; do
  for acks in 0 1 all; do
    for parts in 1 3; do
      for clients in 1 8 64; do
        args=(bench --nodes 3 --partitions "$parts" --clients "$clients" --acks "$acks" --fsync "$fsync" --duration "${secs}s" --json)
        json=$("$bin" "${args[@]}" 2>/dev/null | tail -n 1)
        python3 - "$fsync" "$acks" "$parts" "$clients" "$json" "simplekv-lab ${args[*]}" <<'PY'
import json, sys
fsync, acks, parts, clients, raw, cmd = sys.argv[1:]
j = json.loads(raw)
print(f"| {fsync} | {acks} | {parts} | {clients} | {j['ops_per_sec']:.0f} | {j['p50_ms']:.2f} | {j['p99_ms']:.2f} | {j['p999_ms']:.2f} | {j['errors']} | `{cmd.replace(' --json', '')}` |")
PY
      done
    done
  done
done
