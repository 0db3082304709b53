"""Files: one HDF5 file per output, written by all ranks together.

- :mod:`tsn_mpi.io.h5_write`: the collective writer (``create``), its write strategies and
  ``describe()`` for ``tsn-mpi info``;
- :mod:`tsn_mpi.io.h5_read`: the readers (``open_read``, ``read_rows``, ``read_csr``,
  ``read_attrs``, ``is_complete``);
- :mod:`tsn_mpi.io.atomic`: temporary name, fsync and rename (crash safety);
- :mod:`tsn_mpi.io.names`: checkpoint names (``ckpt-5.h5``, ``ckpt-5i.h5``,
  ``ckpt-5-cor0.712.h5``), listing and lookup.

Nothing is imported here, so ``import tsn_mpi.io.names`` does not load h5py.
"""
