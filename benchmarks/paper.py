"""The papers' own figures, typed once: what our tables print beside their numbers.

Fan et al., "Decouple Learning for Parameterized Image Operators", ECCV 2018, and its TPAMI 2019
version. The tables (:mod:`benchmarks.tables`) and the benchmark tests read them from here; a
figure the paper does not give is absent (the tables print NaN / ``--`` for it).
"""
from __future__ import annotations

#: ECCV 2018 / TPAMI 2019 Table 1 averages per operator: PSNR single, PSNR numerous (the
#: decouple network trained on continuously sampled γ), SSIM single, SSIM numerous
PAPER_TABLE1 = {
    "l0": (36.11, 35.25, 0.981, 0.979), "wls": (41.52, 40.91, 0.990, 0.990),
    "rtv": (40.86, 40.55, 0.990, 0.990), "rgf": (38.68, 37.74, 0.986, 0.984),
    "wmf": (39.66, 38.40, 0.985, 0.980), "llf": (32.93, 32.94, 0.983, 0.983),
}

#: the ten operators of TPAMI 2019 Table 6, in its column order
TABLE6_ORDER = ("l0", "wls", "rtv", "rgf", "wmf", "llf", "llf_remap", "wls_enhance", "style",
                "pencil")
_T6 = {
    "bgu": ((31.76, 27.03, 26.15, 22.71, 21.27, 26.97, 33.05, 26.93, 14.31, 16.11),
            (.912, .915, .848, .776, .765, .936, .978, .931, .673, .427)),
    "dbl": ((28.67, 30.63, 28.52, 27.11, 26.88, 25.13, 29.34, 28.29, 25.08, 19.61),
            (.852, .890, .826, .805, .786, .899, .945, .944, .887, .502)),
    "ours": ((31.81, 36.59, 34.28, 33.29, 34.00, 29.74, 32.41, 34.40, 26.66, 25.61),
             (.946, .971, .948, .945, .940, .967, .969, .986, .927, .835)),
}
#: TPAMI 2019 Table 6: method (bgu, dbl, ours) -> operator -> (PSNR, SSIM); "ours" there is the
#: real-time (single-layer) model trained jointly on the ten operators
PAPER_TABLE6 = {k: {o: (p, s) for o, p, s in zip(TABLE6_ORDER, ps, ss)}
                for k, (ps, ss) in _T6.items()}
