import numpy as np
import pytest
import torch
from scipy import stats as scipy_stats

from neuraltrader import DataError
from neuraltrader.stats import one_sided_p_value, per_series_gains


def test_per_series_gains_average_each_series_windows():
    positions = torch.tensor([[1.0, 1.0, 0.0, 0.0, 1.0, 0.5]])  # 3 series x 2 windows
    targets = torch.tensor([1.0, 3.0, 5.0, 5.0, -2.0, 2.0])
    assert per_series_gains(positions, targets, 3).tolist() == [[2.0, 0.0, -0.5]]
    with pytest.raises(DataError, match="6 windows do not split into 4 series"):
        per_series_gains(positions, targets, 4)


def test_p_value_is_the_one_sided_t_test():
    samples = np.random.default_rng(0).normal(0.1, 1.0, (4, 60))
    expected = [scipy_stats.ttest_1samp(row, 0.0, alternative="greater").pvalue
                for row in samples]
    np.testing.assert_allclose(one_sided_p_value(samples), expected, rtol=1e-10)


def test_p_value_without_spread_and_too_few_observations():
    assert one_sided_p_value(np.zeros((2, 5))).tolist() == [1.0, 1.0]  # a flat policy
    assert one_sided_p_value(np.full(5, 0.3)) == 0.0
    with pytest.raises(DataError, match="at least 2 observations, got 1"):
        one_sided_p_value(np.ones((3, 1)))


def test_p_values_are_uniform_under_the_null():
    # seed 1: 4,000 null samples of 100 series each; the share below 5% has sd 0.0034
    samples = np.random.default_rng(1).standard_t(df=5, size=(4000, 100))
    p_values = one_sided_p_value(samples)
    assert abs(float((p_values < 0.05).mean()) - 0.05) < 0.012
    assert abs(float((p_values < 0.5).mean()) - 0.5) < 0.03
