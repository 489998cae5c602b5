"""DBL: deep bilateral learning (HDRNet), Gharbi, Chen, Barron, Hasinoff, Durand, "Deep Bilateral
Learning for Real-Time Image Enhancement", SIGGRAPH 2017 (ACM TOG 36(4), doi:10.1145/3072959.3073592).

The baseline of TPAMI 2019 Table 6, written from the paper with its release's defaults: a
low-resolution stream on a ``lowres``² resize (256 by default) predicts a bilateral grid of 3×4
affine colour transforms, ``grid_size``² cells × ``luma_bins`` intensity bins (16 × 16 × 8); a
pointwise guide network maps the full-resolution input to [0, 1]; the grid is sliced trilinearly at
(x, y, guide) and the affine is applied to each pixel.

Low-resolution stream: ``log2(lowres / grid_size)`` stride-2 "splat" convs (8, 16, 32, ... channels
for 8 luma bins), then a *local* path (two 3×3 convs) and a *global* path (two stride-2 convs and
three fully connected layers), fused by a ReLU of their sum and a 1×1 conv to ``luma_bins`` × 12
coefficients. Guide: a 3×3 colour matrix, a per-channel piecewise-linear curve of 16 ReLU pieces
and a 1×1 mix to one channel, clamped to [0, 1].

Its interface is that of :class:`model.networks.OperatorNet`: input from :func:`model.data.prepare`
(RGB and edge map minus 128; the edge map is not used), output RGB on the 0–255 scale.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def slice_grid(grid: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
    """Trilinear slicing: grid (N, C, D, GH, GW) at every pixel's (x, y, guide) → (N, C, H, W).

    ``guide`` (N, H, W) in [0, 1] selects the depth (intensity) coordinate; pixel (i, j) of an
    H × W image sits at (j + ½) / W across the grid's width and (i + ½) / H down its height, so
    grid cells are centred on equal fractions of the image (``align_corners=False``), and the
    borders are clamped. ``grid_sample``'s last axis is (x, y, z) = (width, height, depth), each in
    [−1, 1]: the guide is mapped from [0, 1] to [−1, 1].
    """
    n, h, w = guide.shape
    dev, dt = guide.device, guide.dtype
    ys = (torch.arange(h, device=dev, dtype=dt) + 0.5) / h * 2 - 1
    xs = (torch.arange(w, device=dev, dtype=dt) + 0.5) / w * 2 - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    coords = torch.stack([gx.expand(n, h, w), gy.expand(n, h, w), guide * 2 - 1], dim=-1)
    out = F.grid_sample(grid, coords[:, None], mode="bilinear", padding_mode="border",
                        align_corners=False)  # 5-D input: "bilinear" is trilinear
    return out[:, :, 0]


def apply_affine(coeffs: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
    """(N, 12, H, W) coefficients, row-major 3×4 per pixel, applied to (N, 3, H, W) → (N, 3, H, W)."""
    a = coeffs.reshape(coeffs.shape[0], 3, 4, *coeffs.shape[2:])
    return (a[:, :, :3] * rgb[:, None]).sum(dim=2) + a[:, :, 3]


class HDRNet(nn.Module):
    """Deep bilateral learning for one operator at one γ (see the module docstring)."""

    arch = "hdrnet"
    needs_code = False

    def __init__(self, *, lowres: int = 256, grid_size: int = 16, luma_bins: int = 8,
                 channel_multiplier: int = 1, guide_points: int = 16):
        super().__init__()
        splats = math.log2(lowres / grid_size)
        if splats < 1 or splats != int(splats):
            raise ValueError(f"lowres ({lowres}) must be grid_size ({grid_size}) times a power of 2")
        if grid_size < 4 or grid_size % 4:
            raise ValueError(f"grid_size must be a multiple of 4, got {grid_size}")
        self.lowres, self.grid_size, self.luma_bins = lowres, grid_size, luma_bins
        cm, lb = channel_multiplier, luma_bins
        c = 8 * cm * lb  # width of the local and global paths (64 for the defaults)
        layers, cin = [], 3
        for i in range(int(splats)):
            cout = cm * (2 ** i) * lb
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.ReLU()]
            cin = cout
        self.splat = nn.Sequential(*layers)
        self.global_conv = nn.Sequential(nn.Conv2d(cin, c, 3, stride=2, padding=1), nn.ReLU(),
                                         nn.Conv2d(c, c, 3, stride=2, padding=1), nn.ReLU())
        side = grid_size // 4
        self.global_fc = nn.Sequential(nn.Linear(c * side * side, 32 * cm * lb), nn.ReLU(),
                                       nn.Linear(32 * cm * lb, 16 * cm * lb), nn.ReLU(),
                                       nn.Linear(16 * cm * lb, c))
        self.local = nn.Sequential(nn.Conv2d(cin, c, 3, padding=1), nn.ReLU(),
                                   nn.Conv2d(c, c, 3, padding=1, bias=False))
        self.fusion_bias = nn.Parameter(torch.zeros(c))
        self.linear = nn.Conv2d(c, lb * 12, 1)
        # guide: colour matrix (identity), per-channel curve (identity), mix to one channel (mean)
        self.ccm = nn.Parameter(torch.eye(3))
        self.ccm_bias = nn.Parameter(torch.zeros(3))
        self.register_buffer("shifts", torch.linspace(0, 1, guide_points + 1)[:-1].repeat(3, 1))
        slopes = torch.zeros(3, guide_points)
        slopes[:, 0] = 1.0
        self.slopes = nn.Parameter(slopes)
        self.mix = nn.Parameter(torch.full((3,), 1.0 / 3.0))
        self.mix_bias = nn.Parameter(torch.zeros(()))

    def fixed_weights(self, code=None):
        return None

    def coefficients(self, rgb: torch.Tensor) -> torch.Tensor:
        """The bilateral grid (N, 12, luma_bins, grid, grid) from (N, 3, H, W) RGB in [0, 1]."""
        lo = F.interpolate(rgb, size=(self.lowres, self.lowres), mode="bilinear",
                           align_corners=False, antialias=True)
        s = self.splat(lo)
        g = self.global_fc(self.global_conv(s).flatten(1))
        f = F.relu(self.local(s) + g[:, :, None, None] + self.fusion_bias[None, :, None, None])
        a = self.linear(f)  # (N, luma_bins * 12, grid, grid)
        n, _, gh, gw = a.shape
        return a.reshape(n, self.luma_bins, 12, gh, gw).permute(0, 2, 1, 3, 4)

    def guide(self, rgb: torch.Tensor) -> torch.Tensor:
        """The pointwise guide (N, H, W) in [0, 1]."""
        x = torch.einsum("ij,njhw->nihw", self.ccm, rgb) + self.ccm_bias[None, :, None, None]
        curves = (self.slopes[None, :, :, None, None]
                  * F.relu(x[:, :, None] - self.shifts[None, :, :, None, None])).sum(dim=2)
        return ((self.mix[None, :, None, None] * curves).sum(dim=1) + self.mix_bias).clamp(0, 1)

    def forward(self, x: torch.Tensor, code=None, *, fixed=None) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 4:
            raise ValueError(f"expected input (N, 4, H, W), got {tuple(x.shape)}")
        rgb = (x[:, :3] + 128.0) / 255.0
        out = apply_affine(slice_grid(self.coefficients(rgb), self.guide(rgb)), rgb)
        return out * 255.0
