"""Default stimulus plugin: an Ornstein–Uhlenbeck process per neuron and task (spec §9.3).

``s[0] = 0``, ``s[k+1] = s[k] + b*(mu - s[k])*dt + sigma*sqrt(dt)*N(0,1)`` on the stream
(seed, STIMULUS, gid, task).  The simulator precomputes it once per task when that takes at most
1 GiB per rank, and otherwise regenerates it on the fly inside the time loop (the same float32
values either way): 2000 steps × N × 4 bytes would be 8 GB at N = 1M.
Custom plugins return an array of shape (n_stim_steps, n_owned) instead, which is stored.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OnlineOU:
    """Marker returned by the default plugin: generate the OU stimulus inside the loop."""

    mu: float
    b: float
    sigma: float


def ornstein_uhlenbeck(ctx, task: int) -> OnlineOU:
    st = ctx.cfg.stimulus
    return OnlineOU(st.mu, st.b, st.sigma)
