"""The model zoo (model/zoo): every shipped model reproduces its card, loads by name like a run
folder, is package data, and a re-export from a run folder round-trips."""
from __future__ import annotations

import fnmatch
import json
import re
import shutil
import tomllib
from pathlib import Path

import cv2
import numpy as np
import pytest

import model
from model import zoo
from model.cli import main
from model.predict import Predictor
from model.presets import get_preset
from model.train import train

ROOT = Path(__file__).resolve().parents[1]
ZOO_DIR = ROOT / "model" / "zoo"
BUDGET_BYTES = 25 * 1024 * 1024
TINY = get_preset("smoke").with_(width=4, dilations=(2,), crop=16, batch=3, iterations=4,
                                 log_every=1, ckpt_every=2)


@pytest.fixture
def shipped(monkeypatch):
    """The zoo shipped in the repository (not a $DECOUPLE_ZOO from the environment)."""
    monkeypatch.delenv(zoo.ENV, raising=False)
    if not zoo.names():
        pytest.fail("the repository's zoo is empty: python -m model zoo export ... (docs/zoo.md)")
    return zoo.names()


def test_the_zoo_fits_its_budget_and_every_card_names_its_files(shipped):
    total = 0
    for name in shipped:
        c = zoo.card(name)
        w = ZOO_DIR / c["weights"]["file"]
        assert w.is_file() and w.stat().st_size == c["weights"]["bytes"]
        for key in ("operators", "gamma", "arch", "config", "scale", "trained", "dataset",
                    "test", "check"):
            assert c[key], f"{name}: card has no {key}"
        assert c["trained"]["command"].startswith("python -m model train")
        assert c["exported"]["command"].startswith("python -m model zoo export")
        text = (ZOO_DIR / f"{name}.json").read_text()  # no machine path in a shipped card
        assert not re.search(r'"(/|[A-Za-z]:\\\\)', text), f"{name}: an absolute path in its card"
        if c["iteration"] < c["planned_iterations"]:  # exported with --allow-partial: said
            row = [r for r in zoo.table() if r["name"] == name][0]
            assert f"partial: {c['iteration']}/{c['planned_iterations']}" in row["scale"]
        total += zoo.size_bytes(name)
    assert total <= BUDGET_BYTES
    # no stray files: every file of the folder is a card, its weights or the code
    known = {"__init__.py"} | {f"{n}.json" for n in shipped} | \
            {zoo.card(n)["weights"]["file"] for n in shipped}
    stray = {p.name for p in ZOO_DIR.iterdir() if p.is_file()} - known
    assert not stray, f"files in model/zoo that no card names: {sorted(stray)}"


def test_every_zoo_model_reproduces_its_cards_check_figures(shipped):
    problems = [p for name in shipped for p in zoo.verify(name)]
    assert not problems, "\n".join(problems)


def test_zoo_files_are_package_data():
    """pyproject installs model.zoo's cards and weights and the explorer's page (so that
    ``pip install .`` then ``model.load(NAME)`` works from any folder)."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert {"model.zoo", "model.explore"} <= set(cfg["packages"])
    for pkg, folder in (("model.zoo", ZOO_DIR), ("model.explore", ROOT / "model" / "explore")):
        globs = cfg["package-data"][pkg]
        files = [p.relative_to(folder).as_posix() for p in folder.rglob("*")
                 if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts]
        assert files, f"{folder} has no data files"
        missing = [f for f in files if not any(fnmatch.fnmatch(f, g) for g in globs)]
        assert not missing, f"{pkg}: not installed by package-data: {missing}"


def test_load_by_name_gives_the_predictor_of_a_run_folder(shipped, tmp_path, monkeypatch):
    name = shipped[0]
    a, b = model.load(name), model.load(zoo.PREFIX + name)
    assert type(a) is Predictor and type(b) is Predictor
    assert a.ops == tuple(zoo.card(name)["operators"])
    # an existing path of that name wins over the bare name; zoo: still means the zoo
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).mkdir()
    with pytest.raises(FileNotFoundError):
        model.load(name)
    assert type(model.load(zoo.PREFIX + name)) is Predictor
    with pytest.raises(ValueError, match="no model 'nope' in the zoo"):
        model.load("zoo:nope")


def test_a_corrupt_or_non_finite_weight_file_is_refused(shipped, tmp_path, monkeypatch):
    name = shipped[0]
    c = zoo.card(name)
    for f in (f"{name}.json", c["weights"]["file"]):
        shutil.copy(ZOO_DIR / f, tmp_path / f)
    w = tmp_path / c["weights"]["file"]
    blob = bytearray(w.read_bytes())
    blob[-3] ^= 0xFF
    w.write_bytes(bytes(blob))
    monkeypatch.setenv(zoo.ENV, str(tmp_path))
    with pytest.raises(ValueError, match="corrupt"):
        model.load(name)


def test_a_card_file_outside_the_zoo_loads_only_its_own_weights(shipped, tmp_path):
    """model.load(FOLDER/NAME.json) (the models beside a committed table) gives the zoo model's
    predictor; a card naming another file (a path out of its folder), another name, a link or
    a file that is not a card is refused before any weights are read."""
    name = shipped[0]
    c = zoo.card(name)
    for f in (f"{name}.json", c["weights"]["file"]):
        shutil.copy(ZOO_DIR / f, tmp_path / f)
    img = np.random.default_rng(2).integers(0, 256, (18, 22, 3), dtype=np.uint8)
    op = c["operators"][0]
    g = c["gamma"][op]["test_gammas"][0] if c["gamma"][op]["range"] else None
    got = model.load(str(tmp_path / f"{name}.json"))
    assert np.array_equal(got.apply(img, op, g), model.load(name).apply(img, op, g))
    bad = dict(c, weights=dict(c["weights"], file=f"../{name}.safetensors"))
    (tmp_path / f"{name}.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="names weights"):
        model.load(str(tmp_path / f"{name}.json"))
    (tmp_path / "other.json").write_text(json.dumps(c))  # a card of another name
    with pytest.raises(ValueError, match="not a decouple-ops zoo v1 card of 'other'"):
        zoo.read_card_file(tmp_path / "other.json")
    (tmp_path / "junk.json").write_text("[1, 2")
    with pytest.raises(ValueError, match="cannot be read"):
        zoo.read_card_file(tmp_path / "junk.json")
    (tmp_path / "link.json").symlink_to(ZOO_DIR / f"{name}.json")
    with pytest.raises(ValueError, match="not a regular file"):
        zoo.read_card_file(tmp_path / "link.json")
    with pytest.raises(ValueError, match="not a model card"):
        zoo.read_card_file(tmp_path / "Bad Name.json")


def test_cli_lists_the_zoo_and_applies_a_model_by_name(shipped, tmp_path, capsys):
    assert main(["zoo"]) == 0
    out = capsys.readouterr().out
    for name in shipped:
        assert name in out
    assert "MB" in out and "test PSNR" in out
    one = [n for n in shipped if len(zoo.card(n)["operators"]) == 1
           and zoo.card(n)["gamma"][zoo.card(n)["operators"][0]]["range"]][0]
    op = zoo.card(one)["operators"][0]
    g = zoo.card(one)["gamma"][op]["test_gammas"][2]
    rgb = np.random.default_rng(0).integers(0, 256, (20, 26, 3), dtype=np.uint8)
    src, dst = tmp_path / "in.png", tmp_path / "out.png"
    cv2.imwrite(str(src), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert main(["apply", "--model", one, "--gamma", str(g), str(src), str(dst)]) == 0
    got = cv2.cvtColor(cv2.imread(str(dst)), cv2.COLOR_BGR2RGB)
    assert np.array_equal(got, model.load(one).apply(rgb, op, g))
    assert main(["apply", "--model", "nope", "--gamma", "1", str(src), str(dst)]) == 2
    assert "no model 'nope' in the zoo" in capsys.readouterr().err
    assert main(["apply", "--model", one, "--ckpt", str(tmp_path), str(src), str(dst)]) == 2


def test_export_round_trips_and_skips_unfinished_runs(data, tmp_path, monkeypatch, capsys):
    runs, out = tmp_path / "runs", tmp_path / "zoo"
    train(data, ["l0"], runs / "decouple-l0", preset=TINY, progress=False)
    train(data, ["wmf"], runs / "decouple-wmf", preset=TINY, stop_at=2, progress=False)
    assert main(["zoo", "export", "--runs", str(runs), "--data", str(data), "--out", str(out),
                 "decouple-l0", "decouple-wmf", "realtime-tpami10-b2"]) == 0
    printed = capsys.readouterr().out
    assert "skipped 2" in printed
    assert sorted(p.name for p in out.iterdir()) == ["l0.json", "l0.safetensors"]
    c = json.loads((out / "l0.json").read_text())
    assert c["dataset"]["digest"] == c["config"]["data_digest"]
    assert c["config"]["data"] == data.name  # the file name: a card carries no machine path
    assert str(tmp_path) not in json.dumps(c["config"])
    assert c["test"]["rows"] and c["check"]["rows"]
    assert "decouple-wmf realtime-tpami10-b2" in c["exported"]["command"]
    monkeypatch.setenv(zoo.ENV, str(out))
    assert zoo.names() == ["l0"] and zoo.verify("l0") == []
    img = np.random.default_rng(1).integers(0, 256, (18, 22, 3), dtype=np.uint8)
    assert np.array_equal(model.load("l0").apply(img, "l0", 0.05),
                          model.load(runs / "decouple-l0").apply(img, "l0", 0.05))
    # apply without --op: the one operator of the run's model
    src, dst = tmp_path / "in.png", tmp_path / "out.png"
    cv2.imwrite(str(src), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    assert main(["apply", "--ckpt", str(runs / "decouple-l0"), "--gamma", "0.05", str(src),
                 str(dst)]) == 0
    assert np.array_equal(cv2.cvtColor(cv2.imread(str(dst)), cv2.COLOR_BGR2RGB),
                          model.load("l0").apply(img, "l0", 0.05))
    assert main(["apply", "--method", "bgu", "--gamma", "0.05", str(src), str(dst)]) == 2
    assert "--op is needed" in capsys.readouterr().err
    # a card whose figures are not the model's is caught
    c["check"]["rows"][0]["psnr"] += 1.0
    (out / "l0.json").write_text(json.dumps(c))
    assert any("psnr" in p for p in zoo.verify("l0"))
    # the same export again replaces its own files; a user's file or a link at an output is
    # refused before the run is even loaded, and left as it was
    export_cmd = ["zoo", "export", "--runs", str(runs), "--data", str(data), "--out", str(out),
                  "decouple-l0"]
    (out / "l0.json").write_text(json.dumps(c))  # a card edited by hand is still a card
    assert main(export_cmd) == 0
    assert json.loads((out / "l0.json").read_text())["test"] == c["test"]
    assert zoo.verify("l0") == []
    mine = tmp_path / "mine.bin"
    mine.write_bytes(b"my weights")
    (out / "l0.safetensors").unlink()
    (out / "l0.safetensors").symlink_to(mine)
    from model import checkpoint as ckpt_mod

    real_load = ckpt_mod.load
    monkeypatch.setattr(ckpt_mod, "load", lambda *a, **k: pytest.fail("loaded"))
    capsys.readouterr()
    assert main(export_cmd) == 2
    assert "is not a file this tool wrote" in capsys.readouterr().err
    assert mine.read_bytes() == b"my weights" and (out / "l0.safetensors").is_symlink()
    (out / "l0.safetensors").unlink()
    (out / "l0.json").write_text('{"my": "notes"}')
    assert main(export_cmd) == 2
    assert (out / "l0.json").read_text() == '{"my": "notes"}'
    monkeypatch.setattr(ckpt_mod, "load", real_load)
    assert main(export_cmd[:-1] + ["decouple-l0=l0b"]) == 0  # another name: written


def test_the_docs_show_the_zoo_as_it_is(shipped):
    """docs/zoo.md's table is ``python -m model zoo --markdown`` (re-make it after an export),
    and the README points at it."""
    doc = (ROOT / "docs" / "zoo.md").read_text()
    assert zoo.format_markdown(zoo.table()) in doc
    assert "(docs/zoo.md#the-models)" in (ROOT / "README.md").read_text()


def test_default_names_drop_integer_and_decimal_budget_suffixes():
    """The medium scale's joint runs carry the authors' ×1.3 budget (``-b1.3``): exported, they
    become ``realtime-tpami10`` / ``decouple-tpami10``, the names the explorer's benchmark and
    docs look for; a suffix after the budget (``-w32``) keeps the folder's name."""
    from model.zoo import default_name

    assert default_name("realtime-tpami10-b2") == "realtime-tpami10"
    assert default_name("realtime-tpami10-b1.3") == "realtime-tpami10"
    assert default_name("decouple-tpami10-b1.3") == "decouple-tpami10"
    assert default_name("decouple-l0") == "l0"
    assert default_name("decouple-tpami10-b1.3-w32") == "decouple-tpami10-b1.3-w32"


def test_every_committed_card_and_weights_file_is_recognised_as_an_exports():
    """What ``zoo export`` and ``prepare --export-finished`` replace without asking: every card
    and weights file committed (the zoo, results/models, results/medium/models) is one; a JSON
    or safetensors file of other content is not."""
    from model.zoo import _is_zoo_file

    files = [p for d in (ROOT / "model" / "zoo", ROOT / "results" / "models",
                         ROOT / "results" / "medium" / "models")
             for p in sorted(d.iterdir()) if p.suffix in (".json", ".safetensors")]
    assert len(files) > 50
    assert all(_is_zoo_file(p.read_bytes()[:4096]) for p in files)
    header = b'{"__metadata__":{"format":"something else"}}'
    for other in (b'{"format": "decouple-ops zoo v0"}', b"[]", b"",
                  len(header).to_bytes(8, "little") + header):
        assert not _is_zoo_file(other)
