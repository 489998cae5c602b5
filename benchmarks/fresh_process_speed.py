"""Operator speed in a fresh process versus a process that has already used torch (issue 14).

Every (operator, mode) pair runs in a subprocess of its own:

``fresh``
    ``import operators``, one warm-up call, then the timed calls: what a user's script and a
    datagen worker get.
``suite``
    the same, after ``import torch`` and a torch forward/backward pass on large tensors, as in
    the benchmark suite where the model benchmarks run first.

For each it reports the median wall time of ``--rounds`` calls after the warm-up (the statistic,
rounds, warm-up and γ of ``benchmarks/test_operators.py``, so the two columns of
``results/operator_speed.csv`` measure the same thing) and the minor page faults per call (``resource.getrusage(RUSAGE_SELF).ru_minflt`` before/after the call). Unlike
wall time on a loaded machine, the fault count is reproducible: it is the number of freshly
mapped pages the call touched, which is where the fresh-process time went (see
``docs/operators_speed_memory.md``).

Run from the repository root::

    python -m benchmarks.fresh_process_speed                 # 1024x1024, all six, 3 rounds
    python -m benchmarks.fresh_process_speed --size 512 --ops l0,wls --opencv
    python -m benchmarks.fresh_process_speed --ops all       # all fifteen operators

``--opencv`` adds OpenCV's ``l0Smooth`` twice: ``cv2.l0Smooth`` as an OpenCV user gets it (glibc's
default allocator settings: it re-faults ~4 GB of fresh pages per call at 1 MP) and
``cv2.l0Smooth+tuned`` after :func:`operators._memory.tune_malloc`, the setting every operator call
makes, so OpenCV timed in a process that has already run an operator (as in the benchmark suite)
is the second one.
``--csv PATH`` writes the table. Not collected by pytest (no ``test_`` prefix).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

import operators


def middle_gamma(name: str):
    """The γ the benchmark suite times an operator at: its middle test γ (None if fixed)."""
    spec = operators.get(name)
    return spec.test_gammas[len(spec.test_gammas) // 2] if spec.test_gammas else None

_CHILD = r"""
import json, resource, sys, time
name, gamma, size, rounds, mode = {args!r}
if mode == "suite":
    import torch  # what the suite's model benchmarks leave behind: torch loaded, and buffers
    for side in (256, 512, 1024, 1448):  # of 1-32 MB (float32 x 8 channels) freed again
        x = torch.randn(1, 8, side, side, requires_grad=True)
        conv = torch.nn.Conv2d(8, 8, 3, padding=1)
        conv(torch.relu(conv(x))).square().mean().backward()
    del x, conv
import numpy as np
from benchmarks._bench import bench_image
img = bench_image(size)
if name.startswith("cv2.l0Smooth"):
    import cv2
    if name.endswith("+tuned"):
        from operators._memory import tune_malloc
        tune_malloc()
    fn = lambda: cv2.ximgproc.l0Smooth(img, lambda_=gamma, kappa=2.0)
else:
    import operators
    fn = lambda: operators.apply(name, img, gamma)
fn()  # warm-up: compilation, caches, analyses
walls, cpus, faults = [], [], []
for _ in range(rounds):
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    fn()
    walls.append(time.perf_counter() - t0)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpus.append(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime)
    faults.append(r1.ru_minflt - r0.ru_minflt)
print("RESULT " + json.dumps({{"wall": walls, "cpu": cpus, "faults": faults,
      "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def measure(name: str, gamma: float, size: int, rounds: int, mode: str) -> dict:
    """Run one (operator, mode) measurement in a fresh subprocess; returns its RESULT dict."""
    code = _CHILD.format(args=(name, gamma, size, rounds, mode))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, check=True,
                          capture_output=True, text=True)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=1024, help="image side (default 1024)")
    ap.add_argument("--rounds", type=int, default=3, help="timed calls after warm-up")
    ap.add_argument("--ops", default=",".join(operators.NAMES),
                    help="comma-separated operator names or groups, 'all' for all fifteen "
                         "(default: the six of the ECCV paper)")
    ap.add_argument("--opencv", action="store_true", help="also time cv2.ximgproc.l0Smooth")
    ap.add_argument("--csv", help="write the table to this CSV file")
    a = ap.parse_args(argv)
    if a.size < 8 or a.rounds < 1:
        ap.error("--size must be >= 8 and --rounds >= 1")
    cases = [(n, middle_gamma(n)) for n in operators.resolve(a.ops)]
    if a.opencv:
        cases += [("cv2.l0Smooth", 0.02), ("cv2.l0Smooth+tuned", 0.02)]
    rows = []
    print(f"{a.size}x{a.size} RGB, median of {a.rounds} after one warm-up call; "
          "faults = minor page faults per call (median over rounds)")
    print(f"{'op':14s} {'fresh s':>8s} {'suite s':>8s} {'ratio':>6s} {'cpu fr':>7s} "
          f"{'cpu su':>7s} "
          f"{'fresh faults':>13s} {'suite faults':>13s} {'fresh MB':>9s}")
    for name, gamma in cases:
        r = {m: measure(name, gamma, a.size, a.rounds, m) for m in ("fresh", "suite")}
        med = statistics.median
        row = {"operator": name, "gamma": gamma, "size": a.size,
               "fresh_s": med(r["fresh"]["wall"]), "suite_s": med(r["suite"]["wall"]),
               "fresh_cpu_s": med(r["fresh"]["cpu"]), "suite_cpu_s": med(r["suite"]["cpu"]),
               "fresh_faults": int(med(r["fresh"]["faults"])),
               "suite_faults": int(med(r["suite"]["faults"])),
               "fresh_maxrss_mb": r["fresh"]["maxrss_mb"]}
        rows.append(row)
        print(f"{name:14s} {row['fresh_s']:8.3f} {row['suite_s']:8.3f} "
              f"{row['fresh_s'] / row['suite_s']:6.2f} {row['fresh_cpu_s']:7.3f} "
              f"{row['suite_cpu_s']:7.3f} {row['fresh_faults']:13d} "
              f"{row['suite_faults']:13d} {row['fresh_maxrss_mb']:9.0f}", flush=True)
    if a.csv:
        import csv

        with open(a.csv, "w", newline="") as fh:
            wr = csv.DictWriter(fh, fieldnames=list(rows[0]))
            wr.writeheader()
            wr.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
