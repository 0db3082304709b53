"""The memory gate: a phase checks its plan against the node before it allocates anything.

``init``, ``train`` and ``test`` evaluate :func:`tsn_mpi.plan.plan` for the launch they are
(ranks in all, ranks on this node, GPU or not) against what this node can still give
(:func:`tsn_mpi.sysmem.available_bytes`: MemAvailable or the cgroup headroom, plus what the
job's ranks already hold) and, on the GPU, the device's free memory.  A launch that does not
fit stops in seconds with one line: what is needed, what is available, and the cheapest change
that fits (float16 P, small mode, more nodes), unless ``force``.  ``init`` also checks the
training of the model it builds: a model that cannot train on this launch is stopped before
the minutes of init are spent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tsn_mpi.comm.agree import AgreedError
from tsn_mpi.errors import TsnError
from tsn_mpi.plan import GB, P_NAME, plan

MAX_NODES = 1 << 16  # the search for "more nodes" stops here
#: caps the memory the job may use on each node, in GB (a share of a node, or tests)
LIMIT_ENV = "TSN_MPI_MEM_LIMIT_GB"


class MemoryPlanError(TsnError):
    """The launch needs more memory than the node (or GPU) has available."""


@dataclass(frozen=True)
class Launch:
    """What a phase runs on: ``ranks`` in all, ``ranks_per_node`` of them on this node, which
    can still give ``node_avail`` bytes (and ``gpu_avail`` bytes on each rank's GPU, shared
    by ``ranks_per_gpu`` ranks; None: not checked)."""

    ranks: int
    ranks_per_node: int
    node_avail: int
    avail_source: str = "MemAvailable"
    gpu: bool = False
    gpu_avail: int | None = None
    ranks_per_gpu: int = 1
    cores: int | None = None


def _gb(b: float) -> str:
    return f"{b / GB:.1f} GB" if b >= GB else f"{b / 1e6:.0f} MB"


def _plans(cfg, launch: Launch, phase: str, ranks: int | None = None) -> list[dict]:
    """The plans that must fit: the phase's own, and for init the training that follows."""
    r = launch.ranks if ranks is None else ranks
    rpn = min(launch.ranks_per_node, r)
    gpu_mem = (
        launch.gpu_avail // max(launch.ranks_per_gpu, 1)
        if launch.gpu_avail is not None
        else 1 << 62
    )
    kw = {
        "ranks_per_node": rpn,
        "node_mem_bytes": max(launch.node_avail, 1),
        "cores_per_node": launch.cores,
        "gpu_mem_bytes": max(gpu_mem, 1),
    }
    if phase == "init":  # init runs on the CPU; then train runs on the configured backend
        return [
            plan(cfg, r, gpu=False, phase="init", **kw),
            plan(cfg, r, gpu=launch.gpu, phase="train", **kw),
        ]
    return [plan(cfg, r, gpu=launch.gpu, phase=phase, **kw)]


def _fits(plans: list[dict]) -> bool:
    return all(p["fits"] for p in plans)


def _more_nodes(cfg, launch: Launch, phase: str) -> int | None:
    """The fewest nodes of ``ranks_per_node`` ranks on which the phase fits, None if even
    MAX_NODES do not (each node holds a smaller share; the O(N) parts do not shrink)."""
    rpn = launch.ranks_per_node
    most = min(MAX_NODES, cfg.network.n_cells // rpn)  # at least one neuron per rank

    def fits(k: int) -> bool:
        return _fits(_plans(cfg, launch, phase, ranks=k * rpn))

    if most < 2 or not fits(most):
        return None
    hi = 2
    while not fits(hi):
        hi = min(2 * hi, most)
    lo = hi // 2  # lo does not fit (lo = 1 is the launch itself)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fits(mid) else (mid, hi)
    return hi


def _changes(cfg, phase: str) -> list[tuple[str, dict]]:
    """Config changes that lower the memory, cheapest first."""
    lr = cfg.learning
    out: list[tuple[str, dict]] = []
    if lr.mode == "fast":
        order = ["float64", "float32", "float16"]
        if lr.p_precision in order[:-1]:
            for prec in order[order.index(lr.p_precision) + 1 :]:
                out.append((f'learning.p_precision = "{prec}"', {"learning__p_precision": prec}))
        out.append(('learning.mode = "small"', {"learning__mode": "small"}))
    return out


def _need(plans: list[dict]) -> str:
    """What ``plans`` need, in words: per node, and per rank on the GPU when there is one."""
    text = f"{_gb(max(p['node_bytes'] for p in plans))} per node"
    dev = max(p["device_bytes"] for p in plans)
    return f"{_gb(dev)} per rank on the GPU, {text}" if dev else text


def cheapest_fix(cfg, launch: Launch, phase: str, config_path: str = "config.toml") -> str:
    """The cheapest change that makes ``phase`` fit, as words: a config key, more nodes, or
    a config key on more nodes."""
    reinit = " (then init again)" if phase != "init" else ""
    changed = []
    for text, change in _changes(cfg, phase):
        c = cfg.replace(**change)
        plans = _plans(c, launch, phase)
        if _fits(plans):
            return f"{text} in {config_path}{reinit} ({_need(plans)})"
        changed.append((text, c))
    rpn = launch.ranks_per_node
    k = _more_nodes(cfg, launch, phase)
    if k is not None:
        return f"{k} nodes with {rpn} rank(s) each ({k * rpn} ranks)"
    for text, c in changed:
        k = _more_nodes(c, launch, phase)
        if k is not None:
            return f"{text} in {config_path}{reinit} on {k} nodes with {rpn} rank(s) each"
    return (
        "none found (what every rank holds whatever its share does not fit: the "
        "interpreter and the O(N) arrays)"
    )


def check_fit(cfg, launch: Launch, phase: str, config_path: str = "config.toml") -> str | None:
    """None when ``phase`` fits ``launch``, else the one-line reason with the cheapest fix."""
    plans = _plans(cfg, launch, phase)
    if _fits(plans):
        return None
    worst = max(plans, key=lambda p: p["node_bytes"] / max(p["node_mem_bytes"], 1))
    host_short = not worst["node_bytes"] <= worst["node_mem_bytes"]
    what = phase if worst["phase"] == phase else f"training after {phase}"
    own = ""
    if worst["phase"] != phase:
        own = f"; {phase} itself {_gb(plans[0]['node_bytes'])}"
    if host_short:
        p_part = worst["components"].get(P_NAME)
        p_txt = f", P {_gb(p_part)} of it" if p_part and p_part >= 0.1 * GB else ""
        head = (
            f"not enough memory: {what} on {launch.ranks} rank(s) needs "
            f"{_gb(worst['node_bytes'])} on this node ({launch.ranks_per_node} rank(s) x "
            f"{_gb(worst['peak_bytes'])}{p_txt}{own}), {_gb(launch.node_avail)} available "
            f"({launch.avail_source})"
        )
    else:
        gpu_avail = launch.gpu_avail or 0
        head = (
            f"not enough GPU memory: {what} needs {_gb(worst['device_bytes'])} per rank on "
            f"the GPU ({launch.ranks_per_gpu} rank(s) per GPU), {_gb(gpu_avail)} free"
        )
    fix = cheapest_fix(cfg, launch, phase, config_path)
    return f"{head}; cheapest change that fits: {fix}"


def _gpu_free() -> int | None:
    """Free bytes of the GPU this rank selected (None under the simulator or without one)."""
    import sys

    device = sys.modules.get("tsn_mpi.backends.gpu.device")
    if device is None or getattr(device, "SELECTED", None) is None or device.simulated():
        return None
    try:
        from numba import cuda

        free, _total = cuda.current_context().get_memory_info()
    except Exception:  # noqa: BLE001 - no reading: the device is not checked
        return None
    return int(free)


def _ranks_per_gpu(comm, ranks_per_node: int) -> int:
    """Ranks of this node bound to the same GPU as this one (node-local rank % GPUs)."""
    import sys

    device = sys.modules.get("tsn_mpi.backends.gpu.device")
    try:
        n_gpus = len(device.cuda.gpus)
        mine = device.node_local_rank(comm) % n_gpus
    except Exception:  # noqa: BLE001
        return 1
    return max(1, sum(1 for r in range(ranks_per_node) if r % n_gpus == mine))


def node_limit() -> int | None:
    """Bytes the job may use per node by :data:`LIMIT_ENV` (GB), None when unset; a
    malformed value is a one-line error."""
    import os

    text = os.environ.get(LIMIT_ENV, "").strip()
    if not text:
        return None
    try:
        gb = float(text)
    except ValueError:
        gb = -1.0
    if not gb > 0 or gb == float("inf"):
        raise MemoryPlanError(f"{LIMIT_ENV} = {text!r}: expected a positive number of GB")
    return int(gb * GB)


def probe_launch(comm, gpu: bool, ranks_per_node: int) -> Launch:
    """This rank's view of the launch, ``ranks_per_node`` of whose ranks share its node."""
    from tsn_mpi.comm.threads import cores_available
    from tsn_mpi.sysmem import available_bytes, rss_bytes

    rpn = ranks_per_node
    avail, source = available_bytes()
    held = rss_bytes() * rpn  # the job's ranks already hold this much of what the plan counts
    node_avail, source = avail + held, f"{source} {_gb(avail)} + {_gb(held)} this job holds"
    limit = node_limit()
    if limit is not None and limit < node_avail:
        node_avail, source = limit, f"{LIMIT_ENV} = {limit / GB:g}"
    gpu_free = _gpu_free() if gpu else None
    return Launch(
        ranks=comm.size,
        ranks_per_node=rpn,
        node_avail=node_avail,
        avail_source=source,
        gpu=gpu,
        gpu_avail=gpu_free,
        ranks_per_gpu=_ranks_per_gpu(comm, rpn) if gpu_free else 1,
        cores=cores_available() * rpn if comm.size > 1 else cores_available(),
    )


def memory_gate(
    cfg, comm, phase: str, run_dir: str | Path, gpu: bool = False, force: bool = False, out=None
) -> str | None:
    """Stop every rank with one line (MemoryPlanError on all) when ``phase`` does not fit the
    node's available memory or its GPU's; with ``force`` rank 0 prints it as a warning and
    the phase goes on.  Collective.  Returns the message (None when it fits)."""
    rpn = comm.node_size() if comm.size > 1 else 1  # collective: before anything can fail
    msg = bad = None
    try:
        launch = probe_launch(comm, gpu, rpn)
        msg = check_fit(cfg, launch, phase, str(Path(run_dir) / "config.toml"))
    except MemoryPlanError as exc:  # a malformed limit
        bad = str(exc)
    except (TsnError, ValueError, KeyError) as exc:  # the plan cannot evaluate this config
        if out is not None:
            out.warn(f"memory not checked: {exc}")
    msgs = comm.allgather_obj((msg, bad)) if comm.size > 1 else [(msg, bad)]
    bad = next((b for _, b in msgs if b), None)
    if bad is not None:
        if comm.size > 1:
            raise AgreedError(bad, MemoryPlanError.exit_code)
        raise MemoryPlanError(bad)
    first = next((m for m, _ in msgs if m), None)
    if first is None:
        return None
    if force:
        if out is not None:
            out.info(f"warning: starting anyway (--force): {first}")
        return first
    first += "; or --force to start anyway"
    if comm.size > 1:
        raise AgreedError(first, MemoryPlanError.exit_code)
    raise MemoryPlanError(first)
