import math

import pytest
import torch

from neuraltrader import DataError, generate_sequences
from neuraltrader.core.signals import FEATURE_NAMES, momentum_features
from neuraltrader.core.windows import FEATURE_SETS, feature_count, feature_windows, scaled_windows
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


# ---------------------------------------------------------------- feature windows


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit-for-bit equal, NaN where NaN."""
    return bool(torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num()))


def _panel(seed=0, length=420):
    returns = 0.01 * torch.randn(2, length, generator=torch.Generator().manual_seed(seed))
    returns[1, :25] = math.nan  # the second asset starts later
    return returns


def test_returns_feature_windows_are_the_scaled_windows():
    returns = _panel()
    windows, valid = feature_windows(returns, lag=7, span=30)
    expected_windows, expected_valid = scaled_windows(returns, lag=7, span=30)
    assert _same(windows, expected_windows) and torch.equal(valid, expected_valid)


def test_momentum_windows_are_day_major_rows_of_the_features():
    returns, lag = _panel(), 6
    windows, valid = feature_windows(returns, lag, span=60, features="momentum")
    rows = momentum_features(returns, span=60)
    assert windows.shape == (2, 420, lag * 8) and windows.dtype == torch.float32
    for t in (lag, 200, 350, 419):
        assert _same(windows[:, t].reshape(2, lag, 8), rows[:, t - lag : t])
    assert bool(windows[:, :lag].isnan().all())  # no full window before day L
    # the first feature of every day is the scaled input of the returns windows
    scaled, _ = scaled_windows(returns, lag, span=60)
    assert _same(windows.reshape(2, 420, lag, 8)[..., 0], scaled)
    assert torch.equal(valid, windows.isfinite().all(-1) & returns.isfinite())
    first = valid.long().argmax(1).tolist()
    assert first == [313 + lag, 25 + 313 + lag]  # every feature known for L days


@pytest.mark.parametrize("features", list(FEATURE_SETS))
def test_a_trailing_nan_column_gives_the_next_days_window(features):
    """What ``predict`` relies on: data cut at day T, padded, give the window for T."""
    full = _panel(seed=1, length=400)
    length = 399
    padded = torch.cat((full[:, :length], torch.full((2, 1), math.nan)), 1)
    windows, valid = feature_windows(padded, 10, features=features)
    expected, _ = feature_windows(full, 10, features=features)
    cut, cut_valid = feature_windows(full[:, :length], 10, features=features)
    assert bool(windows[:, length].isfinite().all())
    assert torch.equal(windows[:, length], expected[:, length])
    assert _same(windows[:, :length], cut) and torch.equal(valid[:, :length], cut_valid)
    assert not bool(valid[:, length].any())  # its return is not known yet


def test_feature_sets_and_unknown_names():
    assert FEATURE_SETS == {"returns": 1, "momentum": 8}
    assert feature_count("momentum") == len(FEATURE_NAMES) == 8
    with pytest.raises(ConfigError, match="features must be one of 'returns', 'momentum'; "
                                          "got 'prices'"):
        feature_windows(torch.zeros(1, 30), 5, features="prices")
    with pytest.raises(ConfigError, match="lag must be an integer >= 1, got 0"):
        feature_windows(torch.zeros(1, 30), 0, features="momentum")
