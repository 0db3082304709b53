#!/usr/bin/env bash
# An emulated multi-node cluster on this machine: N "nodes" tsnnode1..N, each a network
# namespace with its own hostname (a UTS namespace) and address on a bridge, reached by an ssh
# stand-in, so MPI ranks on different nodes talk TCP and never share memory.
#
#   launch/emulated-cluster.sh up N          create (or adjust to) exactly N nodes; idempotent
#   launch/emulated-cluster.sh down          remove everything `up` made (safe to re-run)
#   launch/emulated-cluster.sh status        nodes and addresses; exit 0 up, 3 not up
#   launch/emulated-cluster.sh check         can this machine do it? exit 0, else 4 and why
#   launch/emulated-cluster.sh exec NODE CMD...       run CMD on node NODE (like ssh NODE CMD)
#   launch/emulated-cluster.sh mpiexec [--nodes M] [--ppn K] MPIEXEC_ARGS...
#        hydra's mpiexec across the first M nodes (default all), K ranks per node (default 1;
#        block placement: ranks 0..K-1 on tsnnode1, ...), through the ssh stand-in:
#        mpiexec -launcher ssh -launcher-exec STATE/ssh -hosts tsnnode1:K,... -iface BRIDGE
#        The mpiexec is $MPIEXEC, else the one on PATH (the MPI mpi4py was installed with).
#
# What `up` makes (all of it named tsn*, removed again by `down`):
#   bridge $TSN_CLUSTER_BRIDGE (default br-tsn) with $NET.1/24 (NET = $TSN_CLUSTER_NET,
#   default 10.213.0); per node k: network namespace tsnnodek (ip netns), veth pair
#   tsnvethk <-> eth0 inside it with $NET.(k+1), a UTS namespace bound at STATE/uts/tsnnodek
#   with hostname tsnnodek, an IPC namespace bound at STATE/ipc/tsnnodek; /etc/hosts lines
#   "$NET.(k+1) tsnnodek  # tsn-emulated-cluster";
#   STATE = /run/tsn-cluster (the ssh stand-in `ssh`, the node list `nodes`).
# Needs root, iproute2 (`ip netns`), util-linux (`unshare`, `nsenter`) and a kernel with
# veth and bridge; `check` says which is missing.  Follows shared/notes/infra.md §9 (TCP
# between the namespaces: 16-25 us per bare 2-rank allgather, ~45 us per step of the time
# loop's exchange, docs/scaling.md; no tc netem on that kernel, so no latency can be added).
# Why an IPC namespace per node: UCX (the PyPI MPICH's netmod) decides that two processes share
# a machine by the boot id and their IPC namespace, so without it ranks on different emulated
# nodes still talk through System V shared memory (measured: "intra-node ... sysv/memory", 8 us);
# with it UCX reports "inter-node ... tcp/eth0".  CMA (process_vm_readv) is then not chosen
# either.  Ranks of one node share the node's IPC namespace and use shared memory as on a
# real node.
# The stand-in gives the remote command a login-like environment (HOME, PATH, LANG only), as
# ssh would; mpiexec forwards its own environment to the ranks, as hydra does on a cluster.
set -euo pipefail

STATE=${TSN_CLUSTER_STATE:-/run/tsn-cluster}
BR=${TSN_CLUSTER_BRIDGE:-br-tsn}
NET=${TSN_CLUSTER_NET:-10.213.0}
MARK="# tsn-emulated-cluster"
PREFIX=tsnnode

say() { echo "emulated-cluster: $*"; }
die() { echo "emulated-cluster: $1" >&2; exit "${2:-1}"; }

why_not() {  # prints why this machine cannot emulate nodes (nothing when it can)
    if [ "$(id -u)" != 0 ]; then echo "needs root (network namespaces, a bridge, /etc/hosts)"; return; fi
    local t
    for t in ip unshare nsenter; do
        command -v "$t" >/dev/null || { echo "'$t' not found (iproute2 / util-linux)"; return; }
    done
    ip netns list >/dev/null 2>&1 || { echo "'ip netns' does not work here"; return; }
    if [ ! -d "$STATE" ] || [ ! -e "/run/netns/${PREFIX}1" ]; then
        # probe once: a namespace and a bridge (removed again)
        local probe=tsnp$$  # interface names: at most 15 characters
        if ! ip netns add "$probe" 2>/dev/null; then echo "cannot create a network namespace (ip netns add)"; return; fi
        ip netns del "$probe" 2>/dev/null || true
        if ! ip link add "b$probe" type bridge 2>/dev/null; then echo "cannot create a bridge (no bridge support in this kernel?)"; return; fi
        ip link del "b$probe" 2>/dev/null || true
        if ! ip link add "v$probe" type veth peer name "w$probe" 2>/dev/null; then echo "cannot create veth pairs"; return; fi
        ip link del "v$probe" 2>/dev/null || true
        if ! unshare --uts --ipc true 2>/dev/null; then echo "cannot create UTS/IPC namespaces (unshare)"; return; fi
    fi
}

nodes_up() {  # the node names that exist now, in order
    local k=1
    while [ -e "/run/netns/$PREFIX$k" ]; do echo "$PREFIX$k"; k=$((k + 1)); done
}

hosts_remove() {  # drop our /etc/hosts lines (rewritten in place: /etc/hosts may be a bind mount)
    grep -q -- "$MARK" /etc/hosts 2>/dev/null || return 0
    local tmp
    tmp=$(mktemp)
    grep -v -- "$MARK" /etc/hosts > "$tmp" || true
    cat "$tmp" > /etc/hosts
    rm -f "$tmp"
}

write_ssh() {
    cat > "$STATE/ssh.new" <<SH
#!/bin/bash
# ssh stand-in of the emulated cluster (launch/emulated-cluster.sh): ssh [OPTIONS] [USER@]HOST CMD...
# runs CMD with bash -c inside HOST's network and UTS namespaces, as ssh would on that host.
while [ \$# -gt 0 ]; do
    case "\$1" in
        -[bcDEeFIiJLlmOopQRSWw]) shift 2 ;;
        -*) shift ;;
        *) break ;;
    esac
done
[ \$# -ge 1 ] || { echo "ssh stand-in: no host" >&2; exit 255; }
host=\${1#*@}; shift
if [ ! -e "/run/netns/\$host" ] || [ ! -e "$STATE/uts/\$host" ] || [ ! -e "$STATE/ipc/\$host" ]; then
    echo "ssh stand-in: \$host is not a node of the emulated cluster" >&2; exit 255
fi
cd "\${HOME:-/root}" 2>/dev/null || cd /
exec nsenter --net="/run/netns/\$host" --uts="$STATE/uts/\$host" --ipc="$STATE/ipc/\$host" -- \\
    env -i HOME="\${HOME:-/root}" LANG="\${LANG:-C.UTF-8}" \\
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    bash -c "\$*"
SH
    chmod 755 "$STATE/ssh.new"
    mv "$STATE/ssh.new" "$STATE/ssh"
}

add_node() {  # add_node K
    local k=$1 ns=$PREFIX$1 veth=tsnveth$1
    if [ ! -e "/run/netns/$ns" ]; then ip netns add "$ns"; fi
    if ! ip link show "$veth" >/dev/null 2>&1; then
        ip link add "$veth" type veth peer name eth0 netns "$ns"
    fi
    ip link set "$veth" master "$BR"
    ip link set "$veth" up
    ip netns exec "$ns" ip link set lo up
    if ! ip netns exec "$ns" ip -4 addr show dev eth0 | grep -q "inet $NET.$((k + 1))/"; then
        ip netns exec "$ns" ip addr add "$NET.$((k + 1))/24" dev eth0
    fi
    ip netns exec "$ns" ip link set eth0 up
    ip netns exec "$ns" ip route replace default via "$NET.1" dev eth0 2>/dev/null || true
    mkdir -p "$STATE/uts" "$STATE/ipc"
    if ! nsenter --uts="$STATE/uts/$ns" true 2>/dev/null; then
        umount "$STATE/uts/$ns" 2>/dev/null || true
        touch "$STATE/uts/$ns"
        unshare --uts="$STATE/uts/$ns" hostname "$ns"
    fi
    if ! nsenter --ipc="$STATE/ipc/$ns" true 2>/dev/null; then
        umount "$STATE/ipc/$ns" 2>/dev/null || true
        touch "$STATE/ipc/$ns"
        unshare --ipc="$STATE/ipc/$ns" true
    fi
    # (a last line without a newline must not be joined with ours)
    if [ -s /etc/hosts ] && [ "$(tail -c 1 /etc/hosts | od -An -c | tr -d ' ')" != '\n' ]; then
        echo >> /etc/hosts
    fi
    printf '%s %s  %s\n' "$NET.$((k + 1))" "$ns" "$MARK" >> /etc/hosts
}

del_node() {  # del_node NAME
    local ns=$1 k=${1#"$PREFIX"}
    ip link del "tsnveth$k" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    local kind
    for kind in uts ipc; do
        if [ -e "$STATE/$kind/$ns" ]; then
            umount "$STATE/$kind/$ns" 2>/dev/null || true
            rm -f "$STATE/$kind/$ns"
        fi
    done
}

up() {
    local n=${1:-}
    case "$n" in ''|*[!0-9]*|0) die "usage: $0 up N (N >= 1 nodes)" 2 ;; esac
    [ "$n" -le 250 ] || die "at most 250 nodes on one /24" 2
    local why
    why=$(why_not)
    [ -z "$why" ] || die "cannot emulate nodes here: $why" 4
    if ip -4 route show "$NET.0/24" | grep -qv " dev $BR "; then
        die "$NET.0/24 is already routed elsewhere ($(ip -4 route show "$NET.0/24" | head -n1)); set TSN_CLUSTER_NET" 1
    fi
    mkdir -p "$STATE"
    if ! ip link show "$BR" >/dev/null 2>&1; then ip link add "$BR" type bridge; fi
    if ! ip -4 addr show dev "$BR" | grep -q "inet $NET.1/24"; then ip addr add "$NET.1/24" dev "$BR"; fi
    ip link set "$BR" up
    hosts_remove
    local k name
    for name in $(nodes_up); do  # fewer nodes than before: remove the extra ones
        k=${name#"$PREFIX"}
        [ "$k" -le "$n" ] || del_node "$name"
    done
    for k in $(seq "$n"); do add_node "$k"; done
    write_ssh
    nodes_up > "$STATE/nodes"
    # every node answers on TCP/ICMP from the host
    for name in $(nodes_up); do
        local ok=0
        for _ in $(seq 20); do
            if ping -c 1 -W 1 "$name" >/dev/null 2>&1 || ! command -v ping >/dev/null; then ok=1; break; fi
            sleep 0.2
        done
        [ "$ok" = 1 ] || die "$name does not answer ping"
    done
    say "up: $n node(s) $(paste -sd, "$STATE/nodes") on $BR ($NET.0/24); ssh stand-in $STATE/ssh"
}

down() {
    local name k
    for name in $(nodes_up); do del_node "$name"; done
    # stray pieces of an interrupted up (a veth or namespace beyond the first gap)
    for name in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$PREFIX[0-9]+$" || true); do
        del_node "$name"
    done
    for name in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^tsnveth[0-9]+$' || true); do
        ip link del "$name" 2>/dev/null || true
    done
    if ip link show "$BR" >/dev/null 2>&1; then ip link del "$BR"; fi
    hosts_remove
    for k in "$STATE"/uts/* "$STATE"/ipc/*; do
        [ -e "$k" ] || continue; umount "$k" 2>/dev/null || true; rm -f "$k"
    done
    rm -rf "$STATE"
    say "down"
}

status() {
    local nodes
    nodes=$(nodes_up)
    if [ -z "$nodes" ] || [ ! -x "$STATE/ssh" ]; then echo "emulated cluster: not up"; return 3; fi
    echo "emulated cluster: $(echo "$nodes" | wc -l) node(s), bridge $BR, ssh stand-in $STATE/ssh"
    local name
    for name in $nodes; do
        printf '  %-10s %-14s hostname %s\n' "$name" \
            "$(ip netns exec "$name" ip -4 -o addr show dev eth0 | awk '{print $4}')" \
            "$(nsenter --uts="$STATE/uts/$name" hostname 2>/dev/null || echo '?')"
    done
}

node_exec() {
    [ $# -ge 2 ] || die "usage: $0 exec NODE CMD..." 2
    local host=$1; shift
    [ -x "$STATE/ssh" ] || die "not up (run: $0 up N)" 3
    exec nsenter --net="/run/netns/$host" --uts="$STATE/uts/$host" --ipc="$STATE/ipc/$host" -- "$@"
}

run_mpiexec() {
    local m="" ppn=1
    while [ $# -gt 0 ]; do
        case "$1" in
            --nodes) m=$2; shift 2 ;;
            --nodes=*) m=${1#--nodes=}; shift ;;
            --ppn) ppn=$2; shift 2 ;;
            --ppn=*) ppn=${1#--ppn=}; shift ;;
            --) shift; break ;;
            *) break ;;
        esac
    done
    [ -x "$STATE/ssh" ] || die "not up (run: $0 up N)" 3
    local all hosts="" name i=0
    all=$(nodes_up)
    [ -n "$m" ] || m=$(echo "$all" | wc -l)
    for name in $all; do
        i=$((i + 1)); [ "$i" -le "$m" ] || break
        hosts+="${hosts:+,}$name:$ppn"
    done
    [ "$i" -ge "$m" ] || die "--nodes $m but only $i node(s) are up" 2
    local exe=${MPIEXEC:-$(command -v mpiexec || true)}
    [ -n "$exe" ] || die "no mpiexec (set MPIEXEC)" 2
    exec "$exe" -launcher ssh -launcher-exec "$STATE/ssh" -hosts "$hosts" -iface "$BR" "$@"
}

case "${1:-}" in
    up) shift; up "$@" ;;
    down) down ;;
    status) status ;;
    check) why=$(why_not); if [ -n "$why" ]; then echo "emulated-cluster: $why"; exit 4; fi; echo "emulated-cluster: this machine can emulate nodes" ;;
    exec) shift; node_exec "$@" ;;
    mpiexec) shift; run_mpiexec "$@" ;;
    *) echo "usage: $0 up N|down|status|check|exec NODE CMD...|mpiexec [--nodes M] [--ppn K] ARGS..." >&2; exit 2 ;;
esac
