"""Device-side random numbers of the GPU backend, draw for draw the host's (:mod:`tsn_mpi.rng`).

SplitMix64 streams, ziggurat normals (libdevice ``log``/``exp`` in the rare rejection steps may
differ from the host libm in the last bit), the k-th uniform of a stream without stepping
through it, and the integer power used for the trace decay.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from tsn_mpi.rng import (
    _LOW8,
    _M1,
    _M2,
    _S11,
    _S27,
    _S30,
    _S31,
    _TWO52,
    _TWO53,
    GOLDEN,
    ZIG_R,
    ZIG_TAIL,
    ZIG_X,
)

# ------------------------------------------------------------------ SplitMix64 (as tsn_mpi.rng)
# the constants are tsn_mpi.rng's, so CPU and GPU streams are the same by construction



@cuda.jit(device=True)
def mix64(z):
    """SplitMix64 finaliser of a uint64 (tsn_mpi.rng.mix64)."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@cuda.jit(device=True)
def bits_to_uniform(bits):
    """Uniform double in (0, 1) from 64 random bits (tsn_mpi.rng.uniform)."""
    return (np.float64(bits >> _S11) + 0.5) * _TWO53


@cuda.jit(device=True)
def next_uniform(state, row, i):
    """Advance stream ``state[row, i]`` and return a uniform double."""
    s = state[row, i] + GOLDEN
    state[row, i] = s
    return bits_to_uniform(mix64(s))


@cuda.jit(device=True)
def next_normal(state, row, i):
    """Standard normal from stream ``state[row, i]``: the ziggurat of tsn_mpi.rng.normal, draw
    for draw (same layer tables, same rejection steps)."""
    s = state[row, i]
    while True:
        s += GOLDEN
        r = mix64(s)
        k = np.int64(r & _LOW8)
        u = np.float64(r >> _S11) * _TWO52 - 1.0
        x = u * ZIG_X[k]
        if abs(u) < ZIG_R[k]:
            break
        if k == 0:  # the tail beyond ZIG_TAIL
            while True:
                s += GOLDEN
                x = math.log(bits_to_uniform(mix64(s))) / ZIG_TAIL
                s += GOLDEN
                y = math.log(bits_to_uniform(mix64(s)))
                if -2.0 * y >= x * x:
                    break
            x = x - ZIG_TAIL if u < 0.0 else ZIG_TAIL - x
            break
        f0 = math.exp(-0.5 * (ZIG_X[k] * ZIG_X[k] - x * x))
        f1 = math.exp(-0.5 * (ZIG_X[k + 1] * ZIG_X[k + 1] - x * x))
        s += GOLDEN
        if f1 + bits_to_uniform(mix64(s)) * (f0 - f1) < 1.0:
            break
    state[row, i] = s
    return x


@cuda.jit(device=True)
def nth_uniform(base, k):
    """The k-th uniform (k >= 1) of the stream that starts at state ``base``, without state."""
    return bits_to_uniform(mix64(base + np.uint64(k) * GOLDEN))


@cuda.jit(device=True)
def ipow(a, b):
    """``a ** b`` for float64 a and int64 b, bit for bit as numba's CPU ``math.pow(float, int)``
    (exponentiation by squaring up to 2**16, then the libm pow)."""
    r = 1.0
    invert = b < 0
    e = -b if invert else b
    if e > 0x10000:
        return math.pow(a, np.float64(b))
    while e != 0:
        if e & 1:
            r *= a
        e >>= 1
        a *= a
    if invert:
        return 1.0 / r
    return r
