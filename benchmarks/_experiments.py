"""The paper's experiments at one scale: a dataset and checkpoints cached outside git.

Layout of the cache (``--cache``, default ``~/.cache/decouple``)::

    <cache>/<scale>/data.h5                    the scale's dataset (built on first use)
    <cache>/<scale>/runs/decouple-l0/last.pt   one run folder per trained model
    <cache>/<scale>/runs/single-l0-0.02/...
    <cache>/<scale>/runs-<digest>/...          models trained on a dataset given with --data

A run that is missing is trained, one that stopped early is resumed (exactly, see
:func:`model.train.train`), one that is complete is only loaded. So a second ``pytest benchmarks``
only re-evaluates, and ``python -m benchmarks.prepare --jobs 2`` can fill the cache in parallel
before it.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import operators

# datagen build arguments per scale: smoke is a tiny build for CI (seconds); small and paper use
# the bundled default images with the default options (`python -m datagen build --ops all`).
DATA_ARGS = {
    "smoke": ["--size", "32", "--per-image", "2", "--max-crops", "3", "--scales", "0.25"],
    "small": [],
    "paper": [],
}
# points of the continuity sweep across each γ range
SWEEP_POINTS = {"smoke": 5, "small": 21, "paper": 21}


def middle_gamma(op: str) -> float:
    """The γ used where the paper says "default": the middle one of the operator's five test γ."""
    tg = operators.get(op).test_gammas
    return float(tg[len(tg) // 2])


@dataclass(frozen=True)
class Run:
    """One model of an experiment: architecture, operator and (single-γ models) its γ."""

    arch: str
    op: str
    gamma: float | None = None

    @property
    def name(self) -> str:
        return f"{self.arch}-{self.op}" + ("" if self.gamma is None else f"-{self.gamma:g}")


def table1_runs(ops=operators.NAMES) -> list[Run]:
    """Table 1 and the γ sweep: per operator one decouple model, one single-γ network per test γ
    and the γ-as-input network (concat) the sweep compares with."""
    runs = []
    for op in ops:
        runs += [Run("decouple", op), Run("concat", op)]
        runs += [Run("single", op, float(g)) for g in operators.get(op).test_gammas]
    return runs


def baseline_runs(ops=operators.NAMES) -> list[Run]:
    """Table 6: per operator the γ-as-input network (all γ) and DBL/HDRNet at the middle γ, beside
    the decouple model and the single-γ network of Table 1 (BGU needs no training)."""
    runs = []
    for op in ops:
        runs += [Run("decouple", op), Run("single", op, middle_gamma(op)), Run("concat", op),
                 Run("hdrnet", op, middle_gamma(op))]
    return runs


class Experiment:
    """Dataset and models of one scale, in ``cache/scale``; ``data`` overrides the dataset."""

    def __init__(self, scale: str, cache, data=None, device: str | None = None):
        if scale not in DATA_ARGS:
            raise ValueError(f"unknown scale {scale!r}")
        self.scale = scale
        self.cache = Path(cache)
        self.root = self.cache / scale
        self._data = Path(data) if data else None
        self.device = device
        self._attrs: tuple[str, str] | None = None

    @property
    def preset(self) -> str:
        return self.scale

    def data(self, progress: bool = False) -> Path:
        """The dataset file, built (resumably) with the scale's arguments if it is missing."""
        if self._data is not None:
            if not self._data.is_file():
                raise FileNotFoundError(f"no dataset at {self._data}")
            return self._data
        path = self.root / "data.h5"
        if not path.is_file():
            from datagen.cli import main as datagen_main

            partial = Path(str(path) + ".partial")
            argv = ["build", "--ops", "all", "--out", str(path), *DATA_ARGS[self.scale]]
            argv += ["--resume"] if partial.exists() else []
            argv += [] if progress else ["--quiet"]
            if datagen_main(argv) != 0:
                raise RuntimeError(f"building {path} failed")
        return path

    def _dataset_attrs(self) -> tuple[str, str]:
        """The dataset's content digest and the command that built it (read once)."""
        if self._attrs is None:
            from datagen.store import open_file

            with open_file(self.data()) as f:
                self._attrs = (str(f.attrs["digest"]), str(f.attrs.get("command", "")))
        return self._attrs

    def digest(self) -> str:
        """The dataset's content digest (``datagen`` stores it in the file)."""
        return self._dataset_attrs()[0]

    def run_dir(self, run: Run) -> Path:
        """``runs/`` for the scale's own dataset, ``runs-<digest>/`` for one given with ``data``."""
        runs = "runs" if self._data is None else f"runs-{self.digest()[:12]}"
        return self.root / runs / run.name

    def is_done(self, run: Run) -> bool:
        from model.checkpoint import load
        from model.presets import get_preset

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
        return state["iteration"] >= get_preset(self.preset).iterations

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
        (as each checkpoint recorded it) and the code versions they were trained with."""
        from model.checkpoint import load

        from ._report import portable_path

        states = [load(self.run_dir(r) / "last.pt") for r in runs if self.is_done(r)]
        return {"models": len(states),
                "training_wall_s_total": round(sum(s.get("elapsed_s", 0.0) for s in states), 1),
                "training_code": sorted({str(s["config"].get("code")) for s in states}),
                "models_dir": portable_path(self.run_dir(Run("decouple", "l0")).parent,
                                            self.cache)}

    def train_command(self, run: Run, quiet: bool = True) -> list[str]:
        cmd = [sys.executable, "-m", "model", "train", "--data", str(self.data()),
               "--ops", run.op, "--arch", run.arch, "--preset", self.preset,
               "--out", str(self.run_dir(run)), "--resume"]
        if run.gamma is not None:
            cmd += ["--gamma", repr(run.gamma)]
        if self.device:
            cmd += ["--device", self.device]
        return cmd + (["--quiet"] if quiet else [])

    def ensure(self, run: Run, progress: bool = False) -> Path:
        """The run's checkpoint folder, trained or resumed to the end first if needed."""
        if not self.is_done(run):
            from model.presets import get_preset
            from model.train import train

            preset = get_preset(self.preset)
            train(self.data(), (run.op,), self.run_dir(run), preset=preset, arch=run.arch,
                  gamma=run.gamma, resume=True, device=self.device, progress=progress,
                  init=preset.init, residual=preset.residual)
        return self.run_dir(run)

    def prepare(self, runs: list[Run], jobs: int = 1, progress: bool = True) -> list[Run]:
        """Train every missing run, ``jobs`` processes at a time (one thread each when > 1).

        Returns the runs that failed (their output is in ``<run>/train.out``).
        """
        self.data(progress=progress)
        todo = [r for r in runs if not self.is_done(r)]
        env = dict(os.environ)
        if jobs > 1:
            env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(runs), initial=len(runs) - len(todo), unit="model",
                       desc=f"train {self.scale}", dynamic_ncols=True)
        failed, active = [], []
        pending = list(todo)
        while pending or active:
            while pending and len(active) < jobs:
                run = pending.pop(0)
                self.run_dir(run).mkdir(parents=True, exist_ok=True)
                log = open(self.run_dir(run) / "train.out", "a")
                active.append((run, subprocess.Popen(self.train_command(run), env=env,
                                                     stdout=log, stderr=subprocess.STDOUT), log))
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
            if proc.returncode != 0:
                failed.append(run)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(last=run.name, failed=len(failed))
        if bar is not None:
            bar.close()
        return failed
