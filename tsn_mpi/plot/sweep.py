"""Compare training runs: a summary table and one figure of all correlation curves.

``tsn-mpi gather DIR... [--out FIG] [--sort KEY]`` calls :func:`main`.  Each DIR is a run
directory holding ``learning-curve.h5`` (and usually ``config.toml``); directories without a
complete learning curve are skipped with a one-line warning on stderr.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tsn_mpi.errors import TsnError
from tsn_mpi.plot.figures import new_figure, read_learning_curve

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: summary columns: row key, header, format
SUMMARY = (
    ("n_loops", "loops", "d"),
    ("final_correlation", "final r", ".3f"),
    ("best_correlation", "best r", ".3f"),
    ("mean_last3_correlation", "last-3 r", ".3f"),
    ("final_rate_hz", "rate Hz", ".2f"),
    ("mean_s_per_loop", "s/loop", ".3g"),
)
SORT_KEYS = tuple(k for k, _, _ in SUMMARY)


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _warn(run_dir: Path, why: str) -> None:
    print(f"warning: skipping {run_dir}: {why}", file=sys.stderr)


def summarize(run_dir: str | Path, curve: dict[str, np.ndarray]) -> dict[str, Any]:
    """One row of the sweep table from a learning curve (see :func:`gather` for the keys)."""
    cor = curve["correlation"]
    meas = np.isfinite(cor)
    measured = cor[meas]
    nan = float("nan")
    n = int(curve["loop"].size)
    return {
        "run_dir": str(run_dir),
        "n_loops": n,
        "final_correlation": float(measured[-1]) if measured.size else nan,
        "best_correlation": float(measured.max()) if measured.size else nan,
        "mean_last3_correlation": float(measured[-3:].mean()) if measured.size else nan,
        "final_rate_hz": float(curve["firing_rate_hz"][-1]) if n else nan,
        "mean_s_per_loop": float(np.mean(curve["elapsed_s"])) if n else nan,
        "loop": curve["loop"][meas],
        "correlation": measured,
        "config": {},
    }


def gather(run_dirs: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Summarize the learning curve of every run directory, in the order given.

    Row keys: ``run_dir`` (str, as given), ``n_loops``, ``final_correlation`` (last measured),
    ``best_correlation``, ``mean_last3_correlation`` (mean of the last 3 measured),
    ``final_rate_hz`` (Hz, last loop), ``mean_s_per_loop`` (mean of the per-loop ``elapsed_s``),
    ``loop``/``correlation`` (1-D arrays, measured loops only; NaN summaries when none) and
    ``config`` (``config.toml`` flattened to ``{"section.key": value}``; empty without one).
    Directories without a readable, complete ``learning-curve.h5`` are skipped with a warning
    on stderr; an unreadable ``config.toml`` only warns.
    """
    rows = []
    for d in run_dirs:
        run_dir = Path(d)
        try:
            curve = read_learning_curve(run_dir / "learning-curve.h5")
        except TsnError as e:
            _warn(run_dir, str(e))
            continue
        row = summarize(d, curve)
        cfg = run_dir / "config.toml"
        if cfg.is_file():
            try:
                with open(cfg, "rb") as f:
                    row["config"] = _flatten(tomllib.load(f))
            except (OSError, tomllib.TOMLDecodeError) as e:
                print(f"warning: {run_dir}: cannot read config.toml: {e}", file=sys.stderr)
        rows.append(row)
    return rows


def varying_keys(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Config keys whose value is not the same in every row (missing counts as a value)."""
    keys = sorted({k for r in rows for k in r.get("config", {})})
    return [k for k in keys if len({repr(r.get("config", {}).get(k)) for r in rows}) > 1]


def _printable(s: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in s)


def _fmt(value: Any, spec: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "-"
    if spec and isinstance(value, (int, float, np.integer, np.floating)):
        return format(value, spec)
    return _printable(str(value))


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Aligned plain-text table: one line per row, a header, no control characters.

    Columns: the run directory, the summary values (``-`` where not measured), then every
    config key that differs between the rows.
    """
    cfg_keys = varying_keys(rows)
    header = ["run", *(h for _, h, _ in SUMMARY), *cfg_keys]
    right = [False] + [True] * len(SUMMARY) + [False] * len(cfg_keys)
    body = [
        [
            _printable(r["run_dir"]),
            *(_fmt(r[k], spec) for k, _, spec in SUMMARY),
            *(_fmt(r.get("config", {}).get(k)) for k in cfg_keys),
        ]
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(
            c.rjust(w) if r else c.ljust(w) for c, w, r in zip(line, widths, right, strict=True)
        )
        for line in [header, *body]
    ]
    return "\n".join(line.rstrip() for line in lines)


def plot_sweep(rows: Sequence[dict[str, Any]], out_file: str | Path) -> Path:
    """One figure overlaying every run's measured correlation vs loop; legend = run dir name.

    The format follows the suffix of ``out_file`` (png, pdf, svg...). The legend is left out
    above 40 runs. Returns the path written.
    """
    import matplotlib
    from matplotlib.ticker import MaxNLocator

    out = Path(out_file)
    fmt = out.suffix.lstrip(".").lower() or "png"
    with matplotlib.rc_context({"font.size": 9, "legend.fontsize": 7}):
        fig = new_figure((18 / 2.54, 11 / 2.54))
        ax = fig.subplots()
        for r in rows:
            name = Path(r["run_dir"]).name or str(r["run_dir"])
            ax.plot(r["loop"], r["correlation"], "o-", ms=2, lw=1, label=_printable(name))
        ax.set_xlabel("training loop")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("correlation (Pearson r)")
        ax.set_title(f"{len(rows)} runs")
        ax.grid(alpha=0.3)
        if 0 < len(rows) <= 40:
            ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False,
                      ncols=1 + len(rows) // 20)  # fmt: skip
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, format=fmt, dpi=150)
        fig.clear()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``tsn-mpi gather``: print the table of the given runs and write their figure.

    Returns 0, or 1 when no directory held a usable learning curve (nothing written).
    """
    p = argparse.ArgumentParser(
        prog="tsn-mpi gather",
        description="Summarize and compare the learning curves of several run directories.",
    )
    p.add_argument("run_dirs", nargs="+", metavar="DIR", help="run directories")
    p.add_argument("--out", default="sweep.png", metavar="FIG",
                   help="figure of all correlation curves (default: sweep.png)")  # fmt: skip
    p.add_argument("--sort", choices=SORT_KEYS, default=None,
                   help="order rows by this column, largest first (default: as given)")  # fmt: skip
    args = p.parse_args(argv)
    rows = gather(args.run_dirs)
    if not rows:
        print("error: no run directory holds a complete learning-curve.h5", file=sys.stderr)
        return 1
    if args.sort:
        rows.sort(key=lambda r: -r[args.sort] if not math.isnan(r[args.sort]) else math.inf)
    print(format_table(rows))
    out = plot_sweep(rows, args.out)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
