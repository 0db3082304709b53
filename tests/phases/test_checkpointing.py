"""The periodic checkpoint policy of train: by loops, by rank 0's wall clock, validation."""

from __future__ import annotations

import pytest

from tsn_mpi.config import default_config
from tsn_mpi.errors import ConfigError
from tsn_mpi.phases import checkpointing
from tsn_mpi.phases.checkpointing import CheckpointSchedule


def test_defaults_come_from_the_config_and_are_overridden():
    s = CheckpointSchedule.from_config(default_config().run)
    assert (s.every, s.minutes, s.keep) == (0, 30.0, 2)
    s = CheckpointSchedule.from_config(default_config().run, every=5, minutes=0, keep=0)
    assert (s.every, s.minutes, s.keep) == (5, 0.0, 0)
    assert "every 5 loop(s)" in s.describe() and "keeping all" in s.describe()
    with pytest.raises(ConfigError, match="--checkpoint-keep = -1"):
        CheckpointSchedule.from_config(default_config().run, keep=-1)


def test_loops_multiple_of_every_and_rank0_wall_clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(checkpointing.time, "monotonic", lambda: now[0])
    s = CheckpointSchedule(every=3, minutes=2.0, keep=2)
    assert [loop for loop in range(1, 10) if s.due(loop, False)] == [3, 6, 9]
    assert s.wall_flag(0) == 0
    now[0] += 119.0
    assert s.wall_flag(0) == 0
    now[0] += 1.0
    assert s.wall_flag(0) == 1 and s.wall_flag(1) == 0  # only rank 0's clock decides
    assert s.due(4, True)
    s.written()
    assert s.wall_flag(0) == 0
    assert CheckpointSchedule(every=0, minutes=0.0).due(7, False) is False
