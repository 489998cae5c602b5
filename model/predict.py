"""Applying a trained model to images of any size: ``model.load(ckpt).apply(image, op, γ)``.

The policy is that of :func:`operators.apply`: γ outside the range the model was trained on is
refused unless ``strict=False`` (extrapolating is a legitimate experiment), and then a
:class:`operators.ExtrapolationWarning` is issued; γ outside the law's domain (γ <= 0 for a
log-uniform law, NaN, inf) is refused whatever ``strict`` says. Images are HxWx3 RGB, uint8 or
float in [0, 1], like :func:`operators.apply`.

Operators whose γ a model ignores (:meth:`Predictor.uses_gamma` is False; docs/joint.md): a
fixed-effect operator takes ``gamma=None`` (a number is refused, as by :func:`operators.apply`);
a degradation in a joint model (blind to the corruption level, as the authors' joint models)
takes None or any γ of its domain, which is accepted and has no effect on the output (no range
check, no warning).
"""
from __future__ import annotations

import hashlib
import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F

import operators

from . import device as devices
from . import registry
from .checkpoint import load as load_state
from .config import ModelConfig
from .data import GammaCoder, prepare, prepare_float

#: the warning issued when a γ outside the trained range is used with ``strict=False``
ExtrapolationWarning = getattr(operators, "ExtrapolationWarning", UserWarning)


class OutOfRangeError(ValueError):
    """γ outside the range a model was trained on (``strict=False`` allows it, with a warning)."""


class UnfinishedWarning(UserWarning):
    """:func:`load` of a checkpoint whose training has not reached its planned iterations (a
    run still training, stopped with ``--stop-at``, interrupted): usable, but not the model the
    run will give."""


def to_uint8(y: torch.Tensor) -> torch.Tensor:
    """Network output on the 0–255 scale → uint8, rounding half away from zero (MATLAB)."""
    return torch.floor(y.clamp(0, 255) + 0.5).to(torch.uint8)


def available_bytes(device: str) -> int | None:
    """Memory an inference on ``device`` can still take, in bytes (None: unknown): the free
    memory of a CUDA device, else the machine's available memory (``operators``' guard)."""
    if device.startswith("cuda"):
        try:
            return int(torch.cuda.mem_get_info(torch.device(device))[0])
        except (RuntimeError, AssertionError):  # pragma: no cover - no driver
            return None
    if device != "cpu":
        return None
    from operators._memory import available_bytes as machine

    return machine()


def bytes_per_pixel(arch: str, width: int) -> int:
    """Estimated peak memory of one inference per input pixel, in bytes (32 per channel of
    the width, plus 512): a bound, with 30 % to spare for the largest, on the peak RSS growth
    measured on the CPU (torch 2.13, 7 blocks, 512² to 1024², about linear in the pixels): at
    width 64, 1,963 B/px for ``realtime``, 1,447 ``decouple``, 1,424 ``adafm``, 1,188
    ``concat``, 1,115 ``dni``, 980 ``single``, 438 ``hdrnet`` (whose full-resolution part has
    no width); ``realtime`` 1,243 at width 32 and 701 at 16 (512²).
    ``tests/test_model_reliability.py`` re-measures it at width 32."""
    return 512 if arch == "hdrnet" else 32 * int(width) + 512


def _finite(y: torch.Tensor, op: str, gamma) -> torch.Tensor:
    """``y`` if every value is finite, else a ValueError: NaN or inf would be written as black
    (or any) pixels and scored as a PSNR, silently."""
    if not bool(torch.isfinite(y).all()):
        at = "" if gamma is None else f" at γ={gamma:g}"
        raise ValueError(f"the network's output for {op}{at} is not finite (NaN or inf): its "
                         "weights overflow on this input (far outside the trained range, or "
                         "from a training that was diverging); nothing is written")
    return y


class Predictor:
    """A trained model ready for inference; weights for a (operator, γ) are generated once."""

    def __init__(self, state: dict, device: str | None = None):
        self.device = devices.resolve(device)
        # an untrusted file: its config within bounds and its tensors' shapes those of the
        # network it describes, before anything is built (one-line ValueErrors)
        cfg = registry.check_checkpoint(state)
        self.config = cfg.to_dict()
        self.arch = registry.get(cfg.arch)
        # the coder the config records (operator codes, constant γ, γ component or not), and
        # the network for its code size (registry.build_model's, with the recorded coder)
        self.coder = GammaCoder.from_config(cfg)
        self.net = self.arch.build(cfg, self.coder.dim)
        try:
            self.net.load_state_dict(state["model"])
        except RuntimeError as exc:
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            raise ValueError(f"the checkpoint's weights do not fit a {cfg.arch} network of its "
                             f"config (written by another architecture or version?): "
                             f"{lines[1][:300] if len(lines) > 1 else lines[0][:300]}") from None
        self.net.to(self.device).eval()
        self.bytes_per_pixel = bytes_per_pixel(cfg.arch, cfg.width)
        self.iteration = state.get("iteration")
        planned = cfg.preset.get("iterations") if isinstance(cfg.preset, dict) else None
        #: the iterations the run was planned for (its preset's), None when the config lacks them
        self.iterations = int(planned) if planned else None
        self._check_trained(cfg)
        self._cache: tuple | None = None
        self._features: tuple | None = None

    def _check_trained(self, cfg: ModelConfig) -> None:
        """A two-end-point model (adafm, dni) is only usable once both ends are trained."""
        if self.arch.schedule != "ends":
            return
        total = int(cfg.preset.get("iterations", 0))
        half = total // 2
        it = int(self.iteration or 0)
        spec = operators.get(cfg.ops[0])
        lo, hi = spec.gamma_range
        missing = []
        if it < half:
            missing.append(f"the low end ({spec.gamma_name}={lo:g}, iterations 1..{half})")
        if it < total:
            missing.append(f"the high end ({spec.gamma_name}={hi:g}, iterations {half + 1}.."
                           f"{total})")
        if missing:
            raise ValueError(f"this {cfg.arch} model is trained to iteration {it} of {total}: "
                             f"{' and '.join(missing)} not trained yet; resume its training "
                             "(train --resume)")

    @property
    def ops(self) -> tuple[str, ...]:
        return self.coder.ops

    @property
    def finished(self) -> bool | None:
        """Whether the training reached its planned iterations (None: the checkpoint does not
        say: no iteration or no preset recorded)."""
        if self.iteration is None or self.iterations is None:
            return None
        return int(self.iteration) >= self.iterations

    def trained_text(self) -> str:
        """``iteration 500 of 3000 (unfinished)``, ``iteration 3000 of 3000``, for messages."""
        if self.iteration is None:
            return "iteration unknown"
        text = f"iteration {int(self.iteration)}"
        if self.iterations is not None:
            text += f" of {self.iterations}" + (" (unfinished)" if not self.finished else "")
        return text

    def _op(self, op: str) -> str:
        name = operators.get(op).name  # case-insensitive, unknown names listed
        if name not in self.ops:
            raise ValueError(f"this model was trained for {list(self.ops)}, not {op!r}")
        return name

    def uses_gamma(self, op: str) -> bool:
        """Whether this model's output for ``op`` depends on γ: False for a fixed-effect operator
        and for a degradation in a joint model (blind to the corruption level, paper.md §5)."""
        return self.coder.uses_gamma(self._op(op))

    def gamma_range(self, op: str) -> tuple[float, float]:
        """The γ range this model was trained on: the operator's sampling range, from which
        ``datagen`` draws every training γ (the drawn extremes, ``config["trained_range"]``, lie
        just inside it), so that the paper's test γ at the ends of the range are in range."""
        spec = operators.get(op)
        if not spec.has_gamma:
            raise ValueError(f"{spec.name} has no parameter (a fixed-effect operator): no γ range")
        lo, hi = self.config["trained_range"][spec.name]
        return min(lo, spec.gamma_range[0]), max(hi, spec.gamma_range[1])

    def check(self, op: str, gamma, strict: bool = True) -> float:
        """Validate (op, γ). γ outside the law's domain is always refused; outside the range the
        model was trained on (for a single-γ network: any other γ) it is refused with ``strict``
        and warned about (:data:`ExtrapolationWarning`) without. An operator whose γ the model
        ignores (:meth:`uses_gamma`): None for a fixed-effect operator (a number is refused),
        None or any γ of a blind degradation's domain (returned, with no effect)."""
        op = self._op(op)
        spec = operators.get(op)
        if not self.coder.uses_gamma(op):
            return self.coder.check(op, gamma)
        g = self.coder.check(op, gamma)
        lo, hi = self.gamma_range(op)
        if self.arch.per_gamma:
            if not math.isclose(g, self.config["gamma"], rel_tol=1e-9):
                msg = (f"this {self.config['arch']} network was trained at {spec.gamma_name}="
                       f"{self.config['gamma']:g} only, not {g:g}")
                if strict:
                    raise OutOfRangeError(msg + "; pass strict=False to use it anyway")
                warnings.warn(msg + "; its output does not depend on γ", ExtrapolationWarning,
                              stacklevel=3)
        elif not lo <= g <= hi:
            msg = (f"{op}: {spec.gamma_name}={g:g} is outside the trained range "
                   f"[{lo:g}, {hi:g}]")
            if strict:
                raise OutOfRangeError(msg + "; pass strict=False to extrapolate on purpose")
            warnings.warn(msg + ": extrapolating", ExtrapolationWarning, stacklevel=3)
        return g

    def _key(self, op: str, gamma):
        """γ as the cache and the code see it: None where the model ignores it."""
        if not self.coder.uses_gamma(op):
            self.coder.check(op, gamma)
            return None
        return float(gamma)

    def weights(self, op: str, gamma):
        """(code, fixed weights) for one (operator, γ), computed once."""
        gamma = self._key(op, gamma)
        key = (op, gamma)
        if self._cache is None or self._cache[0] != key:
            with torch.no_grad():
                code = self.coder([op], [gamma])[0].to(self.device) if self.net.needs_code else None
                self._cache = (key, (code, self.net.fixed_weights(code)))
        return self._cache[1]

    def check_size(self, h: int, w: int, n: int = 1) -> None:
        """Refuse (``MemoryError``, before any work) ``n`` images of ``h`` x ``w`` whose
        estimated peak memory (:func:`bytes_per_pixel`) exceeds what the device has available.
        The image cannot be cut into tiles instead: every InstanceNorm layer (HDRNet: its
        low-resolution grid) sees the whole image, so tiles would give another output."""
        need = self.bytes_per_pixel * n * (h + h % 2) * (w + w % 2)
        avail = available_bytes(self.device)
        if avail is None or need <= avail:
            return
        per_mp = self.bytes_per_pixel * 1e6 / 2**30
        raise MemoryError(
            f"a {h}x{w} image{f' (x{n})' if n > 1 else ''} needs about {need / 2**30:.3g} GiB "
            f"for this {self.config['arch']} network ({per_mp:.2g} GiB per megapixel), but only "
            f"{avail / 2**30:.3g} GiB is available on {self.device}: at most about "
            f"{avail / self.bytes_per_pixel / n / 1e6:.3g} megapixels here; downscale the image "
            "(its InstanceNorm layers see the whole image: it cannot be run in tiles) or free "
            "memory")

    @torch.no_grad()
    def run(self, batch: torch.Tensor, op: str, gamma) -> torch.Tensor:
        """(N, 3, H, W) uint8 (or float on the 0–255 scale) → (N, 3, H, W) float on 0–255; odd
        sizes are padded and cropped. ``gamma``: None (or anything, see :meth:`check`) where the
        model ignores it. A batch too large for the device's memory is a ``MemoryError``
        (:meth:`check_size`)."""
        n, c, h, w = batch.shape
        self.check_size(h, w, n)
        batch = batch.to(self.device)
        x = prepare(batch) if batch.dtype == torch.uint8 else prepare_float(batch)
        # the stride-2 / transposed-conv round trip needs even sizes, and InstanceNorm more than
        # one pixel after the stride: at least 4x4
        ph, pw = max(h + h % 2, 4) - h, max(w + w % 2, 4) - w
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        code, fixed = self.weights(op, gamma)
        y = self.net(x, None if code is None else code.expand(n, -1), fixed=fixed)
        return _finite(y[:, :, :h, :w], op, gamma)

    # ------------------------------------------------------------------ re-tuning
    @property
    def retunable(self) -> bool:
        """Whether the network can be split at its first γ-dependent step (see :meth:`retune`)."""
        return hasattr(self.net, "prefix") and self.net.needs_code

    @torch.no_grad()
    def features(self, image) -> tuple:
        """The cached part of an image's forward pass: everything before the first layer that
        depends on γ (for the real-time model, all but the last affine and conv)."""
        img = self._as_uint8_or_float(image)
        key = (img.shape, str(img.dtype), hashlib.blake2b(img.tobytes(), digest_size=16).digest())
        if self._features is None or self._features[0] != key:
            self.check_size(*img.shape[:2])
            t = self._tensor(img)
            n, c, h, w = t.shape
            x = prepare(t) if t.dtype == torch.uint8 else prepare_float(t)
            x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate") if (h % 2 or w % 2) else x
            pos, state = self.net.prefix(x) if self.retunable else (0, {"x": x})
            self._features = (key, (pos, state, h, w))
        return self._features[1]

    @torch.no_grad()
    def retune(self, image, op: str, gamma, *, strict: bool = True) -> np.ndarray:
        """:meth:`apply` for an image seen before with another γ: the features before the
        first γ-dependent layer are cached per image (one image at a time), so a new γ costs
        only the layers after it. Same output as :meth:`apply`."""
        img = self._as_uint8_or_float(image)
        op = self._op(op)
        g = self.check(op, gamma, strict)
        pos, state, h, w = self.features(img)
        code, fixed = self.weights(op, g)
        if self.retunable:
            y = self.net.finish(pos, state, fixed, None if code is None else code[None])
        else:
            y = self.net(state["x"], None if code is None else code[None], fixed=fixed)
        return self._output(_finite(y[:, :, :h, :w], op, g), img.dtype)

    def apply(self, image, op: str, gamma, *, strict: bool = True) -> np.ndarray:
        """One HxWx3 RGB image (any size >= 2x2) → the output of ``op`` at ``gamma``.

        uint8 input gives uint8 output (MATLAB rounding); float input in [0, 1] gives float32
        output on the [0, 1] scale, unclipped. γ outside the trained range raises unless
        ``strict=False`` (then an :data:`ExtrapolationWarning`), like :func:`operators.apply`.
        """
        img = self._as_uint8_or_float(image)
        op = self._op(op)
        g = self.check(op, gamma, strict)
        self.check_size(*img.shape[:2])  # before the image is converted
        return self._output(self.run(self._tensor(img), op, g), img.dtype)

    @staticmethod
    def _as_uint8_or_float(image) -> np.ndarray:
        img = np.asarray(image)
        if img.dtype != np.uint8 and img.dtype.kind != "f":
            raise TypeError(f"image must be uint8 or float in [0, 1] RGB, got {img.dtype}")
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"image must be HxWx3 RGB, got shape {img.shape}")
        if min(img.shape[:2]) < 2:
            raise ValueError(f"image must be at least 2x2, got {img.shape[:2]}")
        if img.dtype.kind == "f":
            if not np.isfinite(img).all():
                raise ValueError("image has NaN or inf values")
            if img.min() < 0 or img.max() > 1:
                raise ValueError(f"a float image must be in [0, 1], got values in "
                                 f"[{img.min():g}, {img.max():g}]")
        return img

    @staticmethod
    def _tensor(img: np.ndarray) -> torch.Tensor:
        if img.dtype == np.uint8:
            return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]
        t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32))
        return t[None] * 255.0

    @staticmethod
    def _output(y: torch.Tensor, dtype) -> np.ndarray:
        if dtype == np.uint8:
            return to_uint8(y)[0].permute(1, 2, 0).cpu().numpy()
        return y[0].permute(1, 2, 0).cpu().numpy() / np.float32(255.0)


def load(ckpt, device: str | None = None) -> Predictor:
    """Load a checkpoint (a ``.pt`` file or a run folder) for inference (weights only: nothing
    in the file is executed; its checksum is verified), a model of the zoo by name (``"l0"``
    or ``"zoo:l0"``; an existing path of that name wins over a bare name: :mod:`model.zoo`), or
    an exported model's card (``FOLDER/NAME.json`` beside ``NAME.safetensors``, as written by
    ``python -m model zoo export``: e.g. ``results/medium/models/norm_1-tpami10-b1.3.json``)."""
    from . import zoo

    name = zoo.name_of(ckpt)
    if name is not None:
        return zoo.load(name, device)
    if str(ckpt).endswith(".json"):
        return zoo.load_card_file(ckpt, device)
    device = devices.resolve(device)
    predictor = Predictor(load_state(ckpt, map_location="cpu"), device)
    if predictor.finished is False:
        from .checkpoint import resolve

        warnings.warn(f"{resolve(ckpt)} is from iteration {predictor.iteration} of "
                      f"{predictor.iterations}: its training is unfinished (still running, "
                      "stopped with --stop-at, or interrupted), so it is not the model the run "
                      "will give; resume it with `python -m model train ... --resume`",
                      UnfinishedWarning, stacklevel=2)
    return predictor
