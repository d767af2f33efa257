"""Tests and p-values for learned policies (pure functions over tensors and arrays)."""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats as scipy_stats

from ._checks import check_int
from .errors import DataError

SIGNIFICANCE = 0.05  # level at which a replica counts as significant


def per_series_gains(
    positions: torch.Tensor, targets: torch.Tensor, n_series: int
) -> torch.Tensor:
    """Mean realised return of each series: windows of one series overlap and share
    returns, so a series (not a window) is the independent unit.

    Parameters
    ----------
    positions
        ``(..., n_series * K)`` positions in the series-major order of
        :func:`~neuraltrader.generate_sequences`.
    targets
        ``(n_series * K,)`` or ``(..., n_series * K)``, the returns that follow.

    Returns
    -------
    torch.Tensor
        ``(..., n_series)``.
    """
    check_int("n_series", n_series, minimum=1)
    gains = positions * targets
    if gains.shape[-1] % n_series:
        raise DataError(f"{gains.shape[-1]} windows do not split into {n_series} series")
    return gains.reshape(*gains.shape[:-1], n_series, -1).mean(-1)


def one_sided_p_value(samples: torch.Tensor | np.ndarray) -> np.ndarray:
    """p-value of a t-test of H0: mean <= 0 against H1: mean > 0 along the last axis.

    ``samples (..., M)`` are independent observations (e.g. per-series mean gains);
    the statistic is ``mean / (sd / sqrt(M))`` with M - 1 degrees of freedom. A sample
    without spread gives 0 if its mean is positive and 1 otherwise (a flat policy is
    no evidence of an edge). Returns an array of shape ``(...)``.
    """
    values = np.asarray(samples, dtype=np.float64)
    count = values.shape[-1]
    if count < 2:
        raise DataError(f"a t-test needs at least 2 observations, got {count}")
    mean = values.mean(-1)
    spread = values.std(-1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_stat = mean / (spread / np.sqrt(count))
    p_value = scipy_stats.t.sf(t_stat, df=count - 1)
    return np.where(spread > 0, p_value, np.where(mean > 0, 0.0, 1.0))


__all__ = ["SIGNIFICANCE", "one_sided_p_value", "per_series_gains"]
