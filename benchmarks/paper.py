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

#: ECCV 2018 / TPAMI 2019 Table 2 (restoration): per task and test γ, PSNR single, PSNR numerous
PAPER_TABLE2_PSNR = {
    "sr": {2.0: (31.78, 31.62), 3.0: (28.78, 28.76), 4.0: (27.31, 27.31)},
    "denoise": {15.0: (31.17, 31.07), 25.0: (28.94, 28.98), 50.0: (26.22, 26.14)},
    "jpeg": {10.0: (29.26, 29.17), 20.0: (31.49, 31.43)},
}
#: ECCV 2018 / TPAMI 2019 Table 2 averages per task: PSNR single, PSNR numerous, SSIM single,
#: SSIM numerous
PAPER_TABLE2_AVE = {
    "sr": (29.29, 29.23, 0.806, 0.804), "denoise": (28.77, 28.73, 0.808, 0.807),
    "jpeg": (30.37, 30.30, 0.849, 0.849),
}

#: the columns of TPAMI 2019 Table 3, in its order
TABLE3_COLUMNS = ("l0", "wls", "rtv", "rgf", "wmf", "llf", "sr", "denoise", "jpeg", "rain")
#: TPAMI 2019 Table 3 per row: PSNR per column (:data:`TABLE3_COLUMNS`), PSNR average, SSIM
#: average (the paper gives SSIM as averages only)
PAPER_TABLE3 = {
    "1 op": ((35.25, 40.91, 40.55, 37.74, 38.40, 32.94, 29.23, 28.73, 30.30, 29.86), 34.40,
             0.926),
    "6/4 ops": ((33.27, 37.39, 37.00, 35.41, 36.06, 30.08, 28.89, 28.67, 30.10, 30.32), 32.72,
                0.918),
    "10 ops": ((32.67, 36.59, 36.03, 34.64, 35.08, 29.77, 28.53, 28.36, 29.69, 30.45), 32.18,
               0.913),
    "γ as input, 10 ops": ((31.01, 34.85, 34.20, 33.10, 33.61, 28.58, 28.21, 28.05, 29.48,
                            29.12), 31.02, 0.899),
}
#: ECCV 2018 Table 4 (the shock filter instead of LLF) per row, what the paper gives: the shock
#: column and the one-operator restoration columns, the PSNR and SSIM averages
PAPER_TABLE4 = {
    "1 op": ({"shock": 37.88, "sr": 29.13, "denoise": 28.70, "jpeg": 30.21, "rain": 29.86},
             34.86, 0.925),
    "6/4 ops": ({"shock": 35.27}, 33.49, 0.919),
    "10 ops": ({"shock": 33.57}, 32.89, 0.914),
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

#: TPAMI 2019 Table 12 per variant (its arch key): average PSNR, average SSIM over its ten
#: operators, and the L0 PSNR where the paper gives it (else None); "decouple" is its conv(all)
PAPER_TABLE12 = {"norm:1": (31.21, .945, 31.06), "norm:7": (31.14, .943, None),
                 "norm:14": (30.90, .939, None), "norm:19": (28.67, .889, 28.53),
                 "conv:19": (30.85, .932, None), "conv-ch1:19": (30.03, .916, None),
                 "conv-ch2:19": (24.96, .778, None), "norm:all": (31.62, .947, None),
                 "decouple": (31.63, .947, 31.64)}
