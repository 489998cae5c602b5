"""The paper's experiments at one scale: a dataset and checkpoints cached outside git.

Layout of the cache (``--cache``, default ``~/.cache/decouple``)::

    <cache>/<scale>/data.h5                    the scale's dataset (built on first use)
    <cache>/<scale>/runs/decouple-l0/last.pt   one run folder per trained model
    <cache>/<scale>/runs/single-l0-0.02/...
    <cache>/<scale>/runs-<digest>/...          models trained on a dataset given with --data

A run that is missing is trained, one that stopped early is resumed (exactly, see
:func:`model.train.train`), one that is complete is only loaded. A model exported beside a
scale's committed tables (``results/medium/models/<run>.json`` and its ``.safetensors``: see
:meth:`Experiment.stored`) is loaded from there instead of being trained, so the committed tables
can be re-evaluated, and completed a model at a time, without hours of training. So a second
``pytest benchmarks`` only re-evaluates, and ``python -m benchmarks.prepare --jobs 2`` can fill
the cache in parallel before it.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import operators
from model.presets import get_preset

#: Each scale's dataset, as keywords of :func:`datagen.plan.dataset_options` (the flags of
#: ``python -m datagen build``; ``ops`` defaults to all): smoke is a tiny build for CI (seconds);
#: small and paper use the bundled default images with the default options, the dataset of the
#: README's quick start (``python -m datagen build --ops all``).
DATA_OPTIONS: dict[str, dict] = {
    "smoke": {"size": 32, "per_image": 2, "max_crops": 3, "scales": (0.25,)},
    "small": {},
    "medium": {},
    "paper": {},
}
#: Where ``python -m datagen build`` writes by default (the README's quick start), relative to
#: the working folder. A finished dataset there whose recorded options and digest are those of
#: a scale's build is that scale's dataset: :meth:`Experiment.locate_data` uses it (only reads
#: it) instead of building the same dataset again into the cache.
QUICK_START_DATA = Path("data") / "decouple.h5"
#: scales that read another scale's dataset (the same build): the medium scale trains on the
#: small scale's <cache>/small/data.h5 (its pairs are 128², the medium preset's crop)
DATA_SCALE = {"medium": "small"}
# points of the continuity sweep across each γ range
SWEEP_POINTS = {"smoke": 5, "small": 21, "medium": 21, "paper": 21}


def middle_gamma(op: str) -> float:
    """The γ used where the paper says "default": the middle one of the operator's five test γ."""
    tg = operators.get(op).test_gammas
    return float(tg[len(tg) // 2])


#: Operator sets of the joint models, by the label that names their run folders (TPAMI 2019
#: Table 3 puts LLF in the six filters, ECCV 2018 Table 4 the shock filter; their 10-operator
#: models add the four restoration tasks; Tables 6 and 12 use the ten TPAMI filter operators).
JOINT_GROUPS: dict[str, tuple[str, ...]] = {
    "filters6": operators.GROUPS["filters"],
    "eccv6": operators.GROUPS["eccv6"],
    "restoration4": operators.GROUPS["restoration"],
    "tpami10": operators.GROUPS["tpami10"],
    "ten-tpami": operators.GROUPS["filters"] + operators.GROUPS["restoration"],
    "ten-eccv": operators.GROUPS["eccv6"] + operators.GROUPS["restoration"],
}

#: The training budget of a model for several operators, in single-operator budgets (the
#: preset's iterations): the number of its operators, capped at ``JOINT_CAP``; the same rule for
#: every method of every table (docs/results.md, "Budget"): at the small scale a joint model
#: trains 6000 iterations where a one-operator model trains 3000.
JOINT_CAP = 2
#: scales whose joint models get the authors' budget ratio instead (130 epochs against 100 for
#: one operator, of the same fixed length: ``model.presets.AUTHORS_JOINT_RATIO``, 1.3) and the
#: authors' joint schedule (the presets' ``joint_lr_steps``)
AUTHORS_BUDGET_SCALES = ("medium", "paper")


def joint_budget(n_ops: int, scale: str | None = None) -> int | float:
    """A joint model's budget in single-operator budgets: at the medium and paper scales the
    authors' ratio (1.3) for any number of operators; otherwise (small; ``scale`` None)
    ``min(n_ops, JOINT_CAP)``."""
    if scale in AUTHORS_BUDGET_SCALES and int(n_ops) > 1:
        from model.presets import AUTHORS_JOINT_RATIO

        return AUTHORS_JOINT_RATIO
    return max(1, min(int(n_ops), JOINT_CAP))


@dataclass(frozen=True)
class Run:
    """One model of an experiment: architecture, operator(s), (single-γ models) its γ, and its
    training budget.

    ``op`` is the operator of a one-operator model, or the label of a joint model's operator
    set (:data:`JOINT_GROUPS`; then ``ops`` lists them, see :meth:`joint`). The model trains
    ``floor(preset.iterations * budget) // share`` iterations (:meth:`iterations`): ``budget``
    > 1 for joint models (an integer, or the authors' 1.3), ``share`` > 1 for a one-operator
    model that gets its share of a joint budget. ``width`` (None: the preset's) and
    ``loss_norm`` (``--loss-norm``) are the medium scale's variants of a model.
    """

    arch: str
    op: str
    gamma: float | None = None
    ops: tuple[str, ...] = ()
    budget: int | float = 1
    share: int = 1
    width: int | None = None
    loss_norm: str = "none"

    def __post_init__(self):
        v = self.budget
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 1 <= v < float("inf"):
            raise ValueError(f"Run.budget must be a number >= 1, got {v!r}")
        for k in ("share",) + (("width",) if self.width is not None else ()):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"Run.{k} must be a positive integer, got {v!r}")
        if self.loss_norm not in ("none", "identity"):
            raise ValueError(f"Run.loss_norm must be 'none' or 'identity', got {self.loss_norm!r}")
        if self.ops and len(set(self.ops)) != len(self.ops):
            raise ValueError(f"Run.ops must name each operator once, got {list(self.ops)}")

    @classmethod
    def joint(cls, arch: str, label: str, budget: int | float = 1, **kw) -> "Run":
        """The model ``arch`` trained on the operators of :data:`JOINT_GROUPS` ``[label]``."""
        if label not in JOINT_GROUPS:
            raise ValueError(f"unknown operator set {label!r}; choose from {list(JOINT_GROUPS)}")
        return cls(arch, label, ops=JOINT_GROUPS[label], budget=budget, **kw)

    @property
    def operators(self) -> tuple[str, ...]:
        """The operators the model is trained on."""
        return self.ops or (self.op,)

    @property
    def is_joint(self) -> bool:
        return len(self.operators) > 1

    @property
    def name(self) -> str:
        """The run folder's name, safe on any file system (``norm:7`` -> ``norm_7``)."""
        name = f"{self.arch}-{self.op}" + ("" if self.gamma is None else f"-{self.gamma:g}")
        if self.budget != 1 or self.share != 1:
            name += f"-b{self.budget:g}" + ("" if self.share == 1 else f"of{self.share}")
        if self.width is not None:
            name += f"-w{self.width}"
        if self.loss_norm != "none":
            name += f"-{self.loss_norm}norm"
        return re.sub(r"[^A-Za-z0-9._+-]", "_", name)

    def iterations(self, preset: str = "small") -> int:
        """Training iterations at ``preset``: its iterations × budget (rounded down) / share
        (at least 2; the smoke preset, which checks that code runs, not what it learns, ignores
        the budget)."""
        budget = 1 if preset == "smoke" else self.budget
        return max(2, int(get_preset(preset).iterations * budget + 1e-9) // self.share)

    def train_args(self, preset: str = "small") -> list[str]:
        """``python -m model train`` arguments saying what this run trains beyond ``--arch``,
        ``--gamma`` and ``--preset``: its operators, its iterations when they are not the
        preset's, its ``--width`` and ``--loss-norm`` when given."""
        args = ["--ops", ",".join(self.operators)]
        if self.iterations(preset) != get_preset(preset).iterations:
            args += ["--iterations", str(self.iterations(preset))]
        if self.width is not None:
            args += ["--width", str(self.width)]
        if self.loss_norm != "none":
            args += ["--loss-norm", self.loss_norm]
        return args


def _keep(ops):
    """The operators a run list is restricted to (``None``: all)."""
    return None if ops is None else set(operators.resolve(ops))


def _wanted(run: Run, keep) -> bool:
    return keep is None or bool(set(run.operators) & keep)


def table1_runs(ops=None, scale=None) -> list[Run]:
    """Table 1 and the γ sweep: per operator one decouple model, one single-γ network per test γ
    and the γ-as-input network (concat) the sweep compares with. The operators are the six
    filters the table reports (:data:`operators.NAMES`), those of them in ``ops`` when given
    (names or groups, in their order: ``"all"`` keeps the six, ``"restoration"`` none), as every
    table's run list keeps only its own operators. None at the medium scale (:data:`MEDIUM`)."""
    if scale == "medium":
        return []
    runs = []
    for op in (operators.NAMES if ops is None else
               [o for o in operators.resolve(ops) if o in operators.NAMES]):
        runs += [Run("decouple", op), Run("concat", op)]
        runs += [Run("single", op, float(g)) for g in operators.get(op).test_gammas]
    return runs


def baseline_runs(ops=None, scale=None) -> list[Run]:
    """Table 6 over the six filters: per operator the γ-as-input network (all γ) and DBL/HDRNet
    at the middle γ, beside the decouple model and the single-γ network of Table 1 (BGU needs no
    training)."""
    runs = []
    for op in (operators.NAMES if ops is None else ops):
        runs += [Run("decouple", op), Run("single", op, middle_gamma(op)), Run("concat", op),
                 Run("hdrnet", op, middle_gamma(op))]
    return runs


# ------------------------------------------------------------- the tables of issue 12
#: Table 2: the restoration tasks with a parameter, one network per task (rain: Table 3 only)
TABLE2_TASKS = ("sr", "denoise", "jpeg")
#: Table 6 over the ten TPAMI filter operators, and Table 12's operators
TABLE6_OPS = operators.GROUPS["tpami10"]
#: TPAMI 2019 Table 12's rows (``decouple`` is its conv(all)), then, beyond the paper, later
#: modulation methods, as names of :mod:`model.registry` (K as the paper numbers N_base's 19
#: InstanceNorm layers; :func:`table12_arch` maps it onto a shorter preset)
TABLE12_ARCHS = ("norm:1", "norm:7", "norm:14", "norm:19", "conv:19", "conv-ch1:19",
                 "conv-ch2:19", "norm:all", "decouple", "cresmd", "adafm", "dni")
#: Table 3 (TPAMI: LLF in the six, with the γ-as-input baseline) and ECCV Table 4 (shock; the
#: ECCV paper has no γ-as-input row)
TABLE3_VARIANTS = {"tpami": ("filters6", "ten-tpami", True), "eccv": ("eccv6", "ten-eccv", False)}
# smoke scale: the same code paths with fewer models (tox runs `pytest benchmarks --scale smoke`)
SMOKE = {"table2": ("jpeg",), "table6": ("l0", "llf", "llf_remap", "pencil"),
         "table12": ("norm:19", "decouple", "adafm"), "table12_per_op": ("l0",),
         "table12_columns": ("l0", "llf", "llf_remap", "pencil"),
         "table3_columns": {"tpami": ("llf", "jpeg"), "eccv": ("shock", "rain")}}


def table2_runs(ops=None, scale=None) -> list[Run]:
    """Table 2 (ECCV 2018 / TPAMI 2019): per restoration task one single-γ network per test γ
    (the dataset's ``single`` split holds them: SR ×2/×3/×4, σ 15/25/50, q 10/20) and one
    decouple network trained on its whole γ range. None at the medium scale."""
    keep = _keep(ops)
    tasks = {"smoke": SMOKE["table2"], "medium": ()}.get(scale, TABLE2_TASKS)
    runs = []
    for t in tasks:
        if keep is None or t in keep:
            runs += [Run("decouple", t)]
            runs += [Run("single", t, float(g)) for g in operators.get(t).test_gammas]
    return runs


def table3_runs(ops=None, scale=None, variants=tuple(TABLE3_VARIANTS)) -> list[Run]:
    """TPAMI 2019 Table 3 and ECCV 2018 Table 4: per column operator its one-operator decouple
    model; the 6-filter and the 4-restoration joint models; the 10-operator joint model; (TPAMI)
    the γ-as-input network over the ten. Joint models get :func:`joint_budget`. None at the
    medium scale."""
    keep = _keep(ops)
    runs: list[Run] = []
    for v in (() if scale == "medium" else variants):
        six, ten, baseline = TABLE3_VARIANTS[v]
        cand = [Run("decouple", o) for o in JOINT_GROUPS[ten]]
        cand += [Run.joint("decouple", g, joint_budget(len(JOINT_GROUPS[g]), scale))
                 for g in (six, "restoration4", ten)]
        if baseline:
            cand.append(Run.joint("concat", ten, joint_budget(len(JOINT_GROUPS[ten]), scale)))
        runs += [r for r in cand if _wanted(r, keep) and r not in runs]
    return runs


def table6_runs(ops=None, scale=None) -> list[Run]:
    """TPAMI 2019 Table 6 over its ten filter operators: per operator DBL/HDRNet at the default
    γ (fixed-effect operators: their one effect), and, for operators with a γ, our decouple,
    single-γ and γ-as-input networks (as :func:`baseline_runs`); "ours" as the paper: the
    ``realtime`` model trained once jointly on all ten (:func:`joint_budget`). The medium scale
    trains the real-time model only (:data:`MEDIUM`)."""
    keep = _keep(ops)
    realtime = Run.joint("realtime", "tpami10", joint_budget(len(TABLE6_OPS), scale))
    if scale == "medium":
        return [realtime] if _wanted(realtime, keep) else []
    runs = []
    for op in (SMOKE["table6"] if scale == "smoke" else TABLE6_OPS):
        if keep is not None and op not in keep:
            continue
        if operators.get(op).has_gamma:
            runs += baseline_runs([op])
        else:
            runs.append(Run("hdrnet", op))
    return runs + ([realtime] if _wanted(realtime, keep) else [])


def table12_arch(arch: str, scale: str | None) -> str:
    """``arch`` for the scale's preset: a layer K of the paper's 19 InstanceNorm layers mapped
    onto a base network with fewer (the smoke preset's 2 residual blocks: 9), the last to the
    last, the others in proportion."""
    m = re.fullmatch(r"(norm|conv|conv-ch1|conv-ch2):(\d+)", arch)
    if m is None or scale is None:
        return arch
    from model.presets import get_preset
    from model.registry import PAPER_NORMS, norm_layers

    n = norm_layers(get_preset(scale).dilations)
    k = int(m.group(2))
    if n >= PAPER_NORMS:
        return arch
    k = n if k == PAPER_NORMS else max(1, min(n, round(k * n / PAPER_NORMS)))
    return f"{m.group(1)}:{k}"


def table12_runs(ops=None, scale=None) -> list[Run]:
    """TPAMI 2019 Table 12 and beyond: each architecture trained jointly on the ten filter
    operators with the same budget (:func:`joint_budget` of ten operators).
    ``adafm`` and ``dni`` learn one operator between the two ends of its γ range and cannot be
    joint: one model per operator with a γ, each with its share of the same total budget.
    The medium scale: :func:`medium_table12_runs`."""
    from model.registry import get as get_arch

    keep = _keep(ops)
    if scale == "medium":
        return [r for r in medium_table12_runs() if _wanted(r, keep)]
    budget = joint_budget(len(TABLE6_OPS), scale)
    with_gamma = [o for o in TABLE6_OPS if operators.get(o).has_gamma]
    runs = []
    for arch in (SMOKE["table12"] if scale == "smoke" else TABLE12_ARCHS):
        a = table12_arch(arch, scale)
        if get_arch(a).one_op:
            per_op = SMOKE["table12_per_op"] if scale == "smoke" else with_gamma
            runs += [Run(a, o, budget=budget, share=len(with_gamma)) for o in per_op
                     if keep is None or o in keep]
        else:
            r = Run.joint(a, "tpami10", budget)
            runs += [r] if _wanted(r, keep) else []
    return runs


#: The medium scale (issue 24): targeted, not everything larger. The ten-filter joint models of
#: TPAMI Tables 6 and 12 with the authors' budget ratio (1.3 x the medium preset's 18,462
#: iterations = 24,000) and joint schedule, on 128² crops: the real-time model (Table 6) and
#: these Table 12 variants at the preset's width 16; ``wide``: the pair conv(all), norm(1) at
#: width 32 (the γ-dependent part of norm(k) is 2 x width numbers: 32 at width 16, 128 in the
#: paper), to separate width from budget; ``diagnostic``: the same pair trained with each
#: operator's loss divided by its identity MSE (``--loss-norm identity``), which separates "one
#: layer cannot carry the operator" (still at its input) from "the operator got no gradient"
#: (style and pencil hold ~75 % of the paper loss a joint model starts from). Tables 1, 2, 3
#: and the joint γ sweep stay at the small scale (their run lists are empty here).
MEDIUM = {"table12": ("norm:1", "norm:19", "conv-ch2:19", "norm:all", "decouple"),
          "wide": (32, ("decouple", "norm:1")), "diagnostic": ("decouple", "norm:1")}


def medium_table12_runs() -> list[Run]:
    """Table 12's models at the medium scale (:data:`MEDIUM`), in training order."""
    budget = joint_budget(len(TABLE6_OPS), "medium")
    runs = [Run.joint(a, "tpami10", budget) for a in MEDIUM["table12"]]
    width, pair = MEDIUM["wide"]
    runs += [Run.joint(a, "tpami10", budget, width=width) for a in pair]
    runs += [Run.joint(a, "tpami10", budget, loss_norm="identity") for a in MEDIUM["diagnostic"]]
    return runs


def sweep_joint_runs(ops=None, scale=None) -> list[Run]:
    """The joint γ sweep's models (all trained for Tables 3, 6 and 12): the joint decouple
    models of Table 3 (6 filters, 10 operators) and its γ-as-input one over 10, the realtime and
    decouple models over the ten filters (Tables 6 and 12), and each filter's own decouple
    model (Table 1). None at the medium scale (:data:`MEDIUM`)."""
    keep = _keep(ops)
    if scale == "medium":
        return []
    runs = [r for r in table3_runs(ops, scale, variants=("tpami",))
            if r.is_joint and r.op != "restoration4"]
    runs += [r for r in table6_runs(ops, scale) if r.arch == "realtime"]
    runs += [r for r in table12_runs(ops, scale) if r.arch == "decouple"]
    runs += [Run("decouple", o) for o in operators.NAMES if keep is None or o in keep]
    return runs


def job_threads(jobs: int, threads: int | None = None) -> int | None:
    """The threads of each training :meth:`Experiment.prepare` starts, and of the steps its dry
    run times: ``threads`` when given, else one when ``jobs`` > 1 (the jobs share the cores;
    more threads each would stall one another), else None (torch's default)."""
    return threads if threads is not None else (1 if jobs > 1 else None)


class Unfinished(list):
    """What :meth:`Experiment.prepare` returns: the runs whose training failed, with
    ``stopped``: those stopped by a signal from outside (a user's ``kill`` of one training)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.stopped: list = []


def stopped_by_signal(returncode: int | None) -> bool:
    """Whether a training's exit status says it was stopped by SIGINT or SIGTERM rather than
    failed: ``python -m model train`` checkpoints the step it was in and exits 128 + the signal's
    number (:class:`model.train.TrainingStopped`); a process killed by one of them before its
    handler was set reports minus the number."""
    stops = (signal.SIGINT, signal.SIGTERM)
    return returncode is not None and (returncode in {128 + int(s) for s in stops}
                                       or returncode in {-int(s) for s in stops})


#: seconds a stopped training gets to end after SIGTERM before it is killed (:func:`stop_jobs`)
STOP_GRACE_S = 10.0


def stop_jobs(active, grace: float = STOP_GRACE_S) -> None:
    """End the trainings :meth:`Experiment.prepare` started and wait for them: SIGTERM to each
    one still running, SIGKILL to those still running ``grace`` seconds later (at once on a
    second interrupt), and close their logs. ``active`` holds ``(run, process or None, log)``.

    Why: a training left running after its ``prepare`` stopped keeps its run folder's lock, so a
    restarted ``prepare`` would count that model as failed, and it would go on using the
    machine's cores unseen. SIGTERM makes a training finish its step and checkpoint it
    (:class:`model.train.TrainingStopped`), so nothing trained is lost; killing one after the
    grace is safe too: a checkpoint is replaced atomically and the lock is released by the
    kernel, so the next ``prepare`` resumes it from its last checkpoint.
    """
    import time

    procs = [p for _, p, _ in active if p is not None]
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + grace
    for p in procs:
        while p.poll() is None:
            try:
                p.wait(timeout=max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
            except KeyboardInterrupt:  # interrupted again while waiting: no more grace
                deadline = time.monotonic()
                p.kill()
    for _, _, log in active:
        log.close()
    active.clear()


#: ``python -m benchmarks.prepare --tables``: table name → its run list ``f(ops, scale)``
#: (``table6``: the ten-operator Table 6, which includes the six-operator one's models)
TABLES = {"table1": table1_runs, "table2": table2_runs, "table3": table3_runs,
          "table6": table6_runs, "table12": table12_runs, "sweep_joint": sweep_joint_runs}


def dataset_record(path) -> dict:
    """What a dataset file records about its build: ``digest`` (of its options, crops, pixels
    and γ), ``options`` (a dict) and ``command``. The file is opened read-only and checked
    (:func:`datagen.store.open_file`: a foreign or damaged file is a one-line ValueError)."""
    import json

    from datagen.store import open_file

    with open_file(path) as f:
        try:
            options = json.loads(str(f.attrs.get("options", "{}")))
        except ValueError:
            options = {}
        return {"digest": str(f.attrs["digest"]), "options": options,
                "command": str(f.attrs.get("command", ""))}


@dataclass(frozen=True)
class DataChoice:
    """The dataset an :class:`Experiment` uses (:meth:`Experiment.locate_data`): its ``path``,
    whether it ``exists`` yet (False: it is built there first), whether it is the scale's build
    (``scale_build``: its models are the scale's, in ``runs/``), and ``why`` this one, in words."""

    path: Path
    exists: bool
    scale_build: bool
    why: str


#: the folder of exported models beside a scale's committed tables (``<results>/models``)
MODELS_FOLDER = "models"


def models_option(value) -> Path | str | None:
    """``--models``'s value for :class:`Experiment`: 'default', None ('none') or a folder."""
    if value is None or value == "default":
        return "default"
    return None if str(value).strip().lower() == "none" else Path(value)


def default_models(scale: str) -> Path | None:
    """The models behind ``scale``'s committed tables: ``results/medium/models`` at the medium
    scale, ``results/models`` at the small and paper scales (used where they exist); none at
    the smoke scale."""
    if scale == "smoke":
        return None
    from ._report import results_folder

    return results_folder(scale, None) / MODELS_FOLDER


def default_zoo(scale: str) -> Path | None:
    """The model zoo's folder (:func:`model.zoo.folder`), whose small-scale one-operator models
    (``decouple-<op>``, 3000 iterations) are runs of the small scale's Tables 1-3: used for
    them where their card matches the run (:meth:`Experiment.stored`); None at the smoke scale
    or where the zoo is not a folder on disk."""
    if scale == "smoke":
        return None
    from model.zoo import folder

    path = Path(str(folder()))
    return path if path.is_dir() else None


class Experiment:
    """Dataset and models of one scale, in ``cache/scale``; ``data`` overrides the dataset;
    ``models``: the folder of exported models to use before training (default:
    :func:`default_models`; None: train everything in the cache)."""

    def __init__(self, scale: str, cache, data=None, device: str | None = None,
                 models="default"):
        if scale not in DATA_OPTIONS:
            raise ValueError(f"unknown scale {scale!r}")
        default = isinstance(models, str) and models == "default"
        self.models = (default_models(scale) if default
                       else None if models is None else Path(models))
        #: the model zoo's folder, whose cards stand in for the runs they were exported from
        #: (``trained.run``) after :attr:`models`: with the default models, not at the smoke scale
        self.zoo = default_zoo(scale) if default else None
        self._zoo_index: dict[str, Path] | None = None
        self.scale = scale
        self.cache = Path(cache)
        self.root = self.cache / scale
        # the dataset's folder: the scale's own, or the scale whose build it shares (DATA_SCALE)
        self.data_root = self.cache / DATA_SCALE.get(scale, scale)
        self._data = Path(data) if data else None
        self.device = device
        self._attrs: tuple[str, str] | None = None
        self._scale_digest: str | None = None
        self._located: DataChoice | None = None

    @property
    def preset(self) -> str:
        return self.scale

    @property
    def data_scale(self) -> str:
        """The scale whose dataset this one trains on: its own, or the one it shares
        (:data:`DATA_SCALE`)."""
        return DATA_SCALE.get(self.scale, self.scale)

    def data_options(self):
        """The :class:`datagen.plan.Options` of the scale's dataset (:data:`DATA_OPTIONS`)."""
        from datagen.plan import dataset_options

        return dataset_options(**DATA_OPTIONS[self.data_scale])

    def data_command(self, out) -> str:
        """The ``python -m datagen build`` command line that makes the scale's dataset at
        ``out``: what a user would type for the same file, recorded in it as its command."""
        import shlex

        args = []
        for key, value in {"ops": "all", **DATA_OPTIONS[self.data_scale]}.items():
            flag = "--" + key.replace("_", "-")
            if isinstance(value, bool):
                args.append(flag if value else "--no-" + key.replace("_", "-"))
            else:
                text = ",".join(map(str, value)) if isinstance(value, (tuple, list)) else value
                args += [flag, str(text)]
        return "python -m datagen build " + shlex.join(args[:2] + ["--out", str(out)] + args[2:])

    def scale_digest(self) -> str:
        """The digest of the scale's dataset: the one recorded in ``<cache>/<scale>/data.h5``
        once that is built, else the one its build would record (the plan's: the images read
        and cropped, every γ drawn, no pair computed; seconds). Read once."""
        if self._scale_digest is None:
            cached = self.data_root / "data.h5"
            if cached.is_file():
                self._scale_digest = dataset_record(cached)["digest"]
            else:
                from datagen.plan import make_plan

                self._scale_digest = make_plan(self.data_options()).digest()
        return self._scale_digest

    def is_scale_build(self, path) -> tuple[bool, str]:
        """Whether the dataset file ``path`` is the scale's build, and if not why: its recorded
        options (``datagen`` stores them, with the digest of what they made) must be the
        scale's (:meth:`data_options`; the image folder's label aside) and its digest
        :meth:`scale_digest` (the same crops, pixels and γ). The file is only read."""
        import json

        record = dataset_record(path)
        want = json.loads(json.dumps(self.data_options().portable(), sort_keys=True))
        got = record["options"]
        differ = sorted(k for k in set(want) | set(got)
                        if k != "images_label" and want.get(k) != got.get(k))
        if differ:
            return False, f"built with other options: {', '.join(differ)}"
        if record["digest"] != self.scale_digest():
            return False, (f"its digest {record['digest'][:12]} is not the build's "
                           f"{self.scale_digest()[:12]} (other images or code)")
        return True, ""

    def locate_data(self) -> DataChoice:
        """Which dataset the experiment uses and why, without building anything:

        1. the file given as ``data`` (``--data``): its models go to ``runs/`` when it is the
           scale's build (:meth:`is_scale_build`; e.g. the quick start's file), else to
           ``runs-<digest>/``;
        2. ``<cache>/<scale>/data.h5``, the scale's dataset once built;
        3. the quick start's :data:`QUICK_START_DATA` when it is the scale's build: used as it
           is (only read), instead of building the same dataset again;
        4. else ``<cache>/<scale>/data.h5``, to be built (:meth:`data`).
        """
        if self._located is not None:
            return self._located
        cached = self.data_root / "data.h5"
        name = f"the {self.data_scale} scale's"
        if self._data is not None:
            if not self._data.is_file():
                raise FileNotFoundError(f"no dataset at {self._data}")
            ok, why_not = self.is_scale_build(self._data)
            digest = dataset_record(self._data)["digest"]
            why = (f"given with --data: {name} build (options and digest {digest[:12]} match), "
                   "so its models are the scale's, in runs/" if ok else
                   f"given with --data: not {name} build ({why_not}), so its models go to "
                   f"runs-{digest[:12]}/")
            choice = DataChoice(self._data, True, ok, why)
        elif cached.is_file():
            choice = DataChoice(cached, True, True, f"{name} dataset in the cache")
        else:
            why = f"missing: built there first, as by {self.data_command(cached)}"
            choice = DataChoice(cached, False, True, why)
            quick = QUICK_START_DATA
            if quick.is_file():
                try:
                    ok, why_not = self.is_scale_build(quick)
                except (ValueError, OSError) as exc:  # damaged, foreign: build our own
                    ok, why_not = False, str(exc)
                if ok:
                    choice = DataChoice(quick, True, True, (
                        f"the quick start's dataset is {name} build (options and digest "
                        f"{self.scale_digest()[:12]} match): used as it is, only read, instead "
                        f"of building the same into {cached}"))
                else:
                    choice = DataChoice(cached, False, True,
                                        f"{why}; {quick} is not {name} build ({why_not})")
        if choice.exists:
            self._located = choice
        return choice

    def data(self, progress: bool = False) -> Path:
        """The dataset file (:meth:`locate_data`), built (resumably) with the scale's options
        through :func:`datagen.build.build_dataset` if it is missing."""
        choice = self.locate_data()
        if not choice.exists:
            from datagen.build import build_dataset

            path = choice.path
            partial = Path(str(path) + ".partial")
            build_dataset(path, self.data_options(), resume=partial.exists(),
                          progress=progress, command=self.data_command(path))
            self._scale_digest = None  # now the one the built file records
        return self.locate_data().path

    def _dataset_attrs(self) -> tuple[str, str]:
        """The dataset's content digest and the command that built it (read once)."""
        if self._attrs is None:
            record = dataset_record(self.data())
            self._attrs = (record["digest"], record["command"])
        return self._attrs

    def digest(self) -> str:
        """The dataset's content digest (``datagen`` stores it in the file)."""
        return self._dataset_attrs()[0]

    def run_dir(self, run: Run) -> Path:
        """``runs/`` for the scale's own dataset (wherever it is: :meth:`locate_data`),
        ``runs-<digest>/`` for another one given with ``data``."""
        runs = ("runs" if self._data is None or self.locate_data().scale_build
                else f"runs-{self.digest()[:12]}")
        return self.root / runs / run.name

    def run_preset(self, run: Run):
        """The preset ``run`` is trained with: the scale's, with the run's own iterations
        (:meth:`Run.iterations`). (A crop larger than an operator's stored pairs, as SR's 24²
        pairs of the smoke build, is capped by :func:`model.train.train` itself.)"""
        return get_preset(self.preset).with_(iterations=run.iterations(self.preset),
                                             width=run.width)

    def train_args(self, run: Run) -> list[str]:
        """The ``python -m model train`` arguments that say what ``run`` trains beyond
        ``--arch``, ``--gamma`` and ``--preset``: ``--ops`` and, where they differ from the
        preset's, ``--iterations`` (see :meth:`run_preset`)."""
        return run.train_args(self.preset)

    def stored(self, run: Run) -> Path | None:
        """The exported card of ``run`` in :attr:`models` (``<models>/<run name>.json``, written
        by ``python -m model zoo export ... RUN=RUN``), when it is usable here: the card is a
        regular file naming this run, its operators, this dataset's digest (a model of another
        build is never evaluated on this one) and at least the run's iterations; else None
        (:meth:`store_note` says why)."""
        return self._stored(run)[0]

    def store_note(self, run: Run) -> str:
        """Why :meth:`stored` uses or ignores ``run``'s exported card ('' when there is none)."""
        return self._stored(run)[1]

    def _stored(self, run: Run) -> tuple[Path | None, str]:
        notes = []
        for path in self._card_candidates(run):
            card, why = self._card_refusal(path, run)
            if why is None:
                return path, self._card_use(path, card)
            notes.append(f"{path} ignored: {why}")
        return None, "; ".join(notes)

    def _card_candidates(self, run: Run) -> list[Path]:
        """Where ``run``'s exported card may be: ``<models>/<run name>.json``, then the model
        zoo's card exported from a run of that name (:attr:`zoo`)."""
        found = []
        if self.models is not None and os.path.lexists(self.models / f"{run.name}.json"):
            found.append(self.models / f"{run.name}.json")
        zoo_card = self._zoo_cards().get(run.name)
        if zoo_card is not None:
            found.append(zoo_card)
        return found

    def _zoo_cards(self) -> dict[str, Path]:
        """The model zoo's cards (:attr:`zoo`) by the run they were exported from
        (``trained.run``), read once; a card that cannot be read is left out (``python -m
        model zoo verify`` reports it)."""
        if self._zoo_index is None:
            from model.zoo import read_card_file

            self._zoo_index = {}
            for path in sorted(self.zoo.glob("*.json")) if self.zoo is not None else []:
                try:
                    name = (read_card_file(path).get("trained") or {}).get("run")
                except ValueError:
                    continue
                if isinstance(name, str):
                    self._zoo_index.setdefault(name, path)
        return self._zoo_index

    def _card_refusal(self, path: Path, run: Run) -> tuple[dict | None, str | None]:
        """The exported card at ``path`` (None when unreadable) and why it cannot stand for
        ``run`` here (None when it can)."""
        from datagen.plan import same_plan
        from model.zoo import read_card_file

        try:
            card = read_card_file(path)
        except ValueError as exc:
            return None, str(exc)
        trained = card.get("trained") or {}
        digest = self._known_digest()
        dataset = card.get("dataset") or {}
        why = None
        if trained.get("run") != run.name:
            why = f"it was exported from run {trained.get('run')!r}, not {run.name!r}"
        elif card.get("scale") not in (None, self.preset):
            why = f"it was trained at the {card.get('scale')} scale, not {self.preset}"
        elif list(card.get("operators") or []) != list(run.operators):
            why = f"its operators {card.get('operators')} are not {list(run.operators)}"
        elif not same_plan(dataset.get("digest"), digest):
            why = (f"it was trained on dataset {str(dataset.get('digest'))[:12]}, not this "
                   f"one ({digest[:12]})")
        elif int(card.get("iteration") or 0) < run.iterations(self.preset):
            why = f"it is from iteration {card.get('iteration')} of {run.iterations(self.preset)}"
        return card, why

    def _card_use(self, path: Path, card: dict) -> str:
        """:meth:`store_note` for the usable card ``card`` read from ``path``."""
        where = "the model zoo" if path.parent == self.zoo else "exported"
        digest = str((card.get("dataset") or {}).get("digest"))
        if digest != self._known_digest():
            return (f"{where} in {path} (trained on dataset {digest[:12]}, the same plan as "
                    f"{self._known_digest()[:12]}: datagen.plan.SAME_PLAN_DIGESTS)")
        return f"{where} in {path}"

    @property
    def unfinished(self) -> Path | None:
        """``<models>/../unfinished`` (``results/medium/unfinished``): the committed training
        states of runs that take more than one sitting, ``RUN/last.pt`` and ``RUN/log.csv``
        (:meth:`save_unfinished`), which a later sitting resumes (:meth:`carry_in`) instead of
        starting again; None without a models folder (``--models none``)."""
        return None if self.models is None else self.models.parent / "unfinished"

    def _unfinished_state(self, run: Run) -> tuple[dict | None, str]:
        """The committed training state of ``run`` (:attr:`unfinished`), checked, or None and
        why it is not used ('' when there is none)."""
        from model.checkpoint import load

        if self.unfinished is None:
            return None, ""
        path = self.unfinished / run.name / "last.pt"
        if not os.path.lexists(path):
            return None, ""
        if path.is_symlink() or not path.is_file():
            return None, f"{path} ignored: not a regular file"
        try:
            state = load(path)  # checksum checked, tensors only
        except ValueError as exc:
            return None, f"{path} ignored: {exc}"
        config = state["config"]
        if config.get("arch") != run.arch or list(config.get("ops") or []) != list(run.operators):
            return None, f"{path} ignored: it is a state of {config.get('arch')} on " \
                         f"{config.get('ops')}, not of {run.name}"
        digest = self._known_digest()
        if config.get("data_digest") != digest:
            return None, (f"{path} ignored: it was trained on dataset "
                          f"{str(config.get('data_digest'))[:12]}, not this one "
                          f"({digest[:12]})")
        return state, f"{path} (iteration {state['iteration']})"

    def progress_note(self, run: Run) -> str:
        """How far the run's own checkpoint in the cache is ('' without one; a damaged one
        says so)."""
        from model.checkpoint import load

        path = self.run_dir(run) / "last.pt"
        if not path.is_file():
            return ""
        try:
            done = load(path)["iteration"]
        except ValueError as exc:
            return f"{path} unreadable: {exc}"
        return f"at iteration {done} of {run.iterations(self.preset)} in the cache"

    def carry_in(self, run: Run) -> str:
        """Start ``run`` from its committed training state (:attr:`unfinished`) when its run
        folder has no checkpoint of its own (one there is never replaced): the state is copied
        in, its dataset path made this machine's, with its log (replacing the log of a start
        that left no checkpoint), and the training resumes from
        it (``--resume``; the resume is recorded in its config). The state must be a regular
        file with a valid checksum, of this run's architecture and operators, trained on this
        dataset. It is done holding the run folder's lock (:class:`model.train.RunLock`), so a
        training started by hand on the folder meanwhile is never written under: such a run is
        left as it is, saying who trains it. Returns what was done ('' when nothing)."""
        from datagen.fs import atomic_write_bytes
        from model.checkpoint import save
        from model.train import RunLock, RunLockedError

        folder = self.run_dir(run)
        if os.path.lexists(folder / "last.pt"):
            return ""
        state, note = self._unfinished_state(run)
        if state is None:
            return note
        state["config"]["data"] = str(self.data())
        try:
            with RunLock(folder):
                if os.path.lexists(folder / "last.pt"):  # written before the lock was ours
                    return ""
                log = self.unfinished / run.name / "log.csv"
                if log.is_file() and not log.is_symlink():  # a log here without a checkpoint
                    # is of an abandoned start, which training from scratch would rewrite too
                    atomic_write_bytes(folder / "log.csv", log.read_bytes())
                save(folder / "last.pt", state)
        except RunLockedError as exc:
            return f"{run.name}: not resumed from {note}: {exc}"
        return f"{run.name}: resumed from {note}"

    def save_unfinished(self, runs: list[Run]) -> list[str]:
        """Copy the training state of each run that is started but not done (its checkpoint
        and log) into :attr:`unfinished` ``/RUN/``, this machine's paths made portable
        (``<cache>/...``), for a later sitting on any machine to resume (:meth:`carry_in`).
        A state saved there at the same or a later iteration is kept. Returns one line per
        run saved."""
        from datagen.fs import atomic_write_bytes
        from model.checkpoint import load, save

        from ._report import portable_path

        if self.unfinished is None:
            raise ValueError("no folder for unfinished runs: it lies beside the models folder "
                             "(--models DIR), not with --models none")
        saved = []
        for run in runs:
            src = self.run_dir(run) / "last.pt"
            if src.is_symlink() or not src.is_file() or self.is_done(run):
                continue
            state = load(src)
            kept, _ = self._unfinished_state(run)
            if kept is not None and kept["iteration"] >= state["iteration"]:
                continue
            config = state["config"]
            config["data"] = portable_path(config.get("data", ""), self.cache)
            for resume in config.get("resumes", []):
                resume["data"] = portable_path(resume.get("data", ""), self.cache)
            out = self.unfinished / run.name
            save(out / "last.pt", state)
            log = self.run_dir(run) / "log.csv"
            if log.is_file() and not log.is_symlink():
                atomic_write_bytes(out / "log.csv", log.read_bytes())
            saved.append(f"{run.name}: iteration {state['iteration']} of "
                         f"{run.iterations(self.preset)} -> {portable_path(out, self.cache)}")
        return saved

    def export_finished(self, runs: list[Run], command: str, log=print) -> list[str]:
        """Export each finished run of the cache that :attr:`models` lacks into that folder
        (``RUN.json`` and ``RUN.safetensors``, as ``python -m model zoo export ... RUN=RUN``:
        evaluated on the test split; ``command`` is recorded in its card), and delete the run's
        committed unfinished state (``unfinished/RUN/last.pt`` and ``log.csv``), which the
        export supersedes. A run whose card or weights path exists (a card used, or ignored for
        a reason :meth:`store_note` gives; a file of someone else's) is left alone, never
        overwritten; so is one the zoo holds.
        Returns one line per run exported."""
        from model import zoo

        from ._report import portable_path

        if self.models is None:
            raise ValueError("no folder to export into: --models none")
        done = []
        for run in runs:
            card = self.models / f"{run.name}.json"
            ours = (card, self.models / f"{run.name}.safetensors")
            if (self.stored(run) is not None or any(os.path.lexists(f) for f in ours)
                    or not self._trained(run)):
                continue
            zoo.export_run(self.run_dir(run), run.name, self.models, self.data(),
                           command=command, log=log)
            done.append(f"{run.name}: exported -> {portable_path(card, self.cache)}")
            if self.unfinished is None or not os.path.lexists(self.unfinished / run.name):
                continue
            state = self.unfinished / run.name
            where = portable_path(state, self.cache)
            if self.unfinished.is_symlink() or state.is_symlink() or not state.is_dir():
                done[-1] += f" (its unfinished state {where} is a link or not a folder: left)"
                continue
            for name in ("last.pt", "log.csv"):
                if os.path.lexists(state / name):
                    (state / name).unlink()  # a link is removed itself, never followed
            if not any(state.iterdir()):
                state.rmdir()
            done[-1] += f" (its unfinished state in {where} deleted)"
        return done

    def _known_digest(self) -> str:
        """The dataset's digest, or, before the scale's dataset is built, the one its build
        will record (nothing is built to decide)."""
        return self.digest() if self.locate_data().exists else self.scale_digest()

    def is_done(self, run: Run) -> bool:
        """A usable exported model (:meth:`stored`), or a finished run folder in the cache."""
        if self.stored(run) is not None:
            return True
        return self._trained(run)

    def _trained(self, run: Run) -> bool:
        from model.checkpoint import load

        path = self.run_dir(run) / "last.pt"
        if not path.is_file():
            return False
        try:
            state = load(path)
        except ValueError:  # unreadable: training it reports the problem
            return False
        if state["config"].get("data_digest") != self.digest():
            raise ValueError(f"{path} was trained on another dataset than {self.data()} "
                             "(digests differ): delete its run folder or use another --cache")
        return state["iteration"] >= run.iterations(self.preset)

    def provenance(self, started: float, runs=(), **extra) -> dict:
        """Provenance of a model table: the dataset, the preset and the trained models behind it,
        besides the command, hardware, commit and wall time (:func:`benchmarks._report.provenance`)."""
        from model.presets import get_preset

        from ._report import portable_meta, portable_path, provenance

        digest, command = self._dataset_attrs()
        # paths relative to the cache (<cache>/small/data.h5), never this machine's directories
        return portable_meta(
            provenance(self.scale, started, dataset=portable_path(self.data(), self.cache),
                       dataset_digest=digest, dataset_command=command,
                       preset=get_preset(self.preset).to_dict(),
                       **self.training_facts(list(runs)), **extra), self.cache)

    def training_facts(self, runs: list[Run]) -> dict:
        """Provenance of the trained models behind a table: how many, their training wall time
        (as each checkpoint or exported card recorded it), the code versions they were trained
        with, and which were loaded from the exported models (:meth:`stored`)."""
        from ._report import portable_path

        cards = {r.name: self.stored(r) for r in runs}  # each exported card looked up once
        done = [r for r in runs if cards[r.name] is not None or self._trained(r)]
        states = [self._state_facts(r, cards[r.name]) for r in done]
        facts = {"models": len(states),
                 "training_wall_s_total": round(sum(s.get("elapsed_s", 0.0) for s in states), 1),
                 "training_code": sorted({str(s["config"].get("code")) for s in states}),
                 "models_dir": portable_path(self.run_dir(Run("decouple", "l0")).parent,
                                             self.cache)}
        for key, folder in (("exported_models", self.models), ("zoo_models", self.zoo)):
            # loaded from the exported models beside the committed tables, or from the zoo
            exported = [r.name for r in done
                        if cards[r.name] is not None and cards[r.name].parent == folder]
            if not exported:
                continue
            facts[key] = {"folder": portable_path(folder, self.cache), "runs": exported}
            other = {r.name: s["dataset_digest"] for r, s in zip(done, states)
                     if r.name in exported and s["dataset_digest"] != self.digest()}
            if other:  # trained on a build of the same plan (datagen.plan.SAME_PLAN_DIGESTS)
                facts[key]["trained_on_same_plan"] = other
        if any(r.budget != 1 or r.share != 1 for r in runs):  # tables with joint models
            ratio = joint_budget(2, self.scale)
            facts["budget_rule"] = (
                (f"a model for several operators trains {ratio:g} x the preset's "
                 f"{get_preset(self.preset).iterations} iterations (the authors' 130 epochs "
                 "against 100) with the authors' joint learning-rate schedule (preset "
                 "joint_lr_steps, recorded as each run's lr_steps)"
                 if self.scale in AUTHORS_BUDGET_SCALES else
                 f"a model for n operators trains min(n, {JOINT_CAP}) x the preset's "
                 f"{get_preset(self.preset).iterations} iterations")
                + "; a one-operator model of a "
                "method that cannot be joint (adafm, dni) gets the joint budget divided by the "
                "number of operators it is trained for (the same total per method); at the "
                "smoke scale every model trains the preset's iterations")
            facts["iterations"] = {r.name: state["iteration"] for r, state in zip(done, states)}
        return facts

    def _state_facts(self, run: Run, card_path: Path | None) -> dict:
        """What :meth:`training_facts` reads of a done run: its checkpoint, or the card of its
        exported model at ``card_path`` (:meth:`stored`: iteration, the training's wall time and
        code version)."""
        from model.checkpoint import load

        if card_path is None:
            return load(self.run_dir(run) / "last.pt")
        from model.zoo import read_card_file

        card = read_card_file(card_path)
        trained = card.get("trained") or {}
        return {"iteration": int(card["iteration"]),
                "elapsed_s": float(trained.get("elapsed_s") or 0.0),
                "config": {"code": trained.get("code")},
                "dataset_digest": (card.get("dataset") or {}).get("digest")}

    def train_command(self, run: Run, quiet: bool = True, threads: int | None = None) -> list[str]:
        """The ``python -m model train`` command of ``run`` (``threads``: its ``--threads``)."""
        cmd = [sys.executable, "-m", "model", "train", "--data", str(self.data()),
               *self.train_args(run), "--arch", run.arch, "--preset", self.preset,
               "--out", str(self.run_dir(run)), "--resume"]
        if run.gamma is not None:
            cmd += ["--gamma", repr(run.gamma)]
        if self.device:
            cmd += ["--device", self.device]
        if threads is not None:
            cmd += ["--threads", str(int(threads))]
        return cmd + (["--quiet"] if quiet else [])

    def ensure(self, run: Run, progress: bool = False) -> Path:
        """The run's exported card (:meth:`stored`), else its checkpoint folder, trained or
        resumed to the end first if needed."""
        card = self.stored(run)
        if card is not None:
            return card
        if not self._trained(run):
            from model.train import train

            self.carry_in(run)
            preset = self.run_preset(run)
            train(self.data(), run.operators, self.run_dir(run), preset=preset, arch=run.arch,
                  gamma=run.gamma, resume=True, device=self.device, progress=progress,
                  init=preset.init, residual=preset.residual, loss_norm=run.loss_norm)
        return self.run_dir(run)

    def prepare(self, runs: list[Run], jobs: int = 1, progress: bool = True,
                threads: int | None = None) -> list[Run]:
        """Train every missing run, ``jobs`` processes at a time, each with ``threads`` threads
        (default: one each when ``jobs`` > 1, else torch's default).

        Returns the runs that failed (their output is in ``<run>/train.out``), a list whose
        ``stopped`` attribute lists the trainings stopped by SIGINT or SIGTERM from outside
        (:func:`stopped_by_signal`: each checkpointed the step it was in, so they are neither
        done nor failed, and the next call resumes them) while the others went on. One ``prepare``
        per scale of a cache at a time: it holds the lock ``<cache>/<scale>/prepare.lock``
        throughout, and a second one raises :class:`datagen.lock.LockedError`
        naming the first, before building or starting anything (it would otherwise build the
        same dataset and start the same trainings, which fail on their run folders' locks).
        However it ends (returned, raised, interrupted), the trainings it started are ended and
        waited for (:func:`stop_jobs`); a later call resumes the unfinished ones.
        """
        from datagen.lock import LockedError, OutputLock

        self.root.mkdir(parents=True, exist_ok=True)
        lock = OutputLock(self.root / "prepare")
        try:
            lock.acquire()
        except LockedError as exc:
            raise LockedError(f"{self.root} is being prepared by {exc}: wait for it to end or "
                              "stop it (stopped, it resumes when started again)",
                              exc.holder) from None
        try:
            return self._prepare_locked(runs, jobs, progress, threads)
        finally:
            lock.release()

    def _prepare_locked(self, runs, jobs, progress, threads) -> list[Run]:
        if progress:  # which dataset, and why that one (a found file is used, never rebuilt)
            located = self.locate_data()
            print(f"dataset: {located.path} ({located.why})", file=sys.stderr, flush=True)
        self.data(progress=progress)
        todo = [r for r in runs if not self.is_done(r)]
        for run in todo:  # a committed unfinished state goes on where it stopped
            note = self.carry_in(run)
            if note and progress:
                print(note, file=sys.stderr, flush=True)
        env = dict(os.environ)
        threads = job_threads(jobs, threads)
        if threads is not None:
            env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(runs), initial=len(runs) - len(todo), unit="model",
                       desc=f"train {self.scale}", dynamic_ncols=True)
        failed, active = Unfinished(), []
        pending = list(todo)
        try:
            while pending or active:
                while pending and len(active) < jobs:
                    run = pending.pop(0)
                    self.run_dir(run).mkdir(parents=True, exist_ok=True)
                    log = open(self.run_dir(run) / "train.out", "a")
                    active.append((run, None, log))  # closed by stop_jobs if Popen fails
                    cmd = self.train_command(run, threads=threads)
                    active[-1] = (run, subprocess.Popen(cmd, env=env, stdout=log,
                                                        stderr=subprocess.STDOUT), log)
                run, proc, log = active[0]
                for item in active:  # wait for whichever finishes first
                    if item[1].poll() is not None:
                        run, proc, log = item
                        break
                else:
                    try:
                        proc.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        continue
                active.remove((run, proc, log))
                log.close()
                if stopped_by_signal(proc.returncode):
                    failed.stopped.append(run)  # checkpointed: not done, and not failed
                elif proc.returncode != 0:
                    failed.append(run)
                if bar is not None:
                    if run not in failed.stopped:
                        bar.update(1)
                    bar.set_postfix(last=run.name, failed=len(failed),
                                    stopped=len(failed.stopped))
        finally:  # stopped (SIGINT, SIGTERM via benchmarks.prepare) or failed: no orphans
            stop_jobs(active)
            if bar is not None:
                bar.close()
        return failed
