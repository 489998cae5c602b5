"""Network input and the γ code: what the model sees."""
from __future__ import annotations

import math
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


def _is_missing(gamma) -> bool:
    """None, or the NaN a dataset stores for a fixed-effect operator's γ."""
    if gamma is None:
        return True
    try:
        return math.isnan(float(gamma))
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class GammaCoder:
    """Turns (operator, γ) into the code that conditions a network.

    ``norm="law"`` maps γ to [0, 1] by its sampling law (log scale for log-uniform laws),
    ``norm="paper"`` uses the authors' ad-hoc maps into about [0.002, 0.2]. With several operators
    the operator's identity follows, from ``table`` (operator → components; see
    :func:`model.config.op_code_table`: ``op_code="scalar"``, the authors' single number per
    operator from their ``joint``, ``realtime`` or ``restoration`` table, or ``"onehot"``). The
    table is stored in every checkpoint, so that a model never depends on the order of
    :data:`operators.NAMES`.

    The γ component (Fan et al., ECCV 2018 §4.5; paper.md §2, §5): ``gamma_dim`` 1, the
    normalised γ, except for the operators of ``const`` (operator → constant: fixed-effect
    operators, and degradations in a model of several operators, whose γ the authors' joint
    models disable), whose γ is ignored; ``gamma_dim`` 0 (several degradations only, the
    4-restoration model): no γ component, the code is the operator code alone and every γ is
    ignored. ``const``/``gamma_dim`` default to :func:`model.config.const_gamma_table` and
    :func:`model.config.gamma_dim` of the operators (a checkpoint stores them: build a loaded
    model's coder with :meth:`from_config`). An ignored γ may be None (or the NaN a dataset
    stores for fixed-effect operators) or, for a degradation, any value of its domain.
    """

    ops: tuple[str, ...]
    norm: str = "law"
    op_code: str = "scalar"
    table: dict | None = None
    const: dict | None = None
    gamma_dim: int | None = None
    arch: str | None = None  # only to pick the default table (the realtime order)

    def __post_init__(self):
        from .config import const_gamma_table, gamma_dim, op_code_table

        object.__setattr__(self, "ops", tuple(operators.get(o).name for o in self.ops))
        if self.norm not in ("law", "paper"):
            raise ValueError(f"norm must be 'law' or 'paper', got {self.norm!r}")
        if self.op_code not in ("scalar", "onehot"):
            raise ValueError(f"op_code must be 'scalar' or 'onehot', got {self.op_code!r}")
        table = (op_code_table(self.ops, self.op_code, arch=self.arch) if self.table is None
                 else self.table)
        if sorted(table) != sorted(self.ops) or len({len(v) for v in table.values()}) != 1:
            raise ValueError(f"operator-code table {table} does not fit the operators "
                             f"{list(self.ops)}")
        object.__setattr__(self, "table", {k: tuple(float(x) for x in v) for k, v in table.items()})
        dim = gamma_dim(self.ops) if self.gamma_dim is None else self.gamma_dim
        if dim not in (0, 1) or isinstance(dim, bool):
            raise ValueError(f"gamma_dim must be 0 or 1, got {dim!r}")
        if dim == 0 and not len(next(iter(self.table.values()))):
            raise ValueError("a code without a γ component needs an operator code (several "
                             "operators)")
        object.__setattr__(self, "gamma_dim", int(dim))
        const = (const_gamma_table(self.ops, self.norm) if dim else {}) if self.const is None \
            else self.const
        if not set(const) <= set(self.ops):
            raise ValueError(f"constant-γ operators {sorted(set(const) - set(self.ops))} are "
                             f"not operators of the model {list(self.ops)}")
        object.__setattr__(self, "const", {k: float(v) for k, v in const.items()})
        missing = [o for o in self.ops if self.gamma_dim and not operators.get(o).has_gamma
                   and o not in self.const]
        if missing:
            raise ValueError(f"{missing} have no parameter (fixed-effect operators): the code "
                             "needs a constant for their γ component")

    @classmethod
    def from_config(cls, cfg) -> "GammaCoder":
        """The coder a :class:`model.config.ModelConfig` records (table, constants, γ size)."""
        return cls(cfg.ops, cfg.norm, cfg.op_code, table=cfg.op_codes, const=cfg.const_gamma,
                   gamma_dim=cfg.gamma_dim, arch=cfg.arch)

    @property
    def dim(self) -> int:
        return self.gamma_dim + len(next(iter(self.table.values())))

    def uses_gamma(self, op: str) -> bool:
        """Whether the code (so the output) of ``op`` depends on γ (False: a fixed-effect
        operator, or a degradation this model is blind to)."""
        op = operators.get(op).name
        if op not in self.ops:
            raise ValueError(f"this model knows {list(self.ops)}, not {op!r}")
        return bool(self.gamma_dim) and op not in self.const

    def check(self, op: str, gamma):
        """γ as the code takes it: a float for an operator whose γ is used (:func:`check_domain`),
        None for a fixed-effect operator (γ must be None or NaN), and for a degradation whose γ is
        ignored the value if one is given (checked against the operator's domain, not its
        range), else None."""
        spec = operators.get(op)
        if self.uses_gamma(op):
            return check_domain(op, gamma)
        if not spec.has_gamma:
            if not _is_missing(gamma):
                raise ValueError(f"{spec.name} has no parameter (a fixed-effect operator); "
                                 f"pass gamma=None, got {gamma!r}")
            return None
        return None if _is_missing(gamma) else check_domain(op, gamma)

    def __call__(self, ops, gammas) -> torch.Tensor:
        """Codes (N, dim) for sequences of operator names and γ values."""
        rows = []
        for op, g in zip(ops, gammas):
            if op not in self.ops:
                raise ValueError(f"this model knows {list(self.ops)}, not {op!r}")
            g = self.check(op, g)
            row = list(self.table[op])
            if self.gamma_dim:
                spec = operators.get(op)
                if op in self.const:
                    t = self.const[op]
                else:
                    t = spec.normalize(g) if self.norm == "law" else spec.paper_normalize(g)
                row = [t, *row]
            rows.append(row)
        return torch.tensor(rows, dtype=torch.float32).reshape(len(rows), self.dim)

    def to_dict(self) -> dict:
        return {"ops": list(self.ops), "norm": self.norm, "op_code": self.op_code,
                "table": {k: list(v) for k, v in self.table.items()},
                "const": dict(self.const), "gamma_dim": self.gamma_dim}
