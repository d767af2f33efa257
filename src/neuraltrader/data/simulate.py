"""Simulated return processes that know their own Bayes-optimal position.

Each process draws a returns panel of shape ``(N, T)`` (N series, T periods) and gives,
for any window of past returns, the conditional mean of the next return and the
position that maximises expected return given that window (the "oracle").
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch
from scipy.signal import lfilter

from .._checks import PositionKind, check_float, check_int, check_position, check_tensor
from .._random import Seed, as_generator


class ReturnProcess(ABC):
    """A stochastic process of returns with a known conditional mean."""

    name: ClassVar[str] = "process"

    @abstractmethod
    def sample(self, n_series: int, length: int, *, seed: Seed = None) -> torch.Tensor:
        """Draw ``n_series`` independent series of ``length`` periods.

        Returns
        -------
        torch.Tensor
            Returns of shape ``(n_series, length)``, float32.
        """

    @abstractmethod
    def conditional_mean(self, windows: torch.Tensor) -> torch.Tensor:
        """E[r_{t+1} | window] for windows of shape ``(B, L)`` (oldest first) → ``(B,)``."""

    def oracle_position(
        self, windows: torch.Tensor, position: PositionKind = "long"
    ) -> torch.Tensor:
        """The position that maximises expected next-period return, shape ``(B,)``.

        Long-only: 1 where the conditional mean is positive, else 0 (flat when it is
        exactly zero, e.g. for iid zero-mean returns). Long-short: its sign.
        """
        check_position(position)
        mean = self.conditional_mean(check_tensor("windows", windows, ndim=2))
        if position == "long":
            return (mean > 0).to(windows.dtype)
        return torch.sign(mean)

    def _shocks(self, n_series: int, length: int, seed: Seed, scale: float) -> torch.Tensor:
        check_int("n_series", n_series, minimum=1)
        check_int("length", length, minimum=1)
        return scale * torch.randn(n_series, length, generator=as_generator(seed))


@dataclass(frozen=True)
class IIDNormal(ReturnProcess):
    """Independent normal returns, r_t ~ N(mean, scale²): nothing to predict.

    The tutorial's "random" data is ``IIDNormal()``.
    """

    mean: float = 0.0
    scale: float = 1.0
    name: ClassVar[str] = "iid"

    def __post_init__(self) -> None:
        check_float("mean", self.mean)
        check_float("scale", self.scale, lower=0.0, lower_open=True)

    def sample(self, n_series: int, length: int, *, seed: Seed = None) -> torch.Tensor:
        return self.mean + self._shocks(n_series, length, seed, self.scale)

    def conditional_mean(self, windows: torch.Tensor) -> torch.Tensor:
        return torch.full(windows.shape[:1], self.mean, dtype=windows.dtype, device=windows.device)


@dataclass(frozen=True)
class AR1(ReturnProcess):
    """AR(1) returns started at zero: x_t = rho·x_{t-1} + eps_t, x_{-1} = 0.

    This is the tutorial's momentum process (its ``gen_ma1``). It is computed by a
    recursive filter in float64, so it stays finite for long series where the
    closed form ``cumsum(rho^-t · eps) · rho^t`` underflows.

    Parameters
    ----------
    rho
        Persistence, ``|rho| < 1``.
    scale
        Standard deviation of the shocks eps_t.
    """

    rho: float = 0.2
    scale: float = 1.0
    name: ClassVar[str] = "ar1"

    def __post_init__(self) -> None:
        check_float("rho", self.rho, lower=-1.0, upper=1.0, lower_open=True, upper_open=True)
        check_float("scale", self.scale, lower=0.0, lower_open=True)

    def sample(self, n_series: int, length: int, *, seed: Seed = None) -> torch.Tensor:
        shocks = self._shocks(n_series, length, seed, self.scale)
        values = lfilter([1.0], [1.0, -self.rho], shocks.double().numpy(), axis=1)
        return torch.from_numpy(values).to(torch.float32)

    def conditional_mean(self, windows: torch.Tensor) -> torch.Tensor:
        return self.rho * windows[:, -1]

    @property
    def stationary_std(self) -> float:
        """Standard deviation of x_t once the start at zero is forgotten."""
        return self.scale / math.sqrt(1.0 - self.rho**2)


__all__ = ["AR1", "IIDNormal", "ReturnProcess"]
