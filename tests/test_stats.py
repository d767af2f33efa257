import numpy as np
import pytest
import torch
from scipy import stats as scipy_stats

from neuraltrader import DataError
from neuraltrader.evaluation.stats import one_sided_p_value, per_series_gains


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


# ---- multiple testing ----------------------------------------------------------------

from neuraltrader.evaluation.stats import (  # noqa: E402
    bootstrap_means,
    deflated_sharpe_ratio,
    probability_of_backtest_overfitting,
    sharpe_ratio,
    spa_test,
    stationary_bootstrap_variance,
)


def test_sharpe_ratio_and_the_flat_policy():
    returns = np.array([[0.1, 0.0], [0.3, 0.0], [0.2, 0.0]])
    assert sharpe_ratio(returns).tolist() == pytest.approx([0.2 / 0.1, 0.0])


def test_expected_maximum_sharpe_matches_simulated_noise():
    # seed 2: 300 repetitions of 20 noise strategies over 500 periods
    rng = np.random.default_rng(2)
    maxima, expected = [], []
    for _ in range(300):
        sharpes = sharpe_ratio(rng.standard_normal((500, 20)))
        maxima.append(sharpes.max())
        expected.append(deflated_sharpe_ratio(rng.standard_normal(500), sharpes)
                        ["expected_max_sharpe"])
    assert np.mean(expected) == pytest.approx(np.mean(maxima), rel=0.1)


def test_deflated_sharpe_falls_with_more_trials_and_reports_raw_kurtosis():
    rng = np.random.default_rng(3)
    returns = rng.standard_normal(1000) + 0.1
    few = deflated_sharpe_ratio(returns, rng.normal(0, 0.03, 3))
    many = deflated_sharpe_ratio(returns, rng.normal(0, 0.03, 300))
    alone = deflated_sharpe_ratio(returns, np.array([0.1]))
    assert alone["expected_max_sharpe"] == 0.0
    assert alone["deflated_sharpe_ratio"] > few["deflated_sharpe_ratio"]
    assert few["deflated_sharpe_ratio"] > many["deflated_sharpe_ratio"]
    assert few["kurtosis"] == pytest.approx(3.0, abs=0.3)  # raw, not excess
    with pytest.raises(DataError, match="at least 3 periods"):
        deflated_sharpe_ratio(np.ones(2), np.ones(3))


def test_pbo_is_about_one_half_on_noise_and_zero_with_a_real_edge():
    # one noise data set gives anything from 0.09 to 0.98; the mean over 40 is near 1/2
    # (measured 0.44-0.48 for seeds 0-2 of 40 sets of 12 strategies over 800 periods)
    rng = np.random.default_rng(4)
    runs = [probability_of_backtest_overfitting(rng.standard_normal((800, 12)), blocks=16)
            for _ in range(40)]
    assert 0.35 < np.mean([run["pbo"] for run in runs]) < 0.6
    assert runs[0]["splits"] == 12870 and len(runs[0]["logits"]) == 12870
    assert np.mean([run["degradation_slope"] for run in runs]) < 0
    noise = rng.standard_normal((1600, 12))
    edge = noise.copy()
    edge[:, 5] += 0.3
    real = probability_of_backtest_overfitting(edge, blocks=16)
    assert real["pbo"] < 0.01 and real["logit_quantiles"]["50%"] > 2
    with pytest.raises(DataError, match="N >= 2"):
        probability_of_backtest_overfitting(noise[:, :1])
    with pytest.raises(DataError, match="blocks must be even"):
        probability_of_backtest_overfitting(noise, blocks=7)


def test_stationary_bootstrap_variance_matches_its_draws():
    from arch.bootstrap import StationaryBootstrap
    from scipy.signal import lfilter

    values = lfilter([1.0], [1.0, -0.3], np.random.default_rng(0).standard_normal((400, 2)), axis=0)
    draws = StationaryBootstrap(4.0, values, seed=0).apply(lambda s: s.mean(0), 20_000)
    np.testing.assert_allclose(stationary_bootstrap_variance(values, 4.0),
                               400 * draws.var(0), rtol=0.03)


@pytest.mark.parametrize("reps", [1, 7, 700])
def test_bootstrap_means_are_arch_resamples_counted(reps, monkeypatch):
    """The same draws as arch's ``apply``, in order (chunks of draws included)."""
    from arch.bootstrap import StationaryBootstrap

    import neuraltrader.evaluation.stats as stats_module

    monkeypatch.setattr(stats_module, "BOOTSTRAP_CHUNK", 3 * 250)  # three draws a chunk
    values = np.random.default_rng(3).standard_normal((250, 3))
    resampled = StationaryBootstrap(5.0, values, seed=2).apply(lambda s: s.mean(0), reps)
    counted = bootstrap_means(StationaryBootstrap(5.0, values, seed=2), values, reps)
    assert counted.shape == (reps, 3)
    np.testing.assert_allclose(counted, resampled, rtol=0, atol=1e-14)


def test_spa_with_one_strategy_is_the_one_sided_test():
    rng = np.random.default_rng(6)
    sample = rng.standard_normal((400, 1)) + 0.08
    result = spa_test(sample, reps=4000, seed=1)
    expected = scipy_stats.ttest_1samp(sample[:, 0], 0.0, alternative="greater").pvalue
    assert result["p_value"] == pytest.approx(expected, abs=0.015)


def test_spa_does_not_reject_when_every_strategy_is_worse():
    rng = np.random.default_rng(7)
    worse = rng.standard_normal((300, 3)) - 0.3
    assert spa_test(worse, reps=300, seed=0)["p_value"] == 1.0
    assert spa_test(np.zeros((300, 2)), reps=300, seed=0)["p_value"] == 1.0


def _strategies(rng, edge):
    """Four strategies of very different volatility; the calmest may have an edge."""
    volatility = np.array([0.5, 1.0, 2.0, 4.0])
    return rng.standard_normal((400, 4)) * volatility + np.array([edge, 0, 0, 0])


def test_spa_size_on_noise_and_power_beside_volatile_strategies():
    # seed 8, 300 null draws: measured size 0.053 (seeds 0-3 of this design: 0.053-0.067);
    # the bound leaves room for the binomial noise of 300 draws (sd 0.013)
    rng = np.random.default_rng(8)
    size = np.mean([spa_test(_strategies(rng, 0.0), reps=300, seed=i)["p_value"] < 0.05
                    for i in range(300)])
    assert size <= 0.085
    # an edge of 0.1 on the calm strategy (t about 4): measured power 0.95-1.0, seeds 0-3, 8
    power = np.mean([spa_test(_strategies(rng, 0.1), reps=300, seed=i)["p_value"] < 0.05
                     for i in range(40)])
    assert power >= 0.9
