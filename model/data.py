"""Network input and the γ code: what the model sees."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

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
    """Turns (operator, γ) into the code that conditions a network.

    ``norm="law"`` maps γ to [0, 1] by its sampling law (log scale for log-uniform laws),
    ``norm="paper"`` uses the authors' ad-hoc maps into about [0.002, 0.2]. With several operators
    the operator's identity follows, from ``table`` (operator → components; see
    :func:`model.config.op_code_table`: ``op_code="scalar"``, the authors' single number per
    operator, 0.1 × its position in the paper's order, or ``"onehot"``). The table is stored in
    every checkpoint, so that a model never depends on the order of :data:`operators.NAMES`.
    """

    ops: tuple[str, ...]
    norm: str = "law"
    op_code: str = "scalar"
    table: dict | None = None

    def __post_init__(self):
        from .config import op_code_table

        for o in self.ops:
            operators.get(o)
        if self.norm not in ("law", "paper"):
            raise ValueError(f"norm must be 'law' or 'paper', got {self.norm!r}")
        if self.op_code not in ("scalar", "onehot"):
            raise ValueError(f"op_code must be 'scalar' or 'onehot', got {self.op_code!r}")
        table = op_code_table(self.ops, self.op_code) if self.table is None else self.table
        if sorted(table) != sorted(self.ops) or len({len(v) for v in table.values()}) != 1:
            raise ValueError(f"operator-code table {table} does not fit the operators "
                             f"{list(self.ops)}")
        object.__setattr__(self, "table", {k: tuple(float(x) for x in v) for k, v in table.items()})

    @property
    def dim(self) -> int:
        return 1 + len(next(iter(self.table.values())))

    def __call__(self, ops, gammas) -> torch.Tensor:
        """Codes (N, dim) for sequences of operator names and γ values."""
        rows = []
        for op, g in zip(ops, gammas):
            if op not in self.ops:
                raise ValueError(f"this model knows {list(self.ops)}, not {op!r}")
            g = check_domain(op, g)
            spec = operators.get(op)
            t = spec.normalize(g) if self.norm == "law" else spec.paper_normalize(g)
            rows.append([t, *self.table[op]])
        return torch.tensor(rows, dtype=torch.float32)

    def to_dict(self) -> dict:
        return {"ops": list(self.ops), "norm": self.norm, "op_code": self.op_code,
                "table": {k: list(v) for k, v in self.table.items()}}
