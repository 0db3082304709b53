"""``tsn-mpi plan``: predict per-rank memory and seconds per loop of ``train`` from the config.

:func:`plan` needs only the config (and, when given a run directory, the init firing rate from
``network.h5``).  Memory is counted per rank for the rank owning the most neurons
(``n = ceil(N/R)``) as the arrays the code allocates, in bytes:

- **P**: fast mode ``ceil(n/32)*32 x L x bytes(p_precision)`` (AoSoA tiles of 32 neurons,
  ``L = n_rls(n_rls+1)/2`` packed or ``n_rls**2`` full).  Small mode: no P, the history
  ``(H + 1) x (N + LX) x 8`` (the window and the running mean row).
- **static connectivity**: ``nnz = n x 2K`` synapses (fixed out-degree 2K, so mean in-degree
  2K), kept once, as the outgoing map the time loop reads: int32 local post (4 B/synapse) and an
  int64 indptr over all N presynaptic ids; a uint8 code per synapse only when a custom plugin's
  weights do not follow the populations (the default's four weights are looked up by type).
- **plastic**: pre int32 + w float32 (n x m), w_ff float32 (n x LX), outgoing map post int32 +
  slot uint8 per synapse + int64 indptr over N+1, and the needed presynaptic ids (int64).
- **targets** ``ntasks x n_learn x n x 4``; **stimulus**: nothing for the default OU (drawn
  online from each neuron's stream), ``ntasks x n_stim x n x 4`` for a plugin's array.
- **neuron state**: about 18 arrays of n float32/float64/uint64 (144 B/neuron) plus the rolling
  average sums (n_groups x n x 8, groups = distinct bin ranges, ~n_learn + 2*wid/learn_every).
- **traces**: r, last step, r_now (N float64/int64) and the pending list (N int32).
- **exchange buffers**: send (cap+1) + receive R x (cap+1) int32, cap = 4 n 20 Hz dt + 16.
- **interpreter, numba, h5py, MPI**: peak RSS of a 256-neuron train (everything above is
  < 3 MB there): 172 MB on one process (cached kernels), 232 MB per rank under MPI (the
  time loop that calls MPI cannot be cached, so it is compiled at start: +60 MB).  On
  another installation this differs (the GPU machine's Python 3.12 image: 255 MB).

Transients: at start-up, before P is allocated, the incoming static lists read from
network.h5 (int32 pre per synapse) and the plastic map being built; while training, P moves
between tiles and files in blocks of at most 1 GiB (checkpoints) and the per-trial
correlation bins (2 x n_learn x n x 8).  Peak = the larger of start-up (persistent - P +
start-up transient) and running (persistent + largest running transient).

Seconds per loop = neuron updates + synaptic events + spike lookups + RLS + per-step
collective (docs/scaling.md has the table):

- ``n_steps x n x c_neuron``: c_neuron = C_NEURON (2.46 ns) while a rank's per-neuron state
  (~60 B/neuron) fits the cache, C_NEURON_MEM (4.46 ns) once it clearly does not, log-linear in
  the working set between CACHE_LO (1 MiB) and CACHE_HI (32 MiB);
- ``n x rate x T x (2K + m) x c_event`` (events received by owned neurons at the init rate,
  5 Hz when unknown), c_event from C_EVENT (2.35 ns) to C_EVENT_MEM (13 ns) by the working set
  of the accumulators and plastic weights (``n x (12 + 4m)`` B);
- both divided by the time loop's threads T (``run.loop_threads``: 'auto' gives the rank's
  threads, but at least 1024 neurons each), which meet C_SYNC (1 us) once per step in one
  process and twice under MPI;
- ``N x rate x T x C_SPIKE`` when R > 1: every rank looks up every spike of the network;
- ``n_learn x n x L / V`` with V = min(threads x 2.2e9, 4.3e9 per node shared by its ranks)
  values of P per second (the fused tiled kernel; float16 storage runs at about the same
  values/s as float32, so it halves memory, not time);
- ``n_steps x (C_STEP + latency + R x (cap+1) x 4 B / bandwidth)``: one allgather of a fixed
  buffer per step; latency LAT_MPI (2 us) within a node, LAT_OVERSUBSCRIBED (20 us) with more
  ranks than cores; across M nodes of k ranks (block placement) the allgather's rounds are
  ``ceil(log2 k)`` within a node (LAT_MPI each) and ``ceil(log2 M)`` between nodes (the
  interconnect's latency each, INTERCONNECTS: ``--interconnect`` / ``run.interconnect``), and
  the node receives ``k x R x (cap+1) x 4`` B at the interconnect's bandwidth; bandwidth
  SHM_GBS in a node.
- A checkpoint (periodic, ``run.checkpoint_every``/``checkpoint_minutes``, and after the last
  loop) writes ``N x (L x bytes + 4 (m + LX) + 12)`` B (P, weights, checksums; small mode the
  history instead of P) at CKPT_GBS; reported apart, with the disk the kept files need.
- More ranks than cores on a node: the time-loop terms times ``(ranks per node / cores)^2``
  (ranks take turns, and MPICH's busy-polling allgather takes the core from the rank it waits
  for); a rough fit to two oversubscribed runs here, never a configuration to use.
- GPUs: ``n_steps x (GPU_STEP_S or GPU_STEP_MULTI_S + n x GPU_NEURON_S)`` and P at GPU_RLS_GBS
  (H100 measurements of benchmarks/gpu.py, 2026-11-26).

Where the constants come from (this project's 2-core AMD EPYC Zen 5 VM, 24 GB, numba 0.68, PyPI
mpich 5.0.2, 2026-11-26, quiet machine).  C_NEURON, C_EVENT and RLS_VALUES_*:
``benchmarks/cpu_loop_split.py`` on the default model (neuron update 2.46 ns per neuron-step,
2.35 ns per synaptic event, RLS 0.175 s with 2 threads and 0.323 s with 1 for 7.0e8 values).
C_NEURON_MEM, C_EVENT_MEM: ``benchmarks/paper_1m.py`` (1M neurons, 2 ranks: 44.6 s of neuron
update, 79.4 s of delivery for 6.1e9 events, RLS 4.6e9 values/s per node in float16).
CKPT_GBS: the 8.55 GB checkpoint of that run (0.70 GB/s).  LAT: infra notes §1.1 (numba-mpi
allgather 1.7 us at R = 2, 17 us oversubscribed).  C_SPIKE and the InfiniBand preset are
estimates, not measured here; the ``ethernet-tcp`` preset is TCP between emulated nodes
(network namespaces on one host, ``benchmarks/internode.py``), see INTERCONNECTS.
``benchmarks/cost_model.py`` compares the model with every measured run (docs/scaling.md).
Memory is deterministic; see benchmarks/results/plan_validation.json and the 1M run for its
accuracy.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Any

MB = 1_000_000
GB = 1_000_000_000

TILE_W = 32                     # neurons per AoSoA tile (tsn_mpi.learn.packed.TILE_W)
IO_BLOCK = 1 << 30              # bytes of P converted per checkpoint write call (io.h5_write)
OVERHEAD_SERIAL = 172 * MB      # peak RSS of a 256-neuron train, one process
OVERHEAD_MPI = 232 * MB         # the same per rank under mpiexec -n 2
OVERHEAD_GPU = 600 * MB         # + CUDA context and numba-cuda on the host (not measured)
STATE_BYTES_PER_NEURON = 144    # ~18 per-neuron arrays of the simulator, learner and cell
RATE_HZ = 5.0                   # firing rate assumed when network.h5 gives none
C_NEURON = 2.46e-9              # s per neuron-step (time loop), state in cache (default model)
C_NEURON_MEM = 4.46e-9          # the same when a rank's state spills to memory (1M model, R=2)
C_EVENT = 2.35e-9               # s per delivered synaptic event, accumulators in cache
C_EVENT_MEM = 13.0e-9           # the same with accumulators/weights in memory (1M model, R=2)
CACHE_LO = 1 << 20              # working set per rank up to which the cache constants hold (L2)
CACHE_HI = 32 << 20             # ... from which the memory constants hold (L3); log-linear between
C_STEP = 0.5e-6                 # s per step and rank (loop overhead)
C_SYNC = 1.0e-6                 # s per meeting of a rank's time-loop threads (1/step, 2 under MPI)
LAT_MPI = 2.0e-6                # s per step: one allgather, ranks <= cores
LAT_OVERSUBSCRIBED = 20.0e-6    # s per step: one allgather, more ranks than cores
RLS_VALUES_THREAD = 2.2e9       # values of P per second per thread (fused tiled kernel)
RLS_VALUES_NODE = 4.3e9         # values of P per second per node (all its ranks and threads)
CKPT_GBS = 0.7                  # GB/s of P written to a checkpoint (1M model, 8.55 GB, R = 2)
GPU_MEM_BYTES = 80 * GB         # default memory of one GPU
GPU_RLS_GBS = 985.0             # GB/s of P, block-per-neuron kernel (H100: 1969 GB/s r+w, 1M, n=90)
GPU_STEP_S = 10.8e-6            # s per step, fused time loop on one GPU (H100, 4096 neurons)
GPU_STEP_MULTI_S = 177e-6       # s per step with two launches + host allgather (H100)
GPU_NEURON_S = 7.45e-11         # s per neuron-step on a GPU ((85.3 - 10.8) us / 1M, H100)
GPU_EVENT_S = 0.0               # GPU deliveries are inside GPU_NEURON_S (K = 512 measured)
C_SPIKE = 10e-9                 # s per spike of the network looked up by each rank (estimate)
SHM_GBS = 10.0                  # GB/s of an allgather inside one node (shared memory)
NET_GBS = 12.0                  # GB/s per node of a cluster interconnect (100 Gb/s class)
LAT_NET_DOUBLING = 2.0e-6       # s per inter-node round of the allgather (InfiniBand class)

# The network between nodes: (s per inter-node round of the allgather, GB/s into a node), by
# name (config key run.interconnect, `tsn-mpi plan --interconnect`; "LAT_US[,GBS]" for others).
INTERCONNECTS: dict[str, tuple[float, float]] = {
    # what ranks of one node see: shared memory (LAT_MPI, SHM_GBS); as if all nodes were one
    "shm": (LAT_MPI, SHM_GBS),
    # HDR/EDR InfiniBand, RDMA: ~1-2 us per message, 100 Gb/s (an estimate, not measured here)
    "infiniband": (LAT_NET_DOUBLING, NET_GBS),
    # kernel TCP between nodes: between 2 emulated nodes (network namespaces of one host: the
    # software path only, no NIC, wire or switch) a bare 2-rank allgather of 33 ids takes
    # 5.4 us and the default loop's exchange 9.7 us per step (waiting for the slower rank
    # included); with 15 us per round plan gives the 2-node default loop within 2 % (0.600
    # vs 0.589 s; fitted to that run, so in-sample).  benchmarks/internode.py, quiet Intel
    # host.  A real 10-25 GbE link adds ~5-20 us (pass a cluster's measured "LAT_US,GBS").
    "ethernet-tcp": (15.0e-6, 1.25),
}

P_BYTES = {"float64": 8, "float32": 4, "float16": 2, "int32": 4, "int16": 2}
P_NAME = "P (RLS matrices, AoSoA tiles)"
PHASES = ("train", "init", "test")


def neuron_work(d, in_degree, rate_hz: float = RATE_HZ):
    """Seconds of one training loop that each neuron costs its rank, by the cost model above:
    its time-loop updates, the synaptic events it receives (static in-degree x rate x trial)
    and its RLS updates (single-thread rates, cache regime).  The work-balanced partition
    (``phases.common.balance_by_work``) splits this evenly; only ratios matter there."""
    trial_s = d.train_time / 1000.0
    return (d.n_steps * C_NEURON + in_degree * rate_hz * trial_s * C_EVENT
            + d.n_learn * d.n_packed / RLS_VALUES_THREAD)


def _node_mem_bytes() -> int:
    """MemTotal of this machine (/proc/meminfo), in bytes."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def on_gpu(cfg) -> bool:
    """Whether ``cfg`` trains on GPUs (the plan counts device memory apart)."""
    return cfg.run.backend == "gpu"


def _n_groups(cfg, d) -> int:
    from tsn_mpi.simulate.rolling import sample_groups

    return int(sample_groups(cfg, d)[1].shape[0])


def _loop_threads(cfg, n: int, threads: int) -> int:
    """Threads of a rank's time loop: ``run.loop_threads`` ('auto' as the CPU backend chooses
    it on idle cores: ``backends.cpu.threads``), at most the rank's ``threads``."""
    from tsn_mpi.backends.cpu.threads import loop_threads

    setting = getattr(cfg.run, "loop_threads", "auto")
    return loop_threads(setting if setting == "auto" else min(int(setting), threads), n, threads)


def _spill(working_set: float, c: dict) -> float:
    """0 while ``working_set`` bytes fit the cache, 1 once they clearly do not (log-linear)."""
    lo, hi = math.log(c["CACHE_LO"]), math.log(c["CACHE_HI"])
    return min(1.0, max(0.0, (math.log(max(working_set, 1.0)) - lo) / (hi - lo)))


def _default_static(cfg) -> bool:
    return cfg.network.static_plugin == "tsn_mpi.network.static:erdos_renyi"


def _default_stimulus(cfg) -> bool:
    return cfg.stimulus.plugin == "tsn_mpi.network.stimulus:ornstein_uhlenbeck"


def plan(cfg, ranks: int, gpu: bool = False, node_mem_bytes: int | None = None,
         ranks_per_node: int | None = None, cores_per_node: int | None = None,
         rate_hz: float | None = None, gpu_mem_bytes: int | None = None,
         constants: dict[str, float] | None = None, phase: str = "train",
         interconnect: str | None = None) -> dict[str, Any]:
    """Predict per-rank memory (bytes, by component) and seconds per training loop.

    ``cfg``: a validated Config.  ``ranks``: MPI ranks in total; ``ranks_per_node`` (default
    all of them) share a node of ``node_mem_bytes`` (default this machine's MemTotal) and
    ``cores_per_node`` cores (default this machine's).  ``gpu``: one GPU per rank.
    ``rate_hz``: mean firing rate (default 5 Hz; :func:`plan_main` reads init's from
    network.h5).  ``gpu_mem_bytes``: memory of one GPU (default 80 GB).  ``constants``:
    overrides of this module's cost constants by name (e.g. a cluster's ``NET_GBS``).
    ``interconnect``: the network between nodes, a name of INTERCONNECTS or "LAT_US[,GBS]"
    (default: the config's ``run.interconnect``).
    ``phase``: whose memory peak: "train" (default), "init" (adds the connectivity build,
    12-13 B per synapse while the received pairs and the incoming lists coexist; the init
    trial's time loop is freed before P exists) or "test" (no P is read).
    Returns a dict: ``components`` and ``transients`` (name -> bytes per rank),
    ``peak_bytes`` per rank, ``node_bytes``, ``fits``, ``time`` (name -> s per loop),
    ``seconds_per_loop``, ``checkpoint_s`` and the sizes used.
    """
    from tsn_mpi.config import derive

    if ranks < 1:
        raise ValueError("ranks must be >= 1")
    if phase not in PHASES:
        raise ValueError(f"phase {phase!r}: expected one of {PHASES}")
    d = derive(cfg)
    lr = cfg.learning
    N = d.n_cells
    from tsn_mpi.partition import partition

    n = int(partition(N, ranks).counts().max())  # the largest owned range
    rpn = min(ranks_per_node or ranks, ranks)
    cores = cores_per_node or os.cpu_count() or 1
    node_mem = int(node_mem_bytes or _node_mem_bytes())
    rate = RATE_HZ if rate_hz is None else float(rate_hz)
    m, lx, nr = d.n_plastic, d.l_ff, d.n_rls
    length = d.n_packed if lr.p_storage == "packed" else nr * nr
    pb = P_BYTES[lr.p_precision]
    fast = lr.mode == "fast"
    nnz = n * 2 * d.k
    n_stim = max(d.n_stim_steps, 1)

    by_pop = _default_static(cfg)  # weights by population: no per-synapse code
    syn_b = 4 if by_pop else 5
    slot_b = 1 if m <= 256 else (2 if m <= 65536 else 4)
    comp: dict[str, int] = {}
    if fast:
        comp[P_NAME] = -(-n // TILE_W) * TILE_W * length * pb
    else:
        rows = d.history + (1 if getattr(lr, "history_mean", False) else 0)  # + the mean row
        comp["small-mode trace history"] = rows * (N + lx) * 8
    comp["static connectivity (outgoing map)"] = nnz * syn_b + (N + 1) * 8
    comp["plastic connectivity"] = (n * m * (4 + 4) + n * lx * 4 + n * m * (4 + slot_b)
                                    + (N + 1) * 8 + min(N, n * m) * 8)
    comp["targets"] = d.ntasks * d.n_learn * n * 4
    comp["stimulus"] = 0 if _default_stimulus(cfg) else d.ntasks * n_stim * n * 4
    comp["neuron state"] = n * STATE_BYTES_PER_NEURON + _n_groups(cfg, d) * n * 8
    comp["traces"] = N * (8 + 8 + 8 + 4)
    from tsn_mpi.simulate.trial import exchange_capacity

    cap = max(n, 1) if ranks == 1 else exchange_capacity(n, cfg.simulation.dt)
    comp["exchange buffers"] = (cap + 1) * 4 * (1 + ranks) + max(n, 1) * 4
    overhead = OVERHEAD_SERIAL if ranks == 1 else OVERHEAD_MPI
    if gpu:
        overhead += OVERHEAD_GPU
    comp["interpreter, numba, h5py, MPI"] = overhead

    if phase == "test":  # test restores weights and state only: no P, no history
        comp.pop(P_NAME, None)
        comp.pop("small-mode trace history", None)

    # transients: the simulator is built (and the incoming lists dropped) before P exists;
    # P moves between tiles and files in blocks of at most ~1 GiB
    persistent = sum(comp.values())
    startup_name = "start-up, before P exists (incoming lists)"
    trans = {startup_name: nnz * syn_b + (n + 1) * 8 + n * m * (8 + 8)}
    base = {startup_name: persistent - comp.get(P_NAME, 0)}  # what exists beside it
    blocks = min(n * length * pb, IO_BLOCK) if fast else 0
    if phase == "init":
        # received (pre, post) int32 pairs and the incoming lists built from them
        build = "connectivity build (received pairs + incoming lists)"
        trans[build] = nnz * (8 + syn_b) + (n + 1) * 8
        base[build] = comp["interpreter, numba, h5py, MPI"]
        trans["checkpoint and P conversion blocks"] = blocks
        base["checkpoint and P conversion blocks"] = (  # the init trial's loop is freed
            persistent - comp["static connectivity (outgoing map)"] - comp["exchange buffers"])
    elif phase == "train":
        trans["checkpoint and P conversion blocks"] = blocks
        trans["correlation bins"] = d.n_learn * n * 8  # the averaged bins (float64)
        base["checkpoint and P conversion blocks"] = base["correlation bins"] = persistent
    peaks = {k: base[k] + v for k, v in trans.items()}
    transient_name = max(peaks, key=lambda k: peaks[k])
    peak = peaks[transient_name]

    device = 0
    gpu_mem = int(gpu_mem_bytes or GPU_MEM_BYTES)
    if gpu:
        on_device = [k for k in comp if k != "interpreter, numba, h5py, MPI"]
        device = sum(comp[k] for k in on_device) + trans.get("correlation bins", 0)
        host_peak = (comp["interpreter, numba, h5py, MPI"] + comp["traces"]
                     + max(trans.get("checkpoint and P conversion blocks", 0),
                           nnz * syn_b * 2 + (N + n) * 8))
        peak = host_peak
    node_bytes = peak * rpn

    threads = max(1, cores // rpn)
    # the time loop's threads (run.loop_threads; 'auto': >= MIN_NEURONS_PER_THREAD neurons each)
    loop_t = 1 if gpu else _loop_threads(cfg, n, threads)
    c = {k: v for k, v in globals().items() if k.isupper()} | dict(constants or {})
    nodes = -(-ranks // rpn)
    t_trial = d.train_time / 1000.0
    t: dict[str, float] = {}
    if gpu:
        # fused kernel per chunk on one GPU; two launches + a host allgather per step on several
        step = c["GPU_STEP_S"] if ranks == 1 else c["GPU_STEP_MULTI_S"]
        t["neuron updates"] = d.n_steps * (step + n * c["GPU_NEURON_S"])
        t["synaptic events"] = n * rate * t_trial * (2 * d.k + m) * c["GPU_EVENT_S"]
    else:
        # per-neuron state (~60 B) and the accumulators + plastic weights that deliveries hit
        f_state = _spill(n * 60, c)
        f_acc = _spill(n * (12 + 4 * m), c)
        c_neuron = c["C_NEURON"] + f_state * (c["C_NEURON_MEM"] - c["C_NEURON"])
        c_event = c["C_EVENT"] + f_acc * (c["C_EVENT_MEM"] - c["C_EVENT"])
        # split over the loop's threads (each owns a range of neurons and of targets)
        t["neuron updates"] = d.n_steps * n * c_neuron / loop_t
        t["synaptic events"] = n * rate * t_trial * (2 * d.k + m) * c_event / loop_t
    # every rank looks up every spike of the network in its outgoing maps: O(N) per rank
    t["spike lookups (all N)"] = N * rate * t_trial * c["C_SPIKE"] if ranks > 1 else 0.0
    if not gpu and rpn > cores:
        # oversubscribed: ranks take turns on the cores, and a rank waiting in the allgather
        # busy-polls (MPICH), taking the core from the rank it waits for: ~(rpn/cores)^2
        over = (rpn / cores) ** 2
        for k in ("neuron updates", "synaptic events", "spike lookups (all N)"):
            t[k] *= over
    p_bytes_loop = d.n_learn * n * length * pb if fast else d.n_learn * n * (nr * nr) * 8
    if gpu:
        t["RLS"] = p_bytes_loop / (c["GPU_RLS_GBS"] * GB)
    else:
        values_s = min(threads * c["RLS_VALUES_THREAD"], c["RLS_VALUES_NODE"] / rpn)
        t["RLS"] = p_bytes_loop / (pb if fast else 8) / values_s
    # one allgather per step of a fixed buffer of cap+1 ids from every rank
    recv_bytes = ranks * (cap + 1) * 4
    if ranks == 1:
        lat, vol_gbs = 0.0, c["SHM_GBS"]
    elif nodes == 1:
        lat = c["LAT_MPI"] if rpn <= cores else c["LAT_OVERSUBSCRIBED"]
        vol_gbs = c["SHM_GBS"]
    else:
        # rounds within a node, then between nodes (recursive doubling, block placement); the
        # node's ranks all receive R x (cap+1) ids through the node's link
        net_lat, net_gbs = interconnect_params(
            interconnect if interconnect is not None else _config_interconnect(cfg), c)
        intra = c["LAT_MPI"] if rpn <= cores else c["LAT_OVERSUBSCRIBED"]
        lat = (intra * math.ceil(math.log2(rpn)) if rpn > 1 else 0.0) + net_lat * math.ceil(
            math.log2(nodes))
        recv_bytes *= rpn
        vol_gbs = net_gbs
    # the loop's threads meet once per step in one process, twice under MPI
    meet = 0.0 if loop_t == 1 else c["C_SYNC"] * (1 if ranks == 1 else 2)
    t["per-step overhead and allgather"] = d.n_steps * (
        (0.0 if gpu else c["C_STEP"]) + meet + lat
        + (recv_bytes / (vol_gbs * GB) if ranks > 1 else 0))
    # one checkpoint file: P (or the small-mode history), plastic weights, 4-byte checksums
    hist_rows = d.history + (1 if getattr(lr, "history_mean", False) else 0)
    ckpt_bytes = N * ((length * pb if fast else 0) + (m + lx) * 4 + 12) + (
        0 if fast else hist_rows * (N + lx) * 8)
    ckpt = ckpt_bytes / (c["CKPT_GBS"] * GB)

    return {
        "phase": phase, "ranks": ranks, "ranks_per_node": rpn, "threads_per_rank": threads,
        "loop_threads": loop_t,
        "gpu": gpu,
        "n_cells": N, "n_owned": n, "k": d.k, "n_plastic": m, "n_rls": nr, "p_length": length,
        "static_synapses_per_rank": nnz, "rate_hz": rate,
        "components": comp, "transients": trans, "peak_transient": transient_name,
        "persistent_bytes": persistent, "peak_bytes": peak, "device_bytes": device,
        "node_bytes": node_bytes, "node_mem_bytes": node_mem,
        "gpu_mem_bytes": gpu_mem if gpu else 0,
        "fits": node_bytes <= node_mem and (not gpu or device <= gpu_mem),
        "time": t, "seconds_per_loop": sum(t.values()), "checkpoint_s": ckpt,
        "checkpoint_bytes": ckpt_bytes, "checkpoint_every": cfg.run.checkpoint_every,
        "checkpoint_minutes": cfg.run.checkpoint_minutes,
        "checkpoint_keep": cfg.run.checkpoint_keep,
        "nodes": nodes, "interconnect": None if nodes == 1 else (
            interconnect if interconnect is not None else _config_interconnect(cfg)),
    }


def interconnect_params(spec: str, constants: dict | None = None) -> tuple[float, float]:
    """(seconds per inter-node round, GB/s into a node) of a name in INTERCONNECTS or of
    "LAT_US" / "LAT_US,GBS" (bandwidth default: the InfiniBand preset's).  ``constants``
    (plan's, with overrides) supply the presets that are cost constants: "shm" (LAT_MPI,
    SHM_GBS) and "infiniband" (LAT_NET_DOUBLING, NET_GBS)."""
    spec = str(spec).strip()
    c = constants or {}
    if spec == "shm":
        return c.get("LAT_MPI", LAT_MPI), c.get("SHM_GBS", SHM_GBS)
    if spec == "infiniband":
        return c.get("LAT_NET_DOUBLING", LAT_NET_DOUBLING), c.get("NET_GBS", NET_GBS)
    if spec in INTERCONNECTS:
        return INTERCONNECTS[spec]
    try:
        parts = [float(x) for x in spec.split(",")]
    except ValueError:
        parts = []
    if len(parts) in (1, 2) and all(0 < x < float("inf") for x in parts):
        return parts[0] * 1e-6, (parts[1] if len(parts) == 2 else NET_GBS)
    raise ValueError(f"interconnect {spec!r}: expected one of {', '.join(INTERCONNECTS)} or "
                     "'LAT_US[,GBS]' (e.g. '25' or '25,1.25')")


def _config_interconnect(cfg) -> str:
    try:
        return str(cfg.run.interconnect)
    except AttributeError:  # a config object from before the key existed
        return "infiniband"


def _human(b: float) -> str:
    for unit, size in (("GB", GB), ("MB", MB), ("kB", 1000)):
        if abs(b) >= size:
            return f"{b / size:.2f} {unit}"
    return f"{int(b)} B"


def format_plan(p: dict[str, Any]) -> str:
    """The plan as a readable table."""
    w = max(len(k) for k in [*p["components"], *p["transients"]]) + 16
    lines = [
        f"N = {p['n_cells']}, {p['ranks']} rank(s) ({p['ranks_per_node']} per node, "
        f"{p['threads_per_rank']} thread(s) each, {p.get('loop_threads', 1)} in the time loop): "
        f"up to {p['n_owned']} neurons per rank, "
        f"K = {p['k']}, m = {p['n_plastic']}, RLS n = {p['n_rls']} "
        f"({p['p_length']} values of P per neuron)",
        "",
        f"{'memory per rank':<{w}}{'bytes':>14}{'':>3}",
    ]
    if p.get("interconnect"):
        lat, gbs = interconnect_params(p["interconnect"])
        lines.insert(1, f"{p['nodes']} nodes, interconnect {p['interconnect']} "
                        f"({lat * 1e6:g} us per message, {gbs:g} GB/s into a node)")
    for k, v in p["components"].items():
        lines.append(f"  {k:<{w - 2}}{v:>14,d}  {_human(v):>10}")
    k = p["peak_transient"]
    v = p["transients"][k]
    lines.append(f"  {'+ ' + k + ' (transient)':<{w - 2}}{v:>14,d}  {_human(v):>10}")
    if p["gpu"]:
        lines.append(f"  {'GPU memory per rank':<{w - 2}}{p['device_bytes']:>14,d}  "
                     f"{_human(p['device_bytes']):>10}  of {_human(p['gpu_mem_bytes'])}")
        lines.append(f"  {'host peak per rank':<{w - 2}}{p['peak_bytes']:>14,d}  "
                     f"{_human(p['peak_bytes']):>10}")
    else:
        lines.append(f"  {'peak per rank':<{w - 2}}{p['peak_bytes']:>14,d}  "
                     f"{_human(p['peak_bytes']):>10}")
    verdict = "fits" if p["fits"] else "does NOT fit"
    lines.append(
        f"  {'peak per node':<{w - 2}}{p['node_bytes']:>14,d}  {_human(p['node_bytes']):>10}"
        f"  {verdict} in {_human(p['node_mem_bytes'])}")
    lines += ["", f"{'time per loop (predicted)':<{w}}{'s':>14}"]
    for k, v in p["time"].items():
        lines.append(f"  {k:<{w - 2}}{v:>14.3f}")
    lines.append(f"  {'total':<{w - 2}}{p['seconds_per_loop']:>14.3f}"
                 f"   (+ {p['checkpoint_s']:.1f} s per checkpoint; "
                 f"{p['rate_hz']:.2f} Hz assumed)")
    lines += ["", _checkpoint_line(p)]
    return "\n".join(lines)


def _checkpoint_line(p: dict[str, Any]) -> str:
    """Size and write time of a checkpoint, when they are written, the disk the kept ones take."""
    b, when = p["checkpoint_bytes"], []
    if p["checkpoint_every"]:
        when.append(f"every {p['checkpoint_every']} loops")
    if p["checkpoint_minutes"]:
        when.append(f"every {p['checkpoint_minutes']:g} min")
    keep = p["checkpoint_keep"]
    disk = (f"up to {keep + 2} files ({_human((keep + 2) * b)}: the newest {keep}, ckpt-0 and "
            "the one being written; + the best)" if keep else "all kept")
    return (f"checkpoint: {_human(b)} per file, ~{p['checkpoint_s']:.1f} s to write; "
            f"{' and '.join(when + ['after the last loop'])}; disk: {disk}")


def _rate_from_network(run_dir: Path) -> float | None:
    """Mean init firing rate (E and I populations averaged) from run_dir/network.h5."""
    path = run_dir / "network.h5"
    if not path.is_file():
        return None
    try:
        import h5py

        with h5py.File(path, "r") as f:
            return 0.5 * (float(f.attrs["rate_e_hz"]) + float(f.attrs["rate_i_hz"]))
    except Exception:  # noqa: BLE001 - any unreadable file: fall back to the default rate
        return None


def plan_main(argv: list[str] | None = None) -> int:
    """``tsn-mpi plan DIR|CONFIG --ranks R [--gpu] [--node-mem GB] ...``; returns an exit code
    (0, or 2 for bad input with one line on stderr)."""
    from tsn_mpi.config import load_config
    from tsn_mpi.errors import TsnError

    p = argparse.ArgumentParser(
        prog="tsn-mpi plan",
        description="Predict memory per rank and seconds per training loop from a config.",
    )
    p.add_argument("target", type=Path, metavar="DIR|CONFIG",
                   help="run directory (with config.toml) or a config file")
    p.add_argument("--ranks", type=int, required=True, help="MPI ranks in total")
    p.add_argument("--ranks-per-node", type=int, help="ranks sharing a node (default: all)")
    p.add_argument("--cores", type=int, help="cores per node (default: this machine's)")
    p.add_argument("--gpu", action="store_true", help="one GPU per rank (run.backend = 'gpu')")
    p.add_argument("--node-mem", type=float, metavar="GB",
                   help="memory per node in GB (default: this machine's MemTotal)")
    p.add_argument("--gpu-mem", type=float, metavar="GB",
                   help="memory of one GPU in GB (default 80)")
    p.add_argument("--rate", type=float, metavar="HZ",
                   help="firing rate (default: init's from network.h5, else 5 Hz)")
    p.add_argument("--interconnect", metavar="NAME|LAT_US[,GBS]",
                   help="network between nodes: " + ", ".join(
                       f"{k} ({v[0] * 1e6:g} us, {v[1]:g} GB/s)" for k, v in INTERCONNECTS.items())
                   + ", or a latency in us per message and optionally GB/s into a node "
                   "(default: the config's run.interconnect)")
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        for name in ("ranks", "ranks_per_node", "cores"):
            val = getattr(args, name)
            if val is not None and val < 1:
                raise ValueError(f"--{name.replace('_', '-')} = {val}: must be at least 1")
        for name in ("node_mem", "gpu_mem"):
            val = getattr(args, name)
            if val is not None and val <= 0:
                raise ValueError(f"--{name.replace('_', '-')} = {val}: must be positive")
        if args.interconnect is not None:
            try:
                interconnect_params(args.interconnect)
            except ValueError as exc:
                raise ValueError(f"--{exc}") from None
        path = args.target / "config.toml" if args.target.is_dir() else args.target
        cfg = load_config(path)
        rate = args.rate
        if rate is None and args.target.is_dir():
            rate = _rate_from_network(args.target)
        result = plan(cfg, args.ranks, gpu=args.gpu,
                      node_mem_bytes=int(args.node_mem * GB) if args.node_mem else None,
                      ranks_per_node=args.ranks_per_node, cores_per_node=args.cores,
                      rate_hz=rate,
                      gpu_mem_bytes=int(args.gpu_mem * GB) if args.gpu_mem else None,
                      interconnect=args.interconnect)
    except (TsnError, ValueError) as exc:
        print(f"tsn-mpi: error: {exc}", file=sys.stderr)
        return 2
    print(format_plan(result))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(plan_main())
