"""When ``train`` writes periodic checkpoints, which it keeps, and what a corrupted one says.

Periodic checkpoints (``ckpt-<loop>.h5``, the same content as the end-of-run one) are written
after loop ``L`` when ``L`` is a multiple of ``run.checkpoint_every`` (``--checkpoint-every``),
or when ``run.checkpoint_minutes`` of wall time have passed since the last one.  The wall-time
decision is rank 0's clock, carried to every rank by the loop's existing spike-count Allreduce,
so all ranks checkpoint at the same loop boundary and no collective is added.  After each
checkpoint rank 0 deletes all but the newest ``run.checkpoint_keep`` periodic and interrupt
checkpoints (ckpt-0 and the best-correlation one stay).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from tsn_mpi.comm.agree import AgreedError, agree
from tsn_mpi.errors import ConfigError, CorruptFileError, TsnError
from tsn_mpi.io.atomic import remove_temp_files
from tsn_mpi.io.names import checkpoint_dir, prune_checkpoints


@dataclass
class CheckpointSchedule:
    """Periodic checkpoint policy of one ``train`` call."""

    every: int = 0  # loops (0: off)
    minutes: float = 0.0  # wall minutes since the last checkpoint (0: off)
    keep: int = 2  # newest periodic/interrupt checkpoints kept (0: all)
    t_last: float = field(default_factory=lambda: time.monotonic())

    @classmethod
    def from_config(
        cls,
        run_cfg,
        every: int | None = None,
        minutes: float | None = None,
        keep: int | None = None,
    ) -> CheckpointSchedule:
        """The config's ``run.checkpoint_*`` keys, overridden by the given values."""
        every = run_cfg.checkpoint_every if every is None else every
        minutes = run_cfg.checkpoint_minutes if minutes is None else minutes
        keep = run_cfg.checkpoint_keep if keep is None else keep
        for name, v in (("every", every), ("minutes", minutes), ("keep", keep)):
            if v < 0:
                raise ConfigError(f"--checkpoint-{name} = {v}: must be >= 0 (0: off)")
        return cls(int(every), float(minutes), int(keep))

    def wall_flag(self, rank: int) -> int:
        """1 on rank 0 when the wall-time interval has passed (0 elsewhere): summed into the
        loop's Allreduce, every rank learns rank 0's decision."""
        if rank != 0 or self.minutes <= 0:
            return 0
        return int(time.monotonic() - self.t_last >= 60.0 * self.minutes)

    def due(self, loop: int, wall_due: bool) -> bool:
        """Whether loop ``loop`` ends with a periodic checkpoint."""
        return bool(wall_due) or (self.every > 0 and loop % self.every == 0)

    def written(self) -> None:
        """A checkpoint was written: the wall-time interval starts again."""
        self.t_last = time.monotonic()

    def describe(self) -> str:
        parts = [f"every {self.every} loop(s)"] if self.every else []
        if self.minutes:
            parts.append(f"every {self.minutes:g} min of wall time")
        keep = f"keeping the newest {self.keep}" if self.keep else "keeping all"
        when = " and ".join(parts) if parts else "only at the end"
        return f"checkpoints {when}; {keep} (+ ckpt-0 and the best)"


def start(run) -> None:
    """Rank 0 removes temporary checkpoint files left by killed writers of this run."""
    if run.comm.rank == 0:
        remove_temp_files(checkpoint_dir(run.run_dir), "ckpt-")


def prune(run, keep: int) -> None:
    """After a checkpoint: rank 0 deletes the periodic ones beyond the newest ``keep``."""
    if run.comm.rank == 0:
        prune_checkpoints(checkpoint_dir(run.run_dir), keep)


def restore_naming_intact(run, ck, fn):
    """``agree(comm, fn)``; when the checkpoint ``ck`` turns out corrupted, rank 0 moves it
    aside (``<name>.corrupt``, kept for inspection, no longer a checkpoint) and the error also
    names the newest checkpoint that verifies intact, which the next ``train`` resumes from."""
    try:
        return agree(run.comm, fn)
    except TsnError as exc:  # AgreedError on several ranks, the error itself on one
        if exc.exit_code != CorruptFileError.exit_code or ck is None:
            raise
        if not str(exc).startswith(str(ck.path)):
            raise  # another file (not the checkpoint) is damaged
        hint = None
        if run.comm.rank == 0:
            from tsn_mpi.io.verify import newest_intact

            moved = ck.path.with_name(ck.path.name + ".corrupt")
            try:
                ck.path.replace(moved)
                hint = f"moved aside as {moved.name}"
            except OSError as e:
                hint = f"could not move it aside ({e.strerror})"
            good = newest_intact(checkpoint_dir(run.run_dir), exclude=ck.path)
            if good is None:
                hint += "; no other checkpoint is intact (run 'tsn-mpi init' again)"
            else:
                hint += (
                    f"; the newest intact checkpoint is {good.path.name}: 'tsn-mpi train "
                    f"{run.run_dir}' resumes from it (or --restore-from-checkpoint {good.label})"
                )
        if run.comm.size > 1:
            hint = run.comm.bcast(hint, root=0)
        raise AgreedError(f"{exc}; {hint}", exc.exit_code) from None
