"""Devices: one function turns ``train.device`` into a ``torch.device`` or refuses it."""

from __future__ import annotations

import torch

from ..errors import ConfigError

DEVICE_HELP = "cpu, cuda, cuda:N or auto"


def resolve_device(name: str) -> torch.device:
    """The device ``name`` names (``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto``:
    the first GPU if there is one, else the CPU); a device this machine does not have
    is a ``ConfigError`` before any work."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"train.device must be {DEVICE_HELP}; got {name!r}") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = device.index or 0
        if index >= count:
            raise ConfigError(
                f"train.device {name!r} is not available: this machine has "
                f"{count} CUDA device(s)"
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"train.device {name!r} is not available on this machine")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"train.device must be {DEVICE_HELP}; got {name!r}")
    return device


__all__ = ["DEVICE_HELP", "resolve_device"]
