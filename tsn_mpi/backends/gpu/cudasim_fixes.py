"""Thread-safety fixes and a deterministic schedule for numba's CUDA simulator.

The simulator runs every CUDA thread of a block as a Python thread.  Two of its internals are
check-then-act sequences without a lock (numba-cuda 0.30.4, the newest release as of 2026-12),
and our tests' short GIL switch interval (``sys.setswitchinterval(1e-4)``) makes both fire:

1. ``FakeCUDAShared.array`` looks a shared array up by its source line and, when missing,
   allocates it and stores it.  Two threads of the first block that both miss get *different*
   arrays: "shared" memory is then private, one thread's writes never reach the others, and
   they read uninitialised ``np.empty`` memory.  In the block RLS kernel this gave a wrong P or
   a neuron flagged non-finite (issue #24); a bare 64-thread kernel reproduced it once in 300
   launches at a 1 us switch interval while investigating (rare: benchmarks/cudasim.py counts
   such launches).  Fixed with a lock around the look-up and the store.
2. ``swapped_cuda_module`` builds ``{k: v for k, v in fn.__globals__.items() ...}`` while
   another simulated thread may add a key to the same module's globals: a NumPy floating-point
   warning (even an ignored one) inserts ``__warningregistry__`` into the globals of the module
   whose code raised it.  That is "RuntimeError: dictionary changed size during iteration".
   Fixed by scanning a snapshot (``list(d.items())`` copies without releasing the GIL).
3. The simulator's schedule itself was random: all threads of a block ran at once as OS
   threads and met at ``syncthreads`` through a busy-polling manager, so the order of float
   atomics (the spike list of a step, the plastic inputs summed into a neuron) changed from run
   to run and a simulator run could not be repeated.  With the ``greenlet`` package (the
   ``test`` and ``gpu`` extras) the block's threads run instead as greenlets of the launching
   thread, one at a time in thread-index order, each up to its next barrier (or its end), then
   the next: one legal CUDA schedule, the same on every run, no two simulated threads ever
   running at once (which also closes 1 and 2), and much faster than OS threads
   (benchmarks/cudasim.py).  A kernel
   that spins on another thread's write would hang here; ours do not.  Races that this one
   order hides are what ``tests/backends/gpu/sim_racecheck.py`` finds (shared-memory hazards between
   barriers, like ``compute-sanitizer --tool racecheck``).

Neither bug exists on a GPU; they made simulator runs (the CI's GPU tests, or a user's run under
the simulator) fail or, worse, give wrong numbers at random.  :func:`apply` is idempotent, does
nothing unless the simulator is active, and is called by ``select_device`` and by the
constructors of ``GpuSimulator`` and ``GpuLearner`` (and by the tests' simulator scripts).
"""

from __future__ import annotations

import sys
import threading
from collections import defaultdict
from contextlib import contextmanager

import numpy as np
from numba import config as numba_config
from numba.core import types
from numba.np import numpy_support

_applied = False
_serial = False


def apply() -> bool:
    """Install the fixes if numba's CUDA simulator is active; True when they are in place."""
    global _applied, _serial
    if _applied:
        return True
    if not numba_config.ENABLE_CUDASIM:
        return False
    from numba.cuda.simulator import kernel as sim_kernel
    from numba.cuda.simulator import kernelapi

    _fix_shared_allocation(kernelapi.FakeCUDAShared)
    swapped = _make_swapped_cuda_module()
    kernelapi.swapped_cuda_module = swapped
    sim_kernel.swapped_cuda_module = swapped  # imported by name there
    serial = _serial_block_manager(sim_kernel, kernelapi)
    if serial is not None:
        sim_kernel.BlockManager = serial
    _serial = serial is not None
    _applied = True
    return True


_shared_lock = threading.Lock()


def allocate_shared(shared, shape, dtype, key, make=None):
    """The static shared array ``key`` (a source position) of one launch's ``FakeCUDAShared``,
    allocated on first use.  The look-up and the store are one step under a lock.  ``make(key,
    array)`` may wrap a new allocation (tests/backends/gpu/sim_racecheck.py)."""
    if isinstance(dtype, types.Type):
        dtype = numpy_support.as_dtype(dtype)
    with _shared_lock:
        res = shared._allocations.get(key)
        if res is None:
            res = np.empty(shape, dtype)
            if make is not None:
                res = make(key, res)
            shared._allocations[key] = res
    return res


def _fix_shared_allocation(cls) -> None:
    """Make ``cls.array`` allocate each static shared array once per launch (see point 1).

    Like the simulator, an allocation is known by the source line that asks for it (two
    ``cuda.shared.array`` calls on one line alias)."""
    original = cls.array

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:  # dynamic shared memory, or the simulator's
            return _original_array(original, self, shape, dtype, alignment)  # own error
        caller = sys._getframe(1)
        return allocate_shared(self, shape, dtype, (caller.f_code.co_filename, caller.f_lineno))

    array.__doc__ = original.__doc__
    array.tsn_fixed = True
    cls.array = array


def _original_array(original, shared, shape, dtype, alignment):
    """The simulator's own ``array`` (older numba has no ``alignment`` argument)."""
    if alignment is None:
        return original(shared, shape, dtype)
    return original(shared, shape, dtype, alignment)


def serial_schedule() -> bool:
    """True when the simulator runs a block's threads one at a time in a fixed order."""
    return _serial


def current_sim_thread():
    """The simulated CUDA thread running now (``threadIdx``, ``blockIdx``, ``thread_id``,
    ``barriers``), as the simulator's kernel API sees it."""
    from numba.cuda.simulator import kernelapi

    return kernelapi.threading.current_thread()


def _make_swapped_cuda_module():
    """A ``swapped_cuda_module`` that scans a snapshot of the module globals.

    Same contract as the simulator's: while any simulated thread runs a function of a module,
    that module's global names bound to ``numba.cuda`` point at the launch's fake module; the
    last thread to leave restores them.  One lock per module dictionary, reference-counted."""
    locks: defaultdict[int, threading.Lock] = defaultdict(threading.Lock)
    locks_lock = threading.Lock()
    count: defaultdict[int, int] = defaultdict(int)
    saved: dict[int, dict] = {}

    @contextmanager
    def swapped_cuda_module(fn, fake_cuda_module):
        from numba import cuda

        globs = fn.__globals__
        key = id(globs)
        with locks_lock:
            lock = locks[key]
        with lock:
            if count[key] == 0:
                names = {k: v for k, v in list(globs.items()) if v is cuda}
                saved[key] = names
                for k in names:
                    globs[k] = fake_cuda_module
            count[key] += 1
        try:
            yield
        finally:
            with lock:
                count[key] -= 1
                if count[key] == 0:
                    globs.update(saved.pop(key))
                    del count[key]

    return swapped_cuda_module


class _SimThread:
    """One simulated CUDA thread of a block: a greenlet plus what the simulator asks of
    ``threading.current_thread()`` (``threadIdx``, ``blockIdx``, ``thread_id``, barriers)."""

    def __init__(self, call, manager, block_idx, thread_idx, dim3, greenlet) -> None:
        self._manager = manager
        self.blockIdx = dim3(*block_idx)
        self.threadIdx = dim3(*thread_idx)
        bx, by, _ = manager.block_state.shape
        self.thread_id = thread_idx[0] + bx * (thread_idx[1] + by * thread_idx[2])
        self.abort = False
        self.started = False
        self.finished = False
        self.exception = None
        self.barriers = 0  # syncthreads passed in this block (tests/backends/gpu/sim_racecheck.py)
        self.glet = greenlet(self._main)  # parent: the manager's greenlet (created there)
        self._call = call

    def _main(self) -> None:
        self.started = True
        try:
            if self._manager._debug:
                with np.errstate(divide="raise"):
                    self._call()
            else:
                self._call()
        except Exception as e:  # noqa: BLE001 - re-raised by the manager, as the simulator does
            where = (f"tid={[self.threadIdx.x, self.threadIdx.y, self.threadIdx.z]} "
                     f"ctaid={[self.blockIdx.x, self.blockIdx.y, self.blockIdx.z]}")  # fmt: skip
            self.exception = (type(e)(f"{where}: {e}" if str(e) else where), e.__traceback__)
        self.finished = True

    def syncthreads(self) -> None:
        if self.abort:
            raise RuntimeError("abort flag set on syncthreads call")
        self.glet.parent.switch()  # park; the manager runs the block's other threads
        if self.abort:
            raise RuntimeError("abort flag set on syncthreads clear")
        self.barriers += 1

    def _vote(self, value):
        t = self.threadIdx
        self._manager.block_state[t.x, t.y, t.z] = value
        self.syncthreads()
        state = self._manager.block_state.copy()
        self.syncthreads()
        return state

    def syncthreads_count(self, value):
        return int(np.count_nonzero(self._vote(value)))

    def syncthreads_and(self, value):
        return 1 if np.all(self._vote(value)) else 0

    def syncthreads_or(self, value):
        return 1 if np.any(self._vote(value)) else 0


class _ThreadingShim:
    """Stands in for the ``threading`` module inside the simulator's kernelapi: its
    ``current_thread()`` is the simulated thread running now (all run in one OS thread)."""

    def __init__(self) -> None:
        self.running: _SimThread | None = None

    def current_thread(self):
        return self.running if self.running is not None else threading.current_thread()

    def __getattr__(self, name):
        return getattr(threading, name)


def _serial_block_manager(sim_kernel, kernelapi):
    """The simulator's BlockManager with the serial, deterministic schedule (see point 3), or
    None when the ``greenlet`` package is missing (the locks of points 1-2 still apply)."""
    try:
        from greenlet import greenlet
    except ImportError:
        return None
    shim = _ThreadingShim()
    kernelapi.threading = shim
    dim3 = kernelapi.Dim3

    class SerialBlockManager(sim_kernel.BlockManager):
        """Runs a block's threads one at a time, in thread-index order, barrier to barrier,
        each as a greenlet of the launching thread (a switch costs about a microsecond where a
        hand-over between OS threads cost tens)."""

        def run(self, grid_point, *args):
            def call():
                self._f(*args)

            bx, by, bz = (int(v) for v in self._block_dim)
            self.block_state = np.zeros((bx, by, bz), dtype=np.bool_)
            live = [
                _SimThread(call, self, grid_point, (k % bx, (k // bx) % by, k // (bx * by)),
                           dim3, greenlet)  # fmt: skip
                for k in range(bx * by * bz)  # thread ids in x-fastest order
            ]
            try:
                while live:
                    for t in live:
                        shim.running = t
                        t.glet.switch()  # until its next barrier or its end
                        if t.exception:
                            self._abort(live, shim)
                            raise t.exception[0].with_traceback(t.exception[1])
                    live = [t for t in live if not t.finished]
            finally:
                shim.running = None

        @staticmethod
        def _abort(live, shim) -> None:
            """End every other thread of the block (each raises at its barrier)."""
            for t in live:
                if t.finished:
                    continue
                t.abort = True
                if t.started:
                    shim.running = t
                    t.glet.switch()
                t.finished = True

    return SerialBlockManager


def shared_array_is_fixed() -> bool:
    """True when the shared-array allocation of the simulator is the locked one (tests)."""
    if not numba_config.ENABLE_CUDASIM:
        return False
    from numba.cuda.simulator import kernelapi

    return bool(getattr(kernelapi.FakeCUDAShared.array, "tsn_fixed", False))


__all__ = ["allocate_shared", "apply", "current_sim_thread", "serial_schedule",
           "shared_array_is_fixed"]
