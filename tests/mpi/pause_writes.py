"""Test hook, kept out of the package: HDF5 writers pause after their data and before the
``complete`` mark, so a test can kill them there.

As a module: ``install(seconds)``.  As a program (also under mpiexec):
``python tests/mpi/pause_writes.py SECONDS <tsn-mpi arguments>`` runs the CLI with the hook.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

MARK = "tsn-test: writer paused before the complete mark"


def install(seconds: float) -> None:
    from tsn_mpi.io import h5_write

    original = h5_write.Writer._write_attrs_and_complete

    def paused(self, f):
        print(f"{MARK}: {self.tmp}", file=sys.stderr, flush=True)
        time.sleep(seconds)
        return original(self, f)

    h5_write.Writer._write_attrs_and_complete = paused


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    install(float(sys.argv[1]))
    from tsn_mpi.cli import main

    sys.exit(main(sys.argv[2:]))
