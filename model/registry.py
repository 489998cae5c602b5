"""One registry of architectures: name → how to build it, how it is trained, what depends on γ.

``--arch`` on the command line, ``TrainConfig(arch=...)`` and the ``arch`` of a checkpoint's config are
names of this registry: plain names (``decouple``, ``single``, ``concat``, ``hdrnet``,
``realtime``, ``cresmd``, ``adafm``, ``dni``, ``norm:all``) and the Table 12 families with a layer
number K (``norm:K``, ``conv:K``, ``conv-ch1:K``, ``conv-ch2:K``; K in 1..19 as the paper numbers
the InstanceNorm layers of N_base; fewer for the short presets' fewer residual blocks).

Training schedules (:mod:`model.train`):

* ``"all"``: every γ of the ``train`` split (continuously sampled), the operator code as input;
* ``"one"``: the ``single`` split at ``--gamma`` (one network per γ);
* ``"ends"``: the ``single`` split at the two ends of the operator's γ range, half the
  iterations each; stage 0 at the low end, stage 1 at the high end (the network says which
  parameters each stage trains).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

import operators

from .config import ModelConfig
from .data import GammaCoder
from .networks import OperatorNet, Plan

#: the paper's N_base has 19 InstanceNorm layers (Table 12 numbers them 1..19, 19 the last)
PAPER_NORMS = 19
FAMILIES = ("norm", "conv", "conv-ch1", "conv-ch2")


@dataclass(frozen=True)
class Arch:
    """An architecture of the registry (see the module docstring)."""

    name: str
    build: Callable[[ModelConfig, int], nn.Module]  # (config, code dim) → network
    schedule: str = "all"  # "all" | "one" | "ends"
    needs_code: bool = True
    one_op: bool = False  # trained for one operator only
    depends: str = ""  # what depends on γ (README's methods table)
    paper: str = ""
    retune: str = ""  # what a new γ re-runs on a cached image

    @property
    def per_gamma(self) -> bool:
        """Trained at one γ (``--gamma``)."""
        return self.schedule == "one"

    def check(self, ops, gamma: float | None = None, *, norm: str = "law",
              iterations: int | None = None) -> None:
        """Refuse (ValueError, one line naming the flag) a training this architecture cannot
        do: several operators for a one-operator network; a ``gamma`` missing for a network
        trained at one γ, given to one trained on all γ or to a fixed-effect operator, or
        outside the operator's range; ``norm`` other than ``law`` or fewer than 2 ``iterations``
        for one trained at the two ends of the range. ``ops`` are operator names. The one place
        these rules are checked (:class:`model.train_config.TrainConfig` calls it)."""
        ops = list(ops)
        if self.one_op and len(ops) != 1:
            raise ValueError(f"--arch {self.name} trains one operator, got {ops}")
        spec = operators.get(ops[0])
        if self.per_gamma and not spec.has_gamma:
            # a fixed-effect operator has one output per image: trained on its 'train' pairs
            if gamma is not None:
                raise ValueError(f"{spec.name} has no parameter (a fixed-effect operator): "
                                 "no --gamma")
        elif self.per_gamma:
            if gamma is None:
                raise ValueError(f"--arch {self.name} needs exactly one operator and --gamma")
            spec.check_gamma(gamma)
        elif gamma is not None:
            raise ValueError(f"--gamma is for --arch {'/'.join(PER_GAMMA)}; {self.name} "
                             "trains on all γ" + (" (the two ends of the range)"
                                                  if self.schedule == "ends" else ""))
        if self.schedule == "ends":
            if norm != "law":
                raise ValueError(f"--arch {self.name} interpolates in the law's normalised γ: "
                                 "--norm law only")
            if iterations is not None and iterations < 2:
                raise ValueError(f"--arch {self.name} trains two end points: --iterations >= 2")


def _base(cfg: ModelConfig, code_dim: int, plan, name: str) -> OperatorNet:
    return OperatorNet(plan, width=cfg.width, dilations=cfg.dilations, code_dim=code_dim,
                       mode=cfg.mode, init=cfg.init, residual=cfg.residual, name=name)


def norm_layers(dilations) -> int:
    """The InstanceNorm layers of a base network with these dilations (one after each conv but
    the output conv): 19 for the paper's seven residual blocks (:data:`PAPER_NORMS`); the K of
    ``norm:K`` and ``conv:K`` counts them."""
    return 5 + 2 * len(dilations)


def _n_convs(cfg: ModelConfig) -> int:
    return norm_layers(cfg.dilations) + 1


def _table12(family: str, k: int | None, name: str):
    def build(cfg: ModelConfig, code_dim: int):
        n_norms = _n_convs(cfg) - 1
        if k is not None and not 1 <= k <= n_norms:
            raise ValueError(f"{name}: K must be in 1..{n_norms} for a base network with "
                             f"{len(cfg.dilations)} residual blocks ({PAPER_NORMS} for the "
                             f"paper's 7)")
        if family == "norm":
            norms = range(n_norms) if k is None else [k - 1]
            plan = Plan(norms=frozenset(norms))
        else:
            plan = Plan(convs={k - 1: {"conv": "full", "conv-ch1": "ch1", "conv-ch2": "ch2"}[family]})
        return _base(cfg, code_dim, plan, name)
    return build


def _hdrnet(cfg: ModelConfig, code_dim: int):
    from .hdrnet import HDRNet

    return HDRNet(lowres=cfg.lowres)


def _realtime(cfg: ModelConfig, code_dim: int):
    from .realtime import RealtimeNet

    return RealtimeNet(width=cfg.width, dilations=cfg.dilations, code_dim=code_dim,
                       init=cfg.init, mode=cfg.mode)


def _dni(cfg: ModelConfig, code_dim: int):
    from .dni import DNINet

    return DNINet(width=cfg.width, dilations=cfg.dilations, code_dim=code_dim, init=cfg.init,
                  residual=cfg.residual, mode=cfg.mode)


def _adafm(cfg: ModelConfig, code_dim: int):
    net = _base(cfg, code_dim, Plan(adafm=True), "adafm")
    return net


FAMILY_DOC = {
    "norm": ("only InstanceNorm K's scale and shift (2C numbers), from the code by one FC layer",
             "TPAMI 2019 §6.3.2, Table 12: norm(K)"),
    "conv": ("every weight of conv K (the conv feeding IN K), generated as in decouple",
             "TPAMI 2019 §6.3.2, Table 12: conv(K)"),
    "conv-ch1": ("an M×1×k×k slice of conv K (all outputs, input channel 1)",
                 "TPAMI 2019 §6.3.2, Table 12: conv channel1(K)"),
    "conv-ch2": ("a 1×N×k×k slice of conv K (output channel 1, all inputs)",
                 "TPAMI 2019 §6.3.2, Table 12: conv channel2(K)"),
}

_PLAIN = {
    "decouple": Arch("decouple", lambda c, m: _base(c, m, Plan.named("decouple", _n_convs(c)),
                                                    "decouple"),
                     depends="every conv weight, W = A·code + B (one FC layer per conv)",
                     paper="Fan et al., ECCV 2018 Eq. 4; TPAMI 2019 conv(all)",
                     retune="everything (first conv)"),
    "single": Arch("single", lambda c, m: _base(c, m, Plan(), "single"), schedule="one",
                   needs_code=False, one_op=True, depends="nothing (one network per γ)",
                   paper="Fan et al., ECCV 2018 Table 1 baseline", retune="—"),
    "concat": Arch("concat", lambda c, m: _base(c, m, Plan(input_planes=True), "concat"),
                   depends="the input (code tiled as extra channels)",
                   paper="TPAMI 2019 Table 3 (after Chen et al., ICCV 2017)",
                   retune="everything (input)"),
    "hdrnet": Arch("hdrnet", _hdrnet, schedule="one", needs_code=False, one_op=True,
                   depends="nothing (one network per γ)",
                   paper="Gharbi et al., SIGGRAPH 2017 (DBL); TPAMI 2019 Table 6", retune="—"),
    "realtime": Arch("realtime", _realtime,
                     depends="the last IN's 64 scales and shifts, two MLPs code→16→64",
                     paper="TPAMI 2019 §3.3, §5, Table 5",
                     retune="the last affine, ReLU and output conv"),
    "cresmd": Arch("cresmd", lambda c, m: _base(c, m, Plan(gates=True), "cresmd"),
                   depends="one scalar per residual block scaling its residual (condition net "
                           "code→32→blocks)",
                   paper="He, Dong, Qiao, ECCV 2020 (CResMD)",
                   retune="from the first residual block's addition"),
    "adafm": Arch("adafm", _adafm, schedule="ends", one_op=True,
                  depends="a depthwise 5×5 filter and bias after each conv, I + λ(f − I)",
                  paper="He, Dong, Qiao, Loy, CVPR 2019 (AdaFM)",
                  retune="everything after the first conv"),
    "dni": Arch("dni", _dni, schedule="ends", one_op=True,
                depends="every parameter, (1 − α) θ_lo + α θ_hi",
                paper="Wang, Yu, Dong, Loy, CVPR 2019 (DNI)", retune="everything"),
    "norm:all": Arch("norm:all", _table12("norm", None, "norm:all"),
                     depends="every InstanceNorm's scale and shift, one FC layer each",
                     paper="TPAMI 2019 §6.3.2, Table 12: norm(all)",
                     retune="from the first IN"),
}

#: plain names, then the families (``norm:K`` ...)
NAMES = tuple(_PLAIN) + tuple(f"{f}:K" for f in FAMILIES)
#: the first version's names (kept for imports)
ARCHS = tuple(_PLAIN)
PER_GAMMA = tuple(n for n, a in _PLAIN.items() if a.per_gamma)


def get(name: str) -> Arch:
    """The registry's entry for ``name``; an unknown name or K is a ValueError listing the
    allowed ones."""
    if not isinstance(name, str):
        raise TypeError(f"arch must be a string, got {type(name).__name__}")
    key = name.strip().lower()
    if key == "conv:all":  # TPAMI Table 12's conv(all) is the decouple network
        key = "decouple"
    if key in _PLAIN:
        return _PLAIN[key]
    m = re.fullmatch(r"(norm|conv|conv-ch1|conv-ch2):(\d+)", key)
    if m:
        family, k = m.group(1), int(m.group(2))
        if not 1 <= k <= PAPER_NORMS:
            raise ValueError(f"{name!r}: K must be in 1..{PAPER_NORMS} (the paper's "
                             f"InstanceNorm layers, {PAPER_NORMS} the last)")
        depends, paper = FAMILY_DOC[family]
        return Arch(f"{family}:{k}", _table12(family, k, f"{family}:{k}"),
                    depends=depends.replace("K", str(k)), paper=paper.replace("K", str(k)),
                    retune=f"from {'IN' if family == 'norm' else 'conv'} {k}")
    raise ValueError(f"unknown arch {name!r}; choose from {', '.join(NAMES)} "
                     f"(K in 1..{PAPER_NORMS})")


def is_per_gamma(name: str) -> bool:
    return get(name).per_gamma


def build_model(config) -> tuple[nn.Module, GammaCoder]:
    """The network and γ coder a config (a :class:`ModelConfig` or a checkpoint's dict, any
    format) describes."""
    cfg = config if isinstance(config, ModelConfig) else ModelConfig.from_dict(config)
    arch = get(cfg.arch)
    coder = GammaCoder.from_config(cfg)
    net = arch.build(cfg, coder.dim)
    return net, coder


# ------------------------------------------------------------------ untrusted checkpoints
#: bounds of an untrusted config (a checkpoint's): far above any network here (the paper's:
#: width 64, 7 blocks, dilations up to 16, HDRNet's low resolution 256), far below sizes that
#: would exhaust memory or time before the weights are compared
MAX_WIDTH = 2048
MAX_BLOCKS = 64
MAX_DILATION = 1024
LOWRES = (8, 4096)


def _int_in(cfg: dict, key: str, lo: int, hi: int, where: str) -> int:
    v = cfg.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ValueError(f"{where}: {key} must be an integer in {lo}..{hi}, got {v!r}")
    return v


def _finite_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_checkpoint(state, where: str = "the checkpoint") -> ModelConfig:
    """The :class:`ModelConfig` of an untrusted checkpoint state (already read weights-only),
    once its config is within sane bounds (:data:`MAX_WIDTH`, :data:`MAX_BLOCKS`, ...) and
    every stored tensor has the name and shape the network of that config has; else a
    ValueError with one line saying what is wrong. Nothing of the network is allocated: it is
    built on PyTorch's ``meta`` device (shapes only), so a config asking for a huge network is
    refused before any memory is taken, and a missing entry is a message, not a KeyError."""
    if not isinstance(state, dict):
        raise ValueError(f"{where} is not a dict of config and weights")
    cfg = state.get("config")
    if not isinstance(cfg, dict):
        raise ValueError(f"{where} has no model config ('config' is "
                         f"{'missing' if cfg is None else type(cfg).__name__}): it was not "
                         "written by model.train")
    weights = state.get("model")
    if not isinstance(weights, dict) or not weights or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()):
        raise ValueError(f"{where} has no weights ('model' must map names to tensors)")
    it = state.get("iteration", 0)
    if it is not None and (isinstance(it, bool) or not isinstance(it, int) or it < 0):
        raise ValueError(f"{where}: iteration must be an integer >= 0, got {it!r}")
    at = f"{where}'s config"
    missing = [k for k in ("arch", "ops", "width", "dilations") if k not in cfg]
    if missing:
        raise ValueError(f"{at} lacks {', '.join(missing)}")
    if not isinstance(cfg["arch"], str):
        raise ValueError(f"{at}: arch must be a name, got {cfg['arch']!r}")
    entry = get(cfg["arch"])
    ops = cfg["ops"]
    if not isinstance(ops, (list, tuple)) or not ops or not all(isinstance(o, str) for o in ops):
        raise ValueError(f"{at}: ops must be a non-empty list of operator names, got {ops!r}")
    names = [operators.get(o).name for o in ops]  # unknown names listed
    if len(set(names)) != len(names):
        raise ValueError(f"{at}: ops names an operator twice: {list(ops)}")
    _int_in(cfg, "width", 1, MAX_WIDTH, at)
    dil = cfg["dilations"]
    if not isinstance(dil, (list, tuple)) or not 1 <= len(dil) <= MAX_BLOCKS or not all(
            isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= MAX_DILATION
            for d in dil):
        shown = f"{len(dil)} entries" if isinstance(dil, (list, tuple)) and len(dil) > 8 \
            else repr(dil)
        raise ValueError(f"{at}: dilations must be 1..{MAX_BLOCKS} integers in "
                         f"1..{MAX_DILATION}, got {shown}")
    if cfg.get("lowres") is not None:
        _int_in(cfg, "lowres", *LOWRES, at)
    for key, allowed in (("norm", ("law", "paper")), ("op_code", ("scalar", "onehot")),
                         ("mode", ("grouped", "linear", "loop")), ("init", ("paper", "conv"))):
        if key in cfg and cfg[key] not in allowed:
            raise ValueError(f"{at}: {key} must be one of {', '.join(allowed)}, "
                             f"got {cfg[key]!r}")
    if "residual" in cfg and not isinstance(cfg["residual"], bool):
        raise ValueError(f"{at}: residual must be true or false, got {cfg['residual']!r}")
    if cfg.get("gamma") is not None and not _finite_number(cfg["gamma"]):
        raise ValueError(f"{at}: gamma must be a finite number, got {cfg['gamma']!r}")
    for key in ("trained_range", "preset", "op_codes", "const_gamma"):
        if cfg.get(key) is not None and not isinstance(cfg[key], dict):
            raise ValueError(f"{at}: {key} must be a mapping, got {type(cfg[key]).__name__}")
    codes = cfg.get("op_codes") or {}
    if any(not isinstance(v, (list, tuple)) or len(v) > len(operators.ALL)
           or not all(_finite_number(c) for c in v) for v in codes.values()):
        raise ValueError(f"{at}: op_codes must map operators to short lists of finite numbers")
    iterations = (cfg.get("preset") or {}).get("iterations", 0)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
        raise ValueError(f"{at}: preset.iterations must be an integer >= 0, got {iterations!r}")
    try:
        config = ModelConfig.from_dict(cfg)
    except (TypeError, KeyError, IndexError, AttributeError) as exc:
        raise ValueError(f"{at} is not a model config of this version: {exc}") from None
    for op in config.ops:  # the range every γ-dependent operator was trained on
        r = config.trained_range.get(op)
        uses = operators.get(op).has_gamma and config.gamma_dim and op not in config.const_gamma
        if r is None and uses:
            raise ValueError(f"{at}: trained_range lacks {op}")
        if r is not None and (not isinstance(r, (list, tuple)) or len(r) not in (0, 2)
                              or not all(_finite_number(v) for v in r)
                              or (len(r) == 2 and r[0] > r[1]) or (uses and len(r) != 2)):
            raise ValueError(f"{at}: trained_range of {op} must be [low, high], got {r!r}")
    coder = GammaCoder.from_config(config)
    with torch.device("meta"):  # shapes only: no memory whatever the config says
        net = entry.build(config, coder.dim)
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    stored = {k: tuple(v.shape) for k, v in weights.items()}
    described = (f"a {config.arch} network of its config (width {config.width}, "
                 f"{len(config.dilations)} blocks)")
    lacking = [k for k in expected if k not in stored]
    extra = [k for k in stored if k not in expected]
    wrong = [k for k in expected if k in stored and stored[k] != expected[k]]
    if lacking or extra or wrong:
        if wrong:
            k = wrong[0]
            what = f"model[{k!r}] is {stored[k]}, the network's is {expected[k]}"
        elif lacking:
            what = f"model lacks {', '.join(map(repr, lacking[:3]))}" + \
                (f" and {len(lacking) - 3} more" if len(lacking) > 3 else "")
        else:
            what = f"model has {', '.join(map(repr, extra[:3]))} that it does not" + \
                (f" (and {len(extra) - 3} more)" if len(extra) > 3 else "")
        raise ValueError(f"the checkpoint's weights do not fit {described} (written by another "
                         f"architecture or version, or edited?): {what}")
    return config
