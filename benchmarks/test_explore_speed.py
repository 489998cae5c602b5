"""The γ explorer's responsiveness: server time from a slider release to the new image, at 512²,
on the re-tune path, with the operator's own time for the same γ beside it.

What is timed is what ``python -m model explore`` does for one ``/api/render`` request
(:meth:`model.explore.Explorer.render`: the γ check, ``Predictor.retune`` on the cached
features, PNG encoding of the output), without the HTTP round trip; ``operator_ms`` is
:meth:`Explorer.truth` for that γ the first time (the operator run on the full image; the page
caches it). The model is the zoo's real-time model (``realtime-tpami10``) when the zoo has it;
otherwise (a zoo without it) an untrained real-time network of the scale's width (speed does not
depend on the weights). The issue's target is 150 ms on 2 CPU cores; nothing here asserts a
time (a busy machine is slower), the table says whether it was met. Writes ``explore_speed``.
"""
from __future__ import annotations

import statistics
import time

import numpy as np
import pytest
import torch

from ._report import collect_rows, provenance, write_table

TARGET_MS = 150.0
SIDE = 512
# (width of the fallback network, its dilations, slider moves timed)
SETTINGS = {"smoke": (8, (2, 4), 3), "small": (16, (2, 4, 4, 8, 8, 16, 1), 9),
            "paper": (64, (2, 4, 4, 8, 8, 16, 1), 9)}
OPS = ("l0", "wls")


@pytest.fixture(scope="module")
def rows(scale, results_dir):
    yield from collect_rows(lambda df, started: write_table(
        df, "explore_speed", results_dir,
        provenance(scale, started, side=SIDE, target_ms=TARGET_MS, torch=torch.__version__,
                   threads=torch.get_num_threads()),
        caption="γ explorer: server ms from slider release to the new image (re-tune path, "
                f"{SIDE}² image) and the operator's own ms for that γ"))


@pytest.fixture(scope="module")
def explorer(scale, tmp_path_factory):
    pytest.importorskip("starlette")
    from model import zoo
    from model.checkpoint import save
    from model.config import ModelConfig
    from model.explore import Explorer
    from model.registry import build_model

    if "realtime-tpami10" in zoo.names():
        return Explorer(max_side=SIDE), "realtime-tpami10"
    width, dilations, _ = SETTINGS[scale]
    torch.manual_seed(0)
    cfg = ModelConfig(arch="realtime", ops=OPS, width=width, dilations=dilations, residual=True,
                      trained_range={o: [0.0, 1e9] for o in OPS}, preset={"iterations": 1})
    net, _ = build_model(cfg)
    path = tmp_path_factory.mktemp("explore") / "realtime.pt"
    save(path, {"config": cfg.to_dict(), "model": net.state_dict(), "iteration": 1})
    return Explorer([path], max_side=SIDE), "ckpt1"


@pytest.mark.parametrize("op", OPS)
def test_slider_release_to_new_image(explorer, rows, scale, op):
    import operators

    ex, mid = explorer
    image = "astronaut.png"
    assert ex.image(image).shape[:2] == (SIDE, SIDE)
    moves = SETTINGS[scale][2]
    lo, hi = operators.get(op).gamma_range
    gammas = [float(g) for g in np.geomspace(lo, hi, moves + 1)]
    body = lambda g: {"model": mid, "op": op, "image": image, "gamma": g}  # noqa: E731
    t = time.perf_counter()
    first = ex.render(body(gammas[0]))
    first_ms = (time.perf_counter() - t) * 1e3
    times = []
    for g in gammas[1:]:
        t = time.perf_counter()
        r = ex.render(body(g))
        times.append((time.perf_counter() - t) * 1e3)
        assert r["path"] == "re-tune"
    truth = ex.truth(body(gammas[-1]))
    median = statistics.median(times)
    rows.append({"model": mid, "operator": op, "size": f"{SIDE}x{SIDE}",
                 "first_render_ms": first_ms, "first_render_path": first["path"], "release_to_image_ms": median,
                 "release_to_image_best_ms": min(times), "network_retune_ms": r["net_ms"],
                 "operator_ms": truth["op_ms"], "operator_over_release": truth["op_ms"] / median,
                 "target_ms": TARGET_MS, "within_target": bool(median <= TARGET_MS),
                 "moves": len(times), "threads": torch.get_num_threads()})
    # the first render of the image is a full pass; another operator on it re-tunes (the
    # cached features do not depend on the operator's code)
    assert first["path"] == ("full pass" if op == OPS[0] else "re-tune") and median > 0
