"""Value-level checks of the training reader (datagen/dataset.py): every item equals the stored
arrays, and with crop and flip the input and the target come from one window and one flip
(issue 16, bug 4). The file is read here with h5py, independently of the reader."""
from __future__ import annotations

import pickle
import re

import h5py
import numpy as np
import pytest
import torch

from datagen.dataset import PairDataset
from tiny_data import tiny_build

SPLIT_CODES = {"train": 0, "test": 1, "single": 2}  # the layout documented in datagen/store.py


def stored(path):
    with h5py.File(path, "r") as f:
        src = f["sources/pixels"][:]
        ops = {n: {k: f["ops"][n][k][:] for k in ("output", "gamma", "gamma_effective", "source",
                                                  "split")} for n in f["ops"]}
    return src, ops


def expected_items(path, ops, split, gamma=None):
    """(op index, op, row) in the reader's documented order: operators as given, rows as stored."""
    _, arrays = stored(path)
    out = []
    for k, op in enumerate(ops):
        a = arrays[op]
        sel = a["split"] == SPLIT_CODES[split]
        if gamma is not None:
            sel &= np.isclose(a["gamma"], gamma, rtol=1e-9, atol=0)
        out += [(k, op, int(r)) for r in np.flatnonzero(sel)]
    return out


def hwc(t) -> np.ndarray:
    assert t.dtype == torch.uint8 and t.shape[0] == 3
    return t.permute(1, 2, 0).numpy()


@pytest.mark.parametrize("split", ["train", "test", "single"])
def test_whole_items_equal_the_stored_arrays(data, split):
    src, arrays = stored(data)
    ops = ("wmf", "l0")  # not the file's order: op_index follows the order asked for
    ds = PairDataset(data, ops, split)
    exp = expected_items(data, ops, split)
    assert len(ds) == len(exp) > 0
    for i, (k, op, row) in enumerate(exp):
        d = ds[i]
        a = arrays[op]
        np.testing.assert_array_equal(hwc(d["input"]), src[a["source"][row]])
        np.testing.assert_array_equal(hwc(d["target"]), a["output"][row])
        assert (d["op"], d["op_index"]) == (op, k)
        assert d["gamma"] == a["gamma"][row] and d["gamma_effective"] == a["gamma_effective"][row]
        np.testing.assert_array_equal(ds[(i, 5)]["input"], d["input"])  # no crop/flip: seed inert
    for op in ops:
        np.testing.assert_array_equal(ds.gamma_values(op),
                                      [arrays[op]["gamma"][r] for _, o, r in exp if o == op])


def test_gamma_filter(data):
    _, arrays = stored(data)
    g = 3.25
    ds = PairDataset(data, ["wmf"], "test", gamma=g)
    exp = expected_items(data, ["wmf"], "test", gamma=g)
    assert len(ds) == len(exp) > 0
    assert [ds[i]["gamma"] for i in range(len(ds))] == [arrays["wmf"]["gamma"][r] for _, _, r in exp]
    assert all(d == g for d in ds.gamma_values("wmf"))
    assert len(PairDataset(data, ["wmf"], "test", gamma=g * (1 + 5e-10))) == len(exp)  # rtol 1e-9
    assert len(PairDataset(data, ["wmf"], "test", gamma=g * (1 + 1.5e-9))) == 0  # ... not looser
    assert len(PairDataset(data, split="test")) == len(expected_items(data, ["l0", "wmf"], "test"))


def find_window(full: np.ndarray, crop: np.ndarray):
    """All (top, left, flip_lr, flip_ud) under which ``crop`` is a window of ``full``."""
    c = crop.shape[0]
    hits = []
    for lr in (False, True):
        for ud in (False, True):
            v = crop[:, ::-1] if lr else crop
            v = v[::-1] if ud else v  # undo the flips (each is its own inverse)
            for top in range(full.shape[0] - c + 1):
                for left in range(full.shape[1] - c + 1):
                    if np.array_equal(full[top:top + c, left:left + c], v):
                        hits.append((top, left, lr, ud))
    return hits


def transform(full, top, left, lr, ud, c):
    w = full[top:top + c, left:left + c]
    w = w[:, ::-1] if lr else w
    return w[::-1] if ud else w


@pytest.mark.parametrize("crop", [16, 30])
def test_crop_and_flip_take_input_and_target_from_one_window(data, crop):
    src, arrays = stored(data)
    ds = PairDataset(data, ["l0"], "train", crop=crop, flip=True)
    exp = expected_items(data, ["l0"], "train")
    size = src.shape[1]
    seen = {True: set(), False: set()}  # seeded keys (training), plain indices (torch's RNG)
    torch.manual_seed(0)
    keys = [(i % len(ds), 1000 + i) for i in range(48)] + [i % len(ds) for i in range(48)]
    for key in keys:
        i = key[0] if isinstance(key, tuple) else key
        _, op, row = exp[i]
        full_x, full_y = src[arrays[op]["source"][row]], arrays[op]["output"][row]
        d = ds[key]
        x, y = hwc(d["input"]), hwc(d["target"])
        assert x.shape == y.shape == (crop, crop, 3)
        hits = find_window(full_x, x)
        assert len(hits) == 1, hits  # textured crops: one window and flip only
        top, left, lr, ud = hits[0]
        np.testing.assert_array_equal(y, transform(full_y, top, left, lr, ud, crop))
        seen[isinstance(key, tuple)].add(hits[0])
        if isinstance(key, tuple):  # a seeded item is a function of (index, seed)
            np.testing.assert_array_equal(ds[key]["input"], d["input"])
            np.testing.assert_array_equal(ds[key]["target"], d["target"])
    # on either path every flip combination and both extreme windows occur: the draws span
    # the whole range
    for path in seen.values():
        assert {(lr, ud) for _, _, lr, ud in path} == {(a, b) for a in (0, 1) for b in (0, 1)}
        tops = {t for t, *_ in path} | {lft for _, lft, *_ in path}
        assert 0 in tops and size - crop in tops
        assert len({(t, lft) for t, lft, *_ in path}) >= min(8, (size - crop + 1) ** 2)


def test_crop_without_flip_and_full_size_crop(data):
    src, arrays = stored(data)
    exp = expected_items(data, ["l0"], "train")
    ds = PairDataset(data, ["l0"], "train", crop=20)
    for key in [(0, 1), (1, 2), (2, 3), 0, 1]:
        i = key[0] if isinstance(key, tuple) else key
        _, op, row = exp[i]
        d = ds[key]
        hits = find_window(src[arrays[op]["source"][row]], hwc(d["input"]))
        assert len(hits) == 1 and hits[0][2:] == (False, False)
    size = src.shape[1]
    full = PairDataset(data, ["l0"], "train", crop=size)
    np.testing.assert_array_equal(hwc(full[(0, 9)]["input"]), src[arrays["l0"]["source"][exp[0][2]]])


def test_bad_arguments(data):
    with pytest.raises(ValueError, match=r"^split must be one of \['train', 'test', 'single'\], got 'val'$"):
        PairDataset(data, split="val")
    with pytest.raises(ValueError, match=r"^\S+tiny.h5 has no pairs for \['wls'\]; it has .*l0.*wmf.*\]$"):
        PairDataset(data, ["wls"])
    size = stored(data)[0].shape[1]
    for crop in (0, 1, 15, size + 2):
        msg = (f"crop must be even and in [2, {size}] (the smallest stored pair side, "
               f"l0: {size}, wmf: {size}), got {crop}")
        with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
            PairDataset(data, crop=crop)
    assert len(PairDataset(data, crop=2)) > 0


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """l0 (RGB, seven γ per crop, 32² pairs) and sr (Y stored as one channel, three scales per
    crop, 24² pairs: 32 less its remainder modulo 12)."""
    return tiny_build(tmp_path_factory.mktemp("mixed"), "mixed.h5", ("l0", "sr"), seed=1,
                      label="mixed", size=32, per_image=2)


def test_mixed_sizes_single_channel_pairs_and_gamma_values(mixed):
    ds = PairDataset(mixed, ["sr", "l0"], "train")
    assert ds.sizes == {"sr": 24, "l0": 32} and ds.size == 24
    with h5py.File(mixed, "r") as f:
        g = f["ops/sr"]
        names = sorted(g)
        sr_in, sr_out = g["input"][:], g["target"][:]
        sr_split, sr_gamma = g["split"][:], g["gamma"][:]
        l0_gamma, l0_split = f["ops/l0/gamma"][:], f["ops/l0/split"][:]
    assert {"input", "target"} <= set(names) and sr_in.ndim == 3  # one channel stored
    rows = np.flatnonzero(sr_split == SPLIT_CODES["train"])
    assert len(rows) != np.sum(l0_split == SPLIT_CODES["train"])  # unequal counts per operator
    np.testing.assert_array_equal(ds.gamma_values("sr"), sr_gamma[rows])
    np.testing.assert_array_equal(ds.gamma_values("l0"), l0_gamma[l0_split == 0])
    for i, r in enumerate(rows[:4]):
        d = ds[i]
        assert d["op"] == "sr" and d["input"].shape == d["target"].shape == (3, 24, 24)
        for c in range(3):  # three equal channels, as the authors' loader read gray images
            np.testing.assert_array_equal(d["input"][c].numpy(), sr_in[r])
            np.testing.assert_array_equal(d["target"][c].numpy(), sr_out[r])
    msg = "crop must be even and in [2, 24] (the smallest stored pair side, sr: 24), got 26"
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        PairDataset(mixed, ["l0", "sr"], "train", crop=26)


def test_the_file_handle_is_opened_once_per_process_and_never_pickled(data):
    ds = PairDataset(data, ["l0"], "train")
    h = ds._handle()
    assert ds._handle() is h  # reused in the process that opened it
    ds._pid = -1  # as seen from a forked worker: its own handle
    assert ds._handle() is not h
    first = ds[0]
    clone = pickle.loads(pickle.dumps(ds))  # what a spawned DataLoader worker receives
    assert clone._file is None
    np.testing.assert_array_equal(clone[0]["input"], first["input"])
    np.testing.assert_array_equal(clone[0]["target"], first["target"])
