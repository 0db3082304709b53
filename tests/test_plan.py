"""tsn_mpi.plan: memory by component scales as the arrays do; the CLI entry prints a table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import write_tiny
from tsn_mpi.config import from_dict
from tsn_mpi.plan import GB, MB, plan, plan_main

P_TILES = "P (RLS matrices, AoSoA tiles)"


def cfg(n: int = 4096, **sections):
    data = {"network": {"n_cells": n}}
    for name, table in sections.items():
        data.setdefault(name, {}).update(table)
    return from_dict(data, "test")


def test_components_positive_and_peak_is_their_sum() -> None:
    p = plan(cfg(), 2)
    comp = p["components"]
    assert all(v > 0 for k, v in comp.items() if k != "stimulus"), comp
    assert comp["stimulus"] == 0  # the default OU stimulus is drawn online
    total = sum(comp.values())
    startup = total - comp[P_TILES] + p["transients"]["start-up, before P exists (incoming lists)"]
    running = total + max(v for k, v in p["transients"].items() if not k.startswith("start-up"))
    assert p["peak_bytes"] == max(startup, running)
    assert p["n_owned"] == 2048 and p["k"] == 205 and p["n_plastic"] == 58
    assert p["p_length"] == 58 * 59 // 2
    assert p["seconds_per_loop"] > 0 and all(v >= 0 for v in p["time"].values())


def test_p_scales_with_neurons_per_rank() -> None:
    fixed = {"l_exc": 20, "l_inh": 20}  # same RLS size for every N
    one = plan(cfg(8192, plastic=fixed), 1)["components"][P_TILES]
    two = plan(cfg(8192, plastic=fixed), 2)["components"][P_TILES]
    four = plan(cfg(8192, plastic=fixed), 4)["components"][P_TILES]
    double_n = plan(cfg(16384, plastic=fixed), 2)["components"][P_TILES]
    assert one == 2 * two == 4 * four
    assert double_n == 2 * two
    assert two == 4096 * (40 * 41 // 2) * 4
    # the tiles round the owned neurons up to a multiple of 32
    tiles = plan(cfg(8192 + 2, plastic=fixed), 2)["components"][P_TILES]
    assert tiles == 4128 * 820 * 4


def test_p_layout_precision_and_small_mode() -> None:
    base = plan(cfg(), 1)["components"][P_TILES]
    assert plan(cfg(learning={"p_precision": "float16"}), 1)["components"][P_TILES] == base // 2
    assert plan(cfg(learning={"p_precision": "float64"}), 1)["components"][P_TILES] == 2 * base
    full = plan(cfg(learning={"p_storage": "full"}), 1)["components"][P_TILES]
    assert full == 4096 * 58 * 58 * 4
    small = plan(cfg(learning={"mode": "small"}), 1)
    assert P_TILES not in small["components"]
    assert small["components"]["small-mode trace history"] == 11 * 4096 * 8  # window + mean row


def test_connectivity_scales_with_k() -> None:
    a = plan(cfg(4096, network={"p_ee": 0.05}), 1)["components"]
    b = plan(cfg(4096, network={"p_ee": 0.1}), 1)["components"]
    out_a = a["static connectivity (outgoing map)"] - 4097 * 8
    out_b = b["static connectivity (outgoing map)"] - 4097 * 8
    # 4 bytes per synapse: the default weights depend only on the populations
    assert out_a == 4096 * 2 * 102 * 4 and out_b == 4096 * 2 * 205 * 4


def test_stimulus_online_unless_a_plugin_returns_arrays(tmp_path) -> None:
    assert plan(cfg(200_000), 1)["components"]["stimulus"] == 0
    arrays = cfg(4096, stimulus={"plugin": "mystim.py:stim"})
    assert plan(arrays, 2)["components"]["stimulus"] == 2000 * 2048 * 4


def test_fits_or_not() -> None:
    c = cfg()
    assert plan(c, 2, node_mem_bytes=64 * GB)["fits"]
    tight = plan(c, 2, node_mem_bytes=100 * MB)
    assert not tight["fits"]
    p = plan(c, 4, node_mem_bytes=64 * GB, ranks_per_node=2)
    assert p["node_bytes"] == 2 * p["peak_bytes"]
    paper = cfg(1_000_000, network={"p_ee": 512 / 500_000}, plastic={"l_exc": 45, "l_inh": 45})
    big = plan(paper, 2, node_mem_bytes=24 * GB)  # float32 P alone is 16.4 GB
    assert not big["fits"] and big["peak_bytes"] > 12 * GB
    half = cfg(1_000_000, network={"p_ee": 512 / 500_000}, plastic={"l_exc": 45, "l_inh": 45},
               learning={"p_precision": "float16"})
    assert plan(half, 2, node_mem_bytes=24 * GB)["fits"]


def test_time_model_terms() -> None:
    c = cfg()
    one = plan(c, 1, cores_per_node=1)["time"]
    two = plan(c, 2, cores_per_node=2)["time"]
    assert two["neuron updates"] == pytest.approx(one["neuron updates"] / 2)
    assert two["synaptic events"] == pytest.approx(one["synaptic events"] / 2)
    assert two["per-step overhead and allgather"] > one["per-step overhead and allgather"]
    over = plan(c, 4, cores_per_node=2)["time"]["per-step overhead and allgather"]
    assert over > two["per-step overhead and allgather"]  # oversubscribed collectives
    fast = plan(c, 1, rate_hz=10.0)["time"]["synaptic events"]
    assert fast == pytest.approx(2 * plan(c, 1, rate_hz=5.0)["time"]["synaptic events"])


def test_gpu_moves_p_to_the_device() -> None:
    cpu = plan(cfg(), 1)
    gpu = plan(cfg(), 1, gpu=True)
    assert gpu["device_bytes"] > cpu["components"][P_TILES]
    assert gpu["peak_bytes"] < cpu["peak_bytes"] + 1 * GB
    assert not plan(cfg(), 1, gpu=True, gpu_mem_bytes=1 * MB)["fits"]


def test_bad_ranks() -> None:
    with pytest.raises(ValueError):
        plan(cfg(), 0)


def test_plan_main_table(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    write_tiny(run)
    assert plan_main([str(run), "--ranks", "2", "--node-mem", "16"]) == 0
    out = capsys.readouterr().out
    assert "N = 256, 2 rank(s)" in out
    for words in ("P (RLS matrices", "static connectivity", "peak per rank", "fits in 16.00 GB",
                  "time per loop", "total"):
        assert words in out
    assert plan_main([str(run / "config.toml"), "--ranks", "1", "--node-mem", "0.0001"]) == 0
    assert "does NOT fit" in capsys.readouterr().out
    assert plan_main([str(run), "--ranks", "1", "--gpu"]) == 0
    assert "GPU memory per rank" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ranks", "0"], "--ranks = 0"),
        (["--ranks", "1", "--node-mem", "-1"], "--node-mem"),
        (["--ranks", "300"], "smaller than the 300 ranks"),
    ],
)
def test_plan_main_bad_input(tmp_path: Path, capsys, args, message) -> None:
    run = tmp_path / "run"
    write_tiny(run)
    assert plan_main([str(run), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_plan_main_missing_config(tmp_path: Path, capsys) -> None:
    assert plan_main([str(tmp_path / "nothing"), "--ranks", "1"]) == 2
    assert "not found" in capsys.readouterr().err
    assert plan_main(["--ranks", "1"]) == 2  # argparse usage error


def test_partition_work_comes_from_the_plan_cost_model():
    """The work-balanced partition uses the plan's constants (one cost model): a neuron's work
    is its time-loop term plus events in proportion to its in-degree plus its RLS term."""
    from tsn_mpi.config import default_config, derive
    from tsn_mpi.plan import C_EVENT, C_NEURON, RATE_HZ, RLS_VALUES_THREAD, neuron_work

    d = derive(default_config())
    w = neuron_work(d, np.array([0.0, 100.0, 200.0]))
    base = d.n_steps * C_NEURON + d.n_learn * d.n_packed / RLS_VALUES_THREAD
    assert w[0] == pytest.approx(base)
    assert w[2] - w[1] == pytest.approx(100 * RATE_HZ * d.train_time / 1000.0 * C_EVENT)


def test_phases_init_and_test_peaks() -> None:
    """init adds the connectivity build (received pairs + incoming lists, 12 B per synapse
    with the default plugin) and frees the init trial's outgoing map before P; test holds no P."""
    c = cfg(learning={"p_precision": "float16"})
    train = plan(c, 2)
    init = plan(c, 2, phase="init")
    test = plan(c, 2, phase="test")
    assert train["phase"] == "train" and init["phase"] == "init"
    nnz = train["static_synapses_per_rank"]
    build = init["transients"]["connectivity build (received pairs + incoming lists)"]
    assert build == nnz * 12 + (train["n_owned"] + 1) * 8
    comp = init["components"]
    blocks = init["transients"]["checkpoint and P conversion blocks"]
    p_phase = (init["persistent_bytes"] - comp["static connectivity (outgoing map)"]
               - comp["exchange buffers"] + blocks)
    start = (init["persistent_bytes"] - comp[P_TILES]
             + init["transients"]["start-up, before P exists (incoming lists)"])
    assert init["peak_bytes"] == max(p_phase, start, comp["interpreter, numba, h5py, MPI"] + build)
    assert P_TILES not in test["components"]
    assert test["peak_bytes"] < train["peak_bytes"] - train["components"][P_TILES] // 2
    with pytest.raises(ValueError, match="phase"):
        plan(c, 2, phase="fly")


def test_paper_1m_init_peak_near_the_measured_one() -> None:
    """docs/scaling.md: init of the 1M model with float16 P peaked at 7.19 GB per rank."""
    from tsn_mpi.config import load_config

    paper = load_config(Path(__file__).parents[1] / "configs" / "paper-1m.toml")
    p = plan(paper.replace(learning__p_precision="float16"), 2, phase="init")
    assert 0.85 * 7.19e9 < p["peak_bytes"] < 1.1 * 7.19e9


def test_interconnect_sets_the_exchange_between_nodes() -> None:
    """Across M nodes of k ranks: ceil(log2 k) rounds at LAT_MPI, ceil(log2 M) at the
    interconnect's latency, the node's k x R x (cap+1) ids at its bandwidth; presets, custom
    values and the config key agree, and a bad name is refused."""
    from tsn_mpi import plan as plan_mod
    from tsn_mpi.config import derive
    from tsn_mpi.config.schema import INTERCONNECT_NAMES
    from tsn_mpi.simulate.trial import exchange_capacity

    assert set(INTERCONNECT_NAMES) == set(plan_mod.INTERCONNECTS)
    c = cfg()
    d = derive(c)
    key = "per-step overhead and allgather"

    def step(p: dict) -> float:
        return p["time"][key] / d.n_steps - plan_mod.C_STEP

    p_n = plan(c, 4)["n_owned"]
    cap = exchange_capacity(p_n, c.simulation.dt)
    vol = 2 * 4 * (cap + 1) * 4  # 2 ranks per node receive 4 x (cap+1) ids each
    for name in ("ethernet-tcp", "infiniband", "shm", "25,2.5"):
        lat, gbs = plan_mod.interconnect_params(name)
        p = plan(c, 4, ranks_per_node=2, cores_per_node=2, interconnect=name)
        assert p["nodes"] == 2 and p["interconnect"] == name and p_n == p["n_owned"]
        assert step(p) == pytest.approx(plan_mod.LAT_MPI + lat + vol / (gbs * 1e9))
    assert plan_mod.interconnect_params("25,2.5") == pytest.approx((25e-6, 2.5))
    tcp = plan(c.replace(run__interconnect="ethernet-tcp"), 4, ranks_per_node=2)
    same = plan(c, 4, ranks_per_node=2, interconnect="ethernet-tcp")
    assert tcp["time"][key] == same["time"][key]
    assert plan(c, 4)["interconnect"] is None  # one node: no network
    with pytest.raises(ValueError, match="interconnect"):
        plan(c, 4, ranks_per_node=2, interconnect="carrier-pigeon")
    with pytest.raises(Exception, match="run.interconnect"):
        c.replace(run__interconnect="fast")


def test_time_loop_divides_by_the_loop_threads():
    from tsn_mpi import plan as plan_mod
    from tsn_mpi.config import derive

    c = cfg()  # the default model: 4096 neurons
    steps = derive(c).n_steps
    key = "per-step overhead and allgather"
    one = plan(c.replace(run__loop_threads=1), 1, cores_per_node=16)
    auto = plan(c, 1, cores_per_node=16)
    assert one["loop_threads"] == 1 and auto["loop_threads"] == 4  # >= 1024 neurons each
    for k in ("neuron updates", "synaptic events"):
        assert auto["time"][k] == pytest.approx(one["time"][k] / 4)
    assert auto["time"][key] - one["time"][key] == pytest.approx(steps * plan_mod.C_SYNC)
    mpi = plan(c.replace(run__loop_threads=2), 2, cores_per_node=16)  # two meetings per step
    mpi1 = plan(c.replace(run__loop_threads=1), 2, cores_per_node=16)
    assert mpi["time"][key] - mpi1["time"][key] == pytest.approx(2 * steps * plan_mod.C_SYNC)
    assert plan(c.replace(run__loop_threads=64), 1, cores_per_node=16)["loop_threads"] == 16
    assert plan(c, 1, cores_per_node=16, gpu=True)["loop_threads"] == 1
