#!/usr/bin/env bash
# Push over the pusher's data streams against push over the control connection alone: two builds
# of teleport (BASE_CLI: without data streams; NEW_CLI: with them), the same payload, alternating
# which goes first in each round, RUNS rounds, each push into a fresh host (its own TELEPORT_HOME
# and an empty share: a cold upload). Every copy is checked against the payload. Prints one JSON
# line per run, then the medians of wall seconds and their ratio (new / base).
#
#   bench/push-streams.sh BASE_CLI NEW_CLI PAYLOAD [RUNS] [NETSIM_LINK]
#
# PAYLOAD: a file or folder. NETSIM_LINK: the name of a link made with
# /work/shared/tools/netsim up (the host runs in its side b, the pusher in side a); loopback
# when absent.
set -euo pipefail
base_cli=$1 new_cli=$2 payload=$3 runs=${4:-5} link=${5:-}
netsim=${NETSIM:-/work/shared/tools/netsim/netsim}
scratch=$(mktemp -d /dev/shm/push-streams-bench-XXXXXX)
trap 'rm -rf "$scratch"' EXIT

if [ -n "$link" ]; then
  in_host=("$netsim" exec "$link" b --) in_pusher=("$netsim" exec "$link" a --) bind=(--bind 10.77.0.2)
else
  in_host=() in_pusher=() bind=(--bind 127.0.0.1)
fi

# One push with `cli` of the payload into a fresh host; prints "wall_seconds streams".
one_push() {
  local cli=$1 run=$scratch/run
  rm -rf "$run" && mkdir -p "$run/share"
  TELEPORT_HOME=$run/host-home "${in_host[@]}" node "$cli" host "$run/share" --allow-upload --port 0 \
    "${bind[@]}" --link-file "$run/links" >/dev/null 2>"$run/host.err" &
  local host_pid=$!
  until [ -s "$run/links" ] && grep -q "share indexed" "$run/host.err"; do sleep 0.1; done
  local write_link
  write_link=$(sed -n 2p "$run/links")
  local started ended
  started=$(date +%s.%N)
  TELEPORT_HOME=$run/pusher-home "${in_pusher[@]}" node "$cli" push "$payload" "$write_link" --json >"$run/summary.json"
  ended=$(date +%s.%N)
  kill "$host_pid" 2>/dev/null || true
  wait "$host_pid" 2>/dev/null || true
  diff -r "$payload" "$run/share/$(basename "$payload")" >/dev/null || { echo "copy differs" >&2; exit 1; }
  local streams
  streams=$(node -e 'const s=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));console.log(s.streams??0)' "$run/summary.json")
  echo "$(echo "$ended - $started" | bc) $streams"
}

declare -a base_times new_times
for round in $(seq 1 "$runs"); do
  order=(base new)
  if [ $((round % 2)) -eq 0 ]; then order=(new base); fi
  for which in "${order[@]}"; do
    cli=$base_cli
    [ "$which" = new ] && cli=$new_cli
    read -r seconds streams < <(one_push "$cli")
    echo "{\"round\":$round,\"build\":\"$which\",\"seconds\":$seconds,\"streams\":$streams}"
    if [ "$which" = base ]; then base_times+=("$seconds"); else new_times+=("$seconds"); fi
  done
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
base_median=$(median "${base_times[@]}")
new_median=$(median "${new_times[@]}")
echo "{\"payload\":\"$(basename "$payload")\",\"link\":\"${link:-loopback}\",\"runs\":$runs,\"baseMedianSeconds\":$base_median,\"newMedianSeconds\":$new_median,\"ratio\":$(echo "scale=3; $new_median / $base_median" | bc)}"
