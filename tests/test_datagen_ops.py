"""datagen over every registered operator: fixed-effect filters, degradations, single-channel
pairs, per-pair seeds, groups, the default test split (issues 12 and 17)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

import operators
from datagen.build import build
from datagen.cli import _ops, build_options, main, parser
from datagen.dataset import PairDataset
from datagen.inspection import contact_sheet, info, verify
from datagen.plan import SINGLE, TEST, TRAIN, Options, make_plan, pair_size
from datagen.sources import DEFAULT_TEST_FILES, default_images, read_image

NEW = ("shock", "llf_remap", "wls_enhance", "style", "pencil", "sr", "denoise", "jpeg", "rain")
FIXED = ("shock", "llf_remap", "wls_enhance", "style", "pencil")
SINGLE_CHANNEL = ("sr", "denoise", "jpeg")
RANDOM = ("denoise", "rain")


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory) -> Path:
    """Three small textured RGB images (two crops of 32x32 each)."""
    d = tmp_path_factory.mktemp("op_images")
    rng = np.random.default_rng(17)
    for i in range(3):
        base = rng.integers(0, 256, (10, 14, 3), dtype=np.uint8)
        img = cv2.resize(base, (70, 40), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(d / f"im{i}.png"), img)
    return d


def options(image_dir, **kw) -> Options:
    files = tuple(sorted(str(p) for p in image_dir.iterdir()))
    base = dict(ops=NEW, images=files, images_label="ops", size=32, per_image=2,
                test_fraction=0.34, seed=3, max_crops=2, scales=(1.0,))
    return Options(**{**base, **kw})


@pytest.fixture(scope="module")
def built(image_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ops") / "ops.h5"
    build(make_plan(options(image_dir)), out, workers=1, progress=False)
    return out


def test_groups_and_lists_on_the_command_line(capsys):
    assert _ops("all") == operators.ALL and len(operators.ALL) == 15
    assert _ops("Restoration") == ("sr", "denoise", "jpeg", "rain")
    assert _ops("filters") == operators.NAMES
    assert _ops("eccv6") == ("l0", "wls", "rtv", "rgf", "wmf", "shock")
    assert len(_ops("TPAMI10")) == 10 and "pencil" in _ops("tpami10")
    assert _ops("SR, l0 ,sr") == ("sr", "l0")
    with pytest.raises(argparse.ArgumentTypeError, match="unknown operator or group 'foo'"):
        _ops("l0,foo")
    with pytest.raises(SystemExit):
        parser().parse_args(["build", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for word in ("restoration = sr, denoise, jpeg, rain", "eccv6 =", "tpami10 =", "llf_remap",
                 "--exemplar", "--texture", "--test-images"):
        assert word in text


def test_every_stored_pair_is_operators_pair_of_its_source(built):
    """Each stored pair equals to_uint8(operators.pair(name, crop, γ, seed=seed)) of its stored
    source crop (sr: its top-left pair_size block), input and target."""
    checked = 0
    with h5py.File(built, "r") as f:
        pixels = f["sources/pixels"][:]
        for name in NEW:
            g, spec = f["ops"][name], operators.get(name)
            p = int(g.attrs["pair_size"])
            gamma, source = g["gamma"][:], g["source"][:]
            seeds = g["seed"][:] if spec.random else [None] * len(gamma)
            for k in range(len(gamma)):
                gk = None if np.isnan(gamma[k]) else float(gamma[k])
                sk = None if seeds[k] is None else int(seeds[k])
                x, y = operators.pair(name, pixels[source[k]][:p, :p], gk, seed=sk)
                if spec.kind == "filter":
                    np.testing.assert_array_equal(g["output"][k], operators.to_uint8(y))
                else:
                    np.testing.assert_array_equal(g["input"][k], operators.to_uint8(x))
                    np.testing.assert_array_equal(g["target"][k], operators.to_uint8(y))
                checked += 1
            if spec.random:  # a seed per pair: two pairs at one γ on one crop still differ
                assert len(set(seeds.tolist())) == len(seeds)
    assert checked > 100


def test_single_channel_storage_and_three_channel_items(built):
    with h5py.File(built, "r") as f:
        for name in SINGLE_CHANNEL:
            g = f["ops"][name]
            p = int(g.attrs["pair_size"])
            assert g["input"].shape[1:] == g["target"].shape[1:] == (p, p)
            assert g.attrs["pair_input"] == "input" and g.attrs["pair_target"] == "target"
        assert f["ops/rain/input"].shape[1:] == (32, 32, 3)
        assert f["ops/sr"].attrs["pair_size"] == 24  # 32 - 32 mod 12: every scale keeps it
        assert "output" not in f["ops/sr"] and "input" not in f["ops/shock"]
        denoise_in, denoise_tg = f["ops/denoise/input"][:], f["ops/denoise/target"][:]
        shock_out, src = f["ops/shock/output"][:], f["sources/pixels"][:]
        shock_src = f["ops/shock/source"][:]
    ds = PairDataset(built, ["denoise", "shock"], "train")
    assert ds.sizes == {"denoise": 32, "shock": 32}
    seen = set()
    for i in range(len(ds)):
        item = ds[i]
        row = int(ds.index[i, 1])
        x, y = item["input"].numpy(), item["target"].numpy()
        assert x.shape == y.shape == (3, 32, 32)
        if item["op"] == "denoise":
            for c in range(3):  # three equal channels, the stored gray image
                np.testing.assert_array_equal(x[c], denoise_in[row])
                np.testing.assert_array_equal(y[c], denoise_tg[row])
        else:
            assert np.isnan(item["gamma"])
            np.testing.assert_array_equal(x.transpose(1, 2, 0), src[shock_src[row]])
            np.testing.assert_array_equal(y.transpose(1, 2, 0), shock_out[row])
        seen.add(item["op"])
    assert seen == {"denoise", "shock"}
    with pytest.raises(ValueError, match="sr: 24"):
        PairDataset(built, ["sr", "rain"], "train", crop=26)


@pytest.mark.parametrize("name", ["sr", "rain"])
def test_crop_and_flip_take_input_and_target_from_one_window(built, name):
    ds = PairDataset(built, [name], "train", crop=8, flip=True)
    p = ds.sizes[name]
    with h5py.File(built, "r") as f:
        inp, tgt = f["ops"][name]["input"][:], f["ops"][name]["target"][:]
    for i in range(4):
        seed = 100 + i
        item = ds[(i, seed)]
        rng = np.random.default_rng(seed)  # the draws PairDataset makes, in its order
        top, left = int(rng.integers(0, p - 8 + 1)), int(rng.integers(0, p - 8 + 1))
        flips = rng.random() < 0.5, rng.random() < 0.5
        row = int(ds.index[i, 1])
        for got, full in ((item["input"], inp[row]), (item["target"], tgt[row])):
            want = full[top:top + 8, left:left + 8]
            want = want[:, ::-1] if flips[0] else want
            want = want[::-1] if flips[1] else want
            if want.ndim == 2:
                want = np.repeat(want[:, :, None], 3, axis=2)
            np.testing.assert_array_equal(got.numpy().transpose(1, 2, 0), want)


def test_fixed_effect_operators_make_one_pair_per_crop(built):
    with h5py.File(built, "r") as f:
        n, crop_split = f["sources/pixels"].shape[0], f["sources/split"][:]
        for name in FIXED:
            g = f["ops"][name]
            source, split = g["source"][:], g["split"][:]
            np.testing.assert_array_equal(np.sort(source), np.arange(n))
            np.testing.assert_array_equal(split, crop_split[source])
            assert np.all(np.isnan(g["gamma"][:])) and np.all(np.isnan(g["gamma_effective"][:]))
            assert g.attrs["law"] == "none" and g.attrs["kind"] == "filter"
            assert g["output"].shape == (n, 32, 32, 3)


def test_sr_makes_every_scale_of_every_crop(built):
    with h5py.File(built, "r") as f:
        g = f["ops/sr"]
        source, gamma, split = g["source"][:], g["gamma"][:], g["split"][:]
        crop_split = f["sources/split"][:]
    for c in range(len(crop_split)):
        for code in ((TRAIN, SINGLE) if crop_split[c] == TRAIN else (TEST,)):
            sel = (source == c) & (split == code)
            assert sorted(gamma[sel]) == [2.0, 3.0, 4.0], (c, code)
    assert pair_size("sr", 128) == 120 and pair_size("sr", 24) == 24 and pair_size("jpeg", 30) == 30


def test_denoise_and_jpeg_take_the_paper_test_gammas(built):
    with h5py.File(built, "r") as f:
        for name, tests in (("denoise", [15, 25, 50]), ("jpeg", [10, 20]), ("rain", None)):
            g = f["ops"][name]
            gamma, split = g["gamma"][:], g["split"][:]
            tests = tests or list(operators.get(name).test_gammas)
            for c in np.unique(g["source"][:][split == TEST]):
                sel = (g["source"][:] == c) & (split == TEST)
                np.testing.assert_allclose(sorted(gamma[sel]), tests)
            lo, hi = operators.get(name).gamma_range
            assert np.all((gamma[split == TRAIN] >= lo) & (gamma[split == TRAIN] <= hi))
        assert np.all(f["ops/jpeg/gamma"][:] == np.round(f["ops/jpeg/gamma"][:]))


def test_random_degradations_do_not_depend_on_workers_or_other_operators(image_dir, built,
                                                                          tmp_path):
    alone = make_plan(options(image_dir, ops=("rain", "denoise")))
    build(alone, tmp_path / "two.h5", workers=2, progress=False)
    with h5py.File(built, "r") as a, h5py.File(tmp_path / "two.h5", "r") as b:
        for name in RANDOM:
            for key in ("input", "target", "gamma", "seed", "source", "split"):
                np.testing.assert_array_equal(a["ops"][name][key][:], b["ops"][name][key][:],
                                              err_msg=f"{name}/{key}")


def test_verify_recomputes_new_operators_and_finds_a_changed_pair(built, tmp_path):
    report, ok = verify(built)
    assert ok, report
    for name in NEW:
        assert f"PASS  {name}: " in report
    assert "PASS  sr: training γ inside [2, 4] (discrete)" in report
    assert "PASS  shock: fixed effect: no γ, one pair per crop" in report
    bad = tmp_path / "bad.h5"
    bad.write_bytes(built.read_bytes())
    with h5py.File(bad, "r+") as f:  # rewritten through HDF5: the checksums still agree
        f["ops/denoise/input"][:] = 255 - f["ops/denoise/input"][:]
    report, ok = verify(bad, samples=1)
    assert not ok and "FAIL  denoise: 1 random pairs recomputed identically" in report
    assert "input: " in report and "FAIL  rain" not in report
    with h5py.File(bad, "r+") as f:  # another seed: another noise, another pair
        f["ops/rain/seed"][:] = f["ops/rain/seed"][:] + 1
    report, ok = verify(bad, samples=1)
    assert "FAIL  rain: 1 random pairs recomputed identically" in report


def test_the_file_explains_itself(built, tmp_path):
    with h5py.File(built, "r") as f:
        assert f.attrs["format_version"] == 3
        for name in NEW:
            spec, at = operators.get(name), f["ops"][name].attrs
            assert at["kind"] == spec.kind and at["channels"] == spec.channels
            assert at["law"] == str(spec.law) and at["law_description"] == spec.law.describe()
            assert at["seed"] == 3 and str(spec.title) == at["title"]
            assert name in at["pair_rule"] and "operators.pair" in at["pair_rule"]
            fixed = json.loads(at["fixed"])
            assert set(fixed) == set(spec.fixed)
        style = json.loads(f["ops/style"].attrs["fixed"])["exemplar"]
        pencil = json.loads(f["ops/pencil"].attrs["fixed"])["texture"]
        assert style["name"] and len(style["sha256"]) == 64
        assert pencil["name"].startswith("procedural") and len(pencil["sha256"]) == 16
        assert "seed" in f["ops/rain"].attrs["seeds"]
    text = info(built)
    assert "sr          degradation y" in text and "no γ (fixed effect)" in text
    sheet = contact_sheet(built, tmp_path / "sheet.png", ops=["sr", "denoise", "rain", "shock"])
    assert cv2.imread(str(sheet)).shape[0] > 300


def test_auxiliary_images_by_name_and_hash_never_a_path(image_dir, tmp_path):
    rng = np.random.default_rng(2)
    exemplar = tmp_path / "my_exemplar.png"
    cv2.imwrite(str(exemplar), cv2.resize(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8),
                                          (40, 40), interpolation=cv2.INTER_CUBIC))
    out = tmp_path / "style.h5"
    assert main(["build", "--ops", "style", "--images", str(image_dir), "--out", str(out),
                 "--size", "32", "--max-crops", "1", "--exemplar", str(exemplar), "--quiet",
                 "--workers", "1"]) == 0
    with h5py.File(out, "r") as f:
        rec = json.loads(f["ops/style"].attrs["fixed"])["exemplar"]
        from operators.style import exemplar_info

        assert rec["name"] == "my_exemplar.png"
        assert rec["sha256"] == exemplar_info(str(exemplar))["sha256"]
        assert "--exemplar my_exemplar.png" in f.attrs["command"]
        for key in ("options", "fixed"):
            text = f.attrs["options"] if key == "options" else f["ops/style"].attrs["fixed"]
            assert str(tmp_path) not in text and "my_exemplar.png" in text
        src, output = f["sources/pixels"][0], f["ops/style/output"][0]
    custom = operators.to_uint8(operators.apply("style", src, exemplar=str(exemplar)))
    np.testing.assert_array_equal(output, custom)
    assert not np.array_equal(custom, operators.to_uint8(operators.apply("style", src)))
    report, ok = verify(out)
    assert ok and "pairs not recomputed" in report and "--exemplar" in report
    report, ok = verify(out, exemplar=exemplar, samples=10)
    assert ok and "PASS  style: 3 random pairs recomputed identically" in report
    assert "not recomputed" not in report


def test_default_split_holds_out_photographs():
    """Issue 12: the bundled set's test split is at least two images, photographs among them,
    with at least 40 test crops."""
    args = parser().parse_args(["build", "--ops", "l0"])
    opts = build_options(args)
    assert opts.test_images == DEFAULT_TEST_FILES
    plan = make_plan(opts)
    test_images = {Path(opts.images[i]).name for i in np.flatnonzero(plan.image_split == TEST)}
    assert test_images == set(DEFAULT_TEST_FILES) and len(test_images) >= 2
    assert "astronaut.png" in test_images  # an ordinary photograph
    assert int((plan.crop_split == TEST).sum()) >= 40
    assert int((plan.crop_split == TRAIN).sum()) >= 100
    # --test-fraction chooses at random again; --test-images names them
    frac = make_plan(build_options(parser().parse_args(["build", "--ops", "l0",
                                                        "--test-fraction", "0.3"])))
    assert (frac.image_split == TEST).sum() == 2
    named = build_options(parser().parse_args(["build", "--test-images", "chelsea.png,rocket.jpg"]))
    assert named.test_images == ("chelsea.png", "rocket.jpg")
    with pytest.raises(ValueError, match="not among the images"):
        make_plan(build_options(parser().parse_args(["build", "--test-images", "lena.png"])))
    assert read_image(default_images()[0])[0] is not None


def test_an_interrupted_build_of_degradations_resumes_to_the_same_file(image_dir, built, tmp_path,
                                                                        monkeypatch):
    """Journal shards of degradations (inputs, targets) resume like a filter's outputs."""
    from datagen import build as build_mod

    plan = make_plan(options(image_dir, ops=("sr", "denoise", "shock")))
    real, calls = build_mod.run_task, []

    def fail_on_fifth(*args):
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("operator crashed")
        return real(*args)

    monkeypatch.setattr(build_mod, "FLUSH_EVERY_PAIRS", 2)
    monkeypatch.setattr(build_mod, "run_task", fail_on_fifth)
    out = tmp_path / "resumed.h5"
    with pytest.raises(RuntimeError, match="operator crashed"):
        build(plan, out, workers=1, progress=False)
    assert list((tmp_path / "resumed.h5.partial").glob("sr.*.npz"))
    monkeypatch.setattr(build_mod, "run_task", real)
    assert build(plan, out, workers=1, progress=False, resume=True).resumed_pairs > 0
    with h5py.File(built, "r") as a, h5py.File(out, "r") as b:
        for name in ("sr", "denoise", "shock"):
            for key in b["ops"][name]:
                np.testing.assert_array_equal(a["ops"][name][key][:], b["ops"][name][key][:],
                                              err_msg=f"{name}/{key}")
