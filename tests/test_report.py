"""The result tables' writer: LaTeX that compiles (escaped, ASCII), CSV, provenance, index."""
from __future__ import annotations

import json
import re

import pandas as pd

from benchmarks._report import latex_text, write_table


def test_latex_is_escaped_ascii(tmp_path):
    df = pd.DataFrame({"psnr_db": [31.5], "setting": ["low-res 64² & 5%"], "γ": ["σs=1"]})
    wide = pd.DataFrame({("L0", "lambda_x"): ["0.02"], ("L0", "PSNR single / nume."): ["1 / 2"]})
    wide.columns = pd.MultiIndex.from_tuples(wide.columns)
    meta = {"scale": "smoke", "hardware": "cpu_x", "commit": "abc", "command": "pytest",
            "python": "3.11", "created": "now", "wall_time_s": 1.0}
    write_table(df, "t", tmp_path, meta, caption="Δ of γ_1 (dB)")
    write_table(df, "w", tmp_path, meta, caption="wide", tex=wide)
    for name in ("t", "w"):
        text = (tmp_path / f"{name}.tex").read_text()
        assert text.isascii(), text
        comments = [line for line in text.splitlines() if line.startswith("%")]
        assert "% scale: smoke" in comments and "% commit: abc" in comments  # provenance inside
        tex = "\n".join(line for line in text.splitlines() if not line.startswith("%"))
        assert not re.search(r"(?<![\\])_", tex.replace("\\_", "")), tex
    assert r"psnr\_db" in (tmp_path / "t.tex").read_text()
    assert r"64$^2$ \& 5\%" in (tmp_path / "t.tex").read_text()
    assert r"lambda\_x" in (tmp_path / "w.tex").read_text()
    assert pd.read_csv(tmp_path / "t.csv").psnr_db[0] == 31.5  # the CSV keeps plain names
    assert json.loads((tmp_path / "t.meta.json").read_text())["caption"] == "Δ of γ_1 (dB)"
    assert "## t" in (tmp_path / "README.md").read_text()


def test_latex_text():
    assert latex_text("γ=0.5, σ_s") == r"$\gamma$=0.5, $\sigma$\_s"
    assert latex_text("a\\b{c}") == r"a\textbackslash{}b\{c\}"
