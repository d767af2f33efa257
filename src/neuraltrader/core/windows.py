"""Turn a returns panel into (window, next return) pairs and per-day policy inputs."""

from __future__ import annotations

import torch

from .._checks import check_choice, check_int, check_tensor
from ..errors import DataError
from .signals import FEATURE_NAMES, ex_ante_volatility, momentum_features

FEATURE_SETS = {"returns": 1, "momentum": len(FEATURE_NAMES)}  # name -> features per day F


def generate_sequences(returns: torch.Tensor, lag: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every length-``lag`` window of each series and the return that follows it.

    Parameters
    ----------
    returns
        Returns panel of shape ``(N, T)``: N series of T periods, oldest first.
    lag
        Window length L, ``1 <= L < T``.

    Returns
    -------
    windows : torch.Tensor
        Shape ``(N * K, L)`` with K = T - L. Rows are series-major: the K windows of
        series 0 in time order, then those of series 1, and so on. Each window is
        ordered oldest first, so ``windows[:, -1]`` is the latest return.
    targets : torch.Tensor
        Shape ``(N * K,)``: the return right after each window.

    Examples
    --------
    >>> windows, targets = generate_sequences(torch.arange(6.0).reshape(1, 6), lag=4)
    >>> windows.tolist(), targets.tolist()
    ([[0.0, 1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0]], [4.0, 5.0])
    """
    check_tensor("returns", returns, ndim=2)
    check_int("lag", lag, minimum=1)
    n_series, length = returns.shape
    if length <= lag:
        raise DataError(
            f"series length T={length} must exceed the lag L={lag} "
            "(each window needs a following return)"
        )
    n_windows = length - lag
    windows = returns.unfold(1, lag, 1)[:, :n_windows]  # (N, K, L), a view
    targets = returns[:, lag:]  # (N, K)
    return windows.reshape(n_series * n_windows, lag), targets.reshape(-1)


def scaled_windows(
    returns: torch.Tensor, lag: int, span: int = 60
) -> tuple[torch.Tensor, torch.Tensor]:
    """Volatility-scaled inputs for every (asset, period), aligned in calendar time.

    The input series is ``z[:, s] = returns[:, s] / sigma[:, s]`` with ``sigma`` from
    :func:`ex_ante_volatility`, so ``z[:, s]`` uses returns up to s only. The window for
    period t holds ``z[:, t-L:t]``: it ends with the return *before* t, and neither the
    window nor its scaling sees ``returns[:, t]``, the target traded on.

    Parameters
    ----------
    returns
        ``(A, T)`` simple returns, NaN before an asset starts.
    lag
        Window length L.

    Returns
    -------
    windows : torch.Tensor
        ``(A, T, L)``; NaN rows where no full window exists yet.
    valid : torch.Tensor
        ``(A, T)`` bool: the window and the target ``returns[:, t]`` are finite.
    """
    check_int("lag", lag, minimum=1)
    if returns.ndim != 2:
        raise DataError(f"returns must be 2-D (A, T), got shape {tuple(returns.shape)}")
    inputs = returns / ex_ante_volatility(returns, span)
    padded = torch.cat((torch.full((len(returns), lag), torch.nan), inputs), 1)
    windows = padded.unfold(1, lag, 1)[:, : returns.shape[1]]  # window t: inputs t-L .. t-1
    valid = torch.isfinite(windows).all(-1) & torch.isfinite(returns)
    return windows, valid


def feature_count(name: str) -> int:
    """Features per day F of a feature set: 1 for ``"returns"``, 8 for ``"momentum"``."""
    return FEATURE_SETS[check_choice("features", name, tuple(FEATURE_SETS))]


def feature_windows(
    returns: torch.Tensor, lag: int, span: int = 60, features: str = "returns"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Policy inputs for every (asset, period): the last L days of a feature set.

    The window for period t holds the F features of days t-L .. t-1, flattened day-major
    (day t-L's F features first, day t-1's last); every feature of day s uses returns up
    to s only, so the window never sees ``returns[:, t]``. Returns padded with one
    trailing NaN column therefore give, at column T, the window for the day after the
    data (``valid`` is False there: its return is unknown).

    Parameters
    ----------
    returns
        ``(A, T)`` simple returns, NaN before an asset starts.
    lag
        Window length L, in days.
    span
        Span of the EWMA volatility that scales the returns.
    features
        ``"returns"``: the volatility-scaled returns of :func:`scaled_windows` (F = 1,
        the same tensors); ``"momentum"``: the 8 features of
        :func:`~neuraltrader.core.signals.momentum_features` (F = 8, order as
        :data:`~neuraltrader.core.signals.FEATURE_NAMES`).

    Returns
    -------
    windows : torch.Tensor
        ``(A, T, L * F)``; NaN where a day of the window has no feature yet. With
        ``"momentum"``, the first window with every feature is at an asset's day
        313 + L (counted from its first return).
    valid : torch.Tensor
        ``(A, T)`` bool: every window entry and the target ``returns[:, t]`` are finite.

    Examples
    --------
    >>> returns = 0.01 * torch.randn(2, 400, generator=torch.Generator().manual_seed(0))
    >>> windows, valid = feature_windows(returns, lag=5, features="momentum")
    >>> tuple(windows.shape), int(valid[0].sum())
    ((2, 400, 40), 82)
    """
    n_features = feature_count(features)
    if features == "returns":
        return scaled_windows(returns, lag, span)
    check_int("lag", lag, minimum=1)
    rows = momentum_features(returns, span)  # (A, T, F): day s from returns up to s
    n_assets, length = returns.shape
    padding = torch.full((n_assets, lag, n_features), torch.nan, dtype=rows.dtype)
    padded = torch.cat((padding.to(rows.device), rows), dim=1)
    # window t: rows t-L .. t-1, unfolded as (A, T, F, L); day-major needs (A, T, L, F)
    windows = padded.unfold(1, lag, 1)[:, :length].transpose(-1, -2)
    windows = windows.reshape(n_assets, length, lag * n_features)
    valid = torch.isfinite(windows).all(-1) & torch.isfinite(returns)
    return windows, valid


__all__ = [
    "FEATURE_SETS", "ex_ante_volatility", "feature_count", "feature_windows",
    "generate_sequences", "scaled_windows",
]
