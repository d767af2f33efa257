"""Save and load policy weights as safetensors: no pickle, so loading is always safe."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from .errors import DataError
from .policies import DropoutTrader, NeuralTrader

POLICY_CLASSES: dict[str, type[nn.Module]] = {
    "NeuralTrader": NeuralTrader,
    "DropoutTrader": DropoutTrader,
}


def save_policy(model: nn.Module, path: str | Path) -> None:
    """Write ``model``'s weights and architecture to a ``.safetensors`` file."""
    name = type(model).__name__
    if name not in POLICY_CLASSES:
        raise DataError(f"cannot save a {name}; known policies: {', '.join(POLICY_CLASSES)}")
    metadata = {"class": name, "arguments": json.dumps(model.init_arguments())}
    state = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    save_file(state, str(path), metadata=metadata)


def load_policy(path: str | Path) -> nn.Module:
    """Rebuild a policy saved by :func:`save_policy`, in eval mode."""
    with safe_open(str(path), framework="pt") as file:
        metadata = file.metadata() or {}
    if metadata.get("class") not in POLICY_CLASSES:
        raise DataError(f"{str(path)!r} holds no neuraltrader policy (metadata {metadata!r})")
    model = POLICY_CLASSES[metadata["class"]](**json.loads(metadata["arguments"]))
    model.load_state_dict(load_file(str(path)))
    return model.eval()


__all__ = ["load_policy", "save_policy"]
