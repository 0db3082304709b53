"""The step constants: one derivation, and the GPU's packed indices name the right fields."""

import numpy as np

from tsn_mpi.config import default_config, derive
from tsn_mpi.simulate import step_constants as sc


def _consts(**kw):
    cfg = default_config()
    d = derive(cfg)
    args = dict(gid0=100, n_owned=37, model=0, has_noise=True, ou=(0.5, 1.0, 0.25),
                inv_tau_ff=0.1, n_roll_vars=2)  # fmt: skip
    args.update(kw)
    return cfg, d, sc.step_constants(cfg, d, **args)


def test_values_come_from_config_and_derived():
    cfg, d, c = _consts()
    assert (c.dt, c.refrac) == (cfg.simulation.dt, cfg.neuron.refrac)
    assert (c.stim_on_step, c.stim_off_step, c.n_steps) == (
        d.stim_on_step, d.stim_off_step, d.n_steps)  # fmt: skip
    assert (c.gid0, c.n_owned, c.n_roll_vars, c.stim_online) == (100, 37, 2, 1)
    assert c.noise == (sc.NOISE_VOLTAGE if cfg.neuron.noise_model != "current"
                       else sc.NOISE_CURRENT)  # fmt: skip
    assert sc.step_constants(cfg, d, gid0=0, n_owned=1, model=0, has_noise=False, ou=None,
                             inv_tau_ff=0.0).noise == sc.NOISE_NONE  # fmt: skip
    _, _, stored = _consts(ou=None)
    assert (stored.stim_online, stored.ou_mu, stored.ou_sigma) == (0, 0.0, 0.0)


def test_packed_indices_name_their_fields():
    _, _, c = _consts()
    ints, floats = sc.pack(c)
    assert ints.dtype == np.int64 and floats.dtype == np.float64
    by_int = {"C_STIM_ON": "stim_on_step", "C_STIM_OFF": "stim_off_step",
              "C_U0SKIP": "u0_skip_steps", "C_MAXT": "max_times", "C_U0N": "u0_ncells",
              "C_NSTEPS": "n_steps", "C_NOISE": "noise", "C_ONLINE": "stim_online",
              "C_NFF": "n_ff", "C_GID0": "gid0", "C_N": "n_owned", "C_MODEL": "model",
              "C_NVARS": "n_roll_vars"}  # fmt: skip
    by_float = {"K_DT": "dt", "K_REFRAC": "refrac", "K_TBE": "tau_bal_e", "K_TBI": "tau_bal_i",
                "K_ITFF": "inv_tau_ff", "K_OUMU": "ou_mu", "K_OUB": "ou_b",
                "K_OUSIG": "ou_sigma"}  # fmt: skip
    assert len(by_int) == ints.size and len(by_float) == floats.size
    for name, field in by_int.items():
        assert ints[getattr(sc, name)] == getattr(c, field), name
    for name, field in by_float.items():
        assert floats[getattr(sc, name)] == getattr(c, field), name
