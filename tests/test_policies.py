import pytest
import torch

from neuraltrader import ConfigError, DropoutTrader, NeuralTrader, seeded
from neuraltrader.io.checkpoint import load_policy, save_policy


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


def test_weights_round_trip_through_safetensors(tmp_path):
    windows = torch.randn(16, 3, generator=torch.Generator().manual_seed(4))
    for model in (NeuralTrader(3, 6, "long_short"), DropoutTrader(3, 2, 0.25)):
        save_policy(model, tmp_path / "policy.safetensors")
        loaded = load_policy(tmp_path / "policy.safetensors")
        assert type(loaded) is type(model) and loaded.position == model.position
        torch.testing.assert_close(loaded(windows), model.eval()(windows))


def test_a_file_that_is_not_a_policy_is_refused(tmp_path):
    from neuraltrader import DataError

    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x80\x04 not a safetensors header")
    with pytest.raises(DataError, match="is not a readable safetensors file"):
        load_policy(broken)
    with pytest.raises(DataError, match="is not a readable safetensors file"):
        load_policy(tmp_path / "missing.safetensors")
