"""Training the decouple network or the single-γ baseline on a datagen file."""
from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

import operators
from datagen import code_version
from datagen.dataset import PairDataset
from datagen.store import open_file

from .checkpoint import ARCHS, PER_GAMMA, build_model, load, save
from .data import prepare
from .presets import Preset


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
          stop_at: int | None = None, init: str = "paper", residual: bool = False) -> dict:
    """Train and return the final checkpoint state; writes ``out``/last.pt and ``out``/log.csv.

    ``arch="decouple"`` trains on the continuously sampled γ of the ``train`` split;
    ``arch="single"`` trains at one ``gamma`` on the ``single`` split (training crops at the
    paper's test γ). Both see the same crops, iterations and batch size. The baselines:
    ``"concat"`` (γ as constant input channels) trains like decouple, ``"hdrnet"`` (DBL, see
    :mod:`model.hdrnet`) like single, at a constant learning rate (``preset.hdrnet_lr``). ``stop_at`` ends the
    run early at that iteration (with a checkpoint), to continue later with ``resume=True``
    exactly as if it had not stopped (the schedule is always the preset's).
    """
    out = Path(out)
    ops = tuple(ops)
    for o in ops:
        operators.get(o)
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
    if arch in PER_GAMMA:
        if gamma is None or len(ops) != 1:
            raise ValueError(f"--arch {arch} needs exactly one operator and --gamma")
        operators.get(ops[0]).check_gamma(gamma)
    elif gamma is not None:
        raise ValueError(f"--gamma is for --arch {'/'.join(PER_GAMMA)}; {arch} trains on all γ")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
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

    torch.manual_seed(seed)
    net, coder = build_model(config)
    net.to(device)
    start = 0
    if resume and ckpt_path.is_file():
        state = load(ckpt_path, map_location=device)
        keys = ("arch", "ops", "width", "dilations", "norm", "op_code", "init", "residual", "gamma",
                "data_digest", "seed", "lowres")
        if any(state["config"].get(k) != config.get(k) for k in keys):
            raise ValueError(f"{ckpt_path} was trained with other settings; use another --out")
        net.load_state_dict(state["model"])
        start = state["iteration"]
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
    new_log = not (resume and log_path.is_file() and start)
    log = open(log_path, "w" if new_log else "a", newline="")
    writer = csv.writer(log)
    if new_log:
        writer.writerow(["iteration", "epoch", "loss", "lr", "elapsed_s"])
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=preset.iterations, initial=start, unit="it", desc=f"train {arch}",
                   dynamic_ncols=True, file=sys.stderr)
    t0 = time.perf_counter()
    elapsed0 = state.get("elapsed_s", 0.0) if start else 0.0
    it = start
    net.train()

    def checkpoint():
        save(ckpt_path, {"config": config, "model": net.state_dict(),
                         "optimizer": opt.state_dict(), "iteration": it,
                         "elapsed_s": elapsed0 + time.perf_counter() - t0})

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
                writer.writerow([it, it // max(1, len(dataset) // preset.batch), f"{loss.item():.6g}",
                                 opt.param_groups[0]["lr"],
                                 f"{elapsed0 + time.perf_counter() - t0:.2f}"])
                log.flush()
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
    return load(ckpt_path)
