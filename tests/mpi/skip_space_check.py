"""Test hook, kept out of the package: the free-space check before a checkpoint always
passes, so a test can make the write hit a full disk.  With ``--no-reserve`` the blocks are
not allocated up front either, so the error comes from inside HDF5's data writes.

As a program (also under mpiexec):
``python tests/mpi/skip_space_check.py [--no-reserve] <tsn-mpi arguments>``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tsn_mpi.io import space

    args = sys.argv[1:]
    space.check_free = lambda *a, **k: None
    if args and args[0] == "--no-reserve":
        args = args[1:]
        space.reserve = lambda *a, **k: False
    from tsn_mpi.cli import main

    sys.exit(main(args))
