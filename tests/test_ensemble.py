import pandas as pd
import pytest
import torch

from neuraltrader import ConfigError, DataError, DropoutTrader, NeuralTrader, fit, seeded
from neuraltrader.core.ensemble import (
    FunctionalEnsemble,
    LSTMEnsemble,
    TraderEnsemble,
    make_ensemble,
)
from neuraltrader.core.policies import LSTMTrader, TransformerTrader, WindowPolicy
from neuraltrader.core.registry import POLICIES

SETTINGS = {"epochs": 6, "batch_size": 700, "progress": False}


def small(windows, rows=2100):
    return tuple(tensor[:rows] for tensor in windows)


def solo_run(template, seed, train, valid, **settings):
    with seeded(seed):
        model = type(template)(**template.init_arguments())
        history = fit(model, train, valid, generator=seed, **(SETTINGS | settings))
    return model, history


@pytest.mark.parametrize("template", [
    NeuralTrader(4, 5), DropoutTrader(4, 5, 0.5), DropoutTrader(4, 3, 0.2, "long_short")
])
@pytest.mark.parametrize("patience", [None, 2])
def test_each_replica_matches_its_solo_run(momentum_windows, template, patience):
    train, valid = small(momentum_windows["train"]), momentum_windows["valid"]
    seeds = [4, 0, 9]
    ensemble = TraderEnsemble(template, seeds)
    history = fit(ensemble, train, valid, patience=patience, **SETTINGS)
    assert list(history.columns) == ["epoch", "seed", "train_recom", "train_return",
                                     "valid_recom", "valid_return"]
    for index, seed in enumerate(seeds):
        model, solo = solo_run(template, seed, train, valid, patience=patience)
        replica = history[history.seed == seed].drop(columns="seed").reset_index(drop=True)
        pd.testing.assert_frame_equal(replica, solo, check_dtype=False, rtol=1e-4, atol=1e-6)
        copy = ensemble.replica(index)
        for name, parameter in model.named_parameters():
            torch.testing.assert_close(copy.get_parameter(name), parameter, rtol=1e-4, atol=1e-5)


def test_early_stopping_restores_the_best_weights(momentum_windows):
    train, valid = small(momentum_windows["train"]), momentum_windows["valid"]
    model, history = solo_run(NeuralTrader(4, 5), 3, train, valid, epochs=30, patience=3, lr=0.05)
    best = history["valid_return"].idxmax()
    assert len(history) == best + 1 + 3 < 30  # seed 3: best at epoch 16, stopped at 19
    with torch.no_grad():
        restored = float((model.eval()(valid[0]) * valid[1]).mean())
    assert restored == pytest.approx(float(history["valid_return"].max()), rel=1e-5)


def test_restore_best_without_patience_trains_every_epoch(momentum_windows):
    train, valid = small(momentum_windows["train"]), momentum_windows["valid"]
    model, history = solo_run(NeuralTrader(4, 5), 3, train, valid, epochs=30, lr=0.05,
                              restore_best=True)
    assert len(history) == 30 and history["valid_return"].idxmax() < 29  # seed 3: best at 16
    with torch.no_grad():
        restored = float((model.eval()(valid[0]) * valid[1]).mean())
    assert restored == pytest.approx(float(history["valid_return"].max()), rel=1e-5)


def test_seeds_shorthand_and_per_replica_data(momentum_windows):
    train, valid = small(momentum_windows["train"]), momentum_windows["valid"]
    template = NeuralTrader(4, 5)
    shorthand = fit(template, train, valid, seeds=2, **SETTINGS)
    assert shorthand["seed"].tolist() == [0] * 6 + [1] * 6
    # the same data given once per replica trains the same replicas
    stacked = tuple(torch.stack([tensor] * 2) for tensor in train)
    per_replica = fit(template, stacked, valid, seeds=2, **SETTINGS)
    pd.testing.assert_frame_equal(shorthand, per_replica, rtol=1e-5, atol=1e-7)
    # and different data per replica gives a different replica 1
    other = (torch.stack([train[0], -train[0]]), torch.stack([train[1], -train[1]]))
    changed = fit(template, other, valid, seeds=2, **SETTINGS)
    assert changed[changed.seed == 0].equals(shorthand[shorthand.seed == 0])
    assert not changed[changed.seed == 1].equals(shorthand[shorthand.seed == 1])


def test_bad_replica_input(momentum_windows):
    train, valid = small(momentum_windows["train"]), momentum_windows["valid"]
    with pytest.raises(ConfigError, match="seeds must be an integer >= 1, got 0"):
        TraderEnsemble(NeuralTrader(4, 5), 0)
    with pytest.raises(ConfigError, match="batched-matmul path computes exactly NeuralTrader"):
        TraderEnsemble(torch.nn.Linear(4, 1), 2)
    with pytest.raises(ConfigError, match="replicas need a WindowPolicy"):
        make_ensemble(torch.nn.Linear(4, 1), 2)
    with pytest.raises(DataError, match="per-replica train data must have 2 rows"):
        fit(NeuralTrader(4, 5), (train[0][None], train[1][None]), valid, seeds=2, epochs=1)
    with pytest.raises(ConfigError, match="patience must be an integer >= 1, got 0"):
        fit(NeuralTrader(4, 5), train, valid, seeds=2, epochs=1, patience=0)


class SquareTrader(NeuralTrader):
    """Overrides the documented hook: its forward is not the batched-matmul path's."""

    def hidden_features(self, windows):
        return torch.square(self.linear0(windows))


class MeanReverter(WindowPolicy):
    """A user's policy: one weight on the window's mean, through the position head."""

    def __init__(self, lag=4, position="long"):
        super().__init__(lag, position)
        self.scale = torch.nn.Parameter(torch.randn(()))

    def forward(self, windows):
        return self.head(self.scale * windows.mean(-1))


def test_a_subclass_never_takes_the_fast_path(momentum_windows):
    ensemble = make_ensemble(SquareTrader(4, 5), [0, 1])
    assert isinstance(ensemble, FunctionalEnsemble) and ensemble.path == "vmap"
    windows = momentum_windows["valid"][0][:50]
    with torch.no_grad():
        positions = ensemble.eval()(windows)
    for index in range(2):
        torch.testing.assert_close(positions[index], ensemble.replica(index)(windows))
    assert isinstance(make_ensemble(NeuralTrader(4, 5), 2), TraderEnsemble)


class GatedLSTMTrader(LSTMTrader):
    """Overrides the LSTM's last state: not what the batched-lstm path computes."""

    def last_state(self, windows):
        return torch.relu(super().last_state(windows))


def test_an_lstm_subclass_never_takes_the_batched_lstm_path():
    template = GatedLSTMTrader(4, 3)
    assert make_ensemble(template, 2).path == "per-replica"
    with pytest.raises(ConfigError, match="batched-lstm path computes exactly LSTMTrader, "
                                          "got GatedLSTMTrader"):
        LSTMEnsemble(template, 2)
    assert isinstance(make_ensemble(LSTMTrader(4, 3), 2), LSTMEnsemble)


def test_a_policy_vmap_cannot_batch_runs_replica_by_replica_as_it_runs_alone(
        momentum_windows):
    """vmap cannot batch nn.LSTM's kernel: on the generic path each replica runs it on its
    slice of the stacked weights, so its training is its solo run's to the bit
    (make_ensemble gives an LSTM the batched-lstm path: test_speed_paths.py)."""
    train, valid = small(momentum_windows["train"], 700), momentum_windows["valid"]
    template = POLICIES["lstm"].policy_class(4, hidden=3, position="long_short")
    ensemble = FunctionalEnsemble(template, [2, 5])
    assert ensemble.path == "per-replica"
    assert make_ensemble(template, 2).state_dict().keys() == ensemble.state_dict().keys()
    settings = {"epochs": 3, "batch_size": 350, "optimizer": "adam", "progress": False}
    history = fit(ensemble, train, valid, **settings)
    for index, seed in enumerate([2, 5]):
        model, solo = solo_run(template, seed, train, valid, **settings)
        replica = history[history.seed == seed].drop(columns="seed").reset_index(drop=True)
        pd.testing.assert_frame_equal(replica, solo, check_dtype=False, rtol=0, atol=0)
        for key, value in model.state_dict().items():
            assert torch.equal(ensemble.replica(index).state_dict()[key], value)


# rtol 1e-4 / atol 1e-5: replicas run batched (vmap, baddbmm) kernels, the solo run
# plain ones; the same arithmetic in another summation order
@pytest.mark.parametrize("name", [*POLICIES, "user"])
def test_every_registered_policy_trains_as_an_ensemble(momentum_windows, name):
    train, valid = small(momentum_windows["train"], 700), momentum_windows["valid"]
    if name == "user":
        template = MeanReverter(4)
    else:
        # the vmap path draws dropout masks unlike the solo run: the transformer, on that
        # path, trains without dropout here (its masks: test_transformer.py)
        options = {"hidden": 4, "layers": 2, "heads": 2, "position": "long_short",
                   "dropout": 0.0 if name == "transformer" else 0.3}
        spec = POLICIES[name]
        template = spec.policy_class(4, **{k: options[k] for k in spec.options})
    # RMSprop's first step is ±10 lr whatever the gradient: at lr 0.01 a transformer's
    # training is chaotic, and rounding (batched kernels sum in another order) grows to
    # 1e-1 in a few steps; with Adam (the backtest's optimizer) it stays near 1e-7
    settings = {"epochs": 4, "batch_size": 350,
                "optimizer": "adam" if name == "transformer" else "rmsprop"}
    seeds = [2, 5]
    ensemble = make_ensemble(template, seeds)
    history = fit(ensemble, train, valid, progress=False, **settings)
    for index, seed in enumerate(seeds):
        model, solo = solo_run(template, seed, train, valid, **settings)
        replica = history[history.seed == seed].drop(columns="seed").reset_index(drop=True)
        pd.testing.assert_frame_equal(replica, solo, check_dtype=False, rtol=1e-4, atol=1e-5)
        for key, value in model.state_dict().items():
            torch.testing.assert_close(ensemble.replica(index).state_dict()[key], value,
                                       rtol=1e-4, atol=1e-5)


def test_an_ensembles_training_depends_on_its_seeds_alone(momentum_windows):
    """The transformer's nn.Dropout draws from torch's global generator: fit seeds it
    from the ensemble's seeds, so the same ensemble trains to the same numbers whatever
    the process drew before (a backtest block resumed, or run on another Ray worker,
    after other work), and the caller's generator is left where it was."""
    train, valid = small(momentum_windows["train"], 700), momentum_windows["valid"]
    template = TransformerTrader(4, hidden=4, layers=1, heads=2, dropout=0.3)
    histories = []
    for earlier_seed in (0, 1):
        torch.manual_seed(earlier_seed)  # the state earlier work leaves behind
        before = torch.get_rng_state()
        histories.append(fit(make_ensemble(template, [2, 5]), train, valid, epochs=2,
                             batch_size=350, progress=False))
        assert torch.equal(torch.get_rng_state(), before)
    pd.testing.assert_frame_equal(*histories, check_exact=True)
