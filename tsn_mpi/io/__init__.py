"""Files: one HDF5 file per output, written by all ranks together.

- :mod:`tsn_mpi.io.h5`: the collective writer (``create``), readers (``open_read``,
  ``read_rows``, ``read_csr``, ``read_attrs``) and ``describe()`` for ``tsn-mpi info``;
- :mod:`tsn_mpi.io.atomic`: temporary name, fsync and rename (crash safety);
- :mod:`tsn_mpi.io.names`: checkpoint names (``ckpt-5.h5``, ``ckpt-5i.h5``,
  ``ckpt-5-cor0.712.h5``), listing and lookup.

Nothing is imported here, so ``import tsn_mpi.io.names`` does not load h5py.
"""
