import math

import pytest
import torch

from neuraltrader import DataError, generate_sequences
from neuraltrader.errors import ConfigError


def test_windows_are_series_major_and_match_a_plain_loop():
    returns = torch.randn(3, 9, generator=torch.Generator().manual_seed(0))
    lag = 4
    windows, targets = generate_sequences(returns, lag)
    expected_windows, expected_targets = [], []
    for series in returns:
        for start in range(9 - lag):
            expected_windows.append(series[start : start + lag])
            expected_targets.append(series[start + lag])
    assert windows.shape == (3 * 5, 4) and targets.shape == (15,)
    assert torch.equal(windows, torch.stack(expected_windows))
    assert torch.equal(targets, torch.stack(expected_targets))


def test_the_target_never_sits_in_its_own_window():
    returns = torch.arange(40.0).reshape(2, 20)
    windows, targets = generate_sequences(returns, 4)
    assert torch.equal(targets, windows[:, -1] + 1)  # the next period, always


@pytest.mark.parametrize("length", [4, 3])
def test_series_not_longer_than_the_lag_is_rejected(length):
    with pytest.raises(DataError, match=f"T={length} must exceed the lag L=4"):
        generate_sequences(torch.zeros(2, length), 4)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_returns_are_rejected_with_their_position(bad):
    returns = torch.zeros(3, 10)
    returns[1, 7] = bad
    with pytest.raises(DataError, match=r"returns must be finite, found .* at index \(1, 7\)"):
        generate_sequences(returns, 4)


@pytest.mark.parametrize("shape", [(10,), (2, 3, 10)])
def test_returns_must_be_two_dimensional(shape):
    with pytest.raises(DataError, match=r"returns must be 2-D, got shape"):
        generate_sequences(torch.zeros(shape), 4)


def test_integer_returns_and_bad_lag_are_rejected():
    with pytest.raises(DataError, match="floating"):
        generate_sequences(torch.zeros(2, 10, dtype=torch.long), 4)
    with pytest.raises(ConfigError, match="lag must be an integer >= 1, got 0"):
        generate_sequences(torch.zeros(2, 10), 0)
    with pytest.raises(DataError, match="torch.Tensor"):
        generate_sequences([[0.0] * 10], 4)
