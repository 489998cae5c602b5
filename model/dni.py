"""DNI: Wang, Yu, Dong, Loy, "Deep Network Interpolation for Continuous Imagery Effect
Transition", CVPR 2019 (arXiv:1811.10515).

Two networks of one architecture (here N_base with static weights, the ``single`` network), the
second fine-tuned from the first: θ_lo trained at the low end of the operator's γ range, then
θ_hi initialised as θ_lo and trained at the high end. At γ the network runs with every parameter
(conv weights and InstanceNorm affines) interpolated linearly, θ = (1 − α) θ_lo + α θ_hi, α the
normalised γ (the law's scale: log for log-uniform laws). Training follows the ``ends``
schedule of :mod:`model.registry` (half the iterations per end point).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from .conditioning import Params
from .networks import OperatorNet


class DNINet(nn.Module):
    arch = "dni"
    needs_code = True

    def __init__(self, *, width: int = 64, dilations=(2, 4, 4, 8, 8, 16, 1), code_dim: int = 1,
                 init: str = "paper", residual: bool = False, mode: str = "grouped"):
        super().__init__()
        self.code_dim, self.mode = code_dim, mode
        kw = dict(width=width, dilations=dilations, code_dim=code_dim, init=init, residual=residual)
        self.lo = OperatorNet("single", **kw)
        self.hi = OperatorNet("single", **kw)

    # ------------------------------------------------------------------ stages
    def stage_parameters(self, stage: int) -> list[nn.Parameter]:
        """Stage 0 trains θ_lo (at the low end), stage 1 θ_hi (at the high end)."""
        return list((self.lo if stage == 0 else self.hi).parameters())

    def begin_stage(self, stage: int) -> None:
        """θ_hi starts as θ_lo (DNI fine-tunes one network from the other)."""
        if stage == 1:
            self.hi.load_state_dict(self.lo.state_dict())

    # ------------------------------------------------------------------ parameters
    def interpolated(self, alpha: float) -> dict:
        """θ_lo, θ_hi, or (1 − α) θ_lo + α θ_hi, by name."""
        lo, hi = dict(self.lo.named_parameters()), dict(self.hi.named_parameters())
        if alpha == 0.0:
            return lo
        if alpha == 1.0:
            return hi
        return {k: torch.lerp(lo[k], hi[k], float(alpha)) for k in lo}

    def fixed_weights(self, code=None) -> Params:
        alpha = float(torch.as_tensor(code).reshape(-1)[0])
        return Params(shared=True, state=self.interpolated(alpha))

    def forward(self, x: torch.Tensor, code: torch.Tensor | None = None, *, fixed=None):
        """``x`` (N, 4, H, W); ``code`` (N, m) whose first component is α (unless ``fixed``)."""
        if fixed is not None:
            return functional_call(self.lo, fixed.state, (x,))
        if code is None or code.shape != (x.shape[0], self.code_dim):
            raise ValueError(f"dni needs a code of shape (N, {self.code_dim}), got "
                             f"{None if code is None else tuple(code.shape)}")
        alphas = code[:, 0]
        if bool((alphas == alphas[0]).all()):  # one α (training: always)
            return functional_call(self.lo, self.interpolated(float(alphas[0])), (x,))
        out = None
        for a in torch.unique(alphas):
            idx = (alphas == a).nonzero().flatten()
            y = functional_call(self.lo, self.interpolated(float(a)), (x[idx],))
            if out is None:
                out = y.new_empty(x.shape[0], *y.shape[1:])
            out[idx] = y
        return out
