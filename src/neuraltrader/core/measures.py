"""The one definition of the figures every layer computes: volatility, Sharpe ratio,
turnover, and the division behind every risk-adjusted ratio.

Training objectives, statistics, metrics and the backtest all use these functions, so a
Sharpe ratio means the same thing wherever it is reported. They are torch functions
(differentiable, any float dtype, leading batch axes kept); NumPy callers convert with
``torch.from_numpy(np.asarray(x, dtype=np.float64))`` and back with ``.numpy()``.

Zero risk: a risk figure counts as zero when it is zero up to rounding, that is at most
:data:`ZERO_RISK_ULPS` machine epsilons times the largest magnitude in the series
(:func:`is_zero_risk`). A constant series then has zero risk whatever its value: its
computed sd is not 0 but the rounding error of its mean, which torch's pairwise sums
keep below 5 eps × max|value| even over 10⁶ values (measured, float32 and float64).
A ratio whose risk is zero is 0, not ±inf or 10¹⁶: a strategy that never moves shows
no measurable risk-adjusted return.
"""

from __future__ import annotations

import torch

from ..errors import DataError

ZERO_RISK_ULPS = 16  # rounding allowance of is_zero_risk, in machine epsilons


def is_zero_risk(spread: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """Where ``spread`` is zero up to rounding: ``spread <= ZERO_RISK_ULPS * eps * scale``.

    Parameters
    ----------
    spread
        ``(...)`` a non-negative risk figure (sd, downside deviation, drawdown).
    scale
        ``(...)`` or a number: the magnitude of the values it was computed from, usually
        their ``max |value|``; the rule is thus unchanged by scaling the series.

    Returns
    -------
    torch.Tensor
        ``(...)`` bool. ``eps`` is that of ``spread``'s dtype, or of float32 for half
        precision, in which torch's reductions accumulate.
    """
    eps = torch.finfo(torch.promote_types(spread.dtype, torch.float32)).eps
    return spread <= ZERO_RISK_ULPS * eps * scale


def safe_divide(
    numerator: torch.Tensor, denominator: torch.Tensor, zero: torch.Tensor | None = None
) -> torch.Tensor:
    """``numerator / denominator``, and 0 where the denominator is zero risk.

    Parameters
    ----------
    numerator, denominator
        Broadcastable tensors.
    zero
        Bool, broadcastable: where the denominator counts as zero (e.g. from
        :func:`is_zero_risk`); default ``denominator == 0``.

    Returns
    -------
    torch.Tensor
        The broadcast shape. Gradients stay finite where ``zero`` holds (they are 0
        there), so a flat policy trains without NaNs.
    """
    zero = denominator == 0 if zero is None else zero
    safe = torch.where(zero, torch.ones_like(denominator), denominator)
    return torch.where(zero, torch.zeros_like(numerator), numerator / safe)


def volatility(returns: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Per-period volatility: the sample sd (``n - 1``) of ``returns`` along ``dim``, and
    exactly 0 where it is zero risk (fewer than two periods, or an sd that is zero up to
    rounding with scale ``max |returns|``, see :func:`is_zero_risk`).

    ``returns (..., T, ...)`` → ``(...)`` with ``dim`` removed; differentiable, with a
    zero (not NaN) gradient where the risk is zero.
    """
    if returns.shape[dim] < 2:
        return torch.zeros_like(returns.sum(dim))
    variance = returns.var(dim)
    with torch.no_grad():
        zero = is_zero_risk(variance.sqrt(), returns.abs().amax(dim))
    # sqrt has an infinite slope at 0: keep zero-risk entries off it
    spread = torch.where(zero, torch.ones_like(variance), variance).sqrt()
    return torch.where(zero, torch.zeros_like(spread), spread)


def sharpe_ratio(returns: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Per-period Sharpe ratio ``mean / sd`` of ``returns`` along ``dim`` (no risk-free
    rate; sd with ``n - 1``), 0 where the risk is zero (see :func:`volatility`).

    Parameters
    ----------
    returns
        ``(..., T, ...)`` per-period returns, any float dtype.
    dim
        The time axis.

    Returns
    -------
    torch.Tensor
        ``(...)`` with ``dim`` removed. Not annualised: multiply by
        ``sqrt(periods_per_year)``. Differentiable; finite gradients for a flat series.
    """
    return safe_divide(returns.mean(dim), volatility(returns, dim))


def turnover(positions: torch.Tensor, series: int = 1, *, entry: bool) -> torch.Tensor:
    """Mean absolute change of position per period, ``mean |Δ position|``.

    Parameters
    ----------
    positions
        ``(..., B)`` with ``B = series * T``: ``series`` equal-length blocks, each one
        series' (or asset's) positions in time order (series-major). Changes are taken
        within a block, never across two series.
    series
        The number of blocks.
    entry
        Whether the first period counts as a change from flat (``|position_0|``, the
        trade that opens the position). ``True``: T changes per series, the rule of
        trading costs and of the backtest's reported turnover
        (:func:`neuraltrader.evaluation.metrics.performance`). ``False``: only the
        T - 1 changes between consecutive periods, the rule of the training penalty
        (:func:`neuraltrader.core.objectives.turnover`), whose batch starts mid-history.

    Returns
    -------
    torch.Tensor
        ``(...)``: the mean over series and periods; 0 when there is no change to count.
    """
    if series < 1 or positions.shape[-1] % series:
        raise DataError(
            f"{positions.shape[-1]} positions do not split into {series} equal series"
        )
    by_series = positions.unflatten(-1, (series, -1))
    flat = torch.zeros_like(by_series[..., :1]) if entry else None
    changes = by_series.diff(dim=-1, prepend=flat).abs()
    return changes.sum((-1, -2)) / max(changes.shape[-1] * series, 1)


__all__ = [
    "ZERO_RISK_ULPS", "is_zero_risk", "safe_divide", "sharpe_ratio", "turnover", "volatility",
]
