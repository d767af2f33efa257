"""Save and load policy weights as safetensors: no pickle, so loading is always safe."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from ..core.ensemble import Ensemble, make_ensemble
from ..core.registry import policy_names, spec_of_class
from ..errors import DataError


def save_policy(model: nn.Module, path: str | Path) -> None:
    """Write a registered policy's (or an ensemble's) weights and architecture to
    ``.safetensors``; the class is recorded by name and looked up in the registry."""
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
                "arguments": json.dumps(arguments)}
    if ensemble:
        metadata["seeds"] = json.dumps(model.seeds)
    state = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    save_file(state, str(path), metadata=metadata)


def load_policy(path: str | Path) -> nn.Module:
    """Rebuild what :func:`save_policy` wrote (a policy or an ensemble), in eval mode."""
    try:
        with safe_open(str(path), framework="pt") as file:
            metadata = file.metadata() or {}
    except (OSError, SafetensorError) as error:
        raise DataError(f"{str(path)!r} is not a readable safetensors file: {error}") from None
    spec = spec_of_class(str(metadata.get("class")))
    if spec is None:
        raise DataError(f"{str(path)!r} holds no registered neuraltrader policy "
                        f"(metadata {metadata!r}; known: {', '.join(policy_names())})")
    model = spec.policy_class(**json.loads(metadata["arguments"]))
    if "seeds" in metadata:
        model = make_ensemble(model, json.loads(metadata["seeds"]))
    model.load_state_dict(load_file(str(path)))
    return model.eval()


__all__ = ["load_policy", "save_policy"]
