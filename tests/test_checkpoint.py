import pytest
import torch

from neuraltrader import DropoutTrader, NeuralTrader
from neuraltrader.core.ensemble import make_ensemble
from neuraltrader.core.registry import POLICIES
from neuraltrader.errors import DataError
from neuraltrader.io.checkpoint import load_policy, save_policy


def test_weights_round_trip_through_safetensors(tmp_path):
    windows = torch.randn(16, 3, generator=torch.Generator().manual_seed(4))
    for model in (NeuralTrader(3, 6, "long_short"), DropoutTrader(3, 2, 0.25)):
        save_policy(model, tmp_path / "policy.safetensors")
        loaded = load_policy(tmp_path / "policy.safetensors")
        assert type(loaded) is type(model) and loaded.position == model.position
        torch.testing.assert_close(loaded(windows), model.eval()(windows))


def test_a_file_that_is_not_a_policy_is_refused(tmp_path):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x80\x04 not a safetensors header")
    with pytest.raises(DataError, match="is not a readable safetensors file"):
        load_policy(broken)
    with pytest.raises(DataError, match="is not a readable safetensors file"):
        load_policy(tmp_path / "missing.safetensors")


@pytest.mark.parametrize("name", list(POLICIES))
def test_every_registered_policy_and_its_ensemble_round_trip(tmp_path, name):
    spec = POLICIES[name]
    options = {"hidden": 3, "dropout": 0.2, "position": "long_short"}
    policy = spec.policy_class(5, **{key: options[key] for key in spec.options})
    windows = torch.randn(9, 5, generator=torch.Generator().manual_seed(5))
    for model in (policy, make_ensemble(policy, [3, 1])):
        path = tmp_path / f"{name}.safetensors"
        save_policy(model, path)
        loaded = load_policy(path)
        assert type(loaded) is type(model) and not loaded.training
        with torch.no_grad():
            torch.testing.assert_close(loaded(windows), model.eval()(windows))


def test_an_unregistered_policy_is_not_saved(tmp_path):
    class Unregistered(NeuralTrader):
        pass

    with pytest.raises(DataError, match="cannot save a Unregistered: not a registered policy"):
        save_policy(Unregistered(4, 2), tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()
