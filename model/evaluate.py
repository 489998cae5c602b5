"""``python -m model eval``: PSNR/SSIM per operator and test γ with the paper's protocol.

Each operator of a (joint) model is scored on its own test pairs by its protocol
(:func:`model.metrics.protocol`: RGB for filters and rain, one channel, Y, for SR and
deblocking, gray for denoising; docs/joint.md). A degradation the model is blind to (a joint
model, paper.md §5) is still reported per test γ (σ, q, scale) of the file: the same network
output whatever γ, scored against each γ's own pairs, and the average over them. A fixed-effect
operator has one row, γ NaN.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

import operators
from datagen.dataset import PairDataset

from .metrics import score
from .predict import Predictor, to_uint8

#: how the CSV of ``python -m model eval --csv`` begins (its header): an existing file that does
#: not is not ours, and is never replaced
CSV_MARKER = "operator,gamma,"


def _gammas(predictor: Predictor, data, op: str, gammas) -> list:
    """The γ rows of ``op``: [None] for a fixed-effect operator, else ``gammas`` or the test γ
    present in the file (for a single-γ model, its γ)."""
    if not operators.get(op).has_gamma:
        return [None]
    if gammas:
        return list(gammas)
    test = PairDataset(data, [op], "test")
    present = sorted(set(np.round(test.gamma_values(op), 12)))
    if predictor.arch.per_gamma and predictor.config.get("gamma") is not None:
        present = [g for g in present if np.isclose(g, predictor.config["gamma"])]
    return present


def evaluate(predictor: Predictor, data, *, ops=None, gammas=None, batch: int = 8,
             identity: bool = True, crops: list | None = None) -> pd.DataFrame:
    """One row per (operator, γ): mean PSNR/SSIM over the test pairs at that γ.

    ``gammas`` (default: the test γ present in the file; for a single-γ model, its γ) restricts
    the evaluation; a fixed-effect operator has one row with γ NaN over all its test pairs.
    ``identity`` adds the input-as-output baseline's figures. Each operator is scored by its
    protocol (:func:`model.metrics.score`). ``crops``, a list, receives one dict per test pair
    (the scores the means are made of, to compare models crop by crop): ``operator``,
    ``gamma``, ``crop`` (its source crop, ``/sources`` index: the same crop for every model
    and γ), ``photo`` (the source photograph's file, ``/images/file``), ``psnr``, ``ssim``
    (and ``identity_psnr``/``identity_ssim`` with ``identity``).
    """
    photo_of = photos_of(data) if crops is not None else None
    rows = []
    for op in ops or predictor.ops:
        op = operators.get(op).name
        for g in _gammas(predictor, data, op, gammas):
            ds = PairDataset(data, [op], "test", gamma=g)
            if len(ds) == 0:
                raise ValueError(f"{data} has no test pairs of {op}" +
                                 ("" if g is None else f" at γ={g}"))
            p, s, ip, is_ = [], [], [], []
            for start in range(0, len(ds), batch):
                items = [ds[i] for i in range(start, min(len(ds), start + batch))]
                x = torch.stack([d["input"] for d in items])
                out = to_uint8(predictor.run(x, op, g)).permute(0, 2, 3, 1).cpu().numpy()
                for d, o in zip(items, out):
                    ref = d["target"].permute(1, 2, 0).numpy()
                    a, b = score(op, o, ref)
                    p.append(a)
                    s.append(b)
                    if identity:
                        a, b = score(op, d["input"].permute(1, 2, 0).numpy(), ref)
                        ip.append(a)
                        is_.append(b)
            if crops is not None:
                for k, src in enumerate(ds.index[:, 2]):
                    c = {"operator": op, "gamma": math.nan if g is None else g,
                         "crop": int(src), "photo": photo_of[int(src)], "psnr": p[k],
                         "ssim": s[k]}
                    if identity:
                        c.update(identity_psnr=ip[k], identity_ssim=is_[k])
                    crops.append(c)
            row = {"operator": op, "gamma": math.nan if g is None else g, "images": len(ds),
                   "psnr": np.mean(p), "ssim": np.mean(s)}
            if identity:
                row.update(identity_psnr=np.mean(ip), identity_ssim=np.mean(is_))
            rows.append(row)
    return pd.DataFrame(rows)


def photos_of(data) -> list[str]:
    """Each source crop's photograph (its file name, as the dataset stores it), by source crop
    index: what the per-crop scores record as ``photo`` (a table's crops of one photograph are
    correlated, :mod:`benchmarks._stats`)."""
    from datagen.store import open_file

    with open_file(data) as f:
        files = [v.decode() if isinstance(v, bytes) else str(v) for v in f["images/file"][:]]
        return [files[int(i)] for i in f["sources/image"][:]]


def with_averages(table: pd.DataFrame) -> pd.DataFrame:
    """The evaluation table with an ``ave.`` row after each operator's rows: the mean over its γ
    of the per-γ means (the paper's "ave." columns), images summed. ``gamma`` becomes text
    ("fixed" for a fixed-effect operator's NaN γ)."""
    parts = []
    for op, rows in table.groupby("operator", sort=False):
        rows = rows.astype({"gamma": object})
        rows["gamma"] = ["fixed" if isinstance(g, float) and math.isnan(g) else f"{g:g}"
                         for g in rows["gamma"]]
        ave = rows.drop(columns=["operator", "gamma"]).mean(numeric_only=True)
        ave["images"] = int(rows["images"].sum())
        parts += [rows, pd.DataFrame([{"operator": op, "gamma": "ave.", **ave.to_dict()}])]
    out = pd.concat(parts, ignore_index=True) if parts else table
    return out.astype({"images": int}) if len(out) else out
