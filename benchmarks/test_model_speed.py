"""Model speed (``model_speed``): training throughput of every γ-conditioned method against a
plain network of the same width, and inference time.

What is timed, how and against what is declared in :mod:`benchmarks.tables.model_speed`
(``python -m benchmarks run model_speed`` makes the same table without pytest). Here each unit
is one test (``-k training``, ``-k inference``, ``-k cpu``): it measures, adds its rows to the
module's table, written when the module's tests end, and checks the table's claims for it.
"""
from __future__ import annotations

import pytest

from .tables import collect, get
from .tables.model_speed import BATCH, devices, paired_times, summary

TABLE = get("model_speed")
DEVICES = devices()


@pytest.fixture(scope="module")
def rows(experiment, results_dir):
    """The table's rows, written (with the load average before and after) when the module's
    tests end."""
    yield from collect(TABLE, experiment, results_dir)


def test_paired_times_runs_each_method_beside_its_reference():
    """The pairing itself (no timing): each method's step right before or after one of its
    reference's, the reference first in every other round, and the ratio a median of per-round
    ratios, not a ratio of best steps."""
    calls: list[str] = []
    clock = iter(range(1000))
    steps = {n: (lambda n=n: calls.append(n)) for n in ("ref", "a", "b")}
    times = paired_times(steps, {"ref": "ref", "a": "ref", "b": "ref"}, 4, "cpu",
                         clock=lambda: next(clock))
    assert calls[:4] == ["a", "ref", "ref", "b"]  # round 0: (a, ref), (ref, b)
    assert calls[4:8] == ["b", "ref", "ref", "a"]  # round 1 starts at b: (b, ref), (ref, a)
    assert calls[8:12] == calls[:4] and len(calls) == 4 * 4
    assert len(times["a"]) == len(times["b"]) == 4 and len(times["ref"]) == 8
    assert all(r == 1 and t == 1 for r, t in times["a"] + times["b"] + times["ref"])
    assert summary([(2.0, 1.0), (1.0, 1.0), (9.0, 3.0), (1.0, 2.0)]) == {
        "value": BATCH / 1.5, "vs_reference": 1.5, "vs_reference_best": 1.0}


@pytest.mark.parametrize("device", DEVICES)
def test_training_throughput(rows, experiment, scale, device):
    TABLE.check(rows.add(TABLE.measure(experiment, ("training", device))), scale)


@pytest.mark.parametrize("device", DEVICES)
def test_inference_time(rows, experiment, scale, device):
    TABLE.check(rows.add(TABLE.measure(experiment, ("inference", device))), scale)
