"""``network.h5``: what init builds (connectivity, targets, stimulus, init statistics).

Layout (global neuron id on axis 0; documented in docs/file-format.md):
  static/indptr (N+1) int64, static/pre (nnz) int32 presynaptic ids sorted per neuron,
  static_by_population (4) float32 (weights by population, nothing per synapse) — or
  static/code (nnz) uint8 + static_table (n_codes) float32  — or static/weight (nnz) float32
  plastic/pre (N, m) int32 (-1 = none), plastic/w0 (N, m) float32, plastic/w_ff0 (N, LX)
  targets (N, ntasks, n_learn) float32, stimulus (N, ntasks, n_stim_steps) float32 (only when
  the stimulus plugin returned arrays; the default OU is regenerated from the seed)
  ff_rates (n_ff_steps, LX) float64, init/uavg (N) float64, init/ns (N) int32
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tsn_mpi import __version__
from tsn_mpi.errors import DataFileError
from tsn_mpi.io import h5_read, h5_write
from tsn_mpi.network.build import Network
from tsn_mpi.network.stimulus import OnlineOU

FORMAT = "tsn-mpi network 2"  # 2: static_by_population


def write_network(path: Path, net: Network, init: dict[str, Any], cfg, d, comm) -> None:
    """Write this rank's part of the network; collective over ``comm``."""
    start, N = net.owned.start, d.n_cells
    online = isinstance(net.stimulus, OnlineOU)
    attrs = {
        "format": FORMAT,
        "tsn_mpi_version": __version__,
        "model_hash": cfg.model_hash(),
        "n_cells": N,
        "n_exc": d.n_exc,
        "n_plastic": int(net.pl_pre.shape[1]),
        "l_ff": d.l_ff,
        "ntasks": int(net.targets.shape[0]),
        "n_learn": d.n_learn,
        "itasks": np.asarray(init["itasks"], dtype=np.int64),
        "ustd": float(init["ustd"]),
        "rate_e_hz": float(init["rate_e"]),
        "rate_i_hz": float(init["rate_i"]),
        "stimulus": "online-ou" if online else "array",
    }
    if online:
        attrs.update(stim_mu=net.stimulus.mu, stim_b=net.stimulus.b, stim_sigma=net.stimulus.sigma)
    with h5_write.create(path, comm, attrs=attrs) as w:
        per_synapse = net.st_code.dtype == np.int32
        values = {"pre": net.st_pre}
        if per_synapse:
            values["weight"] = net.st_table
        elif not net.st_by_population:
            values["code"] = net.st_code
        w.write_csr("static", net.st_indptr, values, start, N)
        if net.st_by_population:
            w.write_global("static_by_population", net.st_table)
        elif not per_synapse:
            w.write_global("static_table", net.st_table)
        w.write_rows("plastic/pre", net.pl_pre, start, N)
        w.write_rows("plastic/w0", net.w_in, start, N)
        w.write_rows("plastic/w_ff0", net.w_ff, start, N)
        w.write_rows("targets", np.ascontiguousarray(net.targets.transpose(2, 0, 1)), start, N)
        if not online:
            w.write_rows(
                "stimulus", np.ascontiguousarray(net.stimulus.transpose(2, 0, 1)), start, N
            )
        w.write_global("ff_rates", net.ff_rates)
        w.write_rows("init/uavg", init["uavg"], start, N)
        w.write_rows("init/ns", init["ns_owned"], start, N)


def read_network(path: Path, cfg, d, owned: range) -> tuple[Network, dict[str, Any]]:
    """Read the rows of the owned neurons (any rank count) and check the file fits ``cfg``."""
    with h5_read.open_read(path, what="network") as f:
        a = h5_read.read_attrs(f)
        if a.get("format") not in (FORMAT, "tsn-mpi network 1"):
            raise DataFileError(f"{path}: not a tsn-mpi network file (format {a.get('format')})")
        if a.get("model_hash") != cfg.model_hash():
            raise DataFileError(
                f"{path}: built from a different configuration (model hash {a.get('model_hash')}"
                f", config.toml gives {cfg.model_hash()}); run 'tsn-mpi init' again"
            )
        if int(a["n_cells"]) != d.n_cells:
            raise DataFileError(f"{path}: has {a['n_cells']} neurons, config says {d.n_cells}")
        indptr, vals = h5_read.read_csr(f, "static", owned)
        pre = vals["pre"].astype(np.int32, copy=False)
        by_pop = "static_by_population" in f
        if by_pop:
            code = np.zeros(0, np.uint8)
            table = h5_read.read_global(f, "static_by_population").astype(np.float32)
        elif "weight" in vals:
            code = np.arange(pre.size, dtype=np.int32)
            table = vals["weight"].astype(np.float32)
        else:
            code = vals["code"]
            table = h5_read.read_global(f, "static_table").astype(np.float32)
        targets = np.ascontiguousarray(h5_read.read_rows(f, "targets", owned).transpose(1, 2, 0))
        if a["stimulus"] == "online-ou":
            stim: Any = OnlineOU(float(a["stim_mu"]), float(a["stim_b"]), float(a["stim_sigma"]))
        else:
            stim = np.ascontiguousarray(h5_read.read_rows(f, "stimulus", owned).transpose(1, 2, 0))
        net = Network(
            n_cells=d.n_cells,
            owned=owned,
            st_indptr=indptr,
            st_pre=pre,
            st_code=code,
            st_table=table,
            pl_pre=h5_read.read_rows(f, "plastic/pre", owned).astype(np.int32),
            w_in=h5_read.read_rows(f, "plastic/w0", owned).astype(np.float32),
            w_ff=h5_read.read_rows(f, "plastic/w_ff0", owned).astype(np.float32),
            targets=targets,
            stimulus=stim,
            ff_rates=h5_read.read_global(f, "ff_rates").astype(np.float64),
            st_by_population=by_pop,
        )
        init = {
            "uavg": h5_read.read_rows(f, "init/uavg", owned),
            "ustd": float(a["ustd"]),
            "itasks": list(np.atleast_1d(a["itasks"]).tolist()),
            "rate_e": float(a["rate_e_hz"]),
            "rate_i": float(a["rate_i_hz"]),
        }
    return net, init


def static_in_degree(path: Path) -> np.ndarray:
    """Static in-degree of every neuron (for work-balanced partitions)."""
    with h5_read.open_read(path, what="network") as f:
        return np.diff(np.asarray(f["static/indptr"][...]))
