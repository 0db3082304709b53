"""The package version, in one place (pyproject.toml reads it; modules import it from here, not
from the package root, so nothing below the API layer imports ``tsn_mpi`` itself)."""

__version__ = "0.1.0"
