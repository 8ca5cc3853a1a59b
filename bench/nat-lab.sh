#!/usr/bin/env bash
# A NAT lab in network namespaces: a relay on a "public" network, a host behind NAT A and a
# client behind NAT B, each NAT cone, full-cone or symmetric, the routers' public links optionally
# shaped (delay, rate, loss). test/helpers/nat-lab.ts drives it; it also runs by hand:
#
#   bench/nat-lab.sh up --id a1b2c3 --host-nat cone --client-nat symmetric [--delay-ms 12.5 --rate-mbit 100 --loss 0]
#   bench/nat-lab.sh exec a1b2c3 client -- curl ...      # roles: relay host client host-router client-router core
#   bench/nat-lab.sh down --id a1b2c3                    # idempotent
#
#   relay 198.18.0.2 ──┐
#                      core (routes 198.18.0.0/16, no NAT)
#   host-router 198.18.1.2 ─┘ └─ client-router 198.18.2.2        (public side: the routers' addresses)
#        │ NAT A                      │ NAT B
#   host 10.0.1.2                client 10.0.2.2                 (private side)
#
# NAT kinds, in nftables on the router:
#   cone       masquerade: Linux keeps the source port when it is free, so one socket gets one
#              public port whatever it sends to (endpoint-independent mapping); inbound is let in
#              only for flows conntrack already holds (address-and-port-dependent filtering).
#   full-cone  the same, plus every new inbound TCP/UDP flow is DNATed to the host (an open port).
#   symmetric  masquerade fully-random: each destination gets its own random public port.
# Every router drops new inbound flows in its input chain (as home routers do), so a punch that
# arrives before the other side has sent leaves no conntrack entry that would steal the port.
#
# Shaping needs no netem (these kernels have none): each router's public link becomes a TUN pair
# joined by netsim's userspace forwarder (../shared/tools/netsim/netsim-fwd.c, or $NETSIM_FWD_SRC),
# delay/rate/loss per direction. Host-client RTT is then 4 x delay (two links, both ways).
#
# Names: every namespace and interface starts with tp<id>. State (forwarder pids) is kept in
# /run/tp-natlab/<id>; `down` ends the forwarders and anything still running in the namespaces.
set -euo pipefail

STATE_ROOT=/run/tp-natlab
HERE="$(cd "$(dirname "$0")" && pwd)"
FWD_SRC="${NETSIM_FWD_SRC:-$HERE/../../shared/tools/netsim/netsim-fwd.c}"
ROLES="core relay host-router client-router host client"

die() { echo "nat-lab: $*" >&2; exit 1; }

ns_of() { # role -> namespace name
  case "$2" in
    core) echo "tp$1net" ;; relay) echo "tp$1rel" ;; host-router) echo "tp$1ra" ;;
    client-router) echo "tp$1rb" ;; host) echo "tp$1h" ;; client) echo "tp$1c" ;;
    *) die "unknown role '$2' (roles: $ROLES)" ;;
  esac
}

check_id() { [[ "$1" =~ ^[a-z0-9]{1,8}$ ]] || die "id must be 1-8 of [a-z0-9]: '$1'"; }

netns_setup() { # ns forwarding(0|1)
  ip netns add "$1"
  ip -n "$1" link set lo up
  ip netns exec "$1" sh -c "
    echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6 2>/dev/null || true
    echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 2>/dev/null || true
    echo $2 > /proc/sys/net/ipv4/ip_forward
    echo '4096 131072 67108864' > /proc/sys/net/ipv4/tcp_rmem
    echo '4096 16384 67108864' > /proc/sys/net/ipv4/tcp_wmem
    echo 1 > /proc/sys/net/ipv4/tcp_no_metrics_save"
}

veth_link() { # nsA ifA addrA nsB ifB addrB (addresses with prefix)
  ip link add "$2" netns "$1" type veth peer name "$5" netns "$4"
  ip -n "$1" addr add "$3" dev "$2"
  ip -n "$4" addr add "$6" dev "$5"
  ip -n "$1" link set "$2" up
  ip -n "$4" link set "$5" up
}

fwd_binary() {
  [ -r "$FWD_SRC" ] || die "shaping needs netsim's forwarder source: $FWD_SRC (set NETSIM_FWD_SRC)"
  local cache="/tmp/tp-natlab-cache-$(id -u)" tag
  mkdir -p -m 700 "$cache"
  [ "$(stat -c '%u %a' "$cache")" = "$(id -u) 700" ] || die "$cache is not a private directory of ours"
  tag="$(sha256sum "$FWD_SRC" | cut -c1-16)"
  if [ ! -x "$cache/netsim-fwd-$tag" ]; then
    cc -O2 -Wall -o "$cache/netsim-fwd-$tag.$$" "$FWD_SRC"
    mv "$cache/netsim-fwd-$tag.$$" "$cache/netsim-fwd-$tag"
  fi
  echo "$cache/netsim-fwd-$tag"
}

shaped_link() { # id nsA nsB ifname addrA addrB
  local exe queue out
  exe="$(fwd_binary)"
  # One bandwidth-delay product of the host-client path (4 x the link delay), at least 16 packets.
  queue="$(awk -v r="$RATE_MBIT" -v d="$DELAY_MS" 'BEGIN { q = r * 1e6 / 8 * 4 * d / 1000; if (q < 24000) q = 24000; printf "%d", q }')"
  out="$STATE_ROOT/$1/$4.out"
  setsid "$exe" --ns-a "/run/netns/$2" --ns-b "/run/netns/$3" --ifname "$4" \
    --delay-us "$(awk -v d="$DELAY_MS" 'BEGIN { printf "%d", d * 1000 }')" \
    --rate-bps "$(awk -v r="$RATE_MBIT" 'BEGIN { printf "%d", r * 1e6 }')" \
    --loss "$LOSS" --queue-bytes "$queue" </dev/null >"$out" 2>"$out.log" &
  echo $! >>"$STATE_ROOT/$1/pids"
  for _ in $(seq 100); do grep -q ready "$out" 2>/dev/null && break; sleep 0.1; done
  grep -q ready "$out" || die "forwarder did not start: $(cat "$out.log")"
  ip -n "$2" addr add "$5" dev "$4"
  ip -n "$3" addr add "$6" dev "$4"
  ip -n "$2" link set "$4" mtu 1500 txqueuelen 4000 up
  ip -n "$3" link set "$4" mtu 1500 txqueuelen 4000 up
}

router_link() { # id side(a|b) — the router's public link to the core, shaped or not
  local id="$1" side="$2" net="$3" ns core ifname
  ns="$(ns_of "$id" "$([ "$side" = a ] && echo host-router || echo client-router)")"
  core="$(ns_of "$id" core)"
  ifname="tp${id}w$side"
  if [ -n "$DELAY_MS" ]; then
    shaped_link "$id" "$ns" "$core" "$ifname" "198.18.$net.2/24" "198.18.$net.1/24"
  else
    veth_link "$ns" "$ifname" "198.18.$net.2/24" "$core" "tp${id}c$side" "198.18.$net.1/24"
  fi
  ip -n "$ns" route add default via "198.18.$net.1"
  echo "$ifname"
}

nat_rules() { # ns public-if kind private-host
  local masq="masquerade" dnat=""
  case "$3" in
    cone) ;;
    symmetric) masq="masquerade fully-random" ;;
    full-cone) dnat="iifname \"$2\" meta l4proto { tcp, udp } dnat to $4" ;;
    *) die "unknown NAT kind '$3' (cone, full-cone, symmetric)" ;;
  esac
  ip netns exec "$1" nft -f - <<EOF
table ip tpnat {
  chain postrouting { type nat hook postrouting priority srcnat; oifname "$2" $masq; }
  chain prerouting { type nat hook prerouting priority dstnat; $dnat; }
}
table inet tpfilter {
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "$2" ct state established,related accept
    iifname "$2" drop
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "$2" ct state established,related accept
    iifname "$2" ct status dnat accept
    iifname "$2" drop
  }
}
EOF
}

cmd_up() {
  local id="" host_nat=cone client_nat=cone
  DELAY_MS="" RATE_MBIT=0 LOSS=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --id) id="$2"; shift 2 ;;
      --host-nat) host_nat="$2"; shift 2 ;;
      --client-nat) client_nat="$2"; shift 2 ;;
      --delay-ms) DELAY_MS="$2"; shift 2 ;;
      --rate-mbit) RATE_MBIT="$2"; shift 2 ;;
      --loss) LOSS="$2"; shift 2 ;;
      *) die "up: unknown option $1" ;;
    esac
  done
  [ -n "$id" ] || id="$(head -c 3 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  check_id "$id"
  [ "$(id -u)" = 0 ] || die "needs root (network namespaces, nftables)"
  command -v nft >/dev/null || die "needs nft (Debian package nftables)"
  [ ! -e "$STATE_ROOT/$id" ] || die "lab $id exists; run: $0 down --id $id"
  mkdir -p "$STATE_ROOT/$id"
  trap 'cmd_down --id "$id" >/dev/null 2>&1' ERR
  netns_setup "$(ns_of "$id" core)" 1
  netns_setup "$(ns_of "$id" relay)" 0
  netns_setup "$(ns_of "$id" host-router)" 1
  netns_setup "$(ns_of "$id" client-router)" 1
  netns_setup "$(ns_of "$id" host)" 0
  netns_setup "$(ns_of "$id" client)" 0
  veth_link "$(ns_of "$id" relay)" "tp${id}r" 198.18.0.2/24 "$(ns_of "$id" core)" "tp${id}cr" 198.18.0.1/24
  ip -n "$(ns_of "$id" relay)" route add default via 198.18.0.1
  local pub_a pub_b
  pub_a="$(router_link "$id" a 1)"
  pub_b="$(router_link "$id" b 2)"
  veth_link "$(ns_of "$id" host-router)" "tp${id}la" 10.0.1.1/24 "$(ns_of "$id" host)" "tp${id}h" 10.0.1.2/24
  veth_link "$(ns_of "$id" client-router)" "tp${id}lb" 10.0.2.1/24 "$(ns_of "$id" client)" "tp${id}c" 10.0.2.2/24
  ip -n "$(ns_of "$id" host)" route add default via 10.0.1.1
  ip -n "$(ns_of "$id" client)" route add default via 10.0.2.1
  nat_rules "$(ns_of "$id" host-router)" "$pub_a" "$host_nat" 10.0.1.2
  nat_rules "$(ns_of "$id" client-router)" "$pub_b" "$client_nat" 10.0.2.2
  trap - ERR
  echo "id=$id"
  for role in $ROLES; do echo "ns.$role=$(ns_of "$id" "$role")"; done
  echo "addr.relay=198.18.0.2"
  echo "addr.host-router=198.18.1.2"
  echo "addr.client-router=198.18.2.2"
  echo "addr.host=10.0.1.2"
  echo "addr.client=10.0.2.2"
}

cmd_down() {
  local id=""
  while [ $# -gt 0 ]; do
    case "$1" in --id) id="$2"; shift 2 ;; *) die "down: unknown option $1" ;; esac
  done
  check_id "$id"
  local pid role ns
  if [ -f "$STATE_ROOT/$id/pids" ]; then
    while read -r pid; do
      grep -qs "tp${id}" "/proc/$pid/cmdline" && kill "$pid" 2>/dev/null || true
    done <"$STATE_ROOT/$id/pids"
  fi
  for role in $ROLES; do
    ns="$(ns_of "$id" "$role")"
    ip netns list | grep -qw "^$ns" || continue
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "${STATE_ROOT:?}/$id"
}

cmd_exec() { # id role -- command...
  [ $# -ge 4 ] && [ "$3" = "--" ] || die "usage: $0 exec ID ROLE -- COMMAND..."
  check_id "$1"
  local ns
  ns="$(ns_of "$1" "$2")"
  shift 3
  exec ip netns exec "$ns" "$@"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  exec) shift; cmd_exec "$@" ;;
  *) echo "usage: $0 up [--id ID] [--host-nat KIND] [--client-nat KIND] [--delay-ms D --rate-mbit R --loss P] | down --id ID | exec ID ROLE -- CMD..." >&2; exit 2 ;;
esac
