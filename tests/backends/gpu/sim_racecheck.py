"""Shared-memory race detection for kernels run in numba's CUDA simulator.

What ``compute-sanitizer --tool racecheck`` does on a GPU, for machines without one: every
static shared array of a launch is wrapped so that each element remembers who last wrote it
and who read it, and in which *barrier interval* (the block and the number of
``syncthreads`` its thread has passed).  Two accesses to one element by different threads of a
block in the same interval, at least one of them a write, are a hazard: nothing orders them on
a GPU, whatever order the simulator happened to run them in.

- RAW: a thread reads what another thread wrote in the same interval;
- WAR: a thread overwrites what another thread read in the same interval;
- WAW: two threads write different values in the same interval (equal values: benign, as
  racecheck's filtering of same-value writes);
- uninitialised: a thread reads an element no thread of its block has written (shared memory
  starts undefined on a GPU; the simulator would hand over the previous block's values).

Needs the serial schedule of ``tsn_mpi.backends.gpu.cudasim_fixes`` (it counts barriers per
thread).  Atomics on shared arrays are not modelled (our kernels have none).  Usage, in a
simulator process::

    from tests.backends.gpu import sim_racecheck
    hazards = sim_racecheck.install()
    kernel[blocks, threads](...)
    assert not hazards, hazards[:5]
"""

from __future__ import annotations

import sys

import numpy as np

from tsn_mpi.backends.gpu import cudasim_fixes

MAX_REPORTS = 200


class Tracker:
    """Access history of one shared allocation (flat element index)."""

    def __init__(self, name: str, base: np.ndarray, hazards: list) -> None:
        self.name, self.base, self.hazards = name, base, hazards
        self.addr = base.__array_interface__["data"][0]
        n = base.size
        self.w_thread = np.full(n, -1, np.int64)
        self.w_epoch = np.full(n, -1, np.int64)
        self.r_thread = np.full(n, -1, np.int64)  # -2: several threads
        self.r_epoch = np.full(n, -1, np.int64)

    @staticmethod
    def _who() -> tuple[int, int, int]:
        """(thread id in block, block key, barrier interval key) of the calling thread."""
        t = cudasim_fixes.current_sim_thread()
        b = t.blockIdx
        block = (b.z * 4096 + b.y) * 65536 + b.x
        return t.thread_id, block, (block << 20) | t.barriers

    def _report(self, kind: str, flat: int, other: int, me: int) -> None:
        if len(self.hazards) < MAX_REPORTS:
            idx = np.unravel_index(flat, self.base.shape)
            self.hazards.append(f"{kind} on {self.name}{list(map(int, idx))}: "
                                f"threads {other} and {me}")  # fmt: skip

    def read(self, flat: int) -> None:
        me, block, epoch = self._who()
        we = self.w_epoch[flat]
        if we < 0 or (we >> 20) != block:
            self._report("uninitialised read", flat, -1, me)
        elif we == epoch and self.w_thread[flat] != me:
            self._report("RAW", flat, int(self.w_thread[flat]), me)
        if self.r_epoch[flat] != epoch:
            self.r_epoch[flat] = epoch
            self.r_thread[flat] = me
        elif self.r_thread[flat] != me:
            self.r_thread[flat] = -2

    def write(self, flat: int, changed: bool) -> None:
        me, _, epoch = self._who()
        if self.w_epoch[flat] == epoch and self.w_thread[flat] != me and changed:
            self._report("WAW", flat, int(self.w_thread[flat]), me)
        if self.r_epoch[flat] == epoch and self.r_thread[flat] not in (me, -1):
            self._report("WAR", flat, int(self.r_thread[flat]), me)
        self.w_epoch[flat] = epoch
        self.w_thread[flat] = me


class CheckedArray:
    """A shared array (or a view of one) whose element accesses go through a Tracker."""

    __slots__ = ("_a", "_t")

    def __init__(self, a: np.ndarray, tracker: Tracker) -> None:
        self._a, self._t = a, tracker

    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)

    def __len__(self) -> int:
        return len(self._a)

    def _flat(self, idx) -> int:
        idx = idx if isinstance(idx, tuple) else (idx,)
        a = self._a
        off = a.__array_interface__["data"][0] - self._t.addr
        for i, n, s in zip(idx, a.shape, a.strides, strict=True):
            i = int(i)
            off += (i + n if i < 0 else i) * s
        return off // a.itemsize

    def __getitem__(self, idx):
        v = self._a[idx]
        if isinstance(v, np.ndarray):
            return CheckedArray(v, self._t)
        self._t.read(self._flat(idx))
        return v

    def __setitem__(self, idx, val) -> None:
        if isinstance(self._a[idx], np.ndarray):
            raise NotImplementedError("sim_racecheck: slice stores into shared memory")
        old = self._a[idx]
        self._a[idx] = val
        self._t.write(self._flat(idx), bool(self._a[idx] != old))


def install() -> list[str]:
    """Check every static shared array of the kernels launched from now on in this process;
    returns the list that collects the hazards found."""
    if not cudasim_fixes.apply():
        raise RuntimeError("sim_racecheck needs NUMBA_ENABLE_CUDASIM=1")
    if not cudasim_fixes.serial_schedule():
        raise RuntimeError("sim_racecheck needs the serial schedule (pip install greenlet)")
    from numba.cuda.simulator import kernelapi

    hazards: list[str] = []
    original = kernelapi.FakeCUDAShared.array

    def make(key, base):
        name = f"{key[0].rsplit('/', 1)[-1]}:{key[1]}"
        return CheckedArray(base, Tracker(name, base, hazards))

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:  # dynamic shared memory: not checked
            return original(self, shape, dtype, alignment)
        caller = sys._getframe(1)
        key = (caller.f_code.co_filename, caller.f_lineno)
        return cudasim_fixes.allocate_shared(self, shape, dtype, key, make)

    kernelapi.FakeCUDAShared.array = array
    return hazards
