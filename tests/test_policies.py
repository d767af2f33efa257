import pytest
import torch

from neuraltrader import ConfigError, DropoutTrader, NeuralTrader, seeded
from neuraltrader.core.policies import LSTMTrader, WindowPolicy
from neuraltrader.core.registry import POLICIES, policy_spec, register_policy
from neuraltrader.io.sections import ModelSection


@pytest.mark.parametrize("batch", [1, 7])
def test_position_ranges_and_shapes(batch):
    windows = 10 * torch.randn(batch, 4, generator=torch.Generator().manual_seed(0))
    long = NeuralTrader(4, 5)(windows)
    long_short = NeuralTrader(4, 5, position="long_short")(windows)
    assert long.shape == (batch,) and long_short.shape == (batch,)
    assert ((long >= 0) & (long <= 1)).all()
    assert ((long_short >= -1) & (long_short <= 1)).all()


def test_tutorial_layers():
    model = DropoutTrader(lag=4, hidden=5, dropout=0.5)
    assert (model.linear0.in_features, model.linear0.out_features) == (4, 5)
    assert (model.linear1.in_features, model.linear1.out_features) == (5, 1)
    assert model.dropout == 0.5


def test_dropout_is_random_in_training_and_off_in_eval():
    windows = torch.randn(256, 4, generator=torch.Generator().manual_seed(1))
    with seeded(0):
        model = DropoutTrader(4, 5, dropout=0.5)
        first, second = model.train()(windows), model(windows)
    assert not torch.equal(first, second)
    model.eval()
    assert torch.equal(model(windows), model(windows))


def test_dropout_zero_is_the_plain_trader():
    windows = torch.randn(32, 4, generator=torch.Generator().manual_seed(2))
    with seeded(3):
        plain = NeuralTrader(4, 5)
    with seeded(3):
        dropout = DropoutTrader(4, 5, dropout=0.0)
    torch.testing.assert_close(plain(windows), dropout.train()(windows))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"position": "short"}, "position must be one of 'long', 'long_short'; got 'short'"),
        ({"dropout": 1.0}, r"dropout must lie in \[0.0, 1.0\), got 1.0"),
        ({"hidden": 0}, "hidden must be an integer >= 1, got 0"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        DropoutTrader(4, **kwargs)


# ------------------------------------------------------------------ features per day

BUILT_IN = ["mlp", "dropout", "linear", "lstm", "transformer"]


@pytest.mark.parametrize("name", BUILT_IN)
@pytest.mark.parametrize("features", [1, 3])
def test_every_built_in_policy_reads_features_per_day(name, features):
    model = ModelSection(hidden=4, position="long_short")
    with seeded(0):
        policy = policy_spec(name).build(6, model, features=features)
    assert (policy.lag, policy.features, policy.inputs) == (6, features, 6 * features)
    assert policy.init_arguments()["features"] == features
    windows = torch.randn(7, 6 * features, generator=torch.Generator().manual_seed(1))
    positions = policy.eval()(windows)
    assert positions.shape == (7,) and ((positions >= -1) & (positions <= 1)).all()
    parameters = sum(p.numel() for p in policy.parameters())
    assert policy_spec(name).parameter_count(6, model, features) == parameters


def test_the_mlp_reads_the_window_day_major():
    """Input ``d * F + f`` is day d's feature f: only the last day's inputs matter for
    an MLP whose first layer weighs only the last F columns."""
    policy = NeuralTrader(5, 2, features=3)
    with torch.no_grad():
        policy.linear0.weight[:, :-3] = 0
    windows = torch.randn(4, 15, generator=torch.Generator().manual_seed(2))
    changed = windows.clone()
    changed[:, :-3] = torch.randn(4, 12, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(policy(changed), policy(windows), rtol=0, atol=0)


def lstm_cell_written_out(lstm, days):
    """The LSTM recursion over ``days`` ``(B, L, F)``, oldest first, with ``nn.LSTM``'s
    weights and gate order (input, forget, cell, output): its last hidden state."""
    state = cell = days.new_zeros(days.shape[0], lstm.hidden_size)
    for day in days.unbind(1):
        gates = day @ lstm.weight_ih_l0.T + lstm.bias_ih_l0 + state @ lstm.weight_hh_l0.T \
            + lstm.bias_hh_l0
        write, forget, candidate, read = gates.chunk(4, dim=-1)
        cell = forget.sigmoid() * cell + write.sigmoid() * candidate.tanh()
        state = read.sigmoid() * cell.tanh()
    return state


@pytest.mark.parametrize("features", [1, 3])
def test_the_lstm_reads_each_window_day_by_day(features):
    """Day-major windows (day 0's F features first) are L steps of F inputs."""
    with seeded(4):
        policy = LSTMTrader(6, 5, features=features)
    windows = torch.randn(9, 6 * features, generator=torch.Generator().manual_seed(5))
    expected = lstm_cell_written_out(policy.lstm, windows.view(9, 6, features))
    torch.testing.assert_close(policy.last_state(windows), expected, rtol=1e-5, atol=1e-6)


class MeanTrader(WindowPolicy):
    """A user's policy that takes no ``features``: one weight on the window's mean."""

    def __init__(self, lag=4, position="long"):
        super().__init__(lag, position)
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, windows):
        return self.head(self.scale * windows.mean(-1))


@pytest.fixture
def user_policy():
    register_policy("user-mean", MeanTrader, options=("position",))
    yield POLICIES["user-mean"]
    del POLICIES["user-mean"]


def test_a_user_policy_without_features_builds_for_one_feature_only(user_policy):
    model = ModelSection()
    policy = user_policy.build(4, model)
    assert type(policy) is MeanTrader and (policy.features, policy.inputs) == (1, 4)
    assert "features" not in policy.init_arguments()
    assert user_policy.parameter_count(4, model) == 1
    message = r"policy 'user-mean' \(MeanTrader\) does not take multi-feature inputs"
    with pytest.raises(ConfigError, match=message):
        user_policy.build(4, model, features=3)
    with pytest.raises(ConfigError, match=message):
        user_policy.parameter_count(4, model, features=3)


def test_features_must_be_a_positive_integer():
    with pytest.raises(ConfigError, match="features must be an integer >= 1, got 0"):
        LSTMTrader(4, features=0)
