"""python -m tsn_mpi -> the command line."""

import sys

from tsn_mpi.cli import main

sys.exit(main())
