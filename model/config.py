"""The typed configuration of a model: what a checkpoint records and :func:`model.train.train`
builds from its :class:`model.train_config.TrainConfig` and the data (replaces the hand-kept dict
and the resume key list)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import operators

#: the operator order of the code before operator-code tables were stored (format v1): the
#: scalar operator code of a v1 checkpoint is 0.1 × (position in this tuple + 1)
V1_OP_ORDER = ("l0", "wls", "rtv", "rgf", "wmf", "llf")

#: what only says how a run is executed, not what it trains: these may differ on --resume (the
#: first run's values stay; each resume is listed in ``resumes``)
RUNTIME_KEYS = ("mode", "data", "code", "resumes")


#: the value of the γ component for an operator whose γ the code ignores (a fixed-effect
#: operator, or a degradation in a model of several operators): ``--norm paper``: the authors'
#: 0.02 (paper.md §2 "Operators with no parameter: constant 0.02"; §5 "γ1 = 0.02 constant");
#: ``--norm law``: 0.5, the same point of the law's [0, 1] scale (0.02 is the log-centre of the
#: authors' [0.002, 0.2]; L0's λ = 0.02 normalises to 0.5)
CONST_GAMMA = {"paper": 0.02, "law": 0.5}

#: the training losses (``ModelConfig.loss_norm``, ``--loss-norm``)
LOSS_NORMS = ("none", "identity")

def is_degradation(op: str) -> bool:
    return operators.get(op).kind == "degradation"


def gamma_dim(ops) -> int:
    """1: the code starts with the normalised γ; 0: a model of several operators that are all
    degradations (the authors' 4-restoration model, paper.md §5): the code is the operator's
    code only, blind to the corruption level."""
    ops = list(ops)
    return 0 if len(ops) > 1 and all(is_degradation(o) for o in ops) else 1


def const_gamma_table(ops, norm: str = "law") -> dict[str, float]:
    """Operators whose γ the code ignores, with the constant fed in its place (see
    :data:`CONST_GAMMA`): every fixed-effect operator (γ law "none"), and, in a model of several
    operators, every degradation (the authors disable the restoration parameters in their joint
    models, ECCV 2018 §4.5, paper.md §5). Empty when the code has no γ component
    (:func:`gamma_dim` 0): there every operator's γ is ignored."""
    if norm not in CONST_GAMMA:
        raise ValueError(f"norm must be 'law' or 'paper', got {norm!r}")
    ops = list(ops)
    if not gamma_dim(ops):
        return {}
    c = CONST_GAMMA[norm]
    return {o: c for o in ops
            if not operators.get(o).has_gamma or (len(ops) > 1 and is_degradation(o))}


def code_table_name(ops, op_code: str = "scalar", arch: str | None = None) -> str:
    """Which of the authors' code tables a model of ``ops`` takes (``op_code="scalar"``).

    * several degradations only: ``"restoration"`` (deblock .1, rain .2, SR .3, denoise .4);
    * ``arch="realtime"`` with operators that all have a ``realtime`` code (the ten TPAMI
      filters, paper.md §7): ``"realtime"`` (L0 .1, WLS .2, RTV .3, LLF .4, LLF remap .5,
      WLS enh .6, style .7, pencil .8, RGF .9, WMF 1.0);
    * otherwise ``"joint"`` (ECCV/TPAMI 6- and 10-operator models, paper.md §5: L0 .1, WLS .2,
      RTV .3, RGF .4, WMF .5, shock/LLF .6, deblock .7, rain .8, SR .9, denoise 1.0) when every
      operator has one and no two share it; else ``"realtime"`` when every operator has one
      (the ten TPAMI filters under any arch, e.g. the Table 12 ablation); else a ValueError.

    ``""`` for one operator (no operator code) and ``"onehot"`` for ``op_code="onehot"``.
    """
    ops = list(ops)
    if len(ops) == 1:
        return ""
    if op_code == "onehot":
        return "onehot"
    if op_code != "scalar":
        raise ValueError(f"op_code must be 'scalar' or 'onehot', got {op_code!r}")

    def covers(name):
        codes = [operators.get(o).codes.get(name) for o in ops]
        return None not in codes and len(set(codes)) == len(codes)

    if all(is_degradation(o) for o in ops) and covers("restoration"):
        return "restoration"
    if arch is not None and str(arch).strip().lower() == "realtime" and covers("realtime"):
        return "realtime"
    if covers("joint"):
        return "joint"
    if covers("realtime"):
        return "realtime"
    have = {o: dict(operators.get(o).codes) for o in ops}
    raise ValueError(f"no code table of the authors' models gives {ops} distinct codes "
                     f"(their codes: {have}; 'joint' and 'realtime' tables: paper.md §5, §7); "
                     "use --op-code onehot")


def op_code_table(ops, op_code: str, order=None, *, arch: str | None = None
                  ) -> dict[str, list[float]]:
    """The code components that follow the normalised γ for each operator of a model.

    One operator: none. Several: ``"scalar"``, the authors' single number per operator from
    the table :func:`code_table_name` picks (``"joint"``, ``"realtime"`` for the realtime arch
    over the TPAMI filters, ``"restoration"`` for degradations only: ``operators.get(name).codes``),
    or with ``order`` 0.1 × the position (1-based) in ``order`` (how the first version numbered
    them: :data:`V1_OP_ORDER`); ``"onehot"``, one component per operator of the model.
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
        name = code_table_name(ops, op_code, arch)
        return {o: [float(operators.get(o).codes[name])] for o in ops}
    if op_code == "onehot":
        return {o: [1.0 if j == k else 0.0 for j in range(len(ops))] for k, o in enumerate(ops)}
    raise ValueError(f"op_code must be 'scalar' or 'onehot', got {op_code!r}")


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines a trained model (stored as ``config`` in its checkpoint).

    ``arch`` is a name of :mod:`model.registry` (``decouple``, ``norm:7``, ``realtime``, ...);
    ``width``/``dilations`` the base network's; ``norm``/``op_code``/``op_codes`` the γ code
    (``op_codes``: operator → code components after γ, stored so that a model never depends on
    the position of an operator in :data:`operators.NAMES`); ``gamma_dim`` (1: the code starts
    with the normalised γ; 0: it is the operator code only, the 4-restoration model) and
    ``const_gamma`` (operator → the constant in place of γ: fixed-effect operators, and
    degradations in a model of several operators, blind to the corruption level), derived from
    the operators, ``norm`` and ``arch`` when not given (:func:`gamma_dim`,
    :func:`const_gamma_table`, :func:`code_table_name`); ``gamma`` the γ of a network
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
    gamma_dim: int | None = None
    const_gamma: dict | None = None
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
    #: ``"none"``: the paper's loss, the MSE over the batch; ``"identity"``: each sample's MSE
    #: divided by its operator's identity MSE (``loss_weights``: operator → 1 / the mean MSE
    #: between the inputs and the targets of its training pairs), so that every operator of a
    #: joint model starts from a loss of about 1 (a diagnostic: an operator whose identity MSE
    #: is small otherwise gets a small share of the gradient)
    loss_norm: str = "none"
    loss_weights: dict = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "ops", tuple(self.ops))
        object.__setattr__(self, "dilations", tuple(int(d) for d in self.dilations))
        object.__setattr__(self, "resumes", tuple(self.resumes))
        if not self.op_codes:
            object.__setattr__(self, "op_codes", op_code_table(self.ops, self.op_code,
                                                               arch=self.arch))
        if sorted(self.op_codes) != sorted(self.ops):
            raise ValueError(f"the operator-code table names {sorted(self.op_codes)}, the model "
                             f"{sorted(self.ops)}")
        if self.gamma_dim is None:
            object.__setattr__(self, "gamma_dim", gamma_dim(self.ops))
        if self.const_gamma is None:
            object.__setattr__(self, "const_gamma", const_gamma_table(self.ops, self.norm)
                               if self.gamma_dim else {})
        object.__setattr__(self, "const_gamma",
                           {str(k): float(v) for k, v in dict(self.const_gamma).items()})
        if self.gamma_dim not in (0, 1) or isinstance(self.gamma_dim, bool):
            raise ValueError(f"gamma_dim must be 0 or 1, got {self.gamma_dim!r}")
        if self.loss_norm not in LOSS_NORMS:
            raise ValueError(f"loss_norm must be one of {list(LOSS_NORMS)}, got "
                             f"{self.loss_norm!r}")
        object.__setattr__(self, "loss_weights",
                           {str(k): float(v) for k, v in dict(self.loss_weights).items()})
        if (self.loss_norm == "identity") != bool(self.loss_weights) or \
                (self.loss_weights and sorted(self.loss_weights) != sorted(self.ops)):
            raise ValueError("loss_weights must name every operator of the model exactly when "
                             f"loss_norm is 'identity' (got {self.loss_norm!r}, "
                             f"{sorted(self.loss_weights)})")
        if not set(self.const_gamma) <= set(self.ops):
            raise ValueError(f"const_gamma names {sorted(set(self.const_gamma) - set(self.ops))}"
                             f", not operators of the model {list(self.ops)}")

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """From a checkpoint's ``config`` (any format; a v1 config gets the v1 code table)."""
        if not isinstance(d, dict) or "arch" not in d or "ops" not in d:
            raise ValueError("a model config needs at least 'arch' and 'ops'")
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if "op_codes" not in d:  # written before the table was stored: the v1 order
            kw["op_codes"] = op_code_table(d["ops"], d.get("op_code", "scalar"), V1_OP_ORDER)
        if "gamma_dim" not in d:  # written before joint models: every γ normalised, as then
            # (fixed-effect operators could not be trained then; their constant if named)
            kw["gamma_dim"] = 1
            kw["const_gamma"] = {o: CONST_GAMMA.get(d.get("norm", "law"), 0.5)
                                 for o in d["ops"] if not operators.get(o).has_gamma}
        return cls(**kw)

    def to_dict(self) -> dict:
        """Plain data (lists, not tuples; no None-valued optional entries that v1 lacked)."""
        d = asdict(self)
        d["ops"], d["dilations"], d["resumes"] = list(self.ops), list(self.dilations), \
            [dict(r) for r in self.resumes]
        d["op_codes"] = {k: list(v) for k, v in self.op_codes.items()}
        d["const_gamma"] = dict(self.const_gamma)
        if d["lowres"] is None:
            del d["lowres"]
        if not d["resumes"]:
            del d["resumes"]
        if d["loss_norm"] == "none":  # configs written before it existed read unchanged
            del d["loss_norm"], d["loss_weights"]
        return d

    def differences(self, other: "ModelConfig") -> list[str]:
        """What ``other`` would change in this (recorded) configuration, runtime keys and
        ``preset.workers`` aside: ``"key: recorded → given"``, mappings compared entry by entry
        (``preset.iterations: 6 → 8``; ``(none)`` for an entry one side lacks)."""
        diffs: list[str] = []
        a, b = self.to_dict(), other.to_dict()
        _differences("", {k: v for k, v in a.items() if k not in RUNTIME_KEYS},
                     {k: v for k, v in b.items() if k not in RUNTIME_KEYS}, diffs)
        return diffs


_NONE = object()


def _shown(v) -> str:
    text = "(none)" if v is _NONE else repr(v)
    return text if len(text) <= 120 else text[:117] + "..."


def _differences(key: str, x, y, out: list) -> None:
    """Append ``key: x → y`` for each leaf where ``x`` and ``y`` differ (dicts entry by entry)."""
    if isinstance(x, dict) and isinstance(y, dict):
        for k in sorted(set(x) | set(y), key=str):
            if key == "preset" and k == "workers":
                continue
            _differences(f"{key}.{k}" if key else str(k), x.get(k, _NONE), y.get(k, _NONE), out)
    elif x != y:
        out.append(f"{key}: {_shown(x)} → {_shown(y)}")
