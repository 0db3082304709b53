"""Recordings to fit: readers (NWB, SONATA spikes + trials files, PSTH arrays), binning and
smoothing, the held-out split, fit metrics, and what ``tsn-mpi new --data`` writes
(docs/fitting.md).  Imported only by the phases that need it; pynwb only for NWB files.

Modules: :mod:`~tsn_mpi.data.recording` (the common form and its checks), :mod:`.nwb`,
:mod:`.sonata`, :mod:`.trials`, :mod:`.psth_array` (readers), :mod:`.binning`, :mod:`.split`,
:mod:`.metrics`, :mod:`.prepare` (recording -> data-rates.npy + data-fit.h5), :mod:`.fitfile`
(reading data-fit.h5), :mod:`.fitconfig` (the config and its reasons), :mod:`.synthetic` (a
synthetic recording to try it on).
"""
