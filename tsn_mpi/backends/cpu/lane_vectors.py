"""LLVM-IR intrinsics (numba) that handle the ``TILE_W`` lanes of a P tile as one vector.

numba's loop vectoriser cannot prove that P and the scratch rows do not overlap, and numba
disables LLVM's SLP vectoriser, so plain loops over 32 lanes come out scalar or wrapped in
per-row runtime alias checks (3-4x slower).  These intrinsics emit the W-lane rows as LLVM
vectors directly; the fast RLS kernel (:mod:`~tsn_mpi.backends.cpu.rls_fast`) is built from them.

- :func:`spmv_line`, :func:`update_line`: one line of ``k = P x`` and of ``P -= den k k^T``.
  P arrives as bytes (n_tiles, L, W * itemsize) plus a literal storage code (:data:`F64`,
  :data:`F32`, :data:`F16`); scratch rows X, K, S, T are (n, W) arrays of the arithmetic type.
  float16 rows are widened with ``fpext`` and narrowed with ``fptrunc`` (IEEE, round to nearest
  even; x86: vcvtph2ps / vcvtps2ph).
- :func:`lanes_dot`, :func:`lanes_scale`: per-lane float64 dot product and ``den * k``.
- :func:`prefetch_item` and the software prefetch of :func:`spmv_line` (``PREFETCH_BYTES``).

The caller guarantees that every index is in bounds.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from tsn_mpi.learn.packed import TILE_W

W = TILE_W
F64, F32, F16 = 0, 1, 2  # storage codes of P: float64, float32, float16 (as uint16 bits)

_I64 = ir.IntType(64)
# Software prefetch distance of the k = P x pass over packed P: the hardware prefetchers stop at
# 4 KB page boundaries; prefetching 32 KB ahead into L2 gave ~+12% per core (Zen 5, n = 90).
PREFETCH_BYTES = 32768


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
def prefetch_item(typingctx, arr, idx):
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
def spmv_line(typingctx, P, code, t, off, X, K, i, j0, j1, pf):
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
def update_line(typingctx, P, code, t, off, S, T, i, j0, j1):
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



# -------------------------------------------------------------- per-lane arithmetic of a tile


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
def lanes_dot(typingctx, X, K, out):
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
def lanes_scale(typingctx, K, KD, den, keep):
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
