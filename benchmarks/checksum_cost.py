"""What checksums cost on a large P: writing, reading back with verification, ``tsn-mpi verify``.

    python benchmarks/checksum_cost.py [--gb 2] [--row-values 4095] [--dir /tmp]

Writes a checkpoint-like file (one float32 ``rows/P`` of about ``--gb`` GB, rows of
``--row-values`` values: the 1M model's 90 plastic inputs give 4095) through the collective
writer on one process, then reads it back in blocks as a resuming rank does, with and without
verification, and runs ``verify_file`` over it.  The CRC-32 of the rows is also timed alone,
in memory, on one thread and on the threads the machine has, and the write is repeated with
the CRC replaced by zeros to show what it adds.  Times are wall seconds on a warm
page cache (the file was just written), so they show the CPU cost of the checksums rather than
the disk.  Writes benchmarks/results/checksum_cost.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _provenance import save_json  # noqa: E402

from tsn_mpi.io import checksum, h5_read, h5_write, verify  # noqa: E402
from tsn_mpi.io.rows import LazyRows  # noqa: E402

BLOCK = 256 << 20  # bytes per block, as the lazy P reader and the writer's pieces


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gb", type=float, default=2.0)
    ap.add_argument("--row-values", type=int, default=4095)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = ap.parse_args()
    width = args.row_values
    n = int(args.gb * 1e9) // (4 * width)
    per = max(1, BLOCK // (4 * width))
    rng = np.random.default_rng(0)
    block = rng.random((per, width), dtype=np.float32)  # the same block repeated: no RAM blow-up
    path = args.dir / "tsn-checksum-cost.h5"
    nbytes = n * width * 4
    res: dict = {"rows": n, "row_bytes": width * 4, "bytes": nbytes, "threads": os.cpu_count()}

    def lazy_block(lo: int, hi: int) -> np.ndarray:
        return block[: hi - lo] if hi - lo <= per else np.resize(block, (hi - lo, width))

    t = time.perf_counter()
    crc1 = checksum.row_crcs(block)
    for _ in range(3):
        checksum.row_crcs(block)
    dt = (time.perf_counter() - t) / 4
    res["crc_in_memory_mb_s"] = round(block.nbytes / dt / 1e6)
    old = checksum._THREAD_BYTES
    checksum._THREAD_BYTES = 1 << 62  # one thread
    t = time.perf_counter()
    assert np.array_equal(checksum.row_crcs(block), crc1)
    res["crc_in_memory_one_thread_mb_s"] = round(block.nbytes / (time.perf_counter() - t) / 1e6)
    checksum._THREAD_BYTES = old

    real_crcs = checksum.row_crcs
    for crc in (False, True):  # without checksums first (the CRC replaced by zeros): the cost
        checksum.row_crcs = real_crcs if crc else (lambda a: np.zeros(len(a), np.uint32))
        t = time.perf_counter()
        with h5_write.create(path, size_hint=nbytes + (1 << 20)) as w:
            w.write_rows("rows/P", LazyRows(n, width, np.float32, lazy_block), 0, n)
        key = "write" if crc else "write_without_crc"
        res[f"{key}_s"] = round(time.perf_counter() - t, 2)
        res[f"{key}_mb_s"] = round(nbytes / res[f"{key}_s"] / 1e6)
    checksum.row_crcs = real_crcs

    for verify_rows in (False, True):
        t = time.perf_counter()
        with h5_read.open_read(path, what="data file") as f:
            for lo in range(0, n, per):
                h5_read.read_rows(f, "rows/P", range(lo, min(n, lo + per)), verify=verify_rows)
        key = "read_verified" if verify_rows else "read_unverified"
        res[f"{key}_s"] = round(time.perf_counter() - t, 2)
        res[f"{key}_mb_s"] = round(nbytes / res[f"{key}_s"] / 1e6)
    t = time.perf_counter()
    rep = verify.verify_file(path)
    res["verify_s"] = round(time.perf_counter() - t, 2)
    res["verify_mb_s"] = round(nbytes / res["verify_s"] / 1e6)
    res["verify_status"] = rep.status
    res["file_bytes"] = path.stat().st_size
    path.unlink()
    for k, v in res.items():
        print(f"{k:34s} {v}")
    print(f"wrote {save_json(HERE / 'results' / 'checksum_cost.json', res, __file__)}")
    return 0 if rep.status == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
