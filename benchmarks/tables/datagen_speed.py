"""Dataset generation throughput: pairs/s at 256x256 with 1 and 2 workers, overhead over bare calls,
and the bare calls on two processes at once (the most two processes can gain on the machine).

Writes ``datagen_speed`` (CSV, LaTeX, provenance). Targets: 2 workers >= 0.95x the pairs/s of
the two-process ceiling measured in the same run (issue 28; it replaced ">= 1.8x the pairs/s of
1 worker", which this VM's two cores do not reach even for bare calls), and <= 10 % overhead of a
1-worker build over calling the operators bare. One unit (``"throughput"``): the settings are
measured interleaved, so they cannot be split; the builds go into a temporary folder.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import operators

from .. import _latex
from .._report import provenance, write_table
from . import Measured, Table, claim

NAME = "datagen_speed"
CAPTION = "Dataset generation throughput at 256x256 (pairs per second)"
#: 2 workers must reach this fraction of the pairs/s of the bare calls on two processes at once
#: (the ceiling), both measured in the same run.
MIN_VS_CEILING = 0.95

# (operators, max crops per image, γ per crop, repetitions; the best repetition counts)
SETTINGS = {"smoke": (("l0", "llf"), 2, 2, 1), "small": (operators.NAMES, 8, 3, 5),
            "paper": (operators.NAMES, 16, 7, 5)}
UNIT = "throughput"
NOTE = ("1 worker and the bare calls run in a process limited to one thread, with every "
        "operator called once before the timing; the 2-worker wall time includes the pool "
        "start-up (spawned processes import and load the Numba cache of the operators they "
        "compute) and the HDF5 assembly (overlapped with the computing); the ceiling row: the "
        "bare calls split over two such processes running at once (what two processes gain on "
        "this machine); repetitions interleaved (bare, 1 worker, 2 workers, ceiling, again), "
        "best of each")


def units(scale=None, ops=None) -> list[str]:
    """One unit (no operator to select: the scale decides them; ``ops`` is refused)."""
    if ops is not None:
        raise ValueError(f"{NAME} times the scale's operators together: leave out --ops")
    return [UNIT]


def plan(scale: str):
    """The plan timed: the scale's operators on the default images, 256² crops, no test split."""
    from datagen.plan import Options, make_plan
    from datagen.sources import default_images

    ops, crops, per_image, _ = SETTINGS[scale]
    files = tuple(str(p) for p in default_images())
    opts = Options(ops=ops, images=files, images_label="the default images", size=256,
                   per_image=per_image, test_fraction=0.0, seed=0, max_crops=crops,
                   scales=(1.0,), single=False)
    return make_plan(opts)


_ONE_CORE = """
import json, sys, time
from pathlib import Path
from datagen.build import build, run_task
from datagen.plan import Options, make_plan
opts = Options(**json.loads(sys.argv[1]))
plan = make_plan(opts)
def call(n, op, pixels, s):  # what a build's worker does with one task
    return run_task(n, pixels, op.gamma[s], None if op.seeds is None else op.seeds[s], op.size,
                    plan.options.overrides(n))
for n, op in plan.ops.items():  # compile / load caches outside the timings
    call(n, op, plan.pixels[0][:32, :32], op.tasks[0][1][:1])
print("ready", flush=True)
for line in sys.stdin:  # commands from the parent: 'bare K M' (every M-th task from K), 'build R'
    what, *args = line.split()
    t = time.perf_counter()
    if what == "bare":
        k, m = int(args[0]), int(args[1])
        for n, op in plan.ops.items():
            for c, s in op.tasks[k::m]:
                call(n, op, plan.pixels[c], s)
    else:
        build(plan, Path(sys.argv[2]) / f"w1-{args[0]}.h5", workers=1, progress=False)
    print(json.dumps(time.perf_counter() - t), flush=True)
"""
ONE_THREAD = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "OPENBLAS_NUM_THREADS": "1"}


class OneThread:
    """A warm process limited to one thread that runs the bare calls or a 1-worker build (it
    starts, plans and warms up meanwhile; :meth:`ready` waits for it)."""

    def __init__(self, plan, tmp_path):
        opts = json.dumps(json.loads(plan.options.to_json()))
        self.proc = subprocess.Popen([sys.executable, "-c", _ONE_CORE, opts, str(tmp_path)],
                                     env={**os.environ, **ONE_THREAD}, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def ready(self) -> None:
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the 1-thread process failed")

    def send(self, command: str) -> None:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def result(self) -> float:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the 1-thread process failed")
        return float(json.loads(line))

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def throughput(plan, reps: int, tmp_path: Path) -> tuple[list[dict], dict]:
    """1 worker = a process limited to one thread (Numba, FFT, MKL); 2 workers = the pool.

    Also measured: the bare calls split over two such processes at once (every other task of
    each operator), the most two processes gain on this machine (shared caches, memory
    bandwidth and the hypervisor decide it), as the ceiling for the 2-worker figure. The
    repetitions are interleaved (bare, 1 worker, 2 workers, bare on 2 processes; again), so that
    a burst of load on the machine spoils one repetition of each setting rather than all of one;
    each setting's best repetition counts. The speed-up is also taken per repetition (1-worker
    and 2-worker builds of the same repetition, a minute apart) and its median recorded: this
    VM's speed drifts by ±20 % over minutes, and two runs of the same code gave best-of-3
    speed-ups of 1.45x and 1.87x. Returns the rows and the sidecar's facts.
    """
    import numpy as np

    from datagen.build import build

    procs = [OneThread(plan, tmp_path)]
    bare = one = two = bare2 = float("inf")
    rounds: list[dict[str, float]] = []
    try:
        procs.append(OneThread(plan, tmp_path))
        for p in procs:
            p.ready()
        for rep in range(reps):
            r = {}
            procs[0].send("bare 0 1")
            r["bare"] = procs[0].result()
            procs[0].send(f"build {rep}")
            r["one"] = procs[0].result()
            t = time.perf_counter()
            build(plan, tmp_path / f"w2-{rep}.h5", workers=2, progress=False)
            r["two"] = time.perf_counter() - t
            t = time.perf_counter()
            for k, p in enumerate(procs):
                p.send(f"bare {k} 2")
            for p in procs:
                p.result()
            r["bare2"] = time.perf_counter() - t
            rounds.append(r)
            bare, one = min(bare, r["bare"]), min(one, r["one"])
            two, bare2 = min(two, r["two"]), min(bare2, r["bare2"])
    finally:
        for p in procs:
            p.close()
    walls = {1: one, 2: two}
    pairs = sum(len(op.gamma) for op in plan.ops.values())
    rows = [{"setting": "bare operator calls (1 thread)", "pairs": pairs, "wall_s": bare,
             "pairs_per_s": pairs / bare, "vs_bare": 1.0, "target": ""}]
    for w, wall in walls.items():
        rows.append({"setting": f"build --workers {w}", "pairs": pairs, "wall_s": wall,
                     "pairs_per_s": pairs / wall, "vs_bare": wall / bare,
                     "target": ("overhead <= 10 %" if w == 1 else
                                f">= {MIN_VS_CEILING:g}x pairs/s of the 2-process ceiling")})
    rows.append({"setting": "bare operator calls, 2 processes at once (ceiling)", "pairs": pairs,
                 "wall_s": bare2, "pairs_per_s": pairs / bare2, "vs_bare": bare2 / bare,
                 "target": ""})
    facts = dict(
        operators=",".join(plan.ops), crop="256x256", repetitions=reps,
        speedup_2_workers=round(walls[1] / walls[2], 2),
        speedup_2_workers_median=round(float(np.median([r["one"] / r["two"] for r in rounds])),
                                       2),
        speedup_2_workers_per_round=[round(r["one"] / r["two"], 2) for r in rounds],
        speedup_bare_2_processes_per_round=[round(r["bare"] / r["bare2"], 2) for r in rounds],
        speedup_bare_2_processes=round(bare / bare2, 2),
        two_workers_vs_ceiling=round(bare2 / two, 2),
        two_workers_vs_ceiling_per_round=[round(r["bare2"] / r["two"], 2) for r in rounds],
        two_workers_target_met=bool(bare2 / two >= MIN_VS_CEILING),
        overhead_1_worker_pct=round(100 * (walls[1] / bare - 1), 1),
        note=NOTE)
    return rows, facts


def measure(experiment, unit: str = UNIT) -> Measured:
    """The throughput rows at the experiment's scale (:func:`throughput`), the per-round
    speed-ups and the targets' verdict as sidecar facts."""
    if unit != UNIT:
        raise ValueError(f"{NAME}: unknown unit {unit!r}")
    with tempfile.TemporaryDirectory(prefix="datagen-speed-") as tmp:
        rows, facts = throughput(plan(experiment.scale), SETTINGS[experiment.scale][3],
                                 Path(tmp))
    return Measured(rows, facts=facts)


def check(measured: Measured, scale: str) -> None:
    """Every setting took some time (the targets are the sidecar's verdict, not a failure: a
    busy machine is slower)."""
    for r in measured.rows:
        claim(r["wall_s"] > 0, r)


def write(experiment, results_dir, df, crops, started: float, **facts) -> None:
    """The CSV (the rows as measured), LaTeX and sidecar (the measured facts)."""
    write_table(df, NAME, results_dir, provenance(experiment.scale, started, **facts),
                caption=CAPTION)


TABLES = (Table(NAME, "datagen_speed", units=units, measure=measure, check=check, write=write,
                layout=_latex.datagen_speed, suite="benchmarks/test_datagen_speed.py"),)
