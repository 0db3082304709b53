#!/usr/bin/env python3
"""Create one run directory per value of a config key, for a SLURM job-array sweep.

    python launch/make-sweep.py BASE KEY VALUE [VALUE ...] --out SWEEP_DIR [--force]
    python launch/make-sweep.py runs/base learning.penlambda 0.5 0.8 1.6 --out sweeps/lam

BASE is a run directory holding config.toml, or a config file.  KEY is ``section.key`` as in
config.toml; each VALUE is read as a TOML value (``0.5``, ``100``, ``true``, ``"x"``) and
otherwise taken as a string (``gpu``, ``auto``).  For each value this writes
``SWEEP_DIR/<key>-<value>/config.toml`` (the base config with that one key changed, validated
with ``tsn_mpi.config.load_config``), and ``SWEEP_DIR/runs.txt`` (one run directory per line:
line i+1 is array task i) and ``SWEEP_DIR/sweep.json``.  Relative file names in the base config
(target files, plugin files) are made absolute so they still resolve from the new directories.
Then it prints the commands that run the sweep and compare the runs:

    sbatch --array=0-2 launch/sweep-array.sbatch sweeps/lam
    tsn-mpi gather sweeps/lam/*/ --out sweeps/lam/sweep.png

Exit status: 0 done, 2 bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_NAME = "config.toml"
RUNS_NAME = "runs.txt"


class SweepError(Exception):
    """Bad input; the message is printed as one line."""


def parse_value(text: str) -> Any:
    """A TOML literal (number, bool, quoted string, array) or else the text itself."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def dir_name(key: str, value: Any) -> str:
    """``penlambda-0.5`` for ``learning.penlambda`` = 0.5 (safe for file names)."""
    text = json.dumps(value) if not isinstance(value, str) else value
    text = re.sub(r"[^A-Za-z0-9.+_-]+", "_", text).strip("_") or "empty"
    return f"{key.rsplit('.', 1)[-1]}-{text}"


def _absolute_files(data: dict[str, dict[str, Any]], base_dir: Path) -> None:
    """Make string values that name a file relative to ``base_dir`` absolute (in place)."""
    for section in data.values():
        if not isinstance(section, dict):
            continue
        for name, value in section.items():
            if not isinstance(value, str) or not value or Path(value).is_absolute():
                continue
            file_part, sep, func = value.partition(":")  # "plugins.py:func" plugins
            cand = base_dir / file_part
            if file_part and cand.is_file():
                section[name] = str(cand.resolve()) + (sep + func if sep else "")


def make_sweep(base: str | Path, key: str, values: list[str], out: str | Path,
               force: bool = False) -> list[Path]:
    """Write the run directories; returns them in array-task order."""
    from tsn_mpi.config import dump_toml, from_dict, load_config
    from tsn_mpi.errors import TsnError

    base = Path(base)
    base_cfg = base / CONFIG_NAME if base.is_dir() else base
    if not base_cfg.is_file():
        raise SweepError(f"{base}: neither a run directory with {CONFIG_NAME} nor a config file")
    try:
        load_config(base_cfg)
    except TsnError as exc:
        raise SweepError(f"base config: {exc}") from None
    with base_cfg.open("rb") as fh:
        data = tomllib.load(fh)
    _absolute_files(data, base_cfg.parent)
    if key.count(".") != 1:
        raise SweepError(f"key {key!r}: expected section.key, e.g. learning.penlambda")
    section, name = key.split(".")
    if not values:
        raise SweepError("no values given")
    parsed = [parse_value(v) for v in values]
    names = [dir_name(key, v) for v in parsed]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise SweepError(f"values give the same directory name twice: {', '.join(dups)}")
    out = Path(out)
    runs = [out / n for n in names]
    for run in runs:
        if (run / CONFIG_NAME).exists() and not force:
            raise SweepError(f"{run / CONFIG_NAME} already exists (use --force to overwrite)")
    texts = []
    for value in parsed:
        changed = {s: dict(v) if isinstance(v, dict) else v for s, v in data.items()}
        changed.setdefault(section, {})[name] = value
        try:
            cfg = from_dict(changed, f"{base_cfg} with {key} = {value!r}")
        except TsnError as exc:
            raise SweepError(str(exc)) from None
        texts.append(dump_toml(cfg))
    for run, text in zip(runs, texts, strict=True):
        if run.exists() and force:
            shutil.rmtree(run)
        run.mkdir(parents=True, exist_ok=True)
        (run / CONFIG_NAME).write_text(text)
        try:
            load_config(run / CONFIG_NAME)
        except TsnError as exc:  # pragma: no cover - dump_toml/from_dict disagree
            raise SweepError(f"{run / CONFIG_NAME}: {exc}") from None
    (out / RUNS_NAME).write_text("".join(f"{n}\n" for n in names))
    meta = {"base": str(base_cfg.resolve()), "key": key, "values": parsed, "runs": names}
    (out / "sweep.json").write_text(json.dumps(meta, indent=1) + "\n")
    return runs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="make-sweep.py",
        description="One run directory per value of a config key, for launch/sweep-array.sbatch.",
    )
    p.add_argument("base", help="run directory with config.toml, or a config file")
    p.add_argument("key", help="section.key, e.g. learning.penlambda")
    p.add_argument("values", nargs="+", help="values (TOML literals or plain strings)")
    p.add_argument("--out", required=True, help="sweep directory to create")
    p.add_argument("--force", action="store_true", help="replace existing run directories")
    args = p.parse_args(argv)
    try:
        runs = make_sweep(args.base, args.key, args.values, args.out, args.force)
    except SweepError as exc:
        print(f"make-sweep: error: {exc}", file=sys.stderr)
        return 2
    here = Path(__file__).resolve().parent
    for r in runs:
        print(f"wrote {r / CONFIG_NAME}")
    print(f"wrote {Path(args.out) / RUNS_NAME}; run the sweep and compare with:")
    print(f"  TSN_TOTAL_LOOPS=100 sbatch --array=0-{len(runs) - 1} {here}/sweep-array.sbatch "
          f"{args.out}")
    print(f"  tsn-mpi gather {args.out}/*/ --out {args.out}/sweep.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
