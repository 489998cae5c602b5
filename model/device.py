"""Which torch device to run on, with a clear message for one that does not exist here."""
from __future__ import annotations

import torch


def available() -> list[str]:
    """The devices this machine offers: ``cpu``, then ``cuda:0`` ... when CUDA works."""
    devs = ["cpu"]
    if torch.cuda.is_available():
        devs += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devs.append("mps")
    return devs


def resolve(device: str | None) -> str:
    """``device`` checked (None: ``cuda`` when available, else ``cpu``); a ValueError lists the
    devices that exist here."""
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not isinstance(device, str):
        device = str(device)
    here = ", ".join(available())
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"unknown device {device!r}; devices here: {here}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: CUDA is not available on this machine "
                             f"(torch {torch.__version__}); devices here: {here}")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} does not exist; devices here: {here}")
    elif dev.type == "mps":
        if "mps" not in available():
            raise ValueError(f"device {device!r} is not available; devices here: {here}")
    elif dev.type != "cpu":
        raise ValueError(f"device {device!r} is not supported; devices here: {here}")
    return device
