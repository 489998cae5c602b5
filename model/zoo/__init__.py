"""The model zoo: trained networks shipped with the package, loaded by name, offline.

Each model is two files in this folder (package data, installed by ``pip install .``):

* ``NAME.safetensors``: the network's weights (the ``safetensors`` format: raw tensors and a
  JSON header, nothing is unpickled or executed when it is read);
* ``NAME.json``: its card: operators, γ range and law per operator, architecture and full
  config, the scale it was trained at, the command and commit that trained it, the dataset's
  digest and build command, the SHA-256 of the weights file, its scores on the dataset's test
  split per operator and γ (with the input's scores), and its scores on a few *check crops* cut
  from the bundled test photographs, which :func:`verify` re-measures without the dataset.

>>> import model                                  # doctest: +SKIP
>>> m = model.load("l0")                          # or "zoo:l0"; the same Predictor as a run folder
>>> out = m.apply(image_uint8, "l0", 0.05)        # doctest: +SKIP

``python -m model zoo`` lists the models; ``python -m model zoo export --runs DIR --data FILE
--out model/zoo`` re-exports them from trained run folders (the exact command is in each card);
``python -m model zoo check`` re-measures every card's check figures. docs/zoo.md has the
details.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shlex
import time
from importlib import resources
from pathlib import Path

import numpy as np

import operators
from datagen.fs import atomic_write_bytes

ZOO_FORMAT = "decouple-ops zoo v1"
PREFIX = "zoo:"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
#: side of the check crops (a multiple of 12, as SR's stored pairs, and even, as the networks
#: need) and where they are cut: the dataset's held-out test photographs at half size
CHECK_SIZE = 96
CHECK_SCALE = 0.5
CHECK_CROPS_PER_IMAGE = 1
#: how far a re-measured check figure may be from the card's (float rounding differs between
#: CPUs and BLAS builds: a few uint8 output values change by one level)
PSNR_TOL = 0.05
SSIM_TOL = 0.002


# ------------------------------------------------------------------------------- reading
#: an environment variable naming another zoo folder (a re-export to try before it replaces
#: the package's: ``DECOUPLE_ZOO=/tmp/zoo python -m model zoo check``)
ENV = "DECOUPLE_ZOO"


def folder():
    """The zoo's folder: the installed package data (a :mod:`importlib.resources`
    traversable), or the folder ``$DECOUPLE_ZOO`` names."""
    other = os.environ.get(ENV)
    if other:
        if not Path(other).is_dir():
            raise FileNotFoundError(f"${ENV}={other}: no such folder")
        return Path(other)
    return resources.files(__name__)


def names() -> list[str]:
    """The names of the zoo's models (one ``NAME.json`` card each), sorted."""
    return sorted(p.name[:-5] for p in folder().iterdir()
                  if p.name.endswith(".json") and _NAME.match(p.name[:-5]))


def name_of(spec) -> str | None:
    """The zoo name ``spec`` refers to, or None when it is a checkpoint path.

    ``"zoo:NAME"`` always means the zoo (an unknown name is a ValueError listing the zoo); a
    bare ``NAME`` means the zoo when it is one of its names and no file or folder of that name
    exists (an existing path wins, so run folders keep loading as before)."""
    if not isinstance(spec, str):
        return None
    if spec.startswith(PREFIX):
        name = spec[len(PREFIX):].strip().lower()
        if name not in names():
            raise ValueError(f"no model {name!r} in the zoo; it has: "
                             f"{', '.join(names()) or 'none'}")
        return name
    key = spec.strip().lower()
    if key in names() and not os.path.lexists(spec):
        return key
    return None


def card(name: str) -> dict:
    """The card of zoo model ``name`` (a ValueError listing the zoo for an unknown name)."""
    name = str(name).strip().lower()
    if name.startswith(PREFIX):
        name = name[len(PREFIX):]
    if not _NAME.match(name) or name not in names():
        raise ValueError(f"no model {name!r} in the zoo; it has: {', '.join(names()) or 'none'}")
    return _read_card(folder(), name, "zoo card")


def _read_card(root, name: str, what: str) -> dict:
    """The card ``NAME.json`` in ``root`` (a folder or a traversable), checked to be a
    :data:`ZOO_FORMAT` card of ``name``."""
    where = f"{what} {name}.json"
    try:
        data = json.loads(root.joinpath(f"{name}.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{where} cannot be read: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != ZOO_FORMAT or data.get("name") != name:
        raise ValueError(f"{where} is not a {ZOO_FORMAT} card of {name!r}")
    w = data.get("weights")
    if not (isinstance(w, dict) and isinstance(w.get("file"), str)
            and isinstance(w.get("sha256"), str)):
        raise ValueError(f"{where} is damaged: its 'weights' entry does not name a file and its "
                         "SHA-256")
    ops = data.get("operators")
    if not (isinstance(data.get("config"), dict) and isinstance(ops, list) and ops
            and all(isinstance(o, str) for o in ops)
            and isinstance(data.get("iteration"), int)):
        raise ValueError(f"{where} is damaged: it lacks the model's 'config', 'operators' or "
                         "'iteration'")
    return data


def _read_weights(root, c: dict, what: str) -> dict:
    """The weights named by card ``c`` in ``root`` as a state dict of tensors, after checking
    the file's SHA-256 against the card and that every value is finite."""
    from safetensors.torch import load as st_load

    name = c["name"]
    file = str(c.get("weights", {}).get("file", ""))
    if file != f"{name}.safetensors":  # a card names its own weights beside it, nothing else
        raise ValueError(f"{what} {name}: its card names weights {file!r}, not "
                         f"{name}.safetensors")
    path = root.joinpath(file)
    if isinstance(path, Path) and (path.is_symlink() or not path.is_file()):
        raise ValueError(f"{what} {name}: {path} is not a regular file (links are not followed)")
    blob = path.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != c["weights"]["sha256"]:
        raise ValueError(f"{what} {name}: {file} is corrupt (its SHA-256 "
                         f"{digest[:12]}... is not the card's {c['weights']['sha256'][:12]}...)"
                         + ("; reinstall the package" if what == "zoo model" else ""))
    tensors = st_load(blob)
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not v.isfinite().all()]
    if bad:
        raise ValueError(f"{what} {name}: non-finite weights in {', '.join(bad[:3])}")
    return {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}


def weights(name: str) -> dict:
    """The weights of zoo model ``name`` as a state dict of tensors, after checking the file's
    SHA-256 against its card and that every value is finite."""
    return _read_weights(folder(), card(name), "zoo model")


def _predictor(c: dict, tensors: dict, device):
    from .. import device as devices
    from ..predict import Predictor

    state = {"config": c["config"], "model": tensors, "iteration": c["iteration"]}
    predictor = Predictor(state, devices.resolve(device))
    predictor.zoo = c["name"]
    return predictor


def load(name: str, device: str | None = None):
    """Zoo model ``name`` (or ``zoo:name``) as a :class:`model.predict.Predictor`, the same
    type :func:`model.load` returns for a run folder."""
    c = card(name)
    return _predictor(c, weights(c["name"]), device)


def read_card_file(path) -> dict:
    """The card at ``path`` (``FOLDER/NAME.json`` of a folder written by :func:`export`, e.g.
    the models behind a committed table: ``results/medium/models``); a link, a file that is not
    a :data:`ZOO_FORMAT` card of its own name, or a bad name is a ValueError."""
    path = Path(path)
    name = path.name[:-5] if path.name.endswith(".json") else ""
    if not _NAME.match(name):
        raise ValueError(f"{path} is not a model card (NAME.json, NAME in lower-case letters, "
                         "digits, '.', '_', '-')")
    if path.is_symlink() or not path.is_file():
        raise ValueError(f"{path} is not a regular file (links are not followed)")
    return _read_card(path.parent, name, "model card")


def load_card_file(path, device: str | None = None):
    """The model of the card at ``path`` (:func:`read_card_file`) as a Predictor: its weights
    beside it, checked against the card's SHA-256, nothing executed (safetensors)."""
    c = read_card_file(path)
    return _predictor(c, _read_weights(Path(path).parent, c, "model card"), device)


def size_bytes(name: str) -> int:
    """Bytes the model takes in the zoo (weights and card)."""
    c = card(name)
    root = folder()
    return sum(len(root.joinpath(f).read_bytes()) for f in (c["weights"]["file"], f"{name}.json"))


def gamma_text(c: dict) -> str:
    """The card's γ range in a few words: ``λ 0.002–0.2 (log)`` for one operator, the number of
    operators with a parameter otherwise."""
    rows = [g for g in c["gamma"].values() if g["range"]]
    if len(c["operators"]) == 1:
        if not rows:
            return "none (fixed effect)"
        g = rows[0]
        law = {"log-uniform": "log"}.get(g["law"], g["law"])
        return f"{g['symbol']} {g['range'][0]:g}–{g['range'][1]:g} ({law})"
    return f"per operator ({len(rows)} with γ)"


def table() -> list[dict]:
    """One row per zoo model: name, operators, γ range, scale, test PSNR (mean over the model's
    operators and test γ; the input's beside it), size in bytes."""
    rows = []
    for n in names():
        c = card(n)
        t = c.get("test", {})
        scale = c["scale"] if c["iteration"] >= c["planned_iterations"] else \
            f"{c['scale']}, partial: {c['iteration']}/{c['planned_iterations']} it."
        rows.append({"name": n, "arch": c["arch"], "operators": c["operators"],
                     "gamma": gamma_text(c), "scale": scale,
                     "test_psnr": t.get("psnr"), "input_psnr": t.get("identity_psnr"),
                     "size": size_bytes(n)})
    return rows


def format_markdown(rows: list[dict]) -> str:
    """:func:`table` as docs/zoo.md's Markdown table (``python -m model zoo --markdown``)."""
    out = ["| name | arch | operators | γ range | scale | test PSNR (input) | size |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        psnr = ("–" if r["test_psnr"] is None else
                f"{r['test_psnr']:.2f} ({r['input_psnr']:.2f})")
        out.append(f"| `{r['name']}` | {r['arch']} | {', '.join(r['operators'])} | "
                   f"{r['gamma']} | {r['scale']} | {psnr} | {r['size'] / 1e6:.2f} MB |")
    total = sum(r["size"] for r in rows)
    out.append(f"\n{len(rows)} models, {total / 1e6:.2f} MB in all.")
    return "\n".join(out)


def format_table(rows: list[dict]) -> str:
    """:func:`table` as aligned text (``python -m model zoo``)."""
    head = ("name", "arch", "operators", "γ range", "scale", "test PSNR (input)", "size")
    lines = [head]
    for r in rows:
        ops = r["operators"]
        ops_text = ",".join(ops) if len(ops) <= 3 else f"{len(ops)}: {','.join(ops[:3])},..."
        psnr = ("–" if r["test_psnr"] is None else
                f"{r['test_psnr']:.2f} ({r['input_psnr']:.2f})")
        lines.append((r["name"], r["arch"], ops_text, r["gamma"], r["scale"], psnr,
                      f"{r['size'] / 1e6:.2f} MB"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = ["  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in lines]
    total = sum(r["size"] for r in rows)
    out.append(f"{len(rows)} models, {total / 1e6:.2f} MB")
    return "\n".join(out)


# ------------------------------------------------------------------------------- pairs
def pair_rgb(op: str, image: np.ndarray, gamma, seed: int = 0, *,
             strict: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(input, target)`` of ``op`` at ``gamma`` for an RGB uint8 image, as the dataset stores
    and serves them (``spec.pair`` rounded to uint8 as :func:`datagen.work.run_task`,
    single-channel pairs replicated to three channels as :class:`datagen.dataset.PairDataset`):
    a filter's input is the image and its target the operator's output; a degradation's input
    is the degraded image (``seed`` draws its noise) and its target the clean image in the
    operator's channels. ``strict=False``: γ outside the training range (the explorer's
    extrapolation), with the operator's own warning."""
    spec = operators.get(op)
    g = None if gamma is None or not spec.has_gamma else float(gamma)
    x, y = spec.pair(image, g, seed=int(seed), strict=strict)
    if spec.kind == "filter":
        x = image
    rgb = (lambda a: np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a)
    return (np.ascontiguousarray(rgb(operators.to_uint8(x))),
            np.ascontiguousarray(rgb(operators.to_uint8(y))))


def check_crops() -> list[dict]:
    """The check crops: the middle ``CHECK_SIZE``² crop of each held-out test photograph of the
    default image set (datagen.sources.DEFAULT_TEST_FILES) at ``CHECK_SCALE``."""
    from datagen.sources import DEFAULT_TEST_FILES, default_image_dir, grid_crops, read_image

    crops = []
    for i, f in enumerate(DEFAULT_TEST_FILES):
        img, reason = read_image(default_image_dir() / f)
        if img is None:
            raise ValueError(f"bundled test photograph {f}: {reason}")
        grid = grid_crops(img, i, CHECK_SIZE, (CHECK_SCALE,))
        for c in grid[len(grid) // 2: len(grid) // 2 + CHECK_CROPS_PER_IMAGE]:
            crops.append({"image": f, "scale": c.scale, "y": c.y, "x": c.x, "size": c.size})
    return crops


def _cut(crop: dict) -> np.ndarray:
    from datagen.sources import DEFAULT_FILES, Crop, default_image_dir, read_image

    if crop["image"] not in DEFAULT_FILES:
        raise ValueError(f"check crop from {crop['image']!r}: not a bundled photograph")
    img, reason = read_image(default_image_dir() / crop["image"])
    if img is None:
        raise ValueError(f"bundled photograph {crop['image']}: {reason}")
    return Crop(0, float(crop["scale"]), int(crop["y"]), int(crop["x"]), int(crop["size"])).cut(img)


def _test_gammas(op: str) -> list:
    spec = operators.get(op)
    return [float(g) for g in spec.test_gammas] if spec.has_gamma else [None]


def check_scores(predictor, crops: list[dict]) -> list[dict]:
    """Mean PSNR/SSIM of ``predictor`` (and of the input) against the operator over ``crops``,
    one row per operator of the model and test γ (the paper's; a fixed-effect operator: one
    row; a single-γ network: its γ), scored by the operator's protocol
    (:func:`model.metrics.score`). Degradation noise is seeded by crop and γ, so the figures
    are reproducible."""
    from ..metrics import score

    images = [_cut(c) for c in crops]
    rows = []
    own = predictor.config.get("gamma") if predictor.arch.per_gamma else None
    for op in predictor.ops:
        # a single-γ network is checked at the one γ it was trained for (it refuses others)
        for j, g in enumerate(_test_gammas(op) if own is None else [float(own)]):
            p, s, ip, is_ = [], [], [], []
            for k, img in enumerate(images):
                x, y = pair_rgb(op, img, g, seed=1000 * k + j)
                out = predictor.apply(x, op, g if predictor.uses_gamma(op) else None)
                a, b = score(op, out, y)
                c, d = score(op, x, y)
                p.append(a), s.append(b), ip.append(c), is_.append(d)
            rows.append({"operator": op, "gamma": g, "psnr": _r(np.mean(p)),
                         "ssim": _r(np.mean(s)), "identity_psnr": _r(np.mean(ip)),
                         "identity_ssim": _r(np.mean(is_))})
    return rows


def _r(v) -> float | None:
    v = float(v)
    return round(v, 4) if math.isfinite(v) else None


def verify(name: str, device: str | None = None) -> list[str]:
    """Re-measure zoo model ``name`` on its card's check crops; the differences from the card
    beyond :data:`PSNR_TOL` / :data:`SSIM_TOL` (an empty list when it reproduces)."""
    c = card(name)
    predictor = load(name, device)
    rows = check_scores(predictor, c["check"]["crops"])
    want = {(r["operator"], r["gamma"]): r for r in c["check"]["rows"]}
    problems = []
    if set(want) != {(r["operator"], r["gamma"]) for r in rows}:
        problems.append(f"{name}: the card's check rows are for {sorted(want, key=str)}, "
                        f"the model's for {[(r['operator'], r['gamma']) for r in rows]}")
    for r in rows:
        w = want.get((r["operator"], r["gamma"]))
        if w is None:
            continue
        for k, tol in (("psnr", PSNR_TOL), ("ssim", SSIM_TOL),
                       ("identity_psnr", PSNR_TOL), ("identity_ssim", SSIM_TOL)):
            a, b = r[k], w[k]
            if (a is None) != (b is None) or (a is not None and abs(a - b) > tol):
                problems.append(f"{name} {r['operator']} γ={r['gamma']}: {k} {a} measured, "
                                f"{b} on the card")
    return problems


# ------------------------------------------------------------------------------- export
def default_name(run_name: str) -> str:
    """The zoo name of a benchmark run folder: ``decouple-l0`` → ``l0``; a budget suffix is
    dropped (``realtime-tpami10-b2`` → ``realtime-tpami10``, the medium scale's
    ``decouple-tpami10-b1.3`` → ``decouple-tpami10``); otherwise the folder's name."""
    n = run_name.strip().lower()
    n = re.sub(r"-b\d+(\.\d+)?(of\d+)?$", "", n)
    m = re.fullmatch(r"decouple-([a-z0-9_]+)", n)
    if m and m.group(1) in operators.ALL:
        return m.group(1)
    return n


def _without_paths(cfg: dict) -> dict:
    """A run's config for a card: its dataset (and each resume's) named by file name only, so a
    card carries no machine path (the dataset is identified by its digest)."""
    out = dict(cfg)
    if out.get("data"):
        out["data"] = Path(out["data"]).name
    if isinstance(out.get("resumes"), list):
        out["resumes"] = [{**r, "data": Path(r["data"]).name} if isinstance(r, dict)
                          and r.get("data") else r for r in out["resumes"]]
    return out


def _train_command(cfg: dict, data: str) -> str:
    """The ``python -m model train`` command that trains a model of this config."""
    from ..presets import get_preset

    preset = cfg.get("preset", {})
    args = ["python", "-m", "model", "train", "--data", data, "--ops", ",".join(cfg["ops"]),
            "--arch", cfg["arch"], "--preset", str(preset.get("name", "small"))]
    try:
        base = get_preset(str(preset.get("name"))).to_dict()
    except (ValueError, KeyError):
        base = {}
    for key in ("iterations", "width", "crop", "batch", "lr"):
        if key in preset and preset[key] != base.get(key):
            args += [f"--{key}", str(preset[key])]
    if cfg.get("gamma") is not None:
        args += ["--gamma", repr(cfg["gamma"])]
    if cfg.get("norm", "law") != "law":
        args += ["--norm", cfg["norm"]]
    if cfg.get("op_code", "scalar") != "scalar":
        args += ["--op-code", cfg["op_code"]]
    args += ["--seed", str(cfg.get("seed", 0)), "--out", "RUN"]
    return shlex.join(args)


def _portable(path) -> str:
    """A path without this machine's home folder (``~/...``)."""
    p = str(Path(path).resolve())
    home = str(Path.home())
    return "~" + p[len(home):] if p == home or p.startswith(home + os.sep) else p


def shell_word(text: str) -> str:
    """``text`` quoted for a POSIX shell, a leading ``~/`` left unquoted so that it expands."""
    if text.startswith("~/"):
        return "~/" + shlex.quote(text[2:])
    return shlex.quote(text)


def _dataset_facts(data) -> dict:
    from datagen.store import open_file

    with open_file(data) as f:
        return {"digest": str(f.attrs.get("digest", "")),
                "command": str(f.attrs.get("command", "")).replace(str(Path.home()), "~")}


def _gamma_facts(predictor) -> dict:
    facts = {}
    for op in predictor.ops:
        spec = operators.get(op)
        rng = list(predictor.gamma_range(op)) if spec.has_gamma else []
        facts[op] = {"symbol": spec.gamma_name, "meaning": spec.gamma_meaning,
                     "law": str(spec.law), "range": rng,
                     "test_gammas": [float(g) for g in spec.test_gammas],
                     "uses_gamma": bool(predictor.uses_gamma(op))}
    return facts


def _test_summary(table) -> dict:
    """Per-operator means over its test γ, and their mean (the listing's test PSNR)."""
    per_op = {}
    for op, rows in table.groupby("operator", sort=False):
        per_op[op] = {k: _r(rows[k].mean()) for k in
                      ("psnr", "ssim", "identity_psnr", "identity_ssim")}
    mean = {k: _r(np.mean([v[k] for v in per_op.values()])) for k in
            ("psnr", "ssim", "identity_psnr", "identity_ssim")}
    return {"per_operator": per_op, **mean}


def _is_zoo_file(head: bytes) -> bool:
    """Whether ``head`` (a file's first bytes) begins a card or a weights file that
    :func:`export_run` wrote: a card's JSON opens with ``"format": ZOO_FORMAT``; a safetensors
    file's header (after its 8-byte length) opens with ``__metadata__`` holding that format."""
    fmt = json.dumps(ZOO_FORMAT).encode()
    if re.match(rb'\{\s*"format"\s*:\s*' + re.escape(fmt), head):
        return True
    meta = b'{"__metadata__":{'
    if head[8:8 + len(meta)] != meta:
        return False
    end = head.find(b"}", 8 + len(meta))
    return end > 0 and b'"format":' + fmt in head[8:end]


_is_zoo_file.recognises = "it knows its own cards and weights by their format, " + ZOO_FORMAT


def _check_zoo_outputs(out: Path, name: str, run: Path, data: Path) -> None:
    """``out/NAME.json`` and ``out/NAME.safetensors`` may be written: new, or files an export
    wrote (:func:`_is_zoo_file`), never an input, a folder, a special file or a file of the
    user's (:func:`datagen.fs.check_output`)."""
    from datagen.fs import check_output

    for suffix in (".safetensors", ".json"):
        check_output(Path(out) / f"{name}{suffix}", inputs=(run / "last.pt", data),
                     own_marker=_is_zoo_file, what="zoo export")


def export_run(run: Path, name: str, out: Path, data: Path, *, command: str,
               allow_partial: bool = False, dtype: str = "float32", log=print) -> dict:
    """Write ``out/NAME.safetensors`` and ``out/NAME.json`` from the run folder ``run``,
    evaluated on ``data``'s test split (which must be the dataset it was trained on: same
    digest) and on the check crops. A run that has not reached its planned iterations is
    refused unless ``allow_partial``."""
    from safetensors.torch import save as st_save

    from .. import checkpoint
    from ..evaluate import evaluate
    from ..predict import Predictor

    if not _NAME.match(name):
        raise ValueError(f"zoo name {name!r}: lower-case letters, digits, '.', '_' and '-' only")
    if dtype not in ("float32", "float16"):
        raise ValueError(f"dtype must be float32 or float16, got {dtype!r}")
    _check_zoo_outputs(out, name, Path(run), Path(data))  # before the evaluation's minutes
    state = checkpoint.load(run)
    cfg = state["config"]
    planned = int(cfg.get("preset", {}).get("iterations", 0))
    it = int(state.get("iteration") or 0)
    if it < planned and not allow_partial:
        raise ValueError(f"{run} is trained to iteration {it} of {planned}: not finished "
                         "(wait for it, or --allow-partial)")
    facts = _dataset_facts(data)
    if cfg.get("data_digest") and facts["digest"] != cfg["data_digest"]:
        raise ValueError(f"{data} is not the dataset {run} was trained on (digest "
                         f"{facts['digest'][:12]} vs {cfg['data_digest'][:12]})")
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state["model"].items()}
    if dtype == "float16":
        tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    blob = st_save(tensors, metadata={"format": ZOO_FORMAT, "name": name})
    # score what is shipped: the weights as stored (float16 rounding included)
    from safetensors.torch import load as st_load

    shipped = {k: v.float() if v.is_floating_point() else v for k, v in st_load(blob).items()}
    predictor = Predictor({"config": cfg, "model": shipped, "iteration": it}, "cpu")
    t0 = time.perf_counter()
    table = evaluate(predictor, data)
    rows = [{"operator": r.operator, "gamma": None if math.isnan(r.gamma) else float(r.gamma),
             "images": int(r.images), "psnr": _r(r.psnr), "ssim": _r(r.ssim),
             "identity_psnr": _r(r.identity_psnr), "identity_ssim": _r(r.identity_ssim)}
            for r in table.itertuples()]
    crops = check_crops()
    check = check_scores(predictor, crops)
    from datagen import code_version

    preset = cfg.get("preset", {})
    c = {"format": ZOO_FORMAT, "name": name, "arch": cfg["arch"], "operators": list(cfg["ops"]),
         "gamma": _gamma_facts(predictor), "scale": str(preset.get("name", "")),
         "iteration": it, "planned_iterations": planned,
         "parameters": int(sum(v.numel() for v in tensors.values())),
         "weights": {"file": f"{name}.safetensors", "sha256": hashlib.sha256(blob).hexdigest(),
                     "bytes": len(blob), "dtype": dtype},
         "trained": {"command": _train_command(cfg, Path(data).name), "code": cfg.get("code", ""),
                     "seed": cfg.get("seed"), "elapsed_s": _r(state.get("elapsed_s", math.nan)),
                     "run": run.name},
         "dataset": {"digest": facts["digest"], "command": facts["command"],
                     "file": Path(data).name},
         "test": {"split": "test", "rows": rows, **_test_summary(table),
                  "protocol": "model.evaluate (the authors' compute_error.m): PSNR over RGB, "
                              "SSIM on MATLAB gray; one channel for sr/jpeg (Y), denoise (gray)",
                  "intervals": None},
         "check": {"crops": crops, "rows": check,
                   "note": "re-measured by python -m model zoo check and tests/test_zoo.py"},
         "exported": {"command": command, "code": code_version(),
                      "seconds": round(time.perf_counter() - t0, 1)},
         # the run's config, its dataset named by file name only (a card carries no machine path;
         # the dataset is identified by its digest)
         "config": _without_paths(cfg)}
    out.mkdir(parents=True, exist_ok=True)
    _check_zoo_outputs(out, name, Path(run), Path(data))  # again: they may have changed
    atomic_write_bytes(out / f"{name}.safetensors", blob)
    atomic_write_bytes(out / f"{name}.json",
                  (json.dumps(c, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))
    log(f"{name}: {run.name} ({cfg['arch']}, {len(cfg['ops'])} op, iteration {it}) -> "
        f"{out / (name + '.safetensors')} ({len(blob) / 1e6:.2f} MB), test PSNR "
        f"{c['test']['psnr']} (input {c['test']['identity_psnr']})")
    return c


def export(runs: Path, data: Path, out: Path, names_=None, *, allow_partial: bool = False,
           dtype: str = "float32", command: str = "", log=print) -> tuple[list[str], list[str]]:
    """Export the run folders under ``runs`` (``names_``: ``RUN`` or ``RUN=NAME`` items; default:
    every folder with a ``last.pt``) into ``out``. A run not trained yet (no ``last.pt``) or not
    finished is skipped with a note (exported anyway with ``allow_partial``), so that the same
    command, recorded in every card, can be re-run as more runs finish. Returns (names written,
    notes on the runs skipped)."""
    runs = Path(runs)
    if not runs.is_dir():
        raise FileNotFoundError(f"no run folder at {runs}")
    if not Path(data).is_file():
        raise FileNotFoundError(f"no dataset at {data}")
    items = list(names_ or [p.name for p in sorted(runs.iterdir()) if (p / "last.pt").is_file()])
    written, skipped = [], []
    for item in items:
        run_name, _, name = item.partition("=")
        name = name or default_name(run_name)
        run = runs / run_name
        if not (run / "last.pt").is_file():
            skipped.append(f"{run_name}: not trained yet (no {run / 'last.pt'})")
            log(f"skipped {skipped[-1]}")
            continue
        try:
            export_run(run, name, Path(out), Path(data), command=command,
                       allow_partial=allow_partial, dtype=dtype, log=log)
        except ValueError as exc:
            if "not finished" not in str(exc):
                raise
            skipped.append(f"{run_name}: {exc}")
            log(f"skipped {skipped[-1]}")
            continue
        written.append(name)
    return written, skipped
