"""Finished units of work, persisted as a run goes so that a killed run can resume.

A pipeline splits its work into independent units (a study's (data set, model)
ensemble, a sweep cell, a walk-forward block), each seeded from the config alone, so a
unit computed after a restart equals the one the killed run would have computed. Each
finished unit is written atomically (into a temporary folder, then renamed) under the
staging directory's ``units/``: tensors and numeric frames as safetensors (dtypes kept
exactly, no pickle), trained policies as checkpoints (:mod:`neuraltrader.io.checkpoint`),
everything else as JSON.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import DataError
from .checkpoint import load_policy, save_policy

UNITS = "units"  # the folder of finished units inside a staging directory
TENSORS = "tensors.safetensors"
PAYLOAD = "payload.json"


@dataclass
class Unit:
    """One finished unit: named ``tensors``, numeric ``frames``, trained ``models``
    (policies or ensembles) and a JSON ``payload``."""

    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    payload: dict[str, Any] = field(default_factory=dict)
    models: dict[str, nn.Module] = field(default_factory=dict)


class UnitStore:
    """The finished units of one run, in ``directory`` (created on first save)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    @classmethod
    def of(cls, staging: Path) -> UnitStore:
        """The units of the run being written in staging directory ``staging``."""
        return cls(Path(staging) / UNITS)

    def __contains__(self, name: str) -> bool:
        return (self.directory / name / PAYLOAD).exists()

    def remove(self, name: str) -> None:
        """Forget unit ``name`` (a training state whose unit has finished)."""
        shutil.rmtree(self.directory / name, ignore_errors=True)

    def training_state(self, name: str, every: int | None) -> TrainingStateFile | None:
        """Where unit ``name``'s training keeps its state every ``every`` epochs
        (``train.checkpoint_every``); ``None`` when ``every`` is unset."""
        return TrainingStateFile(self, name, every) if every else None

    def discard(self) -> None:
        """Remove every unit: the run is complete, its files hold all of them."""
        shutil.rmtree(self.directory, ignore_errors=True)

    def save(self, name: str, unit: Unit) -> None:
        """Write ``unit`` as ``name``, atomically: a reader sees all of it or none."""
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.directory / f".{name}.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        tensors = {f"tensor/{key}": value.detach().cpu().contiguous()
                   for key, value in unit.tensors.items()}
        columns = {}
        for frame_name, frame in unit.frames.items():
            columns[frame_name] = [str(column) for column in frame.columns]
            for column in frame.columns:
                tensors[f"frame/{frame_name}/{column}"] = torch.from_numpy(
                    frame[column].to_numpy().copy()
                )
        save_file(tensors, str(partial / TENSORS))
        for model_name, model in unit.models.items():
            save_policy(model, partial / f"{model_name}.safetensors")
        payload = {"payload": unit.payload, "columns": columns, "models": list(unit.models)}
        (partial / PAYLOAD).write_text(json.dumps(payload, allow_nan=True))
        shutil.rmtree(self.directory / name, ignore_errors=True)  # a half-kept earlier try
        os.replace(partial, self.directory / name)

    def load(self, name: str, device: torch.device | str = "cpu") -> Unit:
        """Read unit ``name`` back exactly as it was saved, its models on ``device``."""
        folder = self.directory / name
        try:
            stored = json.loads((folder / PAYLOAD).read_text())
            tensors = load_file(str(folder / TENSORS))
        except (OSError, ValueError) as error:
            raise DataError(f"finished unit {str(folder)!r} is unreadable: {error}") from None
        frames = {
            frame_name: pd.DataFrame({
                column: tensors[f"frame/{frame_name}/{column}"].numpy() for column in columns
            })
            for frame_name, columns in stored["columns"].items()
        }
        own = {key.removeprefix("tensor/"): value for key, value in tensors.items()
               if key.startswith("tensor/")}
        models = {model_name: load_policy(folder / f"{model_name}.safetensors").to(device)
                  for model_name in stored["models"]}
        return Unit(own, frames, stored["payload"], models)


class TrainingStateFile:
    """A unit's training state (:class:`~neuraltrader.core.train.TrainingState`), kept
    as a unit of its own, ``NAME.training``, until the unit finishes."""

    def __init__(self, store: UnitStore, name: str, every: int) -> None:
        self.store, self.name, self.every = store, f"{name}.training", every

    def load(self) -> dict[str, Any] | None:
        if self.name not in self.store:
            return None
        unit = self.store.load(self.name)
        return _unflatten(unit.payload["skeleton"], unit.tensors)

    def save(self, state: dict[str, Any]) -> None:
        tensors: dict[str, torch.Tensor] = {}
        self.store.save(self.name, Unit(tensors=tensors,
                                        payload={"skeleton": _flatten(state, tensors)}))

    def finish(self) -> None:
        self.store.remove(self.name)


def _flatten(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """``value`` as JSON, its tensors moved into ``tensors`` (by a key it refers to);
    dicts become key-value pairs so that integer keys (an optimizer's state) stay ints."""
    if isinstance(value, torch.Tensor):
        key = str(len(tensors))
        tensors[key] = value.detach().cpu().clone()
        return {"tensor": key}
    if isinstance(value, dict):
        return {"pairs": [[key, _flatten(item, tensors)] for key, item in value.items()]}
    if isinstance(value, list | tuple):
        return {"list": [_flatten(item, tensors) for item in value]}
    return {"value": value}


def _unflatten(value: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Any:
    if "tensor" in value:
        return tensors[value["tensor"]]
    if "pairs" in value:
        return {key: _unflatten(item, tensors) for key, item in value["pairs"]}
    if "list" in value:
        return [_unflatten(item, tensors) for item in value["list"]]
    return value["value"]


__all__ = ["UNITS", "TrainingStateFile", "Unit", "UnitStore"]
