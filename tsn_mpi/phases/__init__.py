"""The phases users know: init, train, test (plot lives in tsn_mpi.plot)."""
