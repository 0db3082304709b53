"""tsn_mpi.sysmem: MemAvailable, cgroup v1/v2 limits and RSS, read from fake /proc and /sys."""

from __future__ import annotations

from pathlib import Path

from tsn_mpi import sysmem

GiB = 1 << 30


def _proc(tmp: Path, avail_kb: int | None, cgroup: str) -> Path:
    proc = tmp / "proc"
    (proc / "self").mkdir(parents=True)
    lines = ["MemTotal:       24683584 kB", "MemFree:         1000000 kB", "Cached: 2000000 kB"]
    if avail_kb is not None:
        lines.append(f"MemAvailable:   {avail_kb} kB")
    (proc / "meminfo").write_text("\n".join(lines) + "\n")
    (proc / "self" / "cgroup").write_text(cgroup)
    return proc


def test_meminfo_and_rss(tmp_path):
    proc = _proc(tmp_path, 20 * 1024 * 1024, "0::/\n")
    info = sysmem.meminfo(proc / "meminfo")
    assert info["MemAvailable"] == 20 * GiB and info["MemTotal"] == 24683584 * 1024
    status = tmp_path / "status"
    status.write_text("Name: python\nVmRSS:\t  123456 kB\n")
    assert sysmem.rss_bytes(status) == 123456 * 1024
    assert sysmem.rss_bytes(tmp_path / "missing") == 0
    assert sysmem.rss_bytes() > 0  # this process


def test_no_cgroup_limit_gives_memavailable(tmp_path):
    proc = _proc(tmp_path, 20 * 1024 * 1024, "0::/user.slice\n")
    sys_cg = tmp_path / "cg"
    (sys_cg / "user.slice").mkdir(parents=True)
    (sys_cg / "cgroup.controllers").write_text("cpu memory\n")
    (sys_cg / "user.slice" / "memory.max").write_text("max\n")
    assert sysmem.cgroup_available(sys_cg, proc / "self" / "cgroup") is None
    assert sysmem.available_bytes(proc, sys_cg) == (20 * GiB, "MemAvailable")


def test_cgroup_v2_limit_of_a_parent_counts(tmp_path):
    """A SLURM-like job cgroup: the limit is on the job, the process sits in a step below it;
    reclaimable (inactive) file cache does not count as used."""
    proc = _proc(tmp_path, 20 * 1024 * 1024, "0::/job_7/step_0\n")
    sys_cg = tmp_path / "cg"
    job = sys_cg / "job_7"
    (job / "step_0").mkdir(parents=True)
    (sys_cg / "cgroup.controllers").write_text("memory\n")
    (job / "memory.max").write_text(str(8 * GiB))
    (job / "memory.current").write_text(str(3 * GiB))
    (job / "memory.stat").write_text(f"anon 100\ninactive_file {1 * GiB}\n")
    (job / "step_0" / "memory.max").write_text("max\n")
    limit, avail = sysmem.cgroup_available(sys_cg, proc / "self" / "cgroup")
    assert (limit, avail) == (8 * GiB, 6 * GiB)
    got, source = sysmem.available_bytes(proc, sys_cg)
    assert got == 6 * GiB and "cgroup limit 8.6 GB" in source


def test_cgroup_v1_memory_controller(tmp_path):
    proc = _proc(tmp_path, 20 * 1024 * 1024, "4:memory:/batch/42\n0::/\n")
    mem = tmp_path / "cg" / "memory" / "batch" / "42"
    mem.mkdir(parents=True)
    (mem / "memory.limit_in_bytes").write_text(str(4 * GiB))
    (mem / "memory.usage_in_bytes").write_text(str(2 * GiB))
    (mem / "memory.stat").write_text(f"cache 5\ntotal_inactive_file {GiB // 2}\n")
    # the root's "no limit" value (2^63 - page) is not a limit
    (tmp_path / "cg" / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert sysmem.cgroup_available(tmp_path / "cg", proc / "self" / "cgroup") == (
        4 * GiB,
        GiB * 5 // 2,
    )
    assert sysmem.available_bytes(proc, tmp_path / "cg")[0] == GiB * 5 // 2


def test_old_kernel_without_memavailable(tmp_path):
    proc = _proc(tmp_path, None, "0::/\n")
    got, source = sysmem.available_bytes(proc, tmp_path / "none")
    assert got == (1000000 + 2000000) * 1024 and source == "MemFree + Cached"
