"""Thread synchronisation inside compiled code: atomics, a CPU pause and futex waits.

numba exposes no atomics or barriers on the CPU, so these are LLVM intrinsics
(``atomicrmw``, atomic loads and stores, ``llvm.x86.sse2.pause``) and two libc calls resolved
by symbol (``syscall`` for Linux futexes, ``sched_yield``), which keeps the kernels that use
them cacheable.  The time loop's threads meet once or twice per step (20,000 steps per loop), so
a wait first spins on the counter for a bounded number of pauses (cheap while every thread has
its own core; a ``sched_yield`` now and then lets another thread of the core run) and then
sleeps in the kernel (``FUTEX_WAIT``).  The spin must outlast a sleeping thread's wake-up
(~0.6 ms measured on this project's VM, where an idle virtual CPU halts): a shorter one lets
each wake-up make the other thread sleep at the next meeting, and so on every step.  Counters
only grow within a parallel region, so a wait is ``until counter >= target`` and no reset
races with a late reader.

Layout of a counter array (int64, one counter per 64-byte line): ``c[8*k]`` counter ``k``,
``c[8*k + 1]`` threads sleeping on it.
"""

from __future__ import annotations

import platform
import sys
import time

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

_MACHINE = platform.machine().lower()
# Linux futex syscall numbers (FUTEX_WAIT/WAKE with FUTEX_PRIVATE_FLAG); elsewhere sched_yield
_SYS_FUTEX = {"x86_64": 202, "amd64": 202, "aarch64": 98, "arm64": 98}.get(_MACHINE)
HAVE_FUTEX = sys.platform.startswith("linux") and _SYS_FUTEX is not None
_FUTEX_WAIT_PRIVATE, _FUTEX_WAKE_PRIVATE = 128, 129
LINE = 8  # int64 slots per counter (one cache line)


def _ptr(context, builder, aty, arr, idx):
    ary = context.make_array(aty)(context, builder, arr)
    return cgutils.get_item_pointer(context, builder, aty, ary, [idx])


@intrinsic
def atomic_add(typingctx, arr, idx, val):
    """``old = arr[idx]; arr[idx] += val`` atomically (sequentially consistent); returns old."""
    sig = arr.dtype(arr, idx, arr.dtype)

    def codegen(context, builder, signature, args):
        ptr = _ptr(context, builder, signature.args[0], args[0], args[1])
        return builder.atomic_rmw("add", ptr, args[2], "seq_cst")

    return sig, codegen


@intrinsic
def atomic_load(typingctx, arr, idx):
    """``arr[idx]`` read atomically (sequentially consistent)."""
    sig = arr.dtype(arr, idx)

    def codegen(context, builder, signature, args):
        ptr = _ptr(context, builder, signature.args[0], args[0], args[1])
        return builder.load_atomic(ptr, "seq_cst", signature.args[0].dtype.bitwidth // 8)

    return sig, codegen


@intrinsic
def atomic_store(typingctx, arr, idx, val):
    """``arr[idx] = val`` atomically (sequentially consistent)."""
    sig = types.void(arr, idx, arr.dtype)

    def codegen(context, builder, signature, args):
        ptr = _ptr(context, builder, signature.args[0], args[0], args[1])
        builder.store_atomic(args[2], ptr, "seq_cst", signature.args[0].dtype.bitwidth // 8)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def cpu_relax(typingctx):
    """A spin-wait hint: ``pause`` on x86, ``yield`` on arm64, nothing elsewhere."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        if _MACHINE in ("x86_64", "amd64", "i686", "x86"):
            fnty = ir.FunctionType(ir.VoidType(), [])
            builder.call(cgutils.get_or_insert_function(builder.module, fnty,
                                                        "llvm.x86.sse2.pause"), [])  # fmt: skip
        elif _MACHINE in ("aarch64", "arm64"):
            builder.asm(ir.FunctionType(ir.VoidType(), []), "yield", "", [], True)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _futex(typingctx, arr, idx, op, val):
    """``syscall(SYS_futex, &arr[idx], op, val, NULL)`` on the low 32 bits of an int64 slot
    (little-endian), or ``sched_yield()`` where there are no futexes."""
    sig = types.int64(arr, idx, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        i64, i32 = ir.IntType(64), ir.IntType(32)
        if not HAVE_FUTEX:
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i32, []),
                                                "sched_yield")  # fmt: skip
            return builder.sext(builder.call(fn, []), i64)
        ptr = _ptr(context, builder, signature.args[0], args[0], args[1])
        fnty = ir.FunctionType(i64, [i64], var_arg=True)
        fn = cgutils.get_or_insert_function(builder.module, fnty, "syscall")
        addr = builder.bitcast(ptr, ir.IntType(8).as_pointer())
        return builder.call(fn, [ir.Constant(i64, _SYS_FUTEX), addr, builder.trunc(args[2], i32),
                                 builder.trunc(args[3], i32), ir.Constant(i64, 0)])  # fmt: skip

    return sig, codegen


@intrinsic
def sched_yield(typingctx):
    """``sched_yield()``: let another runnable thread of this core go first."""
    sig = types.int32()

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(32), [])
        return builder.call(cgutils.get_or_insert_function(builder.module, fnty, "sched_yield"), [])

    return sig, codegen


@njit(nogil=True, cache=True)
def arrive(ctr, k):  # pragma: no cover - jitted
    """Add one to counter ``k`` and wake its sleepers, if any."""
    atomic_add(ctr, LINE * k, 1)
    if atomic_load(ctr, LINE * k + 1) > 0:
        _futex(ctr, LINE * k, _FUTEX_WAKE_PRIVATE, 2147483647)


@njit(nogil=True, cache=True)
def wait_until(ctr, k, target, spin):  # pragma: no cover - jitted
    """Return once counter ``k`` is at least ``target``: ``spin`` pauses (a ``sched_yield``
    every 128, so a thread sharing the core runs), then futex sleeps."""
    i = LINE * k
    for it in range(spin):
        if atomic_load(ctr, i) >= target:
            return
        if (it & 127) == 127:
            sched_yield()
        else:
            cpu_relax()
    atomic_add(ctr, i + 1, 1)
    while True:
        v = atomic_load(ctr, i)
        if v >= target:
            break
        _futex(ctr, i, _FUTEX_WAIT_PRIVATE, v & 0xFFFFFFFF)
    atomic_add(ctr, i + 1, -1)


def counters(n: int) -> np.ndarray:
    """``n`` zeroed counters, one cache line each (64-byte aligned)."""
    raw = np.zeros(LINE * (n + 1), np.int64)
    off = (-(raw.ctypes.data // 8)) % LINE
    return raw[off : off + LINE * n]


@njit(nogil=True, cache=True)
def _spin_probe(ctr, n):  # pragma: no cover - jitted
    s = 0
    for _ in range(n):
        s += atomic_load(ctr, 0)
        cpu_relax()
    return s


_SPIN_NS: list[float] = []


def spins_for(microseconds: float) -> int:
    """Spin iterations (an atomic load and a pause) that take about ``microseconds``."""
    if not _SPIN_NS:
        c = counters(1)
        _spin_probe(c, 10)
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            _spin_probe(c, 20_000)
            best = min(best, time.perf_counter() - t)
        _SPIN_NS.append(max(best / 20_000 * 1e9, 1.0))
    return max(1, int(microseconds * 1e3 / _SPIN_NS[0]))
