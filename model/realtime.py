"""TPAMI 2019's cheap parameter-tuning ("real-time") model: Fan et al., "A General Decoupled
Learning Framework for Parameterized Image Operators", TPAMI 2019 (arXiv:1907.05852), §3.3 and §5
(Table 5).

Only one layer depends on γ: the last InstanceNorm's scale and shift, predicted from the code by
two MLPs m→16→ReLU→C (one for the scale, one for the shift; the authors' code uses 2 inputs, γ
and the operator's code). Everything before it is computed once per image: a new γ re-runs only
the affine, a ReLU and the output conv (:meth:`RealtimeNet.prefix` / :meth:`RealtimeNet.finish`).

Backbone (§5, as the authors' release builds it): N_base with depthwise convolutions and the
intermediate width raised from 64 to 128. With ``width`` w (64 in the paper's preset):

* conv 3×3 4→2w, conv 3×3 2w→2w, conv 3×3 stride 2, each IN + ReLU;
* per dilation d an inverted-bottleneck block: 1×1 2w→4w (IN, ReLU), 3×3 depthwise 4w with
  dilation d (IN, ReLU), 1×1 4w→2w (IN), add the block's input, ReLU;
* transposed conv 4×4 stride 2 (IN, ReLU); conv 3×3 2w→w, IN with the predicted affine, ReLU;
  conv 3×3 w→3 with a bias;
* output = input RGB (0–255) + that residual.

No biases before an InstanceNorm (it removes them). ``init="paper"``: static conv weights
N(0, 1) as the authors' code; ``"conv"``: PyTorch's default.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .conditioning import MLPAffine, Params
from .networks import instance_norm_affine

HIDDEN = 16  # the predictor MLPs' hidden width (authors' code: 2→16→64)


class RealtimeNet(nn.Module):
    arch = "realtime"
    needs_code = True

    def __init__(self, *, width: int = 64, dilations=(2, 4, 4, 8, 8, 16, 1), code_dim: int = 1,
                 init: str = "paper", mode: str = "grouped"):
        super().__init__()
        if init not in ("paper", "conv"):
            raise ValueError(f"init must be 'paper' or 'conv', got {init!r}")
        w, e, c = 2 * width, 4 * width, width
        self.mode, self.code_dim, self.width = mode, code_dim, width

        def cn(cin, cout, k, **kw):
            return nn.Sequential(nn.Conv2d(cin, cout, k, bias=False, **kw),
                                 nn.InstanceNorm2d(cout, affine=True))

        self.stem = nn.ModuleList([cn(4, w, 3, padding=1), cn(w, w, 3, padding=1),
                                   cn(w, w, 3, stride=2, padding=1)])
        self.blocks = nn.ModuleList(
            nn.ModuleList([cn(w, e, 1), cn(e, e, 3, padding=d, dilation=d, groups=e), cn(e, w, 1)])
            for d in dilations)
        self.up = nn.Sequential(nn.ConvTranspose2d(w, w, 4, stride=2, padding=1, bias=False),
                                nn.InstanceNorm2d(w, affine=True))
        self.conv_last_in = nn.Conv2d(w, c, 3, padding=1, bias=False)
        self.affine = MLPAffine(code_dim, c, HIDDEN)
        self.out = nn.Conv2d(c, 3, 3, padding=1, bias=True)
        if init == "paper":
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                    nn.init.normal_(m.weight, 0.0, 1.0)

    def fixed_weights(self, code=None) -> Params:
        """The predicted (scale, shift) for one code (m,)."""
        device = self.out.weight.device
        code = torch.as_tensor(code, dtype=torch.float32, device=device).reshape(1, -1)
        scale, shift = self.affine(code)
        return Params(affine={0: (scale[0], shift[0])}, code=code, shared=True)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone up to the last conv before the γ-dependent InstanceNorm."""
        h = x
        for layer in self.stem:
            h = F.relu(layer(h))
        for expand, depthwise, project in self.blocks:
            r = F.relu(expand(h))
            r = F.relu(depthwise(r))
            h = F.relu(h + project(r))
        h = F.relu(self.up(h))
        return self.conv_last_in(h)

    def prefix(self, x: torch.Tensor, code=None) -> tuple[int, dict]:
        """Everything before the γ-dependent affine: the normalised features of the last IN."""
        return 1, {"h": F.instance_norm(self.features(x)), "x": x}

    def finish(self, position: int, state: dict, fixed: Params, code=None) -> torch.Tensor:
        """The predicted affine, ReLU, the output conv, plus the input."""
        h = state["h"]
        if fixed is not None and fixed.shared:
            scale, shift = fixed.affine[0]
            h = h * scale[None, :, None, None] + shift[None, :, None, None]
        else:
            scale, shift = self.affine(code)
            h = h * scale[:, :, None, None] + shift[:, :, None, None]
        return state["x"][:, :3] + 128.0 + self.out(F.relu(h))

    def forward(self, x: torch.Tensor, code: torch.Tensor | None = None, *, fixed=None):
        """``x`` (N, 4, H, W) from :func:`model.data.prepare` (H, W even); ``code`` (N, m) unless
        ``fixed`` (from :meth:`fixed_weights`) is given; returns (N, 3, H, W) on 0–255."""
        if x.ndim != 4 or x.shape[1] != 4:
            raise ValueError(f"expected input (N, 4, H, W), got {tuple(x.shape)}")
        if x.shape[2] % 2 or x.shape[3] % 2:
            raise ValueError(f"height and width must be even, got {tuple(x.shape[2:])}")
        if fixed is None and (code is None or code.shape != (x.shape[0], self.code_dim)):
            raise ValueError(f"realtime needs a code of shape (N, {self.code_dim}), got "
                             f"{None if code is None else tuple(code.shape)}")
        if fixed is None and self.mode != "loop":
            # training: the per-sample affine inside the normalisation (one fused pass, as a
            # static affine), equal to normalising, then scaling and shifting (finish)
            scale, shift = self.affine(code)
            h = instance_norm_affine(self.features(x), scale, shift, 1e-5)
            return x[:, :3] + 128.0 + self.out(F.relu(h))
        pos, state = self.prefix(x)
        return self.finish(pos, state, fixed, code)
