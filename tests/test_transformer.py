"""The transformer policy: shapes, arguments, and its replicas on the vmap path."""

import math

import pandas as pd
import pytest
import torch

from neuraltrader import ConfigError, fit, seeded
from neuraltrader.core.ensemble import FunctionalEnsemble, make_ensemble
from neuraltrader.core.policies import TransformerTrader, sinusoidal_encoding
from neuraltrader.core.registry import policy_spec


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("features", [1, 3])
@pytest.mark.parametrize("layers", [1, 2])
def test_shapes_and_position_ranges(batch, features, layers):
    windows = 10 * randn(batch, 5 * features)
    for position, low in (("long", 0), ("long_short", -1)):
        with seeded(1):
            model = TransformerTrader(5, 8, layers, 2, 0.1, position, features=features)
        outputs = []
        for training in (True, False):  # dropout on, then off
            positions = model.train(training)(windows)
            assert positions.shape == (batch,)
            assert ((positions >= low) & (positions <= 1)).all()
            outputs.append(positions)
        assert not torch.equal(*outputs)  # dropout is active in train mode only


def test_defaults_and_arguments():
    model = TransformerTrader()
    assert model.init_arguments() == {"lag": 20, "hidden": 8, "layers": 2, "heads": 2,
                                      "dropout": 0.1, "position": "long", "features": 1}
    assert len(model.blocks) == 2 and model.encoding.shape == (20, 8)
    assert policy_spec("transformer").options == ("hidden", "layers", "heads", "dropout",
                                                  "position")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hidden": 6, "heads": 4}, r"hidden \(6\) must be a multiple of heads \(4\)"),
        ({"heads": 0}, "heads must be an integer >= 1, got 0"),
        ({"layers": 0}, "layers must be an integer >= 1, got 0"),
        ({"dropout": 1.0}, r"dropout must lie in \[0.0, 1.0\), got 1.0"),
        ({"position": "short"}, "position must be one of 'long', 'long_short'"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        TransformerTrader(4, **kwargs)


def test_the_positional_encoding_is_the_sinusoid():
    encoding = sinusoidal_encoding(6, 5)  # an odd width too
    assert encoding.shape == (6, 5)
    day, pair = 4, 1  # columns 2 and 3: frequency 10000^(-2/5)
    frequency = 10000 ** (-2 * pair / 5)
    torch.testing.assert_close(encoding[day, 2 * pair], torch.tensor(math.sin(day * frequency)))
    torch.testing.assert_close(encoding[day, 2 * pair + 1], torch.tensor(math.cos(day * frequency)))
    torch.testing.assert_close(encoding[0], torch.tensor([0.0, 1, 0, 1, 0]))


def test_the_last_day_attends_to_every_day_of_the_window():
    with seeded(2):
        model = TransformerTrader(6, 8, 1, 2, 0.0, features=2).eval()
    windows = randn(3, 12).requires_grad_()
    model(windows).sum().backward()
    assert (windows.grad.abs().sum(0) > 0).all()


def test_dropout_is_random_in_training_and_off_in_eval():
    windows = randn(64, 8)
    with seeded(3):
        model = TransformerTrader(8, 8, 2, 2, 0.5)
        first, second = model.train()(windows), model(windows)
    assert not torch.equal(first, second)
    model.eval()
    assert torch.equal(model(windows), model(windows))


@pytest.mark.parametrize("features", [1, 2])
def test_an_ensemble_of_transformers_equals_its_solo_replicas(features):
    """Eval mode (dropout off): replica s is the policy built under ``seeded(s)``, on
    shared windows and on one set of windows per replica."""
    template = TransformerTrader(5, 8, 2, 2, 0.1, "long_short", features=features)
    seeds = [3, 0, 7]
    ensemble = make_ensemble(template, seeds).eval()
    assert isinstance(ensemble, FunctionalEnsemble)
    assert (ensemble.features, ensemble.inputs) == (features, 5 * features)
    shared, per_replica = randn(11, 5 * features, seed=4), randn(3, 11, 5 * features, seed=5)
    with torch.no_grad():
        positions, own = ensemble(shared), ensemble(per_replica)
    assert positions.shape == own.shape == (3, 11)
    for index, seed in enumerate(seeds):
        with seeded(seed):
            solo = TransformerTrader(**template.init_arguments()).eval()
        with torch.no_grad():
            torch.testing.assert_close(positions[index], solo(shared), rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(own[index], solo(per_replica[index]), rtol=1e-4,
                                       atol=1e-5)


def test_an_ensemble_of_transformers_trains_as_its_solo_runs(momentum_windows):
    """``fit`` on the ensemble: replica s equals the policy trained alone with seed s.
    Dropout 0 (the vmap path draws other masks than a solo run) and Adam (RMSprop at
    lr 0.01 makes a transformer's training chaotic: see test_ensemble.py)."""
    train = tuple(tensor[:700] for tensor in momentum_windows["train"])
    valid = momentum_windows["valid"]
    template = TransformerTrader(4, 8, 2, 2, 0.0, "long_short")
    settings = {"epochs": 5, "batch_size": 350, "optimizer": "adam", "progress": False}
    seeds = [1, 6]
    ensemble = make_ensemble(template, seeds)
    history = fit(ensemble, train, valid, **settings)
    for index, seed in enumerate(seeds):
        with seeded(seed):
            model = TransformerTrader(**template.init_arguments())
            solo = fit(model, train, valid, generator=seed, **settings)
        replica = history[history.seed == seed].drop(columns="seed").reset_index(drop=True)
        pd.testing.assert_frame_equal(replica, solo, check_dtype=False, rtol=1e-4, atol=1e-5)
        for key, value in model.state_dict().items():
            torch.testing.assert_close(ensemble.replica(index).state_dict()[key], value,
                                       rtol=1e-4, atol=1e-5)


def test_dropout_draws_per_replica_on_the_vmap_path():
    """Two replicas with the same weights (the same seed cannot repeat, so the weights
    are copied) draw different dropout masks in training."""
    ensemble = make_ensemble(TransformerTrader(6, 8, 1, 2, 0.5), [0, 1])
    with torch.no_grad():
        for parameter in ensemble.parameters():
            parameter[1] = parameter[0]
    windows = randn(32, 6)
    with torch.no_grad():
        positions = ensemble.train()(windows)
        assert not torch.equal(positions[0], positions[1])
        evaluated = ensemble.eval()(windows)
    torch.testing.assert_close(evaluated[0], evaluated[1])
