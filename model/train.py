"""Training the decouple network or the single-γ baseline on a datagen file."""
from __future__ import annotations

import csv
import json
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

import operators
from datagen import code_version
from datagen.dataset import PairDataset
from datagen.fs import atomic_write_text
from datagen.lock import FileLock, LockedError
from datagen.store import open_file

from . import device as devices
from . import registry
from .checkpoint import load, save
from .config import RUNTIME_KEYS, ModelConfig  # noqa: F401  (RUNTIME_KEYS: re-exported)
from .data import prepare
from .metrics import psnr
from .presets import Preset, get_preset
from .registry import build_model
from .train_config import TrainConfig


class RunLockedError(RuntimeError):
    """Another process is training in the same run folder."""


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite: the run stops, its last checkpoint (all of
    whose weights are finite) is kept as it was."""


class TrainingStopped(KeyboardInterrupt):
    """The training was asked to stop (SIGINT: Ctrl-C, or SIGTERM: ``kill``, ``prepare``
    ending its trainings) and stopped after the step in progress, with a checkpoint of that
    iteration: ``--resume`` goes on from it (before, up to ``ckpt_every`` iterations were lost:
    1000, about 5 minutes at the medium scale). ``signum``: the signal received. A
    ``KeyboardInterrupt``, so that a caller that trains in its own process (``benchmarks run``,
    pytest) is interrupted as before."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


class _StopRequests:
    """``with _StopRequests() as stop:`` -- SIGINT and SIGTERM set ``stop.signum`` instead of
    interrupting, so the training loop can finish its step and checkpoint (``stop.signum`` is
    read after each step); a second signal acts as it would have without this (the handlers
    in force before are put back at the first). Only in the main thread of a one-process run:
    elsewhere (a thread, torchrun's ranks, which must stop at the same iteration) nothing
    changes."""

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self, active: bool = True):
        self.active = active and threading.current_thread() is threading.main_thread()
        self.signum: int | None = None
        self.previous: dict = {}

    def _handler(self, signum, frame):
        self.signum = signum
        self._restore()

    def _restore(self):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}

    def __enter__(self):
        if self.active:
            for name in self.SIGNALS:
                sig = getattr(signal, name, None)
                if sig is not None:
                    self.previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        self._restore()


class RunLock:
    """The run folder's lock for as long as a training runs: ``<run>/.lock`` through
    :class:`datagen.lock.FileLock`, the project's one lock (an exclusive ``flock``; the file
    names the holder, so a second training can say who it is; a symbolic link or anything but a
    regular file at the path is refused, never followed: ``LockPathError``, a ``ValueError``)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.lock: FileLock | None = None

    def __enter__(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.folder / ".lock")
        try:
            lock.acquire()
        except LockedError as exc:
            raise RunLockedError(f"{self.folder} is being trained by {exc}; wait for it "
                                 "to finish, or use another --out") from None
        self.lock = lock
        return self

    def __exit__(self, *exc):
        if self.lock is not None:
            self.lock.release()  # removes the file and releases the lock
            self.lock = None


#: what a run folder holds: :func:`train`'s files, and ``train.out``, the output of a training
#: that ``benchmarks.prepare`` started (it creates the folder and that file first)
RUN_ENTRIES = ("last.pt", "log.csv", "config.json", "tb", ".lock", "train.out")


def _ours(path: Path, name: str) -> bool:
    """Whether ``path`` (a ``config.json`` or ``log.csv``) is a regular file model train wrote:
    a JSON object with ``arch`` and ``ops``, a CSV whose header starts with ``iteration,``."""
    if path.is_symlink() or not path.is_file():
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 20)
        if name == "log.csv":
            return head.startswith(b"iteration,")
        d = json.loads(head)
    except (OSError, ValueError):
        return False
    return isinstance(d, dict) and "arch" in d and "ops" in d


def _empty_log_of_a_run(out: Path) -> bool:
    """Whether ``out`` holds an empty regular ``log.csv`` beside a ``config.json`` of ours: what
    a run killed in its first moments leaves (the log is created before its header is written)."""
    log = out / "log.csv"
    return (not log.is_symlink() and log.is_file() and log.stat().st_size == 0
            and _ours(out / "config.json", "config.json"))


def check_run_folder(out) -> None:
    """Refuse (ValueError) an ``--out`` whose files a training would overwrite and that is not a
    run folder: a file; a folder with a ``config.json`` or ``log.csv`` that model train did not
    write; a non-empty folder without a checkpoint or config of a training. A new or empty
    folder, a run folder (with or without its checkpoint or its log's header: one interrupted
    before its first checkpoint is started again), and one holding only :data:`RUN_ENTRIES` are
    fine."""
    out = Path(out)
    if not os.path.lexists(out):
        return
    if not out.is_dir():
        raise ValueError(f"the run folder {out} is a file, not a folder: use another --out")
    if (out / "last.pt").exists():
        return  # a run: resumed, or refused without --resume
    for name in ("config.json", "log.csv"):
        if name == "log.csv" and _empty_log_of_a_run(out):
            continue  # a run killed before it wrote its log's header: started again
        if os.path.lexists(out / name) and not _ours(out / name, name):
            raise ValueError(f"{out} holds a {name} that model train did not write (a training "
                             "would overwrite it): use a new or empty folder as --out")
    tmp = tuple(f".{n}." for n in ("last.pt", "config.json", "log.csv"))
    others = sorted(e for e in os.listdir(out) if e not in RUN_ENTRIES
                    and not (e.startswith(tmp) and e.endswith(".tmp")))
    if others and not (out / "config.json").is_file():
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise ValueError(f"{out} is not empty ({shown}) and is not a run folder (no last.pt or "
                         "config.json of a training): use a new or empty folder as --out")


def truncate_log(path: Path, iteration: int) -> int:
    """Keep only the rows of ``log.csv`` up to ``iteration`` (those logged after the checkpoint
    a run resumes from are logged again); returns how many rows were dropped."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return 0
    keep = [rows[0]] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= iteration]
    if len(keep) != len(rows):
        import io

        buf = io.StringIO()
        csv.writer(buf).writerows(keep)
        atomic_write_text(path, buf.getvalue())
    return len(rows) - len(keep)


def config_differences(recorded: dict, new: dict) -> list[str]:
    """What a resumed run would change in the recorded configuration (runtime keys aside; see
    :meth:`model.config.ModelConfig.differences`)."""
    return ModelConfig.from_dict(recorded).differences(ModelConfig.from_dict(new))


def summary_writer(out: Path):
    """A TensorBoard ``SummaryWriter`` into ``<out>/tb`` when ``tensorboard`` is installed, else
    None (TensorBoard logging is optional)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(out / "tb"))


class _Validation:
    """PSNR on a few (at most ``n``) test pairs, for TensorBoard."""

    def __init__(self, data, ops, gamma, coder, device, n: int = 4):
        try:
            ds = PairDataset(data, list(ops), "test", gamma=gamma)
        except (ValueError, KeyError):
            ds = None
        self.items = [] if ds is None or len(ds) == 0 else \
            [ds[int(i)] for i in np.unique(np.linspace(0, len(ds) - 1, min(n, len(ds))).round())]
        self.coder, self.device = coder, device

    def __call__(self, net) -> float | None:
        if not self.items:
            return None
        from .predict import to_uint8

        was = net.training
        net.eval()
        scores = []
        with torch.no_grad():
            for d in self.items:
                x = d["input"][None]
                h, w = x.shape[2:]
                xi = prepare(x).to(self.device)
                xi = torch.nn.functional.pad(xi, (0, w % 2, 0, h % 2), mode="replicate")
                code = self.coder([d["op"]], [d["gamma"]]).to(self.device) if net.needs_code else None
                y = to_uint8(net(xi, code)[:, :, :h, :w])[0].permute(1, 2, 0).cpu().numpy()
                scores.append(psnr(y, d["target"].permute(1, 2, 0).numpy()))
        net.train(was)
        return float(np.mean(scores))


class EpochBatches(Sampler):
    """Batches of (index, augmentation seed): epoch e is a permutation drawn from (seed, e).

    Starting at any iteration gives exactly the batches an uninterrupted run would have seen.
    With ``world`` > 1 processes (``torchrun``), process ``rank`` gets its contiguous share of
    ``batch / world`` items of each global batch, with the seeds they have in the global batch:
    the processes together see exactly the batches one process would. ``sides`` (n × 2: each
    sample's height and width) adds to every key the smallest even sides of its global batch,
    ``(index, seed, h, w)``, to which :func:`crop_to_smallest` crops (the same crop in every
    share).
    """

    def __init__(self, n: int, batch: int, seed: int, start: int, stop: int, *, rank: int = 0,
                 world: int = 1, sides=None):
        if n < batch:
            raise ValueError(f"only {n} training pairs for a batch of {batch}")
        if world < 1 or not 0 <= rank < world or batch % world:
            raise ValueError(f"a batch of {batch} cannot be shared equally by {world} processes "
                             f"(rank {rank})")
        self.n, self.batch, self.seed, self.start, self.stop = n, batch, seed, start, stop
        self.rank, self.world = rank, world
        self.per_epoch = n // batch
        self.sides = None if sides is None else np.asarray(sides, dtype=np.int64).reshape(n, 2)

    def __len__(self) -> int:
        return self.stop - self.start

    def __iter__(self):
        share = self.batch // self.world
        lo = self.rank * share
        for it in range(self.start, self.stop):
            epoch, b = divmod(it, self.per_epoch)
            perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            idx = perm[b * self.batch:(b + 1) * self.batch]
            keys = [(int(i), int(self.seed * 1_000_003 + epoch * 65_537 + b * self.batch + j))
                    for j, i in enumerate(idx)]
            if self.sides is not None:  # the global batch's smallest sides, for every share
                h, w = (int(v) for v in self.sides[idx].min(axis=0))
                keys = [(i, s, h - h % 2, w - w % 2) for i, s in keys]
            yield keys[lo:lo + share]


def _collate(items):
    return {"input": torch.stack([d["input"] for d in items]),
            "target": torch.stack([d["target"] for d in items]),
            "gamma": [d["gamma"] for d in items], "op": [d["op"] for d in items]}


class _WithSeed(torch.utils.data.Dataset):
    """A dataset's items with the augmentation seed they were drawn with (``"seed"``), for
    :func:`_collate_smallest`."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        if isinstance(key, tuple) and len(key) == 4:  # (index, seed, h, w): see EpochBatches
            item = self.dataset[key[:2]]
            item["crop_to"] = (int(key[2]), int(key[3]))
        else:
            item = self.dataset[key]
        item["seed"] = int(key[1]) if isinstance(key, tuple) else None
        return item


def sample_sides(ds) -> np.ndarray:
    """(n, 2): each sample's stored height and width (a :class:`PairDataset` of square pairs,
    one side per operator), without reading any pixels."""
    side = np.array([ds.sizes[name] for name in ds.ops], dtype=np.int64)
    s = side[ds.index[:, 0]] if len(ds.index) else np.zeros(0, np.int64)
    return np.stack([s, s], axis=1)


def crop_to_smallest(items: list[dict]) -> list[dict]:
    """The authors' variable-size batches (their ``var_custom_collate``; docs/paper.md): every
    sample of a batch cropped to the smallest height and the smallest width in the batch (made
    even, as the stride-2 round trip of the network needs), at a random place per sample drawn
    from its augmentation seed (``item["seed"]``; reproducible, whatever the process or worker),
    the same window for input and target. Samples of that size are left whole. Items with a
    ``crop_to`` (h, w) (a share of a batch split between processes, :class:`EpochBatches`) are
    cropped to the global batch's smallest sides it gives."""
    h = min(d["input"].shape[1] for d in items)
    w = min(d["input"].shape[2] for d in items)
    h, w = h - h % 2, w - w % 2
    given = {d["crop_to"] for d in items if d.get("crop_to") is not None}
    if len(given) > 1:
        raise ValueError(f"items of one batch name different crops: {sorted(given)}")
    if given:
        gh, gw = given.pop()
        if gh > h or gw > w:
            raise ValueError(f"crop {gh}x{gw} is larger than the smallest sample ({h}x{w})")
        h, w = gh, gw
    if h < 2 or w < 2:
        raise ValueError(f"a batch holds an image smaller than 2x2 ({h}x{w} after cropping to "
                         "even sides): nothing to train on")
    out = []
    for d in items:
        H, W = d["input"].shape[1:]
        if (H, W) != (h, w):
            rng = np.random.default_rng([d.get("seed") or 0, 7])
            top, left = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
            d = {**d, "input": d["input"][:, top:top + h, left:left + w],
                 "target": d["target"][:, top:top + h, left:left + w]}
        out.append(d)
    return out


def _collate_smallest(items):
    return _collate(crop_to_smallest(items))


def lr_at(preset: Preset, it: int, arch: str = "decouple", start: int = 0,
          stop: int | None = None) -> float:
    """The learning rate at iteration ``it`` of a stage running from ``start`` to ``stop``
    (default: the whole run): ``preset.lr``, then ``lr_final`` after ``lr_drop`` of the stage,
    or the steps of ``preset.lr_steps`` (:meth:`model.presets.Preset.lr_schedule`; a joint
    model's preset has the authors' joint schedule there, :meth:`Preset.for_ops`)."""
    if arch == "hdrnet":  # HDRNet trains at a constant rate (see Preset.hdrnet_lr)
        return preset.hdrnet_lr
    stop = preset.iterations if stop is None else stop
    lr = preset.lr
    for first, rate in preset.lr_schedule(stop - start):
        if it >= start + first:
            lr = rate
    return lr


class Stage:
    """Iterations [start, stop) trained on ``dataset`` (stage ``index`` of the schedule)."""

    def __init__(self, index: int, start: int, stop: int, dataset, gamma=None):
        self.index, self.start, self.stop, self.dataset, self.gamma = index, start, stop, dataset, gamma

    def drops(self, preset: Preset) -> dict[int, float]:
        """Iteration → learning rate of every change inside the stage (a new Adam there)."""
        return {self.start + first: lr for first, lr in preset.lr_schedule(self.stop - self.start)
                if first > 0}


def _stage_parameters(net, stage: int):
    return net.stage_parameters(stage) if hasattr(net, "stage_parameters") else list(net.parameters())


def schedule(data, ops, arch: registry.Arch, preset: Preset, gamma) -> list[Stage]:
    """The stages of a run (see :mod:`model.registry`): the ``train`` split at every γ, the
    ``single`` split at ``gamma``, or the ``single`` split at the two ends of the range."""
    if arch.schedule == "ends":
        spec = operators.get(ops[0])
        lo, hi = spec.gamma_range
        stages = []
        half = preset.iterations // 2
        for k, (g, a, b) in enumerate(((lo, 0, half), (hi, half, preset.iterations))):
            ds = PairDataset(data, ops, "single", crop=_crop(preset), flip=True, gamma=g)
            if len(ds) == 0:
                raise ValueError(f"--arch {arch.name} trains at the ends of {spec.name}'s range "
                                 f"({spec.gamma_name}={lo:g} and {hi:g}): {data} has no 'single' "
                                 f"pairs at {g:g}; build it with --single")
            _enough(ds, preset, f"the 'single' split at {spec.gamma_name}={g:g}")
            stages.append(Stage(k, a, b, ds, g))
        return stages
    split = "single" if arch.per_gamma and operators.get(ops[0]).has_gamma else "train"
    ds = PairDataset(data, ops, split, crop=_crop(preset), flip=True, gamma=gamma)
    if len(ds) == 0:
        msg = f"{data} has no '{split}' pairs for {list(ops)}"
        if split == "single":
            present = sorted(set(np.round(PairDataset(data, ops, "single").gamma_values(ops[0]), 12)))
            msg += (f" at γ={gamma:g}; its 'single' split holds the paper's test γ "
                    f"{', '.join(f'{g:g}' for g in present)}: train at one of them"
                    if present else "; build the dataset with `datagen build --single`")
        raise ValueError(msg)
    _enough(ds, preset, f"the '{split}' split" + (f" at γ={gamma:g}" if gamma is not None else ""))
    return [Stage(0, 0, preset.iterations, ds, gamma)]


def _crop(preset: Preset) -> int | None:
    """The dataset's per-sample crop: the preset's, or None (whole samples) when batches are
    cropped to their smallest sample (``preset.batch_crop``, the paper preset)."""
    return None if preset.batch_crop else preset.crop


def _enough(ds, preset: Preset, what: str) -> None:
    if len(ds) < preset.batch:
        raise ValueError(f"only {len(ds)} training pairs in {what} for a batch of "
                         f"{preset.batch}: use a smaller --batch or a larger dataset")


def train(config: TrainConfig, data, out=None, *, resume: bool = False,
          device: str | None = None, mode: str = "grouped", progress: bool = True,
          stop_at: int | None = None, amp: str | None = None, **settings) -> dict:
    """Train what ``config`` (a :class:`model.train_config.TrainConfig`) describes on the
    datagen file ``data`` and return the final checkpoint state; writes ``out``/last.pt,
    ``out``/log.csv and ``out``/config.json (the run's full configuration, readable: every
    field of ``config`` and what the data adds), and TensorBoard scalars into ``out``/tb when
    ``tensorboard`` is installed.

    The config's ``arch`` is a name of :mod:`model.registry`; its schedule says what the run
    trains on: every γ of the ``train`` split (``decouple``, ``concat``, the Table 12 family,
    ``realtime``, ``cresmd``), the ``single`` split at one ``gamma`` (``single``, ``hdrnet``,
    the latter at a constant learning rate, ``preset.hdrnet_lr``), or the ``single`` split at
    the two ends of the range, half the iterations each (``adafm``, ``dni``).
    ``TrainConfig.from_preset("smoke", ops=...)`` trains the network ``python -m model train
    --preset smoke`` trains. The keywords say how the run executes, not what it trains:
    ``stop_at`` ends the run early at that iteration (with a checkpoint), to continue later with
    ``resume=True`` exactly as if it had not stopped (the schedule is always the preset's);
    ``mode`` is how a batch of per-sample weights runs (the same results); ``amp``
    (``"auto"``, ``"bf16"``, ``"fp16"``; CUDA only) runs the forward pass under
    ``torch.autocast`` (float16 with a gradient scaler). ``preset.workers`` DataLoader worker
    processes read the batches (the same batches whatever their number).

    The earlier form ``train(data, ops, out, preset=..., arch=..., gamma=..., seed=...,
    norm=..., op_code=..., init=..., residual=..., loss_norm=...)`` still works: its settings
    make the :class:`TrainConfig` (``preset`` as given, no flag semantics).

    Started by ``torchrun --nproc_per_node N`` (``WORLD_SIZE`` > 1), the N processes train one
    model together (``torch.distributed``, ``DistributedDataParallel``; gloo on the CPU, NCCL
    on CUDA, one GPU per process): each reads its ``batch / N`` items of every global batch from
    the data file, the gradients are averaged (the mean over the global batch, as one process
    computes it), and only rank 0 takes the lock and writes the checkpoint, log, config and
    TensorBoard scalars. The result equals one process's up to float rounding.

    ``resume=True`` continues the run with its recorded configuration: any difference in what is
    trained (preset, width, iterations, ...) is refused with the list of differences; how it runs
    (``mode``, the data file's path with the same digest, the code version, the workers, the
    number of processes) may differ and each resume is listed in the config's ``resumes``.
    ``log.csv`` is cut back to the checkpoint's iteration. A model of several operators logs
    each operator's training loss (``loss_<op>``: the mean MSE of its samples since the previous
    row, empty when none was drawn; TensorBoard ``train/loss_<op>``) and trains with the
    preset's joint schedule (:meth:`Preset.for_ops`). ``loss_norm="identity"`` divides each
    sample's MSE by its operator's identity MSE (:func:`identity_weights`, recorded as the
    config's ``loss_weights``). One training per run folder at a time
    (an exclusive lock on ``out``/.lock).
    """
    if not isinstance(config, TrainConfig):  # the earlier form: train(data, ops, out, ...)
        config, data = TrainConfig(ops=data, **settings), config
    elif settings:
        raise TypeError(f"train(config, data, out) takes no {', '.join(sorted(settings))}: "
                        "they are fields of the TrainConfig")
    if out is None:
        raise TypeError("train() needs the run folder: train(config, data, out)")
    out = Path(out)
    if stop_at is not None and (isinstance(stop_at, bool) or not isinstance(stop_at, int)
                                or stop_at < 1):
        raise ValueError(f"stop_at must be a positive integer, got {stop_at!r}")
    run = _Run.start(device, amp, config.preset.batch)
    check_run_folder(out)  # before the lock file is put into it
    with open_file(data) as f:
        data_digest = str(f.attrs["digest"])
    config = _fit_crop(config, data)
    stages = schedule(data, config.ops, config.entry, config.preset, config.gamma)
    recorded = config.model_config(
        trained_range=_trained_range(config, stages), mode=mode, data=str(data),
        data_digest=data_digest, code=code_version(),
        loss_weights=identity_weights(data, config.ops) if config.loss_norm == "identity"
        else {}).to_dict()
    created = run.start_group()
    try:
        with run.lock(out):
            session = _Session(config, data, out, recorded, run)
            session.resume(resume, mode)
            return session.train(stages, stop_at, progress)
    finally:
        if created:
            import torch.distributed as dist

            dist.destroy_process_group()


def _fit_crop(config: TrainConfig, data) -> TrainConfig:
    """A crop larger than an operator's stored pairs (SR's are cut to a multiple of 12, so
    smaller than the others') capped at the smallest stored size, even (and so recorded);
    unchanged when batches are cropped to their smallest sample (``preset.batch_crop``)."""
    if config.preset.batch_crop:
        return config
    smallest = PairDataset(data, config.ops, "train").size // 2 * 2
    if 2 <= smallest < config.preset.crop:
        return config.with_preset(crop=smallest)
    return config


def _trained_range(config: TrainConfig, stages: list[Stage]) -> dict:
    """Operator → the [low, high] γ a run draws (the two ends for an ``ends`` schedule; ``[]``
    for a fixed-effect operator, which has no γ range: not NaN, which JSON cannot hold)."""
    ops = config.ops
    if config.entry.schedule == "ends":
        return {ops[0]: [float(stages[0].gamma), float(stages[1].gamma)]}
    gammas = {o: stages[0].dataset.gamma_values(o) for o in ops}
    return {o: [float(g.min()), float(g.max())] if operators.get(o).has_gamma else []
            for o, g in gammas.items()}


class _Run:
    """How a training runs: this process's rank among ``world`` (1: alone), its device and the
    autocast dtype (None: float32)."""

    def __init__(self, rank: int, world: int, device: str, amp: str | None):
        self.rank, self.world, self.device, self.amp = rank, world, device, amp
        self.main = rank == 0

    @classmethod
    def start(cls, device: str | None, amp: str | None, batch: int) -> "_Run":
        """This process's place in the run (``torchrun``'s variables, or alone), its device
        (``device``, or this rank's GPU) and autocast dtype; a ``batch`` the processes cannot
        share equally is refused."""
        ranks = devices.distributed_env()
        if ranks is None:
            rank, world = 0, 1
            device = devices.resolve(device)
        else:
            rank, world, local_rank = ranks
            device = devices.for_rank(device, local_rank)
            if batch % world:
                raise ValueError(f"a global batch of {batch} cannot be shared by the {world} "
                                 f"processes of this run (WORLD_SIZE={world}): each process "
                                 f"trains batch/{world} samples of every batch; use a --batch "
                                 f"that is a multiple of {world}, or another torchrun "
                                 "--nproc_per_node")
        return cls(rank, world, device, devices.check_amp(amp, device))

    def start_group(self) -> bool:
        """Join the process group of a multi-process run (env:// from torchrun's variables);
        True when this call created it (and the training destroys it at its end)."""
        if self.world == 1:
            return False
        import datetime

        import torch.distributed as dist

        if self.device.startswith("cuda"):
            torch.cuda.set_device(self.device)
        if dist.is_initialized():
            if dist.get_world_size() != self.world or dist.get_rank() != self.rank:
                raise ValueError(f"the process group has {dist.get_world_size()} processes "
                                 f"(this is rank {dist.get_rank()}) but WORLD_SIZE={self.world},"
                                 f" RANK={self.rank}")
            return False
        dist.init_process_group("nccl" if self.device.startswith("cuda") else "gloo",
                                timeout=datetime.timedelta(minutes=30))
        return True

    @contextmanager
    def lock(self, out: Path):
        """The run folder's lock, taken by rank 0 alone; every rank fails when it is held."""
        if self.world == 1:
            with RunLock(out):
                yield
            return
        import torch.distributed as dist

        held, failure, error = None, None, None
        if self.main:
            try:
                held = RunLock(out).__enter__()
            except Exception as exc:  # every rank must learn it, or the others would wait
                failure, error = exc, (isinstance(exc, RunLockedError), str(exc))
        msg = [error]
        dist.broadcast_object_list(msg, src=0)
        if failure is not None:
            raise failure
        if msg[0] is not None:
            locked, text = msg[0]
            raise (RunLockedError if locked else RuntimeError)(
                text if locked else f"rank 0 could not lock {out}: {text}")
        try:
            yield
        finally:
            if held is not None:
                held.__exit__(None, None, None)

    def wrap(self, net, params):
        """``net`` for training a stage of ``params``: itself in one process, else in a
        ``DistributedDataParallel`` (which averages the gradients of the ranks: with equal
        shares, the gradient of the global batch's mean loss). Parameters that a stage does not
        train and that may not take part in its forward pass (dni's other network) make DDP
        look for unused parameters."""
        if self.world == 1:
            return net
        from torch.nn.parallel import DistributedDataParallel

        ids = {id(p) for p in params}
        unused = any(p.requires_grad and id(p) not in ids for p in net.parameters())
        return DistributedDataParallel(
            net, device_ids=[torch.device(self.device)] if self.device.startswith("cuda") else None,
            find_unused_parameters=unused)

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """``value`` averaged over the ranks (the global batch's mean loss)."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        value = value.detach().clone()
        dist.all_reduce(value)
        return value / self.world

    def total(self, value: torch.Tensor) -> torch.Tensor:
        """``value`` summed over the ranks (every rank must call it at the same iteration)."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        value = value.detach().to(self.device).clone()
        dist.all_reduce(value)
        return value.cpu()

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def autocast(self):
        if self.amp is None:
            return nullcontext()
        return torch.autocast("cuda", dtype=torch.bfloat16 if self.amp == "bf16" else torch.float16)

    def scaler(self):
        """A gradient scaler for float16 autocast, else None."""
        if self.amp != "fp16":
            return None
        if hasattr(torch.amp, "GradScaler"):  # torch >= 2.3
            return torch.amp.GradScaler("cuda")
        return torch.cuda.amp.GradScaler()  # pragma: no cover - older torch


def _step(model, net, coder, opt, scaler, batch, device: str, run: _Run,
          weights: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on ``batch``; returns the detached loss and each sample's MSE
    (detached, for the per-operator losses of the log). The loss is the MSE between the output
    and the target, a mean over the batch; with ``weights`` (operator → factor: ``loss_norm``
    "identity") the mean of each sample's MSE times its operator's factor."""
    x = prepare(batch["input"]).to(device)
    y = batch["target"].to(device).float()
    code = coder(batch["op"], batch["gamma"]).to(device) if net.needs_code else None
    with run.autocast():
        pred = model(x, code)
    if weights:
        per = (pred.float() - y).pow(2).flatten(1).mean(1)
        w = torch.tensor([weights[o] for o in batch["op"]], dtype=per.dtype, device=per.device)
        loss = (w * per).mean()
        per = per.detach()
    else:  # the same computation as before per-operator losses were logged
        loss = torch.nn.functional.mse_loss(pred.float(), y)
        with torch.no_grad():
            per = (pred.detach().float() - y).pow(2).flatten(1).mean(1)
    opt.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    else:
        loss.backward()
        opt.step()
    return loss.detach(), per


#: training pairs per operator that :func:`identity_weights` reads (evenly spaced)
IDENTITY_SAMPLE = 64


def identity_weights(data, ops, n: int = IDENTITY_SAMPLE) -> dict[str, float]:
    """Operator → 1 / its identity MSE: the mean squared difference (0-255 scale, over all
    pixels and channels) between the input and the target of ``n`` of its ``train`` pairs,
    evenly spaced over them (deterministic, so a resumed run computes the same weights), whole
    pairs, no flips. The weights of ``loss_norm="identity"``."""
    out = {}
    for op in ops:
        ds = PairDataset(data, [op], "train")
        if len(ds) == 0:
            raise ValueError(f"{data} has no 'train' pairs of {op}")
        idx = np.unique(np.linspace(0, len(ds) - 1, min(n, len(ds))).round().astype(int))
        pairs = (ds[int(i)] for i in idx)
        mse = np.mean([((d["input"].double() - d["target"].double()) ** 2).mean().item()
                       for d in pairs])
        if not mse > 0:
            raise ValueError(f"{op}'s training inputs equal their targets: no identity MSE to "
                             "normalise its loss by")
        out[op] = float(1.0 / mse)
    return out


def _op_columns(ops) -> list[str]:
    """The per-operator loss columns of a joint model's ``log.csv``: the mean MSE of the
    operator's samples since the previous row (empty when none of them was drawn), as the
    authors' scripts printed each operator's training loss per epoch."""
    return [f"loss_{o}" for o in ops]


def _log_header(path: Path) -> list[str]:
    with open(path, newline="") as fh:
        return next(csv.reader(fh), [])


def _loader(ds, preset: Preset, seed: int, start: int, stop: int, run: _Run) -> DataLoader:
    """This process's share of the batches of iterations [start, stop) of a stage."""
    sides = sample_sides(ds) if preset.batch_crop and run.world > 1 else None
    sampler = EpochBatches(len(ds), preset.batch, seed, start, stop, rank=run.rank,
                           world=run.world, sides=sides)
    if preset.batch_crop:
        return DataLoader(_WithSeed(ds), batch_sampler=sampler, num_workers=preset.workers,
                          collate_fn=_collate_smallest, persistent_workers=False,
                          pin_memory=run.device.startswith("cuda"))
    return DataLoader(ds, batch_sampler=sampler, num_workers=preset.workers,
                      collate_fn=_collate, persistent_workers=False,
                      pin_memory=run.device.startswith("cuda"))


class _Session:
    """One training session in a locked run folder, in its steps: :meth:`resume` (the run's
    checkpoint, if any), :meth:`train` (each stage's batches: :meth:`_step`, :meth:`_log`,
    :meth:`_checkpoint`), and the final checkpoint. ``recorded`` is the run's configuration
    (the dict ``config.json`` and every checkpoint hold); on resume, the recorded one."""

    def __init__(self, config: TrainConfig, data, out: Path, recorded: dict, run: _Run):
        self.config, self.preset, self.data, self.out, self.run = \
            config, config.preset, data, out, run
        self.recorded = recorded
        self.ckpt_path, self.log_path = out / "last.pt", out / "log.csv"
        torch.manual_seed(config.seed)
        self.net, self.coder = build_model(recorded)
        self.net.to(run.device)
        self.start = self.it = 0
        self.state: dict = {}  # the checkpoint resumed from
        self.opt = None
        self.saved: int | None = None  # the iteration of the checkpoint on disk
        self.log = self.writer = self.tb = self.validate = self.bar = None
        self.per_op_log = False
        # each operator's summed per-sample MSE and sample count since the last log row
        self.op_index = {o: k for k, o in enumerate(config.ops)}
        self.op_sums = torch.zeros(2, len(config.ops), dtype=torch.float64)
        self.op_loss: list[float] = []
        # set as the stages start (:meth:`train`)
        self.t0, self.elapsed0, self.scaler, self.weights = time.perf_counter(), 0.0, None, None

    # ------------------------------------------------------------------ resume
    def resume(self, resume: bool, mode: str) -> None:
        """Continue from ``last.pt`` when ``resume`` (refused when it was trained with other
        settings), or refuse to overwrite it when not."""
        if not (resume and self.ckpt_path.is_file()):
            if self.ckpt_path.exists() and not resume:
                raise FileExistsError(f"{self.ckpt_path} exists: add --resume to continue it, "
                                      "or use another --out")
            return
        state = load(self.ckpt_path, map_location=self.run.device)
        registry.check_checkpoint(state, str(self.ckpt_path))  # bounds and shapes, before use
        recorded, config = state["config"], self.recorded
        diffs = config_differences(recorded, config)
        if diffs:
            raise ValueError(f"{self.ckpt_path} was trained with other settings; --resume "
                             "continues a run with its recorded settings, and these differ "
                             "(recorded → given): " + "; ".join(diffs)
                             + ". Use another --out for a new run")
        resumes = list(recorded.get("resumes", []))
        resumes.append({"iteration": int(state["iteration"]), "mode": config["mode"],
                        "data": config["data"], "code": config["code"]})
        # the recorded configuration, in today's form (a v1 one gets its operator-code table)
        self.recorded = {**ModelConfig.from_dict(recorded).to_dict(), "resumes": resumes}
        self.net.load_state_dict(state["model"])
        self.state, self.start = state, state["iteration"]
        if hasattr(self.net, "mode"):
            self.net.mode = mode  # how batches run may change between sessions (same results)

    # ------------------------------------------------------------------ the run
    def train(self, stages: list[Stage], stop_at: int | None, progress: bool) -> dict:
        """Train the stages from the resumed iteration to ``stop_at`` (default: the end),
        checkpoint, and return the checkpoint written."""
        preset, run = self.preset, self.run
        stop = preset.iterations if stop_at is None else min(stop_at, preset.iterations)
        if run.main:
            self._open_outputs(progress)
        self.t0 = time.perf_counter()
        self.elapsed0 = self.state.get("elapsed_s", 0.0) if self.start else 0.0
        self.it = self.start
        self.scaler = run.scaler()
        if self.scaler is not None and self.state.get("scaler"):
            self.scaler.load_state_dict(self.state["scaler"])
        self.net.train()
        self.weights = self.recorded.get("loss_weights") or None
        self.saved = self.start if self.start else None
        try:
            with _StopRequests(run.world == 1) as self.stop:
                for stage in stages:
                    if self.it < stage.stop and self.it < stop:
                        self._train_stage(stage, stop)
        finally:
            if self.bar is not None:
                self.bar.close()
            if self.log is not None:
                self.log.close()
        self._keep_optimiser(stages)
        self._checkpoint()
        if self.tb is not None:
            self.tb.close()
        run.barrier()  # the other ranks read the checkpoint rank 0 has just written
        return load(self.ckpt_path)

    def _open_outputs(self, progress: bool) -> None:
        """Rank 0's outputs: ``config.json``, ``log.csv`` (new, or cut back to the checkpoint
        resumed from), TensorBoard and its validation pairs, the progress bar."""
        out, ops, start = self.out, self.config.ops, self.start
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.json",
                          json.dumps(self.recorded, indent=2, sort_keys=True) + "\n")
        new_log = not (self.state and self.log_path.is_file() and start)
        if not new_log:
            truncate_log(self.log_path, start)
        # a joint model's log has each operator's loss (a run begun before they were logged
        # goes on without them, its rows as its header)
        self.per_op_log = len(ops) > 1 and (new_log
                                            or _log_header(self.log_path)[5:] == _op_columns(ops))
        self.log = open(self.log_path, "w" if new_log else "a", newline="")
        self.writer = csv.writer(self.log)
        if new_log:
            self.writer.writerow(["iteration", "epoch", "loss", "lr", "elapsed_s"]
                                 + (_op_columns(ops) if self.per_op_log else []))
        self.tb = summary_writer(out)
        if self.tb is not None:
            self.validate = _Validation(self.data, ops, self.config.gamma, self.coder,
                                        self.run.device)
        if progress:
            from datagen.progress import Progress

            # a bar on a terminal; elsewhere (nohup, tee) a line every 30 s: done, rate, time left
            self.bar = Progress(self.preset.iterations, initial=start, unit="it",
                                noun="iteration", desc=f"train {self.config.arch}")

    def _lr(self, stage: Stage) -> float:
        return lr_at(self.preset, self.it, self.config.arch, stage.start, stage.stop)

    def _train_stage(self, stage: Stage, stop: int) -> None:
        """The stage's iterations from the current one to ``stop``: a new Adam (the stored one
        when resuming inside the stage), re-created at each learning-rate change."""
        net, preset, run = self.net, self.preset, self.run
        params = _stage_parameters(net, stage.index)
        if self.it == stage.start and stage.index > 0 and hasattr(net, "begin_stage"):
            net.begin_stage(stage.index)
        self.opt = torch.optim.Adam(params, lr=self._lr(stage))
        if self.it > stage.start and self.start == self.it and self.state.get("optimizer"):
            self.opt.load_state_dict(self.state["optimizer"])  # resuming inside this stage
            for g in self.opt.param_groups:
                g["lr"] = self._lr(stage)
        model = run.wrap(net, params)
        ds = stage.dataset
        loader = _loader(ds, preset, self.config.seed + stage.index, self.it - stage.start,
                         min(stop, stage.stop) - stage.start, run)
        per_epoch = max(1, len(ds) // preset.batch)
        drops = stage.drops(preset) if self.config.arch != "hdrnet" else {}
        for batch in loader:
            if self.it in drops and self.it > stage.start:
                # the authors re-create the optimiser when the learning rate changes
                self.opt = torch.optim.Adam(params, lr=drops[self.it])
            loss = self._step(model, batch)
            self.it += 1
            self._log(loss, (self.it - stage.start) // per_epoch)
            if self.it % preset.ckpt_every == 0:
                self._checkpoint()
            if self.stop.signum is not None:  # asked to stop: keep this step, then stop
                if self.saved != self.it:
                    self._checkpoint()
                name = signal.Signals(self.stop.signum).name
                raise TrainingStopped(
                    f"stopped by {name} at iteration {self.it} of {preset.iterations}: "
                    f"{self.ckpt_path} holds it; --resume goes on from there",
                    self.stop.signum)

    def _step(self, model, batch) -> torch.Tensor:
        """One optimiser step (:func:`_step`); the loss averaged over the processes (refused
        when not finite), each operator's sample losses added to its sums."""
        loss, per = _step(model, self.net, self.coder, self.opt, self.scaler, batch,
                          self.run.device, self.run, self.weights)
        loss = self.run.mean(loss)
        if not bool(torch.isfinite(loss)):  # every rank sees the same mean loss
            kept = (f"{self.ckpt_path}, the checkpoint of iteration {self.saved}, is kept as "
                    "it was" if self.saved else "no checkpoint was written")
            raise DivergedError(
                f"training diverged at iteration {self.it + 1}: the loss is "
                f"{loss.item()}; stopped, {kept}. Train with a lower learning rate "
                f"(--lr; this run's: {self.preset.lr:g}) in a new --out")
        k = torch.tensor([self.op_index[o] for o in batch["op"]])
        self.op_sums[0].index_add_(0, k, per.double().cpu())
        self.op_sums[1].index_add_(0, k, torch.ones(len(k), dtype=torch.float64))
        return loss

    def _log(self, loss: torch.Tensor, epoch: int) -> None:
        """At every ``log_every``-th and the last iteration, a row of ``log.csv`` and the
        TensorBoard scalars (the operators' losses summed over the processes on every rank);
        the progress bar at every iteration."""
        it, preset, ops = self.it, self.preset, self.config.ops
        row = it % preset.log_every == 0 or it == preset.iterations
        if row:
            sums = self.run.total(self.op_sums.clone())  # every rank: the global batch's
            self.op_sums.zero_()
            self.op_loss = [(s / n).item() if n else float("nan") for s, n in zip(*sums)]
        if self.run.main and row:
            lr = self.opt.param_groups[0]["lr"]
            self.writer.writerow([it, epoch, f"{loss.item():.6g}", lr,
                                  f"{self.elapsed0 + time.perf_counter() - self.t0:.2f}"]
                                 + ([f"{v:.6g}" if v == v else "" for v in self.op_loss]
                                    if self.per_op_log else []))
            self.log.flush()
            if self.tb is not None:
                self.tb.add_scalar("train/loss", loss.item(), it)
                self.tb.add_scalar("train/lr", lr, it)
                if len(ops) > 1:  # the authors printed each operator's training loss
                    for o, v in zip(ops, self.op_loss):
                        if v == v:
                            self.tb.add_scalar(f"train/loss_{o}", v, it)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss.item():.2f}")

    def _keep_optimiser(self, stages: list[Stage]) -> None:
        """An optimiser for the final checkpoint when no stage ran: the stored one when nothing
        was left to run after a resume, else a new one."""
        if self.opt is None and self.start:
            last = stages[-1]
            self.opt = torch.optim.Adam(_stage_parameters(self.net, last.index),
                                        lr=self._lr(last))
            if self.state.get("optimizer"):
                try:
                    self.opt.load_state_dict(self.state["optimizer"])
                except ValueError:
                    pass
        if self.opt is None:
            self.opt = torch.optim.Adam(_stage_parameters(self.net, 0), lr=self.preset.lr)

    def _checkpoint(self) -> None:
        """Rank 0 writes ``last.pt`` (config, weights, optimiser, iteration, elapsed time, the
        gradient scaler's state) and the validation PSNR to TensorBoard."""
        if not self.run.main:
            return
        extra = {"scaler": self.scaler.state_dict()} if self.scaler is not None else {}
        save(self.ckpt_path, {"config": self.recorded, "model": self.net.state_dict(),
                              "optimizer": self.opt.state_dict() if self.opt is not None else {},
                              "iteration": self.it,
                              "elapsed_s": self.elapsed0 + time.perf_counter() - self.t0,
                              **extra})
        self.saved = self.it
        if self.validate is not None:
            v = self.validate(self.net)
            if v is not None:
                self.tb.add_scalar("val/psnr", v, self.it)
            self.tb.flush()


def _estimate_batch(arch: registry.Arch, ops, preset: Preset, data, gamma):
    """A batch of the preset's size for :func:`seconds_per_iteration`: the first of a real run
    when ``data`` is a file, else synthetic (random pixels, ``preset.crop``² crops)."""
    if data is not None and Path(data).is_file():
        ds = schedule(data, ops, arch, preset, gamma)[0].dataset
        sampler = EpochBatches(len(ds), preset.batch, 0, 0, 1)
        keys = next(iter(sampler))
        items = [{**ds[k], "seed": k[1]} for k in keys]
        return _collate_smallest(items) if preset.batch_crop else _collate(items)
    gen = torch.Generator().manual_seed(0)
    size = (preset.batch, 3, preset.crop, preset.crop)
    x = torch.randint(0, 256, size, dtype=torch.uint8, generator=gen)
    y = torch.randint(0, 256, size, dtype=torch.uint8, generator=gen)
    op = ops[0]
    tg = operators.get(op).test_gammas
    g = gamma if gamma is not None else (float(tg[len(tg) // 2]) if len(tg) else None)
    return {"input": x, "target": y, "gamma": [g] * preset.batch, "op": [op] * preset.batch}


def seconds_per_iteration(arch: str, ops, preset: Preset | str, *, data=None,
                          gamma: float | None = None, device: str | None = None,
                          iterations: int = 3, warmup: int = 1, amp: str | None = None) -> float:
    """Measured seconds per training iteration of ``arch`` at ``preset`` on ``device``: the
    median over ``iterations`` timed steps (after ``warmup`` untimed ones) of exactly the step
    :func:`train` runs (forward, MSE, backward, Adam), on the first batch of ``data`` when it
    is a file, else on a synthetic batch of the preset's batch size and crop. Nothing is
    written. Multiply by the iterations for an estimate of a whole training (loading batches
    overlaps with computing when the preset has workers; checkpoints and logging are left out).
    """
    if isinstance(preset, str):
        preset = get_preset(preset)
    if isinstance(ops, str):
        ops = (ops,)
    ops = tuple(operators.get(o).name for o in ops)
    if iterations < 1 or warmup < 0:
        raise ValueError(f"iterations must be >= 1 and warmup >= 0, got {iterations}, {warmup}")
    entry = registry.get(arch)
    if entry.per_gamma and gamma is None and operators.get(ops[0]).has_gamma:
        spec = operators.get(ops[0])
        gamma = float(spec.test_gammas[len(spec.test_gammas) // 2])
    if not entry.per_gamma:
        gamma = None
    device = devices.resolve(device)
    run = _Run(0, 1, device, devices.check_amp(amp, device))
    config = TrainConfig(ops=ops, preset=preset, arch=entry.name, gamma=gamma).model_config()
    torch.manual_seed(0)
    net, coder = build_model(config)
    net.to(device).train()
    batch = _estimate_batch(entry, ops, preset, data, gamma)
    opt = torch.optim.Adam(_stage_parameters(net, 0), lr=preset.lr)
    scaler = run.scaler()
    times = []
    for k in range(warmup + iterations):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        _step(net, net, coder, opt, scaler, batch, device, run)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if k >= warmup:
            times.append(time.perf_counter() - t)
    return float(np.median(times))
