"""Making a table: from pytest (:func:`collect`, a module fixture's body) or without it
(:func:`run_table`, what ``python -m benchmarks run`` calls). Both measure the same units with
the table's own ``measure`` and write with its own ``write``, so both give the same CSV."""
from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import Measured, get


class Collected:
    """The rows (and per-crop scores) gathered from a table's units, in the order measured,
    and the sidecar facts: the table's ``begin`` facts and those each unit measured;
    ``measured``: each ``(unit, Measured)`` added with its unit (to check one unit again)."""

    def __init__(self, facts: dict | None = None):
        self.rows: list[dict] = []
        self.crops: list[dict] = []
        self.facts: dict = dict(facts or {})
        self.units = 0  # how many units were added
        self.measured: list[tuple] = []

    def add(self, measured: Measured, unit=None) -> Measured:
        """Add one unit's :class:`Measured` (``unit``: which unit it is, kept in
        :attr:`measured` when given)."""
        self.units += 1
        self.rows += measured.rows
        self.crops += measured.crops
        self.facts.update(measured.facts)
        if unit is not None:
            self.measured.append((unit, measured))
        return measured

    def write(self, table, experiment, results_dir, started: float, **facts) -> None:
        """``table.write`` with the rows as a DataFrame (and the crops, when any were kept) and
        the gathered facts (``facts`` over them)."""
        crops = pd.DataFrame(self.crops) if self.crops else None
        table.write(experiment, Path(results_dir), pd.DataFrame(self.rows), crops, started,
                    **{**self.facts, **facts})


def collect(table, experiment, results_dir):
    """The body of a module fixture that gathers ``table``'s units from its tests, then writes
    it: ``yield from collect(TABLE, experiment, results_dir)``; the tests ``add`` each unit's
    :class:`Measured` to what it yields. Nothing is written when no test added a row (e.g. all
    deselected with ``-k``)."""
    started = time.perf_counter()
    got = Collected(table.begin(experiment) if table.begin is not None else None)
    yield got
    if got.rows:
        got.write(table, experiment, results_dir, started)


@dataclass
class RunResult:
    """What :func:`run_table` made: the table, the folder it wrote into, and the claims that
    did not hold (``unit: message``; the table is written all the same)."""

    name: str
    results: Path
    failed: list[str] = field(default_factory=list)

    @property
    def files(self) -> list[Path]:
        return [self.results / f"{self.name}{s}" for s in (".csv", ".tex", ".meta.json")]


def _command(table, scale, ops, units, results, cache, data, device, models="default") -> str:
    """The command line that makes the same table: ``python -m benchmarks run ...`` (chosen
    ``units`` as ``--units`` with their ids, :attr:`Table.unit_id`), or for chosen units the
    command line cannot name (a table without ids) the :func:`run_table` call as
    ``python -c``."""
    ids = None if units is None or table.unit_id is None else [table.unit_id(u) for u in units]
    if units is not None and (ids is None or any("," in i or not i for i in ids)):
        given = {"scale": scale, "ops": ops, "units": list(units), "results": str(results),
                 "cache": str(cache), "data": None if data is None else str(data),
                 "device": device, "models": None if models == "default" else str(models)}
        args = "".join(f", {k}={v!r}" for k, v in given.items() if v is not None)
        return shlex.join(["python", "-c", "from benchmarks import run_table; "
                                           f"run_table({table.alias!r}{args})"])
    return shlex.join(
        ["python", "-m", "benchmarks", "run", table.alias, "--scale", scale]
        + ([] if ops is None else ["--ops", ops if isinstance(ops, str) else ",".join(ops)])
        + ([] if ids is None else ["--units", ",".join(ids)])
        + ["--results", str(results), "--cache", str(cache)]
        + ([] if data is None else ["--data", str(data)])
        + ([] if device is None else ["--device", device])
        + ([] if models == "default" else ["--models", "none" if models is None else str(models)]))


def run_table(name: str, *, scale: str = "smoke", ops=None, units=None, results=None,
              cache=None, data=None, device: str | None = None, figures: bool = True,
              command: str | None = None, models="default") -> RunResult:
    """Make table ``name`` (CSV name or alias, e.g. ``"table1"``) without pytest: train what is
    missing in ``cache`` (default: :func:`benchmarks._report.default_cache`), measure every unit
    (``ops``: only these operators, names or groups; ``units``: only these of the units
    ``Table.units(scale, ops)`` lists, or their ids (:attr:`Table.unit_id`, e.g.
    ``"norm:1"``), measured in the table's order, e.g. one to debug it or to check it against
    the suite's, :func:`benchmarks.conftest.same_as_run_table`), check its claims and write
    ``NAME.csv``/``.tex``/``.meta.json`` into ``results`` (default: the suite's folder for the
    scale, :func:`benchmarks._report.results_folder`) exactly as ``pytest benchmarks`` does;
    with ``figures``, also its figures drawn from the models.

    Refused before anything is trained or written, as by the suite: a ``results`` folder that
    holds tables of a larger scale (a smoke run over the committed ``results/``) or a README.md
    the tool did not write. ``command`` is recorded in the sidecar (default: the equivalent
    ``python -m benchmarks run`` command line)."""
    from .._experiments import Experiment
    from .._report import (SCALES, check_results_folder, check_results_scale, default_cache,
                           results_folder)

    table = get(name)
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose from {', '.join(SCALES)}")
    if not table.runnable:
        raise ValueError(f"{table.name} is still made by its benchmark test module only: run "
                         f"pytest {table.suite} --scale {scale} (-k selects its tests)")
    if scale not in table.scales:
        raise ValueError(f"{table.name} is not made at the {scale} scale (only at "
                         f"{', '.join(table.scales)})")
    cache = Path(cache) if cache is not None else default_cache()
    results = results_folder(scale, cache, results)
    check_results_scale(results, scale)  # the suite's guard (benchmarks/conftest.py)
    check_results_folder(results)
    chosen, units = units, table.units(scale, ops)
    if not units:
        raise ValueError(f"{table.name} measures none of the operators {ops}")
    if chosen is not None:
        by_id = {} if table.unit_id is None else {table.unit_id(u): u for u in units}
        chosen = [by_id.get(u, u) if isinstance(u, str) and u not in units else u
                  for u in chosen]
        unknown = [u for u in chosen if u not in units]
        if unknown or not chosen:
            known = f"; its units: {', '.join(by_id)}" if by_id else ""
            raise ValueError(f"{table.name} has no unit {unknown[0] if unknown else chosen!r} "
                             f"at the {scale} scale" + ("" if ops is None else f" among {ops}")
                             + known)
        units = [u for u in units if u in chosen]
    if command is None:
        command = _command(table, scale, ops, chosen, results, cache, data, device, models)
    experiment = Experiment(scale, cache, data, device, models)
    started = time.perf_counter()
    got, failed = Collected(table.begin(experiment) if table.begin is not None else None), []
    for unit in units:
        try:  # a claim checked while measuring (e.g. a re-tune's image) fails the unit alone
            measured = got.add(table.measure(experiment, unit), unit)
            if table.check is not None:
                table.check(measured, scale)
        except AssertionError as exc:
            failed.append(f"{unit}: {exc}")
        if figures and table.visual is not None:
            table.visual(experiment, unit, results)
    if table.check_table is not None and got.rows:
        try:  # the claims about the whole table
            table.check_table(pd.DataFrame(got.rows), scale)
        except AssertionError as exc:
            failed.append(f"the whole table: {exc}")
    if got.rows:  # (none when every unit failed while measuring: nothing to write)
        got.write(table, experiment, results, started, command=command)
    return RunResult(table.name, results, failed)
