"""Training presets: ``smoke`` (seconds, CI), ``small`` (minutes on 2 CPU cores), ``medium``
(hours on 2 CPU cores: the ten-filter joint models), ``paper`` (GPU)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from .networks import PAPER_DILATIONS


@dataclass(frozen=True)
class Preset:
    name: str
    width: int
    dilations: tuple[int, ...]
    crop: int  # random training crop (even); with batch_crop: the side of estimate batches
    batch: int
    iterations: int
    lr: float = 0.01
    lr_final: float = 0.001
    lr_drop: float = 0.85  # fraction of iterations after which lr_final is used
    # a schedule of several steps, ((fraction, lr), ...): from ``fraction`` of the iterations on,
    # ``lr``, with a new Adam optimiser at each step (the authors re-create it at every change,
    # even to the same rate); when given it replaces lr_drop/lr_final. Empty: lr_drop/lr_final
    lr_steps: tuple = ()
    # the schedule of a model of several operators (``lr_steps`` of the preset a joint training
    # uses: :meth:`for_ops`); empty: the same schedule as one operator's
    joint_lr_steps: tuple = ()
    workers: int = 0  # DataLoader worker processes
    init: str = "paper"  # weight-net init (see model.networks.OperatorNet)
    residual: bool = False  # output = input + residual (TPAMI realtime model) instead of direct
    # DBL/HDRNet baseline: its low-resolution stream's input size (published: 256) and its
    # constant Adam learning rate (published: 1e-4). The short presets use the training crop's
    # size (no upsampling of 64² crops to 256²) and 1e-3: at 1e-4, 600 iterations of L0 leave
    # it at the identity's PSNR (25.8 dB vs 26.9 dB at 1e-3).
    hdrnet_lowres: int = 256
    hdrnet_lr: float = 1e-4
    log_every: int = 10
    ckpt_every: int = 200
    # the authors' loader (var_custom_collate): samples are read whole and each batch is cropped,
    # at a random place per sample, to the smallest height and width in it (instead of a fixed
    # random ``crop`` per sample)
    batch_crop: bool = False

    def __post_init__(self):
        for k in ("width", "batch", "iterations", "crop", "log_every", "ckpt_every",
                  "hdrnet_lowres"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{k} must be a positive integer, got {v!r}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers!r}")
        if not self.dilations or any(not isinstance(d, int) or d < 1 for d in self.dilations):
            raise ValueError(f"dilations must be positive integers, got {self.dilations!r}")
        for k in ("lr", "lr_final", "hdrnet_lr"):
            v = getattr(self, k)
            if not (isinstance(v, (int, float)) and 0 < v < float("inf")):
                raise ValueError(f"{k} must be a positive finite number, got {v!r}")
        if not 0 <= self.lr_drop <= 1:
            raise ValueError(f"lr_drop must be in [0, 1], got {self.lr_drop!r}")
        if not isinstance(self.batch_crop, bool):
            raise ValueError(f"batch_crop must be True or False, got {self.batch_crop!r}")
        for k in ("lr_steps", "joint_lr_steps"):
            object.__setattr__(self, k, _steps(k, getattr(self, k)))

    def lr_schedule(self, length: int) -> list[tuple[int, float]]:
        """The learning rate of a stage of ``length`` iterations as (first iteration, lr) pairs
        counted from the stage's start: (0, lr), then each step of ``lr_steps`` (or the drop to
        ``lr_final`` after ``lr_drop`` of it). A step's iteration is ``floor(fraction ×
        length)``, exact for fractions of whole epochs (90/130 of 130 epochs: epoch 90)."""
        if not self.lr_steps:
            return [(0, self.lr), (int(self.lr_drop * length), self.lr_final)]
        return [(0, self.lr)] + [(math.floor(f * length + 1e-9), lr) for f, lr in self.lr_steps]

    def for_ops(self, n_ops: int) -> "Preset":
        """The preset a model of ``n_ops`` operators trains with: a joint model (``n_ops`` > 1)
        takes ``joint_lr_steps`` as its ``lr_steps`` when the preset has them (the authors'
        schedule for their joint models, :data:`AUTHORS_JOINT_STEPS`); the joint field itself
        is dropped either way, so that a run's recorded preset names the schedule it used."""
        if n_ops > 1 and self.joint_lr_steps and not self.lr_steps:
            return replace(self, lr_steps=self.joint_lr_steps, joint_lr_steps=())
        return replace(self, joint_lr_steps=())

    def to_dict(self) -> dict:
        d = {**asdict(self), "dilations": list(self.dilations)}
        if not d["batch_crop"]:  # runs recorded before it existed resume unchanged
            del d["batch_crop"]
        for k in ("lr_steps", "joint_lr_steps"):  # likewise
            if d[k]:
                d[k] = [list(step) for step in d[k]]
            else:
                del d[k]
        return d

    def with_(self, **kw) -> "Preset":
        return replace(self, **{k: v for k, v in kw.items() if v is not None})


def _steps(name: str, steps) -> tuple:
    """``steps`` as a tuple of (fraction, lr) float pairs, fractions increasing in (0, 1]."""
    try:
        out = tuple((float(f), float(lr)) for f, lr in steps)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be (fraction, lr) pairs, got {steps!r}") from None
    fr = [f for f, _ in out]
    if any(not 0 < f <= 1 for f in fr) or fr != sorted(set(fr)) or \
            any(not 0 < lr < float("inf") for _, lr in out):
        raise ValueError(f"{name} needs increasing fractions in (0, 1] and positive finite "
                         f"rates, got {steps!r}")
    return out


#: the authors' schedule of their joint models (train_10_operator_model*.py, paper.md §2): 130
#: epochs, Adam 0.01, re-created at 0.001 at epoch 90, at 1e-5 at epoch 110 and again at 1e-5
#: at epoch 120 (the second re-creation resets Adam's moments)
AUTHORS_JOINT_STEPS = ((90 / 130, 1e-3), (110 / 130, 1e-5), (120 / 130, 1e-5))
#: the authors' joint budget relative to one operator's: 130 epochs against 100, of the same
#: fixed length (int(15983 / batch) iterations whatever the data size)
AUTHORS_JOINT_RATIO = 1.3

PRESETS = {
    # a few seconds: for CI and the tests. It checks that everything runs, not that anything is
    # learnt: 30 iterations at the paper's learning rate (0.01) often end with a loss *above* the
    # first one (Adam's first steps overshoot); judge quality with `small` or `paper`
    "smoke": Preset("smoke", width=8, dilations=(2, 4), crop=32, batch=4, iterations=30,
                    log_every=5, ckpt_every=15, residual=True, hdrnet_lowres=32, hdrnet_lr=1e-3),
    # under 3 minutes on 2 CPU cores: the full 20-conv layout, narrower, small crops, and the
    # residual output of the TPAMI realtime model (with the ECCV direct output, such a budget
    # does not even reach the identity: the InstanceNorm layers hide each image's colour, which
    # the network only relearns over a long training)
    "small": Preset("small", width=16, dilations=PAPER_DILATIONS, crop=64, batch=8,
                    iterations=3000, log_every=20, ckpt_every=500, residual=True,
                    hdrnet_lowres=64, hdrnet_lr=1e-3),
    # the authors' setting (train_1_operator.py): width 64, batch 12, Adam 0.01 then 0.001 for
    # the last 15 %, 100 epochs of int(15983 / 12) iterations; samples are read whole and each
    # batch is cropped to its smallest image, as the authors' loader did with VOC images (a
    # dataset of one size: whole samples; sr's smaller pairs crop the batches they are in). For a
    # GPU. Joint models: the authors' 130-epoch schedule (AUTHORS_JOINT_STEPS).
    "paper": Preset("paper", width=64, dilations=PAPER_DILATIONS, crop=128, batch=12,
                    iterations=100 * (15983 // 12), workers=4, log_every=100, ckpt_every=2000,
                    batch_crop=True, joint_lr_steps=AUTHORS_JOINT_STEPS),
    # between small and paper, for the ten-filter joint models of TPAMI Tables 6 and 12 on 2
    # CPU cores (docs/results.md, "Medium scale"): small's width, 128² training crops (the
    # stored pairs' and the test crops' size: the dilation-16 blocks see the image, not the
    # padding, as they do on 64² crops) in batches of 4 (twice the pixels of a small batch), and
    # the authors' joint schedule; 18,462 one-operator iterations, so that a joint model trains
    # 1.3 x that = 24,000 (benchmarks._experiments: the authors' budget ratio)
    "medium": Preset("medium", width=16, dilations=PAPER_DILATIONS, crop=128, batch=4,
                     iterations=18462, log_every=50, ckpt_every=1000, residual=True,
                     hdrnet_lowres=128, hdrnet_lr=1e-3, joint_lr_steps=AUTHORS_JOINT_STEPS),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose from {list(PRESETS)}") from None
