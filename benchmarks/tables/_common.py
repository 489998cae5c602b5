"""What several model tables do alike: load a trained model, run it over crops, score outputs,
read the test split, and say which models are behind a table's rows."""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

import operators


def table_ops(names: Iterable[str], ops=None) -> list[str]:
    """``names`` (a table's operators, in its order) that are among ``ops`` (names or groups,
    :func:`operators.resolve`; None: all of them)."""
    if ops is None:
        return list(names)
    keep = set(operators.resolve(ops))
    return [o for o in names if o in keep]


def predictor(experiment, run):
    """The trained model of ``run`` (trained or resumed in the cache first if needed)."""
    from model.predict import load

    return load(experiment.ensure(run), experiment.device)


def run_model(pred, sources: np.ndarray, op: str, gamma: float) -> np.ndarray:
    """``pred``'s outputs (N, H, W, 3) uint8 for ``sources`` (N, H, W, 3) uint8 at ``op``, γ, in
    batches of 16."""
    import torch

    from model.predict import to_uint8

    x = torch.from_numpy(np.ascontiguousarray(sources.transpose(0, 3, 1, 2)))
    out = [to_uint8(pred.run(x[i:i + 16], op, gamma)) for i in range(0, len(x), 16)]
    return torch.cat(out).permute(0, 2, 3, 1).cpu().numpy()


def scores(outs: np.ndarray, refs: np.ndarray) -> tuple[float, float]:
    """Mean PSNR and SSIM (the paper's protocol, :mod:`model.metrics`) of ``outs`` against
    ``refs``, image by image."""
    from model.metrics import psnr, ssim

    return (float(np.mean([psnr(o, r) for o, r in zip(outs, refs)])),
            float(np.mean([ssim(o, r) for o, r in zip(outs, refs)])))


_SOURCES: dict[tuple[str, int], np.ndarray] = {}


def source_crops(experiment) -> np.ndarray:
    """The test split's source crops (N, S, S, 3) uint8 of the experiment's dataset, read once
    per process (the γ sweeps and the figures run the models on them)."""
    from datagen.store import SPLITS, open_file

    data = experiment.data()
    key = (str(data), data.stat().st_mtime_ns)
    if key not in _SOURCES:
        with open_file(data) as f:
            test = np.flatnonzero(f["sources/split"][:] == SPLITS["test"])
            if not len(test):
                raise ValueError(f"{data} has no test crops")
            _SOURCES.clear()  # one dataset at a time
            _SOURCES[key] = f["sources/pixels"][test.tolist()]
    return _SOURCES[key]


def runs_behind(df: pd.DataFrame, archs) -> list:
    """The Table 1 models of ``archs`` behind a table's operators (``df.operator``), for its
    provenance."""
    from .._experiments import table1_runs

    return [r for r in table1_runs(list(dict.fromkeys(df.operator))) if r.arch in archs]
