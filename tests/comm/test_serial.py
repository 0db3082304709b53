"""The serial communicator."""

from __future__ import annotations

import numpy as np

from tsn_mpi.comm import SerialComm, launcher_size, make_comm
from tsn_mpi.comm.serial import serial_exchange


def test_serial_collectives_are_copies():
    c = SerialComm()
    x = np.arange(5.0)
    assert np.array_equal(c.allreduce_sum(x), x)
    assert np.array_equal(c.allgatherv(x, c.allgather_counts(5)), x)
    out, counts = c.alltoallv(x, np.array([5]))
    assert np.array_equal(out, x) and list(counts) == [5]
    assert c.bcast({"a": 1}) == {"a": 1}


def test_serial_exchange_copies_count_and_ids():
    send = np.array([2, 7, 9, 0, 0], np.int32)
    recv = np.zeros(5, np.int32)
    serial_exchange(send, recv, 5, np.zeros(1))
    assert list(recv[:3]) == [2, 7, 9]


def test_make_comm_is_serial_without_launcher(monkeypatch):
    for var in ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS", "PMIX_RANK"):
        monkeypatch.delenv(var, raising=False)
    assert isinstance(make_comm(), SerialComm)
    monkeypatch.setenv("SLURM_NTASKS", "4")
    assert launcher_size() is None  # inside sbatch, outside srun
    monkeypatch.setenv("SLURM_STEP_ID", "0")
    assert launcher_size() == (4, "SLURM_NTASKS")
