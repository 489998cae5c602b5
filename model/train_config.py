"""The typed configuration of a training: one place for every setting of what is trained.

``python -m model train`` builds a :class:`TrainConfig` from ``--preset`` and its flags
(:meth:`TrainConfig.from_preset`), :func:`model.train.train` takes it, and the run's
``config.json`` (the :class:`model.config.ModelConfig` a checkpoint records) holds every one of
its fields beside what the data adds (the γ range drawn, the data file and its digest, the code
version); ``--resume`` compares the two (:meth:`model.config.ModelConfig.differences`). How a
run executes (device, mixed precision, batch mode, progress, ``stop_at``) is not part of it: those
are :func:`model.train.train`'s keywords and may change between sessions of one run.
"""
from __future__ import annotations

from dataclasses import MISSING, dataclass, fields, replace

import operators

from . import registry
from .config import LOSS_NORMS, ModelConfig
from .presets import Preset, get_preset

#: the γ normalisations (``--norm``) and operator codes (``--op-code``)
NORMS = ("law", "paper")
OP_CODES = ("scalar", "onehot")
INITS = ("paper", "conv")


@dataclass(frozen=True)
class TrainConfig:
    """What a training trains: the operators, the architecture (a :mod:`model.registry` name)
    and its γ, the preset (iterations, width, batch, learning-rate schedule, ...), the seed, the
    γ code (``norm``, ``op_code``), the base network's ``init`` and ``residual`` output (the
    preset's when not given) and the loss (``loss_norm``).

    Frozen and checked when made: names are resolved (operators case-insensitively, the arch to
    its registry name, ``preset`` given by name to its :class:`Preset`), a model of several
    operators takes the preset's joint schedule (:meth:`Preset.for_ops`), and the architecture's
    rules (one operator, ``gamma`` needed or refused, ...) are checked by its registry entry
    (:meth:`model.registry.Arch.check`), so a config that exists can be trained.
    """

    ops: tuple[str, ...]
    preset: Preset
    arch: str = "decouple"
    gamma: float | None = None
    seed: int = 0
    norm: str = "law"
    op_code: str = "scalar"
    init: str | None = None  # None: the preset's
    residual: bool | None = None  # None: the preset's
    loss_norm: str = "none"

    def __post_init__(self):
        preset = self.preset
        if isinstance(preset, str):
            preset = get_preset(preset)
        if not isinstance(preset, Preset):
            raise TypeError(f"preset must be a model.presets.Preset or its name, got "
                            f"{type(preset).__name__}")
        ops = (self.ops,) if isinstance(self.ops, str) else tuple(self.ops)
        ops = tuple(operators.get(o).name for o in ops)  # names are case-insensitive
        if not ops or len(set(ops)) != len(ops):
            raise ValueError(f"ops must name each operator once, got {list(ops)}")
        entry = registry.get(self.arch)
        for key, allowed in (("norm", NORMS), ("op_code", OP_CODES), ("loss_norm", LOSS_NORMS)):
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key} must be one of {list(allowed)}, got "
                                 f"{getattr(self, key)!r}")
        if self.init is not None and self.init not in INITS:
            raise ValueError(f"init must be one of {list(INITS)}, got {self.init!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        entry.check(ops, self.gamma, norm=self.norm, iterations=preset.iterations)
        object.__setattr__(self, "ops", ops)
        object.__setattr__(self, "arch", entry.name)
        object.__setattr__(self, "init", preset.init if self.init is None else self.init)
        object.__setattr__(self, "residual",
                           preset.residual if self.residual is None else bool(self.residual))
        # a joint model takes the preset's joint schedule (recorded as the run's lr_steps)
        object.__setattr__(self, "preset", preset.for_ops(len(ops)))

    @property
    def entry(self) -> registry.Arch:
        """The architecture's registry entry (how it is built and trained)."""
        return registry.get(self.arch)

    @classmethod
    def from_preset(cls, preset: Preset | str = "small", **overrides) -> "TrainConfig":
        """The config ``python -m model train --preset PRESET --flag value ...`` trains.

        ``overrides`` are this class's fields (``ops`` is needed) and :class:`Preset` fields
        (``iterations``, ``width``, ``crop``, ``batch``, ``lr``, ``workers``, ``batch_crop``,
        ...); None leaves a setting at the preset's, as an absent flag does. As on the command
        line, ``lr`` also sets ``lr_final`` to ``lr / 10`` and scales the schedule's steps
        (``lr_steps``, ``joint_lr_steps``) in proportion, unless they are given too, and ``crop``
        turns ``batch_crop`` off unless that is given (a fixed crop was asked for).
        """
        base = get_preset(preset) if isinstance(preset, str) else preset
        if not isinstance(base, Preset):
            raise TypeError(f"preset must be a model.presets.Preset or its name, got "
                            f"{type(base).__name__}")
        own = {f.name for f in fields(cls)} - {"preset"}
        # init and residual are the config's own (the preset's are their defaults and stay)
        preset_keys = {f.name for f in fields(Preset)} - {"name"} - own
        unknown = sorted(set(overrides) - own - preset_keys)
        if unknown:
            raise TypeError(f"unknown training setting(s) {', '.join(unknown)}: a TrainConfig "
                            f"takes {', '.join(sorted(own))} and the preset's "
                            f"{', '.join(sorted(preset_keys))}")
        given = {k: v for k, v in overrides.items() if k in preset_keys and v is not None}
        lr = given.get("lr")
        if lr is not None:
            given.setdefault("lr_final", lr / 10)
            for k in ("lr_steps", "joint_lr_steps"):
                given.setdefault(k, tuple((f, r * lr / base.lr) for f, r in getattr(base, k)))
        if given.get("crop") is not None:
            given.setdefault("batch_crop", False)
        mine = {k: v for k, v in overrides.items() if k in own}
        return cls(preset=base.with_(**given), **mine)

    def to_dict(self) -> dict:
        """Plain data, as the run's ``config.json`` records these fields."""
        return {"ops": list(self.ops), "arch": self.arch, "gamma": self.gamma,
                "seed": self.seed, "norm": self.norm, "op_code": self.op_code,
                "init": self.init, "residual": self.residual, "loss_norm": self.loss_norm,
                "preset": self.preset.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """The config a run recorded (its ``config.json``, or a checkpoint's ``config``): the
        same training again (with the recorded preset, whose crop is the one the run trained
        with, capped to the data's stored pairs)."""
        if not isinstance(d, dict) or "arch" not in d or "ops" not in d:
            raise ValueError("a training config needs at least 'arch' and 'ops'")
        p = dict(d.get("preset") or {})
        known = {f.name for f in fields(Preset)}
        unknown = sorted(set(p) - known)
        if unknown:
            raise ValueError(f"the recorded preset has settings this version does not know: "
                             f"{', '.join(unknown)}")
        lacking = [f.name for f in fields(Preset)
                   if f.name not in p and f.default is MISSING and f.default_factory is MISSING]
        if lacking:
            raise ValueError(f"the recorded preset lacks {', '.join(lacking)} (written by an "
                             "early version): it cannot be trained again as recorded")
        p["dilations"] = tuple(p["dilations"])
        own = {f.name for f in fields(cls)} - {"preset"}
        return cls(preset=Preset(**p), **{k: v for k, v in d.items() if k in own})

    def model_config(self, **recorded) -> ModelConfig:
        """The :class:`ModelConfig` of the network this trains, which a checkpoint and
        ``config.json`` record; ``recorded`` adds what the run learns as it starts
        (``trained_range``, ``data``, ``data_digest``, ``code``, ``loss_weights``) and how it
        runs (``mode``)."""
        p = self.preset
        return ModelConfig(
            arch=self.arch, ops=self.ops, width=p.width, dilations=p.dilations, norm=self.norm,
            op_code=self.op_code, init=self.init, residual=self.residual, gamma=self.gamma,
            lowres=p.hdrnet_lowres if self.arch == "hdrnet" else None, preset=p.to_dict(),
            seed=self.seed, loss_norm=self.loss_norm, **recorded)

    def with_preset(self, **kw) -> "TrainConfig":
        """This config with preset fields changed (None: unchanged)."""
        return replace(self, preset=self.preset.with_(**kw))
