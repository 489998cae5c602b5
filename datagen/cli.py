"""Command line: ``python -m datagen {build,info,verify,show}``."""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import warnings
from pathlib import Path

import operators

from . import code_version
from .build import BuildError
from .cli_common import HelpFormatter, int_at_least
from .sources import DEFAULT_TEST_FILES

EPILOG = """\
examples:
  python -m datagen build --ops all                  # bundled sample photos -> data/decouple.h5
  python -m datagen build --ops restoration --out data/restoration.h5   # sr,denoise,jpeg,rain
  python -m datagen build --ops l0,wls --images ~/VOC2012/JPEGImages --out data/voc.h5
  python -m datagen build --ops all --scheduler tcp://host:8786   # on a Dask cluster
  python -m datagen build --ops all --resume         # complete an interrupted build
  python -m datagen info data/decouple.h5
  python -m datagen verify data/decouple.h5
  python -m datagen show data/decouple.h5 --op l0 -o sheet.png
"""


def _ops(value: str) -> tuple[str, ...]:
    try:
        return operators.resolve(value)
    except (ValueError, TypeError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _names(value: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    if not names:
        raise argparse.ArgumentTypeError("give at least one image file name")
    return names


def _ops_help() -> str:
    groups = "; ".join(f"{g} = {', '.join(n)}" for g, n in operators.GROUPS.items()
                       if g != "all")
    return (f"operators: a comma list of names and/or groups, case-insensitive. Operators: "
            f"{', '.join(operators.ALL)}. Groups: all = every registered operator; {groups}")


def _scales(value: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--scales wants numbers like 1,0.5, got {value!r}") from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m datagen", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Make HDF5 training/test pairs of the paper's parameterized operators "
                    "(Fan et al., ECCV 2018 / TPAMI 2019) at γ sampled as the paper did.",
        epilog=EPILOG)
    p.add_argument("--version", action="version", version=f"decouple-ops datagen {code_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    b = sub.add_parser("build", help="compute the pairs and write one HDF5 file",
                       formatter_class=HelpFormatter,
                       description="Crop the images, split them into train/test by source image, "
                                   "draw γ from each operator's law (training) or use the paper's "
                                   "test γ (test), make every pair with operators.pair in "
                                   "parallel and write one self-describing HDF5 file.")
    b.add_argument("--ops", type=_ops, default="all", help=_ops_help())
    b.add_argument("--images", type=Path, default=None,
                   help="folder of PNG/JPEG images (e.g. VOC2012/JPEGImages); default: the "
                        "colour sample photographs bundled with scikit-image")
    b.add_argument("--out", type=Path, default=Path("data/decouple.h5"), help="output HDF5 file")
    b.add_argument("--size", type=int, default=128, help="crop size in pixels (even)")
    b.add_argument("--per-image", type=int, default=7,
                   help="γ draws per training crop and operator (the paper: 7)")
    b.add_argument("--test-fraction", type=float, default=None,
                   help="fraction of source images held out for test, chosen with --seed (split "
                        "by image, never by crop; test crops get the paper's test γ); default "
                        "0.1 for --images, and for the bundled set its named test images "
                        f"({', '.join(DEFAULT_TEST_FILES)})")
    b.add_argument("--test-images", type=_names, default=None,
                   help="comma list of the image files held out for test (names as in the "
                        "image folder); overrides --test-fraction")
    b.add_argument("--exemplar", type=Path, default=None,
                   help="style: the exemplar image whose tone the style transfer copies "
                        "(default: a photograph bundled with scikit-image, see operators.style); "
                        "the file records its name and hash, never the pixels or the path")
    b.add_argument("--texture", type=Path, default=None,
                   help="pencil: the pencil texture image (default: the procedural texture of "
                        "operators.pencil); the file records its name and hash")
    b.add_argument("--max-crops", type=int, default=40,
                   help="at most this many crops per source image (chosen with --seed)")
    b.add_argument("--scales", type=_scales, default=None,
                   help="resize factors at which images are cropped; default 1,0.5 for the "
                        "bundled set, 1 for --images")
    b.add_argument("--single", action=argparse.BooleanOptionalAction, default=True,
                   help="also make training pairs at the paper's test γ, for the "
                        "one-network-per-γ baseline (split 'single')")
    b.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    b.add_argument("--workers", type=int, default=None,
                   help="local worker processes (1 = in this process) (default: one per core)")
    b.add_argument("--threads", type=int, default=None,
                   help="threads each worker computes with (default: $OMP_NUM_THREADS, else the "
                        "cores other processes leave free, by the load average, shared by the "
                        "workers, at least 1; the first line says which)")
    b.add_argument("--scheduler", default=None,
                   help="address of a Dask scheduler (e.g. tcp://host:8786) to run on a cluster "
                        "instead of local processes")
    b.add_argument("--resume", action="store_true",
                   help="complete an interrupted build with the same options")
    b.add_argument("--force", action="store_true",
                   help="overwrite an existing output or discard an interrupted build")
    b.add_argument("--quiet", action="store_true",
                   help="no progress: no bar on a terminal, no progress lines elsewhere (a line "
                        "every $DECOUPLE_PROGRESS_S seconds, default 30)")

    i = sub.add_parser("info", help="what is inside a dataset, as a table")
    i.add_argument("file", type=Path, help="HDF5 file written by `python -m datagen build`")

    v = sub.add_parser("verify", help="read every chunk (checksums), integrity checks, and "
                                      "recompute a random sample of pairs",
                       formatter_class=HelpFormatter,
                       description="Exit status 0: all checks passed; 1: some failed (damaged "
                                   "datasets are named); 2: not a dataset.")
    v.add_argument("file", type=Path, help="HDF5 file written by `python -m datagen build`")
    v.add_argument("--samples", type=int_at_least(0, "an integer >= 0"), default=3,
                   help="pairs per operator recomputed from the recorded parameters")
    v.add_argument("--seed", type=int, default=0, help="which pairs are recomputed")
    v.add_argument("--exemplar", type=Path, default=None,
                   help="the style exemplar the file was built with, if not the default (its "
                        "name and hash are in /ops/style's 'fixed' attribute)")
    v.add_argument("--texture", type=Path, default=None,
                   help="the pencil texture the file was built with, if not the default")
    v.add_argument("--verbose", action="store_true",
                   help="list every check (PASS and FAIL); by default only the failed ones, "
                        "the notes and the summary")

    s = sub.add_parser("show", help="contact sheet: one source across the test γ values",
                       formatter_class=HelpFormatter)
    s.add_argument("file", type=Path, help="HDF5 file written by `python -m datagen build`")
    s.add_argument("--op", type=_ops, default=None,
                   help="operators or groups to draw (comma list); default: all in the file")
    s.add_argument("--index", type=int, default=0, help="which test source crop (0 = first)")
    s.add_argument("-o", "--output", type=Path, default=Path("sheet.png"),
                   help="image to write (PNG; another extension matplotlib writes sets its "
                        "format); an existing file is replaced only when it is a sheet or "
                        "image this project wrote, or with --force")
    s.add_argument("--force", action="store_true",
                   help="replace an existing file at --output that this project did not write "
                        "(never the dataset itself, a folder or a special file)")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "build":
            return _build(args, argv)
        if args.command == "info":
            from .inspection import info

            print(info(args.file))
            return 0
        if args.command == "verify":
            from .inspection import verify

            report, ok = verify(args.file, samples=args.samples, seed=args.seed,
                                exemplar=args.exemplar, texture=args.texture,
                                verbose=args.verbose)
            print(report)
            return 0 if ok else 1
        if args.command == "show":
            from .inspection import contact_sheet

            path = contact_sheet(args.file, args.output, ops=args.op, index=args.index,
                                 force=args.force)
            print(f"wrote {path}")
            return 0
    except (BuildError, FileNotFoundError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. a damaged file that h5py cannot read: a message, no traceback
        print(f"error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""),
              file=sys.stderr)
        return 2
    return 2


def _build(args, argv) -> int:
    """``build``: the flags checked and the threads said before anything is read, then
    :func:`datagen.build.build_dataset` of :func:`build_options`, its warnings printed as they
    come (``warning: ...``), and a summary."""
    from .build import _dask_client, build_dataset, check_output
    from .threads import check_threads, cpu_cores

    if args.workers is None:
        args.workers = cpu_cores()
    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    check_threads(args.threads)
    # what can be checked before the images are read and the plan is made
    check_output(args.out)
    if args.scheduler:
        _dask_client()
    threads = None if args.scheduler else _say_workers(args.workers, args.threads)
    options = build_options(args)
    command = "python -m datagen " + shlex.join(_without_aux_paths(
        sys.argv[1:] if argv is None else list(argv)))
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda message, *_a, **_k: print(f"warning: {message}",
                                                                file=sys.stderr)
        result = build_dataset(args.out, options, workers=args.workers, threads=threads,
                               scheduler=args.scheduler, resume=args.resume, force=args.force,
                               progress=not args.quiet, command=command)
    _print_summary(result)
    return 0


def _say_workers(workers: int, explicit: int | None) -> int:
    """The threads of each local worker (:func:`datagen.build.worker_threads`), said in the
    build's first line (stderr), with a warning when the machine is busy."""
    from .build import worker_threads

    per, choice = worker_threads(workers, explicit)
    print(f"workers: {workers} × {per} thread{'s' if per > 1 else ''} ({choice.reason()})",
          file=sys.stderr)
    warning = choice.warning()
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    sys.stderr.flush()
    return per


def _without_aux_paths(argv: list[str]) -> list[str]:
    """The command line as stored in the file: auxiliary images by file name only (their hash is
    in the operator's attributes; a machine path is not)."""
    out, after = [], False
    for a in map(str, argv):
        if after:
            a, after = os.path.basename(a), False
        elif a in ("--exemplar", "--texture"):
            after = True
        elif a.startswith(("--exemplar=", "--texture=")):
            key, _, value = a.partition("=")
            a = f"{key}={os.path.basename(value)}"
        out.append(a)
    return out


def build_options(args):
    """The :class:`~datagen.plan.Options` of a parsed ``build`` command line
    (:func:`datagen.plan.dataset_options` of its flags): the bundled set (its named test
    images, two scales) unless ``--images`` names a folder."""
    from .plan import dataset_options

    return dataset_options(args.ops, args.images, size=args.size, per_image=args.per_image,
                           test_fraction=args.test_fraction, test_images=args.test_images or (),
                           seed=args.seed, max_crops=args.max_crops, scales=args.scales,
                           single=args.single, exemplar=args.exemplar, texture=args.texture)


def _print_summary(r) -> None:
    print(f"\nwrote {r.out} ({r.file_bytes / 2**20:.1f} MiB) in {r.wall_s:.1f} s with {r.workers}")
    print(f"{'operator':<12}{'train':>8}{'test':>8}{'single':>8}")
    for name, c in r.pairs.items():
        print(f"{name:<12}{c['train']:>8}{c['test']:>8}{c['single']:>8}")
    rate = r.computed / r.wall_s if r.wall_s > 0 else float("nan")
    print(f"computed {r.computed} pairs ({rate:.1f} pairs/s)"
          + (f"; {r.resumed_pairs} resumed from the interrupted build" if r.resumed_pairs else ""))
    if r.skipped:
        print(f"skipped {len(r.skipped)} image(s):")
        for s in r.skipped:
            print(f"  {s}")
    for note in r.notes:
        print(f"note: {note}")
