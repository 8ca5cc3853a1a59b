#!/bin/bash
# A sequential read (dd bs=1M) of one file over a fresh `teleport mount`: cold (empty chunk
# store), warm (the store as the last run left it), or warm-dropped (page cache dropped first:
# the store read from disk). Prints MB/s and the mount process's CPU ticks (1/100 s) during dd.
# Usage: LINK_FILE=... WORK=/tmp/x [CACHE=folder] [SIZE=2G] [FILE=big.bin] bench/mount-cache-read.sh cold|warm|warm-dropped
# (a host serving FILE must be running: teleport host SHARE --link-file $LINK_FILE)
set -e
mode=$1; file=${FILE:-big.bin}; cache=${CACHE:-$WORK/cache}; cli=$(dirname "$0")/../dist/src/cli/bin.js
mkdir -p "$WORK/mnt"
[ "$mode" = cold ] && rm -rf "$cache"
rm -f "$WORK/mount.err"
TELEPORT_HOME=$WORK/home-client node "$cli" mount "$(cat "$LINK_FILE")" "$WORK/mnt" \
  --cache-dir "$cache" --cache-size "${SIZE:-2G}" 2>"$WORK/mount.err" &
pid=$!
for _ in $(seq 1200); do grep -q "mounted at" "$WORK/mount.err" 2>/dev/null && break; sleep 0.05; done
[ "$mode" = warm-dropped ] && { sync; echo 3 > /proc/sys/vm/drop_caches; }
before=$(awk '{print $14+$15}' /proc/$pid/stat)
rate=$(dd if="$WORK/mnt/$file" of=/dev/null bs=1M 2>&1 | tail -1 | awk '{print $(NF-1), $NF}')
after=$(awk '{print $14+$15}' /proc/$pid/stat)
kill -TERM $pid; wait $pid
echo "$mode size=${SIZE:-2G} $rate cpu=$((after - before))ticks"
