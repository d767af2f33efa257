"""Save and load policy weights as safetensors: no pickle, and a checkpoint is untrusted.

A checkpoint holds the weights plus string metadata: ``class`` and ``policy`` (the
registered class and name), ``arguments`` (the constructor's keyword arguments, a JSON
object) and, for an ensemble, ``seeds`` (a JSON list, one seed per replica).

:func:`load_policy` trusts none of it. In this order, before any tensor is read or any
real model is built, it checks

1. the header: a safetensors file whose metadata has exactly the keys above (``seeds``
   optional);
2. ``class`` and ``policy``: a registered policy name and its class's name;
3. ``arguments``: at most :data:`MAX_ARGUMENTS_CHARS` of JSON, an object whose keys are
   exactly the constructor's parameters, each of a sane type and size (``lag``,
   ``hidden`` and any other integer at most :data:`MAX_DIMENSION`; ``dropout`` in
   [0, 1); ``position`` a known kind; other strings at most :data:`MAX_STRING_CHARS`);
4. ``seeds``: a JSON list of 1 to :data:`MAX_SEEDS` distinct integers in
   [0, :data:`MAX_SEED`];
5. the tensors: the names, dtypes (float32 for floating ones) and shapes that the
   architecture has (read from a model built on the ``meta`` device, which allocates
   nothing), and that they fit in the file;

then it reads the tensors, refuses NaN or infinite values, and only then builds the
model and loads them. Every failure is one :class:`~neuraltrader.errors.DataError`
naming the file and the field. The caps bound what a file can make this process
allocate to about the file's own size.

:func:`save_policy` applies the same metadata checks before writing, and writes the
header with sorted keys, so the same weights always give the same bytes.
"""

from __future__ import annotations

import inspect
import json
import math
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes
from torch import nn

from .._checks import POSITION_KINDS
from ..core.ensemble import Ensemble, make_ensemble
from ..core.registry import POLICIES, PolicySpec, policy_names, spec_of_class
from ..errors import DataError

MAX_DIMENSION = 4096
"""Largest ``lag``, ``hidden`` (or any other integer argument, in absolute value)."""
MAX_SEEDS = 4096
"""Most replicas an ensemble checkpoint may hold. Building an ensemble costs some 20 KB
and 1 ms per replica however small its weights (16 bytes for the smallest MLP): at this
cap a 90 KB file takes about 80 MB and a few seconds to load."""
MAX_SEED = 2**64 - 1
"""Largest seed (``torch.manual_seed``'s range)."""
MAX_ARGUMENTS_CHARS = 4096
"""Longest ``arguments`` JSON text."""
MAX_STRING_CHARS = 64
"""Longest string argument of a policy's constructor."""
MAX_SEEDS_CHARS = 2 + MAX_SEEDS * (len(str(MAX_SEED)) + 2)
"""Longest ``seeds`` JSON text: :data:`MAX_SEEDS` seeds of 20 digits and separators."""

METADATA_KEYS = ("arguments", "class", "policy", "seeds")
OPTIONAL_KEYS = ("seeds",)
SHOWN_CHARS = 80  # longest piece of a file's value quoted in an error message

# safetensors' names of the non-floating dtypes a policy's buffers may have
SAFETENSORS_DTYPES = {
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}


class TensorLayout(NamedTuple):
    """What one tensor of a checkpoint must be: safetensors ``dtype`` name, ``shape`` and
    bytes per element."""

    dtype: str
    shape: tuple[int, ...]
    itemsize: int


@dataclass(frozen=True)
class Header:
    """A checkpoint's validated metadata: the policy's registry entry, its constructor
    ``arguments`` and, for an ensemble, its ``seeds`` (``None`` for a lone policy)."""

    spec: PolicySpec
    arguments: dict[str, Any]
    seeds: list[int] | None


def save_policy(model: nn.Module, path: str | Path) -> None:
    """Write a registered policy's (or an ensemble's) weights and architecture to
    ``.safetensors``; the class is recorded by name and looked up in the registry.

    Parameters
    ----------
    model
        A registered policy or an :class:`~neuraltrader.core.ensemble.Ensemble` of one.
    path
        The file to write. The same weights and architecture give the same bytes.

    Raises
    ------
    DataError
        If the policy is not registered, or its architecture, seeds or dtypes are outside
        what :func:`load_policy` accepts (nothing is written then).
    """
    where = str(path)
    ensemble = isinstance(model, Ensemble)
    policy_class = model.policy_class if ensemble else type(model)
    spec = spec_of_class(policy_class.__name__)
    if spec is None or spec.policy_class is not policy_class:
        raise DataError(
            f"cannot save a {policy_class.__name__}: not a registered policy "
            f"(known: {', '.join(policy_names())})"
        )
    arguments = model.arguments if ensemble else model.init_arguments()
    metadata = {"class": policy_class.__name__, "policy": spec.name,
                "arguments": _dumps(arguments, where, "arguments")}
    if ensemble:
        metadata["seeds"] = _dumps(model.seeds, where, "seeds")
    _checked_header(metadata, where)
    state = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    for name, tensor in sorted(state.items()):
        if tensor.is_floating_point() and tensor.dtype != torch.float32:
            raise _error(where, f"tensor {name!r}", f"must be float32, got {tensor.dtype}")
    Path(path).write_bytes(_canonical(safetensors_bytes(state, metadata=metadata)))


def load_policy(path: str | Path) -> nn.Module:
    """Rebuild what :func:`save_policy` wrote (a policy or an ensemble), in eval mode.

    Parameters
    ----------
    path
        A ``.safetensors`` checkpoint, from any source: it is validated (see the module's
        docstring) before anything the size of its claims is allocated.

    Returns
    -------
    nn.Module
        The policy, or its ensemble when the file records ``seeds``.

    Raises
    ------
    DataError
        If the file is unreadable or any field, tensor name, dtype, shape or value is not
        what the recorded architecture has; the message names the file and the field.
    """
    where = str(path)
    try:
        handle = safe_open(where, framework="pt")
    except (OSError, SafetensorError) as error:
        raise DataError(f"{where!r} is not a readable safetensors file: {error}") from None
    with handle as file:
        header = _checked_header(file.metadata(), where)
        _check_tensors(file, _expected_layout(header, where), where)
        tensors = _read_tensors(file, where)
    model = _build(header.spec, header.arguments, header.seeds)
    model.load_state_dict(tensors)
    return model.eval()


def _error(where: str, field: str, problem: str) -> DataError:
    return DataError(f"{where!r}: {field} {problem}")


def _shown(value: object) -> str:
    """``repr(value)``, cut short: a hostile file's values can be megabytes long."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}... ({len(text)} chars)"


def _dumps(value: object, where: str, field: str) -> str:
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError) as error:
        raise _error(where, field, f"cannot be written as JSON: {error}") from None


def _canonical(data: bytes) -> bytes:
    """``data``, a safetensors file, with its header's keys sorted.

    safetensors keeps the metadata in a Rust ``HashMap``, whose order changes from one
    save to the next; the tensors' offsets are relative to the data, so the data part is
    kept as is.
    """
    size = int.from_bytes(data[:8], "little")
    header = json.dumps(json.loads(data[8 : 8 + size]), sort_keys=True, separators=(",", ":"))
    encoded = header.encode()
    encoded += b" " * (-len(encoded) % 8)  # keep the data 8-byte aligned, as safetensors does
    return len(encoded).to_bytes(8, "little") + encoded + data[8 + size :]


# ---------------------------------------------------------------------------- metadata


def _checked_header(metadata: dict[str, str] | None, where: str) -> Header:
    """The validated metadata (steps 1 to 4 of the module's docstring)."""
    metadata = metadata or {}
    unknown = sorted(set(metadata) - set(METADATA_KEYS))
    if unknown:
        raise _error(where, "metadata", f"has unknown keys {_shown(unknown)}; "
                     f"expected {', '.join(METADATA_KEYS)}")
    missing = [key for key in METADATA_KEYS if key not in metadata and key not in OPTIONAL_KEYS]
    if missing:
        raise _error(where, "metadata", f"lacks {', '.join(missing)}: not a neuraltrader "
                     f"policy checkpoint (known policies: {', '.join(policy_names())})")
    spec = _checked_spec(metadata["class"], metadata["policy"], where)
    arguments = _parse_json(metadata["arguments"], where, "arguments", MAX_ARGUMENTS_CHARS)
    seeds = metadata.get("seeds")
    return Header(
        spec,
        _checked_arguments(spec, arguments, where),
        None if seeds is None else _checked_seeds(
            _parse_json(seeds, where, "seeds", MAX_SEEDS_CHARS), where),
    )


def _checked_spec(class_name: str, policy: str, where: str) -> PolicySpec:
    spec = POLICIES.get(policy)
    if spec is None:
        raise _error(where, "policy", f"{_shown(policy)} is not a registered policy "
                     f"(known: {', '.join(policy_names())})")
    if spec.policy_class.__name__ != class_name:
        raise _error(where, "class", f"{_shown(class_name)} is not the class of policy "
                     f"{policy!r} ({spec.policy_class.__name__})")
    return spec


def _parse_json(text: str, where: str, field: str, cap: int) -> object:
    """``text`` parsed, if it is at most ``cap`` characters of JSON without repeated keys."""
    if len(text) > cap:
        raise _error(where, field, f"is {len(text)} characters of JSON; at most {cap} allowed")
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as error:  # RecursionError: nesting too deep
        raise _error(where, field, f"is not valid JSON: {_shown(str(error))}") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    counts = Counter(key for key, _ in pairs)
    repeated = sorted(key for key, count in counts.items() if count > 1)
    if repeated:
        raise ValueError(f"repeated keys {_shown(repeated)}")
    return dict(pairs)


def _checked_arguments(spec: PolicySpec, arguments: object, where: str) -> dict[str, Any]:
    """``arguments`` if it names exactly the constructor's parameters, each sane."""
    if not isinstance(arguments, dict):
        raise _error(where, "arguments", f"must be a JSON object, got {_shown(arguments)}")
    parameters = {
        name: parameter for name, parameter in
        inspect.signature(spec.policy_class).parameters.items()
        if parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    }
    accepted = list(parameters)
    # checkpoints written before a key existed hold its default (one feature a day)
    arguments = {name: parameters[name].default for name in ADDED_KEYS
                 if name in parameters and name not in arguments} | arguments
    unknown = sorted(set(arguments) - set(accepted))
    missing = [name for name in accepted if name not in arguments]
    if unknown or missing:
        raise _error(where, "arguments", f"must have exactly the keys {', '.join(accepted)} "
                     f"of {spec.policy_class.__name__}; unknown {_shown(unknown)}, "
                     f"missing {missing}")
    for name, value in arguments.items():
        problem = ARGUMENT_CHECKS.get(name, _other_problem)(value)
        if problem:
            raise _error(where, f"arguments.{name}", f"{problem}, got {_shown(value)}")
    return arguments


def _dimension_problem(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DIMENSION:
        return f"must be an integer in [1, {MAX_DIMENSION}]"
    return None


def _rate_problem(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        return "must be a number in [0, 1)"
    return None


def _position_problem(value: object) -> str | None:
    return None if value in POSITION_KINDS else f"must be one of {', '.join(POSITION_KINDS)}"


def _other_problem(value: object) -> str | None:
    """An argument only a third-party policy takes: a small JSON scalar."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        in_range = abs(value) <= MAX_DIMENSION
        return None if in_range else f"must be an integer in [-{MAX_DIMENSION}, {MAX_DIMENSION}]"
    if isinstance(value, float):
        return None if math.isfinite(value) else "must be finite"
    if isinstance(value, str):
        short = len(value) <= MAX_STRING_CHARS
        return None if short else f"must be a string of at most {MAX_STRING_CHARS} characters"
    return "must be a number, string, boolean or null"


ADDED_KEYS = ("features",)  # constructor keys newer than the first checkpoints

ARGUMENT_CHECKS = {
    "lag": _dimension_problem, "hidden": _dimension_problem, "features": _dimension_problem,
    "layers": _dimension_problem, "heads": _dimension_problem,
    "dropout": _rate_problem, "position": _position_problem,
}


def _checked_seeds(seeds: object, where: str) -> list[int]:
    """``seeds`` if it is a list of 1 to ``MAX_SEEDS`` distinct seeds in [0, MAX_SEED]."""
    if not isinstance(seeds, list) or not 1 <= len(seeds) <= MAX_SEEDS:
        raise _error(where, "seeds", f"must be a JSON list of 1 to {MAX_SEEDS} seeds, "
                     f"got {_shown(seeds)}")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise _error(where, "seeds", f"must be integers in [0, {MAX_SEED}], "
                         f"got {_shown(seed)}")
    if len(set(seeds)) != len(seeds):
        raise _error(where, "seeds", f"must be distinct, got {_shown(seeds)}")
    return seeds


# ----------------------------------------------------------------------------- tensors


def _build(spec: PolicySpec, arguments: dict[str, Any], seeds: list[int] | None) -> nn.Module:
    model = spec.policy_class(**arguments)
    return model if seeds is None else make_ensemble(model, seeds)


def _expected_layout(header: Header, where: str) -> dict[str, TensorLayout]:
    """Each tensor's safetensors dtype and shape, by name, from a model on ``meta``."""
    seeds = header.seeds
    try:
        with torch.device("meta"):
            # one replica is enough: every ensemble tensor has the replica axis first
            model = _build(header.spec, header.arguments, None if seeds is None else seeds[:1])
    except (TypeError, ValueError, RuntimeError) as error:
        raise _error(where, "arguments", f"do not build a {header.spec.policy_class.__name__}: "
                     f"{_shown(str(error))}") from None
    layout = {}
    for name, tensor in model.state_dict().items():
        shape = tuple(tensor.shape) if seeds is None else (len(seeds), *tensor.shape[1:])
        if tensor.is_floating_point():
            layout[name] = TensorLayout("F32", shape, 4)
        else:
            dtype = SAFETENSORS_DTYPES.get(tensor.dtype, str(tensor.dtype))
            layout[name] = TensorLayout(dtype, shape, tensor.element_size())
    return layout


def _check_tensors(file: Any, expected: dict[str, TensorLayout], where: str) -> None:
    """Check the file's tensor names, dtypes and shapes against ``expected`` from its
    header alone, and that the bytes they declare fit in the file."""
    names = set(file.keys())
    missing, extra = sorted(set(expected) - names), sorted(names - set(expected))
    if missing:
        raise _error(where, "tensors", f"lack {_shown(missing)} (expected {sorted(expected)})")
    if extra:
        raise _error(where, "tensors", f"include unexpected {_shown(extra)} "
                     f"(expected {sorted(expected)})")
    declared = 0
    for name, (dtype, shape, itemsize) in sorted(expected.items()):
        tensor = file.get_slice(name)
        found_dtype, found_shape = tensor.get_dtype(), tuple(tensor.get_shape())
        if found_dtype != dtype:
            raise _error(where, f"tensor {name!r}", f"has dtype {found_dtype}, expected {dtype}")
        if found_shape != shape:
            raise _error(where, f"tensor {name!r}", f"has shape {_shown(found_shape)}, "
                         f"expected {shape}")
        declared += math.prod(shape) * itemsize
    # safetensors checks the offsets too; this keeps the bound independent of its version
    if declared > os.path.getsize(where):
        raise _error(where, "tensors", f"declare {declared} bytes, more than the file holds")


def _read_tensors(file: Any, where: str) -> dict[str, torch.Tensor]:
    """Every tensor of the open ``file``, refusing NaN and infinite values."""
    tensors = {}
    for name in sorted(file.keys()):
        tensor = file.get_tensor(name)
        if tensor.is_floating_point():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise _error(where, f"tensor {name!r}", f"holds {bad} NaN or infinite values")
        tensors[name] = tensor
    return tensors


__all__ = [
    "MAX_ARGUMENTS_CHARS", "MAX_DIMENSION", "MAX_SEED", "MAX_SEEDS", "MAX_STRING_CHARS",
    "load_policy", "save_policy",
]
