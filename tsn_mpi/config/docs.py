"""Generate docs/configuration.md from the schema (``python -m tsn_mpi.config.docs``).

A test regenerates the text and fails when the committed file differs, so the reference can
never drift from the code.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tsn_mpi.config.load import _toml_value
from tsn_mpi.config.schema import KEYS, SECTIONS

HEADER = """# Configuration reference

Generated from `tsn_mpi/config/schema.py` by `python -m tsn_mpi.config.docs`; do not edit by
hand (a test fails when this file and the schema differ).  Each run directory has a
`config.toml` with one table per section; `tsn-mpi new DIR` writes the defaults below, which
are the reference implementation's (TrainSpikingNet.jl, `src/param.jl`).  Unknown keys, wrong
types and impossible values are rejected with a one-line error naming the key.  Times are in ms
and rates in Hz.  Derived quantities are computed, never set: K = round(Ne*p_ee),
L = round(2*sqrt(K)), je = 2/sqrt(K)*tau_mem_e*g, jx = 0.08*sqrt(K)*g, n_steps = round(trial/dt),
learn_step = round(learn_every/dt) ...
"""


def render() -> str:
    out = [HEADER]
    for section in SECTIONS:
        out.append(f"\n## [{section}]\n")
        out.append("| key | type | default | unit | reference name | meaning |")
        out.append("|---|---|---|---|---|---|")
        for k in KEYS:
            if k.section != section:
                continue
            types = k.type if isinstance(k.type, tuple) else (k.type,)
            tname = " or ".join(t.__name__ for t in types)
            choices = getattr(k.check, "choices", None)
            doc = k.doc + (f" One of: {', '.join(choices)}." if choices else "")
            default = _toml_value(k.default).replace("|", "\\|")
            out.append(
                f"| `{k.name}` | {tname} | `{default}` | {k.unit} | {k.ref} | {doc} |"
            )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0]) if argv else Path(__file__).resolve().parents[2] / "docs" / (
        "configuration.md")
    path.write_text(render())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
