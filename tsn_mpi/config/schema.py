"""Every configuration key, declared once: section, default, type, check, documentation.

The TOML file has one table per section.  ``docs/configuration.md`` is generated from this list
(``python -m tsn_mpi.config.docs``) and a test fails when the two drift apart.  The ``ref`` field
names the reference implementation's parameter (spec §1) so readers of the spec find it.
Derived quantities (K, L, weights, step counts) are computed in ``derived.py``, never stored here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Check = Callable[[Any], str | None]


def positive(x: Any) -> str | None:
    return None if x > 0 else "must be > 0"


def non_negative(x: Any) -> str | None:
    return None if x >= 0 else "must be >= 0"


def fraction(x: Any) -> str | None:
    return None if 0 <= x <= 1 else "must be between 0 and 1"


def open_fraction(x: Any) -> str | None:
    return None if 0 < x < 1 else "must be strictly between 0 and 1"


def one_of(*choices: str) -> Check:
    def check(x: Any) -> str | None:
        return None if x in choices else "must be one of " + ", ".join(repr(c) for c in choices)

    check.choices = choices  # type: ignore[attr-defined]
    return check


def plugin_name(x: Any) -> str | None:
    if ":" not in x or x.startswith(":") or x.endswith(":"):
        return "must look like 'package.module:function' or 'path/to/file.py:function'"
    return None


INTERCONNECT_NAMES = ("infiniband", "ethernet-tcp", "shm")  # values: tsn_mpi.plan.INTERCONNECTS


def interconnect_spec(x: Any) -> str | None:
    if x in INTERCONNECT_NAMES:
        return None
    try:
        parts = [float(v) for v in str(x).split(",")]
    except ValueError:
        parts = []
    if len(parts) in (1, 2) and all(0 < v < float("inf") for v in parts):
        return None
    return ("must be one of " + ", ".join(repr(c) for c in INTERCONNECT_NAMES)
            + " or 'LAT_US' / 'LAT_US,GBS' with positive numbers")


def threads_or_auto(x: Any) -> str | None:
    if x == "auto" or (isinstance(x, int) and not isinstance(x, bool) and x >= 1):
        return None
    return "must be 'auto' or an integer >= 1"


def int_or_auto(x: Any) -> str | None:
    if x == "auto" or (isinstance(x, int) and not isinstance(x, bool) and x >= 0):
        return None
    return "must be 'auto' or an integer >= 0"


def spin_or_auto(x: Any) -> str | None:
    if x == "auto" or (isinstance(x, float) and 0 <= x < float("inf")):
        return None
    return "must be 'auto' or a number >= 0"


def number_or_auto(x: Any) -> str | None:
    if x == "auto" or (isinstance(x, float) and abs(x) < float("inf")):
        return None
    return "must be 'auto' or a finite number"


def scale_or_auto(x: Any) -> str | None:
    if x == "auto" or (isinstance(x, float) and x > 0 and x < float("inf")):
        return None
    return "must be 'auto' or a number > 0"


@dataclass(frozen=True)
class Key:
    section: str
    name: str
    default: Any
    type: type | tuple[type, ...]
    doc: str
    check: Check | None = None
    ref: str = ""
    unit: str = ""

    @property
    def path(self) -> str:
        return f"{self.section}.{self.name}"


NUM = (int, float)
K = Key

KEYS: list[Key] = [
    # ---- run ---------------------------------------------------------------------------------
    K("run", "seed", 1, int, "Seed of every random stream (connectivity, targets, noise...).",
      non_negative, "seed"),
    K("run", "backend", "cpu", str, "Where training and test run: 'cpu' (numba) or 'gpu' "
      "(numba-cuda, one GPU per rank).", one_of("cpu", "gpu")),
    K("run", "h5_writes", "auto", str, "How several ranks write one HDF5 file: 'auto' "
      "(collective 'mpio' when h5py has parallel HDF5, else 'turns'), 'turns' (rank by rank), "
      "'mpio' (collective; an error without parallel h5py).", one_of("auto", "turns", "mpio")),
    K("run", "checkpoint_every", 0, int, "train writes a periodic checkpoint ckpt-<loop>.h5 "
      "after every loop that is a multiple of this (0: off); the last loop always gets one. "
      "CLI: --checkpoint-every.", non_negative, unit="loops"),
    K("run", "checkpoint_minutes", 30.0, float, "train also writes a periodic checkpoint at the "
      "first loop end after this much wall time since the last one (0: off). CLI: "
      "--checkpoint-minutes.", non_negative, unit="min"),
    K("run", "checkpoint_keep", 2, int, "Periodic and interrupt checkpoints kept: the newest "
      "this many (0: all); ckpt-0 (init's) and the best-correlation one are always kept. CLI: "
      "--checkpoint-keep.", non_negative),
    K("run", "interconnect", "infiniband", str, "The network between nodes that 'tsn-mpi plan' "
      "assumes for the per-step exchange: 'infiniband' (~2 us per message, 12 GB/s), "
      "'ethernet-tcp' (~15 us, 1.25 GB/s: kernel TCP measured between emulated nodes; a real "
      "link adds 5-20 us), 'shm' (as fast as within a node), or 'LAT_US' / 'LAT_US,GBS' (e.g. "
      "'25,1.25'). Does not change how a run executes. CLI: plan --interconnect.",
      interconnect_spec),
    K("run", "loop_threads", "auto", (str, int), "Threads of each rank's CPU time loop "
      "(neuron update and spike delivery; RLS always uses all the rank's numba threads): "
      "'auto' = the rank's numba threads (NUMBA_NUM_THREADS, else its cores / ranks on the "
      "node), but at least 1024 owned neurons per thread; or a number up to the rank's numba "
      "threads. Results are bitwise the same for any value (docs/scaling.md).", threads_or_auto),
    K("run", "loop_spin_us", "auto", (str, float), "How long a waiting thread of the time loop "
      "spins (microseconds) before it sleeps in the kernel: 'auto' = 3000 while every thread "
      "of the node's ranks has a core of its own, 2 once they share cores; or a number >= 0. "
      "Does not change results (docs/scaling.md).", spin_or_auto),
    # ---- network -----------------------------------------------------------------------------
    K("network", "n_cells", 4096, int, "Number of recurrent neurons N.", positive, "Ncells"),
    K("network", "frac_exc", 0.5, float, "Fraction of excitatory neurons: Ne = floor(N*frac_exc)"
      "; the first Ne ids are excitatory.", open_fraction),
    K("network", "p_ee", 0.1, float, "Connection probability E->E; K = round(Ne*p_ee) is the mean "
      "static in-degree per population (0 disables static connections).", fraction, "pree"),
    K("network", "g", 1.0, float, "Overall coupling scale g.", positive, "g"),
    K("network", "jee", 0.15, float, "Static E->E weight in units of je = 2/sqrt(K)*tau_mem_e*g.",
      None, "jee/je"),
    K("network", "jie", 1.0, float, "Static E->I weight in units of je.", None, "jie/je"),
    K("network", "jei", -0.75, float, "Static I->E weight in units of ji (= je).", None, "jei/ji"),
    K("network", "jii", -1.0, float, "Static I->I weight in units of ji (= je).", None, "jii/ji"),
    K("network", "x_bal_e", 1.5, float, "Constant external drive of E cells in units of "
      "jx = 0.08*sqrt(K)*g.", None, "X_bale/jx"),
    K("network", "x_bal_i", 1.0, float, "Constant external drive of I cells in units of jx.",
      None, "X_bali/jx"),
    K("network", "static_plugin", "tsn_mpi.network.static:erdos_renyi", str,
      "Static (balanced) connectivity plugin: fixed out-degree 2K, no autapses (spec §9.1).",
      plugin_name, "genStaticWeights_file"),
    # ---- plastic -----------------------------------------------------------------------------
    K("plastic", "l_exc", "auto", (str, int), "Plastic E inputs per neuron; 'auto' = "
      "round(2*sqrt(K)).", int_or_auto, "Lexc"),
    K("plastic", "l_inh", "auto", (str, int), "Plastic I inputs per neuron; 'auto' = "
      "round(2*sqrt(K)).", int_or_auto, "Linh"),
    K("plastic", "l_ff", 0, int, "Feed-forward Poisson inputs LX (all project to every neuron).",
      non_negative, "LX"),
    K("plastic", "frac", 1.0, float, "Plastic partners are drawn from the top frac of each "
      "population by init firing rate.", fraction, "frac"),
    K("plastic", "w_scale", 1.0, float, "Initial plastic weight in units of "
      "2*tau_mem_e*g/(2*sqrt(L)); E inputs positive, I inputs negative (the 'auto' value of "
      "wpee, wpei, wpie, wpii).", None, "wpee"),
    K("plastic", "wpee", "auto", (str, float), "Initial weight of a plastic E input onto an E "
      "neuron; 'auto' = w_scale*2*tau_mem_e*g/(2*sqrt(L)).", number_or_auto, "wpee"),
    K("plastic", "wpei", "auto", (str, float), "Initial weight of a plastic I input onto an E "
      "neuron; 'auto' = minus wpee's 'auto' value.", number_or_auto, "wpei"),
    K("plastic", "wpie", "auto", (str, float), "Initial weight of a plastic E input onto an I "
      "neuron; 'auto' = wpee's 'auto' value.", number_or_auto, "wpie"),
    K("plastic", "wpii", "auto", (str, float), "Initial weight of a plastic I input onto an I "
      "neuron; 'auto' = minus wpee's 'auto' value.", number_or_auto, "wpii"),
    K("plastic", "w_ff", 0.0, float, "Std of the initial feed-forward plastic weights.", None,
      "wpX"),
    K("plastic", "plugin", "tsn_mpi.network.plastic:erdos_renyi", str,
      "Plastic connectivity plugin (spec §9.2).", plugin_name, "genPlasticWeights_file"),
    # ---- neuron ------------------------------------------------------------------------------
    K("neuron", "model", "tsn_mpi.models.lif:lif", str, "Cell model plugin: lif, or "
      "tsn_mpi.models.glif:glif1 ... glif5, or your own.", plugin_name, "cellModel_file"),
    K("neuron", "tau_mem_e", 10.0, float, "Membrane time constant of E cells.", positive,
      "tau_meme", "ms"),
    K("neuron", "tau_mem_i", 10.0, float, "Membrane time constant of I cells.", positive,
      "tau_memi", "ms"),
    K("neuron", "thresh_e", 1.0, float, "Spike threshold of E cells.", None, "threshe"),
    K("neuron", "thresh_i", 1.0, float, "Spike threshold of I cells.", None, "threshi"),
    K("neuron", "v_reset", 0.0, float, "Reset voltage.", None, "vre"),
    K("neuron", "refrac", 0.1, float, "Refractory period (compared in float64 as in the "
      "reference, spec pitfall 4).", non_negative, "refrac", "ms"),
    K("neuron", "tau_bal_e", 3.0, float, "Filter time constant of static E input.", positive,
      "tau_bale", "ms"),
    K("neuron", "tau_bal_i", 3.0, float, "Filter time constant of static I input.", positive,
      "tau_bali", "ms"),
    K("neuron", "tau_plas", 150.0, float, "Filter time constant of plastic input and of the "
      "presynaptic traces r.", positive, "tau_plas", "ms"),
    K("neuron", "tau_plas_file", "", str, "Optional .npy file with one tau_plas per neuron "
      "(overrides tau_plas; needs plastic.l_ff = 0).", None, "tau_plas (vector)"),
    K("neuron", "noise_model", "voltage", str, "Where noise enters: 'voltage' or 'current'.",
      one_of("voltage", "current"), "noise_model"),
    K("neuron", "noise_sigma", 0.0, float, "Noise amplitude (0 = none; 0.65 works).",
      non_negative, "sig"),
    K("neuron", "noise_sigma_file", "", str, "Optional .npy file with one noise sigma per "
      "neuron (overrides noise_sigma).", None, "sig (vector)"),
    K("neuron", "glif_params", {}, dict, "Parameters of GLIF models (see docs/models.md); "
      "unknown names are rejected by the model.", None, "cellModel_args"),
    # ---- simulation --------------------------------------------------------------------------
    K("simulation", "dt", 0.1, float, "Time step; 1/dt must be an integer.", positive, "dt",
      "ms"),
    K("simulation", "stim_on", 800.0, float, "Stimulus onset.", non_negative, "stim_on", "ms"),
    K("simulation", "stim_off", 1000.0, float, "Stimulus offset = start of learning.",
      non_negative, "stim_off", "ms"),
    K("simulation", "train_duration", 1000.0, float, "Learning period after stim_off; a trial "
      "lasts stim_off + train_duration.", positive, "train_duration", "ms"),
    K("simulation", "u0_skip_time", 1000.0, float, "Init trial: time skipped before averaging "
      "the synaptic current.", non_negative, "u0_skip_time", "ms"),
    K("simulation", "u0_ncells", 1000, int, "Init trial: neurons whose current std is "
      "estimated.", positive, "u0_ncells"),
    K("simulation", "wid", 50.0, float, "Half-width of the rolling average used for "
      "correlations and test output.", positive, "wid", "ms"),
    K("simulation", "maxrate", 500.0, float, "Caps stored spike times per neuron per trial at "
      "round(maxrate*trial_ms/1000).", positive, "maxrate", "Hz"),
    # ---- stimulus ----------------------------------------------------------------------------
    K("stimulus", "plugin", "tsn_mpi.network.stimulus:ornstein_uhlenbeck", str,
      "Stimulus plugin (spec §9.3); the default OU is regenerated on the fly, not stored.",
      plugin_name, "genXStim_file"),
    K("stimulus", "mu", 0.0, float, "OU stimulus mean.", None, "genXStim mu"),
    K("stimulus", "b", 0.05, float, "OU stimulus rate 1/tau.", positive, "genXStim b", "1/ms"),
    K("stimulus", "sigma", 0.2, float, "OU stimulus noise amplitude.", non_negative,
      "genXStim sig"),
    # ---- targets -----------------------------------------------------------------------------
    K("targets", "plugin", "tsn_mpi.network.targets:sinusoid", str, "Target plugin: sinusoid, "
      "from_current_file, from_rate_file (spec §9.5, §8), or your own.", plugin_name,
      "genUTarget_file"),
    K("targets", "amp", 0.5, float, "Sinusoid amplitude.", None, "Amp"),
    K("targets", "period", 1000.0, float, "Sinusoid period.", positive, "period", "ms"),
    K("targets", "bias", "zero", str, "Bias added to every target: zero, ou or ramping.",
      one_of("zero", "ou", "ramping"), "biasType"),
    K("targets", "bias_mu", 0.0, float, "OU bias mean.", None, "mu_ou_bias"),
    K("targets", "bias_b", 0.0025, float, "OU bias rate.", positive, "b_ou_bias", "1/ms"),
    K("targets", "bias_sigma", 0.02, float, "OU bias noise amplitude.", non_negative,
      "sig_ou_bias"),
    K("targets", "file", "", str, "Current or rate file for the file-based target plugins "
      "(.npy, or .h5 with targets.dataset), shape (Ntime, N[, ntasks]).", None,
      "utarg_file/spikerate_file"),
    K("targets", "dataset", "", str, "Dataset name inside an .h5 targets file ('' = the first).",
      None),
    K("targets", "ntasks", 1, int, "Number of tasks (distinct stimulus/target pairs).",
      positive, "itasks"),
    K("targets", "threshold_overshoot", False, bool, "from_rate_file with K = 0: raise the "
      "threshold of the rate-to-current conversion by 0.5826*sigma*sqrt(dt/tau_mem_e), the "
      "overshoot of the Euler-stepped noisy membrane (Siegmund's correction), so neurons fire at "
      "the target rates; false = the reference (about 13 % below at 13 Hz, sigma 0.65). "
      "'tsn-mpi new --data' sets it (docs/fitting.md)."),
    # ---- feed-forward ------------------------------------------------------------------------
    K("feedforward", "plugin", "tsn_mpi.network.feedforward:ou_rates", str, "Rate plugin of "
      "the feed-forward Poisson inputs (spec §9.4).", plugin_name, "genRateX_file"),
    K("feedforward", "mu", 5.0, float, "Mean rate.", non_negative, "genRateX mu", "Hz"),
    K("feedforward", "b", 0.0025, float, "OU rate of the rate process.", positive,
      "genRateX bou", "1/ms"),
    K("feedforward", "sigma", 0.2, float, "OU noise of the rate process.", non_negative,
      "genRateX sig"),
    K("feedforward", "smooth_steps", 500, int, "Half-width of the moving average (steps).",
      non_negative, "genRateX wid"),
    # ---- learning ----------------------------------------------------------------------------
    K("learning", "penlambda", 0.8, float, "L2 ridge on recurrent plastic weights (1/learning "
      "rate; P0 ~ I/penlambda).", positive, "penlambda"),
    K("learning", "penlam_ff", 1.0, float, "L2 ridge on feed-forward plastic weights.", positive,
      "penlamFF"),
    K("learning", "penmu", 0.01, float, "Penalty coupling same-sign plastic weights.",
      non_negative, "penmu"),
    K("learning", "learn_every", 10.0, float, "Time between RLS updates (a multiple of dt).",
      positive, "learn_every", "ms"),
    K("learning", "mode", "fast", str, "'fast' stores P per neuron; 'small' stores none and "
      "rebuilds it from a short trace history (spec §4.5).", one_of("fast", "small"),
      "PCompute"),
    K("learning", "history", 100.0, float, "Small mode: time span of trace history kept.",
      positive, "PHistory", "ms"),
    K("learning", "history_mean", True, bool, "Small mode: also keep the running mean of all "
      "past traces, weighted by their number (the mean part of fast mode's P), which keeps "
      "learning stable; false = the reference's window only (spec §4.5).", None),
    K("learning", "p_storage", "packed", str, "P layout: 'packed' upper triangle "
      "(n(n+1)/2 values) or 'full' (n*n).", one_of("packed", "full"), "PType"),
    K("learning", "p_precision", "float32", str, "Storage precision of P (arithmetic is float32 "
      "or better); the integer types store round(p_scale*P) and need run.backend = 'gpu'.",
      one_of("float64", "float32", "float16", "int16", "int32"), "PPrecision"),
    K("learning", "p_scale", "auto", (str, float), "Scale of integer P storage (spec §4.3): "
      "'auto' = 2^14 for int16, 2^30 for int32; float precisions need 'auto' (scale 1).",
      scale_or_auto, "PScale"),
    K("learning", "gain", "apriori", str, "Weight update e*P_old*x as the reference since "
      "2024-03 ('apriori'), or textbook RLS e*P_new*x ('textbook').",
      one_of("apriori", "textbook")),
    K("learning", "correlation_var", "auto", str, "Current correlated with the target: utotal, "
      "uplastic, or auto (utotal if K>0).", one_of("auto", "utotal", "uplastic"),
      "correlation_var"),
    K("learning", "benchmark", False, bool, "Compute RLS but do not apply weight updates.", None,
      "benchmark"),
    K("learning", "choose_task", "tsn_mpi.network.tasks:round_robin", str, "Task chooser "
      "plugin f(loop, ntasks) -> task (1-based loop, 0-based task).", plugin_name,
      "choose_task_func"),
    # ---- gpu (how the GPU backend runs; not part of the model) ----------------------------------
    K("gpu", "fused", True, bool, "With one rank: run each chunk of steps as one cooperative "
      "kernel launch, spikes kept on the GPU; false = two launches per step (comparisons).",
      None),
    K("gpu", "rls_kernel", "auto", str, "RLS update kernel: 'block' (one thread block per "
      "neuron, P row in shared memory), 'warp' (one warp per neuron, row in shared memory), "
      "'streamed' (one warp per neuron, P read from device memory), 'auto' (block when the row "
      "fits in shared memory, else streamed).", one_of("auto", "block", "warp", "streamed")),
    K("gpu", "rls_unroll", 0, int, "Loads per thread in each unrolled group while the block "
      "kernel stages a P row (0 = its whole share at once; a tuning knob, see docs/gpu.md).",
      non_negative),
    # ---- data (fitting a recording: docs/fitting.md) -------------------------------------------
    K("data", "file", "", str, "Recording fitted by this run ('' = none): NWB (.nwb), "
      "SONATA spikes (.h5 with /spikes), or a PSTH array (.npy, or .h5 with a 'psth' dataset) "
      "of units x conditions x bins. Set by 'tsn-mpi new DIR --data FILE'; init rebuilds "
      "data-rates.npy and data-fit.h5 when a [data] key or the file changes."),
    K("data", "format", "auto", str, "Format of data.file; 'auto' = from its suffix and "
      "content.", one_of("auto", "nwb", "sonata", "psth")),
    K("data", "trials", "", str, "SONATA input: the trials file (.csv or .toml) with "
      "start_time and stop_time in s, and optional condition and alignment columns."),
    K("data", "population", "", str, "SONATA input: the population under /spikes ('' = the "
      "only one)."),
    K("data", "condition", "condition", str, "Trials column holding each trial's condition; one "
      "task per condition. A table without this column = one condition."),
    K("data", "align", "start_time", str, "Trials column whose time is time zero of each trial "
      "(e.g. a stimulus-onset column)."),
    K("data", "window_start", 0.0, float, "Start of the fitted window, after the alignment "
      "time (may be negative).", None, unit="ms"),
    K("data", "window_stop", "auto", (str, float), "End of the fitted window after the "
      "alignment time; 'auto' = the shortest trial (stop_time - alignment). Becomes "
      "simulation.train_duration.", number_or_auto, unit="ms"),
    K("data", "bin_width", 10.0, float, "PSTH bin width (PSTH arrays: the width of their "
      "bins); must divide the window.", positive, unit="ms"),
    K("data", "smooth_kernel", "gaussian", str, "Kernel smoothing every PSTH (data and model "
      "alike), renormalised at the window's edges.", one_of("gaussian", "boxcar", "none")),
    K("data", "smooth_width", 20.0, float, "Gaussian standard deviation, or boxcar width.",
      non_negative, unit="ms"),
    K("data", "min_rate", 0.5, float, "Units firing below this mean rate over the trial "
      "windows are not fitted.", non_negative, unit="Hz"),
    K("data", "max_units", 0, int, "Fit only the first this many units kept by min_rate "
      "(0 = all).", non_negative),
    K("data", "heldout_fraction", 0.25, float, "Fraction of each condition's trials held out "
      "from the targets and used to evaluate the fit (a split by data.split_seed, stratified "
      "by condition; 0 = none).", lambda x: None if 0 <= x < 1 else "must be in [0, 1)"),
    K("data", "split_seed", 1, int, "Seed of the held-out split (independent of run.seed, so "
      "runs of several seeds are scored on the same trials).", non_negative),
    K("data", "hidden", 0, int, "Unrecorded (hidden) neurons added after the units; their "
      "target is a constant rate.", non_negative),
    K("data", "hidden_rate", "auto", (str, float), "Target rate of the hidden neurons; 'auto' "
      "= the mean rate of the fitted units.", number_or_auto, unit="Hz"),
    # ---- test --------------------------------------------------------------------------------
    K("test", "neurons", "0-15", str, "Neurons recorded in test (global ids, 0-based), e.g. "
      "'0-15' or '1,5,9'.", None, "ineurons_to_test"),
]

SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(k.section for k in KEYS))
BY_PATH: dict[str, Key] = {k.path: k for k in KEYS}
