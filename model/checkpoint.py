"""Checkpoints: everything needed to rebuild, resume or apply a model, written atomically."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from .data import GammaCoder
from .hdrnet import HDRNet
from .networks import OperatorNet

#: architectures trained at one γ (the others learn every γ)
PER_GAMMA = ("single", "hdrnet")
ARCHS = ("decouple", "single", "concat", "hdrnet")

CKPT_FORMAT = "decouple-ops model v1"


def build_model(config: dict) -> tuple[OperatorNet | HDRNet, GammaCoder]:
    """The network and γ coder a config describes (see :func:`model.train.train`)."""
    coder = GammaCoder(tuple(config["ops"]), config.get("norm", "law"), config.get("op_code", "scalar"))
    if config["arch"] == "hdrnet":
        return HDRNet(lowres=config["lowres"]), coder
    net = OperatorNet(config["arch"], width=config["width"], dilations=tuple(config["dilations"]),
                      code_dim=coder.dim, mode=config.get("mode", "grouped"),
                      init=config.get("init", "paper"), residual=config.get("residual", False))
    return net, coder


def save(path, state: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": CKPT_FORMAT, **state}, tmp)
    os.replace(tmp, path)


def load(path, map_location="cpu") -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / "last.pt"
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # a truncated or foreign file
        raise ValueError(f"{path} is not a readable checkpoint ({exc})") from None
    if not isinstance(state, dict) or state.get("format") != CKPT_FORMAT:
        raise ValueError(f"{path} is not a {CKPT_FORMAT} checkpoint")
    return state
