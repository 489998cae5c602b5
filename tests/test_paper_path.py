"""The paper-scale path on the CPU (issue 14): ``--preset paper`` with its batches cropped to the
smallest sample of each batch (the authors' var_custom_collate), on samples of two sizes, and
``python -m benchmarks.prepare --dry-run``."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks import prepare as bprepare
from model import cli
from model.presets import get_preset
from model.train import EpochBatches, _loader, _Run, crop_to_smallest, sample_sides, schedule
from model import registry
from tiny_data import tiny_build


@pytest.fixture(scope="module")
def two_sizes(tmp_path_factory) -> Path:
    """l0 and sr pairs from three 56² images at size 40: l0's pairs are 40², sr's 36² (its side
    is the crop less its remainder modulo 12), so a batch mixing them has two sizes."""
    return tiny_build(tmp_path_factory.mktemp("paper"), "two_sizes.h5", ("l0", "sr"), side=56,
                      label="two sizes", size=40, per_image=3, single=False)


def _item(h, w, seed, fill=None):
    x = torch.arange(3 * h * w, dtype=torch.int64).reshape(3, h, w) % 251
    return {"input": x.to(torch.uint8), "target": (250 - x).to(torch.uint8), "gamma": 0.1,
            "op": "l0", "seed": seed}


def test_crop_to_smallest_windows():
    items = [_item(40, 40, 1), _item(37, 44, 2), _item(38, 39, 3)]
    out = crop_to_smallest(items)
    for d, o in zip(items, out):
        assert o["input"].shape == o["target"].shape == (3, 36, 38)  # min 37 → even 36, min 38
        # a window of the sample, the same for input and target
        H, W = d["input"].shape[1:]
        hits = [(t, le) for t in range(H - 35) for le in range(W - 37)
                if torch.equal(d["input"][:, t:t + 36, le:le + 38], o["input"])]
        assert len(hits) == 1
        t, le = hits[0]
        assert torch.equal(d["target"][:, t:t + 36, le:le + 38], o["target"])
    # a function of the seeds (reproducible in any process), and the seeds do move the window
    again = crop_to_smallest([dict(d) for d in items])
    assert all(torch.equal(a["input"], b["input"]) for a, b in zip(out, again))
    moved = crop_to_smallest([{**d, "seed": d["seed"] + 100} for d in items])
    assert any(not torch.equal(a["input"], b["input"]) for a, b in zip(out, moved))
    # samples of the smallest size are left whole
    same = crop_to_smallest([_item(36, 38, 5), _item(40, 40, 6)])
    assert torch.equal(same[0]["input"], _item(36, 38, 5)["input"])
    with pytest.raises(ValueError, match="smaller than 2x2"):
        crop_to_smallest([_item(1, 8, 0), _item(8, 8, 1)])


def test_paper_batches_are_cropped_to_their_smallest_sample(two_sizes):
    """The paper preset reads samples whole; each batch has the size of its smallest sample,
    and DataLoader workers give the same batches as the main process."""
    preset = get_preset("paper")
    assert preset.batch_crop and preset.batch == 12
    ds = schedule(two_sizes, ("l0", "sr"), registry.get("decouple"), preset, None)[0].dataset
    assert ds.crop is None and ds.sizes == {"l0": 40, "sr": 36}
    run = _Run(0, 1, "cpu", None)
    main = list(_loader(ds, preset.with_(workers=0), 0, 0, 3, run))
    workers = list(_loader(ds, preset.with_(workers=2), 0, 0, 3, run))
    assert len(main) == len(workers) == 3
    for a, b in zip(main, workers):
        assert torch.equal(a["input"], b["input"]) and torch.equal(a["target"], b["target"])
        side = min(ds.sizes[o] for o in a["op"])
        assert a["input"].shape == (12, 3, side, side)
        assert set(a["op"]) == {"l0", "sr"}  # two sizes in the batch
        assert side == 36


def test_shares_of_a_batch_are_cropped_like_the_whole_batch(two_sizes):
    """Split between two processes (torchrun), each share is cropped to the smallest sample of
    the *global* batch, with the windows one process would use: the shares in rank order are
    the one-process batch."""
    preset = get_preset("paper").with_(batch=4, workers=0)  # shares of 2
    ds = schedule(two_sizes, ("l0", "sr"), registry.get("decouple"), preset, None)[0].dataset
    one = list(_loader(ds, preset, 0, 0, 9, _Run(0, 1, "cpu", None)))
    shares = [list(_loader(ds, preset, 0, 0, 9, _Run(r, 2, "cpu", None))) for r in range(2)]
    # a share may hold only 40² l0 samples of a batch with sr: it is still cropped to 36²
    assert any(set(s[k]["op"]) == {"l0"} and "sr" in one[k]["op"] and s[k]["input"].shape[-1] == 36
               for s in shares for k in range(len(one)))
    for k, batch in enumerate(one):
        for key in ("input", "target"):
            assert torch.equal(torch.cat([shares[0][k][key], shares[1][k][key]]), batch[key])
        assert shares[0][k]["op"] + shares[1][k]["op"] == batch["op"]
    keys = next(iter(EpochBatches(len(ds), 12, 0, 0, 1, rank=1, world=2,
                                  sides=sample_sides(ds))))
    assert len(keys) == 6 and {k[2:] for k in keys} == {(36, 36)}
    with pytest.raises(ValueError, match="larger than the smallest sample"):
        crop_to_smallest([{**_item(30, 30, 0), "crop_to": (32, 32)}])


def test_paper_preset_trains_on_two_sizes_and_evaluates(two_sizes, tmp_path, capsys):
    out = tmp_path / "paper"
    rc = cli.main(["train", "--data", str(two_sizes), "--ops", "l0,sr", "--preset", "paper",
                   "--iterations", "3", "--width", "4", "--workers", "2", "--device", "cpu",
                   "--quiet", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    assert config["preset"]["name"] == "paper" and config["preset"]["batch_crop"] is True
    assert config["preset"]["batch"] == 12 and config["width"] == 4
    assert config["dilations"] == list(get_preset("paper").dilations)
    with open(out / "log.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[-1][0] == "3" and np.isfinite(float(rows[-1][2]))
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["iteration"] == 3
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    capsys.readouterr()
    # eval --ops: only the operators asked for, and only the model's
    assert cli.main(["eval", "--ckpt", str(out), "--data", str(two_sizes), "--ops", "SR",
                     "--device", "cpu"]) == 0
    header, table = capsys.readouterr().out.split("\n", 1)
    assert header.startswith("checkpoint ") and "iteration 3 of 3" in header  # the model's
    assert "sr" in table and "l0" not in table  # the rows: only the operators asked for
    assert cli.main(["eval", "--ckpt", str(out), "--data", str(two_sizes), "--ops", "eccv6",
                     "--device", "cpu"]) == 2
    assert "trained on l0, sr only" in capsys.readouterr().err


def test_prepare_dry_run_measures_and_writes_nothing(data, tmp_path, capsys):
    cache = tmp_path / "cache"
    rc = bprepare.main(["--scale", "smoke", "--cache", str(cache), "--data", str(data),
                        "--ops", "l0", "--tables", "table1", "--dry-run", "--estimate-steps",
                        "1", "--device", "cpu"])
    assert rc == 0
    text = capsys.readouterr().out
    assert f"dataset: {data}" in text
    names = ["decouple-l0", "concat-l0", "single-l0-0.02"]
    lines = {ln.split()[0]: ln.split() for ln in text.splitlines() if ln.split()
             and ln.split()[0] in names}
    assert sorted(lines) == sorted(names)
    for parts in lines.values():
        assert parts[1:4] == ["smoke", "30", "30"]  # preset, iterations, left
        assert parts[5] == "s" and float(parts[4]) >= 0
    timed = [ln for ln in text.splitlines() if ln.strip().startswith("timed ")]
    assert [ln.split()[1].rstrip(":") for ln in timed] == ["decouple", "concat", "single"]
    assert all(float(ln.split()[2]) > 0 for ln in timed)  # measured seconds per step
    assert not cache.exists()  # nothing trained, nothing built


def test_prepare_dry_run_paper_without_dataset(tmp_path, capsys):
    cache = tmp_path / "cache"
    rc = bprepare.main(["--scale", "paper", "--cache", str(cache), "--ops", "l0,wls",
                        "--tables", "table6", "--dry-run", "--estimate-steps", "0"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "missing: built there first" in text and "synthetic batch of 12 × 128² crops" in text
    assert "each batch cropped to its smallest sample" in text
    iters = get_preset("paper").iterations
    rows = [ln.split() for ln in text.splitlines() if ln.split() and ln.split()[0].startswith(
        ("decouple-", "single-", "concat-", "hdrnet-"))]
    assert len(rows) == 8  # per operator: decouple, single, concat, hdrnet
    assert all(r[1:4] == ["paper", str(iters), str(iters)] for r in rows)
    assert not cache.exists()
    assert bprepare.main(["--scale", "paper", "--cache", str(cache), "--dry-run",
                          "--estimate-steps", "-1"]) == 2
