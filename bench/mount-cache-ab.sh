#!/bin/bash
# Builds of teleport side by side, interleaved: per round and build, bench/mount-cache-read.sh's
# cold, warm and warm-dropped reads of one 1 GiB random file over a fresh mount. Each DIR is a
# checkout with dist/ and the addons built (e.g. a `git worktree` of the revision to compare);
# the first one's host serves the file from /dev/shm. Prints one line per read (MB/s, CPU ticks).
# Usage: bench/mount-cache-ab.sh ROUNDS NAME=DIR[,ENV=VALUE]...
#   e.g. bench/mount-cache-ab.sh 3 base=/tmp/base new=.
set -e
rounds=$1; shift
W=/tmp/ab; mkdir -p $W /dev/shm/ab/share
[ -f /dev/shm/ab/share/big.bin ] || head -c 1G /dev/urandom > /dev/shm/ab/share/big.bin
first=${1#*=}; first=${first%%,*}
rm -f $W/link
TELEPORT_HOME=$W/home-host node $first/dist/src/cli/bin.js host /dev/shm/ab/share --link-file $W/link >/dev/null 2>$W/host.err &
hostpid=$!
for _ in $(seq 200); do [ -s $W/link ] && break; sleep 0.05; done
for r in $(seq $rounds); do
  for spec in "$@"; do
    name=${spec%%=*}; rest=${spec#*=}; dir=${rest%%,*}; envs=""; [ "$rest" != "$dir" ] && envs=${rest#*,}
    for mode in cold warm warm-dropped; do
      out=$(env $envs LINK_FILE=$W/link WORK=$W/$name SIZE=4G bash $dir/bench/mount-cache-read.sh $mode 2>&1 | tail -1)
      echo "round=$r $name load=$(cut -d' ' -f1 /proc/loadavg) $out"
    done
  done
done
kill $hostpid; wait $hostpid 2>/dev/null || true
