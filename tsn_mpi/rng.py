"""Counter-based random streams keyed by (seed, purpose, global neuron id, trial).

Every random number tsn-mpi draws comes from a stream whose starting state is a hash of the run
seed, a purpose code, the global neuron id and the trial (loop) number.  A neuron's connectivity,
initial voltage and noise are therefore the same however neurons are split across ranks or
threads, and a resumed run draws exactly what an uninterrupted one would (spec pitfall 16).

The generator is SplitMix64 (Steele, Lea & Flood 2014): a 64-bit state advanced by a Weyl
increment and passed through a strong finaliser.  It is fast inside numba kernels, needs 8 bytes
of state per stream, and is trivially reproduced in a CUDA kernel.  Normal deviates use the
ziggurat method, about 7x cheaper than Box-Muller inside the time loop (3 ns vs 22 ns per value
here), which is what lets the OU stimulus and the noise be drawn online instead of stored.
"""

from __future__ import annotations

import numpy as np
from numba import njit

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_TWO53 = 1.0 / 9007199254740992.0

# purpose codes: one independent family of streams each
STATIC = 1
PLASTIC = 2
STIMULUS = 3
TARGET = 4
V_INIT = 5
NOISE = 6
FF_SPIKES = 7
FF_RATES = 8
TARGET_BIAS = 9
CELL_PARAMS = 10
TEST_TRIAL_OFFSET = 1 << 40  # trial keys of test trials are offset so they never meet loops


@njit(cache=True, inline="always")
def mix64(z):
    """SplitMix64 finaliser of a uint64."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True)
def stream_state(seed, purpose, gid, trial):
    """Initial state of the stream (seed, purpose, gid, trial); all arguments are integers."""
    h = mix64(np.uint64(seed) + GOLDEN)
    h = mix64(h ^ (np.uint64(purpose) * GOLDEN))
    h = mix64(h ^ (np.uint64(gid) + _M1))
    h = mix64(h ^ (np.uint64(trial) * _M2))
    return h


@njit(cache=True, inline="always")
def next_u64(state, i):
    """Advance stream ``state[i]`` and return 64 random bits."""
    s = state[i] + GOLDEN
    state[i] = s
    return mix64(s)


@njit(cache=True, inline="always")
def uniform(state, i):
    """Uniform double in (0, 1) from stream ``state[i]`` (never exactly 0 or 1)."""
    return (np.float64(next_u64(state, i) >> _S11) + 0.5) * _TWO53


# Ziggurat tables (Marsaglia & Tsang 2000, 256 layers, Doornik's 2005 formulation): layer k
# spans |x| < ZIG_X[k]; a uniform u in [-1, 1) with |u| < ZIG_R[k] = ZIG_X[k+1] / ZIG_X[k] is
# accepted as u * ZIG_X[k] without further work (98.5 % of draws).
ZIG_LAYERS = 256
ZIG_TAIL = 3.6541528853610088  # start of the tail (layer 1's right edge)
ZIG_AREA = 0.00492867323399  # area of every layer


def _ziggurat_tables() -> tuple[np.ndarray, np.ndarray]:
    x = np.zeros(ZIG_LAYERS + 1)
    x[0] = ZIG_AREA / np.exp(-0.5 * ZIG_TAIL * ZIG_TAIL)
    x[1] = ZIG_TAIL
    for k in range(2, ZIG_LAYERS):
        x[k] = np.sqrt(-2.0 * np.log(ZIG_AREA / x[k - 1] + np.exp(-0.5 * x[k - 1] * x[k - 1])))
    return x, x[1:] / x[:-1]


ZIG_X, ZIG_R = _ziggurat_tables()
_LOW8 = np.uint64(0xFF)
_TWO52 = 1.0 / 4503599627370496.0


@njit(cache=True, inline="always")
def _bits_uniform(bits):
    return (np.float64(bits >> _S11) + 0.5) * _TWO53


@njit(cache=True, inline="always")
def _ziggurat_slow(s, k, u):
    """Rejection part of the ziggurat for a first draw (layer k, u) that missed the fast test;
    returns (normal, advanced state).  Runs for about 1.5 % of draws."""
    while True:
        if k == 0:  # base strip: sample the tail beyond ZIG_TAIL (Marsaglia 1964)
            while True:
                s += GOLDEN
                x = np.log(_bits_uniform(mix64(s))) / ZIG_TAIL
                s += GOLDEN
                y = np.log(_bits_uniform(mix64(s)))
                if -2.0 * y >= x * x:
                    break
            return (x - ZIG_TAIL if u < 0.0 else ZIG_TAIL - x), s
        x = u * ZIG_X[k]
        f0 = np.exp(-0.5 * (ZIG_X[k] * ZIG_X[k] - x * x))
        f1 = np.exp(-0.5 * (ZIG_X[k + 1] * ZIG_X[k + 1] - x * x))
        s += GOLDEN
        if f1 + _bits_uniform(mix64(s)) * (f0 - f1) < 1.0:
            return x, s
        s += GOLDEN
        r = mix64(s)
        k = np.int64(r & _LOW8)
        u = np.float64(r >> _S11) * _TWO52 - 1.0
        if abs(u) < ZIG_R[k]:
            return u * ZIG_X[k], s


@njit(cache=True, inline="always")
def normal(state, i):
    """Standard normal double from stream ``state[i]`` (ziggurat; one 64-bit draw per value
    98.5 % of the time: the low 8 bits pick the layer, the high 53 give the uniform)."""
    s = state[i] + GOLDEN
    r = mix64(s)
    k = np.int64(r & _LOW8)
    u = np.float64(r >> _S11) * _TWO52 - 1.0
    if abs(u) < ZIG_R[k]:
        state[i] = s
        return u * ZIG_X[k]
    z, s = _ziggurat_slow(s, k, u)
    state[i] = s
    return z


@njit(cache=True, inline="always")
def below(state, i, n):
    """Uniform integer in [0, n) for n < 2**53 (scaled 53-bit uniform; bias < n / 2**53)."""
    return np.int64(np.float64(next_u64(state, i) >> _S11) * _TWO53 * n)


@njit(cache=True)
def stream_states(seed, purpose, gids, trial):
    """States of one stream per global id in ``gids`` (int64 array)."""
    out = np.empty(gids.size, dtype=np.uint64)
    for k in range(gids.size):
        out[k] = stream_state(seed, purpose, gids[k], trial)
    return out


def numpy_generator(seed: int, purpose: int, gid: int, trial: int = 0) -> np.random.Generator:
    """A numpy Generator for plugins written in plain numpy, keyed like the jitted streams."""
    return np.random.default_rng([int(seed), int(purpose), int(gid), int(trial)])
