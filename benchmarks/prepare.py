"""``python -m benchmarks.prepare``: fill the benchmark cache (dataset, trained models) in parallel.

``pytest benchmarks`` trains whatever is missing itself, one model after another; this command does
the same work ``--jobs`` processes at a time, so that the benchmark run afterwards only evaluates.
It can be stopped and started again: finished models are kept and unfinished ones resume.
``--dry-run`` trains nothing and builds nothing: it lists the models that would be trained and
estimates each one's training time on this device from a few timed training steps.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

import operators
from datagen import code_version
from datagen.cli_common import HelpFormatter
from datagen.lock import LockedError
from datagen.threads import check_threads

from ._experiments import TABLES, Experiment, job_threads, models_option
from ._report import MODELS_HELP, default_cache


def _command(argv, cache) -> str:
    """This command line as a card records it: ``python -m benchmarks.prepare`` and its
    arguments, this machine's paths made portable (``<cache>/...``, ``~/...``)."""
    import shlex

    from ._report import _portable_command

    words = sys.argv[1:] if argv is None else list(argv)
    return _portable_command("python -m benchmarks.prepare " + shlex.join(words), cache)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.prepare", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("--version", action="version",
                   version=f"decouple-ops benchmarks.prepare {code_version()}")
    p.add_argument("--scale", choices=("smoke", "small", "medium", "paper"), default="small",
                   help="which scale's dataset and preset (medium: the ten-filter joint models "
                        "of Tables 6 and 12 only, on the small scale's dataset)")
    p.add_argument("--cache", type=Path, default=default_cache(),
                   help="the benchmark cache: <scale>/data.h5 and one run folder per model; "
                        "$DECOUPLE_CACHE sets its default, as for pytest benchmarks and "
                        "python -m benchmarks run")
    p.add_argument("--data", type=Path, default=None,
                   help="dataset instead of the scale's default (only read); its models are the "
                        "scale's, in <scale>/runs, when it is the scale's build (the options and "
                        "digest it records), else in <scale>/runs-<digest>. Without it, the "
                        "cache's <scale>/data.h5, else the quick start's data/decouple.h5 when "
                        "it is the scale's build, else a build into the cache; --dry-run says "
                        "which and why")
    p.add_argument("--tables", default=",".join(TABLES),
                   help=f"which tables' models to train, comma separated ({', '.join(TABLES)})")
    p.add_argument("--ops", default=None,
                   help="only the models of these operators: names or groups ("
                        + ", ".join(g for g in operators.GROUPS if g != "all")
                        + "), comma separated, or all: every operator, the "
                        f"{len(operators.ALL)} of python -m datagen and python -m model; each "
                        "table keeps those it reports (Table 1: the six filters, Table 2: sr, "
                        "denoise, jpeg, ...). Default: every table's own operators, the same "
                        "as all")
    p.add_argument("--runs", default=None, metavar="NAME,...",
                   help="only these of the tables' runs (their names, as --list shows them, "
                        "comma separated), e.g. to train one model of a table first")
    p.add_argument("--models", default="default", metavar="DIR|none", help=MODELS_HELP)
    p.add_argument("--jobs", type=int, default=2, help="trainings at a time")
    p.add_argument("--threads", type=int, default=None,
                   help="threads of each training (--threads of python -m model train; "
                        "default: 1 when --jobs > 1, else torch's default)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--list", action="store_true", help="only list the runs and whether they are done")
    p.add_argument("--save-unfinished", action="store_true",
                   help="train nothing: copy the training state (checkpoint and log) of each run "
                        "started but not done into the unfinished/ folder beside --models "
                        "(results/medium/unfinished), to commit; a later prepare on any machine "
                        "resumes from it when its cache has no state of its own")
    p.add_argument("--export-finished", action="store_true",
                   help="train nothing: export each finished run that the models folder "
                        "(--models; results/medium/models) lacks into it, as python -m model zoo "
                        "export does (card and safetensors, evaluated on the test split), and "
                        "delete its state in unfinished/, to commit; with --save-unfinished, "
                        "both: the hand-over at the end of a sitting")
    p.add_argument("--dry-run", action="store_true",
                   help="train and build nothing: list the models that would be trained (name, "
                        "preset, iterations) with an estimate of each one's training time on "
                        "this device, from --estimate-steps timed training steps")
    p.add_argument("--estimate-steps", type=int, default=2,
                   help="--dry-run: timed training steps per architecture (after one untimed "
                        "warm-up step); 0: list without estimates")
    args = p.parse_args(argv)
    received: list[int] = []
    handlers = _catch_stop_signals(received)
    try:
        if args.jobs < 1:
            raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
        check_threads(args.threads)
        if args.estimate_steps < 0:
            raise ValueError(f"--estimate-steps must be >= 0, got {args.estimate_steps}")
        ops = None if args.ops is None else operators.resolve(args.ops)
        runs = []
        for t in args.tables.split(","):
            if t.strip() not in TABLES:
                raise ValueError(f"unknown table {t!r}; choose from {list(TABLES)}")
            runs += [r for r in TABLES[t.strip()](ops, args.scale) if r not in runs]
        if not runs:
            raise ValueError(f"no model of --tables {args.tables} is trained on --ops {args.ops} "
                             f"(at the {args.scale} scale)")
        if args.runs is not None:
            wanted = [n.strip() for n in args.runs.split(",") if n.strip()]
            unknown = [n for n in wanted if n not in {r.name for r in runs}]
            if unknown or not wanted:
                raise ValueError(f"--runs {','.join(unknown) or repr(args.runs)}: not a run of "
                                 f"--tables {args.tables} at the {args.scale} scale (its runs: "
                                 f"{', '.join(r.name for r in runs)})")
            runs = [r for r in runs if r.name in wanted]
        exp = Experiment(args.scale, args.cache, args.data, args.device,
                         models_option(args.models))
        if args.list:
            for r in runs:
                note = exp.store_note(r)
                where = exp.stored(r) or exp.run_dir(r)
                done = exp.is_done(r)
                if not done and os.path.lexists(exp.run_dir(r) / "last.pt"):
                    note = exp.progress_note(r)
                elif not done:
                    state = exp._unfinished_state(r)[1]
                    note = note if not state else (
                        state if "ignored" in state else f"resumes from {state}")
                shown = any(w in note for w in ("ignored", "resumes", "iteration", "unreadable"))
                print(f"{'done ' if done else 'to do'}  {where}"
                      + (f"  ({note})" if shown else ""))
            return 0
        if args.export_finished:
            exported = exp.export_finished(runs, command=_command(argv, exp.cache))
            for line in exported:
                print(line)
            print(f"exported {len(exported)} finished run(s)" if exported else
                  "no finished run to export (none finished, or exported already)")
        if args.save_unfinished:
            saved = exp.save_unfinished(runs)
            for line in saved:
                print(line)
            print(f"saved {len(saved)} unfinished run(s)" if saved else
                  "no unfinished run to save (none started, or saved at this iteration already)")
        if args.export_finished or args.save_unfinished:
            return 0
        if args.dry_run:
            dry_run(exp, runs, steps=args.estimate_steps, threads=args.threads,
                    jobs=args.jobs)
            return 0
        failed = exp.prepare(runs, jobs=args.jobs, threads=args.threads)
    except KeyboardInterrupt:  # SIGINT, or SIGTERM (see _catch_stop_signals)
        return _stopped(received[-1] if received else signal.SIGINT)
    except (ValueError, OSError) as exc:  # bad options; a cache that cannot be written
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except LockedError as exc:  # another prepare works on this cache and scale
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # e.g. the dataset build failed (it said why above)
        if received:  # it stopped because it was asked to
            return _stopped(received[-1])
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    for r in failed:
        print(f"failed: {r.name} (see {exp.run_dir(r) / 'train.out'})", file=sys.stderr)
    for r in failed.stopped:
        print(f"stopped: {r.name} (checkpointed; the same command resumes it)", file=sys.stderr)
    return 1 if failed or failed.stopped else 0


def _catch_stop_signals(received: list) -> dict:
    """Make SIGINT and SIGTERM raise KeyboardInterrupt in this process, recording which came in
    ``received``; returns the previous handlers (to restore). SIGTERM's default would end the
    process at once, leaving its trainings running (orphans holding their run folders' locks);
    raised as an exception, it lets :meth:`Experiment.prepare` stop and wait for them."""
    def handler(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            old[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread: signals stay as they are
            break
    return old


def _stopped(signum: int) -> int:
    """The one line said when stopped by a signal; the exit status 128 + its number."""
    name = signal.Signals(signum).name
    print(f"error: stopped by {name}; the trainings it started were stopped too. Run the same "
          "command again to resume: finished models are kept, the others resume from their "
          "last checkpoint", file=sys.stderr)
    return 128 + int(signum)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def dry_run(exp: Experiment, runs, *, steps: int = 2, threads: int | None = None,
            jobs: int = 1, out=None) -> list[dict]:
    """Print (to ``out``, default stdout) and return what :meth:`Experiment.prepare` would
    train: per model its name, preset, iterations left and an estimated training time on this
    device. Nothing is trained, no dataset is built and nothing is written.

    The estimate is measured, not modelled: for each architecture, one untimed warm-up step and
    ``steps`` timed training steps of :func:`model.train.seconds_per_iteration` (forward, MSE,
    backward, Adam: the step the training runs) at the scale's preset (width, batch, crop) on
    the device the trainings would use, on the first batch of the dataset when it exists, else
    on a synthetic batch of the preset's batch size and crop; the median seconds per step times
    the iterations left. Loading batches, logging, checkpoints and validation are not counted.
    The steps run with the threads each training will compute with (``python -m model
    train``'s rule, :func:`model.device.command_threads`, for the ``--threads`` prepare gives it,
    :func:`job_threads`: one each when ``jobs`` > 1, else torch's default lowered to the cores
    the load leaves free), and the load they were measured at is said with the estimate; this
    process's threads are put back afterwards. The dataset line says which dataset is used and
    why (:meth:`Experiment.locate_data`).
    """
    import torch

    from model import device as devices
    from model.presets import get_preset

    out = sys.stdout if out is None else out
    preset = get_preset(exp.preset)
    device = devices.resolve(exp.device)
    located = exp.locate_data()
    data, have = located.path, located.exists
    # timed with the threads each of the ``jobs`` trainings will compute with: the rule of
    # ``python -m model train`` (devices.command_threads) applied to the --threads prepare
    # gives it (job_threads: one each when jobs > 1; none when jobs is 1, so the training
    # lowers torch's default to the cores the load leaves free). A step's time depends on its
    # threads: on a busy machine threads waiting for a core made the estimate ~20x too slow
    # and the dry run minutes long.
    choice, restore = devices.command_threads(job_threads(jobs, threads), say=False)
    try:
        crop = ("each batch cropped to its smallest sample" if preset.batch_crop
                else f"{preset.crop}² crops")
        print(f"dry run at scale {exp.scale}: preset {preset.name} (width {preset.width}, "
              f"batch {preset.batch}, {crop}, {preset.iterations} iterations) on {device} with "
              f"{torch.get_num_threads()} thread(s) per training ({choice.reason()}); nothing "
              "is trained or built", file=out)
        print(f"dataset: {data} ({located.why})", file=out)
        if not have:
            print(f"estimates use a synthetic batch of {preset.batch} × {preset.crop}² crops",
                  file=out)
        return _estimate(exp, runs, preset, device, data if have else None, steps, jobs,
                         choice, out)
    finally:
        restore()


def _estimate(exp, runs, preset, device, data, steps, jobs, choice, out) -> list[dict]:
    """:func:`dry_run`'s table: per run its iterations left and, with ``steps``, the
    estimate from the seconds per step measured once per architecture and width."""
    from model.checkpoint import load
    from model.train import seconds_per_iteration

    have = data is not None
    load_note = ("load unknown" if choice.load is None else
                 f"measured at load {choice.load:.1f} on {choice.cores} cores"
                 + (": busy, a quieter machine trains faster" if choice.busy else ""))
    if steps:
        print(f"estimate: median of {steps} timed training step(s) per architecture (after one "
              f"warm-up step) × the iterations left, {load_note}; data loading, checkpoints "
              "and validation not counted", file=out)
    per_step: dict[tuple, float] = {}  # by architecture and width (a run's own --width)
    rows = []
    for r in runs:
        done = 0
        if have:
            ckpt = exp.run_dir(r) / "last.pt"
            if ckpt.is_file():
                try:
                    done = int(load(ckpt)["iteration"])
                except (ValueError, KeyError):
                    done = 0
        ops = tuple(getattr(r, "operators", (r.op,)))  # a joint run trains several
        total = r.iterations(exp.preset)  # (run_preset would read the dataset)
        if exp.stored(r) is not None:  # its exported model is loaded, never trained
            done = total
        left = max(0, total - done)
        key = (r.arch, getattr(r, "width", None))
        rp = preset.with_(width=key[1])
        if steps and left and key not in per_step:
            t = time.perf_counter()
            kw = dict(gamma=r.gamma, device=device, iterations=steps, warmup=1)
            try:
                per_step[key] = seconds_per_iteration(r.arch, ops, rp,
                                                      data=data if have else None, **kw)
            except ValueError as exc:  # e.g. too few pairs for a batch: training would fail
                print(f"  {r.name}: cannot take a batch from the dataset ({exc}); timing a "
                      "synthetic batch", file=out)
                per_step[key] = seconds_per_iteration(r.arch, ops, rp, data=None, **kw)
            print(f"  timed {r.arch}" + (f" at width {rp.width}" if key[1] else "") +
                  f": {per_step[key]:.3g} s per step ({time.perf_counter() - t:.0f} s to "
                  "measure)", file=out)
        est = per_step.get(key, 0.0) * left if steps else None
        rows.append({"name": r.name, "preset": preset.name, "iterations": total,
                     "left": left, "seconds": est})
    width = max([len(row["name"]) for row in rows] + [5])
    print(f"{'model':<{width}}  preset  iterations  {'left':>10}  estimate", file=out)
    for row in rows:
        est = "done" if not row["left"] else ("-" if row["seconds"] is None
                                              else _duration(row["seconds"]))
        print(f"{row['name']:<{width}}  {row['preset']:<6}  {row['iterations']:>10}  "
              f"{row['left']:>10}  {est}", file=out)
    if steps:
        total = sum(row["seconds"] or 0.0 for row in rows)
        print(f"{len([r for r in rows if r['left']])} model(s) to train, about "
              f"{_duration(total)} one after another on {device}"
              + (f", at best about {_duration(total / jobs)} with {jobs} at a time" if jobs > 1
                 else "") + f" ({load_note})", file=out)
    return rows


if __name__ == "__main__":
    sys.exit(main())
