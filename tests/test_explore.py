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


# ---------------------------------------------------------------- the HTTP layer, over ASGI
def _asgi(app, method: str, path: str, body: bytes = b"", host: str = "127.0.0.1:8765",
          **headers) -> tuple[int, dict, bytes]:
    """One request to the ASGI ``app`` (no network, no HTTP client library): status, response
    headers, body."""
    import asyncio

    hdrs = [(b"host", host.encode())]
    hdrs += [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": hdrs,
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8765)}
    sent, out = [False], {"status": None, "headers": {}, "body": b""}

    async def receive():
        if sent[0]:
            return {"type": "http.disconnect"}
        sent[0] = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
            out["headers"] = {k.decode(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")

    asyncio.run(app(scope, receive, send))
    return out["status"], out["headers"], out["body"]


def test_the_api_answers_local_json_requests_only_and_never_a_500_for_bad_input(ex):
    """Found by probing the running server: other sites could drive the API (any Host and
    Origin, any content type: cross-site requests and DNS rebinding), a deeply nested body or
    a 400-digit γ was a 500, ``"extrapolate": "false"`` extrapolated, JSON bodies had no size
    cap, and no response carried security headers."""
    import json

    app = explore.create_app(ex)
    good = {"model": "ckpt1", "op": "l0", "image": "coffee.png", "gamma": 0.05}
    js = {"content_type": "application/json"}
    status, headers, body = _asgi(app, "POST", "/api/render", json.dumps(good).encode(), **js)
    assert status == 200 and json.loads(body)["gamma"] == 0.05
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    for host in ("127.0.0.1:1", "localhost:1", "[::1]:1", "LOCALHOST"):
        assert _asgi(app, "GET", "/api/config", host=host)[0] == 200, host
    refused = [dict(host="evil.example:8765"), dict(origin="http://evil.example"),
               dict(host="127.0.0.1.evil.example")]
    for extra in refused:
        status, _, body = _asgi(app, "POST", "/api/render", json.dumps(good).encode(),
                                **{**js, **extra})
        assert status == 403 and "error" in json.loads(body), extra
    assert _asgi(app, "GET", "/", host="evil.example")[0] == 403
    assert _asgi(app, "GET", "/", origin="http://localhost:9")[0] == 200
    bad = [(json.dumps(good).encode(), {"content_type": "text/plain"}, "application/json"),
           (b"[" * 20_000 + b"]" * 20_000, js, "not JSON"),
           (b'{"model": "ckpt1", "op": "l0", "image": "coffee.png", "gamma": 1' + b"0" * 400
            + b"}", js, "finite number"),
           (json.dumps({**good, "gamma": 0.3, "extrapolate": "false"}).encode(), js,
            "true or false"),
           (b" " * (explore.MAX_JSON_BYTES + 1) + json.dumps(good).encode(), js, "larger than")]
    for payload, hdrs, message in bad:
        status, _, body = _asgi(app, "POST", "/api/render", payload, **hdrs)
        assert status == 400 and message in json.loads(body)["error"], (status, body[:200])
    # the server bound to another interface on purpose (hosts=None) answers any Host
    assert _asgi(explore.create_app(ex, hosts=None), "GET", "/api/config",
                 host="192.0.2.7:80")[0] == 200


def test_an_upload_too_thin_once_shrunk_is_refused(ex):
    """An 8x1024 image passed the 8x8 check and was shrunk to 2x64 (max side 64 here): SSIM
    and sr's modcrop then failed with a 500 on /api/truth."""
    with pytest.raises(BadRequest, match="too thin"):
        ex.upload(_png(np.zeros((8, 1024, 3), np.uint8)), "thin.png")
    info = ex.upload(_png(np.zeros((64, 512, 3), np.uint8)), "wide.png")
    assert (info["width"], info["height"]) == (64, 8)
