#!/bin/sh
# Runs ZooKeeper server N (1, 2 or 3) of conf/ensemble3 in the foreground, from the project's
# root: makes its data directory and its myid file (the server's number, which ZooKeeper reads
# to know which server.N line is itself), then starts the installed ZooKeeper on zoo-N.cfg.
# Uses $ZOOKEEPER_HOME/bin/zkServer.sh when set (an Apache tarball), else Debian's.
set -eu
n="${1:?usage: conf/ensemble3/zk-server.sh 1|2|3}"
here="$(dirname "$0")"
cfg="$here/zoo-$n.cfg"
[ -f "$cfg" ] || { echo "no $cfg: give 1, 2 or 3" >&2; exit 1; }
data="$(sed -n 's/^dataDir=//p' "$cfg")"
mkdir -p "$data"
echo "$n" > "$data/myid"
if [ -n "${ZOOKEEPER_HOME:-}" ]; then
    server="$ZOOKEEPER_HOME/bin/zkServer.sh"
else
    server=/usr/share/zookeeper/bin/zkServer.sh
fi
[ -x "$server" ] || { echo "no ZooKeeper at $server: run 'make test' once (it installs it) or set ZOOKEEPER_HOME" >&2; exit 1; }
exec "$server" start-foreground "$cfg"
