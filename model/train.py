"""Training the decouple network or the single-γ baseline on a datagen file."""
from __future__ import annotations

import csv
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

import operators
from datagen import code_version
from datagen.dataset import PairDataset
from datagen.store import open_file

from . import device as devices
from .checkpoint import load, save
from .data import prepare
from .metrics import psnr
from .presets import Preset
from .registry import ARCHS, PER_GAMMA, build_model

try:
    import fcntl
except ImportError:  # not POSIX: no lock (documented in docs/model.md)
    fcntl = None

#: config entries that say how a run is executed, not what it trains: they may differ on
#: --resume (the first run's values stay in the config; each resume is listed in "resumes")
RUNTIME_KEYS = ("mode", "data", "code", "resumes")


class RunLockedError(RuntimeError):
    """Another process is training in the same run folder."""


class RunLock:
    """An exclusive ``fcntl.flock`` on ``<run>/.lock`` for as long as a training runs; the file
    names the holder (pid, host, start, command) so that a second training can say who it is."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.fh = None

    def __enter__(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        fh = open(self.folder / ".lock", "a+")
        if fcntl is not None:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                fh.close()
                raise RunLockedError(f"{self.folder} is being trained by {holder}; wait for it "
                                     "to finish, or use another --out") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()} since "
                 f"{time.strftime('%Y-%m-%d %H:%M:%S')} ({' '.join(sys.argv)})\n")
        fh.flush()
        self.fh = fh
        return self

    def __exit__(self, *exc):
        if self.fh is not None:
            self.fh.truncate(0)
            self.fh.close()  # closing releases the lock
            self.fh = None


def _write_atomic(path: Path, text: str) -> None:
    """``text`` into ``path`` through a uniquely named temporary file in the same folder."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
        _write_atomic(path, buf.getvalue())
    return len(rows) - len(keep)


def config_differences(recorded: dict, new: dict) -> list[str]:
    """What a resumed run would change in the recorded configuration (runtime keys aside)."""
    diffs = []
    for k in sorted(set(recorded) | set(new)):
        if k in RUNTIME_KEYS:
            continue
        a, b = recorded.get(k), new.get(k)
        if k == "preset" and isinstance(a, dict) and isinstance(b, dict):
            diffs += [f"preset.{j}: {a.get(j)!r} recorded, {b.get(j)!r} given"
                      for j in sorted(set(a) | set(b)) if j != "workers" and a.get(j) != b.get(j)]
        elif a != b:
            diffs.append(f"{k}: {a!r} recorded, {b!r} given")
    return diffs


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
    """

    def __init__(self, n: int, batch: int, seed: int, start: int, stop: int):
        if n < batch:
            raise ValueError(f"only {n} training pairs for a batch of {batch}")
        self.n, self.batch, self.seed, self.start, self.stop = n, batch, seed, start, stop
        self.per_epoch = n // batch

    def __len__(self) -> int:
        return self.stop - self.start

    def __iter__(self):
        for it in range(self.start, self.stop):
            epoch, b = divmod(it, self.per_epoch)
            perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            idx = perm[b * self.batch:(b + 1) * self.batch]
            yield [(int(i), int(self.seed * 1_000_003 + epoch * 65_537 + b * self.batch + j))
                   for j, i in enumerate(idx)]


def _collate(items):
    return {"input": torch.stack([d["input"] for d in items]),
            "target": torch.stack([d["target"] for d in items]),
            "gamma": [d["gamma"] for d in items], "op": [d["op"] for d in items]}


def lr_at(preset: Preset, it: int, arch: str = "decouple") -> float:
    if arch == "hdrnet":  # HDRNet trains at a constant rate (see Preset.hdrnet_lr)
        return preset.hdrnet_lr
    return preset.lr if it < int(preset.lr_drop * preset.iterations) else preset.lr_final


def train(data, ops, out, *, preset: Preset, arch: str = "decouple", gamma: float | None = None,
          seed: int = 0, resume: bool = False, device: str | None = None, norm: str = "law",
          op_code: str = "scalar", mode: str = "grouped", progress: bool = True,
          stop_at: int | None = None, init: str | None = None,
          residual: bool | None = None) -> dict:
    """Train and return the final checkpoint state; writes ``out``/last.pt, ``out``/log.csv and
    ``out``/config.json (the run's full configuration, readable), and TensorBoard scalars into
    ``out``/tb when ``tensorboard`` is installed.

    ``arch="decouple"`` trains on the continuously sampled γ of the ``train`` split;
    ``arch="single"`` trains at one ``gamma`` on the ``single`` split (training crops at the
    paper's test γ). Both see the same crops, iterations and batch size. The baselines:
    ``"concat"`` (γ as constant input channels) trains like decouple, ``"hdrnet"`` (DBL, see
    :mod:`model.hdrnet`) like single, at a constant learning rate (``preset.hdrnet_lr``).
    ``init`` and ``residual`` default to the preset's, as on the command line. ``stop_at`` ends
    the run early at that iteration (with a checkpoint), to continue later with ``resume=True``
    exactly as if it had not stopped (the schedule is always the preset's).

    ``resume=True`` continues the run with its recorded configuration: any difference in what is
    trained (preset, width, iterations, ...) is refused with the list of differences; how it runs
    (``mode``, the data file's path with the same digest, the code version) may differ and each
    resume is listed in the config's ``resumes``. ``log.csv`` is cut back to the checkpoint's
    iteration. One training per run folder at a time (an exclusive lock on ``out``/.lock).
    """
    out = Path(out)
    if not isinstance(preset, Preset):
        raise TypeError(f"preset must be a model.presets.Preset, got {type(preset).__name__}")
    if isinstance(ops, str):
        ops = (ops,)
    ops = tuple(operators.get(o).name for o in ops)  # names are case-insensitive
    if not ops or len(set(ops)) != len(ops):
        raise ValueError(f"ops must name each operator once, got {list(ops)}")
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
    if arch in PER_GAMMA:
        if gamma is None or len(ops) != 1:
            raise ValueError(f"--arch {arch} needs exactly one operator and --gamma")
        operators.get(ops[0]).check_gamma(gamma)
    elif gamma is not None:
        raise ValueError(f"--gamma is for --arch {'/'.join(PER_GAMMA)}; {arch} trains on all γ")
    if stop_at is not None and (isinstance(stop_at, bool) or not isinstance(stop_at, int)
                                or stop_at < 1):
        raise ValueError(f"stop_at must be a positive integer, got {stop_at!r}")
    init = preset.init if init is None else init
    residual = preset.residual if residual is None else bool(residual)
    device = devices.resolve(device)
    ckpt_path, log_path = out / "last.pt", out / "log.csv"

    with open_file(data) as f:
        data_digest = str(f.attrs["digest"])
    split = "single" if arch in PER_GAMMA else "train"
    dataset = PairDataset(data, ops, split, crop=preset.crop, flip=True, gamma=gamma)
    if len(dataset) == 0:
        raise ValueError(f"{data} has no '{split}' pairs for {ops}"
                         + (f" at γ={gamma}" if gamma is not None else "")
                         + ("; build it with --single" if split == "single" else ""))
    gammas = {o: dataset.gamma_values(o) for o in ops}
    config = {"arch": arch, "ops": list(ops), "width": preset.width,
              "dilations": list(preset.dilations), "norm": norm, "op_code": op_code,
              "mode": mode, "init": init, "residual": residual, "gamma": gamma,
              "trained_range": {o: [float(g.min()), float(g.max())] for o, g in gammas.items()},
              "preset": preset.to_dict(), "seed": seed, "data": str(data),
              **({"lowres": preset.hdrnet_lowres} if arch == "hdrnet" else {}),
              "data_digest": data_digest, "code": code_version()}

    with RunLock(out):
        return _train_locked(data, ops, out, ckpt_path, log_path, config, dataset, preset, arch,
                             gamma, seed, resume, device, mode, progress, stop_at)


def _train_locked(data, ops, out, ckpt_path, log_path, config, dataset, preset, arch, gamma,
                  seed, resume, device, mode, progress, stop_at) -> dict:
    torch.manual_seed(seed)
    net, coder = build_model(config)
    net.to(device)
    start = 0
    if resume and ckpt_path.is_file():
        state = load(ckpt_path, map_location=device)
        recorded = state["config"]
        diffs = config_differences(recorded, config)
        if diffs:
            raise ValueError(f"{ckpt_path} was trained with other settings; --resume continues "
                             "a run with its recorded settings, and these differ: "
                             + "; ".join(diffs) + ". Use another --out for a new run")
        resumes = list(recorded.get("resumes", []))
        resumes.append({"iteration": int(state["iteration"]), "mode": config["mode"],
                        "data": config["data"], "code": config["code"]})
        config = {**recorded, "resumes": resumes}
        net.load_state_dict(state["model"])
        start = state["iteration"]
        if hasattr(net, "mode"):
            net.mode = mode  # how batches run may change between sessions (same results)
    elif ckpt_path.exists() and not resume:
        raise FileExistsError(f"{ckpt_path} exists: add --resume to continue it, or use another --out")
    opt = torch.optim.Adam(net.parameters(), lr=lr_at(preset, start, arch))
    if start:
        opt.load_state_dict(state["optimizer"])
        for g in opt.param_groups:
            g["lr"] = lr_at(preset, start, arch)

    stop = preset.iterations if stop_at is None else min(stop_at, preset.iterations)
    loader = DataLoader(dataset, batch_sampler=EpochBatches(len(dataset), preset.batch, seed,
                                                            start, max(start, stop)),
                        num_workers=preset.workers, collate_fn=_collate,
                        persistent_workers=False)
    out.mkdir(parents=True, exist_ok=True)
    _write_atomic(out / "config.json", json.dumps(config, indent=2, sort_keys=True) + "\n")
    new_log = not (resume and log_path.is_file() and start)
    if not new_log:
        truncate_log(log_path, start)
    log = open(log_path, "w" if new_log else "a", newline="")
    writer = csv.writer(log)
    if new_log:
        writer.writerow(["iteration", "epoch", "loss", "lr", "elapsed_s"])
    tb = summary_writer(out)
    validate = _Validation(data, ops, gamma, coder, device) if tb is not None else None
    bar = None
    if progress:
        from tqdm import tqdm

        # disable=None: bars on a terminal only, not into redirected logs
        bar = tqdm(total=preset.iterations, initial=start, unit="it", desc=f"train {arch}",
                   dynamic_ncols=True, file=sys.stderr, disable=None)
    t0 = time.perf_counter()
    elapsed0 = state.get("elapsed_s", 0.0) if start else 0.0
    it = start
    net.train()

    def checkpoint():
        save(ckpt_path, {"config": config, "model": net.state_dict(),
                         "optimizer": opt.state_dict(), "iteration": it,
                         "elapsed_s": elapsed0 + time.perf_counter() - t0})
        if validate is not None:
            v = validate(net)
            if v is not None:
                tb.add_scalar("val/psnr", v, it)
            tb.flush()

    try:
        for batch in loader:
            if it == int(preset.lr_drop * preset.iterations) and it > 0 and arch != "hdrnet":
                # the authors re-create the optimiser when the learning rate changes
                opt = torch.optim.Adam(net.parameters(), lr=preset.lr_final)
            x = prepare(batch["input"]).to(device)
            y = batch["target"].to(device).float()
            code = coder(batch["op"], batch["gamma"]).to(device) if net.needs_code else None
            loss = torch.nn.functional.mse_loss(net(x, code), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            it += 1
            if it % preset.log_every == 0 or it == preset.iterations:
                lr = opt.param_groups[0]["lr"]
                writer.writerow([it, it // max(1, len(dataset) // preset.batch), f"{loss.item():.6g}",
                                 lr, f"{elapsed0 + time.perf_counter() - t0:.2f}"])
                log.flush()
                if tb is not None:
                    tb.add_scalar("train/loss", loss.item(), it)
                    tb.add_scalar("train/lr", lr, it)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.2f}")
            if it % preset.ckpt_every == 0:
                checkpoint()
    finally:
        if bar is not None:
            bar.close()
        log.close()
    checkpoint()
    if tb is not None:
        tb.close()
    return load(ckpt_path)
