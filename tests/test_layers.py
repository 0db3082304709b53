"""The package's import graph runs one way: no module imports from a layer above its own.

Layers, lowest first (a module may import its own top-level package and lower layers only):
errors/version/logging/sysmem < config, rng, partition, comm < models, network, plot < io <
learn, simulate (backend-neutral), data (recordings) < backends < monitor, plan, info, status <
phases < api < cli and the package root < __main__.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "tsn_mpi"
LAYERS = [
    {"errors", "_version", "_numba_cache", "log", "sysmem"},
    {"config", "rng", "partition", "comm"},
    {"models", "network", "plot"},
    {"io"},
    {"learn", "simulate", "data"},
    {"backends"},
    {"monitor", "plan", "info", "status"},
    {"phases"},
    {"api"},
    {"cli", "__init__"},
    {"__main__"},
]
LEVEL = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def top_of(module: str) -> str:
    """``tsn_mpi.backends.cpu.loop`` -> ``backends``; ``tsn_mpi`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported tsn_mpi module) of every import in a file, including local ones."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "tsn_mpi":  # from tsn_mpi import rng -> tsn_mpi.rng
                out += [(node.lineno, f"tsn_mpi.{a.name}") for a in node.names]
            elif node.module.startswith("tsn_mpi."):
                out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("tsn_mpi")]
    return out


def module_top(path: Path) -> str:
    rel = path.relative_to(PKG).with_suffix("")
    return rel.parts[0] if len(rel.parts) > 1 else rel.parts[0]


def test_every_package_module_has_a_layer():
    tops = {module_top(p) for p in PKG.rglob("*.py")}
    assert tops <= set(LEVEL), f"modules without a layer: {sorted(tops - set(LEVEL))}"


def test_no_import_from_a_higher_layer():
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        mine = module_top(path)
        for line, module in imports(path):
            theirs = top_of(module)
            if theirs == mine:
                continue
            if LEVEL.get(theirs, -1) >= LEVEL[mine]:
                bad.append(f"{path.relative_to(PKG.parent)}:{line} ({mine}) imports {module} "
                           f"({theirs})")  # fmt: skip
    assert not bad, "imports upward or sideways:\n" + "\n".join(bad)


def test_the_checker_sees_an_upward_import(tmp_path):
    """The test can fail: a learn module importing a backend is reported."""
    f = tmp_path / "x.py"
    f.write_text("from tsn_mpi.backends.cpu import loop\nfrom tsn_mpi import rng\n")
    found = [top_of(m) for _, m in imports(f)]
    assert found == ["backends", "rng"]
    assert LEVEL["backends"] > LEVEL["learn"]


def test_backends_share_one_shape():
    """Both backends are chosen by name and offer the same factories (no branching on names in
    the phases); an unknown name is a one-line config error."""
    import pytest

    from tsn_mpi.backends import Backend, get_backend
    from tsn_mpi.errors import ConfigError

    cpu = get_backend("cpu")
    assert isinstance(cpu, Backend) and cpu.name == "cpu"
    for name in ("start", "simulator", "learner", "describe"):
        assert callable(getattr(cpu, name))
    assert "cpu" in cpu.describe()
    with pytest.raises(ConfigError, match="run.backend = 'tpu'"):
        get_backend("tpu")
    phases = (PKG / "phases").rglob("*.py")
    assert not [p for p in phases if "backend == " in p.read_text()]
