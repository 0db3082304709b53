"""tsn_mpi.monitor: what the resource sampler reads."""

from __future__ import annotations

import sys
import types

from numba import cuda

from tsn_mpi import monitor


def test_monitor_reads_gpu_memory_of_the_selected_device(monkeypatch):
    """GPU memory comes from the device the GPU backend selected (numba.cuda); none without."""
    fake = types.ModuleType("tsn_mpi.backends.gpu.device")
    monkeypatch.setitem(sys.modules, "tsn_mpi.backends.gpu.device", fake)
    assert monitor._gpu_bytes() is None  # the module is there, no device selected
    fake.SELECTED = 1
    picked = []

    class Ctx:
        def get_memory_info(self):
            return 3 * 2**30, 80 * 2**30  # free, total

    monkeypatch.setattr(cuda, "select_device", picked.append)
    monkeypatch.setattr(cuda, "current_context", Ctx)
    assert monitor._gpu_bytes() == 77 * 2**30 and picked == [1]
    monkeypatch.setattr(cuda, "current_context", lambda: 1 / 0)
    assert monitor._gpu_bytes() is None  # a driver error gives no reading, not a crash


def test_loop_times_leave_out_compilation_and_the_first_loop():
    """README command 1's first loop: 20 s of which 19 s compile, then 0.9 s loops."""
    lt = monitor.LoopTimes()
    assert lt.per_loop() != lt.per_loop()  # NaN before any loop
    lt.add(20.0, compile_s=19.0)
    assert lt.per_loop() == 1.0 and lt.eta(99) == 99.0  # loop 1 alone, compile left out
    lt.add(0.9)
    assert lt.per_loop() == 0.9  # loop 1 (cold caches) dropped once loop 2 exists
    for _ in range(10):
        lt.add(0.5)
    lt.add(2.0)  # a checkpoint loop
    assert abs(lt.per_loop() - (4 * 0.5 + 2.0) / 5) < 1e-12  # the last 5 loops
    assert lt.eta(0) == 0.0
    lt.add(0.1, compile_s=5.0)  # never negative
    assert lt.own[-1] == 0.0
