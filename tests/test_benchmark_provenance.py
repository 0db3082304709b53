"""Every benchmark results file says which committed script wrote it, at which revision, where.

Files measured before provenance was recorded carry ``revision = "unknown"`` and a
``legacy`` note; the others the full block of ``benchmarks/_provenance.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = sorted((ROOT / "benchmarks" / "results").glob("*.json"))
MEASURED_KEYS = ("cpu_model", "cpu_arch", "command", "date")


def test_there_are_results_files():
    assert RESULTS


@pytest.mark.parametrize("path", RESULTS, ids=lambda p: p.name)
def test_results_file_names_its_script(path):
    data = json.loads(path.read_text())
    assert isinstance(data, dict), f"{path.name}: not a JSON object"
    prov = data.get("provenance")
    assert isinstance(prov, dict), f"{path.name}: no provenance block"
    script = prov.get("script")
    assert isinstance(script, str) and script, f"{path.name}: provenance names no script"
    assert not Path(script).is_absolute(), f"{path.name}: script {script} is not repo-relative"
    assert (ROOT / script).is_file(), f"{path.name}: script {script} does not exist"
    assert "revision" in prov, f"{path.name}: provenance has no revision"
    if prov["revision"] == "unknown":
        assert prov.get("legacy"), f"{path.name}: unknown revision without a legacy note"
    else:
        missing = [k for k in MEASURED_KEYS if not prov.get(k)]
        assert not missing, f"{path.name}: provenance lacks {missing}"
        assert isinstance(prov.get("dirty"), bool), f"{path.name}: dirty not recorded"


def test_save_json_keeps_an_earlier_provenance(tmp_path):
    """A script that updates part of an earlier results file keeps that file's provenance."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from _provenance import save_json
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    script = ROOT / "benchmarks" / "small_mode.py"
    out = save_json(tmp_path / "r.json", {"x": 1}, script)
    first = json.loads(out.read_text())
    assert first["provenance"]["script"] == "benchmarks/small_mode.py"
    assert first["x"] == 1
    save_json(out, first | {"y": 2}, script)
    second = json.loads(out.read_text())
    assert second["provenance"]["earlier"] == first["provenance"]
    assert second["x"] == 1 and second["y"] == 2
