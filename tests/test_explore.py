"""The γ explorer's server side (model.explore), without a browser: every bad request is a
one-line message, uploads are capped before decoding, the page is served with no internet
asset, and what the page is sent is the model's output."""
from __future__ import annotations

import base64
import re

import cv2
import numpy as np
import pytest

pytest.importorskip("starlette")

import model  # noqa: E402
from model import explore  # noqa: E402
from model.explore import BadRequest, Explorer, decode_upload  # noqa: E402
from model.presets import get_preset  # noqa: E402
from model.train import train  # noqa: E402

TINY = get_preset("smoke").with_(width=4, dilations=(2,), crop=16, batch=3, iterations=2,
                                 log_every=1, ckpt_every=2)


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("explore") / "rt"
    train(data, ["l0", "wmf"], out, preset=TINY, arch="realtime", progress=False)
    return out


@pytest.fixture(scope="module")
def ex(run):
    return Explorer([run], max_side=64)


def _png(rgb) -> bytes:
    return cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()


def _decode(url: str) -> np.ndarray:
    raw = base64.b64decode(url.split(",", 1)[1])
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR),
                        cv2.COLOR_BGR2RGB)


def test_render_sends_the_models_output_and_retunes(ex, run):
    body = {"model": "ckpt1", "op": "l0", "image": "astronaut.png", "gamma": 0.01}
    first = ex.render({**body, "with_input": True})
    second = ex.render({**body, "gamma": 0.05})
    assert first["path"] == "full pass" and second["path"] == "re-tune"
    x = _decode(first["input"])
    assert np.array_equal(x, ex.image("astronaut.png"))
    assert np.array_equal(_decode(second["output"]), model.load(run).apply(x, "l0", 0.05))
    t = ex.truth({**body, "gamma": 0.05})
    assert t["op_ms"] > 0 and not t["cached"] and ex.truth({**body, "gamma": 0.05})["cached"]


@pytest.mark.parametrize("body, message", [
    ({"model": "nope", "op": "l0", "image": "astronaut.png", "gamma": 0.01}, "unknown model"),
    ({"model": "ckpt1", "op": "l0", "image": "/etc/passwd", "gamma": 0.01}, "unknown image"),
    ({"model": "ckpt1", "op": "wls", "image": "astronaut.png", "gamma": 1.0}, "trained for"),
    ({"model": "ckpt1", "op": "l0", "image": "astronaut.png", "gamma": 5.0},
     "allow extrapolation"),
    ({"model": "ckpt1", "op": "l0", "image": "astronaut.png", "gamma": "x"}, "must be a number"),
    ({"model": "ckpt1", "op": "l0", "image": "astronaut.png", "gamma": -1.0}, "l0"),
    (["not", "an", "object"], "JSON object"),
])
def test_bad_requests_are_one_line_messages(ex, body, message):
    with pytest.raises(BadRequest, match=message) as err:
        ex.render(body)
    assert "\n" not in str(err.value)


def test_extrapolation_only_when_asked(ex):
    r = ex.render({"model": "ckpt1", "op": "l0", "image": "coffee.png", "gamma": 0.3,
                   "extrapolate": True})
    assert r["gamma"] == 0.3


def test_uploads_are_capped_and_decoded_safely(ex, monkeypatch):
    with pytest.raises(BadRequest, match="empty"):
        decode_upload(b"")
    with pytest.raises(BadRequest, match="not an image"):
        decode_upload(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(BadRequest, match="larger than"):
        decode_upload(b"x" * (explore.MAX_UPLOAD_BYTES + 1))
    # a small file that would decode to many pixels is refused from its header
    monkeypatch.setattr(explore, "MAX_PIXELS", 10_000)
    with pytest.raises(BadRequest, match="more than"):
        decode_upload(_png(np.zeros((200, 200, 3), np.uint8)))
    monkeypatch.undo()
    # a truncated JPEG is refused by the project's reader
    noise = np.random.default_rng(1).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    jpg = cv2.imencode(".jpg", noise)[1].tobytes()
    with pytest.raises(BadRequest, match="truncated"):
        decode_upload(jpg[:len(jpg) * 4 // 5])
    rgb = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    info = ex.upload(_png(rgb), "mine.png")
    assert np.array_equal(ex.image(info["id"]), rgb)
    for _ in range(explore.MAX_UPLOADS):
        ex.upload(_png(rgb))
    with pytest.raises(BadRequest, match="unknown image"):
        ex.image(info["id"])  # only the last MAX_UPLOADS are kept


def test_the_page_loads_nothing_from_the_internet():
    for f in explore.STATIC.iterdir():
        text = f.read_text()
        assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", text), f.name
        assert "http://" not in text and "https://" not in text, f.name


def test_another_host_is_warned_about(run, monkeypatch, capsys):
    import uvicorn

    ran = {}
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: ran.setdefault("ok", 1))
    assert explore.serve([run], host="0.0.0.0", port=0) == 0
    out = capsys.readouterr()
    assert "warning: listening on 0.0.0.0" in out.err and ran
    assert explore.serve([run], port=0) == 0
    out = capsys.readouterr()
    assert "warning" not in out.err and re.search(r"http://127\.0\.0\.1:\d+/", out.out)


def test_the_page_names_operators_and_gamma_as_the_papers_do(ex):
    """The operator menu says ``L0`` (``l0`` reads as ``I0``) and the slider ``λ``."""
    ops = {o["name"]: o for m in ex.config()["models"] for o in m["operators"]}
    assert ops["l0"]["label"] == "L0" and ops["l0"]["symbol"] == "λ"
    assert ops["wmf"]["label"] == "WMF" and ops["wmf"]["symbol"] == "r"
