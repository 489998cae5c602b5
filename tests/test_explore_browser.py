"""The γ explorer used as a person would: a real headless Chromium (Debian's package) driven by
Playwright, against ``python -m model explore`` started as its own process.

The page's images are read back from the browser (drawn on a canvas, so what is compared is
what is shown) and the network's output must equal ``model.load(name).apply(image, op, γ)``
byte for byte at the γ the page shows. Under ``CI=true`` a missing browser or Playwright is a
failure, not a skip (``.ci/run`` installs Chromium; tox installs Playwright).

``DECOUPLE_SCREENSHOT=docs/explore.png pytest tests/test_explore_browser.py`` also writes the
README's screenshot.
"""
from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

import operators

CHROMIUM = os.environ.get("DECOUPLE_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
# small images: the operators and networks answer in well under a second (larger for the
# README's screenshot)
MAX_SIDE = 384 if os.environ.get("DECOUPLE_SCREENSHOT") else 128
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _need(ok: bool, why: str) -> None:
    if not ok:
        if CI:
            pytest.fail(f"{why} (CI=true: the browser tests must run)")
        pytest.skip(why)


try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None


def _model_for_slider():
    """A zoo model that can re-tune with a filter that has γ (the explorer's showcase), else
    any zoo model of a filter with one (a degradation's input panel shows the degraded photo)."""
    from model import zoo

    best = None
    for n in zoo.names():
        c = zoo.card(n)
        ops = [o for o in c["operators"] if c["gamma"][o]["range"] and c["gamma"][o]["uses_gamma"]
               and c["gamma"][o]["law"] in ("log-uniform", "uniform")
               and operators.get(o).kind == "filter"]  # the input shown is the photograph
        if ops and (best is None or c["arch"] == "realtime"):
            best = (n, ops[0])
    if best is None:
        pytest.fail("the zoo has no model with a continuous γ to explore")
    return best


@pytest.fixture(scope="module")
def server():
    _need(sync_playwright is not None, "Playwright is not installed (pip install playwright)")
    _need(Path(CHROMIUM).is_file(), f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        _need(False, "the 'explore' extra is not installed (pip install -e \".[explore]\")")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "model", "explore", "--port", "0",
                             "--max-side", str(MAX_SIDE), "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    url, seen = None, []
    deadline = time.time() + 60
    while time.time() < deadline and url is None:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        m = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        url = m.group(1) if m else None
    if url is None:
        proc.kill()
        pytest.fail("the explorer did not start: " + "".join(seen)[-2000:])
    yield url, proc
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def page(server):
    url, _ = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1280, "height": 900})
        pg.set_default_timeout(30_000)
        pg.goto(url)
        pg.wait_for_selector("body[data-ready]")
        yield pg
        browser.close()


def _shown(page, element_id: str) -> np.ndarray:
    """The pixels an <img> shows, read back through a canvas (RGB uint8)."""
    data = page.evaluate("""(id) => {
        const img = document.getElementById(id);
        const c = document.createElement('canvas');
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        const ctx = c.getContext('2d');
        ctx.drawImage(img, 0, 0);
        const d = ctx.getImageData(0, 0, c.width, c.height).data;
        let s = '';
        for (let i = 0; i < d.length; i += 8192) s += String.fromCharCode(...d.subarray(i, i + 8192));
        return [c.width, c.height, btoa(s)];
    }""", element_id)
    w, h, b64 = data
    rgba = np.frombuffer(base64.b64decode(b64), np.uint8).reshape(h, w, 4)
    return np.ascontiguousarray(rgba[:, :, :3])


def _settle(page, model: str, op: str, image: str = "astronaut.png") -> None:
    """Wait until the page shows the network's and the operator's output for the γ the slider
    is at now (renders asked for while dragging or key-repeating have all come back)."""
    page.wait_for_function(
        """([m, o, im]) => {
            const g = (document.getElementById('gamma').getAttribute('aria-valuetext') || '')
                .split(' = ')[1];
            return document.body.dataset.ready === `${m}|${o}|${im}|${g}`
                && !document.body.dataset.busy
                && document.getElementById('net-img').dataset.gamma === g;
        }""", arg=[model, op, image])


def _gamma_shown(page) -> float:
    return float(page.get_attribute("#net-img", "data-gamma"))


def _check_network_output(page, name: str, op: str) -> float:
    """The shown network output = model.load(name).apply(shown input, op, shown γ), exactly."""
    import model
    from datagen.sources import default_image_dir, read_image
    from model.explore import shrink

    _settle(page, name, op)
    g = _gamma_shown(page)
    shown_in = _shown(page, "input-img")
    img, _ = read_image(default_image_dir() / "astronaut.png")
    assert np.array_equal(shown_in, shrink(img, MAX_SIDE)), "the page shows another input"
    want = model.load(name).apply(shown_in, op, g)
    got = _shown(page, "net-img")
    assert got.shape == want.shape and np.array_equal(got, want), \
        f"network output at {op} γ={g} differs from model.load({name!r}).apply in " \
        f"{int((got != want).any(axis=2).sum())} pixels"
    return g


def test_slider_by_keyboard_and_mouse_shows_the_models_output(page):
    name, op = _model_for_slider()
    page.select_option("#model", name)
    page.select_option("#op", op)
    page.wait_for_function("([m, o]) => document.body.dataset.ready?.startsWith(`${m}|${o}|`)",
                           arg=[name, op])
    page.select_option("#image", "astronaut.png")
    g0 = _gamma_shown(page)
    _check_network_output(page, name, op)

    # keyboard: focus the slider, three steps right and one page up
    page.focus("#gamma")
    for key in ("ArrowRight", "ArrowRight", "ArrowRight", "PageUp"):
        page.keyboard.press(key)
    page.wait_for_function("(g) => Number(document.getElementById('net-img').dataset.gamma)"
                           " !== g", arg=g0)
    g1 = _check_network_output(page, name, op)
    assert g1 > g0
    assert page.get_attribute("#gamma", "aria-valuetext").endswith(str(page.get_attribute(
        "#net-img", "data-gamma")))

    # mouse: a click at a fifth of the slider's width
    box = page.locator("#gamma").bounding_box()
    page.mouse.click(box["x"] + 0.2 * box["width"], box["y"] + box["height"] / 2)
    page.wait_for_function("(g) => Number(document.getElementById('net-img').dataset.gamma)"
                           " !== g", arg=g1)
    g2 = _check_network_output(page, name, op)
    assert g2 < g1
    # the operator's output, its heat map and the scores are on the page
    assert "ms" in page.inner_text("#truth-cap")
    assert "PSNR" in page.inner_text("#diff-cap") or "identical" in page.inner_text("#diff-cap")
    shot = os.environ.get("DECOUPLE_SCREENSHOT")
    if shot:
        page.screenshot(path=shot, full_page=True)


def test_corrupt_upload_gives_a_message_and_the_server_survives(page, server, tmp_path):
    url, proc = server
    bad = tmp_path / "photo.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 64)
    page.set_input_files("#upload", str(bad))
    page.wait_for_selector("#message:not([hidden])")
    text = page.inner_text("#message")
    assert "upload refused" in text and "Traceback" not in text
    assert proc.poll() is None
    with urllib.request.urlopen(url + "api/config", timeout=10) as r:
        assert r.status == 200
    # the page still works: a new γ by keyboard gives a new image and clears the message
    g = _gamma_shown(page)
    page.focus("#gamma")
    page.keyboard.press("ArrowLeft")
    page.wait_for_function("(g) => Number(document.getElementById('net-img').dataset.gamma)"
                           " !== g", arg=g)
    page.wait_for_selector("#message[hidden]", state="attached")


def test_a_good_upload_is_shown(page, tmp_path):
    from datagen.sources import default_image_dir, read_image

    img, _ = read_image(default_image_dir() / "coffee.png")
    small = img[:90, :120]
    path = tmp_path / "mine.png"
    path.write_bytes(cv2.imencode(".png", cv2.cvtColor(small, cv2.COLOR_RGB2BGR))[1].tobytes())
    page.set_input_files("#upload", str(path))
    page.wait_for_function("() => document.getElementById('image').value.startsWith('upload-')"
                           " && document.body.dataset.ready?.includes('|upload-')")
    assert np.array_equal(_shown(page, "input-img"), small)

