"""Uncertainty of a comparison over test crops: a paired bootstrap interval, a
leave-one-photograph-out sign check, and the verdict a stated difference gets (issue 24).

Every model table scores the same test crops with every model, so a difference between two
models (decouple − single, joint − one-operator, method − input, ...) is a mean of per-crop
differences. :func:`paired_interval` resamples the crop indices jointly for both models (the
pairing: a crop that is hard for one model is hard for the other) with
``scipy.stats.bootstrap`` (``paired=True``, percentile interval, a fixed seed), so an interval
is the same on every run of the same CSV.

Crops of one photograph are not independent (the test split holds a few crops of each of a few
photographs), so the interval, which treats crops as exchangeable, is too narrow when a
difference is carried by one photograph. The leave-one-photograph-out check recomputes the mean
difference without each photograph in turn; a difference whose sign changes when one photograph
is left out is not a finding whatever its interval, and :func:`verdict` says ``inconclusive``.
"""
from __future__ import annotations

import numpy as np

#: bootstrap resamples and the seed of their generator (fixed: the same CSV gives the same
#: interval)
N_RESAMPLES = 9999
SEED = 0
CONFIDENCE = 0.95
#: the words of :func:`verdict`
VERDICTS = ("supported", "contradicted", "inconclusive")


def paired_interval(a, b, photos=None, *, confidence: float = CONFIDENCE,
                    n_resamples: int = N_RESAMPLES, seed: int = SEED) -> dict:
    """The mean of ``a − b`` over paired crops with its paired bootstrap interval.

    ``a`` and ``b``: one score per crop (the same crops in the same order); ``photos``: each
    crop's source photograph (for the leave-one-photograph-out check; None: no check).
    Returns ``diff`` (mean of a − b), ``lo``/``hi`` (the percentile bootstrap interval at
    ``confidence`` over ``n_resamples`` resamples of the crop indices, drawn from
    ``numpy.random.default_rng(seed)``), ``n`` (crops), ``photos`` (how many), ``lopo_min``/
    ``lopo_max`` (the mean difference without each photograph in turn; NaN with fewer than two
    photographs) and ``lopo_same_sign`` (every one of them has the sign of ``diff``).
    """
    from scipy.stats import bootstrap

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired scores need two 1-D arrays of one length, got {a.shape} and "
                         f"{b.shape}")
    if len(a) < 2:
        raise ValueError(f"a bootstrap interval needs at least 2 paired crops, got {len(a)}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("paired scores must be finite")
    d = a - b
    out = {"diff": float(d.mean()), "n": len(d)}
    if np.ptp(d) == 0:  # every crop the same difference: no spread to resample
        out.update(lo=float(d[0]), hi=float(d[0]))
    else:
        import inspect

        gen = np.random.default_rng(seed)  # scipy < 1.15 names it random_state
        kw = {"rng" if "rng" in inspect.signature(bootstrap).parameters else "random_state": gen}
        res = bootstrap((a, b), _mean_difference, paired=True, vectorized=True,
                        confidence_level=confidence, n_resamples=n_resamples,
                        method="percentile", **kw)
        out.update(lo=float(res.confidence_interval.low),
                   hi=float(res.confidence_interval.high))
    out.update(leave_one_photo_out(d, photos))
    return out


def _mean_difference(x, y, axis=-1):
    return x.mean(axis=axis) - y.mean(axis=axis)


def leave_one_photo_out(d, photos) -> dict:
    """``photos`` (distinct photographs), ``lopo_min``/``lopo_max`` (the mean of ``d`` without
    each photograph's crops in turn) and ``lopo_same_sign`` (all of them have the sign of the
    mean of ``d``; True without photographs or with only one, where there is nothing to
    leave out)."""
    d = np.asarray(d, dtype=np.float64)
    if photos is None:
        return {"photos": 0, "lopo_min": float("nan"), "lopo_max": float("nan"),
                "lopo_same_sign": True}
    photos = np.asarray(photos)
    if photos.shape != d.shape:
        raise ValueError(f"one photograph per crop: {photos.shape} for {d.shape} crops")
    kinds = list(dict.fromkeys(photos.tolist()))
    if len(kinds) < 2:
        return {"photos": len(kinds), "lopo_min": float("nan"), "lopo_max": float("nan"),
                "lopo_same_sign": True}
    means = np.array([d[photos != p].mean() for p in kinds])
    sign = np.sign(d.mean())
    return {"photos": len(kinds), "lopo_min": float(means.min()),
            "lopo_max": float(means.max()),
            "lopo_same_sign": bool(sign != 0 and (np.sign(means) == sign).all())}


def verdict(interval: dict, claimed_sign: int) -> str:
    """The verdict on a stated difference (``claimed_sign`` +1: the claim is a > b; -1: a < b)
    from :func:`paired_interval`'s result: ``inconclusive`` when the interval contains 0 or
    when leaving one photograph out changes the sign of the mean; else ``supported`` when the
    interval is on the claimed side of 0, ``contradicted`` when it is on the other."""
    if claimed_sign not in (1, -1):
        raise ValueError(f"claimed_sign must be +1 or -1, got {claimed_sign!r}")
    lo, hi = interval["lo"], interval["hi"]
    if not (lo > 0 or hi < 0) or not interval.get("lopo_same_sign", True):
        return "inconclusive"
    return "supported" if (lo > 0) == (claimed_sign > 0) else "contradicted"


def intervals_by_gamma(crops, a: str, b: str, value: str = "psnr") -> dict:
    """``γ as text ("0.02") → interval`` of model ``a`` − model ``b`` on one operator's
    per-crop scores (a DataFrame with ``model``, ``gamma``, ``crop``, ``photo`` and ``value``), paired by
    crop at each γ; and ``"ave."`` → the interval of each crop's mean over the γ (of the crops
    every γ has), the difference the paper's "ave." columns state."""
    wide = crops.pivot_table(index=["gamma", "crop", "photo"], columns="model", values=value)
    out = {}
    for g, d in wide.groupby(level="gamma"):
        out[f"{g:g}"] = paired_interval(d[a], d[b], d.index.get_level_values("photo"))
    counts = wide.groupby(level=["crop", "photo"]).size()
    per_crop = wide.groupby(level=["crop", "photo"]).mean()  # each crop's mean over γ
    per_crop = per_crop[counts == wide.index.get_level_values("gamma").nunique()]
    out["ave."] = paired_interval(per_crop[a], per_crop[b],
                                  per_crop.index.get_level_values("photo"))
    return out


def interval_columns(prefix: str, interval: dict) -> dict:
    """A table's columns for an interval: ``<prefix>_lo``, ``<prefix>_hi`` and
    ``<prefix>_lopo`` (the leave-one-photograph-out sign check)."""
    return {f"{prefix}_lo": interval["lo"], f"{prefix}_hi": interval["hi"],
            f"{prefix}_lopo": interval["lopo_same_sign"]}
