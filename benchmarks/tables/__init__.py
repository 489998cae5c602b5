"""The result tables, one registry: what each table trains, measures, writes and checks.

Every table of ``results/`` is a :class:`Table`, declared in one module of this package (its
``TABLES`` tuple; modules whose name starts with ``_`` are helpers). Everything that handles a
table by its name reads this registry: the LaTeX writer (:func:`benchmarks._latex.render`: the
table's ``layout``), the results index (:func:`benchmarks._report.update_index`: its
``summary``), ``python -m benchmarks.render`` (its CSV ``figure``), the benchmark tests (its
``units``, ``measure``, ``check`` and ``write``) and ``python -m benchmarks run``
(:func:`benchmarks.tables.run_table`). The models a table trains are the run list
``benchmarks._experiments.TABLES[runs]`` (what ``python -m benchmarks.prepare --tables`` reads).

Importing this package is cheap (no torch): a table module imports the model code inside its
functions, so that ``python -m benchmarks.render`` stays quick.

A table whose ``measure`` is None is still gathered by its benchmark test module (``suite``),
which writes it; the registry then gives its layout, summary and figure only.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import pandas as pd

#: the scales a model table is made at by default (the medium scale is Tables 6 and 12 only)
NOT_MEDIUM = ("smoke", "small", "paper")


@dataclass
class Measured:
    """What :attr:`Table.measure` returns for one unit: the table's rows and, for tables that
    keep them (``NAME.crops.csv``), the per-crop scores their means are made of; ``facts``:
    what the unit measured beyond its rows that goes into the sidecar (e.g. the per-round
    speed-ups of a timing), passed to :attr:`Table.write` as keywords."""

    rows: list[dict]
    crops: list[dict] = field(default_factory=list)
    facts: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Table:
    """One result table (``NAME.csv``, ``NAME.tex``, ``NAME.meta.json``) and how it is made.

    - ``name``: the CSV's stem (``table1_single_vs_decouple``); ``alias``: the short name a user
      types (``table1``); ``label``: the paper's table it reproduces ("" when none).
    - ``runs``: the key of its run list in :data:`benchmarks._experiments.TABLES` (the models
      it trains), or None (no trained model).
    - ``units(scale, ops)``: the units it measures, one benchmark test each (operators, ...);
      ``unit_id(unit)``: a unit's test id, by which ``python -m benchmarks run --units``
      chooses units (None: units are operators, chosen with ``--ops``);
      ``measure(experiment, unit)`` -> :class:`Measured`; ``check(measured, scale)`` raises
      :class:`AssertionError` when a claim the table makes does not hold for the unit;
      ``check_table(rows, scale)``, the claims about the whole table (its rows as a DataFrame,
      after every unit), raises the same, or returns why it cannot check them (e.g. at the
      smoke scale; None: checked).
    - ``frame(rows, crops)``: the measured rows (a DataFrame) made the CSV's frame;
      ``write(experiment, results_dir, rows, crops, started, **facts)`` writes the table (frame,
      provenance, figure); ``facts`` (e.g. ``command``) go into its sidecar.
    - ``layout(name, df)``: its LaTeX (None: every CSV column as it is); ``summary(df)``: its
      short form in ``results/README.md`` for long tables; ``figure``: ``(plot(df, path,
      scale), default path)`` of a figure drawn from the CSV; ``visual(experiment, unit,
      results_dir)``: a figure per unit drawn with the trained models.
    - ``begin(experiment)``: facts taken before the first unit is measured (e.g. the load
      average of a speed table), passed to ``write`` as keywords; None: none.
    - ``paper``: the paper's figures it prints beside ours (:mod:`benchmarks.paper`);
      ``scales``: the scales it is made at; ``suite``: the benchmark test module that writes it
      under ``pytest benchmarks``.
    """

    name: str
    alias: str
    label: str = ""
    runs: str | None = None
    units: Callable[[str | None, Any], list] | None = None
    unit_id: Callable[[Any], str] | None = None
    measure: Callable[[Any, Any], Measured] | None = None
    check: Callable[[Measured, str], None] | None = None
    check_table: Callable[[pd.DataFrame, str], str | None] | None = None
    frame: Callable[..., pd.DataFrame] | None = None
    write: Callable[..., None] | None = None
    layout: Callable[[str, pd.DataFrame], str] | None = None
    summary: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    figure: tuple[Callable, str] | None = None
    visual: Callable[..., Any] | None = None
    begin: Callable[[Any], dict] | None = None
    paper: Mapping | None = None
    scales: tuple[str, ...] = NOT_MEDIUM
    suite: str = ""

    @property
    def runnable(self) -> bool:
        """Whether :func:`run_table` can make it (else only its ``suite`` does)."""
        return self.measure is not None and self.write is not None

    def run_list(self, ops=None, scale: str | None = None) -> list:
        """The models it trains (:data:`benchmarks._experiments.TABLES`), for ``ops`` at
        ``scale``."""
        if self.runs is None:
            return []
        from .._experiments import TABLES

        return TABLES[self.runs](ops, scale)


def claim(holds: bool, message) -> None:
    """Raise :class:`AssertionError` with ``message`` unless ``holds`` (a table's ``check``;
    an explicit raise, which ``python -O`` keeps)."""
    if not holds:
        raise AssertionError(message)


_REGISTRY: dict[str, Table] | None = None


def registry() -> dict[str, Table]:
    """Every table, by CSV name, from the ``TABLES`` of each module of this package (found, not
    listed: a new table is a new module). Two tables with one name or alias are refused."""
    global _REGISTRY
    if _REGISTRY is None:
        found: dict[str, Table] = {}
        aliases: dict[str, str] = {}
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
            if info.name.startswith("_"):
                continue
            module = importlib.import_module(f"{__name__}.{info.name}")
            for table in getattr(module, "TABLES", ()):
                for key in (table.name, table.alias):
                    if key in found or key in aliases:
                        raise ValueError(f"{module.__name__}: table name or alias {key!r} is "
                                         "taken by another table")
                found[table.name] = table
                aliases[table.alias] = table.name
        _REGISTRY = found
    return _REGISTRY


def find(name: str) -> Table | None:
    """The table whose CSV name or alias is ``name``, or None."""
    tables = registry()
    if name in tables:
        return tables[name]
    return next((t for t in tables.values() if t.alias == name), None)


def get(name: str) -> Table:
    """:func:`find`, or a :class:`ValueError` that lists the tables."""
    table = find(name)
    if table is None:
        raise ValueError(f"unknown table {name!r}; choose from "
                         + ", ".join(f"{t.alias} ({t.name})" for t in registry().values()))
    return table


from ._runner import Collected, collect, run_table  # noqa: E402  (they use the names above)

__all__ = ["Collected", "Measured", "Table", "claim", "collect", "find", "get", "registry",
           "run_table"]
