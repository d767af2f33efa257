import math

import pytest
import torch

from neuraltrader import AR1, ConfigError, IIDNormal, generate_sequences


def tutorial_gen_ma1(shocks: torch.Tensor, rho: float) -> torch.Tensor:
    """The tutorial's closed form, kept here only to compare against."""
    exponents = torch.arange(shocks.shape[1]).flip(0)
    powers = (rho**exponents).unsqueeze(0)
    return (powers * shocks).cumsum(1) / powers


def test_ar1_matches_the_tutorial_formula_on_short_series():
    rho, seed = 0.2, 3
    ours = AR1(rho).sample(50, 20, seed=seed)
    shocks = torch.randn(50, 20, generator=torch.Generator().manual_seed(seed))
    expected = tutorial_gen_ma1(shocks.double(), rho).float()
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_ar1_follows_its_recursion_from_zero():
    rho, seed = -0.5, 4
    values = AR1(rho).sample(3, 30, seed=seed)
    shocks = torch.randn(3, 30, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(values[:, 0], shocks[:, 0])
    torch.testing.assert_close(values[:, 1:], rho * values[:, :-1] + shocks[:, 1:])


@pytest.mark.parametrize("rho", [0.01, 0.5, 0.99, -0.5])
def test_ar1_stays_finite_on_long_series(rho):
    values = AR1(rho).sample(4, 5000, seed=0)
    assert torch.isfinite(values).all()
    # the tutorial's formula breaks here: rho**4999 underflows, leaving 0/0
    if abs(rho) < 0.9:
        shocks = torch.randn(4, 5000, generator=torch.Generator().manual_seed(0))
        assert not torch.isfinite(tutorial_gen_ma1(shocks, rho)).all()


@pytest.mark.parametrize("rho", [0.2, 0.5, -0.5])
def test_ar1_moments(rho):
    # seed 5, 400 x 2000 draws: the standard errors are ~0.001 (autocorrelation) and
    # ~0.005 (variance), so the tolerances are over 5 standard errors wide.
    values = AR1(rho).sample(400, 2000, seed=5)[:, 100:]  # drop the start at zero
    lag1 = (values[:, 1:] * values[:, :-1]).mean() / values.var()
    assert float(lag1) == pytest.approx(rho, abs=0.01)
    assert float(values.var()) == pytest.approx(AR1(rho).stationary_std**2, rel=0.03)


def test_same_seed_same_numbers_and_generator_accepted():
    first = AR1(0.2).sample(5, 10, seed=7)
    assert torch.equal(first, AR1(0.2).sample(5, 10, seed=7))
    assert torch.equal(first, AR1(0.2).sample(5, 10, seed=torch.Generator().manual_seed(7)))
    assert not torch.equal(first, AR1(0.2).sample(5, 10, seed=8))
    assert first.dtype == torch.float32 and first.shape == (5, 10)


@pytest.mark.parametrize("rho", [1.0, -1.0, 1.5, math.nan, math.inf])
def test_ar1_rejects_non_stationary_rho(rho):
    with pytest.raises(ConfigError, match=r"rho must .*got"):
        AR1(rho)


@pytest.mark.parametrize("bad", [{"scale": 0.0}, {"scale": -1.0}])
def test_processes_reject_non_positive_scale(bad):
    with pytest.raises(ConfigError, match="scale"):
        IIDNormal(**bad)


def test_sample_rejects_bad_sizes():
    with pytest.raises(ConfigError, match="n_series must be an integer >= 1, got 0"):
        IIDNormal().sample(0, 10)


def test_ar1_oracle_goes_with_the_sign_of_rho_times_last_return():
    windows = torch.tensor([[9.0, 0.0, 0.0, 1.0], [9.0, 0.0, 0.0, -2.0], [-9.0, 0, 0, 0]])
    assert AR1(0.2).oracle_position(windows).tolist() == [1.0, 0.0, 0.0]
    assert AR1(-0.2).oracle_position(windows).tolist() == [0.0, 1.0, 0.0]
    assert AR1(0.2).oracle_position(windows, "long_short").tolist() == [1.0, -1.0, 0.0]


def test_iid_oracle_follows_the_drift():
    windows = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    assert IIDNormal().oracle_position(windows).tolist() == [0.0] * 6
    assert IIDNormal(mean=0.1).oracle_position(windows).tolist() == [1.0] * 6
    assert IIDNormal(mean=-0.1).oracle_position(windows, "long_short").tolist() == [-1.0] * 6


def test_oracle_beats_every_other_policy_on_momentum_data():
    process = AR1(0.3)
    windows, targets = generate_sequences(process.sample(20_000, 10, seed=9), 4)
    oracle = (process.oracle_position(windows) * targets).mean()
    generator = torch.Generator().manual_seed(1)
    for positions in (
        torch.ones(len(targets)),
        torch.rand(len(targets), generator=generator),
        torch.sigmoid(windows[:, -1]),  # a smooth momentum rule
    ):
        assert float(oracle) > float((positions * targets).mean())
