"""The issue's quality bar at the tutorial's sizes (seeded; a few seconds each)."""

import pytest
import torch

from neuraltrader import AR1, IIDNormal, NeuralTrader, fit, generate_sequences, seeded

N, M, T, L = 1000, 100, 20, 4
FRESH = 20_000


def train_and_test(process, epochs, seed):
    train = generate_sequences(process.sample(N, T, seed=seed), L)
    valid = generate_sequences(process.sample(M, T, seed=seed + 1), L)
    fresh_x, fresh_y = generate_sequences(process.sample(FRESH, T, seed=seed + 2), L)
    with seeded(seed):
        model = NeuralTrader(L, 5)
        fit(model, train, valid, epochs=epochs, progress=False, generator=seed)
    with torch.no_grad():
        gains = (model.eval()(fresh_x) * fresh_y).reshape(FRESH, T - L)
    return gains, process.oracle_position(fresh_x) * fresh_y


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 100])
def test_momentum_policy_earns_97_percent_of_the_oracle(seed):
    # measured over seeds 0-4 and 100: capture 98.0% (seed 3) to 99.7% (seed 0)
    gains, oracle = train_and_test(AR1(0.2), epochs=250, seed=seed)
    assert float(gains.mean()) >= 0.97 * float(oracle.mean())


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 100])
def test_no_edge_is_learned_from_iid_returns(seed):
    gains, _ = train_and_test(IIDNormal(), epochs=500, seed=seed)
    # measured over seeds 0-4 and 100: t-statistics between -1.25 and 1.89
    per_series = gains.mean(1)  # windows of one series overlap: average them first
    standard_error = per_series.std() / FRESH**0.5
    assert abs(float(per_series.mean())) < 3 * float(standard_error)
