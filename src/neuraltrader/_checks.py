"""Argument checks shared by the public functions; each raises one clear error."""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch

from .errors import ConfigError, DataError

PositionKind = Literal["long", "long_short"]
POSITION_KINDS: tuple[str, ...] = get_args(PositionKind)


def check_int(name: str, value: object, *, minimum: int) -> int:
    """Return ``value`` if it is an int ``>= minimum``, else raise ``ConfigError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_float(
    name: str,
    value: object,
    *,
    lower: float = -math.inf,
    upper: float = math.inf,
    lower_open: bool = False,
    upper_open: bool = False,
) -> float:
    """Return ``value`` as a float if it is finite and inside the given interval."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    too_low = value <= lower if lower_open else value < lower
    too_high = value >= upper if upper_open else value > upper
    if too_low or too_high:
        left = "(" if lower_open else "["
        right = ")" if upper_open else "]"
        raise ConfigError(f"{name} must lie in {left}{lower}, {upper}{right}, got {value!r}")
    return float(value)


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value  # type: ignore[return-value]


def check_position(position: object) -> PositionKind:
    """Return ``position`` if it names a position kind: ``"long"`` or ``"long_short"``."""
    return check_choice("position", position, POSITION_KINDS)  # type: ignore[return-value]


def check_tensor(name: str, value: object, *, ndim: int) -> torch.Tensor:
    """Return ``value`` if it is a finite floating tensor with ``ndim`` dimensions."""
    if not isinstance(value, torch.Tensor):
        raise DataError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.ndim != ndim:
        raise DataError(f"{name} must be {ndim}-D, got shape {tuple(value.shape)}")
    if not value.is_floating_point():
        raise DataError(f"{name} must be a floating tensor, got dtype {value.dtype}")
    finite = torch.isfinite(value)
    if not bool(finite.all()):
        bad = (~finite).nonzero()[0].tolist()
        raise DataError(
            f"{name} must be finite, found {value[tuple(bad)].item()} at index {tuple(bad)}"
        )
    return value
