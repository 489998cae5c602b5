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
