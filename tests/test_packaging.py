"""Packaging: the reference outputs shipped with the repository (tests/reference), the public
exports and metadata of the packages, and the dataset's use in one's own training loop."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import conftest
from test_reference import MAX_ABS

REPO = Path(__file__).resolve().parents[1]
PACK = conftest._load_pack()


# ------------------------------------------------------------------ shipped reference outputs
@pytest.mark.parametrize("shape", [(7, 9, 3), (5, 11), (1, 1, 3)])
@pytest.mark.parametrize("step", [None, -23, -20])
def test_pack_round_trip(shape, step, rng):
    """Lossless arrays come back bit for bit (negative, > 1, tiny and huge values too);
    quantised ones within half a step, as float32."""
    a = (rng.standard_normal(shape) * 2).astype(np.float32)
    a.flat[0] = 1e-30
    a.flat[-1] = -3.5e4 if step is None else 3.5
    blob, header = PACK._encode(a, step)
    back = PACK._decode(blob, header)
    assert back.dtype == np.float32 and back.shape == a.shape
    if step is None:
        np.testing.assert_array_equal(back.view(np.int32), a.view(np.int32))
    else:
        err = np.abs(back.astype(np.float64) - a)
        assert err.max() <= 2.0 ** (step - 1)
        assert err.max() > 0  # a step this coarse does change random values


def test_quantisation_steps_keep_the_fidelity_bounds():
    """Each quantised operator's error is at most a fifth of its MAX_ABS and 5e-7 (so it moves at
    most ~0.03 % of uint8 values); every operator whose own tests compare float32 values exactly
    is lossless."""
    for op, e in PACK.STEP_LOG2.items():
        assert 2.0 ** (e - 1) <= MAX_ABS[op] / 5 and 2.0 ** (e - 1) <= 5e-7, op
    assert not set(PACK.STEP_LOG2) & {"wmf", "shock", "llf_remap", "wls_enhance", "sr", "jpeg",
                                      "style", "pencil"}


def test_shipped_copy_is_small_and_holds_none_of_the_authors_images():
    folder = REPO / "tests" / "reference"
    files = [p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert sum(p.stat().st_size for p in files) <= 11_000_000
    names = {p.name for p in files}
    assert not names & {"style_ruins.png", "pencil0.jpg"}
    manifest = json.loads((folder / "manifest.json").read_text())
    fmt = json.loads((folder / "packed" / "format.json").read_text())
    skipped = {Path(e["output"]).stem for e in manifest if e["operator"] in ("style", "pencil")}
    assert set(fmt["not_packed"]) == skipped and len(skipped) == 10
    packed = {p.stem for p in (folder / "packed").glob("*.npz")}
    assert packed == {Path(e["output"]).stem for e in manifest} - skipped


def test_default_reference_is_the_shipped_copy_without_shared(monkeypatch, tmp_path):
    """A fresh clone (no $DECOUPLE_REFERENCE, no ../shared/reference) tests against the shipped
    copy; ../shared/reference and then $DECOUPLE_REFERENCE take precedence."""
    monkeypatch.delenv("DECOUPLE_REFERENCE", raising=False)
    monkeypatch.setattr(conftest, "SHARED_REFERENCE", tmp_path / "absent")
    assert conftest._reference_source() == conftest.PACKED_REFERENCE
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "manifest.json").write_text("[]")
    monkeypatch.setattr(conftest, "SHARED_REFERENCE", shared)
    assert conftest._reference_source() == shared
    monkeypatch.setenv("DECOUPLE_REFERENCE", str(tmp_path / "mine"))
    assert conftest._reference_source() == tmp_path / "mine"


def test_unpacked_copy_equals_the_originals(tmp_path):
    """Every packed array unpacks within its stated error of ../shared/reference (exactly where
    lossless), and changes no input or manifest entry."""
    shared = REPO.parent / "shared" / "reference"
    if not (shared / "manifest.json").is_file():
        pytest.skip(f"the originals are not at {shared}")
    out = PACK.unpack(REPO / "tests" / "reference", tmp_path / "ref")
    manifest = json.loads((shared / "manifest.json").read_text())
    assert json.loads((out / "manifest.json").read_text()) == manifest
    for name in {e["input"] for e in manifest}:
        assert (out / name).read_bytes() == (shared / name).read_bytes()
    for e in manifest:
        if e["operator"] in ("style", "pencil"):
            assert not (out / e["output"]).exists()
            continue
        with np.load(shared / e["output"]) as a, np.load(out / e["output"]) as b:
            assert sorted(a.files) == sorted(b.files)
            for key in a.files:
                assert b[key].dtype == np.float32 and b[key].shape == a[key].shape
                step = PACK.STEP_LOG2.get(e["operator"]) if key == "output" else None
                if step is None:
                    np.testing.assert_array_equal(b[key], a[key])
                else:
                    assert np.abs(b[key].astype(np.float64) - a[key]).max() <= 2.0 ** (step - 1)


# ------------------------------------------------------------------ the dataset in one's own loop
@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    """A tiny file of l0 (a γ law) and shock (fixed effect), 64² pairs, as ``data/decouple.h5``
    in its own folder (the README example's path, relative to that folder)."""
    from tiny_data import tiny_build

    folder = tmp_path_factory.mktemp("own_loop")
    (folder / "data").mkdir()
    return tiny_build(folder / "data", "decouple.h5", ("l0", "shock"), side=72, size=64,
                      per_image=2)


def readme_loop_example() -> str:
    """The README's "In your own PyTorch loop" code block, verbatim."""
    text = (REPO / "README.md").read_text()
    start = text.index("In your own PyTorch loop")
    block = text[text.index("```python\n", start) + len("```python\n"):]
    return block[:block.index("```")]


def test_readme_dataloader_example_runs_as_written(pairs, monkeypatch):
    code = readme_loop_example()
    assert "from datagen import PairDataset" in code and len(code.splitlines()) <= 12
    monkeypatch.chdir(pairs.parents[1])  # the example reads data/decouple.h5
    ns: dict = {"__name__": "readme_example"}
    exec(compile(code, "README.md", "exec"), ns)
    x, y, gamma = ns["x"], ns["y"], ns["gamma"]
    assert x.dtype == y.dtype == gamma.dtype == torch_float32()
    assert x.shape[1:] == (3, 64, 64) and y.shape == x.shape and gamma.shape == x.shape[:1]
    assert 0 <= float(x.min()) and float(x.max()) <= 1 and 0 <= float(gamma.min()) <= 1


def torch_float32():
    import torch

    return torch.float32


def test_pair_dataset_is_exported_without_importing_torch():
    import subprocess
    import sys

    import datagen
    from datagen.dataset import PairDataset

    assert datagen.PairDataset is PairDataset and "PairDataset" in datagen.__all__
    out = subprocess.run([sys.executable, "-c", "import sys, datagen; print('torch' in sys.modules)"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        datagen.Nope  # noqa: B018


def test_gamma_as_value_float32_and_normalized(pairs):
    import operators
    import torch
    from torch.utils.data import DataLoader

    from datagen import PairDataset
    from datagen.dataset import FIXED_EFFECT_NORMALIZED
    from model.config import CONST_GAMMA

    assert FIXED_EFFECT_NORMALIZED == CONST_GAMMA["law"]
    plain = PairDataset(pairs, ["l0", "shock"], "train")
    f32 = PairDataset(pairs, ["l0", "shock"], "train", gamma_as="float32")
    norm = PairDataset(pairs, ["l0", "shock"], "train", gamma_as="normalized")
    seen = set()
    for i in range(len(plain)):
        a, b, c = plain[i], f32[i], norm[i]
        seen.add(a["op"])
        assert isinstance(a["gamma"], float)  # the default, unchanged (model train relies on it)
        assert b["gamma"].dtype == c["gamma"].dtype == torch.float32 and b["gamma"].ndim == 0
        if a["op"] == "shock":
            assert np.isnan(a["gamma"]) and torch.isnan(b["gamma"])
            assert float(c["gamma"]) == 0.5
        else:
            assert float(b["gamma"]) == np.float32(a["gamma"])
            want = operators.get("l0").normalize(a["gamma"])
            assert float(c["gamma"]) == np.float32(want) and 0 <= want <= 1
        assert torch.equal(a["input"], c["input"]) and torch.equal(a["target"], c["target"])
    assert seen == {"l0", "shock"}
    batch = next(iter(DataLoader(norm, batch_size=4)))
    assert batch["gamma"].dtype == torch.float32 and batch["gamma"].shape == (4,)
    assert next(iter(DataLoader(plain, batch_size=4)))["gamma"].dtype == torch.float64


def test_transform_runs_last_on_the_item(pairs):
    from datagen import PairDataset

    calls = []

    def mark(item):
        calls.append(tuple(item["input"].shape))
        return {**item, "input": item["input"].float() / 255, "marked": True}

    base = PairDataset(pairs, ["l0"], "train", crop=16, flip=True)
    hooked = PairDataset(pairs, ["l0"], "train", crop=16, flip=True, transform=mark)
    got, want = hooked[(3, 7)], base[(3, 7)]  # same seed: same window and flips
    assert got["marked"] and calls == [(3, 16, 16)]
    assert np.array_equal(got["input"].numpy(), want["input"].float().numpy() / 255)
    assert np.array_equal(got["target"].numpy(), want["target"].numpy())
    with pytest.raises(ValueError, match=r"gamma_as must be one of \['value', 'float32', "
                                         r"'normalized'\], got 'norm'"):
        PairDataset(pairs, ["l0"], gamma_as="norm")
    with pytest.raises(TypeError, match="transform must be callable, got int"):
        PairDataset(pairs, ["l0"], transform=3)


# ------------------------------------------------------------------ packaging conventions
def _pyproject() -> dict:
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_license_citation_and_changelog():
    import operators

    license_text = (REPO / "LICENSE").read_text()
    assert license_text.startswith("MIT License") and "the decouple-ops authors" in license_text
    assert _pyproject()["project"]["license"] == {"text": "MIT"}
    cff = (REPO / "CITATION.cff").read_text()
    assert cff.startswith("cff-version: 1.2.0") and f'version: "{operators.__version__}"' in cff
    for needed in ("Decouple Learning for Parameterized Image Operators",
                   "A General Decoupled Learning Framework for Parameterized Image Operators",
                   "arXiv:1907.05852", "decouple-ops", "license: MIT"):
        assert needed in cff, needed
    assert cff.count("family-names: Fan") == 2 and cff.count("given-names: Baoquan") == 2
    assert operators.__version__ in (REPO / "CHANGELOG.md").read_text()


def test_one_version_for_the_three_packages():
    from importlib import metadata

    import datagen
    import model
    import operators

    assert operators.__version__ == datagen.__version__ == model.__version__
    assert datagen.code_version().startswith(operators.__version__)
    project = _pyproject()
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "operators.__version__"}
    try:
        assert metadata.version("decouple-ops") == operators.__version__
    except metadata.PackageNotFoundError:  # a source tree that is not installed
        pass


def test_every_package_is_installed_benchmarks_included():
    """Every package of the checkout (a folder with ``__init__.py``), the experiments library
    ``benchmarks`` and ``benchmarks.tables`` among them, is in pyproject's packages, so tests
    import the installed project: no ``pythonpath`` setting for pytest, and tox installs the
    project editable (the suite runs the checkout, whose results/ and commit benchmarks uses)."""
    import configparser

    found = {".".join(p.parent.relative_to(REPO).parts)
             for top in REPO.iterdir() if (top / "__init__.py").is_file()
             for p in top.rglob("__init__.py") if "__pycache__" not in p.parts}
    installed = set(_pyproject()["tool"]["setuptools"]["packages"])
    assert {"benchmarks", "benchmarks.tables"} <= installed
    assert found == installed, found ^ installed
    assert "pythonpath" not in _pyproject()["tool"]["pytest"]["ini_options"]
    tox = configparser.ConfigParser()
    tox.read(REPO / "tox.ini")
    assert tox["testenv"]["package"] == "editable"


def test_public_names_and_type_markers():
    import operators

    names = dir(operators)
    assert not {"np", "os", "sys", "math", "warnings", "importlib"} & set(names)
    assert all(hasattr(operators, n) for n in operators.__all__)
    assert set(operators.__all__) <= set(names) and "__version__" in names
    data = _pyproject()["tool"]["setuptools"]["package-data"]
    for pkg in ("operators", "datagen", "model"):
        assert (REPO / pkg / "py.typed").is_file() and "py.typed" in data[pkg], pkg


def test_allocator_setting_is_documented_and_can_be_left_alone():
    """The first operator call tunes glibc's malloc for the process (kept on by default: the
    published speeds were measured so); the package docstring says so, and
    DECOUPLE_OPS_KEEP_MALLOC=1 leaves the allocator alone."""
    import os
    import subprocess
    import sys

    import operators

    assert "DECOUPLE_OPS_KEEP_MALLOC=1" in operators.__doc__ and "first operator call" in \
        operators.__doc__
    code = ("import numpy as np, operators; from operators import _memory; "
            "assert _memory._TUNED is None; operators.apply('l0', np.zeros((8, 8, 3), np.uint8), "
            "0.02); print(_memory._TUNED)")
    env = {k: v for k, v in os.environ.items() if k != "DECOUPLE_OPS_KEEP_MALLOC"}
    run = lambda extra: subprocess.run([sys.executable, "-c", code], cwd=REPO,  # noqa: E731
                                       env={**env, **extra}, capture_output=True, text=True,
                                       check=True).stdout.strip()
    assert run({"DECOUPLE_OPS_KEEP_MALLOC": "1"}) == "False"
    if sys.platform.startswith("linux"):
        import ctypes

        if hasattr(ctypes.CDLL(None), "gnu_get_libc_version"):
            assert run({}) == "True"


def test_cli_help_lists_every_operator_and_names_the_file():
    import subprocess
    import sys

    import operators

    out = subprocess.run([sys.executable, "-m", "model", "apply", "--help"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    flat = " ".join(out.split())
    assert ", ".join(operators.ALL) in flat
    out = subprocess.run([sys.executable, "-m", "datagen", "show", "--help"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    assert "file HDF5 file written by `python -m datagen build`" in " ".join(out.split())
