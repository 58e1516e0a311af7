#!/usr/bin/env bash
# Installs what the lab and the tests need when it is missing: Apache ZooKeeper (with a Java
# runtime), tmux, and redis-tools (the real redis-cli and redis-benchmark the Redis-protocol tests
# use), from the system's packages. Needs root or sudo; does nothing when all is there.
set -euo pipefail

have_zookeeper() {
  if [ -n "${ZOOKEEPER_HOME:-}" ] && compgen -G "$ZOOKEEPER_HOME/lib/zookeeper-*.jar" >/dev/null; then
    command -v java >/dev/null
    return
  fi
  [ -f /usr/share/java/zookeeper.jar ] && command -v java >/dev/null
}

missing=()
have_zookeeper || missing+=(zookeeper)
command -v tmux >/dev/null || missing+=(tmux)
command -v redis-cli >/dev/null || missing+=(redis-tools)
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
  echo "setup: ${missing[*]} missing and this is not a Debian/Ubuntu system." >&2
  echo "setup: install Apache ZooKeeper and set ZOOKEEPER_HOME to its directory (with lib/*.jar), and install tmux." >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null; then
  as_root=(sudo)
else
  echo "setup: ${missing[*]} missing; run 'apt-get install -y ${missing[*]}' as root, then try again." >&2
  exit 1
fi

echo "setup: installing ${missing[*]} from the system's packages..."
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
have_zookeeper || { echo "setup: ZooKeeper still not found after installing it" >&2; exit 1; }
command -v redis-cli >/dev/null || { echo "setup: redis-cli still not found after installing redis-tools" >&2; exit 1; }
echo "setup: done."
