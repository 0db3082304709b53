"""Quantities computed from the config (spec §1): K, L, weights, step counts, ...

Rounding follows the reference: Julia's ``round`` is ties-to-even, and so is Python's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tsn_mpi.errors import ConfigError


@dataclass(frozen=True)
class Derived:
    n_cells: int
    n_exc: int
    n_inh: int
    k: int
    je: float
    jx: float
    w_static: tuple[tuple[float, float], tuple[float, float]]  # [pre is I][post is I]
    x_bal_e: float
    x_bal_i: float
    l_exc: int
    l_inh: int
    l_ff: int
    n_plastic: int          # recurrent plastic inputs per neuron (m = l_exc + l_inh)
    n_rls: int              # RLS dimension n = l_ff + m
    n_packed: int           # n(n+1)/2
    wp_exc: float           # 'auto' initial plastic weight of an E input (I inputs: -wp_exc)
    wp: tuple[tuple[float, float], tuple[float, float]]  # [post is I][pre is I]: wpee wpei ...
    train_time: float       # ms, = stim_off + train_duration
    n_steps: int
    steps_per_ms: int
    stim_on_step: int
    stim_off_step: int
    n_stim_steps: int
    learn_step: int
    n_learn: int            # learning updates per loop (= target rows Ntime)
    u0_skip_steps: int
    u0_ncells: int
    max_times: int
    wid_inc: int
    history: int            # small mode: trace columns kept
    correlation_var: str    # utotal | uplastic
    ntasks: int


def _round(x: float) -> int:
    return int(round(x))


def derive(cfg) -> Derived:
    """Compute every derived quantity of ``cfg`` (a validated Config)."""
    net, neu, sim, pl, lr = cfg.network, cfg.neuron, cfg.simulation, cfg.plastic, cfg.learning
    n = net.n_cells
    ne = int(math.floor(n * net.frac_exc))
    ni = n - ne
    k = _round(ne * net.p_ee)
    sqrtk = math.sqrt(k)
    je = 2.0 / sqrtk * neu.tau_mem_e * net.g if k > 0 else 0.0
    jx = 0.08 * sqrtk * net.g
    w_static = ((net.jee * je, net.jie * je), (net.jei * je, net.jii * je))
    l_auto = _round(sqrtk * 2)
    l_exc = l_auto if pl.l_exc == "auto" else int(pl.l_exc)
    l_inh = l_auto if pl.l_inh == "auto" else int(pl.l_inh)
    m = l_exc + l_inh
    nr = pl.l_ff + m
    l_per = 0.5 * m
    wpscale = math.sqrt(l_per) * 2 if l_per > 0 else 1.0
    wp_exc = pl.w_scale * 2 * neu.tau_mem_e * net.g / wpscale
    dt = sim.dt
    train_time = sim.stim_off + sim.train_duration
    cvar = lr.correlation_var
    if cvar == "auto":
        cvar = "utotal" if k > 0 else "uplastic"
    return Derived(
        n_cells=n, n_exc=ne, n_inh=ni, k=k, je=je, jx=jx, w_static=w_static,
        x_bal_e=net.x_bal_e * jx, x_bal_i=net.x_bal_i * jx,
        l_exc=l_exc, l_inh=l_inh, l_ff=pl.l_ff, n_plastic=m, n_rls=nr,
        n_packed=nr * (nr + 1) // 2,
        wp_exc=wp_exc, wp=((_auto(pl.wpee, wp_exc), _auto(pl.wpei, -wp_exc)),
                           (_auto(pl.wpie, wp_exc), _auto(pl.wpii, -wp_exc))),
        train_time=train_time, n_steps=_round(train_time / dt), steps_per_ms=_round(1 / dt),
        stim_on_step=_round(sim.stim_on / dt), stim_off_step=_round(sim.stim_off / dt),
        n_stim_steps=_round((sim.stim_off - sim.stim_on) / dt),
        learn_step=_round(lr.learn_every / dt),
        n_learn=int(math.floor(sim.train_duration / lr.learn_every)),
        u0_skip_steps=_round(sim.u0_skip_time / dt), u0_ncells=min(sim.u0_ncells, n),
        max_times=_round(sim.maxrate * train_time / 1000),
        wid_inc=_round(2 * sim.wid / lr.learn_every - 1),
        history=max(1, _round(lr.history / lr.learn_every)),
        correlation_var=cvar, ntasks=cfg.targets.ntasks,
    )


def _is_multiple(x: float, unit: float) -> bool:
    q = x / unit
    return abs(q - round(q)) < 1e-9 * max(1.0, abs(q))


def check_consistency(cfg) -> None:
    """Cross-key checks (raise ConfigError naming the keys)."""
    sim, lr, pl, net = cfg.simulation, cfg.learning, cfg.plastic, cfg.network
    if not _is_multiple(1.0, sim.dt):
        raise ConfigError(f"simulation.dt = {sim.dt}: 1/dt must be an integer (e.g. 0.1, 0.05)")
    if not _is_multiple(lr.learn_every, sim.dt):
        raise ConfigError(
            f"learning.learn_every = {lr.learn_every} must be a multiple of simulation.dt = "
            f"{sim.dt}"
        )
    if sim.stim_on > sim.stim_off:
        raise ConfigError(
            f"simulation.stim_on = {sim.stim_on} must not exceed simulation.stim_off = "
            f"{sim.stim_off} (stimulus window inside the trial)"
        )
    if lr.learn_every > sim.train_duration:
        raise ConfigError(
            f"learning.learn_every = {lr.learn_every} is longer than simulation.train_duration "
            f"= {sim.train_duration}: no learning step would happen"
        )
    if 2 * sim.wid < lr.learn_every:
        raise ConfigError(
            f"simulation.wid = {sim.wid} must be at least learning.learn_every/2 "
            f"= {lr.learn_every / 2}"
        )
    d = derive(cfg)
    if d.n_exc < 1 or d.n_inh < 1:
        raise ConfigError(
            f"network.frac_exc = {net.frac_exc} with n_cells = {net.n_cells} leaves a population "
            "empty"
        )
    if sim.u0_skip_time >= d.train_time:
        raise ConfigError(
            f"simulation.u0_skip_time = {sim.u0_skip_time} must be shorter than the trial "
            f"({d.train_time} ms)"
        )
    if 2 * d.k > net.n_cells - 1:
        raise ConfigError(
            f"network.p_ee = {net.p_ee} gives static out-degree 2K = {2 * d.k}, more than the "
            f"{net.n_cells - 1} other neurons"
        )
    if d.k == 0 and "auto" in (pl.l_exc, pl.l_inh):
        raise ConfigError("plastic.l_exc and plastic.l_inh must be set when K = 0 (p_ee = 0)")
    pool_e = _round(pl.frac * d.n_exc)
    pool_i = _round(pl.frac * d.n_inh)
    if d.l_exc > pool_e:
        raise ConfigError(
            f"plastic.l_exc = {d.l_exc} exceeds the {pool_e} eligible excitatory partners "
            "(plastic.frac * Ne)"
        )
    if d.l_inh > pool_i:
        raise ConfigError(
            f"plastic.l_inh = {d.l_inh} exceeds the {pool_i} eligible inhibitory partners "
            "(plastic.frac * Ni)"
        )
    if d.n_rls < 1:
        raise ConfigError("plastic.l_exc + plastic.l_inh + plastic.l_ff must be at least 1")
    if cfg.neuron.tau_plas_file and pl.l_ff > 0:
        raise ConfigError("neuron.tau_plas_file needs plastic.l_ff = 0 (spec pitfall 15)")
    if lr.p_scale != "auto" and not lr.p_precision.startswith("int"):
        raise ConfigError(
            f"learning.p_scale = {lr.p_scale!r} needs an integer learning.p_precision "
            f"(it is {lr.p_precision!r}): float P is stored unscaled, set p_scale = 'auto'"
        )
    if lr.mode == "small" and lr.p_storage == "full" and False:  # pragma: no cover
        pass


def _auto(value, auto: float) -> float:
    """A config number, or ``auto`` where the key says 'auto'."""
    return auto if value == "auto" else float(value)
