#!/usr/bin/env bash
# Run one tsn-mpi phase on this workstation with several MPI ranks.
#
#   launch/mpirun.sh [-n RANKS] PHASE DIR [ARGS...]
#   launch/mpirun.sh -n 2 train runs/a --total-loops 100
#
# RANKS defaults to $TSN_RANKS, else the number of cores.  The python is the first of
# $TSN_PYTHON, the python next to `tsn-mpi` on PATH, this repository's .venv, python3 on PATH
# that can import tsn_mpi; the launcher is $MPIEXEC, else the mpiexec next to that python (the
# MPI that mpi4py was installed with), else mpiexec on PATH.  Each rank gets
# NUMBA_NUM_THREADS = cores / RANKS (at least 1) and OMP_NUM_THREADS=1.  Open MPI also gets
# --oversubscribe (and --allow-run-as-root as root); MPICH needs neither.
# The exit status is tsn-mpi's: 0 ok, 2 bad input, 3 divergence, 75 interrupted (checkpoint
# written; rerun the same command to resume), 1 internal error.
set -euo pipefail

usage() {
    echo "usage: $0 [-n RANKS] PHASE DIR [ARGS...]" >&2
    exit 2
}

cores=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)
ranks=${TSN_RANKS:-$cores}
while [ $# -gt 0 ]; do
    case "$1" in
        -n|--ranks|-np) [ $# -ge 2 ] || usage; ranks=$2; shift 2 ;;
        -n*) ranks=${1#-n}; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        --) shift; break ;;
        -*) echo "$0: unknown option $1" >&2; usage ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || usage
case "$ranks" in ''|*[!0-9]*|0) echo "$0: RANKS must be a positive integer, got '$ranks'" >&2; exit 2 ;; esac

has_tsn() { [ -x "$1" ] && "$1" -c 'import tsn_mpi' >/dev/null 2>&1; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
py=""
candidates=("${TSN_PYTHON:-}")
if tsn=$(command -v tsn-mpi 2>/dev/null); then candidates+=("$(dirname "$tsn")/python"); fi
candidates+=("$here/../.venv/bin/python" "$(command -v python3 2>/dev/null || true)")
for c in "${candidates[@]}"; do
    if [ -n "$c" ] && has_tsn "$c"; then py=$c; break; fi
done
[ -n "$py" ] || { echo "$0: no python that can import tsn_mpi (set TSN_PYTHON)" >&2; exit 2; }

mpiexec=${MPIEXEC:-}
if [ -z "$mpiexec" ]; then
    if [ -x "$(dirname "$py")/mpiexec" ]; then
        mpiexec=$(dirname "$py")/mpiexec
    else
        mpiexec=$(command -v mpiexec 2>/dev/null || true)
    fi
fi
[ -n "$mpiexec" ] || { echo "$0: no mpiexec found (pip install mpich, or set MPIEXEC)" >&2; exit 2; }

flags=()
if "$mpiexec" --version 2>&1 | grep -qiE 'open ?mpi|open-rte|prte'; then
    flags+=(--oversubscribe)
    [ "$(id -u)" != 0 ] || flags+=(--allow-run-as-root)
fi

threads=$((cores / ranks))
[ "$threads" -ge 1 ] || threads=1
export NUMBA_NUM_THREADS=$threads OMP_NUM_THREADS=1

set +e
"$mpiexec" "${flags[@]}" -n "$ranks" "$py" -m tsn_mpi "$@"
rc=$?
exit "$rc"
