"""Applying a trained model to images of any size: ``model.load(ckpt).apply(image, op, γ)``."""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F

import operators

from .checkpoint import PER_GAMMA, build_model, load as load_state
from .data import prepare


def to_uint8(y: torch.Tensor) -> torch.Tensor:
    """Network output on the 0–255 scale → uint8, rounding half away from zero (MATLAB)."""
    return torch.floor(y.clamp(0, 255) + 0.5).to(torch.uint8)


class Predictor:
    """A trained model ready for inference; weights for a (operator, γ) are generated once."""

    def __init__(self, state: dict, device: str | None = None):
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.config = state["config"]
        self.net, self.coder = build_model(self.config)
        self.net.load_state_dict(state["model"])
        self.net.to(self.device).eval()
        self.iteration = state.get("iteration")
        self._cache: tuple | None = None

    @property
    def ops(self) -> tuple[str, ...]:
        return self.coder.ops

    def check(self, op: str, gamma, strict: bool) -> float:
        """Validate (op, γ); with ``strict`` refuse γ outside the range the model was trained on."""
        if op not in self.ops:
            raise ValueError(f"this model was trained for {list(self.ops)}, not {op!r}")
        spec = operators.get(op)
        g = spec.check_gamma(gamma, strict=False)
        lo, hi = self.config["trained_range"][op]
        if self.config["arch"] in PER_GAMMA:
            if not math.isclose(g, self.config["gamma"], rel_tol=1e-9):
                msg = (f"this {self.config['arch']} network was trained at {spec.gamma_name}="
                       f"{self.config['gamma']:g} only, not {g:g}")
                if strict:
                    raise ValueError(msg)
                warnings.warn(msg + "; its output does not depend on γ", stacklevel=3)
        elif strict and not lo <= g <= hi:
            raise ValueError(f"{op}: {spec.gamma_name}={g:g} is outside the trained range "
                             f"[{lo:g}, {hi:g}] (drop --strict to extrapolate)")
        return g

    def weights(self, op: str, gamma: float):
        """(code, fixed weights) for one (operator, γ), computed once."""
        key = (op, gamma)
        if self._cache is None or self._cache[0] != key:
            with torch.no_grad():
                code = self.coder([op], [gamma])[0].to(self.device) if self.net.needs_code else None
                self._cache = (key, (code, self.net.fixed_weights(code)))
        return self._cache[1]

    @torch.no_grad()
    def run(self, batch_uint8: torch.Tensor, op: str, gamma: float) -> torch.Tensor:
        """(N, 3, H, W) uint8 → (N, 3, H, W) float on 0–255; odd sizes are padded and cropped."""
        n, c, h, w = batch_uint8.shape
        x = prepare(batch_uint8.to(self.device))
        ph, pw = h % 2, w % 2
        if ph or pw:  # the stride-2 / transposed-conv round trip needs even sizes
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        code, fixed = self.weights(op, float(gamma))
        y = self.net(x, None if code is None else code.expand(n, -1), fixed=fixed)
        return y[:, :, :h, :w]

    def apply(self, image, op: str, gamma, *, strict: bool = False) -> np.ndarray:
        """One HxWx3 uint8 RGB image (any size >= 2x2) → uint8 output of ``op`` at ``gamma``."""
        img = np.asarray(image)
        if img.dtype != np.uint8:
            raise TypeError(f"image must be uint8 RGB, got {img.dtype}")
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"image must be HxWx3 RGB, got shape {img.shape}")
        if min(img.shape[:2]) < 2:
            raise ValueError(f"image must be at least 2x2, got {img.shape[:2]}")
        g = self.check(op, gamma, strict)
        t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]
        return to_uint8(self.run(t, op, g))[0].permute(1, 2, 0).cpu().numpy()


def load(ckpt, device: str | None = None) -> Predictor:
    """Load a checkpoint (a ``.pt`` file or a run folder) for inference."""
    return Predictor(load_state(ckpt, map_location="cpu"), device)
