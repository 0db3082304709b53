#!/usr/bin/env bash
# One-shot check of the GPU backend on a machine with an NVIDIA GPU (no internet needed):
#
#   OUT=/some/dir bash benchmarks/gpu_device_check.sh
#
# Needs python3 with numpy, numba and numba-cuda installed (h5py and matplotlib for the CLI part,
# pytest for the tests).  In priority order, each part with its own time limit, everything
# written under $OUT as it goes (a run cut short still leaves the finished parts):
#   env.txt          GPU, versions, which optional modules import
#   gpu_bench.*      benchmarks/gpu.py: copy bandwidth, RLS kernel GB/s (block / warp /
#                    streamed kernels, the block kernel's unroll, float32 / float16 / int16 /
#                    float64), s/loop default + 1M model with the fastest kernel, rates
#   pytest_gpu.log   tests/backends/gpu/test_gpu_vs_cpu.py on the device (CPU vs GPU, no simulator)
#   ncu_rls_*.log    Nsight Compute sections of the block and warp RLS kernels (if ncu is there)
#   cli_*.log        tsn-mpi new / init / train --gpu (3 loops) on the default model, float32
#                    and int16 P, rates per loop
#   summary.txt      exit code and seconds of every part
set -u
OUT=${OUT:-/tmp/tsn_gpu_check}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
export NUMBA_NUM_THREADS=${NUMBA_NUM_THREADS:-8}

part() {  # part NAME LIMIT_S CMD...: run CMD with a time limit, log to $OUT/NAME.log
  local name=$1 limit=$2 t0=$SECONDS rc
  shift 2
  echo "== $name (limit ${limit}s) $(date +%T)" >> "$OUT/summary.txt"
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  echo "   $name: rc=$rc, $((SECONDS - t0)) s" >> "$OUT/summary.txt"
  tail -n 40 "$OUT/$name.log"
  return $rc
}

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  $PY -c "import sys, numpy, numba; print(sys.version.split()[0], 'numpy', numpy.__version__, 'numba', numba.__version__)"
  for m in numba_cuda cupy h5py matplotlib pytest mpi4py; do
    $PY -c "import $m; print('$m', getattr($m, '__version__', '?'))" 2>/dev/null || echo "$m: missing"
  done
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
# the package itself: an editable install if pip can (no dependencies), PYTHONPATH otherwise
$PY -m pip install -q --no-deps --no-build-isolation -e . > "$OUT/pip.log" 2>&1 || true

part gpu_bench "${BENCH_S:-330}" $PY benchmarks/gpu.py --loops 2 --out "$OUT/gpu_bench.json"

if $PY -c "import pytest" 2>/dev/null; then
  part pytest_gpu "${TEST_S:-240}" $PY -m pytest -q -x -p no:cacheprovider tests/backends/gpu/test_gpu_vs_cpu.py
fi

NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -n 1)
if [ -n "$NCU" ]; then  # profile of the RLS kernels (block, warp) on 100k neurons, n = 90
  for kind in block warp; do
    part "ncu_rls_$kind" "${NCU_S:-90}" "$NCU" -k regex:^kernel -c 1 \
      --section SpeedOfLight --section Occupancy --section LaunchStats --section MemoryWorkloadAnalysis \
      $PY -c "import sys; sys.path.insert(0, 'benchmarks'); import gpu; print(gpu.rls_bandwidth(100_000, 45, 1, 'float32', '$kind'))"
  done
fi

if $PY -c "import h5py, matplotlib" 2>/dev/null; then
  RUNS=$(mktemp -d)
  for prec in float32 int16; do
    R="$RUNS/$prec"
    $PY -m tsn_mpi new "$R" > /dev/null 2>&1
    sed -i "s/^p_precision = .*/p_precision = \"$prec\"/" "$R/config.toml"
    part "cli_init_$prec" "${CLI_S:-150}" $PY -m tsn_mpi init "$R"
    part "cli_train_$prec" "${CLI_S:-150}" $PY -m tsn_mpi train "$R" --gpu --nloops 3
  done
else
  echo "   cli: skipped (h5py or matplotlib missing)" >> "$OUT/summary.txt"
fi
cat "$OUT/summary.txt"
