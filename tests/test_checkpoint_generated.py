"""Generated checkpoints: whatever a file's metadata and tensors, ``load_policy`` returns a
working policy or raises a ``NeuralTraderError``, never another exception or a warning."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st
from safetensors.torch import safe_open, save_file

from neuraltrader import seeded
from neuraltrader.core.ensemble import Ensemble, make_ensemble
from neuraltrader.core.registry import POLICIES
from neuraltrader.errors import NeuralTraderError
from neuraltrader.io.checkpoint import MAX_SEED, METADATA_KEYS, load_policy, save_policy

settings.register_profile("checkpoint-ci", max_examples=300, derandomize=True, deadline=None)
# applied per test rather than with load_profile, which would change every other module's
CHECKPOINT_CI = settings.get_profile("checkpoint-ci")

BUILTIN = ("mlp", "dropout", "linear", "lstm")  # other tests register policies for a while
CLASS_NAMES = tuple(POLICIES[name].policy_class.__name__ for name in BUILTIN)
ARGUMENT_NAMES = ("lag", "hidden", "dropout", "position", "width")
TENSOR_NAMES = (
    "linear0.weight", "linear0.bias", "linear1.weight", "linear1.bias", "linear.weight",
    "linear.bias", "lstm.weight_ih_l0", "lstm.weight_hh_l0", "weight0", "bias0", "weight1",
    "bias1", "linear__weight", "linear__bias", "lstm__weight_hh_l0",
)
DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64,
          torch.int32, torch.uint8, torch.bool)

texts = st.text(max_size=12)
scalars = (st.none() | st.booleans() | st.floats() | texts
           | st.integers() | st.sampled_from([0, 1, 2, 4096, 4097, -1, 10**9, MAX_SEED + 1]))
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(ARGUMENT_NAMES) | texts, children, max_size=4),
    max_leaves=8,
)
metadata_values = texts | json_values.map(json.dumps)
weights = st.sampled_from([math.nan, math.inf, -math.inf]) | st.floats(-1e6, 1e6, width=32)


@st.composite
def tensors(draw) -> torch.Tensor:
    shape = draw(st.lists(st.integers(0, 4), max_size=3))
    dtype = draw(st.sampled_from(DTYPES))
    values = torch.randn(shape, generator=torch.Generator().manual_seed(draw(st.integers(0, 9))))
    return values.to(dtype)


@st.composite
def architectures(draw) -> tuple[str, int, dict[str, object], list[int] | None]:
    """A registered policy's name, a lag, its options and ``None`` or an ensemble's seeds."""
    name = draw(st.sampled_from(BUILTIN))
    options = {"hidden": draw(st.integers(1, 4)), "dropout": draw(st.floats(0, 0.9)),
               "position": draw(st.sampled_from(["long", "long_short"]))}
    seeds = draw(st.none() | st.lists(st.integers(0, MAX_SEED), min_size=1, max_size=3,
                                      unique=True))
    lag = draw(st.integers(1, 5))
    return name, lag, {key: options[key] for key in POLICIES[name].options}, seeds


@pytest.fixture(scope="module")
def directory(tmp_path_factory):
    return tmp_path_factory.mktemp("generated")


def saved_parts(model, directory):
    save_policy(model, directory / "original.safetensors")
    with safe_open(str(directory / "original.safetensors"), framework="pt") as file:
        names = file.keys()
        return {name: file.get_tensor(name) for name in names}, file.metadata()


def load_quietly(path):
    """``load_policy(path)``, or ``None`` if it raised a NeuralTraderError; any warning
    fails the test. Records the outcome for ``--hypothesis-show-statistics``."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            model = load_policy(path)
        except NeuralTraderError as error:
            event("refused: " + str(error).split("': ", 1)[-1].split(" ", 1)[0])
            return None
    event("loaded")
    return model


def assert_works(model):
    """A loaded policy maps windows to finite positions in [-1, 1], per replica."""
    assert not model.training
    windows = torch.randn(6, model.lag, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        positions = model(windows)
    expected = (len(model.seeds), 6) if isinstance(model, Ensemble) else (6,)
    assert positions.shape == expected
    assert bool((torch.isfinite(positions) & (positions.abs() <= 1)).all())


def mutate(data, tensors_: dict[str, torch.Tensor], metadata: dict[str, str], kind: str):
    """Change one thing of a valid checkpoint, as ``kind`` says."""
    names = sorted(tensors_)
    if kind == "metadata":
        key = data.draw(st.sampled_from((*METADATA_KEYS, "format")))
        value = data.draw(st.none() | metadata_values)
        if value is None:
            metadata.pop(key, None)
        else:
            metadata[key] = value
    elif kind == "argument":
        arguments = json.loads(metadata["arguments"])
        key = data.draw(st.sampled_from(ARGUMENT_NAMES))
        value = data.draw(st.just("<removed>") | scalars | json_values)
        if value == "<removed>":
            arguments.pop(key, None)
        else:
            arguments[key] = value
        metadata["arguments"] = json.dumps(arguments)
    elif kind == "seeds":
        metadata["seeds"] = json.dumps(data.draw(
            st.lists(st.integers(-2, MAX_SEED + 2), max_size=4) | json_values))
    elif kind == "drop tensor":
        del tensors_[data.draw(st.sampled_from(names))]
    elif kind == "add tensor":
        name = data.draw(st.sampled_from(TENSOR_NAMES) | st.text(min_size=1, max_size=12))
        tensors_[name] = data.draw(tensors())
    elif kind == "reshape":
        tensors_[data.draw(st.sampled_from(names))] = data.draw(tensors()).float()
    elif kind == "dtype":
        name = data.draw(st.sampled_from(names))
        tensors_[name] = tensors_[name].to(data.draw(st.sampled_from(DTYPES)))
    elif kind == "value":
        tensor = tensors_[data.draw(st.sampled_from(names))]
        if tensor.numel():
            index = data.draw(st.integers(0, tensor.numel() - 1))
            tensor.view(-1)[index] = data.draw(weights)
    return tensors_, metadata


KINDS = ("none", "metadata", "argument", "seeds", "drop tensor", "add tensor", "reshape",
         "dtype", "value")


@CHECKPOINT_CI
@given(architecture=architectures(), kind=st.sampled_from(KINDS), data=st.data())
def test_a_changed_checkpoint_loads_as_a_working_policy_or_raises_ours(
    directory, architecture, kind, data
):
    name, lag, options, seeds = architecture
    with seeded(0):
        model = POLICIES[name].policy_class(lag, **options)
        model = model if seeds is None else make_ensemble(model, seeds)
    tensors_, metadata = mutate(data, *saved_parts(model, directory), kind)
    if "__metadata__" in tensors_:
        del tensors_["__metadata__"]
    path = directory / "changed.safetensors"
    save_file(tensors_, str(path), metadata=metadata)
    loaded = load_quietly(path)
    if kind == "none":
        assert loaded is not None
        windows = torch.randn(4, lag, generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            torch.testing.assert_close(loaded(windows), model.eval()(windows))
    if loaded is not None:
        assert_works(loaded)


@st.composite
def metadata_dicts(draw) -> dict[str, str] | None:
    """Metadata built from the right keys and plausible or arbitrary values."""
    fields = {
        "class": st.sampled_from(CLASS_NAMES) | texts,
        "policy": st.sampled_from(BUILTIN) | texts,
        "arguments": st.dictionaries(st.sampled_from(ARGUMENT_NAMES), scalars).map(json.dumps)
        | metadata_values,
        "seeds": st.lists(st.integers(0, 5), min_size=1, max_size=3).map(json.dumps)
        | metadata_values,
    }
    keys = draw(st.just(set(METADATA_KEYS)) | st.sets(st.sampled_from(METADATA_KEYS)))
    metadata = {key: draw(fields[key]) for key in sorted(keys)}
    if draw(st.integers(0, 9)) == 0:
        metadata |= draw(st.dictionaries(texts, texts, max_size=1))
    return metadata or draw(st.none() | st.just({}))


@CHECKPOINT_CI
@given(
    metadata=metadata_dicts(),
    tensors_=st.dictionaries(st.sampled_from(TENSOR_NAMES) | st.text(min_size=1, max_size=12),
                             tensors(), max_size=4),
)
def test_arbitrary_metadata_and_tensors_load_or_raise_ours(directory, metadata, tensors_):
    tensors_.pop("__metadata__", None)
    path = directory / "arbitrary.safetensors"
    save_file(tensors_, str(path), metadata=metadata)
    loaded = load_quietly(path)
    if loaded is not None:
        assert_works(loaded)
