"""The threaded CPU time loop: bitwise thread invariance, its synchronisation and its policy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest
from numba import njit, prange

from tests.conftest import ROOT, cli, write_tiny
from tsn_mpi.backends.cpu import sync
from tsn_mpi.backends.cpu.threads import (
    ALIGN,
    MIN_NEURONS_PER_THREAD,
    Tuner,
    auto_threads,
    bounds,
    choose,
    loop_threads,
    spin_us,
)

HERE = Path(__file__).resolve().parent

# tiny, plus feed-forward inputs, current noise and a cell model with state (GLIF3; the LIF
# fast path runs in tests/phases/test_loop_threads.py): every branch of the loop runs
FEATURES = """
[plastic]
l_ff = 8

[neuron]
model = "tsn_mpi.models.glif:glif3"
noise_sigma = 0.3
noise_model = "current"
"""


def test_every_mode_is_bitwise_the_same_on_1_2_and_3_threads(tmp_path):
    run = tmp_path / "run"
    write_tiny(run, FEATURES)
    r = cli("init", str(run))
    assert r.returncode == 0, r.stderr
    env = dict(os.environ, NUMBA_NUM_THREADS="3", PYTHONPATH=str(ROOT))
    env.pop("TSN_MPI_COMM", None)
    r = subprocess.run([sys.executable, str(HERE / "loop_threads_prog.py"), str(run)],
                       capture_output=True, text=True, timeout=900, env=env)  # fmt: skip
    assert r.returncode == 0 and r.stdout.strip().endswith("OK"), r.stdout + r.stderr[-3000:]


@njit(nogil=True)
def _meet(k, nt, steps, ctr, spin, out):  # pragma: no cover - jitted
    for s in range(1, steps + 1):
        out[k, s] = sync.atomic_load(ctr, 0)  # every thread sees the same counter per step
        sync.arrive(ctr, 1)
        sync.wait_until(ctr, 1, s * nt, spin)
        if k == 0:
            sync.atomic_add(ctr, 0, 1)
        sync.arrive(ctr, 2)
        sync.wait_until(ctr, 2, s * nt, spin)


@njit(parallel=True)
def _region(nt, steps, ctr, spin, out):  # pragma: no cover - jitted
    for k in prange(nt):
        _meet(k, nt, steps, ctr, spin, out)


@pytest.mark.parametrize("spin", [0, 20_000])
def test_counters_separate_the_steps_of_threads(spin):
    """Threads meeting twice per step see each step's value exactly once, whether the waits
    spin or sleep in the kernel (spin 0: every wait takes the futex path)."""
    nt = min(2, numba.get_num_threads())
    if nt < 2:
        pytest.skip("one numba thread")
    steps = 2000
    ctr = sync.counters(3)
    assert ctr.ctypes.data % 64 == 0 and ctr.size == 3 * sync.LINE
    out = np.full((nt, steps + 1), -1, np.int64)
    _region(nt, steps, ctr, spin, out)
    assert (out[:, 1:] == np.arange(steps)).all()
    assert ctr[0] == steps and ctr[sync.LINE] == ctr[2 * sync.LINE] == steps * nt
    assert ctr[sync.LINE + 1] == ctr[2 * sync.LINE + 1] == 0  # no thread left asleep


def test_spin_calibration_is_positive():
    assert sync.spins_for(10.0) >= 1 and sync.spins_for(1000.0) > sync.spins_for(10.0)


@pytest.mark.parametrize("n,nt", [(256, 2), (256, 3), (4096, 2), (100_000, 8), (85, 2), (1, 2)])
def test_bounds_cover_the_neurons_in_aligned_ranges(n, nt):
    b = bounds(n, nt)
    assert b.size == nt + 1 and b[0] == 0 and b[-1] == n and (np.diff(b) >= 0).all()
    assert (b[:-1] % ALIGN == 0).all()  # no flag word or cache line shared between threads
    if n >= ALIGN * nt:
        assert np.diff(b).max() - np.diff(b).min() <= 2 * ALIGN


def test_auto_gives_each_thread_enough_neurons():
    assert auto_threads(256, 8) == 1
    assert auto_threads(2 * MIN_NEURONS_PER_THREAD, 8) == 2
    assert auto_threads(4096, 2) == 2 and auto_threads(1_000_000, 8) == 8
    assert loop_threads("auto", 4096, 2) == 2 and loop_threads(3, 4096, 8) == 3
    assert loop_threads(4, 2, 8) == 2  # no more threads than neurons


def test_spin_before_sleep_from_the_config(monkeypatch):
    """run.loop_spin_us: a number as given; 'auto' long while each thread has a core, short
    once the node's ranks and threads share cores."""
    from tsn_mpi.backends.cpu import threads as th
    from tsn_mpi.comm import threads as comm_threads

    monkeypatch.setattr(comm_threads, "cores_available", lambda: 8)
    monkeypatch.setattr(th.os, "cpu_count", lambda: 8)
    assert spin_us(2, 4, 25.0) == 25.0 and spin_us(2, 4, 0.0) == 0.0
    assert spin_us(2, 4) == spin_us(2, 4, "auto") == th.SPIN_US  # 8 threads on 8 cores
    assert spin_us(4, 4) == th.SPIN_US_SHARED  # 16 threads on 8 cores


def test_an_explicit_count_above_the_ranks_threads_is_refused():
    with pytest.raises(ValueError, match="run.loop_threads = 99"):
        choose(99, 100_000)
    nt, why = choose("auto", 10)
    assert nt == 1 and "auto" in why


def test_tuner_keeps_the_faster_count_and_backs_off():
    t = Tuner(2, every=4, max_every=16)
    calls = []

    def go(cost):  # cost[nt]: seconds per step
        nt = t.next()
        calls.append(nt)
        t.record(nt, cost[nt] * 100, 100)

    for _ in range(60):  # threads pay: stays on 2, probes 1 ever more rarely
        go({1: 2.0, 2: 1.0})
    assert t.current == 2 and t.every == 16
    assert calls.count(1) <= 6
    for _ in range(40):  # the machine fills up: threads now lose, switch to 1
        go({1: 2.0, 2: 8.0})
    assert t.current == 1
    assert t.steps[1] + t.steps[2] == 100 * len(calls)


def test_a_bad_setting_is_one_line(tmp_path):
    run = tmp_path / "run"
    write_tiny(run, "[run]\nloop_threads = 0\n")
    r = cli("init", str(run))
    assert r.returncode != 0 and "run.loop_threads" in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.strip()]) == 1, r.stderr
