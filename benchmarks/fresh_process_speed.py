"""Operator speed in a fresh process versus the process that is already running (issue 14).

A *fresh* process is what a user's script and a datagen worker get: ``import operators``, one
warm-up call, then the timed calls. The benchmark suite compares it with the same call inside the
suite process, after the suite's other benchmarks (torch training, every other operator) ran.

To make the two figures like-for-like on a noisy machine they are measured **paired and
interleaved**: one fresh child process per (operator, γ, size) is started, with the calling
process's thread settings (Numba, OpenCV, ``OMP/MKL/OPENBLAS/NUMBA_NUM_THREADS``), makes its
warm-up call and waits on a pipe; then the child and the calling process take turns, ``blocks``
times, each timing ``k`` calls with the same function (:func:`benchmarks._bench.timed_calls`),
in the order child, caller, caller, child, child, ... (ABBA), so a slow drift of the machine's
load hits both alike. While one side runs the other sleeps on a pipe. Both figures are the same
statistic over the same number of calls: the **lower quartile** (:func:`low`): the level of
the less disturbed calls, but not one lucky call (on a loaded 2-core machine the minimum of a
2-thread millisecond call is whichever call happened to find both cores free); the median is
reported alongside. The minor page faults per call (``ru_minflt``) and CPU
time per call are reported for both sides: unlike wall time they do not depend on the load, and
they show where a difference comes from (see ``docs/operators_speed_memory.md``).

Run from the repository root::

    python -m benchmarks.fresh_process_speed                  # 1024x1024, the six of ECCV
    python -m benchmarks.fresh_process_speed --size 256 --ops all --blocks 8
    python -m benchmarks.fresh_process_speed --ops l0 --opencv

Run alone, the calling process first does what the suite's model benchmarks leave behind
(``import torch`` and a forward/backward pass on 1-32 MB tensors; ``--no-torch`` skips it), then
measures the cases one after another, so later cases also run after the earlier operators — the
suite's situation. ``--opencv`` adds OpenCV's ``l0Smooth`` (``cv2.l0Smooth``: in the child it runs
with glibc's default allocator settings unless an operator ran first; the caller has run
operators, hence the tuned allocator, see :func:`operators._memory.tune_malloc`).
``--csv PATH`` writes the table (atomically, checked before any timing: never through a link, into
a folder or over a file that is not such a table, ``CSV_HEADER``). Not collected by pytest (no
``test_`` prefix).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile

import operators

from ._bench import bench_image, thread_settings, timed_calls

#: The statistic of both figures, over all timed calls of a side (see :func:`low`).
STATISTIC = "lower quartile"


def low(xs) -> float:
    """The lower quartile (25th percentile, linear interpolation) of ``xs``: the statistic of
    both figures of the comparison."""
    import numpy as np

    return float(np.percentile(np.asarray(xs, float), 25))


def middle_gamma(name: str):
    """The γ the benchmark suite times an operator at: its middle test γ (None if fixed)."""
    spec = operators.get(name)
    return spec.test_gammas[len(spec.test_gammas) // 2] if spec.test_gammas else None


def case_fn(name: str, gamma, size: int):
    """The timed call: ``operators.apply(name, image, gamma)`` on the benchmark image, or
    OpenCV's ``l0Smooth`` for ``name == "cv2.l0Smooth"``."""
    img = bench_image(size)
    if name == "cv2.l0Smooth":
        import cv2

        return lambda: cv2.ximgproc.l0Smooth(img, lambda_=gamma, kappa=2.0)
    return lambda: operators.apply(name, img, gamma)


_CHILD = r"""
import json, sys
from benchmarks._bench import apply_thread_settings, thread_settings, timed_calls
from benchmarks.fresh_process_speed import case_fn
name, gamma, size, threads = json.loads(sys.argv[1])
apply_thread_settings(threads)
fn = case_fn(name, gamma, size)
fn()  # warm-up: compilation (Numba cache), analyses, caches
out = sys.stdout
out.write("READY " + json.dumps(thread_settings()) + "\n"); out.flush()
for line in sys.stdin:
    k = int(line)
    if k <= 0:
        break
    out.write("RESULT " + json.dumps(timed_calls(fn, k)) + "\n"); out.flush()
"""


class FreshProcess:
    """A child process that imported the operators, made one warm-up call of the case and then
    times ``k`` calls whenever :meth:`rounds` asks (a context manager; it exits on close)."""

    def __init__(self, name: str, gamma, size: int, threads: dict | None = None):
        threads = threads or thread_settings()
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
        for k, v in threads["env"].items():  # read by MKL/OpenBLAS/Numba when they load
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        self._err = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, json.dumps([name, gamma, size, threads])],
            env=env, cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err,
            text=True, bufsize=1)
        #: the child's thread settings after its warm-up call (to compare with the caller's)
        self.threads = json.loads(self._expect("READY "))

    def _expect(self, prefix: str) -> str:
        for line in self.proc.stdout:
            if line.startswith(prefix):
                return line[len(prefix):].strip()
        self.proc.wait()
        self._err.seek(0)
        raise RuntimeError(f"fresh process exited ({self.proc.returncode}) before {prefix}:\n"
                           + self._err.read()[-4000:])

    def rounds(self, k: int) -> dict:
        """Time ``k`` calls in the child; returns :func:`~benchmarks._bench.timed_calls`' dict."""
        self.proc.stdin.write(f"{int(k)}\n")
        self.proc.stdin.flush()
        return json.loads(self._expect("RESULT "))

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("0\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):  # pragma: no cover - hung child
                self.proc.kill()
                self.proc.wait()
        self._err.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def rounds_per_block(call_s: float, block_s: float, max_k: int = 200) -> int:
    """Calls per block so that a block lasts about ``block_s`` (at least one call)."""
    return max(1, min(max_k, math.ceil(block_s / max(call_s, 1e-6))))


def paired(name: str, gamma, size: int, blocks: int, block_s: float = 0.25,
           here_fn=None) -> dict:
    """Time the case in a fresh child process and in this process, interleaved (ABBA).

    ``here_fn``: this process's callable (default :func:`case_fn`). Both sides make their
    warm-up call before the first block (this side a second one, to size the blocks: ``k``
    calls of about ``block_s`` seconds). Returns ``{"fresh": timed_calls dict, "here": ...,
    "k": calls per block, "blocks": blocks, "threads": this process's thread settings,
    "child_threads": the child's after its warm-up call}``, the lists of all blocks
    concatenated; the two thread settings are equal unless a library ignored them.
    """
    import time

    fn = here_fn or case_fn(name, gamma, size)
    fn()  # this side's warm-up call
    t0 = time.perf_counter()
    fn()  # the estimate of a call's time (the first may have compiled or loaded caches)
    k = rounds_per_block(time.perf_counter() - t0, block_s)
    threads = thread_settings()
    res = {"fresh": {"wall": [], "cpu": [], "faults": []},
           "here": {"wall": [], "cpu": [], "faults": []}}
    with FreshProcess(name, gamma, size, threads) as child:
        for b in range(blocks):
            order = ("fresh", "here") if b % 2 == 0 else ("here", "fresh")
            for side in order:
                r = child.rounds(k) if side == "fresh" else timed_calls(fn, k)
                for key, v in r.items():
                    res[side][key] += v
    return {**res, "k": k, "blocks": blocks, "threads": threads, "child_threads": child.threads}


#: how the ``--csv`` table begins: an existing file there is replaced only when it begins so
CSV_HEADER = "operator,gamma,size,fresh_s,"


def summary(r: dict) -> dict:
    """The figures of one :func:`paired` result: :func:`low` and the median of wall time, CPU
    time per call (median) and page faults per call (median and maximum) of both sides."""
    out = {}
    for side, col in (("fresh", "fresh"), ("here", "suite")):
        d = r[side]
        out[f"{col}_s"] = low(d["wall"])
        out[f"{col}_median_s"] = statistics.median(d["wall"])
        out[f"{col}_cpu_s"] = statistics.median(d["cpu"])
        out[f"{col}_faults"] = int(statistics.median(d["faults"]))
        out[f"{col}_faults_max"] = int(max(d["faults"]))
    out["fresh_vs_suite"] = out["fresh_s"] / out["suite_s"]
    out["calls"] = len(r["here"]["wall"])
    return out


def _torch_preamble() -> None:
    """What the suite's model benchmarks leave behind: torch loaded, buffers of 1-32 MB
    (float32 x 8 channels) allocated and freed again."""
    import torch

    for side in (256, 512, 1024, 1448):
        x = torch.randn(1, 8, side, side, requires_grad=True)
        conv = torch.nn.Conv2d(8, 8, 3, padding=1)
        conv(torch.relu(conv(x))).square().mean().backward()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=1024, help="image side (default 1024)")
    ap.add_argument("--blocks", type=int, default=6,
                    help="alternations of fresh and this process (default 6)")
    ap.add_argument("--block-s", type=float, default=0.25,
                    help="seconds per block: calls per block = this / one call, >= 1 "
                         "(default 0.25)")
    ap.add_argument("--ops", default=",".join(operators.NAMES),
                    help="comma-separated operator names or groups, 'all' for all fifteen "
                         "(default: the six filters, operators.NAMES: l0, wls, rtv, rgf, wmf, llf)")
    ap.add_argument("--opencv", action="store_true", help="also time cv2.ximgproc.l0Smooth")
    ap.add_argument("--no-torch", action="store_true",
                    help="skip the torch forward/backward pass in this process")
    ap.add_argument("--csv", help="write the table to this CSV file")
    a = ap.parse_args(argv)
    if a.size < 8 or a.blocks < 1 or not a.block_s > 0:
        ap.error("--size must be >= 8, --blocks >= 1 and --block-s > 0")
    if a.csv:  # before the minutes of timing: never a folder, a link's target or a file not ours
        from datagen.fs import check_output

        try:
            check_output(a.csv, own_marker=CSV_HEADER, what="--csv")
        except ValueError as exc:
            ap.error(str(exc))
    cases = [(n, middle_gamma(n)) for n in operators.resolve(a.ops)]
    if a.opencv:
        cases.append(("cv2.l0Smooth", 0.02))
    if not a.no_torch:
        _torch_preamble()
    print(f"{a.size}x{a.size} RGB; fresh child vs this process, {a.blocks} interleaved blocks; "
          f"time = {STATISTIC} over the calls, cpu = median CPU s per call, faults = median "
          "minor page faults per call", flush=True)
    print(f"{'op':14s} {'calls':>5s} {'fresh s':>9s} {'suite s':>9s} {'ratio':>6s} "
          f"{'med ratio':>9s} {'cpu fr':>7s} {'cpu su':>7s} {'flt fr':>7s} {'flt su':>7s}")
    rows = []
    for name, gamma in cases:
        s = summary(paired(name, gamma, a.size, a.blocks, a.block_s))
        row = {"operator": name, "gamma": gamma, "size": a.size, **s}
        rows.append(row)
        print(f"{name:14s} {s['calls']:5d} {s['fresh_s']:9.4f} {s['suite_s']:9.4f} "
              f"{s['fresh_vs_suite']:6.2f} {s['fresh_median_s'] / s['suite_median_s']:9.2f} "
              f"{s['fresh_cpu_s']:7.4f} {s['suite_cpu_s']:7.4f} {s['fresh_faults']:7d} "
              f"{s['suite_faults']:7d}", flush=True)
    if a.csv:
        import csv
        import io

        from datagen.fs import write_checked

        buf = io.StringIO()
        wr = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        wr.writeheader()
        wr.writerows(rows)
        assert buf.getvalue().startswith(CSV_HEADER)
        write_checked(a.csv, buf.getvalue(), own_marker=CSV_HEADER, what="--csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
