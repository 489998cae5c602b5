"""Rain streaks (operator ``rain``)."""
from __future__ import annotations

import numpy as np
import pytest

import operators
from operators.rain import rain_layer, rain_pair


@pytest.fixture(scope="module")
def img():
    return np.random.default_rng(0).integers(0, 200, (61, 47, 3), dtype=np.uint8)  # odd size


def test_screen_blend_and_clean_target(img):
    rainy, clean = operators.pair("rain", img, 1.0, seed=5)
    np.testing.assert_array_equal(clean, img / 255.0)
    r = rain_layer(img.shape[:2], 1.0, rng=np.random.default_rng(5)).astype(np.float64)
    np.testing.assert_allclose(rainy, 1 - (1 - clean) * (1 - r[:, :, None]), atol=1e-12)
    assert np.all(rainy >= clean - 1e-12) and rainy.max() <= 1.0  # screen only brightens
    np.testing.assert_array_equal(operators.apply("rain", img, 1.0, seed=5), rainy)


def test_seed_reproduces_and_changes(img):
    a = operators.pair("rain", img, 0.5, seed=1)[0]
    b = operators.pair("rain", img, 0.5, seed=1)[0]
    c = operators.pair("rain", img, 0.5, seed=2)[0]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_density_controls_the_amount_of_rain():
    shape = (128, 128)
    cover = [np.mean(rain_layer(shape, d, rng=np.random.default_rng(3)) > 0.05)
             for d in operators.get("rain").test_gammas]
    assert all(x < y for x, y in zip(cover, cover[1:])), cover
    assert 0.01 < cover[0] and cover[-1] < 0.9


def test_streaks_are_elongated():
    r = rain_layer((200, 200), 0.3, rng=np.random.default_rng(4))
    r = r - r.mean()
    # autocorrelation 5 rows down along the streak (within ±30° of vertical: at most 3 columns
    # aside) is far above the autocorrelation 5 columns across
    along = max(np.mean(r * np.roll(r, (5, dx), axis=(0, 1))) for dx in range(-3, 4))
    across = np.mean(r * np.roll(r, 5, axis=1))
    assert along > 5 * abs(across)


def test_gray_input_gives_gray_rain():
    g = np.random.default_rng(6).random((20, 30))
    rainy, clean = rain_pair(g, 1.0, rng=np.random.default_rng(0))
    assert rainy.shape == clean.shape == (20, 30)
    assert np.all(rainy >= clean - 1e-12)


def test_bad_input(img):
    with pytest.raises(ValueError, match="domain"):
        operators.apply("rain", img, 0.0, strict=False)
    with pytest.raises(ValueError, match=r"trained range \[0.2, 2\]"):
        operators.apply("rain", img, 5.0)
    with pytest.warns(operators.ExtrapolationWarning):
        operators.apply("rain", img, 5.0, strict=False, seed=0)
    with pytest.raises(ValueError, match="brightness"):
        rain_layer((8, 8), 1.0, brightness=0.0)
    with pytest.raises(TypeError, match="Generator"):
        rain_layer((8, 8), 1.0, rng=1)
    with pytest.raises(TypeError, match="unknown parameter"):
        operators.apply("rain", img, 1.0, angle=3)
