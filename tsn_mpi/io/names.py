"""Checkpoint file names, listing and lookup (spec §6, pitfall 18).

Checkpoints live in ``<run_dir>/checkpoints/`` and are named after the reference's suffixes:

- ``ckpt-{loop}.h5``            after loop ``loop`` (reference suffix ``{loop}``);
- ``ckpt-{loop}-cor0.712.h5``   best so far, mean correlation 0.712 (``{loop}-cor{x.xxx}``);
- ``ckpt-{loop}i.h5``           interrupted during loop ``loop``: holds mid-loop state.

A *label* is the part between ``ckpt-`` and ``.h5`` ("5", "37-cor0.712", "5i"), as the
reference's ``restore_from_checkpoint`` took it.  Unlike the reference, "-cor" labels can be
restored (the reference stripped the last character and failed to parse them).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from tsn_mpi.errors import CheckpointError

CHECKPOINT_DIR = "checkpoints"
# also the order of kinds within one loop: "5i" (stopped inside loop 5) comes before "5" and
# "5-cor..." (both written at the end of loop 5)
KINDS = ("i", "", "best")

_FLOAT = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_LABEL = re.compile(rf"(\d+)(?:(i)|-cor({_FLOAT}))?")
_NAME = re.compile(rf"ckpt-({_LABEL.pattern})\.h5")


class Checkpoint(NamedTuple):
    """One checkpoint file found in a directory."""

    loop: int
    kind: str  # "", "best" or "i"
    cor: float | None  # the correlation of a "best" checkpoint
    path: Path

    @property
    def label(self) -> str:
        """The reference-style suffix: "5", "37-cor0.712", "5i"."""
        return _label(self.loop, self.kind, self.cor)


def _label(loop: int, kind: str, cor: float | None) -> str:
    if kind == "best":
        return f"{loop}-cor{cor:.3f}"
    return f"{loop}{kind}"


def checkpoint_dir(run_dir: str | Path) -> Path:
    """``<run_dir>/checkpoints``."""
    return Path(run_dir) / CHECKPOINT_DIR


def checkpoint_name(loop: int, kind: str = "", cor: float | None = None) -> str:
    """File name of a checkpoint: kind "" (``ckpt-5.h5``), "i" (``ckpt-5i.h5``) or "best"
    (``ckpt-5-cor0.712.h5``, cor rounded to 3 decimals; passing ``cor`` implies "best")."""
    if cor is not None and kind == "":
        kind = "best"
    if kind not in KINDS:
        raise ValueError(f"checkpoint kind {kind!r}: expected one of {KINDS}")
    if loop < 0:
        raise ValueError(f"checkpoint loop {loop} is negative")
    if kind == "best" and (cor is None or cor != cor):
        raise ValueError("a best checkpoint needs a finite correlation 'cor'")
    if kind != "best" and cor is not None:
        raise ValueError(f"only best checkpoints carry a correlation (kind={kind!r})")
    return f"ckpt-{_label(int(loop), kind, cor)}.h5"


def _parse_label(label: str) -> tuple[int, str, float | None] | None:
    m = _LABEL.fullmatch(label)
    if m is None:
        return None
    loop, interrupted, cor = m.groups()
    if cor is not None:
        return int(loop), "best", float(cor)
    return int(loop), "i" if interrupted else "", None


def parse_checkpoint_name(name: str) -> tuple[int, str, float | None] | None:
    """``(loop, kind, cor)`` of a checkpoint file name, or None for any other name
    (temporary files of a writer in progress start with "." and are never matched)."""
    m = _NAME.fullmatch(name)
    return None if m is None else _parse_label(m.group(1))


def _sort_key(c: Checkpoint) -> tuple[int, int, float]:
    return c.loop, KINDS.index(c.kind), c.cor if c.cor is not None else 0.0


def list_checkpoints(directory: str | Path) -> list[Checkpoint]:
    """Every checkpoint-named file in ``directory``, sorted by (loop, kind), oldest first.
    A missing directory gives an empty list.  Completeness is not checked here."""
    d = Path(directory)
    if not d.is_dir():
        return []
    found = []
    for p in d.iterdir():
        parsed = parse_checkpoint_name(p.name)
        if parsed is not None and p.is_file():
            found.append(Checkpoint(*parsed, p))
    return sorted(found, key=_sort_key)


def _available(found: list[Checkpoint]) -> str:
    """ "5, 6 (incomplete: 7i)": the labels, complete ones first."""
    from tsn_mpi.io.h5_read import is_complete

    ok = [c.label for c in found if is_complete(c.path)]
    bad = [c.label for c in found if c.label not in ok]
    text = ", ".join(ok) if ok else "none"
    return f"{text} (incomplete: {', '.join(bad)})" if bad else text


def find_checkpoint(directory: str | Path, spec: str | int | None = None) -> Checkpoint:
    """The checkpoint to restore.

    ``spec`` None: the newest complete one (highest loop; "5" is newer than "5i"), silently
    skipping files without the ``complete`` mark.  An int or a label ("5", "5i",
    "37-cor0.712", or a file name "ckpt-5i.h5"): exactly that one; it must be complete.
    Raises CheckpointError naming the directory and the available checkpoints.
    """
    from tsn_mpi.io.h5_read import is_complete

    d = Path(directory)
    found = list_checkpoints(d)
    if spec is None:
        for c in reversed(found):
            if is_complete(c.path):
                return c
        raise CheckpointError(f"no complete checkpoint in {d}; available: {_available(found)}")
    text = str(spec).strip()
    if isinstance(spec, bool) or not text:
        raise CheckpointError(f"checkpoint {spec!r}: expected a loop number or a label like 5i")
    want = parse_checkpoint_name(text) or _parse_label(text)
    if want is None:
        raise CheckpointError(
            f"checkpoint {text!r} is not a checkpoint label (like 5, 5i or 37-cor0.712); "
            f"available in {d}: {_available(found)}"
        )
    loop, kind, cor = want
    for c in found:
        if (c.loop, c.kind) == (loop, kind) and (cor is None or abs(c.cor - cor) < 5e-4):
            if not is_complete(c.path):
                raise CheckpointError(
                    f"checkpoint {c.path} is incomplete (its writer was stopped); "
                    f"available in {d}: {_available(found)}"
                )
            return c
    raise CheckpointError(f"no checkpoint {text!r} in {d}; available: {_available(found)}")


def prune_checkpoints(directory: str | Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` periodic, end-of-run and interrupt checkpoints
    (kinds "" and "i" after loop 0) of ``directory``; ``keep`` 0 keeps all.  ``ckpt-0`` (init's)
    and the best-correlation checkpoint are never deleted.  Returns the deleted paths."""
    if keep <= 0:
        return []
    from tsn_mpi.io.h5_read import is_complete

    rolling = [c for c in list_checkpoints(directory) if c.kind in ("", "i") and c.loop > 0]
    kept = [c for c in rolling if is_complete(c.path)][-keep:]
    gone = []
    for c in rolling:
        if kept and c not in kept and _sort_key(c) < _sort_key(kept[-1]):
            c.path.unlink(missing_ok=True)
            gone.append(c.path)
    return gone
