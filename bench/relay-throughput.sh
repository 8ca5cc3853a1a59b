#!/usr/bin/env bash
# Pull throughput through a relay against the direct path, on the same link in the same run:
# one host, registered with one relay; each round pulls the payload once with `--transport tcp`
# (the host's own address) and once with `--transport relay`, alternating which goes first, each
# into a fresh destination and TELEPORT_HOME (nothing reused). Prints one JSON line per pull, then
# the medians of throughput and their ratio (relay / direct).
#
#   bench/relay-throughput.sh [--runs 5] [--mib 256] [--lab] [--delay-ms 12.5 --rate-mbit 100]
#
# Without --lab, everything runs on loopback. With --lab, in the NAT lab (bench/nat-lab.sh): the
# relay on the public network, the host behind a full-cone NAT (its port open, so the direct path
# exists), the client behind a symmetric NAT (so no hole is punched and the relay path stays the
# relay's), the routers' public links shaped by --delay-ms/--rate-mbit (host-client RTT is
# 4 x delay, the relay path's the same: it crosses the same two links).
set -euo pipefail
runs=5 mib=256 lab=0 delay= rate=
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --mib) mib=$2; shift 2 ;;
    --lab) lab=1; shift ;;
    --delay-ms) delay=$2; shift 2 ;;
    --rate-mbit) rate=$2; shift 2 ;;
    *) echo "relay-throughput: unknown option $1" >&2; exit 2 ;;
  esac
done
here="$(cd "$(dirname "$0")" && pwd)"
cli="$here/../dist/src/cli/bin.js"
scratch=$(mktemp -d /dev/shm/relay-bench-XXXXXX)
id=rb$(head -c 3 /dev/urandom | od -An -tx1 | tr -d ' \n' | cut -c1-5)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "$lab" = 1 ] && "$here/nat-lab.sh" down --id "$id" >/dev/null 2>&1 || true
  rm -rf "$scratch"
}
trap cleanup EXIT

in_ns() { # role command...
  local role=$1; shift
  if [ "$lab" = 1 ]; then "$here/nat-lab.sh" exec "$id" "$role" -- "$@"; else "$@"; fi
}

if [ "$lab" = 1 ]; then
  shape=()
  [ -n "$delay" ] && shape+=(--delay-ms "$delay")
  [ -n "$rate" ] && shape+=(--rate-mbit "$rate")
  up=$("$here/nat-lab.sh" up --id "$id" --host-nat full-cone --client-nat symmetric "${shape[@]}")
  relay_bind=$(echo "$up" | sed -n 's/^addr.relay=//p')
  host_bind=0.0.0.0
  advertise=(--advertise "$(echo "$up" | sed -n 's/^addr.host-router=//p')")
else
  relay_bind=127.0.0.1 host_bind=127.0.0.1 advertise=()
fi

mkdir -p "$scratch/share"
head -c $((mib * 1024 * 1024)) /dev/urandom >"$scratch/share/payload.bin"

in_ns relay env TELEPORT_HOME="$scratch/relay-home" node "$cli" relay --bind "$relay_bind" --port 0 \
  >"$scratch/relay.out" 2>"$scratch/relay.err" &
pids+=($!)
until [ -s "$scratch/relay.out" ]; do sleep 0.1; done
relay=$(head -1 "$scratch/relay.out")
in_ns host env TELEPORT_HOME="$scratch/host-home" node "$cli" host "$scratch/share" --bind "$host_bind" --port 0 \
  "${advertise[@]}" --relay "$relay" --link-file "$scratch/link" >/dev/null 2>"$scratch/host.err" &
pids+=($!)
until [ -s "$scratch/link" ]; do sleep 0.1; done
link=$(head -1 "$scratch/link")

# One pull over `transport`; prints "bytes_per_second path".
one_pull() {
  local transport=$1 run=$scratch/run
  rm -rf "$run" && mkdir -p "$run"
  in_ns client env TELEPORT_HOME="$run/home" node "$cli" pull "$link" "$run/dest" --transport "$transport" --json \
    >"$run/summary.json" 2>"$run/pull.err" || { cat "$run/pull.err" >&2; exit 1; }
  cmp -s "$scratch/share/payload.bin" "$run/dest/payload.bin" || { echo "copy differs" >&2; exit 1; }
  node -e 'const s=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));console.log(s.bytes/s.totals.seconds, s.path)' \
    "$run/summary.json"
}

declare -a direct relayed
for round in $(seq 1 "$runs"); do
  order=(tcp relay)
  if [ $((round % 2)) -eq 0 ]; then order=(relay tcp); fi
  for transport in "${order[@]}"; do
    read -r rate_bps path < <(one_pull "$transport")
    echo "{\"round\":$round,\"transport\":\"$transport\",\"path\":\"$path\",\"bytesPerSecond\":$rate_bps}"
    if [ "$transport" = tcp ]; then direct+=("$rate_bps"); else relayed+=("$rate_bps"); fi
  done
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
direct_median=$(median "${direct[@]}")
relay_median=$(median "${relayed[@]}")
ratio=$(echo "$relay_median / $direct_median" | bc -l)
echo "{\"runs\":$runs,\"mib\":$mib,\"lab\":$lab,\"delayMs\":\"${delay}\",\"rateMbit\":\"${rate}\",\"directMedianBytesPerSecond\":$direct_median,\"relayMedianBytesPerSecond\":$relay_median,\"ratio\":$(printf '%.3f' "$ratio")}"
