#!/usr/bin/env bash
# A real SLURM cluster on this machine, for trying and testing the sbatch scripts: one node
# (this host), plus N emulated nodes with a slurmd each when asked.
#
#   launch/local-slurm.sh start [--nodes N]
#                    install (Debian slurmctld + slurmd + munge) if needed, write
#                    /etc/slurm/slurm.conf, start munged, slurmctld and slurmd, and wait until
#                    the nodes are idle.  Does nothing when a controller already answers
#                    with at least the emulated nodes asked for (with fewer: says so and
#                    fails; stop it first).
#                    --nodes N (N >= 1): also the emulated nodes tsnnode1..N of
#                    launch/emulated-cluster.sh (bring it up first: `up N`), each running its own
#                    slurmd inside its namespaces, in partition `nodes`:
#                        sbatch -p nodes -N 2 launch/slurm-cpu.sbatch train runs/a
#   launch/local-slurm.sh stop     stop the daemons this script started, by their pid files
#   launch/local-slurm.sh status   daemons, pids and `sinfo`
#
# The emulated nodes (NodeName=tsnnodeK NodeAddr=<its bridge address>, spool
# /var/spool/slurmd/tsnnodeK, log /var/log/slurm/slurmd-tsnnodeK.log, pid file
# /var/run/slurm/slurmd-tsnnodeK.pid) reach slurmctld at the bridge address of this host
# (SlurmctldHost=HOST(ADDR)); munge's socket is a file, shared by all of them.  The host's own
# node keeps partition `debug` (the default).
# Needs root and Debian/Ubuntu (apt-get).  Follows docs in shared/notes/infra.md §7 (measured on
# Debian 12, SLURM 22.05): MpiDefault=none, so job scripts must ask for `srun --mpi=pmi2`
# themselves (ours do).  One deviation: RealMemory is 85 % of this machine's MemTotal instead
# of a fixed 20000 MB, so the node is not rejected on a machine with less memory.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
RUN=/var/run/slurm
MUNGE_PID=/run/munge/munged.pid
CTLD_PID=$RUN/slurmctld.pid
SLURMD_PID=$RUN/slurmd-$(hostname).pid   # SlurmdPidFile=$RUN/slurmd-%n.pid
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CLUSTER=$HERE/emulated-cluster.sh
CLUSTER_STATE=${TSN_CLUSTER_STATE:-/run/tsn-cluster}
BR=${TSN_CLUSTER_BRIDGE:-br-tsn}
NODES=0

say() { echo "local-slurm: $*"; }

alive() {  # alive PIDFILE -> 0 if the pid in it runs
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

answering() { timeout 10 sinfo -h >/dev/null 2>&1; }

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v sbatch >/dev/null && command -v munged >/dev/null; then
        return
    fi
    [ "$(id -u)" = 0 ] || { say "installing packages needs root"; exit 1; }
    command -v apt-get >/dev/null || { say "apt-get not found (Debian/Ubuntu only)"; exit 1; }
    say "installing slurmctld slurmd slurm-client munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
}

bridge_addr() {  # the host's IPv4 address on the emulated cluster's bridge
    ip -4 -o addr show dev "$BR" 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | head -n1
}

node_addr() {  # node_addr NAME: its address inside its namespace
    ip netns exec "$1" ip -4 -o addr show dev eth0 2>/dev/null | awk '{print $4}' | cut -d/ -f1
}

emulated_nodes() {  # tsnnode1..NODES, checked to be up
    local k
    for k in $(seq "$NODES"); do
        if [ ! -e "/run/netns/tsnnode$k" ] || [ ! -x "$CLUSTER_STATE/ssh" ]; then
            say "emulated node tsnnode$k is not up: run 'launch/emulated-cluster.sh up $NODES' first"
            exit 1
        fi
        echo "tsnnode$k"
    done
}

write_conf() {
    local host cpus mem_mb ctld name
    host=$(hostname)
    cpus=$(nproc)
    mem_mb=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.85}' /proc/meminfo)
    mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd/"$host" /var/log/slurm /run/munge "$RUN"
    ctld=$host
    if [ "$NODES" -gt 0 ]; then
        local addr
        addr=$(bridge_addr)
        [ -n "$addr" ] || { say "no address on bridge $BR (is the emulated cluster up?)"; exit 1; }
        ctld="$host($addr)"  # what the slurmds inside the namespaces connect to
    fi
    cat > "$CONF.new" <<CONF
ClusterName=local
SlurmctldHost=$ctld
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$RUN/slurmd-%n.pid
SlurmdSpoolDir=/var/spool/slurmd/%n
StateSaveLocation=/var/spool/slurmctld
SlurmUser=root
SlurmdUser=root
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd-%n.log
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
    if [ "$NODES" -gt 0 ]; then
        local names=()
        for name in $(emulated_nodes); do
            mkdir -p "/var/spool/slurmd/$name"
            echo "NodeName=$name NodeAddr=$(node_addr "$name") CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN" >> "$CONF.new"
            names+=("$name")
        done
        local list
        list=$(IFS=,; echo "${names[*]}")
        echo "PartitionName=nodes Nodes=$list MaxTime=INFINITE State=UP OverSubscribe=YES" >> "$CONF.new"
    fi
    mv "$CONF.new" "$CONF"
}

conf_nodes() {  # the emulated nodes a running controller knows (from `sinfo`)
    timeout 10 sinfo -h -N -o %N 2>/dev/null | grep -c '^tsnnode' || true
}

wait_idle() {  # wait_idle NODE...: until every node is idle (or mixed/allocated)
    local node state ok
    for _ in $(seq 60); do
        ok=1
        for node in "$@"; do
            state=$(timeout 10 sinfo -h -n "$node" -o %t 2>/dev/null | head -n1 || true)
            case "$state" in idle|mix|alloc) ;; *) ok=0 ;; esac
        done
        [ "$ok" = 0 ] || return 0
        sleep 1
    done
    for node in "$@"; do
        say "node $node: state '$(timeout 10 sinfo -h -n "$node" -o %t 2>/dev/null | head -n1)'"
    done
    return 1
}

start() {
    if answering; then
        local have
        have=$(conf_nodes)
        if [ "$have" -lt "$NODES" ]; then
            say "a SLURM controller already answers with $have emulated node(s), not $NODES: run '$0 stop' first"
            exit 1
        fi
        say "a SLURM controller already answers; nothing to do"
        sinfo
        return
    fi
    [ "$(id -u)" = 0 ] || { say "start needs root"; exit 1; }
    install_packages
    write_conf
    if [ ! -s /etc/munge/munge.key ]; then
        say "creating /etc/munge/munge.key"
        mkdir -p /etc/munge
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
        chmod 400 /etc/munge/munge.key
    fi
    mkdir -p /var/lib/munge /var/log/munge
    chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
    if ! alive "$MUNGE_PID"; then
        su -s /bin/bash munge -c /usr/sbin/munged
    fi
    if ! alive "$CTLD_PID"; then
        /usr/sbin/slurmctld
        sleep 2
    fi
    if ! alive "$SLURMD_PID"; then
        /usr/sbin/slurmd
    fi
    local name nodes=("$(hostname)")
    for name in $(emulated_nodes); do
        # a slurmd per emulated node, inside its network, UTS and IPC namespaces
        if ! alive "$RUN/slurmd-$name.pid"; then
            bash "$CLUSTER" exec "$name" /usr/sbin/slurmd -N "$name"
        fi
        nodes+=("$name")
    done
    if wait_idle "${nodes[@]}"; then
        say "up (${nodes[*]}; $(nproc) CPUs each)"
        sinfo
    else
        say "not all nodes became idle within 60 s; see /var/log/slurm/*.log"
        exit 1
    fi
}

stop() {
    local f
    for f in "$RUN"/slurmd-*.pid "$RUN/slurmd.pid" "$CTLD_PID" "$MUNGE_PID"; do
        if alive "$f"; then
            local pid
            pid=$(cat "$f")
            kill "$pid"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
            say "stopped pid $pid ($f)"
        fi
    done
}

status() {
    local f
    for f in "$MUNGE_PID" "$CTLD_PID" "$RUN"/slurmd-*.pid; do
        [ -e "$f" ] || continue
        if alive "$f"; then echo "$f: running (pid $(cat "$f"))"; else echo "$f: not running"; fi
    done
    if answering; then sinfo; else echo "sinfo: no controller answers"; return 3; fi
}

case "${1:-}" in
    start)
        shift
        while [ $# -gt 0 ]; do
            case "$1" in
                --nodes) NODES=${2:-}; shift 2 ;;
                --nodes=*) NODES=${1#--nodes=}; shift ;;
                *) echo "usage: $0 start [--nodes N]" >&2; exit 2 ;;
            esac
        done
        case "$NODES" in ''|*[!0-9]*) echo "$0: --nodes needs a number" >&2; exit 2 ;; esac
        start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start [--nodes N]|stop|status" >&2; exit 2 ;;
esac
