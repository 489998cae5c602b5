"""``python -m model explore``: a local web page to tune γ by hand.

One static page (``static/``: HTML, CSS and plain JavaScript, no asset from the internet) and a
small JSON API served by Starlette on uvicorn (the optional extra ``explore``; docs/zoo.md says
why not Gradio). The page picks a model (the zoo's, or the checkpoints given with ``--ckpt``),
an operator, an image (the dataset's held-out test photographs bundled with scikit-image, or an
upload), and a γ on a slider over the trained range; it shows the network's output beside the
true operator's output at that γ, their difference as a heat map, PSNR/SSIM between them, and
the time of the network pass (for a model that can re-tune, :meth:`Predictor.retune`: the layers
after the first γ-dependent one only) and of the operator.

Safety: the client names models, images and operators by the ids this server gave it; no path
from the client is ever opened. Uploads are capped in bytes (:data:`MAX_UPLOAD_BYTES`, read
with a running count) and in pixels (:data:`MAX_PIXELS`, from the header, before decoding),
decoded from their bytes by the project's image reader in a temporary folder that is removed
at once, and kept in memory (the last :data:`MAX_UPLOADS`). Every bad request gets a one-line
message as JSON ``{"error": ...}``; an unexpected exception is logged on the server and answered
with its first line, never a traceback; the server keeps serving.
"""
from __future__ import annotations

import base64
import io
import json
import math
import os
import socket
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np

import operators

STATIC = Path(__file__).parent / "static"
MAX_UPLOAD_BYTES = 8 * 1024 * 1024
MAX_PIXELS = 16_000_000
MAX_UPLOADS = 8
TRUTH_CACHE = 64
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
#: the shortest side an image may have, after the shrink to --max-side too (SSIM's 7x7 window,
#: sr's modcrop)
MIN_SIDE = 8
#: the largest JSON request body (a render request is a few hundred bytes)
MAX_JSON_BYTES = 64 * 1024
#: headers of every response: nothing is loaded from elsewhere, nothing may frame the page,
#: no content sniffing
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer"}
#: the heat map's scale: an absolute difference of this many levels (of 255) is the hottest colour
DIFF_FULL_SCALE = 64


class BadRequest(ValueError):
    """A request the page can be told about in one line (HTTP 400)."""


def png_bytes(rgb: np.ndarray) -> bytes:
    """An RGB uint8 image as PNG bytes (lossless: the page shows exactly the array)."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           params=[cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def data_url(rgb: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(rgb)).decode("ascii")


def heat_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a − b| (mean over the channels) as an RGB heat map (inferno), 0 black to
    :data:`DIFF_FULL_SCALE` levels and above the hottest colour."""
    d = np.abs(a.astype(np.int16) - b.astype(np.int16)).mean(axis=2)
    level = np.clip(d * (255.0 / DIFF_FULL_SCALE), 0, 255).astype(np.uint8)
    bgr = cv2.applyColorMap(src=level, colormap=cv2.COLORMAP_INFERNO)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def shrink(img: np.ndarray, max_side: int) -> np.ndarray:
    """``img`` resized (area interpolation) so that its longer side is at most ``max_side``,
    both sides even (the networks need even sizes; a missing row or column is cropped)."""
    h, w = img.shape[:2]
    s = min(1.0, max_side / max(h, w))
    if s < 1.0:
        img = cv2.resize(img, (max(2, round(w * s)), max(2, round(h * s))),
                         interpolation=cv2.INTER_AREA)
    h, w = img.shape[:2]
    return np.ascontiguousarray(img[:h - h % 2, :w - w % 2])


def decode_upload(data: bytes) -> np.ndarray:
    """An uploaded file's bytes → RGB uint8, or :class:`BadRequest` saying why not. The pixel
    count is read from the header (Pillow opens it lazily, decoding nothing) and capped before
    the image is decoded by the project's reader (:func:`datagen.sources.read_image`: OpenCV on
    the bytes; a truncated JPEG refused), from a private temporary folder removed at once."""
    if not data:
        raise BadRequest("the upload is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise BadRequest(f"the upload is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB")
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombWarning,
            Image.DecompressionBombError, SyntaxError):
        raise BadRequest("not an image this page reads (PNG, JPEG, BMP, TIFF or WebP), or a "
                         "damaged file") from None
    if w * h > MAX_PIXELS:
        raise BadRequest(f"the image is {w}x{h} pixels: more than {MAX_PIXELS / 1e6:g} MP")
    from datagen.sources import read_image

    with tempfile.TemporaryDirectory(prefix="decouple-explore-") as tmp:
        path = Path(tmp) / "upload"
        path.write_bytes(data)
        img, reason = read_image(path)
    if img is None:
        raise BadRequest(f"cannot read the image: {reason}")
    if min(img.shape[:2]) < MIN_SIDE:
        raise BadRequest(f"the image is {img.shape[1]}x{img.shape[0]} pixels: at least "
                         f"{MIN_SIDE}x{MIN_SIDE} needed")
    return img


class Explorer:
    """The server's state: models (loaded on first use), images, caches; thread-safe."""

    def __init__(self, ckpts=(), device: str | None = None, max_side: int = 512):
        from .. import zoo

        if not 16 <= int(max_side) <= 4096:
            raise ValueError(f"--max-side must be in 16..4096, got {max_side}")
        self.device, self.max_side = device, int(max_side)
        # the showcase first (the page opens on the first): a real-time model, then the
        # operators in the papers' order (the filters before the restorations)
        def order(n):
            c = zoo.card(n)
            first = min((operators.NAMES.index(o) for o in c["operators"] if o in operators.NAMES),
                        default=len(operators.NAMES))
            return (c["arch"] != "realtime", first, n)

        self.sources: dict[str, tuple[str, str]] = {n: ("zoo", n)
                                                    for n in sorted(zoo.names(), key=order)}
        for i, c in enumerate(ckpts, 1):
            path = Path(c)
            from ..checkpoint import resolve

            if not resolve(path).is_file():
                raise FileNotFoundError(f"--ckpt {c}: no checkpoint there")
            self.sources[f"ckpt{i}"] = ("ckpt", str(path))
        if not self.sources:
            raise ValueError("no model to explore: the zoo is empty and no --ckpt was given")
        self._models: dict[str, object] = {}
        self._model_locks: dict[str, threading.Lock] = {k: threading.Lock() for k in self.sources}
        self._lock = threading.Lock()
        self._op_lock = threading.Lock()
        self.images: OrderedDict[str, tuple[str, np.ndarray]] = OrderedDict()
        self._uploads = 0
        self._truth: OrderedDict[tuple, tuple] = OrderedDict()
        self._outputs: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._full_ms: dict[tuple, float] = {}
        self._inputs: dict[str, tuple] = {}  # model → the input of its last pass
        from datagen.sources import DEFAULT_TEST_FILES, default_image_dir, read_image

        for f in DEFAULT_TEST_FILES:
            img, reason = read_image(default_image_dir() / f)
            if img is not None:
                self.images[f] = (f"{f} (test photograph)", shrink(img, self.max_side))

    # ------------------------------------------------------------------ models
    def model(self, mid: str):
        if mid not in self.sources:
            raise BadRequest(f"unknown model {mid!r}")
        with self._lock:
            if mid not in self._models:
                from ..predict import load

                kind, what = self.sources[mid]
                try:
                    self._models[mid] = load(("zoo:" + what) if kind == "zoo" else what,
                                             self.device)
                except (ValueError, FileNotFoundError, TypeError) as exc:
                    raise BadRequest(f"cannot load model {mid}: {exc}") from None
            return self._models[mid]

    def describe(self, mid: str) -> dict:
        """What the page needs to know of a model: its label, operators with their γ facts
        (trained range, law, domain, test γ, whether the model uses γ), whether it re-tunes."""
        from .. import zoo

        kind, what = self.sources[mid]
        p = self.model(mid)
        arch = p.config["arch"]
        if kind == "zoo":
            c = zoo.card(what)
            label = f"{what} (zoo: {arch}, {c['scale']})"
        else:
            label = f"{Path(what).name} (--ckpt: {arch})"
        trained = {o: list(p.gamma_range(o)) if operators.get(o).has_gamma else [] for o in p.ops}
        return {"id": mid, "label": label, "arch": arch, "retunable": bool(p.retunable),
                "operators": [self._op_info(o, trained[o], p.uses_gamma(o)) for o in p.ops]}

    @staticmethod
    def _op_info(op: str, trained, uses: bool) -> dict:
        spec = operators.get(op)
        law = spec.law
        dom = list(getattr(law, "domain", ())) if spec.has_gamma else []
        return {"name": spec.name, "label": spec.label, "title": spec.title, "kind": spec.kind,
                "symbol": spec.gamma_text, "meaning": spec.gamma_meaning, "law": str(law),
                "has_gamma": spec.has_gamma, "uses_gamma": bool(uses),
                "trained": [float(v) for v in trained],
                "domain": [None if not math.isfinite(v) else float(v) for v in dom],
                "domain_open": bool(getattr(law, "min_open", False)),
                "values": [float(v) for v in getattr(law, "values", ())],
                "test_gammas": [float(g) for g in spec.test_gammas]}

    def config(self) -> dict:
        return {"models": [self.describe(m) for m in self.sources],
                "images": [{"id": k, "label": v[0], "width": v[1].shape[1],
                            "height": v[1].shape[0]} for k, v in self.images.items()],
                "limits": {"bytes": MAX_UPLOAD_BYTES, "pixels": MAX_PIXELS,
                           "max_side": self.max_side}}

    # ------------------------------------------------------------------ images
    def image(self, iid: str) -> np.ndarray:
        if not isinstance(iid, str) or iid not in self.images:
            raise BadRequest(f"unknown image {iid!r} (uploads are kept for the last "
                             f"{MAX_UPLOADS} only)")
        return self.images[iid][1]

    def upload(self, data: bytes, name: str = "") -> dict:
        img = shrink(decode_upload(data), self.max_side)
        if min(img.shape[:2]) < MIN_SIDE:  # a thin image shrunk below what SSIM and sr need
            raise BadRequest(f"the image is too thin: shrunk to at most {self.max_side} pixels "
                             f"a side it is {img.shape[1]}x{img.shape[0]}, under {MIN_SIDE} "
                             "pixels on one side")
        with self._lock:
            self._uploads += 1
            iid = f"upload-{self._uploads}"
            label = f"upload {self._uploads}" + (f": {name[:40]}" if name else "")
            self.images[iid] = (label, img)
            uploads = [k for k in self.images if k.startswith("upload-")]
            for k in uploads[:-MAX_UPLOADS]:
                del self.images[k]
        return {"id": iid, "label": label, "width": img.shape[1], "height": img.shape[0]}

    # ------------------------------------------------------------------ computing
    @staticmethod
    def _request(body) -> tuple:
        if not isinstance(body, dict):
            raise BadRequest("the request must be a JSON object")
        mid, op, iid = body.get("model"), body.get("op"), body.get("image")
        if not all(isinstance(v, str) for v in (mid, op, iid)):
            raise BadRequest("model, op and image must be strings")
        g = body.get("gamma")
        if g is not None and (isinstance(g, bool) or not isinstance(g, (int, float))):
            raise BadRequest(f"gamma must be a number or null, got {g!r}")
        if g is not None:
            try:
                g = float(g)
            except OverflowError:  # a JSON integer of hundreds of digits
                raise BadRequest("gamma must be a finite number, got an integer too large "
                                 "for a float") from None
        extrapolate = body.get("extrapolate", False)
        if not isinstance(extrapolate, bool):  # "false" is a string, and truthy
            raise BadRequest(f"extrapolate must be true or false, got {extrapolate!r}")
        return mid, op, iid, g, extrapolate

    def _check(self, p, op: str, g, extrapolate: bool):
        """The model's γ policy (:meth:`Predictor.check`), its messages for the page."""
        from ..predict import ExtrapolationWarning

        try:
            op = operators.get(op).name
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        if op not in p.ops:
            raise BadRequest(f"this model was trained for {', '.join(p.ops)}, not {op}")
        if not operators.get(op).has_gamma:
            g = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExtrapolationWarning)
                g = p.check(op, g, strict=not extrapolate) if p.uses_gamma(op) or g is None \
                    else operators.get(op).check_gamma(g, strict=not extrapolate, warn=False)
        except (ValueError, TypeError) as exc:
            msg = str(exc).replace("pass strict=False to extrapolate on purpose",
                                   "tick 'allow extrapolation' to go beyond it")
            raise BadRequest(msg) from None
        return op, g

    def _pair(self, iid: str, op: str, g, *, truth: bool):
        """The network's input (the image for a filter, the degraded image for a degradation)
        and, with ``truth``, the operator's output: computed once per (image, operator, γ)."""
        from ..zoo import pair_rgb

        img = self.image(iid)
        spec = operators.get(op)
        key = (iid, op, g)
        if spec.kind == "filter" and not truth:
            return img, None, None, False
        with self._lock:
            hit = self._truth.get(key)
            if hit is not None:
                self._truth.move_to_end(key)
                return hit[0], hit[1], hit[2], True
        with self._op_lock:
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", operators.ExtrapolationWarning)
                x, y = pair_rgb(op, img, g, seed=0, strict=False)
            ms = (time.perf_counter() - t0) * 1e3
        with self._lock:
            self._truth[key] = (x, y, ms)
            while len(self._truth) > TRUTH_CACHE:
                self._truth.popitem(last=False)
        return x, y, ms, False

    def _network(self, mid, p, iid, op, g):
        """The network's output and its time: a re-tune (:meth:`Predictor.retune`, only the
        layers after the first γ-dependent one) when the model can and its input is the one of
        the last call, else a full pass (the time of the last full pass is kept per image)."""
        x, _, _, _ = self._pair(iid, op, g, truth=False)
        gg = g if p.uses_gamma(op) else None
        same_input = (iid,) if operators.get(op).kind == "filter" else (iid, op, g)
        with self._model_locks[mid]:
            retune = p.retunable and self._inputs.get(mid) == same_input
            t0 = time.perf_counter()
            with warnings.catch_warnings():  # γ was checked (and extrapolation asked for)
                warnings.simplefilter("ignore", operators.ExtrapolationWarning)
                out = p.retune(x, op, gg, strict=False) if p.retunable else \
                    p.apply(x, op, gg, strict=False)
            ms = (time.perf_counter() - t0) * 1e3
            self._inputs[mid] = same_input
        with self._lock:
            if not retune:
                self._full_ms[(mid, iid)] = ms
            self._outputs[(mid, iid, op, g)] = out
            while len(self._outputs) > TRUTH_CACHE:
                self._outputs.popitem(last=False)
        return x, out, ms, "re-tune" if retune else "full pass"

    def render(self, body) -> dict:
        mid, op, iid, g, extra = self._request(body)
        p = self.model(mid)
        op, g = self._check(p, op, g, extra)
        x, out, ms, path = self._network(mid, p, iid, op, g)
        spec = operators.get(op)
        return {"gamma": g, "op": op, "model": mid, "image": iid, "output": data_url(out),
                "input": data_url(x) if spec.kind == "degradation" or body.get("with_input")
                else None,
                "net_ms": round(ms, 1), "path": path,
                "full_ms": round(self._full_ms.get((mid, iid), ms), 1),
                "retunable": bool(p.retunable), "retune_runs": p.arch.retune,
                "note": "" if p.uses_gamma(op) or not spec.has_gamma else
                f"this model is blind to {spec.gamma_name}: only the input changes"}

    def truth(self, body) -> dict:
        from ..metrics import score

        mid, op, iid, g, extra = self._request(body)
        p = self.model(mid)
        op, g = self._check(p, op, g, extra)
        x, y, ms, cached = self._pair(iid, op, g, truth=True)
        with self._lock:
            out = self._outputs.get((mid, iid, op, g))
        if out is None:
            _, out, _, _ = self._network(mid, p, iid, op, g)
        a, b = score(op, out, y)
        c, d = score(op, x, y)
        return {"gamma": g, "op": op, "model": mid, "image": iid, "truth": data_url(y),
                "diff": data_url(heat_map(out, y)), "op_ms": round(ms, 1), "cached": cached,
                "psnr": _num(a), "ssim": _num(b), "input_psnr": _num(c), "input_ssim": _num(d),
                "diff_full_scale": DIFF_FULL_SCALE}


def _num(v: float):
    return round(float(v), 3) if math.isfinite(v) else None


# ---------------------------------------------------------------------------- the web app
def _hostname(netloc: str) -> str:
    """The host of a ``Host`` header or an origin's netloc, without its port or brackets."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        return netloc[1:netloc.find("]")] if "]" in netloc else netloc
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


def create_app(explorer: Explorer, hosts=LOCAL_HOSTS):
    """The Starlette app: the page, its static files and the JSON API.

    ``hosts``: the host names a request may be addressed to (its ``Host`` header) and, when it
    says where it comes from, its ``Origin`` (None: any, for a server the user bound to another
    interface on purpose). A page of another site in the user's browser can then neither drive
    the API (cross-site requests) nor read it through DNS rebinding (a name of its own resolved
    to 127.0.0.1). The JSON routes take ``application/json`` bodies of at most
    :data:`MAX_JSON_BYTES`; every response carries :data:`SECURITY_HEADERS`."""
    from urllib.parse import urlsplit

    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import FileResponse, JSONResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    def refused(request):
        """A 403 response for a request from or to elsewhere, else None."""
        if hosts is None:
            return None
        if _hostname(request.headers.get("host", "")) not in hosts:
            return JSONResponse({"error": "this page answers requests to 127.0.0.1 or localhost "
                                          "only (the Host header names another machine)"},
                                status_code=403)
        origin = request.headers.get("origin")
        if origin is not None and _hostname(urlsplit(origin).netloc) not in hosts:
            return JSONResponse({"error": "requests from other sites are refused"},
                                status_code=403)
        return None

    async def index(request):
        return refused(request) or FileResponse(STATIC / "index.html",
                                                headers={"Cache-Control": "no-store"})

    def guarded(fn):
        async def endpoint(request):
            no = refused(request)
            if no is not None:
                return no
            try:
                return JSONResponse(await fn(request))
            except BadRequest as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            except Exception as exc:  # logged here; the page gets one line, the server goes on
                traceback.print_exc(file=sys.stderr)
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
                return JSONResponse({"error": f"internal error: {first}"}, status_code=500)
        return endpoint

    from starlette.concurrency import run_in_threadpool

    async def config(request):
        return await run_in_threadpool(explorer.config)

    async def _json(request):
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise BadRequest(f"the request body must be application/json, not {kind or 'untyped'}")
        body, total = [], 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > MAX_JSON_BYTES:
                raise BadRequest(f"the request body is larger than {MAX_JSON_BYTES // 1024} KiB")
            body.append(chunk)
        try:
            return json.loads(b"".join(body))
        except (ValueError, RecursionError):  # RecursionError: [[[[... nested 100,000 deep
            raise BadRequest("the request body is not JSON") from None

    async def render(request):
        body = await _json(request)
        return await run_in_threadpool(explorer.render, body)

    async def truth(request):
        body = await _json(request)
        return await run_in_threadpool(explorer.truth, body)

    async def upload(request):
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > MAX_UPLOAD_BYTES):
            raise BadRequest(f"the upload is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB")
        chunks, total = [], 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > MAX_UPLOAD_BYTES:
                raise BadRequest(f"the upload is larger than "
                                 f"{MAX_UPLOAD_BYTES // (1024 * 1024)} MiB")
            chunks.append(chunk)
        name = request.query_params.get("name", "")
        name = "".join(ch for ch in name if ch.isprintable())
        return await run_in_threadpool(explorer.upload, b"".join(chunks), name)

    routes = [Route("/", index),
              Route("/api/config", guarded(config)),
              Route("/api/render", guarded(render), methods=["POST"]),
              Route("/api/truth", guarded(truth), methods=["POST"]),
              Route("/api/upload", guarded(upload), methods=["POST"]),
              Mount("/static", app=StaticFiles(directory=STATIC), name="static")]

    class _Headers:
        """Adds :data:`SECURITY_HEADERS` to every response (pure ASGI: streams untouched)."""

        def __init__(self, app):
            self.app = app

        async def __call__(self, scope, receive, send):
            async def send_with_headers(message):
                if message["type"] == "http.response.start":
                    present = {k.lower() for k, _ in message.get("headers", [])}
                    message["headers"] = list(message.get("headers", [])) + [
                        (k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()
                        if k.lower().encode() not in present]
                await send(message)

            await self.app(scope, receive, send_with_headers if scope["type"] == "http" else send)

    return Starlette(routes=routes, middleware=[Middleware(_Headers)])


def serve(ckpts=(), host: str = "127.0.0.1", port: int = 0, device: str | None = None,
          max_side: int = 512, ready=None) -> int:
    """Serve the explorer until interrupted; prints the URL (``ready(url)`` is called too)."""
    try:
        import uvicorn  # noqa: F401
        import starlette  # noqa: F401
    except ImportError:
        raise ValueError("the explorer needs the 'explore' extra: pip install -e \".[explore]\" "
                         "(Starlette and uvicorn)") from None
    import uvicorn

    explorer = Explorer(ckpts, device=device, max_side=max_side)
    if host not in LOCAL_HOSTS:
        print(f"warning: listening on {host}: anyone who can reach this machine can use the "
              "page and its CPU; use the default 127.0.0.1 unless you mean it", file=sys.stderr)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ValueError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}/"
    print(f"explore: serving {len(explorer.sources)} model(s) on {url} (Ctrl-C to stop)",
          flush=True)
    if ready is not None:
        ready(url)
    app = create_app(explorer, hosts=LOCAL_HOSTS if host in LOCAL_HOSTS else None)
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0
