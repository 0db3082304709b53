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
