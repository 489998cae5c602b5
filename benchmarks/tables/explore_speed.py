"""The γ explorer's responsiveness: server time from a slider release to the new image, at 512²,
on the re-tune path, with the operator's own time for the same γ beside it.

What is timed is what ``python -m model explore`` does for one ``/api/render`` request
(:meth:`model.explore.Explorer.render`: the γ check, ``Predictor.retune`` on the cached
features, PNG encoding of the output), without the HTTP round trip; ``operator_ms`` is
:meth:`Explorer.truth` for that γ the first time (the operator run on the full image; the page
caches it). The model is the zoo's real-time model (``realtime-tpami10``) when the zoo has it;
otherwise (a zoo without it) an untrained real-time network of the scale's width (speed does not
depend on the weights), saved in a temporary folder. The issue's target is 150 ms on 2 CPU
cores; nothing here asserts a time (a busy machine is slower), the table says whether it was
met. Writes ``explore_speed``; the units are the operators (l0, then wls: the first renders the
image in full, the second re-tunes it).
"""
from __future__ import annotations

import importlib.util
import statistics
import tempfile
import time
from pathlib import Path

from .._report import provenance, write_table
from . import Measured, Table, claim
from ._common import table_ops

NAME = "explore_speed"
TARGET_MS = 150.0
SIDE = 512
CAPTION = ("γ explorer: server ms from slider release to the new image (re-tune path, "
           f"{SIDE}² image) and the operator's own ms for that γ")
# (width of the fallback network, its dilations, slider moves timed)
SETTINGS = {"smoke": (8, (2, 4), 3), "small": (16, (2, 4, 4, 8, 8, 16, 1), 9),
            "paper": (64, (2, 4, 4, 8, 8, 16, 1), 9)}
OPS = ("l0", "wls")
IMAGE = "astronaut.png"


def units(scale=None, ops=None) -> list[str]:
    """The operators timed (:data:`OPS`), those in ``ops``."""
    return table_ops(OPS, ops)


def available() -> bool:
    """Whether the explorer's web stack (starlette) is installed."""
    return importlib.util.find_spec("starlette") is not None


_EXPLORERS: dict[str, tuple] = {}
#: (explorer, image) pairs rendered once: the next render of the image re-tunes
_RENDERED: set = set()


def explorer(scale: str):
    """``(explorer, model id, folder)`` of the scale, made once per process: the zoo's real-time
    model, else an untrained real-time network saved in a temporary folder (kept with it)."""
    if scale in _EXPLORERS:
        return _EXPLORERS[scale][:2]
    if not available():
        raise ValueError(f"{NAME} needs the explorer's web stack: pip install starlette "
                         "(the package's [explore] extra)")
    import torch

    from model import zoo
    from model.checkpoint import save
    from model.config import ModelConfig
    from model.explore import Explorer
    from model.registry import build_model

    if "realtime-tpami10" in zoo.names():
        _EXPLORERS[scale] = (Explorer(max_side=SIDE), "realtime-tpami10", None)
    else:
        width, dilations, _ = SETTINGS[scale]
        torch.manual_seed(0)
        cfg = ModelConfig(arch="realtime", ops=OPS, width=width, dilations=dilations,
                          residual=True, trained_range={o: [0.0, 1e9] for o in OPS},
                          preset={"iterations": 1})
        net, _ = build_model(cfg)
        folder = tempfile.TemporaryDirectory(prefix="explore-speed-")
        path = Path(folder.name) / "realtime.pt"
        save(path, {"config": cfg.to_dict(), "model": net.state_dict(), "iteration": 1})
        _EXPLORERS[scale] = (Explorer([path], max_side=SIDE), "ckpt1", folder)
    return _EXPLORERS[scale][:2]


def measure(experiment, op: str) -> Measured:
    """One operator: the first render of the image at the sweep's first γ, then the median
    (and best) of ``moves`` slider releases along its γ range, each on the re-tune path
    (raises :class:`AssertionError` otherwise; the first render: a full pass when the image is
    new to the explorer, else a re-tune), and the operator's own time at the last γ."""
    import numpy as np
    import torch

    import operators

    ex, mid = explorer(experiment.scale)
    # the first render of the image is a full pass; another operator on it re-tunes (the
    # cached features do not depend on the operator's code)
    expected = "re-tune" if (ex, IMAGE) in _RENDERED else "full pass"
    claim(ex.image(IMAGE).shape[:2] == (SIDE, SIDE), f"{IMAGE} is not {SIDE}² in the explorer")
    moves = SETTINGS[experiment.scale][2]
    lo, hi = operators.get(op).gamma_range
    gammas = [float(g) for g in np.geomspace(lo, hi, moves + 1)]
    body = lambda g: {"model": mid, "op": op, "image": IMAGE, "gamma": g}  # noqa: E731
    t = time.perf_counter()
    first = ex.render(body(gammas[0]))
    first_ms = (time.perf_counter() - t) * 1e3
    _RENDERED.add((ex, IMAGE))
    claim(first["path"] == expected, f"{op}: first render by {first['path']!r}, not {expected}")
    times = []
    for g in gammas[1:]:
        t = time.perf_counter()
        r = ex.render(body(g))
        times.append((time.perf_counter() - t) * 1e3)
        claim(r["path"] == "re-tune", f"{op} at γ {g}: path {r['path']!r}, not a re-tune")
    truth = ex.truth(body(gammas[-1]))
    median = statistics.median(times)
    return Measured([{
        "model": mid, "operator": op, "size": f"{SIDE}x{SIDE}",
        "first_render_ms": first_ms, "first_render_path": first["path"],
        "release_to_image_ms": median,
        "release_to_image_best_ms": min(times), "network_retune_ms": r["net_ms"],
        "operator_ms": truth["op_ms"], "operator_over_release": truth["op_ms"] / median,
        "target_ms": TARGET_MS, "within_target": bool(median <= TARGET_MS),
        "moves": len(times), "threads": torch.get_num_threads()}])


def check(measured: Measured, scale: str) -> None:
    """Every slider release took some time (the paths are checked while measuring: the first
    render of the image a full pass, then re-tunes, whatever the operator)."""
    for r in measured.rows:
        claim(r["release_to_image_ms"] > 0 and r["operator_ms"] > 0, r)


def write(experiment, results_dir, df, crops, started: float, **facts) -> None:
    """The CSV (the rows as measured), LaTeX and sidecar (side, target, torch, threads)."""
    import torch

    write_table(df, NAME, results_dir,
                provenance(experiment.scale, started, side=SIDE, target_ms=TARGET_MS,
                           torch=torch.__version__, threads=torch.get_num_threads(),
                           model=model_note(experiment.scale), **facts),
                caption=CAPTION)


def model_note(scale: str) -> str:
    """What the ``model`` column names, for the sidecar: the zoo's real-time model, or the
    untrained stand-in of the scale's width when the zoo has none."""
    from model import zoo

    entry = _EXPLORERS.get(scale)
    if (entry[2] is None) if entry else ("realtime-tpami10" in zoo.names()):
        return "realtime-tpami10: the zoo's real-time model"
    width, dilations, _ = SETTINGS[scale]
    return (f"ckpt1: an untrained real-time network (width {width}, dilations "
            f"{list(dilations)}, operators {', '.join(OPS)}; the zoo has no realtime-tpami10 "
            "yet); the time does not depend on the weights")


TABLES = (Table(NAME, "explore_speed", units=units, measure=measure, check=check, write=write,
                suite="benchmarks/test_explore_speed.py"),)
