"""Turn a returns panel into (window, next return) pairs."""

from __future__ import annotations

import torch

from ._checks import check_int, check_tensor
from .errors import DataError


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



__all__ = ["generate_sequences"]
