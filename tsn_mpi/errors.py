"""User-facing error types.

Every error a user can fix (bad config, missing file, wrong checkpoint) is a subclass of
:class:`TsnError`; the CLI prints its message as one line on rank 0 and exits with code 2.
"""

from __future__ import annotations


class TsnError(Exception):
    """Base class of errors caused by user input; the message names the culprit."""

    exit_code = 2


class ConfigError(TsnError):
    """A configuration key is unknown, mistyped or out of range."""


class PluginError(TsnError):
    """A plugin cannot be imported or returned something of the wrong shape."""


class DataFileError(TsnError):
    """A data file (targets, rates, network) is missing or malformed."""


class CheckpointError(TsnError):
    """A checkpoint is missing, incomplete, or belongs to another model."""


class LaunchError(TsnError):
    """The job was launched inconsistently (e.g. N singletons instead of one N-rank job)."""


class DivergenceError(TsnError):
    """Weights, P or currents became non-finite during training."""

    exit_code = 3


class RunInUseError(TsnError):
    """Another live job (its heartbeat fresh, its process alive) is working on the run
    directory: a second one would interleave its checkpoints and learning curve with it.
    ``--force`` starts anyway (e.g. when that job's node died less than two minutes ago)."""


class Interrupted(TsnError):
    """SIGTERM/SIGINT arrived; a checkpoint was written and the run stopped cleanly.

    Exit code 75 (EX_TEMPFAIL, "try again"): batch scripts resubmit on it.
    """

    exit_code = 75


class OutputError(TsnError):
    """An output file cannot be written: disk full, quota, read-only file system, I/O error
    or permission.  The message names the file, the bytes needed and free, and what is intact.

    Exit code 74 (EX_IOERR): make room (or fix the file system) and resume; files are replaced
    atomically, so every earlier checkpoint is intact.
    """

    exit_code = 74


class CorruptFileError(TsnError):
    """A file's data do not match the checksums its writer stored (silent corruption).

    Exit code 65 (EX_DATAERR): resume from an intact checkpoint (``tsn-mpi verify DIR``).
    """

    exit_code = 65
