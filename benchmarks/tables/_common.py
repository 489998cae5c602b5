"""What several model tables do alike: load a trained model, run it over crops, score outputs,
read the test split, and say which models are behind a table's rows."""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterable

import numpy as np
import pandas as pd

import operators

from .._report import write_table


def table_ops(names: Iterable[str], ops=None) -> list[str]:
    """``names`` (a table's operators, in its order) that are among ``ops`` (names or groups,
    :func:`operators.resolve`; None: all of them)."""
    if ops is None:
        return list(names)
    keep = set(operators.resolve(ops))
    return [o for o in names if o in keep]


#: loaded models kept for reuse (a joint model is a row of every column of Tables 3 and 12)
_LOADED: "OrderedDict[tuple[str, str | None], object]" = OrderedDict()
KEEP_LOADED = 8


def predictor(experiment, run):
    """The trained model of ``run`` (trained or resumed in the cache first if needed); the last
    :data:`KEEP_LOADED` loaded are kept, so a table's units that share a model load it once."""
    from model.predict import load

    key = (str(experiment.ensure(run)), experiment.device)
    if key in _LOADED:
        _LOADED.move_to_end(key)
    else:
        _LOADED[key] = load(key[0], experiment.device)
        while len(_LOADED) > KEEP_LOADED:
            _LOADED.popitem(last=False)
    return _LOADED[key]


def evaluate_op(pred, data, op: str, gammas=None, crops: list | None = None,
                name: str = "") -> dict:
    """PSNR/SSIM of a model on one operator: the mean over its test γ (the paper's "ave."; a
    fixed-effect operator has one row), with the identity's and the number of test pairs;
    ``crops`` (a list) receives the per-crop scores, the model's as ``name`` and the input's as
    ``identity`` (:func:`benchmarks._stats.crop_rows`)."""
    from model.evaluate import evaluate

    from .._stats import crop_rows

    evaluated: list | None = [] if crops is not None else None
    r = evaluate(pred, data, ops=[op], gammas=gammas, crops=evaluated)
    if not len(r):
        raise ValueError(f"{data}: no test rows of {op}")
    if crops is not None:
        crops += crop_rows(name, evaluated, identity="identity")
    return {"psnr": float(r.psnr.mean()), "ssim": float(r.ssim.mean()),
            "identity_psnr": float(r.identity_psnr.mean()),
            "identity_ssim": float(r.identity_ssim.mean()), "images": int(r.images.sum())}


def crop_frame(crops: pd.DataFrame | None) -> pd.DataFrame | None:
    """The per-crop scores with each (model, operator, γ, crop) once: a model that several rows
    of a table show, and the input, is evaluated for each of them."""
    if crops is None or not len(crops):
        return crops
    key = crops.gamma.astype(float).fillna(np.inf)
    return crops[~crops.assign(g=key).duplicated(["model", "operator", "g", "crop"])
                 ].reset_index(drop=True)


def budget_note(experiment) -> str:
    """The joint tables' training budget rule, for their sidecars (``budget``)."""
    from .._experiments import AUTHORS_BUDGET_SCALES, JOINT_CAP, Run, joint_budget

    one = Run("decouple", "l0").iterations(experiment.preset)
    ratio = joint_budget(10, experiment.scale)
    ten = Run.joint("decouple", "tpami10", ratio).iterations(experiment.preset)
    rule = (f"{ratio:g} one-operator budgets (the authors' ratio) and the authors' joint "
            "learning-rate schedule" if experiment.scale in AUTHORS_BUDGET_SCALES else
            f"min(number of operators, {JOINT_CAP}) one-operator budgets")
    return f"joint models: {rule} ({ten} iterations at this scale); one-operator models: {one}"


def write_scored(experiment, results_dir, name: str, long: pd.DataFrame, crops, started: float,
                 runs, facts: dict, *, caption: str, summary: str, **sidecar) -> None:
    """Write a model table scored per crop: ``long`` (its CSV frame) as ``name``.csv/.tex
    with its per-crop scores ``crops`` (``name``.crops.csv; None: none), and its sidecar: the
    provenance of ``runs`` (the dataset, the models behind the rows, command, commit), the
    table's own ``sidecar`` entries (the paper's table, protocol, budget rule, ...), its
    ``summary`` in words, then ``facts`` (what the run measured or was given, e.g. its
    command), in that order."""
    meta = experiment.provenance(started, runs, **sidecar, summary=summary, **facts)
    write_table(long, name, results_dir, meta, crops=crops, caption=caption)


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
