"""float16 scalars on the CPU: numba has no float16 arithmetic, so float16 values are carried as
their ``uint16`` bit patterns and converted here (exact widening; round to nearest even).

:func:`half_to_float` and :func:`float_to_half` are the scalar counterparts of the ``fpext`` /
``fptrunc`` conversions that :mod:`~tsn_mpi.backends.cpu.lane_vectors` emits for float16 P
rows (the fast RLS kernel, :mod:`~tsn_mpi.backends.cpu.rls_fast`); both round alike.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic


@intrinsic
def _bits_to_f32(typingctx, u):
    """Reinterpret the low 32 bits of an integer as a float32."""
    if not isinstance(u, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        v = context.cast(builder, args[0], u, types.uint32)
        return builder.bitcast(v, ir.FloatType())

    return types.float32(u), codegen


@intrinsic
def _f32_to_bits(typingctx, f):
    """Reinterpret a float32 as its uint32 bit pattern."""
    if f != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.uint32(f), codegen


_U_SIGN16 = np.uint32(0x8000)
_U_ABS16 = np.uint32(0x7FFF)
_U_EXP16 = np.uint32(0x7C00)
_U_F32_EXP = np.uint32(0x7F800000)
_F_2P112 = np.float32(2.0**112)
_U_SIGN32 = np.uint32(0x80000000)
_U_F32_INF = np.uint32(255 << 23)
_U_F16_MAX = np.uint32((127 + 16) << 23)
_U_DENORM_MAGIC = np.uint32(((127 - 15) + (23 - 10) + 1) << 23)
_U_MIN_NORMAL16 = np.uint32(113 << 23)
_U_REBIAS = np.uint32(((15 - 127) << 23) & 0xFFFFFFFF)
_U_FFF = np.uint32(0xFFF)
_U_ONE = np.uint32(1)
_U_NAN16 = np.uint32(0x7E00)
_U_INF16 = np.uint32(0x7C00)
_U_MASK32 = np.uint64(0xFFFFFFFF)
_U13 = np.uint32(13)
_U16 = np.uint32(16)


@njit(cache=True)
def half_to_float(h: np.uint16) -> np.float32:
    """float16 bit pattern (uint16) -> float32, exact (subnormals, inf and NaN included)."""
    u = np.uint32(h)
    mag = np.uint32((u & _U_ABS16) << _U13)
    f = _bits_to_f32(mag) * _F_2P112  # exact rescaling of normals and subnormals
    bits = _f32_to_bits(f)
    if (u & _U_EXP16) == _U_EXP16:  # inf / NaN: force the float32 exponent to all ones
        bits = np.uint32(bits | _U_F32_EXP)
    return _bits_to_f32(np.uint32(bits | ((u & _U_SIGN16) << _U16)))


@njit(cache=True)
def float_to_half(x: np.float32) -> np.uint16:
    """float32 -> float16 bit pattern (uint16), round to nearest even; overflow gives inf."""
    u = _f32_to_bits(np.float32(x))
    sign = u & _U_SIGN32
    a = np.uint32(u ^ sign)
    if a >= _U_F16_MAX:  # overflow to inf, or NaN (made quiet)
        o = _U_NAN16 if a > _U_F32_INF else _U_INF16
    elif a < _U_MIN_NORMAL16:  # float16 subnormal or zero: the float adder rounds for us
        f = _bits_to_f32(a) + _bits_to_f32(_U_DENORM_MAGIC)
        o = np.uint32(_f32_to_bits(f) - _U_DENORM_MAGIC)
    else:
        odd = (a >> _U13) & _U_ONE
        a2 = np.uint32((np.uint64(a) + np.uint64(_U_REBIAS) + _U_FFF + odd) & _U_MASK32)
        o = np.uint32(a2 >> _U13)
    return np.uint16(o | (sign >> _U16))
