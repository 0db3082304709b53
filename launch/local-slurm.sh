#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for trying and testing the sbatch scripts.
#
#   launch/local-slurm.sh start    install (Debian slurmctld + slurmd + munge) if needed, write
#                                  /etc/slurm/slurm.conf, start munged, slurmctld and slurmd,
#                                  and wait until the node is idle.  Does nothing when a
#                                  controller already answers.
#   launch/local-slurm.sh stop     stop the daemons this script started, by their pid files
#   launch/local-slurm.sh status   daemons, pids and `sinfo`
#
# Needs root and Debian/Ubuntu (apt-get).  Follows docs in shared/notes/infra.md §7 (measured on
# Debian 12, SLURM 22.05): MpiDefault=none, so job scripts must ask for `srun --mpi=pmi2`
# themselves (ours do).  One deviation: RealMemory is 85 % of this machine's MemTotal instead
# of a fixed 20000 MB, so the node is not rejected on a machine with less memory.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
RUN=/var/run/slurm
MUNGE_PID=/run/munge/munged.pid
CTLD_PID=$RUN/slurmctld.pid
SLURMD_PID=$RUN/slurmd.pid

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

write_conf() {
    local host cpus mem_mb
    host=$(hostname)
    cpus=$(nproc)
    mem_mb=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.85}' /proc/meminfo)
    mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge "$RUN"
    cat > "$CONF.new" <<CONF
ClusterName=local
SlurmctldHost=$host
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmUser=root
SlurmdUser=root
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
    mv "$CONF.new" "$CONF"
}

start() {
    if answering; then
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
    local state=""
    for _ in $(seq 60); do
        state=$(timeout 10 sinfo -h -o %t 2>/dev/null | head -n1 || true)
        case "$state" in idle|mix|alloc) break ;; esac
        sleep 1
    done
    case "$state" in
        idle|mix|alloc) say "up ($(hostname), $(nproc) CPUs)"; sinfo ;;
        *) say "node state '${state:-no answer}' after 60 s; see /var/log/slurm/*.log"; exit 1 ;;
    esac
}

stop() {
    local f
    for f in "$SLURMD_PID" "$CTLD_PID" "$MUNGE_PID"; do
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
    for f in "$MUNGE_PID" "$CTLD_PID" "$SLURMD_PID"; do
        if alive "$f"; then echo "$f: running (pid $(cat "$f"))"; else echo "$f: not running"; fi
    done
    if answering; then sinfo; else echo "sinfo: no controller answers"; return 3; fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
