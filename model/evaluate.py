"""``python -m model eval``: PSNR/SSIM per operator and test γ with the paper's protocol."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from datagen.dataset import PairDataset

from .metrics import psnr, ssim
from .predict import Predictor, to_uint8


def evaluate(predictor: Predictor, data, *, ops=None, gammas=None, batch: int = 8,
             identity: bool = True) -> pd.DataFrame:
    """One row per (operator, γ): mean PSNR/SSIM over the test pairs at that γ.

    ``gammas`` (default: the test γ present in the file; for a single-γ model, its γ) restricts
    the evaluation. ``identity`` adds the input-as-output baseline's figures.
    """
    rows = []
    for op in ops or predictor.ops:
        test = PairDataset(data, [op], "test")
        present = sorted(set(np.round(test.gamma_values(op), 12)))
        if predictor.arch.per_gamma:
            present = [g for g in present if np.isclose(g, predictor.config["gamma"])]
        for g in gammas or present:
            ds = PairDataset(data, [op], "test", gamma=g)
            if len(ds) == 0:
                raise ValueError(f"{data} has no test pairs of {op} at γ={g}")
            p, s, ip, is_ = [], [], [], []
            for start in range(0, len(ds), batch):
                items = [ds[i] for i in range(start, min(len(ds), start + batch))]
                x = torch.stack([d["input"] for d in items])
                out = to_uint8(predictor.run(x, op, g)).permute(0, 2, 3, 1).cpu().numpy()
                for d, o in zip(items, out):
                    ref = d["target"].permute(1, 2, 0).numpy()
                    p.append(psnr(o, ref))
                    s.append(ssim(o, ref))
                    if identity:
                        inp = d["input"].permute(1, 2, 0).numpy()
                        ip.append(psnr(inp, ref))
                        is_.append(ssim(inp, ref))
            row = {"operator": op, "gamma": g, "images": len(ds), "psnr": np.mean(p),
                   "ssim": np.mean(s)}
            if identity:
                row.update(identity_psnr=np.mean(ip), identity_ssim=np.mean(is_))
            rows.append(row)
    return pd.DataFrame(rows)


def with_averages(table: pd.DataFrame) -> pd.DataFrame:
    """The evaluation table with an ``ave.`` row after each operator's rows: the mean over its γ
    of the per-γ means (the paper's "ave." columns), images summed. ``gamma`` becomes text."""
    parts = []
    for op, rows in table.groupby("operator", sort=False):
        rows = rows.astype({"gamma": object})
        rows["gamma"] = [f"{g:g}" for g in rows["gamma"]]
        ave = rows.drop(columns=["operator", "gamma"]).mean(numeric_only=True)
        ave["images"] = int(rows["images"].sum())
        parts += [rows, pd.DataFrame([{"operator": op, "gamma": "ave.", **ave.to_dict()}])]
    out = pd.concat(parts, ignore_index=True) if parts else table
    return out.astype({"images": int}) if len(out) else out

