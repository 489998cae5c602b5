"""The verdict on the operator speed targets (benchmarks/speed_targets.py), at the value level:
hand-made rows on both sides of each bound, every clause form, missing figures."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from benchmarks.speed_targets import TARGETS_1024, parse_target, target_met


def _row(target, **figures):
    base = {"target": target, "ours_s": math.nan, "counterpart_s": math.nan, "ratio": math.nan,
            "suite_s": math.nan, "fresh_process_s": math.nan}
    return {**base, **figures}


def test_every_registered_target_parses():
    for target in TARGETS_1024.values():
        assert parse_target(target)
    assert parse_target("<= 0.05 s and <= 3x Pillow") == [("s", 0.05), ("x", 3.0, False)]
    assert parse_target("<= 0.8x OpenCV (suite and fresh process)") == [("x", 0.8, True)]


@pytest.mark.parametrize("bad", ["< 1 s", "<= 1.5", "<= 2 ms", "at most 1 s", "<= 1 s or <= 2x X",
                                 "<= 1 s and"])
def test_a_mistyped_target_is_an_error_not_a_verdict(bad):
    with pytest.raises(ValueError, match="not a speed target"):
        target_met(_row(bad, suite_s=0.1, fresh_process_s=0.1, ours_s=0.1))


def test_absolute_target_needs_both_paired_figures_under_it():
    t = "<= 1.5 s"
    assert target_met(_row(t, suite_s=1.49, fresh_process_s=1.5, ours_s=9.0)) is True
    # the suite figure under, the fresh process over (and the other way): not met
    assert target_met(_row(t, suite_s=1.2, fresh_process_s=1.5001, ours_s=1.0)) is False
    assert target_met(_row(t, suite_s=1.56, fresh_process_s=1.4, ours_s=1.44)) is False
    # one paired figure missing: not met (never judged on half the measurement)
    assert target_met(_row(t, suite_s=1.2, ours_s=1.0)) is False
    # an older table without the paired figures: pytest-benchmark's median
    assert target_met(_row(t, ours_s=1.49)) is True
    assert target_met(_row(t, ours_s=1.51)) is False
    assert target_met(_row(t)) is False


def test_relative_target_reads_the_ratio_and_with_the_suffix_the_paired_figures():
    t = "<= 0.8x OpenCV (suite and fresh process)"
    ok = dict(ratio=0.5, counterpart_s=1.0, suite_s=0.79, fresh_process_s=0.8)
    assert target_met(_row(t, **ok)) is True
    assert target_met(_row(t, **{**ok, "ratio": 0.81})) is False
    assert target_met(_row(t, **{**ok, "fresh_process_s": 0.81})) is False
    assert target_met(_row(t, **{**ok, "suite_s": 0.9})) is False
    assert target_met(_row(t, **{**ok, "counterpart_s": math.nan})) is False
    # without the suffix only the ratio counts
    plain = "<= 1.0x OpenCV"
    assert target_met(_row(plain, ratio=0.99, counterpart_s=1.0, suite_s=5.0,
                           fresh_process_s=5.0)) is True
    assert target_met(_row(plain, ratio=1.01)) is False


def test_joined_clauses_must_all_hold():
    t = "<= 0.05 s and <= 3x Pillow"
    assert target_met(_row(t, suite_s=0.005, fresh_process_s=0.005, ratio=2.9)) is True
    assert target_met(_row(t, suite_s=0.005, fresh_process_s=0.005, ratio=3.1)) is False
    assert target_met(_row(t, suite_s=0.06, fresh_process_s=0.005, ratio=0.3)) is False


def test_rows_without_a_target_have_no_verdict():
    for empty in ("", None, math.nan):
        assert target_met(_row(empty, suite_s=1.0)) is None


def test_pandas_rows_as_read_back_from_a_csv(tmp_path):
    df = pd.DataFrame([_row("<= 2.5 s", suite_s=2.06, fresh_process_s=2.08),
                       _row("<= 1.5 s", suite_s=1.56, fresh_process_s=1.60),
                       _row("", suite_s=0.1)])
    df.to_csv(tmp_path / "t.csv", index=False)
    back = pd.read_csv(tmp_path / "t.csv")
    assert [target_met(r) for _, r in back.iterrows()] == [True, False, None]
