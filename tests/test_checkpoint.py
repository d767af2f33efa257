import json
import resource

import pytest
import torch
from safetensors.torch import safe_open, save_file
from torch import nn

from neuraltrader import DropoutTrader, LinearTrader, NeuralTrader, seeded
from neuraltrader.core.ensemble import make_ensemble
from neuraltrader.core.policies import LSTMTrader, TransformerTrader, WindowPolicy
from neuraltrader.core.registry import POLICIES, register_policy
from neuraltrader.errors import DataError
from neuraltrader.io import checkpoint
from neuraltrader.io.checkpoint import MAX_SEEDS, load_policy, save_policy


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
    options = {"hidden": 4, "layers": 1, "heads": 2, "dropout": 0.2, "position": "long_short"}
    policy = spec.policy_class(5, **{key: options[key] for key in spec.options})
    windows = torch.randn(9, 5, generator=torch.Generator().manual_seed(5))
    for model in (policy, make_ensemble(policy, [3, 1])):
        path = tmp_path / f"{name}.safetensors"
        save_policy(model, path)
        loaded = load_policy(path)
        assert type(loaded) is type(model) and not loaded.training
        with torch.no_grad():
            torch.testing.assert_close(loaded(windows), model.eval()(windows))


@pytest.mark.parametrize("policy", [
    LSTMTrader(5, 3, "long_short", features=3),
    TransformerTrader(5, 6, 2, 3, 0.1, "long_short", features=3),
    TransformerTrader(),
], ids=["lstm-3-features", "transformer-3-features", "transformer-defaults"])
def test_multi_feature_policies_and_transformers_round_trip(tmp_path, policy):
    windows = torch.randn(9, policy.inputs, generator=torch.Generator().manual_seed(6))
    for model in (policy, make_ensemble(policy, [4, 2])):
        path = tmp_path / "policy.safetensors"
        save_policy(model, path)
        loaded = load_policy(path)
        assert type(loaded) is type(model) and loaded.features == policy.features
        arguments = loaded.arguments if model is not policy else loaded.init_arguments()
        assert arguments == policy.init_arguments()
        with torch.no_grad():
            torch.testing.assert_close(loaded(windows), model.eval()(windows))


def test_a_transformer_whose_heads_do_not_divide_hidden_is_refused(tmp_path, no_tensor_is_read):
    with seeded(0):
        tensors, metadata = checkpoint_parts(TransformerTrader(4, 6, 1, 2), tmp_path)
    path = write_checkpoint(tmp_path / "t.safetensors", tensors,
                            with_arguments(metadata, heads=4))
    with pytest.raises(DataError, match=r"arguments do not build a TransformerTrader: "
                                        r".*hidden \(6\) must be a multiple of heads \(4\)"):
        load_policy(path)
    for key in ("features", "layers", "heads"):
        write_checkpoint(path, tensors, with_arguments(metadata, **{key: 0}))
        with pytest.raises(DataError, match=rf"arguments.{key} must be an integer in \[1, 4096\]"):
            load_policy(path)


def test_an_unregistered_policy_is_not_saved(tmp_path):
    class Unregistered(NeuralTrader):
        pass

    with pytest.raises(DataError, match="cannot save a Unregistered: not a registered policy"):
        save_policy(Unregistered(4, 2), tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


# ---------------------------------------------------------------- untrusted checkpoints

MEGABYTE_KB = 1024  # ru_maxrss is in kilobytes on Linux


def checkpoint_parts(model, tmp_path):
    """What ``save_policy`` writes for ``model``: its tensors and its metadata."""
    path = tmp_path / "original.safetensors"
    save_policy(model, path)
    with safe_open(str(path), framework="pt") as file:
        names = file.keys()
        return {name: file.get_tensor(name) for name in names}, file.metadata()


def write_checkpoint(path, tensors, metadata):
    save_file({name: tensor.contiguous() for name, tensor in tensors.items()}, str(path),
              metadata=metadata)
    return path


@pytest.fixture
def mlp_parts(tmp_path):
    with seeded(0):
        return checkpoint_parts(NeuralTrader(3, 4), tmp_path)


@pytest.fixture
def no_tensor_is_read(monkeypatch):
    """Fail the test if ``load_policy`` gets as far as reading tensors; yields a callable
    that says how many MB the process's peak memory grew since the fixture started."""

    def refuse(*args, **kwargs):
        raise AssertionError("load_policy read tensors from a checkpoint it should refuse")

    monkeypatch.setattr(checkpoint, "_read_tensors", refuse)
    start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    yield lambda: (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start) / MEGABYTE_KB


def with_arguments(metadata, **changes):
    arguments = json.loads(metadata["arguments"]) | changes
    return metadata | {"arguments": json.dumps(arguments)}


def test_a_billion_hidden_units_are_refused_before_any_allocation(
    tmp_path, mlp_parts, no_tensor_is_read
):
    tensors, metadata = mlp_parts
    path = write_checkpoint(tmp_path / "huge.safetensors", tensors,
                            with_arguments(metadata, hidden=10**9))
    assert path.stat().st_size < 1024
    with pytest.raises(DataError, match=r"huge.safetensors'.*arguments.hidden must be an "
                                        r"integer in \[1, 4096\], got 1000000000"):
        load_policy(path)
    assert no_tensor_is_read() < 200


def test_ten_million_seeds_are_refused_before_they_are_parsed(tmp_path, no_tensor_is_read):
    with seeded(0):
        tensors, metadata = checkpoint_parts(make_ensemble(NeuralTrader(3, 4), [0, 1]), tmp_path)
    # zeros keep the file at 20 MB; the old loader built one replica per entry regardless
    path = write_checkpoint(tmp_path / "seeds.safetensors", tensors,
                            metadata | {"seeds": "[" + "0," * (10**7 - 1) + "0]"})
    start = no_tensor_is_read()
    with pytest.raises(DataError, match=r"seeds is \d+ characters of JSON; at most \d+ allowed"):
        load_policy(path)
    assert no_tensor_is_read() - start < 200


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        (list(range(MAX_SEEDS + 1)), rf"seeds must be a JSON list of 1 to {MAX_SEEDS} seeds"),
        ([], rf"seeds must be a JSON list of 1 to {MAX_SEEDS} seeds"),
        ({"0": 1}, r"seeds must be a JSON list"),
        ([0, -1], r"seeds must be integers in \[0, 18446744073709551615\], got -1"),
        ([0, 2**64], r"seeds must be integers in .*got 18446744073709551616"),
        ([0, True], r"seeds must be integers in .*got True"),
        ([0, 1.0], r"seeds must be integers in .*got 1.0"),
        ([4, 4], r"seeds must be distinct, got \[4, 4\]"),
    ],
)
def test_bad_seeds_are_refused(tmp_path, no_tensor_is_read, seeds, message):
    with seeded(0):
        tensors, metadata = checkpoint_parts(make_ensemble(NeuralTrader(3, 4), [0, 1]), tmp_path)
    path = write_checkpoint(tmp_path / "e.safetensors", tensors,
                            metadata | {"seeds": json.dumps(seeds)})
    with pytest.raises(DataError, match=message):
        load_policy(path)


def test_an_ensemble_whose_seeds_count_differs_from_its_tensors_is_refused(tmp_path):
    with seeded(0):
        tensors, metadata = checkpoint_parts(make_ensemble(NeuralTrader(3, 4), [0, 1]), tmp_path)
    path = write_checkpoint(tmp_path / "e.safetensors", tensors, metadata | {"seeds": "[0, 1, 2]"})
    with pytest.raises(DataError, match=r"tensor 'bias0' has shape \(2, 4, 1\), "
                                        r"expected \(3, 4, 1\)"):
        load_policy(path)


def test_a_tensor_of_the_wrong_shape_is_refused(tmp_path, mlp_parts, no_tensor_is_read):
    tensors, metadata = mlp_parts
    tensors["linear0.weight"] = torch.zeros(4, 5)
    path = write_checkpoint(tmp_path / "p.safetensors", tensors, metadata)
    with pytest.raises(DataError, match=r"tensor 'linear0.weight' has shape \(4, 5\), "
                                        r"expected \(4, 3\)"):
        load_policy(path)


def test_a_missing_tensor_is_refused(tmp_path, mlp_parts, no_tensor_is_read):
    tensors, metadata = mlp_parts
    del tensors["linear1.bias"]
    path = write_checkpoint(tmp_path / "p.safetensors", tensors, metadata)
    with pytest.raises(DataError, match=r"p.safetensors': tensors lack \['linear1.bias'\]"):
        load_policy(path)


def test_an_extra_tensor_is_refused(tmp_path, mlp_parts, no_tensor_is_read):
    tensors, metadata = mlp_parts
    tensors["backdoor"] = torch.zeros(2)
    path = write_checkpoint(tmp_path / "p.safetensors", tensors, metadata)
    with pytest.raises(DataError, match=r"tensors include unexpected \['backdoor'\]"):
        load_policy(path)


def test_a_tensor_of_another_dtype_is_refused(tmp_path, mlp_parts, no_tensor_is_read):
    tensors, metadata = mlp_parts
    tensors["linear0.bias"] = tensors["linear0.bias"].double()
    path = write_checkpoint(tmp_path / "p.safetensors", tensors, metadata)
    with pytest.raises(DataError, match=r"tensor 'linear0.bias' has dtype F64, expected F32"):
        load_policy(path)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_weight_is_refused_naming_the_tensor(tmp_path, mlp_parts, value):
    tensors, metadata = mlp_parts
    tensors["linear1.weight"][0, 2] = value
    path = write_checkpoint(tmp_path / "p.safetensors", tensors, metadata)
    with pytest.raises(DataError, match=r"tensor 'linear1.weight' holds 1 NaN or infinite"):
        load_policy(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"lag": 3, "hidden": 4', r"arguments is not valid JSON"),
        ("[" * 5000 + "]" * 5000, r"arguments is \d+ characters of JSON; at most 4096"),
        ("[" * 2000 + "]" * 2000, r"arguments is not valid JSON"),
        ('{"lag": 3, "lag": 4, "hidden": 4, "position": "long"}',
         r"arguments is not valid JSON: .*repeated keys \['lag'\]"),
        ("[3, 4]", r"arguments must be a JSON object, got \[3, 4\]"),
        ("NaN", r"arguments must be a JSON object, got nan"),
    ],
)
def test_arguments_that_are_not_a_json_object_are_refused(
    tmp_path, mlp_parts, no_tensor_is_read, text, message
):
    tensors, metadata = mlp_parts
    path = write_checkpoint(tmp_path / "p.safetensors", tensors, metadata | {"arguments": text})
    with pytest.raises(DataError, match=message):
        load_policy(path)


def test_an_unknown_or_missing_argument_is_refused(tmp_path, mlp_parts, no_tensor_is_read):
    tensors, metadata = mlp_parts
    path = write_checkpoint(tmp_path / "p.safetensors", tensors,
                            with_arguments(metadata, width=2))
    with pytest.raises(DataError, match=r"arguments must have exactly the keys lag, hidden, "
                                        r"position, features of NeuralTrader; "
                                        r"unknown \['width'\]"):
        load_policy(path)
    arguments = json.loads(metadata["arguments"])
    del arguments["hidden"]
    path = write_checkpoint(path, tensors, metadata | {"arguments": json.dumps(arguments)})
    with pytest.raises(DataError, match=r"unknown \[\], missing \['hidden'\]"):
        load_policy(path)


def test_a_checkpoint_from_before_multi_feature_inputs_loads(tmp_path, mlp_parts):
    """Files written before ``features`` existed lack it: one feature a day."""
    tensors, metadata = mlp_parts
    arguments = json.loads(metadata["arguments"])
    del arguments["features"]
    path = write_checkpoint(tmp_path / "old.safetensors", tensors,
                            metadata | {"arguments": json.dumps(arguments)})
    model = load_policy(path)
    assert model.features == 1 and model.inputs == 3
    torch.testing.assert_close(model.linear0.weight, tensors["linear0.weight"])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"lag": 0}, r"arguments.lag must be an integer in \[1, 4096\], got 0"),
        ({"lag": 4097}, r"arguments.lag must be an integer in \[1, 4096\], got 4097"),
        ({"lag": 3.0}, r"arguments.lag must be an integer .*got 3.0"),
        ({"lag": True}, r"arguments.lag must be an integer .*got True"),
        ({"hidden": "4"}, r"arguments.hidden must be an integer .*got '4'"),
        ({"position": "short"}, r"arguments.position must be one of long, long_short"),
        ({"position": None}, r"arguments.position must be one of"),
    ],
)
def test_out_of_range_arguments_are_refused(
    tmp_path, mlp_parts, no_tensor_is_read, changes, message
):
    tensors, metadata = mlp_parts
    path = write_checkpoint(tmp_path / "p.safetensors", tensors,
                            with_arguments(metadata, **changes))
    with pytest.raises(DataError, match=message):
        load_policy(path)


@pytest.mark.parametrize("dropout", [1.0, -0.1, float("nan"), "0.5", None])
def test_a_dropout_rate_outside_0_1_is_refused(tmp_path, no_tensor_is_read, dropout):
    with seeded(0):
        tensors, metadata = checkpoint_parts(DropoutTrader(3, 4, 0.5), tmp_path)
    path = write_checkpoint(tmp_path / "p.safetensors", tensors,
                            with_arguments(metadata, dropout=dropout))
    with pytest.raises(DataError, match=r"arguments.dropout must be a number in \[0, 1\)"):
        load_policy(path)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"class": "Popen"}, r"class 'Popen' is not the class of policy 'mlp' \(NeuralTrader\)"),
        ({"policy": "os.system"}, r"policy 'os.system' is not a registered policy \(known: mlp"),
        ({"policy": "x" * 10**5}, r"policy 'xxxx.*\.\.\. \(100002 chars\) is not a registered"),
        ({"format": "pt"}, r"metadata has unknown keys \['format'\]"),
    ],
)
def test_metadata_naming_no_registered_policy_is_refused(
    tmp_path, mlp_parts, no_tensor_is_read, changes, message
):
    tensors, metadata = mlp_parts
    path = write_checkpoint(tmp_path / "p.safetensors", tensors, metadata | changes)
    with pytest.raises(DataError, match=message):
        load_policy(path)


@pytest.mark.parametrize("key", ["class", "policy", "arguments"])
def test_metadata_lacking_a_field_is_refused(tmp_path, mlp_parts, no_tensor_is_read, key):
    tensors, metadata = mlp_parts
    del metadata[key]
    path = write_checkpoint(tmp_path / "p.safetensors", tensors, metadata)
    with pytest.raises(DataError, match=f"metadata lacks {key}: not a neuraltrader policy"):
        load_policy(path)
    path = write_checkpoint(tmp_path / "plain.safetensors", tensors, None)
    with pytest.raises(DataError, match="metadata lacks arguments, class, policy"):
        load_policy(path)


def test_declared_bytes_beyond_the_file_size_are_refused(tmp_path, mlp_parts, monkeypatch):
    tensors, metadata = mlp_parts
    path = write_checkpoint(tmp_path / "p.safetensors", tensors, metadata)
    monkeypatch.setattr(checkpoint.os.path, "getsize", lambda where: 16)
    with pytest.raises(DataError, match=r"tensors declare 84 bytes, more than the file holds"):
        load_policy(path)


class WidthTrader(WindowPolicy):
    """A third-party policy with an argument the checkpoint knows nothing about."""

    def __init__(self, lag: int = 4, width: int = 2, position: str = "long") -> None:
        super().__init__(lag, position)
        self.width = width
        self.linear = nn.Linear(lag * width, 1)

    def init_arguments(self) -> dict[str, object]:
        return super().init_arguments() | {"width": self.width}

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.head(self.linear(windows.repeat_interleave(self.width, -1)).squeeze(-1))


@pytest.fixture
def width_policy():
    register_policy("width", WidthTrader, options=("width", "position"))
    yield
    del POLICIES["width"]


def test_a_third_party_policys_arguments_are_bounded_too(tmp_path, width_policy):
    model = make_ensemble(WidthTrader(3, 2), [7, 8])
    path = tmp_path / "w.safetensors"
    save_policy(model, path)
    windows = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(load_policy(path)(windows), model.eval()(windows))
    tensors, metadata = checkpoint_parts(model, tmp_path)
    for width, message in [(10**9, r"arguments.width must be an integer in \[-4096, 4096\]"),
                           ([2], r"arguments.width must be a number, string, boolean or null"),
                           (-2, r"arguments do not build a WidthTrader: .*negative dimension")]:
        write_checkpoint(path, tensors, with_arguments(metadata, width=width))
        with pytest.raises(DataError, match=message):
            load_policy(path)


def test_two_saves_of_the_same_weights_are_byte_identical(tmp_path):
    with seeded(0):
        model = make_ensemble(DropoutTrader(3, 4, 0.25, "long_short"), [5, 2, 9])
    saved = set()
    for index in range(5):
        save_policy(model, tmp_path / f"{index}.safetensors")
        saved.add((tmp_path / f"{index}.safetensors").read_bytes())
    assert len(saved) == 1
    data = saved.pop()
    size = int.from_bytes(data[:8], "little")
    assert size % 8 == 0
    header = json.loads(data[8 : 8 + size])
    assert list(header) == sorted(header)
    assert list(header["__metadata__"]) == ["arguments", "class", "policy", "seeds"]
    assert header["__metadata__"]["arguments"] == json.dumps(
        {"dropout": 0.25, "features": 1, "hidden": 4, "lag": 3, "position": "long_short"})
    assert load_policy(tmp_path / "0.safetensors").seeds == [5, 2, 9]


def test_save_refuses_what_load_would_refuse(tmp_path):
    path = tmp_path / "big.safetensors"
    with pytest.raises(DataError, match=r"arguments.lag must be an integer in \[1, 4096\]"):
        save_policy(LinearTrader(5000), path)
    with pytest.raises(DataError, match=r"tensor 'linear.bias' must be float32"):
        save_policy(LinearTrader(3).double(), path)
    assert not path.exists()
