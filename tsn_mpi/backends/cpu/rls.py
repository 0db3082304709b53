"""numba kernels of the RLS weight update, fast mode (stored P) and small mode (spec §4.3, §4.5).

Fast mode keeps every neuron's P in AoSoA tiles ``P[t, idx, lane]`` of ``TILE_W`` neurons (see
:mod:`tsn_mpi.learn.packed`): neuron ``lid`` is tile ``lid // TILE_W``, lane ``lid % TILE_W``.
One thread takes one tile at a time and streams it twice: once to compute ``k = P x`` for its 32
neurons, once to apply ``P -= den k k^T``; the tile stays in L2/L3 in between, so memory sees
about one read and one write of P per update.  All inner loops run across the 32 lanes, so each
neuron goes through exactly the same sequence of float operations whatever its lane, its tile or
the number of threads: results are bitwise reproducible (no ``fastmath``, no FMA contraction).

Storage and arithmetic types of P:

- float64 P: arithmetic in float64;
- float32 P: x is rounded to float32, ``k = P x`` and the P update run in float32; ``x.k``,
  ``den`` and ``den*k`` are formed in float64 (then rounded to float32 for the update);
- float16 P: numba has no float16 arithmetic on the CPU, so float16 arrays are carried as their
  ``uint16`` bit patterns (``p16.view(np.uint16)``; the Python wrappers accept either).  Each
  element is widened to float32, updated as for float32 P, and rounded back to the nearest
  float16 (ties to even).  :func:`half_to_float` / :func:`float_to_half` are the same
  conversions for scalars.

Full storage (:func:`rls_fast_full`, tiles ``(n_tiles, n*n, TILE_W)``, element ``(a, b)`` at
``a*n + b``) reads and writes only the upper triangle ``a <= b``, like Julia's ``Symmetric``; the
lower triangle is never touched and goes stale (``packed.symmetrize_full_rows`` rebuilds it).

Neurons whose gain k, ``den``, error or new weights are not finite are flagged in ``bad`` and
left untouched (neither their P nor their weights change), so a run can stop with a clean state.

:func:`rls_fast`, :func:`rls_fast_full` and :func:`rls_small` are Python wrappers that check
shapes and call one compiled parallel kernel each (:func:`fast_kernel`, :func:`small_kernel`,
callable from other jitted code).  The fast kernel sees P as bytes plus a storage code, so one
compilation serves every P dtype and both storages (cold: ~5-10 s for fast_kernel, a few
seconds for small_kernel on 2 Zen 5 cores; then loaded from numba's cache in well under a
second).

Speed (benchmarks/rls_kernel.py, 2 threads, 300 MB of P): n = 90 float32 packed moves
2 * bytes(P) at ~44 GB/s, ~85% of a 2-thread numba copy; the rows of k = P x prefetch 32 KB
ahead, and each tile prefetches the traces r[pre] the next tile will gather.  The tiles should
live in transparent huge pages (``packed.alloc_tiles`` / ``rows_to_tiles`` do that).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic, overload
from numpy.typing import NDArray

from tsn_mpi.learn.packed import TILE_W

W = TILE_W
F64, F32, F16 = 0, 1, 2  # storage codes of P: float64, float32, float16 (as uint16 bits)
_CODES = {
    np.dtype(np.float64): F64,
    np.dtype(np.float32): F32,
    np.dtype(np.uint16): F16,
    np.dtype(np.float16): F16,
}

# ----------------------------------------------------------------------------- float16 scalars


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


# ------------------------------------------------------------------ vector line kernels (LLVM IR)
#
# numba's loop vectoriser cannot prove that P and the scratch rows do not overlap, and numba
# disables LLVM's SLP vectoriser, so plain loops over 32 lanes come out scalar or wrapped in
# per-row runtime alias checks (3-4x slower).  These two intrinsics emit the W-lane rows as LLVM
# vectors directly.  P arrives as bytes (n_tiles, L, W * itemsize) plus a literal storage code;
# scratch rows X, K, S, T are (n, W) arrays of the arithmetic type.  float16 rows
# are widened with ``fpext`` and narrowed with ``fptrunc`` (IEEE, round to nearest even; x86:
# vcvtph2ps / vcvtps2ph).  The caller guarantees that every index is in bounds.

_I64 = ir.IntType(64)
# Software prefetch distance of the k = P x pass over packed P: the hardware prefetchers stop at
# 4 KB page boundaries; prefetching 32 KB ahead into L2 gave ~+12% per core (Zen 5, n = 90).
_PREFETCH_BYTES = 32768


def _emit_prefetch(builder, ptr):
    """``llvm.prefetch`` of the cache line at ptr: for reading, locality 2 (L2), data."""
    i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0"
    )
    flags = [ir.Constant(i32, 0), ir.Constant(i32, 2), ir.Constant(i32, 1)]
    builder.call(fn, [builder.bitcast(ptr, i8p), *flags])


def _storage_vec(code):
    """LLVM vector type of one stored row of W lanes."""
    return {
        F64: ir.VectorType(ir.DoubleType(), W),
        F32: ir.VectorType(ir.FloatType(), W),
        F16: ir.VectorType(ir.IntType(16), W),
    }[code]


def _math_vec(code):
    """LLVM vector type of one row in the arithmetic type."""
    return ir.VectorType(ir.DoubleType() if code == F64 else ir.FloatType(), W)


class _Rows:
    """Row pointers and vector loads/stores for the arrays of one intrinsic call."""

    def __init__(self, context, builder, code):
        self.context, self.builder, self.code = context, builder, code

    def data_shape(self, arrty, val):
        arr = self.context.make_array(arrty)(self.context, self.builder, val)
        return arr.data, cgutils.unpack_tuple(self.builder, arr.shape, arrty.ndim)

    def p_ptr(self, pdata, pshape, t, row):
        """Address of row ``row`` of tile ``t`` in the byte view of P."""
        b = self.builder
        off = b.mul(b.add(b.mul(t, pshape[1]), row), pshape[2])
        return b.bitcast(b.gep(pdata, [off]), _storage_vec(self.code).as_pointer())

    def load_p(self, ptr):
        b = self.builder
        v = b.load(ptr, align=2 if self.code == F16 else 4)
        if self.code == F16:
            v = b.fpext(b.bitcast(v, ir.VectorType(ir.HalfType(), W)), _math_vec(F32))
        return v

    def store_p(self, val, ptr):
        b = self.builder
        if self.code == F16:
            val = b.bitcast(b.fptrunc(val, ir.VectorType(ir.HalfType(), W)), _storage_vec(F16))
        b.store(val, ptr, align=2 if self.code == F16 else 4)

    def prefetch(self, ptr, dist):
        """Prefetch into L2 every cache line of the row ``dist`` bytes after ptr."""
        b = self.builder
        base = b.gep(b.bitcast(ptr, ir.IntType(8).as_pointer()), [dist])
        row_bytes = W * (8 if self.code == F64 else 4 if self.code == F32 else 2)
        for line in range(0, row_bytes, 64):
            _emit_prefetch(b, b.gep(base, [ir.Constant(_I64, line)]))

    def s_ptr(self, sdata, row):
        """Address of row ``row`` of an (n, W) scratch array in the arithmetic type."""
        b = self.builder
        off = b.mul(row, ir.Constant(_I64, W))
        return b.bitcast(b.gep(sdata, [off]), _math_vec(self.code).as_pointer())

    def load_s(self, ptr):
        return self.builder.load(ptr, align=8 if self.code == F64 else 4)

    def store_s(self, val, ptr):
        self.builder.store(val, ptr, align=8 if self.code == F64 else 4)


@intrinsic
def _prefetch_item(typingctx, arr, idx):
    """Prefetch (for reading, into L2) the cache line holding ``arr[idx]`` of a 1-D array."""
    if not (isinstance(arr, types.Array) and arr.ndim == 1 and isinstance(idx, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        a = context.make_array(sig.args[0])(context, builder, args[0])
        i = context.cast(builder, args[1], sig.args[1], types.intp)
        _emit_prefetch(builder, builder.gep(a.data, [i]))
        return context.get_dummy_value()

    return types.void(arr, idx), codegen


def _line_types_ok(P, code, A, B):
    """Typing guard: P uint8 (n_tiles, L, W*itemsize), literal code, A and B (n, W) arrays of
    the arithmetic type (float64 for code F64, else float32)."""
    ok = isinstance(P, types.Array) and P.ndim == 3 and P.layout == "C"
    ok = ok and P.dtype == types.uint8 and isinstance(code, types.IntegerLiteral)
    if not ok:
        return False
    math = types.float64 if code.literal_value == F64 else types.float32
    for a in (A, B):
        ok = ok and isinstance(a, types.Array) and a.ndim == 2 and a.layout == "C"
        ok = ok and a.dtype == math
    return ok


@intrinsic
def _spmv_line(typingctx, P, code, t, off, X, K, i, j0, j1, pf):
    """One line of k = P x.  With q_j = P[t, off + j] and pivot i, for every lane:
    ``K[j] += q_j X[i]`` for j in [j0, j1), then ``K[i] += q_i X[i] + sum_j q_j X[j]``
    (the sum in two chains over even and odd j, added at the end).  Each row j also prefetches
    the memory ``pf`` bytes after it into L2 (harmless if pf = 0 or past the end of P).
    """
    if not _line_types_ok(P, code, X, K):
        return None
    c = code.literal_value

    def codegen(context, builder, sig, args):
        rows = _Rows(context, builder, c)
        pdata, pshape = rows.data_shape(sig.args[0], args[0])
        xdata, _ = rows.data_shape(sig.args[4], args[4])
        kdata, _ = rows.data_shape(sig.args[5], args[5])
        tv, offv, iv, j0v, j1v, pfv = (
            context.cast(builder, args[q], sig.args[q], types.intp) for q in (2, 3, 6, 7, 8, 9)
        )
        xi = rows.load_s(rows.s_ptr(xdata, iv))
        qi = rows.load_p(rows.p_ptr(pdata, pshape, tv, builder.add(offv, iv)))
        acc0 = cgutils.alloca_once_value(builder, builder.fmul(qi, xi))
        acc1 = cgutils.alloca_once_value(builder, ir.Constant(xi.type, None))

        def step(j, acc):
            pj = rows.p_ptr(pdata, pshape, tv, builder.add(offv, j))
            rows.prefetch(pj, pfv)
            q = rows.load_p(pj)
            kp = rows.s_ptr(kdata, j)
            rows.store_s(builder.fadd(rows.load_s(kp), builder.fmul(q, xi)), kp)
            xj = rows.load_s(rows.s_ptr(xdata, j))
            builder.store(builder.fadd(builder.load(acc), builder.fmul(q, xj)), acc)

        count = builder.sub(j1v, j0v)
        with cgutils.for_range(builder, builder.ashr(count, ir.Constant(_I64, 1))) as loop:
            j = builder.add(j0v, builder.shl(loop.index, ir.Constant(_I64, 1)))
            step(j, acc0)
            step(builder.add(j, ir.Constant(_I64, 1)), acc1)
        with builder.if_then(builder.trunc(count, ir.IntType(1))):  # odd count: last one
            step(builder.sub(j1v, ir.Constant(_I64, 1)), acc0)
        kp = rows.s_ptr(kdata, iv)
        total = builder.fadd(builder.load(acc0), builder.load(acc1))
        rows.store_s(builder.fadd(rows.load_s(kp), total), kp)
        return context.get_dummy_value()

    return types.void(P, code, t, off, X, K, i, j0, j1, pf), codegen


@intrinsic
def _update_line(typingctx, P, code, t, off, S, T, i, j0, j1):
    """One line of P -= den k k^T: ``P[t, off + j] -= S[i] * T[j]`` for j in [j0, j1)."""
    if not _line_types_ok(P, code, S, T):
        return None
    c = code.literal_value

    def codegen(context, builder, sig, args):
        rows = _Rows(context, builder, c)
        pdata, pshape = rows.data_shape(sig.args[0], args[0])
        sdata, _ = rows.data_shape(sig.args[4], args[4])
        tdata, _ = rows.data_shape(sig.args[5], args[5])
        tv, offv, iv, j0v, j1v = (
            context.cast(builder, args[q], sig.args[q], types.intp) for q in (2, 3, 6, 7, 8)
        )
        si = rows.load_s(rows.s_ptr(sdata, iv))
        with cgutils.for_range(builder, builder.sub(j1v, j0v)) as loop:
            j = builder.add(j0v, loop.index)
            pp = rows.p_ptr(pdata, pshape, tv, builder.add(offv, j))
            tj = rows.load_s(rows.s_ptr(tdata, j))
            rows.store_p(builder.fsub(rows.load_p(pp), builder.fmul(si, tj)), pp)
        return context.get_dummy_value()

    return types.void(P, code, t, off, S, T, i, j0, j1), codegen


# ------------------------------------------------------------------------ fast mode, one tile


def _lane_rows_ok(*arrs):
    """Typing guard: C-contiguous float32/float64 arrays, (rows, W) or (W,)."""
    for a in arrs:
        if not (isinstance(a, types.Array) and a.ndim in (1, 2) and a.layout == "C"):
            return False
        if a.dtype not in (types.float32, types.float64):
            return False
    return True


def _row_vec(context, builder, arrty, val, row):
    """Pointer to row ``row`` (W lanes) of a C-contiguous (rows, W) or (W,) float array."""
    arr = context.make_array(arrty)(context, builder, val)
    et = ir.DoubleType() if arrty.dtype == types.float64 else ir.FloatType()
    off = builder.mul(row, ir.Constant(_I64, W))
    return builder.bitcast(builder.gep(arr.data, [off]), ir.VectorType(et, W).as_pointer())


def _load_f64(builder, arrty, ptr):
    """Load a W-lane row and widen it to float64."""
    v = builder.load(ptr, align=arrty.dtype.bitwidth // 8)
    if arrty.dtype == types.float32:
        v = builder.fpext(v, ir.VectorType(ir.DoubleType(), W))
    return v


@intrinsic
def _lanes_dot(typingctx, X, K, out):
    """Per lane, in float64: ``out[0] = sum_a X[a] K[a]`` and ``out[1] = sum_a K[a] * 0``
    (NaN if any K[a] is not finite, else 0).  X, K: (n, W); out: (>= 2, W) float64."""
    if not (_lane_rows_ok(X, K, out) and X.dtype == K.dtype and out.dtype == types.float64):
        return None

    def codegen(context, builder, sig, args):
        xt, kt, ot = sig.args
        vt = ir.VectorType(ir.DoubleType(), W)
        n = cgutils.unpack_tuple(
            builder, context.make_array(xt)(context, builder, args[0]).shape, 2
        )[0]
        c = cgutils.alloca_once_value(builder, ir.Constant(vt, None))
        z = cgutils.alloca_once_value(builder, ir.Constant(vt, None))
        with cgutils.for_range(builder, n) as loop:
            x = _load_f64(builder, xt, _row_vec(context, builder, xt, args[0], loop.index))
            k = _load_f64(builder, kt, _row_vec(context, builder, kt, args[1], loop.index))
            builder.store(builder.fadd(builder.load(c), builder.fmul(x, k)), c)
            builder.store(builder.fadd(builder.load(z), builder.fmul(k, ir.Constant(vt, None))), z)
        zero = ir.Constant(_I64, 0)
        builder.store(builder.load(c), _row_vec(context, builder, ot, args[2], zero), align=8)
        one = ir.Constant(_I64, 1)
        builder.store(builder.load(z), _row_vec(context, builder, ot, args[2], one), align=8)
        return context.get_dummy_value()

    return types.void(X, K, out), codegen


@intrinsic
def _lanes_scale(typingctx, K, KD, den, keep):
    """Per lane: ``KD[a] = den * K[a]`` and K kept where keep != 0; K = KD = 0 elsewhere.
    K, KD: (n, W) of one float type; den, keep: (W,) float64 (den * K is formed in float64)."""
    if not (_lane_rows_ok(K, KD, den, keep) and K.dtype == KD.dtype):
        return None
    if den.dtype != types.float64 or keep.dtype != types.float64:
        return None

    def codegen(context, builder, sig, args):
        kt, dt, et, pt = sig.args
        vt = ir.VectorType(ir.DoubleType(), W)
        zero = ir.Constant(_I64, 0)
        d = builder.load(_row_vec(context, builder, et, args[2], zero), align=8)
        keepv = builder.fcmp_unordered(
            "!=",
            builder.load(_row_vec(context, builder, pt, args[3], zero), align=8),
            ir.Constant(vt, None),
        )
        n = cgutils.unpack_tuple(
            builder, context.make_array(kt)(context, builder, args[0]).shape, 2
        )[0]
        with cgutils.for_range(builder, n) as loop:
            kp = _row_vec(context, builder, kt, args[0], loop.index)
            dp = _row_vec(context, builder, dt, args[1], loop.index)
            k = builder.load(kp, align=kt.dtype.bitwidth // 8)
            kd = builder.fmul(d, _load_f64(builder, kt, kp))
            if kt.dtype == types.float32:
                kd = builder.fptrunc(kd, k.type)
            zk = ir.Constant(k.type, None)
            builder.store(builder.select(keepv, kd, zk), dp, align=kt.dtype.bitwidth // 8)
            builder.store(builder.select(keepv, k, zk), kp, align=kt.dtype.bitwidth // 8)
        return context.get_dummy_value()

    return types.void(K, KD, den, keep), codegen


def _spmv_tile(P, code, t, full, X, K):
    """K = P[t] X: packed columns b (elements (a, b), a <= b) or full rows a (a*n + b, b >= a).

    Overloaded on the scratch dtype: float64 scratch goes with float64 P, float32 scratch with
    float32 or float16 P, so only matching intrinsics are compiled.
    """


def _update_tile(P, code, t, full, K, KD):
    """P[t] -= KD K^T on the upper triangle: element (a, b), a <= b, minus KD[b] * K[a]."""


def _lines(spmv, codes):
    """Implementation of _spmv_tile (spmv True) or _update_tile for the given storage codes."""
    c0, c1 = codes[0], codes[-1]

    def spmv_impl(P, code, t, full, X, K):
        n = X.shape[0]
        K[:] = 0.0
        pf = 0 if full else _PREFETCH_BYTES  # full rows skip the lower triangle: no prefetch
        base = 0
        for b in range(n):
            off, j0, j1 = (b * n, b + 1, n) if full else (base, 0, b)
            if code == c0:
                _spmv_line(P, c0, t, off, X, K, b, j0, j1, pf)
            else:
                _spmv_line(P, c1, t, off, X, K, b, j0, j1, pf)
            base += b + 1

    def update_impl(P, code, t, full, K, KD):
        n = K.shape[0]
        base = 0
        for b in range(n):
            if full:  # row b: elements (b, c), c >= b, minus K[b] * KD[c]
                S, T, off, j0, j1 = K, KD, b * n, b, n
            else:  # packed column b: elements (a, b), a <= b, minus KD[b] * K[a]
                S, T, off, j0, j1 = KD, K, base, 0, b + 1
            if code == c0:
                _update_line(P, c0, t, off, S, T, b, j0, j1)
            else:
                _update_line(P, c1, t, off, S, T, b, j0, j1)
            base += b + 1

    return spmv_impl if spmv else update_impl


@overload(_spmv_tile)
def _ol_spmv_tile(P, code, t, full, X, K):
    return _lines(True, (F64,) if X.dtype == types.float64 else (F32, F16))


@overload(_update_tile)
def _ol_update_tile(P, code, t, full, K, KD):
    return _lines(False, (F64,) if K.dtype == types.float64 else (F32, F16))


@njit(cache=True, inline="always")
def _gather_tile(t, pre, w, r, x_ff, w_ff, u_bal, target, X, lanes, xb):
    """X[:, lane] = [x_ff; r[pre[lid]]] (0 on padding slots and lanes) in X's dtype, and the
    error e = (w.x_rec + w_ff.x_ff + u_bal) - target of each lane into lanes[2] (float64,
    old weights; w.x_rec summed in two chains, even and odd slots).  xb: (>= m,) float64
    scratch.  Also prefetches the traces that tile t + 1 will gather."""
    n_owned, m = pre.shape
    n_ff = x_ff.shape[0]
    n_lanes = min(W, n_owned - t * W)  # runtime trip counts: keeps LLVM from unrolling by 32
    for lane in range(n_lanes, X.shape[1]):  # padding lanes
        for a in range(n_ff + m):
            X[a, lane] = 0
        lanes[2, lane] = 0.0
    for lane in range(n_lanes):
        lid = t * W + lane
        for a in range(n_ff):
            X[a, lane] = x_ff[a]
        for j in range(m):
            g = pre[lid, j]
            xb[j] = r[g] if g >= 0 else 0.0
            X[n_ff + j, lane] = xb[j]
        e0 = 0.0  # w.x_rec in two chains: even and odd slots
        e1 = 0.0
        for j in range(0, m - 1, 2):
            e0 += np.float64(w[lid, j]) * xb[j]
            e1 += np.float64(w[lid, j + 1]) * xb[j + 1]
        if m % 2:
            e0 += np.float64(w[lid, m - 1]) * xb[m - 1]
        e = e0 + e1
        for a in range(n_ff):
            e += np.float64(w_ff[lid, a]) * x_ff[a]
        lanes[2, lane] = (e + np.float64(u_bal[lid])) - np.float64(target[lid])
    for lid in range((t + 1) * W, min((t + 2) * W, n_owned)):
        for j in range(m):
            if pre[lid, j] >= 0:
                _prefetch_item(r, pre[lid, j])


@njit(cache=True, inline="always")
def _finish_tile(t, pre, w, w_ff, textbook, apply, bad, K, KD, lanes, wnew):
    """den, ok flag and new weights of every lane of tile t; KD = den*K (K = KD = 0 if bad).

    lanes (5, W) float64: rows 0 = x.k, 1 = 0 or NaN (non-finite k), 2 = e (in), 3 = den,
    4 = ok.  wnew: (n,) float64 scratch.  Weights change only if apply and the lane is good.
    """
    n_owned, m = pre.shape
    n_ff = w_ff.shape[1]
    for lane in range(K.shape[1]):  # (= W; a runtime trip count keeps LLVM from unrolling)
        lid = t * W + lane
        den = 1.0 / (1.0 + lanes[0, lane])
        e = lanes[2, lane]
        coef = e * den if textbook else e
        ok = np.isfinite(den) and np.isfinite(coef) and lanes[1, lane] == 0.0
        if lid < n_owned:
            for a in range(n_ff):
                wnew[a] = np.float32(w_ff[lid, a] - coef * np.float64(K[a, lane]))
                ok = ok and np.isfinite(wnew[a])
            for j in range(m):  # (padding slots have k = 0: their weight stays finite)
                wnew[n_ff + j] = np.float32(w[lid, j] - coef * np.float64(K[n_ff + j, lane]))
                ok = ok and np.isfinite(wnew[n_ff + j])
            bad[lid] = 0 if ok else 1
            if ok and apply:
                for a in range(n_ff):
                    w_ff[lid, a] = wnew[a]
                for j in range(m):
                    if pre[lid, j] >= 0:
                        w[lid, j] = wnew[n_ff + j]
        lanes[3, lane] = den
        lanes[4, lane] = 1.0 if ok else 0.0
    _lanes_scale(K, KD, lanes[3], lanes[4])


@njit(cache=True)
def _tile_range(P, code, t0, t1, full, pre, w, r, x_ff, w_ff, u_bal, target, textbook, apply,
                bad, X, K, KD):  # fmt: skip
    """Fast-mode step of tiles t0..t1-1, one after the other, with scratch X, K, KD (n, W) in
    the arithmetic type: gather x and e, k = P x, den and weights, P -= den k k^T."""
    n = X.shape[0]
    lanes = np.empty((5, W))
    wnew = np.empty(n)
    for t in range(t0, t1):
        _gather_tile(t, pre, w, r, x_ff, w_ff, u_bal, target, X, lanes, wnew)
        _spmv_tile(P, code, t, full, X, K)
        _lanes_dot(X, K, lanes)
        _finish_tile(t, pre, w, w_ff, textbook, apply, bad, K, KD, lanes, wnew)
        _update_tile(P, code, t, full, K, KD)


@njit(cache=True)
def _fast_range(P, code, t0, t1, full, pre, w, r, x_ff, w_ff, u_bal, target, textbook, apply,
                bad):  # fmt: skip
    """Tiles t0..t1-1 with float64 scratch for float64 P, float32 scratch otherwise."""
    n = x_ff.shape[0] + pre.shape[1]
    args = (P, code, t0, t1, full, pre, w, r, x_ff, w_ff, u_bal, target, textbook, apply, bad)
    if code == F64:
        _tile_range(*args, np.empty((n, W)), np.empty((n, W)), np.empty((n, W)))
    else:
        f4 = np.float32
        _tile_range(*args, np.empty((n, W), f4), np.empty((n, W), f4), np.empty((n, W), f4))


_CHUNKS = 256  # work units of fast_kernel: enough for load balance, few scratch allocations


@njit(parallel=True, cache=True)
def fast_kernel(
    P: NDArray[np.uint8],
    code: int,
    full: bool,
    pre: NDArray[np.int32],
    w: NDArray[np.float32],
    r: NDArray[np.float64],
    x_ff: NDArray[np.float64],
    w_ff: NDArray[np.float32],
    u_bal: NDArray[np.float32],
    target: NDArray[np.float32],
    textbook: bool,
    apply: bool,
    bad: NDArray[np.uint8],
) -> int:
    """Compiled fast-mode step over all tiles in parallel; no argument checks (use rls_fast).

    P: the tiles as bytes, ``P_tiles.view(np.uint8)`` (n_tiles, L, TILE_W * itemsize).
    code: F64, F32 or F16.  full: True for full storage.  Others as :func:`rls_fast`.
    Tiles go in up to _CHUNKS contiguous chunks, each with its own scratch arrays.
    """
    n_tiles = (pre.shape[0] + W - 1) // W
    n_chunks = min(n_tiles, _CHUNKS)
    # the gufunc's prange index is unsigned: cast it, or every callee is compiled twice
    for ch in prange(n_chunks):
        c = np.int64(ch)
        t0, t1 = c * n_tiles // n_chunks, (c + 1) * n_tiles // n_chunks
        _fast_range(P, code, t0, t1, full, pre, w, r, x_ff, w_ff, u_bal, target, textbook,
                    apply, bad)  # fmt: skip
    nb = 0
    for i in range(bad.shape[0]):
        nb += bad[i] != 0
    return nb


# ------------------------------------------------------------------------- Python entry points


def _check_common(pre, w, r, x_ff, w_ff, u_bal, target, bad):
    """Validate the arrays shared by all RLS kernels.

    Read-only inputs are converted to the kernel's dtype if needed (no copy when they already
    match); the arrays updated in place (w, w_ff, bad) must already have the right dtype.
    Returns (pre, r, x_ff, u_bal, target) ready for the kernel.  ``pre`` ids are not range
    checked (an id >= len(r) reads out of bounds).
    """
    pre, r, x_ff, u_bal, target = (
        np.ascontiguousarray(a, dtype=dt)
        for a, dt in ((pre, np.int32), (r, np.float64), (x_ff, np.float64),
                      (u_bal, np.float32), (target, np.float32))
    )  # fmt: skip
    for name, a, dtype in (
        ("w", w, np.float32),
        ("w_ff", w_ff, np.float32),
        ("bad", bad, np.uint8),
    ):
        if not isinstance(a, np.ndarray) or a.dtype != dtype or not a.flags.c_contiguous:
            raise ValueError(f"{name} must be a C-contiguous {np.dtype(dtype)} array (in place)")
    if pre.ndim != 2 or r.ndim != 1 or x_ff.ndim != 1:
        raise ValueError(f"pre {pre.shape}, r {r.shape}, x_ff {x_ff.shape}: expected 2-D, 1-D, 1-D")
    n_owned, m = pre.shape
    expect = dict(
        w=(w, (n_owned, m)),
        w_ff=(w_ff, (n_owned, x_ff.shape[0])),
        u_bal=(u_bal, (n_owned,)),
        target=(target, (n_owned,)),
        bad=(bad, (n_owned,)),
    )
    for name, (a, shape) in expect.items():
        if a.shape != shape:
            raise ValueError(f"{name} has shape {a.shape}, expected {shape}")
    return pre, r, x_ff, u_bal, target


def _fast(P, full, pre, w, r, x_ff, w_ff, u_bal, target, textbook, apply, bad) -> int:
    """Check the arguments of rls_fast / rls_fast_full and run the compiled kernel."""
    pre, r, x_ff, u_bal, target = _check_common(pre, w, r, x_ff, w_ff, u_bal, target, bad)
    (n_owned, m), n_ff = pre.shape, x_ff.shape[0]
    n = n_ff + m
    length = n * n if full else n * (n + 1) // 2
    if not isinstance(P, np.ndarray) or P.dtype not in _CODES or not P.flags.c_contiguous:
        raise ValueError("P must be a C-contiguous float64, float32 or float16/uint16 array")
    want = ((n_owned + W - 1) // W, length, W)
    if P.ndim != 3 or P.shape[1:] != want[1:] or P.shape[0] < want[0]:
        kind = "full n*n" if full else "packed n*(n+1)/2"
        raise ValueError(f"P has shape {P.shape}, expected {want} ({kind}, n = LX + m = {n})")
    code = _CODES[P.dtype]
    Pb = P.view(np.uint16 if code == F16 else P.dtype).view(np.uint8)
    return int(
        fast_kernel(
            Pb, code, full, pre, w, r, x_ff, w_ff, u_bal, target, bool(textbook), bool(apply), bad
        )
    )


def rls_fast(
    P: NDArray,
    pre: NDArray[np.int32],
    w: NDArray[np.float32],
    r: NDArray[np.float64],
    x_ff: NDArray[np.float64],
    w_ff: NDArray[np.float32],
    u_bal: NDArray[np.float32],
    target: NDArray[np.float32],
    textbook: bool,
    apply: bool,
    bad: NDArray[np.uint8],
) -> int:
    """One fast-mode RLS step of every owned neuron, packed P in tiles, in place (spec §4.3).

    P: (n_tiles, n*(n+1)//2, TILE_W) float64, float32, or float16 (or its uint16 view),
    n = LX + m, n_tiles >= ceil(n_owned / TILE_W); lanes past n_owned must be zero.
    pre: (n_owned, m) int32 global presynaptic ids, -1 = padding. w: (n_owned, m) float32.
    r: (N_global,) float64 traces. x_ff: (LX,) float64. w_ff: (n_owned, LX) float32.
    u_bal, target: (n_owned,) float32. textbook: use e*den*k (else the a-priori e*k of HEAD).
    apply: False = benchmark mode (P changes, weights do not). bad: (n_owned,) uint8 output.
    Per neuron: x = [x_ff; r[pre]], k = P x, den = 1/(1 + x.k), P -= den k k^T,
    e = w.x_rec + w_ff.x_ff + u_bal - target (old weights), w -= e k_rec, w_ff -= e k_ff.
    Returns the number of bad neurons (non-finite k, den, error or new weights; left untouched).
    """
    return _fast(P, False, pre, w, r, x_ff, w_ff, u_bal, target, textbook, apply, bad)


def rls_fast_full(
    P: NDArray,
    pre: NDArray[np.int32],
    w: NDArray[np.float32],
    r: NDArray[np.float64],
    x_ff: NDArray[np.float64],
    w_ff: NDArray[np.float32],
    u_bal: NDArray[np.float32],
    target: NDArray[np.float32],
    textbook: bool,
    apply: bool,
    bad: NDArray[np.uint8],
) -> int:
    """:func:`rls_fast` for full storage: P (n_tiles, n*n, TILE_W), element (a, b) at a*n + b.

    Only the upper triangle (a <= b) is read and written; the lower triangle goes stale.
    """
    return _fast(P, True, pre, w, r, x_ff, w_ff, u_bal, target, textbook, apply, bad)


# ------------------------------------------------------------------------------- small mode


def push_history(
    hist: NDArray[np.float64],
    x_ff: NDArray[np.float64],
    r: NDArray[np.float64],
    count: int,
    mean: bool = False,
) -> int:
    """Store the trace vector [x_ff; r] in the circular window of hist; return count + 1.

    Without ``mean`` the window is all H rows of hist (H, LX + N) and the vector goes to row
    ``count % H``; the number of valid rows for :func:`rls_small` is then ``min(count + 1, H)``.
    With ``mean`` the window is the first H - 1 rows and the last row holds the running mean of
    all ``count + 1`` vectors pushed so far (``rls_small(..., mean_row=H - 1,
    mean_weight=count + 1)`` at the next step).
    """
    n_ff = x_ff.shape[0]
    if hist.ndim != 2 or hist.shape[1] != n_ff + r.shape[0] or hist.shape[0] < 1 + mean:
        raise ValueError(
            f"hist has shape {hist.shape}, rows must hold LX + N = {n_ff + r.shape[0]} values"
        )
    window = hist.shape[0] - mean
    slot = count % window
    hist[slot, :n_ff] = x_ff
    hist[slot, n_ff:] = r
    if mean:
        _running_mean(hist[-1], hist[slot], count + 1)
    return count + 1


@njit(cache=True)
def _running_mean(mean: NDArray[np.float64], x: NDArray[np.float64], count: int) -> None:
    """mean += (x - mean) / count, in place (the mean of count vectors, x the last)."""
    for a in range(mean.shape[0]):
        mean[a] += (x[a] - mean[a]) / count


@njit(cache=True)
def _small_gather(lid, pre, w, r, x_ff, x, grp):
    """x = [x_ff; r[pre]] (0 on padding) and sign groups grp (0: none, 1: w > 0, 2: w < 0)."""
    n_ff = x_ff.shape[0]
    for a in range(n_ff):
        x[a] = x_ff[a]
    for j in range(pre.shape[1]):
        gid = pre[lid, j]
        valid = gid >= 0
        x[n_ff + j] = r[gid] if valid else 0.0
        wj = w[lid, j]
        grp[j] = valid * ((wj > 0) + 2 * (wj < 0))  # branch-free: signs are mixed


@njit(cache=True, inline="always")
def _scaled_dots(G, c1, c2, c3, a0, a1, sc):
    """(sc G[c1].G[c2], sc G[c1].G[c3]) over columns a0..a1-1, in 4 fixed interleaved sums each."""
    p0 = p1 = p2 = p3 = 0.0
    q0 = q1 = q2 = q3 = 0.0
    a4 = a0 + (a1 - a0) // 4 * 4
    for a in range(a0, a4, 4):
        x0, x1, x2, x3 = G[c1, a], G[c1, a + 1], G[c1, a + 2], G[c1, a + 3]
        p0 += x0 * G[c2, a]
        p1 += x1 * G[c2, a + 1]
        p2 += x2 * G[c2, a + 2]
        p3 += x3 * G[c2, a + 3]
        q0 += x0 * G[c3, a]
        q1 += x1 * G[c3, a + 1]
        q2 += x2 * G[c3, a + 2]
        q3 += x3 * G[c3, a + 3]
    for a in range(a4, a1):
        p0 += G[c1, a] * G[c2, a]
        q0 += G[c1, a] * G[c3, a]
    return ((p0 + p1) + (p2 + p3)) * sc, ((q0 + q1) + (q2 + q3)) * sc


@njit(cache=True)
def _small_gain_woodbury(
    lid, pre, hist, rows, scales, penlambda, penlam_ff, penmu, x, grp, k, G, M, S
):
    """k = A^-1 x with A = Pinv + sum_h g_h g_h^T by the Woodbury identity; False if S is not PD.

    P0 = Pinv^-1 is known in closed form (spec §4.2): per sign group s of size n_s,
    ``(I - c_s 11^T)/lam`` with ``c_s = mu/(lam + n_s mu)``; 1/penlam_ff on feed-forward
    slots.  With the history rows g_h as the rows of G_h (hl x n),
    ``A^-1 x = P0 (x - G_h^T c)`` where ``S c = G_h P0 x`` and ``S = I + G_h P0 G_h^T``:
    O(hl^2 n) instead of O(hl n^2 + n^3/6) for building and factorising A.
    History row h is ``scales[h] * hist[rows[h]]`` gathered (hl = len(rows)).
    Scratch: G (hl + 1, n) holds x in row 0 and g_h in row 1 + h; M (hl + 1, hl + 1) gets
    ``G P0 G^T`` (lower triangle) as the scaled Gram matrix of G minus the rank-2 term of the
    row sums over each sign group, kept in S (3, hl + 1) (row 0: no group, unused).
    """
    m = pre.shape[1]
    n = x.shape[0]
    n_ff = n - m
    hist_len = rows.shape[0]
    q = hist_len + 1
    for s in range(3):
        for c in range(q):
            S[s, c] = 0.0
    for a in range(n_ff):
        G[0, a] = x[a]
        for h in range(hist_len):
            G[1 + h, a] = scales[h] * hist[rows[h], a]
    size_pos = 0
    size_neg = 0
    for j in range(m):
        a = n_ff + j
        gid = pre[lid, j]
        s = grp[j]
        size_pos += s == 1
        size_neg += s == 2
        G[0, a] = x[a]
        S[s, 0] += x[a]
        if gid >= 0:
            for h in range(hist_len):
                val = scales[h] * hist[rows[h], n_ff + gid]
                G[1 + h, a] = val
                S[s, 1 + h] += val
        else:
            for h in range(hist_len):
                G[1 + h, a] = 0.0
    inv_lam = 1.0 / penlambda
    inv_ff = 1.0 / penlam_ff
    c_pos = penmu / (penlambda + size_pos * penmu)
    c_neg = penmu / (penlambda + size_neg * penmu)
    # M = G diag(1/penlam_ff.., 1/lam..) G^T - (c_pos s_pos s_pos^T + c_neg s_neg s_neg^T) / lam
    for c1 in range(q):
        p1 = c_pos * S[1, c1] * inv_lam
        n1 = c_neg * S[2, c1] * inv_lam
        for c2 in range(0, c1 + 1, 2):
            c3 = c2 + 1 if c2 < c1 else c2
            d2, d3 = _scaled_dots(G, c1, c2, c3, n_ff, n, inv_lam)
            if n_ff > 0:
                f2, f3 = _scaled_dots(G, c1, c2, c3, 0, n_ff, inv_ff)
                d2 += f2
                d3 += f3
            M[c1, c2] = d2 - (p1 * S[1, c2] + n1 * S[2, c2])
            M[c1, c3] = d3 - (p1 * S[1, c3] + n1 * S[2, c3])
    # S_h = I + M[1:, 1:]: Cholesky in place (lower), then S_h c = b with b = M[1:, 0]
    for i in range(1, q):
        M[i, i] += 1.0
    for i in range(1, q):
        for j in range(1, i + 1):
            s = M[i, j]
            for t in range(1, j):
                s -= M[i, t] * M[j, t]
            if i == j:
                if not s > 0.0:  # also catches NaN
                    return False
                M[i, i] = np.sqrt(s)
            else:
                M[i, j] = s / M[j, j]
    cvec = S[0]  # reused: c at cvec[1..hl]
    for i in range(1, q):
        s = M[i, 0]
        for t in range(1, i):
            s -= M[i, t] * cvec[t]
        cvec[i] = s / M[i, i]
    for i in range(q - 1, 0, -1):
        s = cvec[i]
        for t in range(i + 1, q):
            s -= M[t, i] * cvec[t]
        cvec[i] = s / M[i, i]
    # k = P0 v with v = x - G_h^T c
    for a in range(n):
        k[a] = G[0, a]
    for c in range(1, q):
        cc = cvec[c]
        for a in range(n):
            k[a] -= cc * G[c, a]
    v_pos = 0.0
    v_neg = 0.0
    for j in range(m):
        g = grp[j]
        v = k[n_ff + j]
        v_pos += v if g == 1 else 0.0
        v_neg += v if g == 2 else 0.0
    v_pos *= c_pos
    v_neg *= c_neg
    for a in range(n_ff):
        k[a] *= inv_ff
    for j in range(m):
        g = grp[j]
        k[n_ff + j] = (k[n_ff + j] - (v_pos if g == 1 else (v_neg if g == 2 else 0.0))) * inv_lam
    return True


@njit(cache=True)
def _small_gain_direct(lid, pre, hist, rows, scales, penlambda, penlam_ff, penmu, x, grp, k, A, g):
    """k = A^-1 x with A = Pinv + sum_h g_h g_h^T built densely and factorised by Cholesky.

    Used when the history is at least as long as n (then cheaper than Woodbury).  Padding
    slots get A = 1 (x = 0 there, so k = 0).  False if A is not positive definite.
    """
    m = pre.shape[1]
    n = x.shape[0]
    n_ff = n - m
    for a in range(n):
        for b in range(a + 1):
            A[a, b] = 0.0
    for a in range(n_ff):
        A[a, a] = penlam_ff
    for ja in range(m):
        a = n_ff + ja
        if pre[lid, ja] < 0:
            A[a, a] = 1.0
            continue
        A[a, a] = penlambda
        for jb in range(ja + 1):
            if grp[ja] != 0 and grp[ja] == grp[jb]:
                A[a, n_ff + jb] += penmu
    for h in range(rows.shape[0]):
        sc = scales[h]
        for a in range(n_ff):
            g[a] = sc * hist[rows[h], a]
        for j in range(m):
            gid = pre[lid, j]
            g[n_ff + j] = sc * hist[rows[h], n_ff + gid] if gid >= 0 else 0.0
        for a in range(n):
            ga = g[a]
            for b in range(a + 1):
                A[a, b] += ga * g[b]
    for i in range(n):
        for j in range(i + 1):
            s = A[i, j]
            for q in range(j):
                s -= A[i, q] * A[j, q]
            if i == j:
                if not s > 0.0:  # also catches NaN
                    return False
                A[i, i] = np.sqrt(s)
            else:
                A[i, j] = s / A[j, j]
    for i in range(n):
        s = x[i]
        for q in range(i):
            s -= A[i, q] * k[q]
        k[i] = s / A[i, i]
    for i in range(n - 1, -1, -1):
        s = k[i]
        for q in range(i + 1, n):
            s -= A[q, i] * k[q]
        k[i] = s / A[i, i]
    return True


@njit(cache=True)
def _small_apply(lid, pre, w, x_ff, w_ff, u_bal, target, textbook, apply, x, k):
    """Error with the old weights and the update w -= e k (or e den k); True if all finite."""
    n_ff = x_ff.shape[0]
    m = pre.shape[1]
    n = n_ff + m
    c = 0.0
    for a in range(n):
        c += x[a] * k[a]
    den = 1.0 / (1.0 + c)
    e = 0.0
    for j in range(m):
        if pre[lid, j] >= 0:
            e += np.float64(w[lid, j]) * x[n_ff + j]
    for a in range(n_ff):
        e += np.float64(w_ff[lid, a]) * x_ff[a]
    e = (e + np.float64(u_bal[lid])) - np.float64(target[lid])
    ok = np.isfinite(den) and np.isfinite(e)
    for a in range(n):
        ok = ok and np.isfinite(k[a])
    coef = e * den if textbook else e
    if ok:
        for j in range(m):
            if pre[lid, j] >= 0:
                ok = ok and np.isfinite(np.float32(w[lid, j] - coef * k[n_ff + j]))
        for a in range(n_ff):
            ok = ok and np.isfinite(np.float32(w_ff[lid, a] - coef * k[a]))
    if ok and apply:
        for j in range(m):
            if pre[lid, j] >= 0:
                w[lid, j] = np.float64(w[lid, j]) - coef * k[n_ff + j]
        for a in range(n_ff):
            w_ff[lid, a] = np.float64(w_ff[lid, a]) - coef * k[a]
    return ok


def use_woodbury(hist_len: int, n: int) -> bool:
    """Whether small mode solves by Woodbury (fewer history terms than n) or a dense Cholesky."""
    return hist_len < n


@njit(cache=True)
def _small_block(
    blk,
    pre,
    w,
    r,
    x_ff,
    w_ff,
    u_bal,
    target,
    hist,
    rows,
    scales,
    penlambda,
    penlam_ff,
    penmu,
    textbook,
    apply,
    bad,
):
    """Small-mode step of neurons blk*W .. blk*W + W - 1, sharing one set of scratch arrays."""
    n_owned, m = pre.shape
    n = x_ff.shape[0] + m
    hist_len = rows.shape[0]
    woodbury = hist_len < n  # keep in step with use_woodbury
    x = np.empty(n)
    k = np.empty(n)
    grp = np.empty(m, np.int8)
    q = hist_len + 1 if woodbury else 1
    G = np.empty((q, n))
    M = np.empty((q, q))
    S = np.empty((3, q))
    na = 1 if woodbury else n
    A = np.empty((na, na))
    g = np.empty(na)
    for lid in range(blk * W, min(n_owned, blk * W + W)):
        _small_gather(lid, pre, w, r, x_ff, x, grp)
        if woodbury:
            ok = _small_gain_woodbury(
                lid, pre, hist, rows, scales, penlambda, penlam_ff, penmu, x, grp, k, G, M, S
            )
        else:
            ok = _small_gain_direct(
                lid, pre, hist, rows, scales, penlambda, penlam_ff, penmu, x, grp, k, A, g
            )
        if ok:
            ok = _small_apply(lid, pre, w, x_ff, w_ff, u_bal, target, textbook, apply, x, k)
        bad[lid] = 0 if ok else 1


@njit(parallel=True, cache=True)
def small_kernel(
    pre: NDArray[np.int32],
    w: NDArray[np.float32],
    r: NDArray[np.float64],
    x_ff: NDArray[np.float64],
    w_ff: NDArray[np.float32],
    u_bal: NDArray[np.float32],
    target: NDArray[np.float32],
    hist: NDArray[np.float64],
    rows: NDArray[np.int64],
    scales: NDArray[np.float64],
    penlambda: float,
    penlam_ff: float,
    penmu: float,
    textbook: bool,
    apply: bool,
    bad: NDArray[np.uint8],
) -> int:
    """Compiled small-mode step, blocks of TILE_W neurons in parallel; no checks (rls_small).

    The history terms are ``scales[h] * hist[rows[h]]`` for h < len(rows).
    """
    for blk in prange((pre.shape[0] + W - 1) // W):  # cast the unsigned prange index (see fast)
        _small_block(
            np.int64(blk),
            pre,
            w,
            r,
            x_ff,
            w_ff,
            u_bal,
            target,
            hist,
            rows,
            scales,
            penlambda,
            penlam_ff,
            penmu,
            textbook,
            apply,
            bad,
        )
    nb = 0
    for i in range(bad.shape[0]):
        nb += bad[i] != 0
    return nb


def rls_small(
    pre: NDArray[np.int32],
    w: NDArray[np.float32],
    r: NDArray[np.float64],
    x_ff: NDArray[np.float64],
    w_ff: NDArray[np.float32],
    u_bal: NDArray[np.float32],
    target: NDArray[np.float32],
    hist: NDArray[np.float64],
    hist_len: int,
    penlambda: float,
    penlam_ff: float,
    penmu: float,
    textbook: bool,
    apply: bool,
    bad: NDArray[np.uint8],
    mean_row: int = -1,
    mean_weight: float = 0.0,
) -> int:
    """One small-mode RLS step (spec §4.5): no stored P, k = A^-1 x solved per neuron in float64.

    A = Pinv from the *current* weight signs (as ``initial_p_rows``, not inverted) plus
    ``sum_h g g^T`` over history rows ``h < hist_len`` of hist (H, LX + N), each laid out
    [x_ff; r], with ``g = [h[:LX]; h[LX + pre]]`` (the reference forgot the ``+LX``).
    With ``mean_weight`` T > 0, A also gets ``T gbar gbar^T`` with gbar gathered from row
    ``mean_row`` of hist: the running mean of all T past trace vectors, i.e. the mean part of
    fast mode's full sum ``sum_t x_t x_t^T`` (see :func:`push_history`; the reference has no
    such term).  With ``hist_len + (T > 0) < n`` (the usual case: H = 10, n = 58 in the default
    model) k comes from the Woodbury identity around the closed-form ``Pinv^-1`` (a small
    Cholesky, O(hl^2 n) per neuron); otherwise A is built densely and factorised by Cholesky
    (O(hl n^2 + n^3/6)).  Both agree to float64 rounding.  Padding slots are decoupled (k = 0
    there).  Error and weight update as :func:`rls_fast` (a-priori ``e*k``, or ``e*den*k`` if
    textbook).  Other arguments as :func:`rls_fast`; a neuron whose A is not positive definite
    or whose k, error or new weights are not finite is flagged in ``bad`` and left untouched.
    Returns the number of bad neurons.  Pushing the current traces into hist
    (:func:`push_history`) is the caller's job, after this call.
    """
    pre, r, x_ff, u_bal, target = _check_common(pre, w, r, x_ff, w_ff, u_bal, target, bad)
    n_ff = x_ff.shape[0]
    if not isinstance(hist, np.ndarray) or hist.dtype != np.float64 or hist.ndim != 2:
        raise ValueError("hist must be a 2-D float64 array")
    if hist.shape[1] != n_ff + r.shape[0] or not 0 <= hist_len <= hist.shape[0]:
        raise ValueError(
            f"hist has shape {hist.shape} and hist_len {hist_len}; expected "
            f"(H, LX + N = {n_ff + r.shape[0]}) and 0 <= hist_len <= H"
        )
    rows = list(range(int(hist_len)))
    scales = [1.0] * len(rows)
    if mean_weight > 0:
        if not hist_len <= mean_row < hist.shape[0]:
            raise ValueError(f"mean_row {mean_row} must be a row of hist after the window")
        rows.append(int(mean_row))
        scales.append(float(np.sqrt(mean_weight)))
    return int(
        small_kernel(
            pre,
            w,
            r,
            x_ff,
            w_ff,
            u_bal,
            target,
            np.ascontiguousarray(hist),
            np.asarray(rows, dtype=np.int64),
            np.asarray(scales, dtype=np.float64),
            float(penlambda),
            float(penlam_ff),
            float(penmu),
            bool(textbook),
            bool(apply),
            bad,
        )
    )
