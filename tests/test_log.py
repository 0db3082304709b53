"""tsn_mpi.log: readable numbers, stage lines and throttled progress in logs, compile watch."""

from __future__ import annotations

import importlib
import io
import time

from numba import njit

from tsn_mpi import log
from tsn_mpi.log import CompileWatch, Reporter, format_row, format_seconds


def test_format_seconds():
    assert format_seconds(0.4251) == "0.43 s"
    assert format_seconds(12.34) == "12.3 s"
    assert format_seconds(245) == "4 min 05 s"
    assert format_seconds(36120) == "10 h 02 min"
    assert format_seconds(float("nan")) == "?"


def test_training_row_has_at_most_3_decimals_for_times_and_rates():
    row = format_row(7, 0, 0.91234567, 3.395263671875, 0.7871234, 0, 1275.7)
    cols = row.split()
    assert cols[:5] == ["7", "0", "0.912", "3.395", "0.7871"]
    assert row.endswith("eta 21 min 16 s")
    assert "(2 are NaN)" in format_row(1, 0, 1.0, 1.0, float("nan"), 2)
    assert format_row(1, 0, 1.0, 1.0, None, 0).split() == ["1", "0", "1.000", "1.000"]


def _reporter(tty: bool) -> tuple[Reporter, io.StringIO]:
    buf = io.StringIO()
    out = Reporter(0, stream=buf)
    out.tty = tty
    return out, buf


def test_progress_in_a_log_is_throttled_lines_without_control_characters(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(log.time, "perf_counter", lambda: clock[0])
    out, buf = _reporter(tty=False)
    seen = []
    out.on_progress = lambda label, frac: seen.append((label, frac))
    with out.stage("connectivity") as st:
        for i in range(1, 101):  # 100 updates over 50 s
            clock[0] += 0.5
            st.update(i, 100)
    lines = buf.getvalue().splitlines()
    assert "\r" not in buf.getvalue() and "\x1b" not in buf.getvalue()
    progress = [ln for ln in lines if "%" in ln]
    # first after 5 s, then at most one per 15 s; none at 100 % (the stage line says done)
    assert progress == [
        "connectivity: 10 % (5.00 s, about 45.0 s left)",
        "connectivity: 40 % (20.0 s, about 30.0 s left)",
        "connectivity: 70 % (35.0 s, about 15.0 s left)",
    ]
    assert lines[-1] == "connectivity: 50.0 s"
    assert seen[0] == ("connectivity", None) and seen[-1] == ("connectivity", 1.0)


def test_short_stage_prints_one_line_and_failed_stage_none():
    out, buf = _reporter(tty=False)
    with out.stage("targets") as st:
        st.update(1, 2)
    assert len(buf.getvalue().splitlines()) == 1 and buf.getvalue().startswith("targets: ")
    out2, buf2 = _reporter(tty=False)
    try:
        with out2.stage("plastic partners"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert buf2.getvalue() == ""


def test_progress_on_a_terminal_is_one_live_line(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(log.time, "perf_counter", lambda: clock[0])
    out, buf = _reporter(tty=True)
    with out.stage("init trial") as st:
        for i in range(1, 11):
            clock[0] += 1.0
            st.update(i, 10)
    text = buf.getvalue()
    assert text.count("\r\x1b[K") >= 9  # redrawn in place, then cleared
    assert text.splitlines()[-1].endswith("init trial: 10.0 s")


def test_quiet_and_other_ranks_print_nothing():
    buf = io.StringIO()
    for out in (Reporter(1, stream=buf), Reporter(0, quiet=True, stream=buf)):
        out.tty = False
        with out.stage("x") as st:
            st.update(1, 2)
        out.info("y")
    assert buf.getvalue() == ""


def test_compile_watch_counts_compilation_once_said(monkeypatch, tmp_path):
    monkeypatch.setattr(CompileWatch, "_said", set())
    out, buf = _reporter(tty=False)
    stamp = time.time_ns()  # functions numba has never seen: real compilations
    exec_ns: dict = {}
    exec(f"def f_{stamp}(x):\n    return x + 1\n", exec_ns)  # noqa: S102 - test only
    fn = njit(exec_ns[f"f_{stamp}"])  # not cacheable (no source file)
    mod = tmp_path / f"cached_{stamp}.py"
    mod.write_text("from numba import njit\n\n@njit(cache=True)\ndef g(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cached = importlib.import_module(mod.stem).g
    with CompileWatch(out) as cw:
        assert cw.seconds == 0.0
        assert fn(1) == 2
        first = cw.seconds
        assert fn(2) == 3  # compiled already: nothing added
        assert cw.seconds == first > 0.0
        fn(2.5)  # a new signature compiles again; the message is not repeated
        assert cw.seconds > first
        assert cached(3) == 6
    assert buf.getvalue().splitlines() == [CompileWatch.UNCACHED, CompileWatch.CACHED]
    after = cw.seconds
    njit(lambda x: x * 3)(4)  # outside the block: not counted
    assert cw.seconds == after
