"""Network input and the γ code: what the model sees."""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import torch

import operators


def edge_map(rgb: torch.Tensor) -> torch.Tensor:
    """The paper's edge channel (ECCV 2018 Eq. 2, as the authors' code computes it).

    For (N, 3, H, W) on the 0–255 scale: at each pixel the absolute differences to its 4
    neighbours, summed over neighbours and channels, divided by 4 and by 3 (a channel mean); a
    missing neighbour at the border contributes 0. Returns (N, 1, H, W).
    """
    dy = (rgb[:, :, 1:] - rgb[:, :, :-1]).abs()
    dx = (rgb[:, :, :, 1:] - rgb[:, :, :, :-1]).abs()
    e = torch.zeros_like(rgb)
    e[:, :, 1:] += dy
    e[:, :, :-1] += dy
    e[:, :, :, 1:] += dx
    e[:, :, :, :-1] += dx
    return e.sum(dim=1, keepdim=True) / 12.0


def prepare(rgb_uint8: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) uint8 RGB → (N, 4, H, W) float: RGB and edge map on 0–255, minus 128."""
    if rgb_uint8.dtype != torch.uint8:
        raise TypeError(f"expected a uint8 tensor, got {rgb_uint8.dtype}")
    return prepare_float(rgb_uint8.float())


def prepare_float(rgb: torch.Tensor) -> torch.Tensor:
    """:func:`prepare` for a float (N, 3, H, W) RGB tensor already on the 0–255 scale."""
    x = rgb.float()
    return torch.cat([x, edge_map(x)], dim=1) - 128.0


def check_domain(op: str, gamma) -> float:
    """γ as a float if the model can take it at all: finite, and > 0 for a log-uniform law
    (whose normalisation is a logarithm); otherwise a ValueError whatever ``strict`` says."""
    spec = operators.get(op)
    with warnings.catch_warnings():  # the range is the caller's business (model's own range)
        warnings.simplefilter("ignore", getattr(operators, "ExtrapolationWarning", UserWarning))
        g = spec.check_gamma(gamma, strict=False)  # a finite real number
    if spec.law == "log-uniform" and not g > 0:
        raise ValueError(f"{spec.name}: {spec.gamma_name}={g:g} is outside the domain of its "
                         f"log-uniform law (it must be > 0; trained range "
                         f"[{spec.gamma_range[0]:g}, {spec.gamma_range[1]:g}])")
    return g


@dataclass(frozen=True)
class GammaCoder:
    """Turns (operator, γ) into the weight-learning network's input vector.

    ``norm="law"`` maps γ to [0, 1] by its sampling law (log scale for log-uniform laws),
    ``norm="paper"`` uses the authors' ad-hoc maps into about [0.002, 0.2]. With several operators
    the operator's identity is appended: ``op_code="scalar"`` (the authors' single number per
    operator, 0.1 × its position in the paper's order) or ``"onehot"``.
    """

    ops: tuple[str, ...]
    norm: str = "law"
    op_code: str = "scalar"

    def __post_init__(self):
        for o in self.ops:
            operators.get(o)
        if self.norm not in ("law", "paper"):
            raise ValueError(f"norm must be 'law' or 'paper', got {self.norm!r}")
        if self.op_code not in ("scalar", "onehot"):
            raise ValueError(f"op_code must be 'scalar' or 'onehot', got {self.op_code!r}")

    @property
    def dim(self) -> int:
        if len(self.ops) == 1:
            return 1
        return 2 if self.op_code == "scalar" else 1 + len(self.ops)

    def __call__(self, ops, gammas) -> torch.Tensor:
        """Codes (N, dim) for sequences of operator names and γ values."""
        rows = []
        for op, g in zip(ops, gammas):
            if op not in self.ops:
                raise ValueError(f"this model knows {list(self.ops)}, not {op!r}")
            g = check_domain(op, g)
            spec = operators.get(op)
            t = spec.normalize(g) if self.norm == "law" else spec.paper_normalize(g)
            row = [t]
            if len(self.ops) > 1:
                k = self.ops.index(op)
                if self.op_code == "scalar":
                    row.append(0.1 * (operators.NAMES.index(op) + 1))
                else:
                    row += [1.0 if j == k else 0.0 for j in range(len(self.ops))]
            rows.append(row)
        return torch.tensor(rows, dtype=torch.float32)

    def to_dict(self) -> dict:
        return {**asdict(self), "ops": list(self.ops)}
