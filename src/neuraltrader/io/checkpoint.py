"""Save and load policy weights as safetensors: no pickle, so loading is always safe."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from ..core.ensemble import TraderEnsemble
from ..errors import DataError
from ..core.policies import DropoutTrader, LinearTrader, LSTMTrader, NeuralTrader, WindowPolicy

POLICY_CLASSES: dict[str, type[WindowPolicy]] = {
    cls.__name__: cls for cls in (NeuralTrader, DropoutTrader, LinearTrader, LSTMTrader)
}


def save_policy(model: nn.Module, path: str | Path) -> None:
    """Write a policy's (or an ensemble's) weights and architecture to ``.safetensors``."""
    if isinstance(model, TraderEnsemble):
        metadata = {
            "class": model.policy_class.__name__,
            "arguments": json.dumps(model.arguments),
            "seeds": json.dumps(model.seeds),
        }
    elif type(model).__name__ in POLICY_CLASSES:
        metadata = {"class": type(model).__name__, "arguments": json.dumps(model.init_arguments())}
    else:
        raise DataError(
            f"cannot save a {type(model).__name__}; known policies: {', '.join(POLICY_CLASSES)}"
        )
    state = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    save_file(state, str(path), metadata=metadata)


def load_policy(path: str | Path) -> nn.Module:
    """Rebuild what :func:`save_policy` wrote (a policy or an ensemble), in eval mode."""
    try:
        with safe_open(str(path), framework="pt") as file:
            metadata = file.metadata() or {}
    except (OSError, SafetensorError) as error:
        raise DataError(f"{str(path)!r} is not a readable safetensors file: {error}") from None
    if metadata.get("class") not in POLICY_CLASSES:
        raise DataError(f"{str(path)!r} holds no neuraltrader policy (metadata {metadata!r})")
    model = POLICY_CLASSES[metadata["class"]](**json.loads(metadata["arguments"]))
    if "seeds" in metadata:
        model = TraderEnsemble(model, json.loads(metadata["seeds"]))
    model.load_state_dict(load_file(str(path)))
    return model.eval()


__all__ = ["load_policy", "save_policy"]
