import pytest
import torch

from neuraltrader import ConfigError, DropoutTrader, NeuralTrader, seeded


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
    assert model.dropout.p == 0.5


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
