"""Architectures: name → how to build it (phase-1 form; see docs/model.md)."""
from __future__ import annotations

from .data import GammaCoder
from .hdrnet import HDRNet
from .networks import OperatorNet

#: architectures trained at one γ (the others learn every γ)
PER_GAMMA = ("single", "hdrnet")
ARCHS = ("decouple", "single", "concat", "hdrnet")


def build_model(config: dict):
    """The network and γ coder a config describes (see :func:`model.train.train`)."""
    coder = GammaCoder(tuple(config["ops"]), config.get("norm", "law"), config.get("op_code", "scalar"))
    if config["arch"] == "hdrnet":
        return HDRNet(lowres=config["lowres"]), coder
    net = OperatorNet(config["arch"], width=config["width"], dilations=tuple(config["dilations"]),
                      code_dim=coder.dim, mode=config.get("mode", "grouped"),
                      init=config.get("init", "paper"), residual=config.get("residual", False))
    return net, coder
