"""Running a build: tasks on any ``concurrent.futures.Executor``, one writer, a crash-safe journal.

One build per output: ``<out>.lock`` (:mod:`datagen.lock`) refuses a second writer, naming the
first. Crash safety: finished work is appended to ``<out>.partial/`` as small ``.npz`` shards, each
written to a temporary name and renamed (atomic on POSIX), so a killed build loses at most the
work not yet flushed. The HDF5 file is assembled from the journal into a temporary file and
renamed into place at the end: ``<out>`` is either absent or complete, never corrupt. Assembly
reads the shards on disk and stops if any slot is missing; it checks the free space first, and
every dataset carries HDF5's Fletcher-32 checksum so that ``verify`` detects damage later.
``--resume`` re-derives the plan, checks that it is the one the journal was made for, and computes
only the missing slots; since every slot's data is a pure function of the plan, the resumed file is
identical to an uninterrupted one.
"""
from __future__ import annotations

import concurrent.futures as cf
import errno
import glob
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

import operators

from . import __version__, code_version
from .fs import atomic_open, fsync_folder
from .lock import LockedError, OutputLock
from .plan import Plan
from .sources import display
from .store import (ATTRIBUTES_DIGEST, FORMAT, FORMAT_VERSION, SPLITS, attributes_digest,
                    pair_shape, store_keys)
from .work import (CODEC, GZIP_LEVEL, compute_task, encode_chunk, encode_rows, fletcher32,
                   init_worker, run_task, warm_up)

# How often finished work is flushed to the journal (a kill loses at most this much work).
FLUSH_EVERY_S = float(os.environ.get("DATAGEN_FLUSH_SECONDS", 20.0))
FLUSH_EVERY_PAIRS = int(os.environ.get("DATAGEN_FLUSH_PAIRS", 256))
# With worker processes the journal is also flushed whenever the overlapped assembly has caught
# up and this long has passed, so little is left to assemble after the last task.
ASSEMBLY_FLUSH_S = 1.0


class BuildError(RuntimeError):
    """A build that cannot go on; the message says what to do."""


class InlineExecutor(cf.Executor):
    """Runs each task at submission, in this process (``--workers 1``)."""

    def submit(self, fn, /, *args, **kwargs):
        fut: cf.Future = cf.Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # delivered through the future like a pool would
            fut.set_exception(exc)
        return fut


def _dask_client():
    try:
        from distributed import Client
    except ImportError:
        raise BuildError("--scheduler needs dask.distributed, which is not installed: "
                         "pip install 'decouple-ops[dask]'") from None
    return Client


class WorkerPool:
    """``workers`` spawned processes, each behind a one-process executor of its own, so that the
    build chooses which worker computes which task (:func:`_run_pool`: a worker keeps to one
    operator, so each process loads only the compiled code of the operators it computes).

    The processes start at once (:func:`start_pool` before planning, as the command line does,
    or in :func:`build`) and import the operators before their first task.
    """

    def __init__(self, workers: int, threads: int | None = None, parent: int | None = None):
        import multiprocessing as mp

        if workers < 1:
            raise ValueError(f"WorkerPool needs workers >= 1, got {workers}")
        threads = threads or max(1, (os.cpu_count() or 1) // workers)
        ctx = mp.get_context("spawn")
        parent = os.getpid() if parent is None else parent
        self.executors = [cf.ProcessPoolExecutor(max_workers=1, mp_context=ctx,
                                                 initializer=init_worker,
                                                 initargs=(threads, parent))
                          for _ in range(workers)]
        self.ready = [ex.submit(warm_up) for ex in self.executors]

    def __len__(self) -> int:
        return len(self.executors)

    def shutdown(self, cancel_futures: bool = True, wait: bool = True) -> None:
        """Stop the processes; ``wait=False`` lets them exit (and be joined by the executors'
        threads) while this process goes on, as after a build whose tasks are all done."""
        for ex in self.executors:  # each waits for its process (the others run on meanwhile)
            ex.shutdown(wait=wait, cancel_futures=cancel_futures)


#: A Dask build stops when its scheduler has had no worker for this long (seconds); it says
#: so at once, and finished work is kept for ``--resume``.
NO_WORKERS_S = float(os.environ.get("DATAGEN_NO_WORKERS_SECONDS", 120.0))
#: How often a Dask build that is waiting for results asks the scheduler for its workers.
WORKER_POLL_S = 5.0


class DaskExecutor(cf.Executor):
    """A Dask client's executor that can also say how many workers its scheduler has (a build
    whose workers all died would otherwise wait for ever, silently: :func:`_run`)."""

    def __init__(self, client, scheduler: str):
        self.client, self.scheduler = client, scheduler
        self.executor = client.get_executor()

    def submit(self, fn, /, *args, **kwargs):
        return self.executor.submit(fn, *args, **kwargs)

    def workers(self) -> int:
        """Workers connected to the scheduler now (0 also when the scheduler does not answer)."""
        try:
            return len(self.client.nthreads())
        except Exception:  # noqa: BLE001 - a scheduler that does not answer has no workers
            return 0


def start_pool(workers: int, scheduler: str | None = None,
               threads: int | None = None) -> WorkerPool | None:
    """The local worker processes of a build with ``workers`` > 1 (None for 1 worker or a Dask
    scheduler), started now so that their start-up overlaps the planning; pass it to
    :func:`build` as ``pool``, which shuts it down. ``threads``: each worker's (default: the
    cores divided by the workers)."""
    if scheduler or workers <= 1:
        return None
    return WorkerPool(workers, threads)


def make_executor(workers: int, scheduler: str | None, pool: WorkerPool | None = None):
    """(executor, close): a Dask cluster's executor, the local worker processes
    (:class:`WorkerPool`), or in-process for 1 worker."""
    if scheduler:
        Client = _dask_client()
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise BuildError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        return DaskExecutor(client, scheduler), client.close
    if pool is not None:
        return pool, pool.shutdown
    if workers == 1:
        return InlineExecutor(), lambda: None
    pool = WorkerPool(workers)
    return pool, pool.shutdown


# ---------------------------------------------------------------------------------- journal
#: The name of each stored dataset in a journal shard (``outputs``: as in journals of earlier
#: versions, which therefore still resume). A shard holds each dataset's rows as the HDF5 chunks
#: they are stored as (``<name>_chunks``, uint8, concatenated; ``<name>_ends``, int64, where each
#: ends; ``codec`` = :data:`datagen.work.CODEC`); shards of earlier versions hold the raw rows
#: (``<name>``, uint8) and still resume (they are encoded when the file is assembled).
SHARD_KEY = {"output": "outputs", "input": "inputs", "target": "targets"}

class Journal:
    """``<out>.partial/``: plan.json plus shards ``<op>.<seq>.<writer>.npz`` holding the slots and
    the stored chunks of those slots (``outputs`` of a filter; ``inputs`` and ``targets`` of a
    degradation; :data:`SHARD_KEY`).

    Only the holder of the output's lock (:mod:`datagen.lock`) opens a journal; the writer tag in
    shard names (pid and random bits) keeps names unique even across hosts sharing a folder.
    """

    def __init__(self, out: Path, plan: Plan, *, resume: bool, force: bool):
        self.dir = out.with_name(out.name + ".partial")
        self.plan = plan
        self.buffer: dict[str, list[tuple[np.ndarray, dict]]] = {}
        self.buffered = 0
        self.last_flush = time.monotonic()
        self.seq = 0
        self.writer = f"{os.getpid()}x{secrets.token_hex(3)}"
        self.notes: list[str] = []
        self.written: list[Path] = []  # shards written by this build, for an ongoing assembly
        digest = plan.digest()
        if self.dir.exists() and force:
            shutil.rmtree(self.dir)
        if self.dir.exists():
            for tmp in self.dir.glob("*.tmp"):  # half-written by a killed build: never renamed
                tmp.unlink(missing_ok=True)
            if not self.shards():  # nothing was finished: nothing to lose, start afresh
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
            self._atomic_write(self.dir / "plan.json", lambda fh: fh.write(json.dumps(
                {"digest": digest, "options": plan.options.portable()}).encode()))
        self.done = {name: np.zeros(len(op.gamma), bool) for name, op in plan.ops.items()}
        for shard in self.shards():
            name = shard.name.split(".")[0]
            try:
                with np.load(shard) as z:
                    slots = np.asarray(z["slots"])
                    ok = (name in self.done and slots.ndim == 1 and slots.dtype.kind in "iu"
                          and (len(slots) == 0
                               or 0 <= slots.min() <= slots.max() < len(self.done[name]))
                          and _encoded_chunks(z, name, len(slots)) is not False)
            except Exception:  # noqa: BLE001 - any damage to a shard means: recompute its work
                ok = False
            if not ok:
                self.set_aside(shard)
                continue
            self.done[name][slots] = True
            try:
                self.seq = max(self.seq, int(shard.name.split(".")[1]) + 1)
            except (IndexError, ValueError):
                pass

    def shards(self) -> list[Path]:
        return sorted(self.dir.glob("*.npz"))

    def set_aside(self, shard: Path) -> None:
        """A damaged shard is renamed ``*.corrupt`` (kept for inspection) and its work redone."""
        os.replace(shard, shard.with_name(shard.name + ".corrupt"))
        self.notes.append(f"journal shard {shard.name} was damaged: set aside, its pairs are "
                          "computed again")

    def _atomic_write(self, path: Path, write) -> None:
        """``write(fh)`` fills ``path``'s content, written atomically by the project's one
        writer (:func:`datagen.fs.atomic_open`: a temporary ``.<name>.XXXX.tmp``, fsynced,
        renamed); a failure is a :class:`BuildError` saying that finished work is kept."""
        try:
            with atomic_open(path) as fh:
                write(fh)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise BuildError(f"disk full while writing {path}: free some space and run the "
                                 "same command with --resume; finished work is kept") from None
            raise BuildError(f"writing {path} failed ({exc.strerror or exc}); finished work is "
                             "kept: fix the cause and run the same command with --resume") from None

    def add(self, name: str, slots: np.ndarray, arrays: dict[str, tuple]) -> None:
        """Buffer one task's result (:func:`datagen.work.compute_task`'s dict of (chunks, ends),
        one chunk per slot)."""
        self.buffer.setdefault(name, []).append((slots, arrays))
        self.buffered += len(slots)
        if (self.buffered >= FLUSH_EVERY_PAIRS
                or time.monotonic() - self.last_flush >= FLUSH_EVERY_S):
            self.flush()

    def flush(self) -> None:
        for name, items in list(self.buffer.items()):
            slots = np.concatenate([s for s, _ in items])
            arrays = {"codec": np.array(CODEC)}
            for k in items[0][1]:
                chunks, ends, offset = [], [], 0
                for _, a in items:
                    chunks.append(a[k][0])
                    ends.append(a[k][1] + offset)
                    offset += len(a[k][0])
                arrays[SHARD_KEY[k] + "_chunks"] = np.concatenate(chunks)
                arrays[SHARD_KEY[k] + "_ends"] = np.concatenate(ends)
            path = self.dir / f"{name}.{self.seq:06d}.{self.writer}.npz"

            def write(fh, slots=slots, arrays=arrays):
                np.savez(fh, slots=slots, **arrays)

            self._atomic_write(path, write)
            self.written.append(path)
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


def check_output(out) -> Path:
    """Refuse, before anything is computed, an ``--out`` that cannot be written: a folder, a path
    under a file, a folder without write permission or on a read-only file system."""
    out = Path(out)
    if out.is_dir():
        raise BuildError(f"--out {out} is a folder; give a file name such as "
                         f"{out / 'decouple.h5'}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BuildError(f"cannot create the folder {out.parent} for --out: "
                         f"{exc.strerror or exc}") from None
    try:
        with tempfile.TemporaryFile(dir=out.parent):
            pass
    except OSError as exc:
        raise BuildError(f"cannot write in {out.parent} ({exc.strerror or exc}): choose an --out "
                         "in a folder you can write to") from None
    return out


def build(plan: Plan, out, *, workers: int = 0, scheduler: str | None = None, resume: bool = False,
          force: bool = False, progress: bool = True, command: str | None = None,
          pool: WorkerPool | None = None) -> BuildResult:
    """Compute every slot of ``plan`` and write the HDF5 file ``out``.

    One build per output at a time: the others are refused with a :class:`BuildError` that names
    the running one (:mod:`datagen.lock`). ``pool``: worker processes already started with
    :func:`start_pool` (its size replaces ``workers``); the build shuts it down in any case.
    """
    started = time.perf_counter()
    try:
        out = check_output(out)
        command = command or " ".join(sys.argv)
        if scheduler:
            _dask_client()  # before anything is written: a missing dask leaves no journal behind
        lock = OutputLock(out, command)
        try:
            lock.acquire()
        except LockedError as exc:
            raise BuildError(f"another build is writing {out}: {exc}; wait for it to finish or "
                             "stop it (two builds on one --out would corrupt it)") from None
        except OSError as exc:
            raise BuildError(f"cannot lock {lock.path} ({exc.strerror or exc}): choose an --out "
                             "in a folder you can write to") from None
    except BaseException:
        if pool is not None:
            pool.shutdown()
        raise
    try:
        return _build_locked(plan, out, workers=len(pool) if pool is not None else workers,
                             scheduler=scheduler, resume=resume, force=force, progress=progress,
                             command=command, started=started, pool=pool)
    finally:
        lock.release()


def worker_threads(workers: int, threads: int | None = None):
    """``(threads per local worker, the choice behind it)``: ``threads`` when given, else
    ``$OMP_NUM_THREADS``, else the cores other processes leave free (by the load average)
    shared by the ``workers`` (:func:`datagen.threads.choose`), at least one. Worker processes
    do not stall each other as threads do, so the number of workers is left as given."""
    from .threads import choose

    choice = choose(threads)
    return (choice.n if choice.source != "auto" else max(1, choice.n // workers)), choice


def build_dataset(out, options, *, workers: int | None = None, threads: int | None = None,
                  scheduler: str | None = None, resume: bool = False, force: bool = False,
                  progress: bool = True, command: str | None = None) -> BuildResult:
    """Build the dataset of ``options`` (:func:`datagen.plan.dataset_options`) into the HDF5
    file ``out``: ``python -m datagen build`` as one call, for programs (the benchmarks build
    their datasets with it) and for the command line itself.

    ``workers`` local processes (default: one per core; 1: in this process), each computing
    with ``threads`` threads (default: :func:`worker_threads`), or a Dask cluster at
    ``scheduler``. The worker processes start while this process reads the images and makes
    the plan. ``resume``, ``force`` and ``progress`` are the flags of the same names;
    ``command`` is the command line recorded in the file (default: this process's). Raises
    :class:`BuildError` (or ``ValueError`` for bad options) with a one-line message.
    """
    from .plan import make_plan
    from .threads import cpu_cores, limit

    workers = cpu_cores() if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):
        raise ValueError(f"--threads must be >= 1, got {threads}")
    out = check_output(out)  # before the images are read and the plan is made
    if scheduler:
        _dask_client()
    per = None if scheduler else worker_threads(workers, threads)[0]
    # one worker computes in this process: this process's pools get its threads while it builds
    restore = limit(per) if per is not None and workers == 1 else (lambda: None)
    try:
        pool = start_pool(workers, scheduler, threads=per)
        try:
            plan = make_plan(options)
        except BaseException:
            if pool is not None:
                pool.shutdown()
            raise
        return build(plan, out, workers=workers, scheduler=scheduler, resume=resume,
                     force=force, progress=progress, command=command, pool=pool)
    finally:
        restore()


def _stale_temporaries(out: Path) -> list[Path]:
    """``<out>.tmp<pid>`` files of assemblies that were killed (only called under the lock)."""
    return [p for p in out.parent.glob(glob.escape(out.name) + ".tmp*")
            if p.name[len(out.name) + 4:].isdigit()]


def _build_locked(plan: Plan, out: Path, *, workers, scheduler, resume, force, progress, command,
                  started, pool=None) -> BuildResult:
    try:
        for tmp in _stale_temporaries(out):
            tmp.unlink(missing_ok=True)
        if out.exists() and not force:
            if resume:
                raise BuildError(f"{out} is already complete; use --force to rebuild it")
            raise BuildError(f"{out} exists; use --force to overwrite it or choose another --out")
    except BaseException:
        if pool is not None:
            pool.shutdown()
        raise
    workers = workers or os.cpu_count() or 1
    # the executor first: a Dask scheduler that cannot be reached leaves no journal behind
    executor, close = make_executor(workers, scheduler, pool)
    label = f"dask {scheduler}" if scheduler else f"{workers} worker(s)"
    bar = assembly = None
    done = False
    try:
        journal = Journal(out, plan, resume=resume, force=force)
        resumed = int(sum(d.sum() for d in journal.done.values()))
        todo = [(name, crop, slots) for name, op in plan.ops.items() for crop, slots in op.tasks
                if not journal.done[name][slots].all()]
        total = sum(len(s) for _, _, s in todo)
        if progress:
            from .progress import Progress

            # a bar on a terminal; elsewhere (a log file) a line every 30 s: done, rate, time left
            bar = Progress(total, desc="build", noun="pair")
        try:
            if isinstance(executor, WorkerPool) and todo:  # assembled while the workers compute
                assembly = _Assembly(plan, journal, out, command=command)
            _run(plan, journal, executor, todo, workers, scheduler, bar, assembly)
        except KeyboardInterrupt:
            _flush_quietly(journal)
            raise BuildError(f"interrupted; finished work is kept in {journal.dir}: run the same "
                             "command with --resume to complete it") from None
        except BaseException:  # a failing task or pool: keep what is done, report the cause
            _flush_quietly(journal)
            raise
        done = True
    except BaseException:
        if assembly is not None:
            assembly.abort()
        raise
    finally:
        if bar is not None:
            bar.close()
        if done and isinstance(executor, WorkerPool):
            executor.shutdown(wait=False)  # every task is done: they exit while we assemble
        else:
            close()

    if assembly is None:
        _assemble(plan, journal, out, command=command)
    else:
        missing = {n: int((~d).sum()) for n, d in journal.done.items() if not d.all()}
        if missing:
            assembly.abort()
            raise BuildError(f"internal error: slots still missing {missing}")
        assembly.finish()
    shutil.rmtree(journal.dir, ignore_errors=True)
    pairs = {name: {s: int((op.split == code).sum()) for s, code in SPLITS.items()}
             for name, op in plan.ops.items()}
    return BuildResult(out, pairs, total, plan.skipped, time.perf_counter() - started,
                       out.stat().st_size, label, resumed, journal.notes)


def _inline_task(*args) -> dict[str, tuple]:
    """:func:`datagen.work.compute_task` in this process (``--workers 1``), through this
    module's ``run_task``."""
    return {k: encode_rows(v) for k, v in run_task(*args).items()}


def _submit(executor, plan: Plan, task) -> cf.Future:
    """One task: its pairs computed and encoded as stored chunks where the executor runs it."""
    name, crop, slots = task
    op = plan.ops[name]
    fn = _inline_task if isinstance(executor, InlineExecutor) else compute_task
    return executor.submit(fn, name, plan.pixels[crop], op.gamma[slots],
                           None if op.seeds is None else op.seeds[slots], op.size,
                           plan.options.overrides(name))


#: Rough seconds per pair of a 256x256 RGB crop on one core (results/operator_speed.csv), only to
#: hand the largest operators out first; a wrong figure costs balance, never correctness.
TASK_COST = {"l0": 0.04, "wls": 0.16, "rtv": 0.035, "rgf": 0.02, "wmf": 0.075, "llf": 0.005,
             "shock": 0.003, "llf_remap": 0.005, "wls_enhance": 0.08, "style": 0.02,
             "pencil": 0.05, "sr": 0.001, "denoise": 0.002, "jpeg": 0.001, "rain": 0.003}


def _collect(journal: Journal, bar, pending: dict, finished) -> None:
    """Journal every finished task, then raise the first failure (keeping all finished work)."""
    failed = None
    for fut in finished:
        name, slots = pending.pop(fut)[:2]
        if fut.exception() is not None:
            failed = failed or fut
            continue
        journal.add(name, slots, fut.result())
        if bar is not None:
            bar.update(len(slots))
    if failed is not None:
        failed.result()  # raises the task's exception


def _run_pool(plan, journal, pool: WorkerPool, todo, bar, assembly=None,
              per_worker: int = 2) -> None:
    """Hand the tasks to the worker processes with operator affinity.

    Each worker stays on one operator while it has tasks (so each process loads the compiled
    code of few operators: that loading, ~0.5-1 s per operator and process, is the largest
    serial part of a small build); a worker that needs work takes the unclaimed operator with the
    most estimated work left (largest first, :data:`TASK_COST`), and once every operator is
    claimed it joins the one with the most tasks left, so no worker idles while another has a
    queue. Each worker holds ``per_worker`` tasks so it never waits for the parent. What is
    computed, and so the file, does not depend on who computes it. Between results the parent
    writes the journal's new shards into ``assembly`` (:class:`_Assembly`), a few rows at a time,
    and flushes the journal when the assembly has caught up (at most every
    :data:`ASSEMBLY_FLUSH_S`).
    """
    from collections import deque

    queues: dict[str, deque] = {}
    for task in todo:
        queues.setdefault(task[0], deque()).append(task)
    size = plan.options.size

    def left(name: str) -> float:
        q = queues[name]
        n_pairs = sum(len(t[2]) for t in q) if len(q) < 64 else len(q) * len(q[0][2])
        return n_pairs * TASK_COST.get(name, 0.05) * (plan.ops[name].size / size) ** 2

    n = len(pool)
    current: list[str | None] = [None] * n
    loaded: list[set[str]] = [set() for _ in range(n)]  # operators each process has run
    inflight = [0] * n
    pending: dict[cf.Future, tuple[str, np.ndarray, int]] = {}

    def next_task(w: int):
        name = current[w]
        if name is None or not queues.get(name):
            open_ops = [k for k, q in queues.items() if q]
            if not open_ops:
                return None
            claimed = {current[v] for v in range(n) if v != w}
            free = [k for k in open_ops if k not in claimed]
            if free:
                name = max(free, key=left)
            else:  # all claimed: help where most is left; tasks from the end of its queue
                name = max(open_ops, key=lambda k: (k in loaded[w], len(queues[k])))
                if len(queues[name]) < 2 and name not in loaded[w]:
                    return None  # its owner is about to take the last one: not worth loading
            current[w] = name
            loaded[w].add(name)
        q = queues[name]
        claimed_by_other = any(current[v] == name for v in range(n) if v != w)
        return q.pop() if claimed_by_other and len(q) > 1 else q.popleft()

    def fill() -> None:
        for w in range(n):
            while inflight[w] < per_worker:
                task = next_task(w)
                if task is None:
                    break
                fut = _submit(pool.executors[w], plan, task)
                pending[fut] = (task[0], task[2], w)
                inflight[w] += 1

    fill()
    if assembly is not None:
        assembly.open()  # the source crops and the datasets, while the first tasks run
    more = False
    while pending:
        finished, _ = cf.wait(pending, timeout=0 if more else None,
                              return_when=cf.FIRST_COMPLETED)
        for fut in finished:
            inflight[pending[fut][2]] -= 1
        _collect(journal, bar, pending, finished)
        fill()
        if assembly is not None:
            if (not more and journal.buffered
                    and time.monotonic() - journal.last_flush >= ASSEMBLY_FLUSH_S):
                journal.flush()  # the assembly is idle: feed it (and journal sooner)
            more = assembly.step()
    journal.flush()


def _run(plan, journal, executor, todo, workers, scheduler, bar, assembly=None) -> None:
    if isinstance(executor, WorkerPool):
        return _run_pool(plan, journal, executor, todo, bar, assembly)
    pending: dict[cf.Future, tuple[str, np.ndarray]] = {}
    window = 2 * (workers if not scheduler else max(workers, 8)) + 2
    it = iter(todo)
    without = None  # since when a Dask scheduler has had no worker
    while True:
        while len(pending) < window:
            task = next(it, None)
            if task is None:
                break
            pending[_submit(executor, plan, task)] = (task[0], task[2])
        if not pending:
            break
        watch = isinstance(executor, DaskExecutor)
        finished, _ = cf.wait(pending, timeout=WORKER_POLL_S if watch else None,
                              return_when=cf.FIRST_COMPLETED)
        if watch:
            without = _watch_workers(executor, journal, without, bool(finished))
        _collect(journal, bar, pending, finished)  # keeps every finished task's work first
    journal.flush()


def _watch_workers(executor: DaskExecutor, journal: Journal, since: float | None,
                   progressed: bool) -> float | None:
    """When a Dask build has waited ``WORKER_POLL_S`` for a result, ask the scheduler for its
    workers: say at once on stderr when there are none, and stop the build (``BuildError``,
    finished work journaled, the ``--resume`` hint) after ``NO_WORKERS_S`` without any. Returns
    since when there have been none (None: there are workers)."""
    if progressed:
        return None
    if executor.workers() > 0:
        if since is not None:
            print("Dask workers are connected again: the build goes on", file=sys.stderr,
                  flush=True)
        return None
    now = time.monotonic()
    if since is None:
        print(f"warning: no Dask workers are connected to {executor.scheduler}: waiting for "
              f"some; the build stops after {NO_WORKERS_S:g} s without any", file=sys.stderr,
              flush=True)
        return now
    if now - since >= NO_WORKERS_S:
        raise BuildError(f"no Dask workers for {now - since:.0f} s at {executor.scheduler}: "
                         f"stopped; finished work is kept in {journal.dir}: start workers and "
                         "run the same command with --resume")
    return since


def _flush_quietly(journal: Journal) -> None:
    """Save finished work on the way out of a failed build, without masking the failure."""
    try:
        journal.flush()
    except (BuildError, OSError):
        pass


# ---------------------------------------------------------------------------------- assembly
#: HDF5's Fletcher-32 checksum on every dataset: ``verify`` (and every read) detects flipped bytes.
CHECKSUM = dict(fletcher32=True)
#: Object headers and indexes of HDF5 >= 1.10 carry checksums of their own (metadata damage is
#: detected too); readable by h5py >= 2.10.
LIBVER = ("v110", "latest")


def _free_bytes(folder: Path) -> int:
    return shutil.disk_usage(folder).free


def estimate_bytes(plan: Plan, journal: Journal) -> int:
    """About how large the HDF5 file will be: raw sizes times the compression ratio of a sample
    (4 source crops deflated at level 1, which compresses less than the stored level; the exact
    sizes of the chunks in the journal, one shard per operator; rows of older raw shards), plus a
    25 % margin and 1 MiB of metadata."""
    s = plan.options.size
    n_out = sum(len(op.gamma) for op in plan.ops.values())
    row_bytes = {n: int(np.prod(pair_shape(operators.get(n), op.size))) for n, op in plan.ops.items()}
    raw = s * s * 3 * len(plan.pixels) + sum(
        len(op.gamma) * len(store_keys(operators.get(n).kind)) * row_bytes[n]
        for n, op in plan.ops.items())
    sample = [plan.pixels[i] for i in np.unique(np.linspace(0, len(plan.pixels) - 1, 4).astype(int))]
    packed = unpacked = 0
    seen: set[str] = set()
    for shard in journal.shards():
        name = shard.name.split(".")[0]
        if name in seen or name not in row_bytes:
            continue
        seen.add(name)
        try:
            with np.load(shard) as z:
                for key in SHARD_KEY.values():
                    if key + "_ends" in z.files:
                        ends = z[key + "_ends"]
                        packed += int(ends[-1]) if len(ends) else 0
                        unpacked += len(ends) * row_bytes[name]
                    elif key in z.files:
                        sample += list(z[key][:4])
        except Exception:  # noqa: BLE001 - assembly reports damaged shards
            pass
    packed += sum(len(zlib.compress(np.ascontiguousarray(x).data, 1)) for x in sample)
    unpacked += sum(x.nbytes for x in sample)
    return int(raw * min(1.0, 1.25 * packed / max(1, unpacked))) + 32 * n_out + 2**20


class _GuardedFile:
    """The file HDF5 writes through (h5py's ``fileobj`` driver), with positioned unbuffered I/O.
    After the first failed write (disk full) it records the error and discards the rest, so HDF5
    closes cleanly instead of crashing the interpreter at exit, as it does when its own driver
    cannot flush."""

    def __init__(self, path: Path):
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        self.pos = 0
        self.error: OSError | None = None

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        if self.error is None:
            try:
                done = 0
                while done < len(view):
                    done += os.pwrite(self.fd, view[done:], self.pos + done)
            except OSError as exc:
                self.error = exc
        self.pos += len(view)
        return len(view)

    def readinto(self, buf) -> int:
        view = memoryview(buf).cast("B")
        data = b""
        try:
            data = os.pread(self.fd, len(view), self.pos)
        except OSError:
            pass
        view[:len(data)] = data
        view[len(data):] = bytes(len(view) - len(data))  # past the end (or discarded): zeros
        self.pos += len(view)
        return len(view)

    def read(self, n: int = -1) -> bytes:
        buf = bytearray(max(0, n))
        self.readinto(buf)
        return bytes(buf)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            self.pos = offset
        elif whence == os.SEEK_CUR:
            self.pos += offset
        else:
            self.pos = os.fstat(self.fd).st_size + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def truncate(self, size: int | None = None) -> int:
        size = self.pos if size is None else size
        if self.error is None:
            try:
                os.ftruncate(self.fd, size)
            except OSError as exc:
                self.error = exc
        return size

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self.fd is None:
            return
        if self.error is None:
            try:
                os.fsync(self.fd)
            except OSError as exc:
                self.error = exc
        os.close(self.fd)
        self.fd = None


def _disk_full(out: Path, journal: Journal, detail: str) -> BuildError:
    return BuildError(f"disk full while writing {out} ({detail}): free some space and run the "
                      f"same command with --resume (finished work is kept in {journal.dir})")


def _assemble(plan: Plan, journal: Journal, out: Path, *, command: str | None) -> None:
    """Write the HDF5 file from the shards on disk, into a temporary file renamed into place.

    The shards read are the truth: a slot that no shard fills stops the assembly (nothing is
    renamed into place) instead of leaving zeros in the file.
    """
    missing = {n: int((~d).sum()) for n, d in journal.done.items() if not d.all()}
    if missing:
        raise BuildError(f"internal error: slots still missing {missing}")
    _Assembly(plan, journal, out, command=command).finish()


class _Assembly:
    """The HDF5 file under construction in ``<out>.tmp<pid>``: created with every dataset (and
    the source crops) at once, then filled shard by shard from the journal on disk.

    The shards hold the pairs as the chunks HDF5 stores (compressed and checksummed by the
    workers, :mod:`datagen.work`), so filling the file copies bytes (``write_direct_chunk``):
    nothing is decompressed or compressed again here (but the rows of shards written by earlier
    versions, which are encoded on the way). A build with worker processes starts it before
    computing and feeds it the shards as the journal writes them (:meth:`step`, some rows at a
    time between collecting results); :meth:`finish` adds the shards not yet read, checks that
    every slot is filled, and renames the file into place. Any failure removes the temporary
    file (:meth:`abort`); the journal stays the truth, so ``--resume`` works as before.
    """

    ROWS_PER_STEP = 64

    def __init__(self, plan: Plan, journal: Journal, out: Path, *, command: str | None):
        need, free = estimate_bytes(plan, journal), _free_bytes(out.parent)
        if free < need:
            raise _disk_full(out, journal, f"it needs about {need / 2**20:.1f} MiB, "
                                           f"{free / 2**20:.1f} MiB are free")
        self.plan, self.journal, self.out, self.command = plan, journal, out, command
        self.queue: list[tuple[str, np.ndarray, dict]] = []  # (op, slots, {dataset: chunks})
        self.read: set[str] = set()
        self.f = self.sink = None
        self.tmp = out.with_name(out.name + f".tmp{os.getpid()}")

    def open(self) -> None:
        """Create the temporary file with every dataset and the source crops (once)."""
        if self.sink is not None:
            return
        plan, command, tmp = self.plan, self.command, self.tmp
        opts = plan.options
        s = opts.size
        img_chunk = dict(chunks=(1, s, s, 3), compression="gzip", compression_opts=GZIP_LEVEL,
                         shuffle=True, **CHECKSUM)
        self.sink = sink = _GuardedFile(tmp)
        try:
            f = self.f = h5py.File(sink, "w", libver=LIBVER)
            f.attrs.update({
                "format": FORMAT, "format_version": FORMAT_VERSION,
                "version": __version__, "code": code_version(),
                # printable UTF-8 (HDF5 refuses the surrogates of names that are not UTF-8)
                "command": display(command or " ".join(sys.argv)),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "seed": opts.seed, "size": s, "per_image": opts.per_image,
                "test_fraction": opts.test_fraction, "max_crops": opts.max_crops,
                "scales": list(opts.scales), "single": opts.single, "images": opts.images_label,
                "options": opts.portable_json(), "digest": plan.digest(),
                "skipped": json.dumps(plan.skipped),
            })
            g = f.create_group("images")
            # fixed-length UTF-8 (HDF5 filters, the checksum included, refuse variable length)
            names = [n.encode("utf-8") for n in opts.image_names()]
            width = max(1, max(len(n) for n in names))
            utf8 = h5py.string_dtype("utf-8", width)
            g.create_dataset("file", data=np.array(names, dtype=utf8), dtype=utf8, **CHECKSUM)
            g.create_dataset("split", data=plan.image_split, **CHECKSUM)
            g = f.create_group("sources")
            g.create_dataset("pixels", data=plan.pixels, **img_chunk)
            g.create_dataset("image", data=np.array([c.image for c in plan.crops], np.int32),
                             **CHECKSUM)
            g.create_dataset("box", data=np.array([[c.y, c.x, s, s] for c in plan.crops], np.int32),
                             **CHECKSUM)
            g.create_dataset("scale", data=np.array([c.scale for c in plan.crops], np.float32),
                             **CHECKSUM)
            g.create_dataset("split", data=plan.crop_split, **CHECKSUM)
            ops = f.create_group("ops")
            shapes = {}
            for name, op in plan.ops.items():
                spec = operators.get(name)
                shapes[name] = pair_shape(spec, op.size)
                g = ops.create_group(name)
                g.attrs.update(op_attributes(plan, name))
                for key in store_keys(spec.kind):
                    # the pipeline of datagen.work.encode_chunk, which writes the chunks
                    g.create_dataset(key, shape=(len(op.gamma), *shapes[name]), dtype=np.uint8,
                                     chunks=(1, *shapes[name]), compression="gzip",
                                     compression_opts=GZIP_LEVEL, shuffle=True, **CHECKSUM)
                for key, values in (("gamma", op.gamma), ("gamma_effective", op.gamma_effective),
                                    ("source", op.source), ("split", op.split),
                                    ("seed", op.seeds)):
                    if values is not None:
                        g.create_dataset(key, data=values, **CHECKSUM)
            self.ops, self.shapes = ops, shapes
            self.filled = {name: np.zeros(len(op.gamma), bool) for name, op in plan.ops.items()}
        except BaseException as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException):
        """Close and remove the temporary file; raise ``exc`` as the build reports it."""
        self.abort()
        if isinstance(exc, OSError):
            if exc.errno in (errno.ENOSPC, errno.EDQUOT) or "No space" in str(exc):
                raise _disk_full(self.out, self.journal, "no space left on the device") from None
            raise BuildError(f"writing {self.out} failed ({exc.strerror or exc}); finished work is "
                             f"kept in {self.journal.dir}: run the same command with --resume"
                             ) from None
        raise exc

    def abort(self) -> None:
        try:
            if self.f is not None:
                self.f.close()
        except Exception:  # noqa: BLE001 - already failing: the file is removed anyway
            pass
        self.f = None
        if self.sink is not None:
            self.sink.close()
            self.tmp.unlink(missing_ok=True)

    def _read(self, shard: Path) -> None:
        """Queue the rows of one shard (a damaged one is set aside, its slots stay empty)."""
        self.read.add(shard.name)
        name = shard.name.split(".")[0]
        slots, chunks = _read_shard(shard, name, self.filled, self.shapes.get(name))
        if slots is None:
            self.journal.set_aside(shard)
            return
        self.queue.append((name, slots, chunks))

    def _write(self, limit: int | None) -> None:
        """Store queued rows, at most ``limit`` (all for None), chunk by chunk as they are."""
        while self.queue and (limit is None or limit > 0) and self.sink.error is None:
            name, slots, chunks = self.queue[0]
            n = len(slots) if limit is None else min(len(slots), limit)
            zeros = (0,) * len(self.shapes[name])
            for key, rows in chunks.items():
                dsid = self.ops[name][key].id
                for slot, chunk in zip(slots[:n].tolist(), rows[:n]):
                    dsid.write_direct_chunk((slot, *zeros), chunk)
            self.filled[name][slots[:n]] = True
            if n == len(slots):
                self.queue.pop(0)
            else:
                self.queue[0] = (name, slots[n:], {k: v[n:] for k, v in chunks.items()})
            if limit is not None:
                limit -= n

    def step(self) -> bool:
        """Some of the work: read the journal's new shards, write up to ``ROWS_PER_STEP`` rows.
        Returns whether work is left for later steps."""
        try:
            self.open()
            for shard in self.journal.written:
                if shard.name not in self.read and shard.exists():
                    self._read(shard)
            self.journal.written.clear()
            self._write(self.ROWS_PER_STEP)
        except BaseException as exc:
            self._fail(exc)
        return bool(self.queue) and self.sink.error is None

    def finish(self) -> None:
        """Read the shards not read yet, write everything, check and rename into place."""
        self.open()
        out, sink = self.out, self.sink
        try:
            for shard in self.journal.shards():
                if shard.name not in self.read:
                    self._read(shard)
            self._write(None)
            lost = {n: int((~d).sum()) for n, d in self.filled.items() if not d.all()}
            self.f.attrs[ATTRIBUTES_DIGEST] = attributes_digest(self.f)
            self.f.close()
            self.f = None
            sink.close()
            if sink.error is not None:
                raise sink.error
            if lost:
                raise BuildError(f"the journal in {self.journal.dir} lacks {sum(lost.values())} "
                                 f"pairs ({', '.join(f'{n}: {k}' for n, k in lost.items())}); "
                                 f"{out} was not written: run the same command with --resume to "
                                 "compute them")
            os.replace(self.tmp, out)
            fsync_folder(out.parent)
        except BaseException as exc:
            self._fail(exc)


def _read_shard(shard: Path, name: str, filled: dict, shape: tuple | None):
    """(slots, {dataset: [stored chunk of each slot]}) of a shard that is intact and fits the
    plan, else (None, None).

    Chunks of the present form (:data:`SHARD_KEY`) are checked against their own Fletcher-32
    checksums (a shard cut or misaligned anywhere fails); raw rows of older shards are checked
    for their shape and encoded here.
    """
    if name not in filled:
        return None, None
    keys = store_keys(operators.get(name).kind)
    try:
        with np.load(shard) as z:
            slots = np.asarray(z["slots"])
            chunks = _encoded_chunks(z, name, len(slots))
            if chunks is False:
                return None, None
            if chunks is None:  # a shard of an earlier version: raw rows
                rows = {k: np.asarray(z[SHARD_KEY[k]]) for k in keys}
                if not all(a.dtype == np.uint8 and a.shape == (len(slots), *shape)
                           for a in rows.values()):
                    return None, None
                chunks = {k: [encode_chunk(r) for r in a] for k, a in rows.items()}
    except Exception:  # noqa: BLE001 - a damaged shard, whatever numpy or zipfile says
        return None, None
    m = len(filled[name])
    ok = (slots.ndim == 1 and slots.dtype.kind in "iu"
          and (len(slots) == 0 or (0 <= slots.min() and slots.max() < m)))
    return (slots.astype(np.int64), chunks) if ok else (None, None)


def _encoded_chunks(z, name: str, n: int):
    """{dataset: [n stored chunks]} of an open encoded shard ``z``; False if its chunks do not
    hold together (another codec, bad offsets, a checksum that does not match); None for a shard
    of raw rows (earlier versions)."""
    if "codec" not in z.files:
        return None
    if str(z["codec"]) != CODEC:
        return False
    chunks = {}
    for k in store_keys(operators.get(name).kind):
        chunks[k] = _split_chunks(np.asarray(z[SHARD_KEY[k] + "_chunks"]),
                                  np.asarray(z[SHARD_KEY[k] + "_ends"]), n)
        if chunks[k] is None:
            return False
    return chunks


def _split_chunks(data: np.ndarray, ends: np.ndarray, n: int) -> list[bytes] | None:
    """The ``n`` chunks of a shard's concatenation, or None if they do not hold together (bad
    offsets or a checksum that does not match)."""
    if (data.dtype != np.uint8 or data.ndim != 1 or ends.ndim != 1 or ends.dtype.kind not in "iu"
            or len(ends) != n or (n and (int(ends[-1]) != len(data) or ends[0] < 5
                                         or (np.diff(ends) < 5).any()))):
        return None
    out = []
    start = 0
    raw = data.tobytes()
    for end in ends.tolist():
        chunk = raw[start:end]
        if fletcher32(chunk[:-4]) != int.from_bytes(chunk[-4:], "little"):
            return None
        out.append(chunk)
        start = end
    return out


CHANNEL_TEXT = {"y": "MATLAB's Y of YCbCr", "gray": "MATLAB's rgb2gray"}


def op_attributes(plan: Plan, name: str) -> dict:
    """The attributes of ``/ops/<name>``: what the operator is and how its pairs were made, so
    that the file explains itself (and ``verify`` can remake any pair)."""
    spec, op, opts = operators.get(name), plan.ops[name], plan.options
    filt = spec.kind == "filter"
    region = (f"the whole {opts.size}x{opts.size} source crop" if op.size == opts.size else
              f"the top-left {op.size}x{op.size} block of each {opts.size}x{opts.size} source "
              "crop (sr's modcrop for every scale: all scales share one size)")
    single = spec.kind == "degradation" and spec.channels in ("y", "gray")
    return {
        "operator": name, "title": spec.title, "paper": spec.paper,
        "kind": spec.kind, "channels": spec.channels,
        "gamma_name": spec.gamma_name, "gamma_meaning": spec.gamma_meaning,
        "law": str(spec.law), "law_description": spec.law.describe(),
        "gamma_range": [float(v) for v in spec.gamma_range],
        "test_gammas": list(spec.test_gammas),
        "fixed": json.dumps(opts.fixed_record(name), sort_keys=True),
        "effective_note": (spec.effective_note or "gamma_effective == gamma") if spec.has_gamma
        else "no γ (fixed effect): gamma and gamma_effective are NaN, one pair per crop",
        "pair_input": "/sources/pixels[source]" if filt else "input",
        "pair_target": "output" if filt else "target",
        "pair_size": int(op.size),
        "pair_region": region,
        "pair_layout": ("RGB uint8, (M,S,S,3)" if not single else
                        f"single channel uint8 ({CHANNEL_TEXT[spec.channels]}), (M,S,S); "
                        "datagen.dataset.PairDataset replicates it to 3 channels"),
        "pair_rule": (f"operators.pair({name!r}, crop, gamma"
                      + (", seed=seed[k]" if spec.random else "")
                      + ", **fixed) rounded to uint8 (MATLAB rounding); gamma None where NaN"),
        "seed": int(opts.seed),
        "seeds": ("per pair in /ops/{0}/seed, drawn from the build seed: the same whatever the "
                  "workers".format(name)) if spec.random else "deterministic: no seed",
    }


