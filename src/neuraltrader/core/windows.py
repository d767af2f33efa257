"""Turn a returns panel into (window, next return) pairs."""

from __future__ import annotations

import pandas as pd
import torch

from .._checks import check_int, check_tensor
from ..errors import DataError


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


def ex_ante_volatility(returns: torch.Tensor, span: int = 60) -> torch.Tensor:
    """Volatility forecast for each period from the returns *before* it.

    An exponentially weighted standard deviation (pandas ``ewm(span=span)``, at least
    ``span // 2`` observations) of ``returns[:, :t]``, stored at column ``t``: the
    estimate a trader knows before period t's return is seen.

    Parameters
    ----------
    returns
        ``(A, T)``; NaN before an asset's first return (it is skipped).

    Returns
    -------
    torch.Tensor
        ``(A, T)``, NaN where fewer than ``span // 2`` earlier returns exist.
    """
    check_int("span", span, minimum=2)
    frame = pd.DataFrame(returns.double().numpy().T)
    spread = frame.ewm(span=span, min_periods=max(2, span // 2)).std().shift(1)
    return torch.from_numpy(spread.to_numpy().T.copy()).to(returns.dtype)


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


__all__ = ["ex_ante_volatility", "generate_sequences", "scaled_windows"]
