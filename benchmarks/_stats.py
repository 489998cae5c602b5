"""Uncertainty of a comparison over test crops: a paired bootstrap interval, a
leave-one-photograph-out sign check, and the verdict a stated difference gets (issue 24).

Every model table scores the same test crops with every model, so a difference between two
models (decouple − single, joint − one-operator, method − input, variant − conv(all), ...) is a
mean of per-crop differences. :func:`difference` takes a table's per-crop scores
(``<table>.crops.csv``: model, operator, γ, crop, photograph, PSNR, SSIM) and computes a
difference as the table states it (per operator the mean over its γ, then over the operators),
with a percentile bootstrap interval that resamples the crops jointly for both models and for
every operator and γ a crop has (the pairing: a crop that is hard for one model is hard for the
other), with ``scipy.stats.bootstrap`` (vectorised, 9,999 resamples, a fixed seed), so an
interval is the same on every run of the same CSV. :func:`paired_interval` is the same for two
columns of scores.

Crops of one photograph are not independent (the test split holds a few crops of each of a few
photographs), so the interval, which treats crops as exchangeable, is too narrow when a
difference is carried by one photograph. The leave-one-photograph-out check recomputes the mean
difference without each photograph in turn; a difference whose sign changes when one photograph
is left out is not a finding whatever its interval, and :func:`verdict` says ``inconclusive``;
so it does for a comparison of a model that is not above its input by more than its interval
(:func:`learned`), which has not learnt the operator.
"""
from __future__ import annotations

import numpy as np

#: bootstrap resamples and the seed of their generator (fixed: the same CSV gives the same
#: interval)
N_RESAMPLES = 9999
SEED = 0
#: resamples evaluated at once (bounds the memory of the vectorised statistic)
BATCH = 2500
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
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired scores need two 1-D arrays of one length, got {a.shape} and "
                         f"{b.shape}")
    if len(a) < 2:
        raise ValueError(f"a bootstrap interval needs at least 2 paired crops, got {len(a)}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("paired scores must be finite")
    d = a - b
    return _interval(d[:, None], np.ones((len(d), 1), bool), np.ones(1), photos,
                     confidence=confidence, n_resamples=n_resamples, seed=seed)


def _weighted_mean(d, mask, weights, counts):
    """The statistic of every difference this module states: the weighted mean over cells of
    each cell's mean of ``d`` (units × cells, 0 where ``mask`` is False) over its units, each
    unit counted ``counts`` times (resamples × units); a cell without units in a resample drops
    out and the weights of the others are renormalised."""
    sums = counts @ np.where(mask, d, 0.0)
    n = counts @ mask.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / n
    ok = n > 0
    return (np.where(ok, means, 0.0) @ weights) / (ok @ weights)


def _interval(d, mask, weights, photos, *, confidence, n_resamples, seed) -> dict:
    """:func:`_weighted_mean` of ``d`` with its percentile bootstrap interval over units
    (``scipy.stats.bootstrap`` resampling the unit indices, as ``paired=True`` does, so every
    cell of a unit stays with it) and the leave-one-photograph-out check."""
    import inspect

    from scipy.stats import bootstrap

    units = d.shape[0]
    whole = float(_weighted_mean(d, mask, weights, np.ones((1, units)))[0])
    out = {"diff": whole, "n": units}
    if np.ptp(d[mask]) == 0:  # every crop the same difference: no spread to resample
        out.update(lo=whole, hi=whole, **_lopo(d, mask, weights, photos, whole))
        return out

    def statistic(idx, axis=-1):  # idx: (..., units) resampled unit indices
        idx = np.asarray(idx, dtype=np.int64)
        flat = idx.reshape(-1, units)
        rows = np.arange(len(flat))[:, None] * units
        counts = np.bincount((flat + rows).ravel(), minlength=len(flat) * units)
        stat = _weighted_mean(d, mask, weights, counts.reshape(len(flat), units))
        return stat.reshape(idx.shape[:-1])

    gen = np.random.default_rng(seed)  # scipy < 1.15 names it random_state
    kw = {"rng" if "rng" in inspect.signature(bootstrap).parameters else "random_state": gen}
    res = bootstrap((np.arange(units),), statistic, vectorized=True,
                    confidence_level=confidence, n_resamples=n_resamples, batch=BATCH,
                    method="percentile", **kw)
    out.update(lo=float(res.confidence_interval.low), hi=float(res.confidence_interval.high))
    out.update(_lopo(d, mask, weights, photos, whole))
    return out


def _lopo(d, mask, weights, photos, whole: float) -> dict:
    """The leave-one-photograph-out check of :func:`_weighted_mean` (``whole``: its value with
    every unit); see :func:`leave_one_photo_out`."""
    nan = float("nan")
    if photos is None:
        return {"photos": 0, "lopo_min": nan, "lopo_max": nan, "lopo_same_sign": True}
    photos = np.asarray(photos)
    if photos.shape != (d.shape[0],):
        raise ValueError(f"one photograph per crop: {photos.shape} for {d.shape[0]} crops")
    kinds = list(dict.fromkeys(photos.tolist()))
    if len(kinds) < 2:
        return {"photos": len(kinds), "lopo_min": nan, "lopo_max": nan, "lopo_same_sign": True}
    means = _weighted_mean(d, mask, weights,
                           np.stack([(photos != p).astype(np.float64) for p in kinds]))
    sign = np.sign(whole)
    return {"photos": len(kinds), "lopo_min": float(np.min(means)),
            "lopo_max": float(np.max(means)),
            "lopo_same_sign": bool(sign != 0 and (np.sign(means) == sign).all())}


def leave_one_photo_out(d, photos) -> dict:
    """``photos`` (distinct photographs), ``lopo_min``/``lopo_max`` (the mean of ``d`` without
    each photograph's crops in turn) and ``lopo_same_sign`` (all of them have the sign of the
    mean of ``d``; True without photographs or with only one, where there is nothing to
    leave out)."""
    d = np.asarray(d, dtype=np.float64)
    return _lopo(d[:, None], np.ones((len(d), 1), bool), np.ones(1), photos, float(d.mean()))


def learned(interval: dict) -> bool:
    """Whether a model is above its input by more than its interval: ``interval`` is model −
    input (:func:`difference`), its lower end above 0 and its sign kept with any one
    photograph left out."""
    return interval["lo"] > 0 and bool(interval.get("lopo_same_sign", True))


def verdict(interval: dict, claimed_sign: int, *, above_input=()) -> str:
    """The verdict on a stated difference (``claimed_sign`` +1: the claim is a > b; -1: a < b)
    from :func:`paired_interval`'s or :func:`difference`'s result: ``inconclusive`` when the
    interval contains 0 or when leaving one photograph out changes the sign of the mean; else
    ``supported`` when the interval is on the claimed side of 0, ``contradicted`` when it is on
    the other.

    ``above_input``: the intervals of the compared model(s) − their input (model − input). A
    model that is not above its input by more than its interval (:func:`learned`) has not
    learnt the operator, and how it ranks against another model says how close each stays to
    the input, not which method is better: the claim is ``inconclusive`` whatever its own
    interval says. (For the claim "the model beats its input" itself, pass that interval with
    ``claimed_sign`` +1 and nothing here.)"""
    if claimed_sign not in (1, -1):
        raise ValueError(f"claimed_sign must be +1 or -1, got {claimed_sign!r}")
    if not all(learned(iv) for iv in above_input):
        return "inconclusive"
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


def claim_columns(prefix: str, interval: dict, claimed_sign: int | None = None, *,
                  above_input=()) -> dict:
    """A table's columns for a stated difference: ``<prefix>`` (the difference), the interval
    (:func:`interval_columns`) and, for a claim (``claimed_sign`` ±1), ``<prefix>_verdict``
    (:func:`verdict` with ``above_input``)."""
    out = {prefix: interval["diff"], **interval_columns(prefix, interval)}
    if claimed_sign is not None:
        out[f"{prefix}_verdict"] = verdict(interval, claimed_sign, above_input=above_input)
    return out


def no_interval(prefix: str) -> dict:
    """The columns of :func:`claim_columns` for a difference not measured (NaN, no verdict)."""
    nan = float("nan")
    return {prefix: nan, f"{prefix}_lo": nan, f"{prefix}_hi": nan, f"{prefix}_lopo": None,
            f"{prefix}_verdict": ""}


#: what :func:`difference` pairs and groups by: the columns of a per-crop frame
#: (``<table>.crops.csv``)
CROP_COLUMNS = ("model", "operator", "gamma", "crop", "photo", "psnr", "ssim")


def difference(crops, a: str, b: str, *, value: str = "psnr", confidence: float = CONFIDENCE,
               n_resamples: int = N_RESAMPLES, seed: int = SEED) -> dict:
    """Model ``a`` − model ``b`` as a table states it, with its paired bootstrap interval and
    the leave-one-photograph-out check (the keys of :func:`paired_interval`, and ``cells``).

    ``crops``: per-crop scores (:data:`CROP_COLUMNS`: one row per model, operator, γ and test
    crop; γ NaN for a fixed-effect operator), restricted by the caller to the comparison's
    scope: one operator at one γ, one operator over its test γ, or several operators. The
    difference is the table's own statistic: per cell (operator, γ) the mean over its crops of
    a − b, averaged over each operator's γ, then over the operators (the paper's "ave." and
    "avg" columns: an operator counts once however many γ it has).

    Pairing and resampling: crop ``c`` of a cell under ``a`` is paired with crop ``c`` of the
    same cell under ``b`` (each cell must have the same crops under both, or the comparison is
    refused). The bootstrap resamples the crops (source-crop indices), not the rows: a drawn
    crop brings all its cells along, so the correlation of one crop's scores across γ and
    operators is kept; ``n_resamples`` resamples from ``numpy.random.default_rng(seed)``,
    percentile interval (``scipy.stats.bootstrap``, vectorised).

    Crops of one photograph: they are correlated (a few photographs give all the test crops),
    which a crop bootstrap treats as independent, so the interval can be too narrow for a
    difference one photograph carries. The check recomputes the statistic without each
    photograph's crops in turn (``lopo_min``/``lopo_max``); ``lopo_same_sign`` False makes
    :func:`verdict` say ``inconclusive``.
    """
    import pandas as pd

    missing = [c for c in ("model", "operator", "gamma", "crop", "photo", value)
               if c not in crops]
    if missing:
        raise ValueError(f"per-crop scores need the columns {', '.join(missing)}")
    sub = crops[crops["model"].isin([a, b])]
    for m in (a, b):
        if not (sub["model"] == m).any():
            raise ValueError(f"no per-crop scores of {m!r} (models: "
                             f"{', '.join(map(str, dict.fromkeys(crops['model'])))})")
    sub = sub.assign(gamma=pd.to_numeric(sub["gamma"]).astype(float).fillna(np.inf))
    keys = ["model", "operator", "gamma", "crop"]
    if sub.duplicated(keys).any():
        raise ValueError(f"{a} − {b}: a crop is scored twice for one model, operator and γ")
    photo = sub.groupby("crop")["photo"].agg(lambda p: p.nunique() == 1)
    if not photo.all():
        raise ValueError(f"crop {photo.index[~photo.to_numpy()][0]} has two photographs")
    wide = sub.pivot(index="crop", columns=["model", "operator", "gamma"], values=value)
    sa, sb = wide[a], wide[b]
    if set(sa.columns) != set(sb.columns) or not (sa.notna() == sb[sa.columns].notna()).all(
            axis=None):
        raise ValueError(f"{a} − {b}: the two models are not scored on the same crops of the "
                         "same operators and γ, so they cannot be paired")
    cells = list(sa.columns)
    x, y = sa[cells].to_numpy(np.float64), sb[cells].to_numpy(np.float64)
    mask = ~np.isnan(x)
    if not (np.isfinite(x[mask]).all() and np.isfinite(y[mask]).all()):
        raise ValueError("paired scores must be finite")
    if len(wide) < 2:
        raise ValueError(f"a bootstrap interval needs at least 2 paired crops, got {len(wide)}")
    ops = [op for op, _ in cells]
    per_op = {op: ops.count(op) for op in ops}
    weights = np.array([1.0 / (len(per_op) * per_op[op]) for op in ops])
    photos = sub.groupby("crop")["photo"].first().loc[wide.index].to_numpy()
    out = _interval(np.where(mask, x - y, 0.0), mask, weights, photos, confidence=confidence,
                    n_resamples=n_resamples, seed=seed)
    out["cells"] = len(cells)
    return out


def crop_rows(model: str, evaluated: list[dict], identity: str | None = None) -> list[dict]:
    """The per-crop frame's rows (:data:`CROP_COLUMNS`) of ``model`` from what
    :func:`model.evaluate.evaluate` put into its ``crops`` list; with ``identity`` (a model
    name, e.g. ``"identity"``), also the input's scores on the same crops under that name (the
    "method − input" comparisons)."""
    keys = ("operator", "gamma", "crop", "photo")
    rows = [{"model": model, **{k: c[k] for k in keys}, "psnr": c["psnr"], "ssim": c["ssim"]}
            for c in evaluated]
    if identity is not None:
        rows += [{"model": identity, **{k: c[k] for k in keys}, "psnr": c["identity_psnr"],
                  "ssim": c["identity_ssim"]} for c in evaluated]
    return rows


def in_scope(crops, operators=None, gamma=None):
    """The per-crop rows of ``operators`` (a name or names; None: all) at ``gamma`` (a number
    or its text, as a table's ``gamma`` column holds it; None, NaN, ``"ave."`` or ``"fixed"``:
    every γ), the scope of one table cell's difference."""
    import pandas as pd

    out = crops
    if operators is not None:
        out = out[out["operator"].isin([operators] if isinstance(operators, str) else operators)]
    if gamma is not None and str(gamma) not in ("ave.", "fixed", "nan", ""):
        out = out[np.isclose(pd.to_numeric(out["gamma"]).astype(float), float(gamma))]
    return out
