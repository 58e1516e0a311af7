#!/usr/bin/env bash
# The console's redraw rate while `load` runs at full speed (a benchmark, not a test): starts
# `simplekv-lab --nodes 3` in a tmux pane, starts a background load, and every 2 s reads the
# footer's "N frames/s" and the writes/s panel. The console promises at least 4 frames/s.
# Usage, from the project root after `make build`: scripts/console-rate.sh  (C=clients, N=readings)
set -u
S=simplekv-console-rate
command -v tmux >/dev/null || { echo "tmux is needed (make setup installs it)"; exit 1; }
tmux kill-session -t $S 2>/dev/null
tmux new-session -d -s $S -x 160 -y 48 "target/release/simplekv-lab --nodes 3"
trap 'tmux kill-session -t $S 2>/dev/null' EXIT
for _ in $(seq 1 120); do tmux capture-pane -p -t $S | grep -q "frames/s" && break; sleep 0.5; done
for _ in $(seq 1 120); do tmux capture-pane -p -t $S | grep -q "brokers are up" && break; sleep 0.5; done
echo "idle: $(tmux capture-pane -p -t $S | grep -o "[0-9]* frames/s")"
tmux send-keys -t $S "load 100000000 clients ${C:-64} background" Enter
for i in $(seq 1 "${N:-8}"); do
  sleep 2
  scr=$(tmux capture-pane -p -t $S)
  echo "t=$((i * 2))s: $(echo "$scr" | grep -o "[0-9]* frames/s") while $(echo "$scr" | grep -o -m1 "Writes/s: [0-9]*")"
done
tmux send-keys -t $S "quit" Enter
sleep 3
