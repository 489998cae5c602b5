"""The typed configuration of a model: what a checkpoint records and :func:`model.train.train`
builds from its arguments (replaces the hand-kept dict and the resume key list)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import operators

#: the operator order of the code before operator-code tables were stored (format v1): the
#: scalar operator code of a v1 checkpoint is 0.1 × (position in this tuple + 1)
V1_OP_ORDER = ("l0", "wls", "rtv", "rgf", "wmf", "llf")

#: what only says how a run is executed, not what it trains: these may differ on --resume (the
#: first run's values stay; each resume is listed in ``resumes``)
RUNTIME_KEYS = ("mode", "data", "code", "resumes")


def op_code_table(ops, op_code: str, order=None) -> dict[str, list[float]]:
    """The code components that follow the normalised γ for each operator of a model.

    One operator: none. Several: ``"scalar"``, the authors' single number per operator: the
    code of their joint models (``operators.get(name).paper_code``: L0 .1, WLS .2, RTV .3,
    RGF .4, WMF .5, LLF .6, ...), or with ``order`` 0.1 × the position (1-based) in ``order``
    (how the first version numbered them: :data:`V1_OP_ORDER`); ``"onehot"``, one component
    per operator of the model.
    """
    ops = list(ops)
    if len(ops) == 1:
        return {ops[0]: []}
    if op_code == "scalar":
        if order is not None:
            missing = [o for o in ops if o not in order]
            if missing:
                raise ValueError(f"no scalar operator code for {missing}")
            return {o: [0.1 * (tuple(order).index(o) + 1)] for o in ops}
        table = {}
        for o in ops:
            code = getattr(operators.get(o), "paper_code", None)
            if code is None:
                raise ValueError(f"{o} has no operator code in the authors' joint models; use "
                                 "--op-code onehot")
            table[o] = [float(code)]
        values = [v[0] for v in table.values()]
        if len(set(values)) != len(values):
            raise ValueError(f"operators {ops} share a scalar code ({table}); use --op-code onehot")
        return table
    if op_code == "onehot":
        return {o: [1.0 if j == k else 0.0 for j in range(len(ops))] for k, o in enumerate(ops)}
    raise ValueError(f"op_code must be 'scalar' or 'onehot', got {op_code!r}")


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines a trained model (stored as ``config`` in its checkpoint).

    ``arch`` is a name of :mod:`model.registry` (``decouple``, ``norm:7``, ``realtime``, ...);
    ``width``/``dilations`` the base network's; ``norm``/``op_code``/``op_codes`` the γ code
    (``op_codes``: operator → code components after γ, stored so that a model never depends on
    the position of an operator in :data:`operators.NAMES`); ``gamma`` the γ of a network
    trained at one γ; ``trained_range`` the drawn γ extremes per operator; ``preset`` the
    training preset (dict); the rest is provenance.
    """

    arch: str
    ops: tuple[str, ...]
    width: int
    dilations: tuple[int, ...]
    norm: str = "law"
    op_code: str = "scalar"
    op_codes: dict = field(default_factory=dict)
    mode: str = "grouped"
    init: str = "paper"
    residual: bool = False
    gamma: float | None = None
    lowres: int | None = None
    trained_range: dict = field(default_factory=dict)
    preset: dict = field(default_factory=dict)
    seed: int = 0
    data: str = ""
    data_digest: str = ""
    code: str = ""
    resumes: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "ops", tuple(self.ops))
        object.__setattr__(self, "dilations", tuple(int(d) for d in self.dilations))
        object.__setattr__(self, "resumes", tuple(self.resumes))
        if not self.op_codes:
            object.__setattr__(self, "op_codes", op_code_table(self.ops, self.op_code))
        if sorted(self.op_codes) != sorted(self.ops):
            raise ValueError(f"the operator-code table names {sorted(self.op_codes)}, the model "
                             f"{sorted(self.ops)}")

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """From a checkpoint's ``config`` (any format; a v1 config gets the v1 code table)."""
        if not isinstance(d, dict) or "arch" not in d or "ops" not in d:
            raise ValueError("a model config needs at least 'arch' and 'ops'")
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if "op_codes" not in d:  # written before the table was stored: the v1 order
            kw["op_codes"] = op_code_table(d["ops"], d.get("op_code", "scalar"), V1_OP_ORDER)
        return cls(**kw)

    def to_dict(self) -> dict:
        """Plain data (lists, not tuples; no None-valued optional entries that v1 lacked)."""
        d = asdict(self)
        d["ops"], d["dilations"], d["resumes"] = list(self.ops), list(self.dilations), \
            [dict(r) for r in self.resumes]
        d["op_codes"] = {k: list(v) for k, v in self.op_codes.items()}
        if d["lowres"] is None:
            del d["lowres"]
        if not d["resumes"]:
            del d["resumes"]
        return d

    def differences(self, other: "ModelConfig") -> list[str]:
        """What ``other`` would change in this (recorded) configuration, runtime keys aside."""
        a, b = self.to_dict(), other.to_dict()
        diffs = []
        for k in sorted(set(a) | set(b)):
            if k in RUNTIME_KEYS:
                continue
            x, y = a.get(k), b.get(k)
            if k == "preset" and isinstance(x, dict) and isinstance(y, dict):
                diffs += [f"preset.{j}: {x.get(j)!r} recorded, {y.get(j)!r} given"
                          for j in sorted(set(x) | set(y)) if j != "workers" and x.get(j) != y.get(j)]
            elif x != y:
                diffs.append(f"{k}: {x!r} recorded, {y!r} given")
        return diffs
