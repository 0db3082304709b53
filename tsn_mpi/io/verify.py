"""``tsn-mpi verify DIR|FILE...``: check files against their checksums without training.

Every dataset of a file written by tsn-mpi is read in blocks of about ``BLOCK_BYTES`` and
compared with the checksums its writers stored (:mod:`tsn_mpi.io.checksum`), so memory stays
small whatever the size of P.  A directory means its ``*.h5`` files and those of its
``checkpoints/`` folder.  Exit code 0 when every file is intact, 65 when one is corrupted,
incomplete or unreadable, 2 for a path that does not exist.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from tsn_mpi.errors import CorruptFileError
from tsn_mpi.io import atomic, checksum
from tsn_mpi.io.h5_read import COMPLETE, _open_ro
from tsn_mpi.io.names import CHECKPOINT_DIR, Checkpoint, list_checkpoints

BLOCK_BYTES = 64 << 20  # bytes read per step while verifying


@dataclass
class FileReport:
    """The verdict on one file."""

    path: Path
    status: str = "ok"  # ok | unverified (no checksums: an older tsn-mpi) | corrupt | incomplete
    problems: list[str] = field(default_factory=list)
    datasets: int = 0
    nbytes: int = 0
    seconds: float = 0.0

    @property
    def intact(self) -> bool:
        return self.status in ("ok", "unverified")


def _rows_per_block(dset: h5py.Dataset, block_bytes: int) -> int:
    row = dset.dtype.itemsize * int(np.prod(dset.shape[1:], dtype=np.int64))
    return max(1, block_bytes // max(1, row))


def _check_global(f: h5py.File, name: str, block_bytes: int) -> str | None:
    d = f[name]
    want = int(d.attrs[checksum.GLOBAL_ATTR])
    if d.ndim == 0:
        got = checksum.whole_crc(d[()])
    else:
        got, per = 0, _rows_per_block(d, block_bytes)
        for lo in range(0, d.shape[0], per):
            got = checksum.whole_crc(d[lo : lo + per], got)
    if got != want:
        return f"dataset '{name}' does not match its checksum"
    return None


def _check_rows(f: h5py.File, name: str, block_bytes: int) -> str | None:
    d, c = f[name], f[checksum.checksum_name(name)]
    if c.shape[0] != d.shape[0]:
        return f"dataset '{name}' has {d.shape[0]} rows but {c.shape[0]} checksums"
    bad: list[np.ndarray] = []
    per = _rows_per_block(d, block_bytes)
    for lo in range(0, d.shape[0], per):
        hi = min(lo + per, d.shape[0])
        got = checksum.row_crcs(d[lo:hi])
        bad.append(np.flatnonzero(got != c[lo:hi]) + lo)
    rows = np.concatenate(bad) if bad else np.zeros(0, np.int64)
    return checksum.mismatch(f.filename, name, rows).split(": ", 1)[1] if rows.size else None


def _check_csr(f: h5py.File, name: str, block_bytes: int) -> str | None:
    group = name.rsplit("/", 1)[0]
    d, c, ptr_d = f[name], f[checksum.checksum_name(name)], f[f"{group}/indptr"]
    n = ptr_d.shape[0] - 1
    if c.shape[0] != n:
        return f"dataset '{name}' has {c.shape[0]} checksums for {n} neurons"
    entry = d.dtype.itemsize * int(np.prod(d.shape[1:], dtype=np.int64))
    bad: list[np.ndarray] = []
    lo = 0
    while lo < n:  # blocks of neurons holding about block_bytes of entries
        ptr = ptr_d[lo : min(n, lo + 4096) + 1].astype(np.int64)
        hi_i = int(np.searchsorted(ptr, ptr[0] + max(1, block_bytes // max(1, entry)), "right"))
        hi = lo + max(1, min(hi_i - 1, len(ptr) - 1))
        ptr = ptr[: hi - lo + 1]
        if ptr[0] < 0 or np.any(np.diff(ptr) < 0) or ptr[-1] > d.shape[0]:
            return f"'{group}/indptr' rows {lo}:{hi} are not valid offsets"
        got = checksum.csr_crcs(ptr, d[int(ptr[0]) : int(ptr[-1])])
        bad.append(np.flatnonzero(got != c[lo:hi]) + lo)
        lo = hi
    rows = np.concatenate(bad) if bad else np.zeros(0, np.int64)
    if rows.size:
        return checksum.mismatch(f.filename, name, rows, "neurons").split(": ", 1)[1]
    return None


def _datasets(f: h5py.File) -> list[str]:
    names: list[str] = []
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    return [n for n in names if not n.startswith(checksum.GROUP + "/")]


def verify_file(path: str | Path, block_bytes: int = BLOCK_BYTES) -> FileReport:
    """Read every dataset of ``path`` in blocks and compare it with its checksums."""
    path = Path(path)
    rep = FileReport(path)
    t0 = time.perf_counter()
    if not h5py.is_hdf5(path):
        rep.status, rep.problems = "corrupt", ["not an HDF5 file (header damaged?)"]
        return rep
    try:
        with _open_ro(path) as f:
            if not f.attrs.get(COMPLETE, False):
                rep.status = "incomplete"
                rep.problems.append(f"no '{COMPLETE}' mark (its writer was stopped)")
            has = f.attrs.get(checksum.ROOT_ATTR) == checksum.ALGORITHM
            for name in _datasets(f):
                rep.datasets += 1
                d = f[name]
                rep.nbytes += d.size * d.dtype.itemsize
                cname = checksum.checksum_name(name)
                try:
                    if checksum.GLOBAL_ATTR in d.attrs:
                        problem = _check_global(f, name, block_bytes)
                    elif cname in f and f[cname].attrs.get("per") == "neuron":
                        problem = _check_csr(f, name, block_bytes)
                    elif cname in f:
                        problem = _check_rows(f, name, block_bytes)
                    else:
                        problem = f"dataset '{name}' has no checksum" if has else None
                except (OSError, KeyError, ValueError) as e:
                    problem = f"dataset '{name}' cannot be read: {str(e).splitlines()[0]}"
                if problem:
                    rep.problems.append(problem)
            if not has and rep.status == "ok":
                rep.status = "unverified"
    except OSError as e:
        rep.problems.append(f"cannot be opened: {str(e).splitlines()[0]}")
    if rep.problems and rep.status in ("ok", "unverified"):
        rep.status = "corrupt"
    rep.seconds = time.perf_counter() - t0
    return rep


def check_file(path: str | Path) -> None:
    """Raise CorruptFileError (one line: file, dataset, rows) unless ``path`` is intact."""
    rep = verify_file(path)
    if not rep.intact:
        raise CorruptFileError(f"{path}: {rep.problems[0]}")


def newest_intact(directory: str | Path, exclude: Path | None = None) -> Checkpoint | None:
    """The newest checkpoint of ``directory`` (other than ``exclude``) that verifies intact."""
    for c in reversed(list_checkpoints(directory)):
        if exclude is not None and c.path.resolve() == Path(exclude).resolve():
            continue
        if verify_file(c.path).intact:
            return c
    return None


def _checkpoint_folder(target: Path) -> Path | None:
    if target.is_dir() and (target / CHECKPOINT_DIR).is_dir():
        return target / CHECKPOINT_DIR
    return target if target.is_dir() and list_checkpoints(target) else None


def files_to_check(target: Path) -> tuple[list[Path], list[Path]]:
    """(HDF5 files, leftover temporary files) of a file or a directory (its ``*.h5`` and those
    of its ``checkpoints/``); checkpoints last, oldest first."""
    if target.is_file():
        return [target], []
    ckdir = _checkpoint_folder(target)
    files, temps = [], []
    for folder in dict.fromkeys([target, ckdir or target]):
        for p in sorted(folder.iterdir()):
            if atomic.is_temp_name(p.name):
                temps.append(p)
            elif p.suffix == ".h5" and p.is_file():
                files.append(p)
    order = [c.path for c in list_checkpoints(ckdir)] if ckdir else []
    return [p for p in files if p not in order] + [p for p in order if p in files], temps


def _rate(rep: FileReport) -> str:
    mb = rep.nbytes / 1e6
    speed = f", {mb / rep.seconds:.0f} MB/s" if rep.seconds > 0 and mb >= 1 else ""
    return f"{rep.datasets} datasets, {mb:.1f} MB, {rep.seconds:.2f} s{speed}"


def verify_main(targets: list[Path], quiet: bool = False, out=None) -> int:
    """Verify ``targets`` (files or run directories) and print one line per file; returns the
    exit code (0 intact, 65 a file is damaged, 2 a path does not exist)."""
    out = out or sys.stdout
    missing = [t for t in targets if not t.exists()]
    if missing:
        print(f"tsn-mpi: error: {missing[0]}: no such file or directory", file=sys.stderr)
        return 2
    reports: list[FileReport] = []
    for target in targets:
        files, temps = files_to_check(target)
        if not files:
            print(f"{target}: no HDF5 files", file=out)
        for p in files:
            rep = verify_file(p)
            reports.append(rep)
            if rep.status == "ok" and not quiet:
                print(f"ok          {p}  ({_rate(rep)})", file=out)
            elif rep.status == "unverified" and not quiet:
                print(f"unverified  {p}  (no checksums: written by an older tsn-mpi)", file=out)
            elif not rep.intact:
                more = f" (+{len(rep.problems) - 1} more)" if len(rep.problems) > 1 else ""
                print(f"{rep.status.upper():<11} {p}: {rep.problems[0]}{more}", file=out)
        for t in temps:
            print(
                f"leftover    {t}  (temporary file of a stopped writer; safe to delete when no "
                "job is writing here)",
                file=out,
            )
        ckdir = _checkpoint_folder(target)
        bad = [r for r in reports if not r.intact]
        if ckdir is not None and any(r.path.parent == ckdir for r in bad):
            good = [r.path for r in reports if r.intact and r.path.parent == ckdir]
            ok = [c for c in list_checkpoints(ckdir) if c.path in good]
            hint = (
                f"newest intact checkpoint: {ok[-1].label} (train with "
                f"--restore-from-checkpoint {ok[-1].label})"
                if ok
                else "no intact checkpoint"
            )
            print(f"{target}: {hint}", file=out)
    nbad = sum(not r.intact for r in reports)
    total = sum(r.nbytes for r in reports) / 1e6
    secs = sum(r.seconds for r in reports)
    print(
        f"{len(reports)} file(s), {total:.1f} MB in {secs:.2f} s: "
        f"{len(reports) - nbad} intact, {nbad} damaged",
        file=out,
    )
    return CorruptFileError.exit_code if nbad else 0
