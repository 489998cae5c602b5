"""``python -m benchmarks.prepare``: fill the benchmark cache (dataset, trained models) in parallel.

``pytest benchmarks`` trains whatever is missing itself, one model after another; this command does
the same work ``--jobs`` processes at a time, so that the benchmark run afterwards only evaluates.
It can be stopped and started again: finished models are kept and unfinished ones resume.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import operators
from datagen import code_version
from datagen.cli import HelpFormatter

from ._experiments import Experiment, baseline_runs, table1_runs

TABLES = {"table1": table1_runs, "table6": baseline_runs}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.prepare", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("--version", action="version",
                   version=f"decouple-ops benchmarks.prepare {code_version()}")
    p.add_argument("--scale", choices=("smoke", "small", "paper"), default="small",
                   help="which scale's dataset and preset")
    p.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "decouple",
                   help="the benchmark cache: <scale>/data.h5 and one run folder per model")
    p.add_argument("--data", type=Path, default=None, help="dataset instead of the scale's default")
    p.add_argument("--tables", default="table1,table6", help="which tables' models to train")
    p.add_argument("--ops", default="all", help="operators, comma separated, or all")
    p.add_argument("--jobs", type=int, default=2, help="trainings at a time (one thread each)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--list", action="store_true", help="only list the runs and whether they are done")
    args = p.parse_args(argv)
    ops = operators.NAMES if args.ops == "all" else tuple(o.strip() for o in args.ops.split(","))
    try:
        for o in ops:
            operators.get(o)
        runs = []
        for t in args.tables.split(","):
            if t.strip() not in TABLES:
                raise ValueError(f"unknown table {t!r}; choose from {list(TABLES)}")
            runs += [r for r in TABLES[t.strip()](ops) if r not in runs]
        exp = Experiment(args.scale, args.cache, args.data, args.device)
        if args.list:
            for r in runs:
                print(f"{'done ' if exp.is_done(r) else 'to do'}  {exp.run_dir(r)}")
            return 0
        failed = exp.prepare(runs, jobs=args.jobs)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for r in failed:
        print(f"failed: {r.name} (see {exp.run_dir(r) / 'train.out'})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
