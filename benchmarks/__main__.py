"""``python -m benchmarks``: make one result table without pytest.

    python -m benchmarks list                                  # the tables, by alias and name
    python -m benchmarks run table1 --scale smoke --results /tmp/t --cache /tmp/c
    python -m benchmarks run sweep --ops l0,wls --scale small  # into results/ (small scale)
    python -m benchmarks run table12 --scale medium --units norm:1,decouple  # two of its units
    python -m benchmarks recipe table1                         # how to reproduce Table 1

``run`` trains whatever model is missing in the cache, measures the table's units (``--ops``:
only these operators; ``--units``: only these variants), checks its claims and writes
``NAME.csv``, ``NAME.tex`` and ``NAME.meta.json`` (and its figures) exactly as ``pytest
benchmarks`` does (:func:`benchmarks.tables.run_table`). A smoke run writes into
``<cache>/smoke/results`` unless ``--results`` says otherwise, and a folder that holds tables of
a larger scale (the committed ``results/``) is refused before anything is trained or written.
The small, medium and paper scales write into the checkout's ``results/`` when run from one,
else (benchmarks installed with pip) into ``./results`` of the folder the command runs in.
Exit status: 0, 1 when a claim of the table did not hold (the table is written all the same), 2
on a usage error.
"""
from __future__ import annotations

import argparse
import sys

from operators import __version__

from ._experiments import models_option
from ._report import MODELS_HELP, SCALES


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"decouple-ops benchmarks {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("list", help="the tables: alias, CSV name, the paper's table, and whether "
                                "`run` makes it (else the benchmark test module that does)")
    rc = sub.add_parser("recipe", help="how to reproduce one table: commands, models, expected "
                                       "time and figures (from the registry and results/)")
    rc.add_argument("table", help="the table's alias or CSV name (python -m benchmarks list)")
    rc.add_argument("--scale", choices=SCALES, default=None,
                    help="the scale (default: the committed table's)")
    r = sub.add_parser("run", help="make one table without pytest",
                       description="Make one table (its CSV, LaTeX, sidecar and figures) without "
                                   "pytest, as `pytest benchmarks` does.")
    r.add_argument("table", help="the table's alias or CSV name (python -m benchmarks list)")
    r.add_argument("--scale", choices=SCALES, default="smoke",
                   help="preset and dataset of the models (default: smoke)")
    r.add_argument("--ops", default=None,
                   help="only these operators, names or groups, comma separated (default: all "
                        "the table reports)")
    r.add_argument("--units", default=None, metavar="IDS",
                   help="only these units of a table whose units are not operators, by id, "
                        "comma separated (table3: VARIANT-OPERATOR, e.g. tpami-llf; table12: "
                        "variant keys, e.g. norm:1,decouple; a wrong id lists them)")
    r.add_argument("--results", default=None,
                   help="folder for the table (default: <cache>/smoke/results at the smoke "
                        "scale, results/ at the small and paper scales, results/medium at the "
                        "medium scale; results/ of the checkout benchmarks runs from, or "
                        "./results where it is installed (pip), not run from a checkout)")
    r.add_argument("--cache", default=None,
                   help="datasets and trained models (default: $DECOUPLE_CACHE or "
                        "~/.cache/decouple)")
    r.add_argument("--data", default=None,
                   help="dataset (python -m datagen build) instead of the scale's default build")
    r.add_argument("--device", default=None,
                   help="cpu or cuda for training and evaluation (default: cuda when available)")
    r.add_argument("--models", default="default", metavar="DIR|none",
                   help=MODELS_HELP)
    r.add_argument("--no-figures", action="store_true",
                   help="skip the figures drawn from the models (the CSV's figure is drawn)")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    from . import tables

    if args.command == "list":
        for t in tables.registry().values():
            how = "run" if t.runnable else f"pytest {t.suite}"
            print(f"{t.alias:18} {t.name:28} {t.label or '-':40} {how}")
        return 0
    if args.command == "recipe":
        from .tables._recipe import recipe

        try:
            print(recipe(args.table, args.scale), end="")
        except ValueError as exc:  # an unknown table
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    try:
        units = None
        if args.units is not None:
            units = [u.strip() for u in args.units.split(",") if u.strip()]
            if tables.get(args.table).unit_id is None:
                raise ValueError(f"{args.table}'s units are operators: choose them with --ops")
        done = tables.run_table(args.table, scale=args.scale, ops=args.ops, units=units,
                                results=args.results, cache=args.cache, data=args.data,
                                device=args.device, figures=not args.no_figures,
                                models=models_option(args.models))
    except (ValueError, KeyError, FileNotFoundError) as exc:  # bad name, scale, folder, ops
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 2
    print(f"wrote {', '.join(p.name for p in done.files)} to {done.results}")
    for line in done.failed:
        print(f"claim not met: {line}", file=sys.stderr)
    return 1 if done.failed else 0


if __name__ == "__main__":
    sys.exit(main())
