"""Shared fixtures, and where the reference outputs (our Octave runs of the authors' code) come from.

``REFERENCE`` is, in this order: ``$DECOUPLE_REFERENCE``; ``../shared/reference`` when it holds a
``manifest.json``; else the packed copy shipped in ``tests/reference`` (see its README.md), which is
unpacked on first use into a temporary folder of the same layout (``manifest.json``, ``inputs/``,
``outputs/*.npz``), so that every clone runs the fidelity tests. ``$DECOUPLE_REFERENCE`` may name
either layout. The authors' own images (style exemplar, pencil texture) are never shipped: the
entries that need them skip, saying so, unless the reference folder has them.
"""
from __future__ import annotations

import atexit
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from datagen.sources import read_rgb as datagen_read_rgb
from tiny_data import tiny_build

REPO = Path(__file__).resolve().parents[1]
SHARED_REFERENCE = REPO.parent / "shared" / "reference"
PACKED_REFERENCE = Path(__file__).resolve().parent / "reference"


def _load_pack():
    """``tests/reference/pack.py`` as a module (``tests/reference`` is a data folder, not a package)."""
    spec = importlib.util.spec_from_file_location("reference_pack", PACKED_REFERENCE / "pack.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _reference_source() -> Path:
    env = os.environ.get("DECOUPLE_REFERENCE")
    if env:
        return Path(env)
    if (SHARED_REFERENCE / "manifest.json").is_file():
        return SHARED_REFERENCE
    return PACKED_REFERENCE


#: where the references were found (a folder of npz files, or a packed copy)
REFERENCE_SOURCE = _reference_source()
_PACKED = (REFERENCE_SOURCE / "packed" / "format.json").is_file()
if _PACKED:  # unpacked lazily (reference_manifest, reference_dir) into this private folder
    REFERENCE = Path(tempfile.mkdtemp(prefix="decouple-reference-"))
    atexit.register(shutil.rmtree, REFERENCE, True)
else:
    REFERENCE = REFERENCE_SOURCE
_UNPACKED = False


def _materialise() -> None:
    """Unpack the packed copy into ``REFERENCE`` once per process (no-op for an npz folder)."""
    global _UNPACKED
    if _PACKED and not _UNPACKED:
        _load_pack().unpack(REFERENCE_SOURCE, REFERENCE)
        _UNPACKED = True


def missing_authors_image(entry: dict) -> str | None:
    """Why ``entry`` cannot run here (it needs one of the authors' images, which is not in the
    reference folder: never shipped with the repository), or None."""
    from operators.fidelity import AUXILIARY

    if entry["operator"] not in AUXILIARY:
        return None
    name = AUXILIARY[entry["operator"]][1]
    if (REFERENCE / "inputs" / name).is_file():
        return None
    return (f"needs the authors' image inputs/{name} ({entry['operator']}), which is not ours to "
            f"distribute and not in {REFERENCE_SOURCE}; put the reference folder at "
            f"{SHARED_REFERENCE} or set DECOUPLE_REFERENCE")


def reference_manifest() -> list[dict]:
    """Entries of the reference manifest, or [] when the folder is missing."""
    _materialise()
    path = REFERENCE / "manifest.json"
    if not path.is_file():
        return []
    return json.loads(path.read_text())


def read_rgb(path) -> np.ndarray:
    """A reference PNG as an RGB uint8 array (datagen's reader; a missing file is an error)."""
    img = datagen_read_rgb(path)
    if img is None:
        raise FileNotFoundError(path)
    return img


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    _materialise()
    if not (REFERENCE / "manifest.json").is_file():
        pytest.skip(f"reference outputs not found at {REFERENCE} (set DECOUPLE_REFERENCE)")
    return REFERENCE


@pytest.fixture(scope="session")
def coffee(reference_dir) -> np.ndarray:
    """A 160x192 RGB photo crop from the reference inputs."""
    return read_rgb(reference_dir / "inputs" / "coffee.png")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def data(tmp_path_factory) -> Path:
    """A tiny dataset (l0 and wmf, three 40x40 images) for the model tests."""
    return tiny_build(tmp_path_factory.mktemp("imgs"), "tiny.h5", ("l0", "wmf"), size=32,
                      per_image=3)
