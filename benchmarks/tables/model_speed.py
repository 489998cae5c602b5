"""Model speed: training throughput at batch 8, every γ-conditioned method against a plain network
of the same width (and the decouple forms against the authors' per-sample loop), and inference
time (decouple with weights generated once vs a plain single network).

Writes ``model_speed`` (CSV, LaTeX, provenance). Targets (issue 11, "Speed of training"): on the
CPU, training samples/s of ``decouple`` (grouped) >= 0.9x the ``single`` network of the same
width, and >= 0.95x for every method whose γ dependence is a few layers (``norm:K``,
``norm:all``, ``conv:K``, ``conv-ch1:K``, ``conv-ch2:K``, ``cresmd``, ``concat``; ``realtime``
against its own backbone with a static affine); AdaFM's two stages (the base network at λ = 0,
then the filters after all 19 convs) are reported without a target; the batched decouple forms
against the loop (the figure that matters on a GPU: >= 3x); decouple inference within 10 % of
the single network. CPU here, and CUDA when present (docs/model_architecture.md, "Training
speed").

Training steps (forward, backward, Adam) are timed in pairs: in each round every method's step
runs back to back with a step of its reference (the order of the pairs rotating, the order
within a pair alternating), and a method's ratio to its reference is the median over the rounds
of its pair's time ratio (the real-time pair, whose steps are 4x longer, gets twice the rounds),
so that a load which changes during the run (or a lucky step) biases
neither side; the samples/s are the median step's. ``vs_reference_best`` keeps the ratio of the
best steps (the earlier figure; as many steps on each side). An extra block, without a target,
gives the same ratio in CPU time with one thread (``time.process_time``, the figure used to
find where a method's time goes on a loaded machine, free of thread scheduling). The load average
before and after goes into the sidecar. Inference (no autograd) alternates the two networks'
forward passes in the same way; its ratio is the median of the per-round ratios.

The units are ``("training", device)`` and ``("inference", device)``, CPU and CUDA when present;
the networks are untrained (speed does not depend on the weights), so nothing is trained in the
cache. Torch is imported inside the functions (the registry stays cheap to import).
"""
from __future__ import annotations

import functools
import os
import statistics
import time

from .. import _latex
from .._bench import sync
from .._report import provenance, write_table
from . import Measured, Table, claim

NAME = "model_speed"
CAPTION = ("Model speed: training samples/s at batch 8 of every γ-conditioned method against a "
           "plain network of the same width, and inference time per image")
# (width, training crop, training rounds, inference size, inference repeats, rounds of the
# one-thread CPU-time block)
SETTINGS = {"smoke": (8, 16, 2, 64, 2, 2), "small": (64, 96, 12, 512, 9, 3),
            "paper": (64, 128, 7, 512, 5, 3)}
BATCH = 8

#: the γ-conditioned methods whose γ dependence is a few layers (target >= 0.95x single)
FEW_LAYERS = ("norm:1", "norm:7", "norm:14", "norm:19", "norm:all", "conv:19", "conv-ch1:19",
              "conv-ch2:19", "cresmd", "concat")
REFERENCE = "single (same width)"
LOOP = "decouple (loop)"
REALTIME_REF = "realtime backbone, static affine"
CPU_MEASURE = "train samples/CPU-s, 1 thread (extra: CPU time, no target)"


def devices() -> list[str]:
    """The CPU, and CUDA when present."""
    import torch

    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def units(scale=None, ops=None) -> list[tuple[str, str]]:
    """Training, then inference, on each device (no operator to select: ``ops`` is refused)."""
    if ops is not None:
        raise ValueError(f"{NAME} times networks, not operators: leave out --ops")
    devs = devices()
    return [("training", d) for d in devs] + [("inference", d) for d in devs]


@functools.cache
def _static_affine_class():
    import torch
    import torch.nn.functional as F
    from torch import nn

    class StaticAffine(nn.Module):
        """TPAMI's real-time backbone with its last InstanceNorm's scale and shift learned as
        plain parameters (no MLP, no code): the plain network the ``realtime`` method is
        compared with (its backbone, width 2w with depthwise blocks, is not N_base)."""

        needs_code = False

        def __init__(self, net):
            super().__init__()
            self.net = net
            del self.net.affine  # not trained here
            c = net.width
            self.scale, self.shift = nn.Parameter(torch.ones(c)), nn.Parameter(torch.zeros(c))

        def forward(self, x, code=None):
            h = F.instance_norm(self.net.features(x), weight=self.scale, bias=self.shift)
            return x[:, :3] + 128.0 + self.net.out(F.relu(h))

    return StaticAffine


def static_affine(net):
    """``net`` (a real-time network) with a static affine instead of its code's
    (:func:`_static_affine_class`)."""
    return _static_affine_class()(net)


def _config(arch: str, width: int, mode: str = "grouped"):
    from model.config import ModelConfig
    from model.networks import PAPER_DILATIONS

    return ModelConfig(arch=arch, ops=("l0",), width=width, dilations=PAPER_DILATIONS,
                       mode=mode)


def methods(width: int) -> list[dict]:
    """What is timed: name, network, the trained parameters, the code of the batch (``random``
    one γ per sample, ``zero``/``one`` λ = 0/1 for all, None), the table block and target."""
    import torch

    from model.registry import get

    def entry(name, arch, mode="grouped", block="main", target="", code="random", stage=None,
              wrap=None):
        torch.manual_seed(0)
        net = get(arch).build(_config(arch, width, mode), 1)
        if wrap is not None:
            net = wrap(net)
        params = net.stage_parameters(stage) if stage is not None else list(net.parameters())
        return dict(name=name, net=net, params=params, code=code if net.needs_code else None,
                    block=block, target=target)

    out = [entry("single", "single")]
    for mode, target in (("grouped", ">= 0.9x"), ("linear", ""), ("loop", "")):
        out.append(entry(f"decouple ({mode})", "decouple", mode=mode, target=target))
    out += [entry(a, a, target=">= 0.95x") for a in FEW_LAYERS]
    # AdaFM's first stage trains the base network at the low end (λ = 0: its filters are the
    # identity), the second only the modulation filters at the high end (λ = 1); its γ
    # dependence is a filter after every conv (19 layers), so no few-layer target
    out.append(entry("adafm (stage 1: base, λ = 0)", "adafm", code="zero", stage=0))
    out.append(entry("adafm (stage 2: filters, λ = 1)", "adafm", code="one", stage=1))
    out.append(entry(REALTIME_REF, "realtime", block="realtime", wrap=static_affine))
    out.append(entry("realtime", "realtime", block="realtime", target=">= 0.95x"))
    return out


def _batch(device, crop):
    import torch

    from model.data import prepare

    g = torch.Generator().manual_seed(0)
    x = prepare(torch.randint(0, 256, (BATCH, 3, crop, crop), dtype=torch.uint8, generator=g))
    y = torch.rand(BATCH, 3, crop, crop, generator=g) * 255
    codes = {"random": torch.rand(BATCH, 1, generator=g), "zero": torch.zeros(BATCH, 1),
             "one": torch.ones(BATCH, 1)}
    return x.to(device), y.to(device), {k: v.to(device) for k, v in codes.items()}


def training_steps(methods, device, crop) -> dict:
    """One warmed-up training step (forward, backward, Adam at batch 8) per method, by name."""
    import torch

    x, y, codes = _batch(device, crop)
    steps = {}
    for m in methods:
        net = m["net"].to(device)
        opt = torch.optim.Adam(m["params"], lr=1e-3)
        code = None if m["code"] is None else codes[m["code"]]

        def step(net=net, opt=opt, code=code):
            loss = torch.nn.functional.mse_loss(net(x, code), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        step()  # warm-up (allocations, kernel selection)
        steps[m["name"]] = step
    return steps


def paired_times(steps: dict, pairs: dict, rounds: int, device,
                 clock=time.perf_counter) -> dict[str, list[tuple[float, float]]]:
    """``pairs`` method → reference. In each of ``rounds`` rounds every method's step runs back to
    back with one of its reference (pairs in an order rotating with the round, reference first
    in every other round for each method). Returns, per method, (reference time, method time)
    per round; a reference (paired with itself) gets (t, t) for each of its steps."""
    names = [n for n in pairs if pairs[n] != n]
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in pairs}

    def timed(name):
        sync(device)
        t = clock()
        steps[name]()
        sync(device)
        t = clock() - t
        if pairs.get(name) == name:
            times[name].append((t, t))
        return t

    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            if (r + names.index(name)) % 2:  # each method: reference first every other round
                t_ref = timed(pairs[name])
                times[name].append((t_ref, timed(name)))
            else:
                t = timed(name)
                times[name].append((timed(pairs[name]), t))
    return times


def summary(times: list[tuple[float, float]]) -> dict[str, float]:
    """A method's samples/s (its median step), and its ratio to the reference in throughput:
    the median of the per-round ratios, and the ratio of the best steps."""
    ref, own = zip(*times)
    return {"value": BATCH / statistics.median(own),
            "vs_reference": statistics.median(r / t for r, t in times),
            "vs_reference_best": min(ref) / min(own)}


def _infer_times(nets, device, size, repeats) -> list[list[float]]:
    """Forward passes (no autograd) of each ``(net, fixed)`` on one ``size``² image, interleaved:
    each round times every network once, the first of the round alternating; one untimed pass
    each first. Returns the times per network."""
    import torch

    from model.data import prepare

    with torch.no_grad():  # no autograd
        x = prepare(torch.randint(0, 256, (1, 3, size, size), dtype=torch.uint8)).to(device)
        times = [[] for _ in nets]
        with torch.inference_mode():
            for net, fixed in nets:
                net.eval()
                net(x, fixed=fixed)
            sync(device)
            for r in range(repeats):
                order = list(range(len(nets)))
                for k in (order if r % 2 == 0 else order[::-1]):
                    net, fixed = nets[k]
                    t = time.perf_counter()
                    net(x, fixed=fixed)
                    sync(device)
                    times[k].append(time.perf_counter() - t)
    return times


def training(scale: str, device: str) -> list[dict]:
    """The training rows of one device: every method against its reference (median of the
    per-round ratios), the decouple forms against the loop, and on the CPU the one-thread
    CPU-time block."""
    import torch

    width, crop, rounds, _, _, cpu_rounds = SETTINGS[scale]
    ms = methods(width)
    rows: list[dict] = []
    steps = training_steps(ms, device, crop)
    refs = {"main": "single", "realtime": REALTIME_REF}
    ref_label = {"single": REFERENCE, REALTIME_REF: REALTIME_REF}
    times = paired_times(steps, {m["name"]: refs[m["block"]] for m in ms}, rounds, device)
    # the real-time pair's steps are 4x longer, so a round is 4x as exposed to this VM's load
    # changes: it gets as many rounds again (its per-round ratios spread ±14 % in CPU time)
    more = paired_times(steps, {REALTIME_REF: REALTIME_REF, "realtime": REALTIME_REF}, rounds,
                        device)
    for name, t in more.items():
        times[name] += t
    if not all(len(times[m["name"]]) == rounds * (2 if m["block"] == "realtime" else 1)
               for m in ms if m["name"] not in refs.values()):
        raise RuntimeError("paired_times did not give every method one pair a round")
    measure = {"main": "train samples/s", "realtime": "train samples/s (realtime backbone)"}
    for m in ms:
        ref = refs[m["block"]]
        rows.append({"device": device, "measure": measure[m["block"]],
                     "model": REFERENCE if m["name"] == "single" else m["name"],
                     **summary(times[m["name"]]), "reference": ref_label[ref],
                     "target": m["target"]})
    # the decouple forms against the loop: the per-round ratio of their steps (one each a round)
    loop = [t for _, t in times[LOOP]]
    for mode in ("loop", "grouped", "linear"):
        name = f"decouple ({mode})"
        own = [t for _, t in times[name]]
        rows.append({"device": device, "measure": "train samples/s, decouple forms",
                     "model": name, **summary(list(zip(loop, own))), "reference": LOOP,
                     "target": "" if mode == "loop" else ">= 3x (GPU)"})
    if device == "cpu":  # the extra block: CPU time with one thread
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            names = ["single", "decouple (grouped)", *FEW_LAYERS]
            for name in names:
                steps[name]()  # warm-up at one thread
            cpu = paired_times(steps, {n: "single" for n in names}, cpu_rounds, device,
                               clock=time.process_time)
        finally:
            torch.set_num_threads(threads)
        for name in names:
            rows.append({"device": device, "measure": CPU_MEASURE,
                         "model": REFERENCE if name == "single" else name,
                         **summary(cpu[name]), "reference": REFERENCE, "target": ""})
    return rows


def inference(scale: str, device: str) -> list[dict]:
    """The inference rows of one device: the single network, the decouple network with weights
    generated once (ratio: median of the per-round ratios), and the weight generation."""
    import numpy as np
    import torch

    from model.networks import OperatorNet

    width, _, _, size, repeats, _ = SETTINGS[scale]
    torch.manual_seed(0)
    dec = OperatorNet("decouple", width=width).to(device)
    single = OperatorNet("single", width=width).to(device)
    t = time.perf_counter()
    fixed = dec.fixed_weights(torch.tensor([0.5]))  # once per (operator, γ)
    sync(device)
    t_weights = time.perf_counter() - t
    singles, decs = _infer_times([(single, None), (dec, fixed)], device, size, repeats)
    t_single, t_dec = float(np.median(singles)), float(np.median(decs))
    ratio = float(np.median(np.array(decs) / np.array(singles)))  # per round, as training
    return [
        {"device": device, "measure": f"inference s/image {size}x{size}", "model": "single",
         "value": t_single, "vs_reference": 1.0, "reference": "single", "target": ""},
        {"device": device, "measure": f"inference s/image {size}x{size}",
         "model": "decouple (fixed weights)", "value": t_dec, "vs_reference": ratio,
         "vs_reference_best": min(decs) / min(singles),
         "reference": "single", "target": "<= 1.1x"},
        {"device": device, "measure": "weight generation s (once per γ)", "model": "decouple",
         "value": t_weights, "vs_reference": float("nan"), "reference": "", "target": ""},
    ]


def measure(experiment, unit: tuple[str, str]) -> Measured:
    """One unit: ``("training", device)`` (:func:`training`) or ``("inference", device)``
    (:func:`inference`) at the experiment's scale."""
    what, device = unit
    if what == "training":
        return Measured(training(experiment.scale, device))
    if what == "inference":
        return Measured(inference(experiment.scale, device))
    raise ValueError(f"{NAME}: unknown unit {unit!r}")


def check(measured: Measured, scale: str) -> None:
    """Every figure is positive (a timing, not a target: a busy machine is slower), and the
    main training block has every method of the main block and the reference."""
    rows = measured.rows
    for r in rows:
        claim(r["value"] > 0, r)
        if r["measure"].startswith("train"):
            claim(r["vs_reference"] > 0 and r["vs_reference_best"] > 0, r)
    main = {r["model"] for r in rows if r["measure"] == "train samples/s"}
    if main:
        expected = {REFERENCE, *(f"decouple ({m})" for m in ("grouped", "linear", "loop")),
                    *FEW_LAYERS, "adafm (stage 1: base, λ = 0)",
                    "adafm (stage 2: filters, λ = 1)"}
        claim(main == expected, f"the main block has {sorted(main)}")


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else []


def begin(experiment) -> dict:
    """The load average before the first unit (the sidecar's ``load_average_before``)."""
    return {"load_average_before": _load()}


def write(experiment, results_dir, df, crops, started: float, **facts) -> None:
    """The CSV (the rows as measured), LaTeX and sidecar: the settings, torch, threads and the
    load average before and after."""
    import torch

    width, crop, rounds, size, repeats, cpu_rounds = SETTINGS[experiment.scale]
    load = facts.pop("load_average_before", [])
    write_table(df, NAME, results_dir,
                provenance(experiment.scale, started, width=width, train_crop=crop, batch=BATCH,
                           train_rounds=rounds, cpu_time_rounds=cpu_rounds,
                           inference_size=size,
                           torch=torch.__version__, threads=torch.get_num_threads(),
                           load_average_before=load, load_average_after=_load(), **facts),
                caption=CAPTION)


TABLES = (Table(NAME, "model_speed", units=units, measure=measure, check=check, write=write,
                begin=begin, layout=_latex.model_speed,
                suite="benchmarks/test_model_speed.py"),)
