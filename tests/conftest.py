"""Shared fixtures: the authors' reference outputs live in ../shared/reference (never copied here)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from datagen.sources import read_rgb as datagen_read_rgb
from tiny_data import tiny_build

REPO = Path(__file__).resolve().parents[1]
REFERENCE = Path(os.environ.get("DECOUPLE_REFERENCE", REPO.parent / "shared" / "reference"))


def reference_manifest() -> list[dict]:
    """Entries of the reference manifest, or [] when the folder is missing."""
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
