"""Running a build: tasks on any ``concurrent.futures.Executor``, one writer, a crash-safe journal.

Crash safety: finished work is appended to ``<out>.partial/`` as small ``.npz`` shards, each
written to a temporary name and renamed (atomic on POSIX), so a killed build loses at most the
work not yet flushed. The HDF5 file is assembled from the journal into a temporary file and
renamed into place at the end: ``<out>`` is either absent or complete, never corrupt.
``--resume`` re-derives the plan, checks that it is the one the journal was made for, and computes
only the missing slots; since every slot's data is a pure function of the plan, the resumed file is
identical to an uninterrupted one.
"""
from __future__ import annotations

import concurrent.futures as cf
import errno
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

import operators

from . import __version__, code_version
from .plan import Plan
from .store import FORMAT, FORMAT_VERSION, SPLITS

# How often finished work is flushed to the journal (a kill loses at most this much work).
FLUSH_EVERY_S = float(os.environ.get("DATAGEN_FLUSH_SECONDS", 20.0))
FLUSH_EVERY_PAIRS = int(os.environ.get("DATAGEN_FLUSH_PAIRS", 256))


class BuildError(RuntimeError):
    """A build that cannot go on; the message says what to do."""


def run_task(name: str, pixels: np.ndarray, gammas: np.ndarray) -> np.ndarray:
    """Worker side: one source crop through one operator at several γ, as uint8 (MATLAB rounding)."""
    spec = operators.get(name)
    return np.stack([operators.to_uint8(spec(pixels, float(g))) for g in gammas])


def _init_worker(threads: int) -> None:
    """Pool workers share the cores: limit each one's Numba threads."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    os.environ.setdefault("MKL_NUM_THREADS", str(threads))
    import numba

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))


class InlineExecutor(cf.Executor):
    """Runs each task at submission, in this process (``--workers 1``)."""

    def submit(self, fn, /, *args, **kwargs):
        fut: cf.Future = cf.Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # delivered through the future like a pool would
            fut.set_exception(exc)
        return fut


def make_executor(workers: int, scheduler: str | None):
    """(executor, close): a Dask cluster's executor, a process pool, or in-process for 1 worker."""
    if scheduler:
        try:
            from distributed import Client
        except ImportError:
            raise BuildError("--scheduler needs dask.distributed: pip install 'decouple-ops[dask]'") from None
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise BuildError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        return client.get_executor(), client.close
    if workers == 1:
        return InlineExecutor(), lambda: None
    import multiprocessing as mp

    threads = max(1, (os.cpu_count() or 1) // workers)
    pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                  initializer=_init_worker, initargs=(threads,))
    return pool, lambda: pool.shutdown(cancel_futures=True)


# ---------------------------------------------------------------------------------- journal
class Journal:
    """``<out>.partial/``: plan.json plus shards ``<op>.<seq>.npz`` holding (slots, outputs)."""

    def __init__(self, out: Path, plan: Plan, *, resume: bool, force: bool):
        self.dir = out.with_name(out.name + ".partial")
        self.plan = plan
        self.buffer: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        self.buffered = 0
        self.last_flush = time.monotonic()
        self.seq = 0
        digest = plan.digest()
        if self.dir.exists() and force:
            shutil.rmtree(self.dir)
        if self.dir.exists():
            if not resume:
                raise BuildError(f"an interrupted build is in {self.dir}: add --resume to complete "
                                 "it, or --force to start over")
            try:
                stored = json.loads((self.dir / "plan.json").read_text())
            except (OSError, ValueError):
                raise BuildError(f"{self.dir} has no readable plan.json; use --force to start over") from None
            if stored.get("digest") != digest:
                raise BuildError(
                    f"the interrupted build in {self.dir} was made with other options or images "
                    f"({stored.get('options')}); rerun it with those, or use --force to start over")
        else:
            self.dir.mkdir(parents=True)
            self._atomic_write(self.dir / "plan.json", lambda p: Path(p).write_text(json.dumps(
                {"digest": digest, "options": json.loads(plan.options.to_json())})))
        self.done = {name: np.zeros(len(op.gamma), bool) for name, op in plan.ops.items()}
        for shard in self.shards():
            name = shard.name.split(".")[0]
            with np.load(shard) as z:
                self.done[name][z["slots"]] = True
            self.seq = max(self.seq, int(shard.name.split(".")[1]) + 1)

    def shards(self) -> list[Path]:
        return sorted(self.dir.glob("*.npz"))

    def _atomic_write(self, path: Path, write) -> None:
        tmp = path.with_name(path.name + ".tmp")
        try:
            write(tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise BuildError(f"disk full while writing {path}: free some space and run the "
                                 "same command with --resume; finished work is kept") from None
            raise

    def add(self, name: str, slots: np.ndarray, outputs: np.ndarray) -> None:
        self.buffer.setdefault(name, []).append((slots, outputs))
        self.buffered += len(slots)
        if (self.buffered >= FLUSH_EVERY_PAIRS
                or time.monotonic() - self.last_flush >= FLUSH_EVERY_S):
            self.flush()

    def flush(self) -> None:
        for name, items in list(self.buffer.items()):
            slots = np.concatenate([s for s, _ in items])
            outputs = np.concatenate([o for _, o in items])
            path = self.dir / f"{name}.{self.seq:06d}.npz"
            self._atomic_write(path, lambda p: np.savez(open(p, "wb"), slots=slots, outputs=outputs))
            self.seq += 1
            self.done[name][slots] = True
            del self.buffer[name]
        self.buffered = 0
        self.last_flush = time.monotonic()


# ---------------------------------------------------------------------------------- build
@dataclass
class BuildResult:
    out: Path
    pairs: dict[str, dict[str, int]]
    computed: int
    skipped: list[str]
    wall_s: float
    file_bytes: int
    workers: str
    resumed_pairs: int = 0
    notes: list[str] = field(default_factory=list)


def build(plan: Plan, out, *, workers: int = 0, scheduler: str | None = None, resume: bool = False,
          force: bool = False, progress: bool = True, command: str | None = None) -> BuildResult:
    """Compute every slot of ``plan`` and write the HDF5 file ``out``."""
    started = time.perf_counter()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and not force:
        if resume:
            raise BuildError(f"{out} is already complete; use --force to rebuild it")
        raise BuildError(f"{out} exists; use --force to overwrite it or choose another --out")
    workers = workers or os.cpu_count() or 1
    journal = Journal(out, plan, resume=resume, force=force)
    resumed = int(sum(d.sum() for d in journal.done.values()))
    todo = [(name, crop, slots) for name, op in plan.ops.items() for crop, slots in op.tasks
            if not journal.done[name][slots].all()]
    total = sum(len(s) for _, _, s in todo)

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="pair", desc="build", dynamic_ncols=True, file=sys.stderr)
    executor, close = make_executor(workers, scheduler)
    label = f"dask {scheduler}" if scheduler else f"{workers} worker(s)"
    try:
        pending: dict[cf.Future, tuple[str, np.ndarray]] = {}
        window = 2 * (workers if not scheduler else max(workers, 8)) + 2
        it = iter(todo)
        while True:
            while len(pending) < window:
                task = next(it, None)
                if task is None:
                    break
                name, crop, slots = task
                fut = executor.submit(run_task, name, plan.pixels[crop],
                                      plan.ops[name].gamma[slots])
                pending[fut] = (name, slots)
            if not pending:
                break
            finished, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            failed = None
            for fut in finished:  # keep every finished task's work before raising a failure
                name, slots = pending.pop(fut)
                if fut.exception() is not None:
                    failed = failed or fut
                    continue
                journal.add(name, slots, fut.result())
                if bar is not None:
                    bar.update(len(slots))
            if failed is not None:
                failed.result()  # raises the task's exception
        journal.flush()
    except KeyboardInterrupt:
        _flush_quietly(journal)
        raise BuildError(f"interrupted; finished work is kept in {journal.dir}: run the same "
                         "command with --resume to complete it") from None
    except BaseException:  # a failing task or pool: keep what is done, report the cause
        _flush_quietly(journal)
        raise
    finally:
        if bar is not None:
            bar.close()
        close()

    _assemble(plan, journal, out, command=command)
    shutil.rmtree(journal.dir, ignore_errors=True)
    pairs = {name: {s: int((op.split == code).sum()) for s, code in SPLITS.items()}
             for name, op in plan.ops.items()}
    return BuildResult(out, pairs, total, plan.skipped, time.perf_counter() - started,
                       out.stat().st_size, label, resumed)


def _flush_quietly(journal: Journal) -> None:
    """Save finished work on the way out of a failed build, without masking the failure."""
    try:
        journal.flush()
    except (BuildError, OSError):
        pass


def _assemble(plan: Plan, journal: Journal, out: Path, *, command: str | None) -> None:
    """Write the HDF5 file from the journal, into a temporary file renamed into place."""
    missing = {n: int((~d).sum()) for n, d in journal.done.items() if not d.all()}
    if missing:
        raise BuildError(f"internal error: slots still missing {missing}")
    opts = plan.options
    s = opts.size
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    img_chunk = dict(chunks=(1, s, s, 3), compression="gzip", compression_opts=4, shuffle=True)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs.update({
                "format": FORMAT, "format_version": FORMAT_VERSION,
                "version": __version__, "code": code_version(),
                "command": command or " ".join(sys.argv),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "seed": opts.seed, "size": s, "per_image": opts.per_image,
                "test_fraction": opts.test_fraction, "max_crops": opts.max_crops,
                "scales": list(opts.scales), "single": opts.single, "images": opts.images_label,
                "options": opts.to_json(), "digest": plan.digest(),
                "skipped": json.dumps(plan.skipped),
            })
            g = f.create_group("images")
            g.create_dataset("file", data=np.array(opts.images, dtype=object),
                             dtype=h5py.string_dtype())
            g.create_dataset("split", data=plan.image_split)
            g = f.create_group("sources")
            g.create_dataset("pixels", data=plan.pixels, **img_chunk)
            g.create_dataset("image", data=np.array([c.image for c in plan.crops], np.int32))
            g.create_dataset("box", data=np.array([[c.y, c.x, s, s] for c in plan.crops], np.int32))
            g.create_dataset("scale", data=np.array([c.scale for c in plan.crops], np.float32))
            g.create_dataset("split", data=plan.crop_split)
            ops = f.create_group("ops")
            for name, op in plan.ops.items():
                spec = operators.get(name)
                g = ops.create_group(name)
                g.attrs.update({
                    "operator": name, "title": spec.title, "paper": spec.paper,
                    "gamma_name": spec.gamma_name, "gamma_meaning": spec.gamma_meaning,
                    "law": spec.law, "gamma_range": list(spec.gamma_range),
                    "test_gammas": list(spec.test_gammas), "fixed": json.dumps(dict(spec.fixed)),
                    "effective_note": spec.effective_note or "gamma_effective == gamma",
                })
                g.create_dataset("output", shape=(len(op.gamma), s, s, 3), dtype=np.uint8,
                                        **img_chunk)
                g.create_dataset("gamma", data=op.gamma)
                g.create_dataset("gamma_effective", data=op.gamma_effective)
                g.create_dataset("source", data=op.source)
                g.create_dataset("split", data=op.split)
            for shard in journal.shards():
                name = shard.name.split(".")[0]
                with np.load(shard) as z:
                    slots, outputs = z["slots"], z["outputs"]
                order = np.argsort(slots)
                slots, outputs = slots[order], outputs[order]
                # write runs of consecutive slots as slices (h5py is slow with point selections)
                breaks = np.flatnonzero(np.diff(slots) != 1) + 1
                for a, b in zip(np.r_[0, breaks], np.r_[breaks, len(slots)]):
                    ops[name]["output"][slots[a]:slots[b - 1] + 1] = outputs[a:b]
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT) or "No space" in str(exc):
            raise BuildError(f"disk full while writing {out}: free some space and run the same "
                             f"command with --resume (finished work is kept in {journal.dir})") from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
