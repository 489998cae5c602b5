"""The base network of Fan et al. and the two ways of giving it weights.

* ``decouple``: every convolution's weight tensor is produced from the γ code by a fully connected
  layer of the weight-learning network, ``W_i = A_i · code + B_i`` (ECCV 2018, Eq. 4);
* ``single``: ordinary learned weights (the one-network-per-γ baseline);
* ``concat``: ordinary learned weights, and the γ code tiled as extra constant input channels (the
  γ-as-input baseline of TPAMI 2019 Table 3, after Chen et al., ICCV 2017). Note that a constant
  channel only shifts each output channel of the first conv by a per-sample constant, which the
  InstanceNorm after it removes: γ then reaches the network only through the zero-padded border.
  Chen et al.'s network normalises with (adaptive) *batch* statistics, where the shift survives.

Batches mix γ values, so the decouple network's weights differ per sample. The authors loop over
the batch in Python; here one call runs the whole batch (``mode``):

* ``"grouped"`` (default): the per-sample weights stacked into one grouped convolution;
* ``"linear"``: conv(x, Σ_j c_j A_j + B) = Σ_j c_j conv(x, A_j) + conv(x, B), exact for the
  linear weight network, one convolution with (m+1) times the output channels;
* ``"loop"``: the authors' per-sample loop (the baseline the benchmarks compare with).

At inference for one γ, :meth:`OperatorNet.fixed_weights` generates the weights once and the
network then costs what a plain network costs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

PAPER_DILATIONS = (2, 4, 4, 8, 8, 16, 1)
MODES = ("grouped", "linear", "loop")
ARCHS = ("decouple", "single", "concat")


@dataclass(frozen=True)
class ConvSpec:
    cin: int
    cout: int
    k: int
    stride: int = 1
    padding: int = 1
    dilation: int = 1
    transposed: bool = False

    @property
    def shape(self) -> tuple[int, int, int, int]:
        # conv2d weights are (out, in, k, k); conv_transpose2d weights are (in, out, k, k)
        return (self.cin, self.cout, self.k, self.k) if self.transposed else \
            (self.cout, self.cin, self.k, self.k)


def base_layout(width: int = 64, dilations=PAPER_DILATIONS, in_channels: int = 4) -> list[ConvSpec]:
    """The 20 convolutions of N_base (ECCV 2018 supplementary Table 6) for width 64 and 7 blocks.

    conv 3x3 4→w; conv 3x3 w→w; conv 3x3 stride 2; per residual block two 3x3 convs with the
    block's dilation; transposed conv 4x4 stride 2; conv 3x3; conv 3x3 w→3.
    """
    w = width
    convs = [ConvSpec(in_channels, w, 3), ConvSpec(w, w, 3), ConvSpec(w, w, 3, stride=2)]
    for d in dilations:
        convs += [ConvSpec(w, w, 3, padding=d, dilation=d)] * 2
    convs += [ConvSpec(w, w, 4, stride=2, padding=1, transposed=True), ConvSpec(w, w, 3),
              ConvSpec(w, 3, 3)]
    return convs


def _conv(x, w, spec: ConvSpec, groups: int = 1):
    if spec.transposed:
        return F.conv_transpose2d(x, w, stride=spec.stride, padding=spec.padding, groups=groups)
    return F.conv2d(x, w, stride=spec.stride, padding=spec.padding, dilation=spec.dilation,
                    groups=groups)


class OperatorNet(nn.Module):
    """N_base with static (``single``) or γ-generated (``decouple``) convolution weights.

    Input: (N, 4, H, W) from :func:`model.data.prepare` (RGB and edge map on the 0–255 scale minus
    128), H and W even. Output: (N, 3, H, W) on the 0–255 scale (ReLU'd, as the authors' code), or
    with ``residual=True`` the input RGB plus the last conv's output (the output form of the
    TPAMI realtime model), which starts training from near the identity.
    No conv biases; InstanceNorm(affine) + ReLU after every conv but the last; residual blocks are
    conv-IN-ReLU-conv-IN, add, ReLU.
    """

    def __init__(self, arch: str = "decouple", *, width: int = 64, dilations=PAPER_DILATIONS,
                 code_dim: int = 1, mode: str = "grouped", init: str = "paper",
                 residual: bool = False):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
        if init not in ("paper", "conv"):
            raise ValueError(f"init must be 'paper' or 'conv', got {init!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.arch, self.mode, self.code_dim, self.residual = arch, mode, code_dim, residual
        self.layout = base_layout(width, tuple(dilations),
                                  4 + (code_dim if arch == "concat" else 0))
        self.norms = nn.ModuleList(nn.InstanceNorm2d(s.cout, affine=True) for s in self.layout[:-1])
        if arch == "decouple":
            # Linear(m, numel): weight = A (numel x m), bias = B; PyTorch's default init, as the
            # authors' code; the output is reshaped row-major to the conv weight shape.
            self.weight_net = nn.ModuleList(
                nn.Linear(code_dim, int(torch.Size(s.shape).numel())) for s in self.layout)
            if init == "conv":
                # A and B ~ U(±1/sqrt(fan_in)), PyTorch's conv default, so that W starts at the
                # scale of an ordinary conv instead of U(±1) (Linear's default for m = 1)
                for fc, s in zip(self.weight_net, self.layout):
                    bound = 1.0 / math.sqrt(s.shape[1] * s.k * s.k)
                    nn.init.uniform_(fc.weight, -bound, bound)
                    nn.init.uniform_(fc.bias, -bound, bound)
        else:
            self.weights = nn.ParameterList()
            for s in self.layout:
                conv = (nn.ConvTranspose2d if s.transposed else nn.Conv2d)(
                    s.cin, s.cout, s.k, bias=False)
                self.weights.append(nn.Parameter(conv.weight.detach().clone()))

    # ------------------------------------------------------------------ weights
    @property
    def needs_code(self) -> bool:
        """Whether :meth:`forward` needs the γ code (decouple: for the weights; concat: as input)."""
        return self.arch != "single"

    def fixed_weights(self, code: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Every conv's weight tensor for one code (m,) — computed once, reused for any batch."""
        if self.arch != "decouple":
            return list(self.weights)
        code = torch.as_tensor(code, dtype=torch.float32, device=self.norms[0].weight.device)
        return [fc(code.reshape(1, -1)).reshape(s.shape) for fc, s in zip(self.weight_net, self.layout)]

    def _apply_conv(self, i: int, x: torch.Tensor, code: torch.Tensor | None, fixed):
        spec = self.layout[i]
        if fixed is not None:
            return _conv(x, fixed[i], spec)
        if self.arch != "decouple":
            return _conv(x, self.weights[i], spec)
        fc, n = self.weight_net[i], x.shape[0]
        if self.mode == "loop":
            return torch.cat([_conv(x[j:j + 1], fc(code[j:j + 1]).reshape(spec.shape), spec)
                              for j in range(n)])
        if self.mode == "linear":
            m = code.shape[1]
            a = fc.weight.t().reshape(m, *spec.shape)  # A_j for each code component
            basis = torch.cat([a, fc.bias.reshape(1, *spec.shape)])  # (m+1, ...)
            if spec.transposed:  # stack along the output axis (dim 1 of a transposed weight)
                y = _conv(x, basis.permute(1, 0, 2, 3, 4).reshape(spec.cin, -1, spec.k, spec.k), spec)
            else:
                y = _conv(x, basis.reshape(-1, spec.cin, spec.k, spec.k), spec)
            y = y.reshape(n, m + 1, spec.cout, *y.shape[2:])
            coeff = torch.cat([code, code.new_ones(n, 1)], dim=1)
            return torch.einsum("nj,njchw->nchw", coeff, y)
        w = fc(code).reshape(n * spec.shape[0], *spec.shape[1:])  # grouped
        y = _conv(x.reshape(1, n * x.shape[1], *x.shape[2:]), w, spec, groups=n)
        return y.reshape(n, spec.cout, *y.shape[2:])

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, code: torch.Tensor | None = None, *, fixed=None):
        """``x`` (N, 4, H, W) from :func:`model.data.prepare`; ``code`` (N, m) for decouple (unless
        ``fixed`` weights are given) and concat; returns (N, 3, H, W) on the 0–255 scale."""
        if x.ndim != 4 or x.shape[1] != 4:
            raise ValueError(f"expected input (N, 4, H, W), got {tuple(x.shape)}")
        if x.shape[2] % 2 or x.shape[3] % 2:
            raise ValueError(f"height and width must be even, got {tuple(x.shape[2:])}")
        if (self.arch == "decouple" and fixed is None) or self.arch == "concat":
            if code is None or code.shape != (x.shape[0], self.code_dim):
                raise ValueError(f"{self.arch} needs a code of shape (N, {self.code_dim}), got "
                                 f"{None if code is None else tuple(code.shape)}")
        if self.arch == "concat":  # the code on the input's scale (0–255 minus 128), tiled
            planes = (code.to(x.dtype) * 255.0 - 128.0)[:, :, None, None]
            x = torch.cat([x, planes.expand(-1, -1, *x.shape[2:])], dim=1)
        relu = F.relu
        h = relu(self.norms[0](self._apply_conv(0, x, code, fixed)))
        h = relu(self.norms[1](self._apply_conv(1, h, code, fixed)))
        h = relu(self.norms[2](self._apply_conv(2, h, code, fixed)))
        i = 3
        n_blocks = (len(self.layout) - 6) // 2
        for _ in range(n_blocks):
            r = relu(self.norms[i](self._apply_conv(i, h, code, fixed)))
            r = self.norms[i + 1](self._apply_conv(i + 1, r, code, fixed))
            h = relu(h + r)
            i += 2
        h = relu(self.norms[i](self._apply_conv(i, h, code, fixed)))
        h = relu(self.norms[i + 1](self._apply_conv(i + 1, h, code, fixed)))
        out = self._apply_conv(i + 2, h, code, fixed)
        if self.residual:  # TPAMI's realtime variant: output = input RGB + predicted residual
            return x[:, :3] + 128.0 + out
        return relu(out)
