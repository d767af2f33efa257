"""Run directories that are either complete or visibly incomplete.

Files are written into a sibling ``.NAME.incomplete-PID`` directory, which is renamed
to ``NAME`` only after everything is written. A failure removes it; a killed process
leaves it under a name that says it is incomplete.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError
from .config import to_dict, to_toml

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure
    from torch import nn

RUN_KINDS = ("study", "sweep", "backtest", "demo")


def default_run_dir(root: str | Path = "runs") -> Path:
    """``runs/<YYYYmmdd-HHMMSS>``, with a numeric suffix if that name is taken."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    candidate = Path(root) / stamp
    suffix = 2
    while candidate.exists():
        candidate = Path(root) / f"{stamp}-{suffix}"
        suffix += 1
    return candidate


def check_run_dir(out: str | Path) -> Path:
    """Refuse an output path that exists and is not an empty directory."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"output directory {str(out)!r} already exists and is not empty")
    return out


@contextlib.contextmanager
def staged_run_dir(out: str | Path) -> Iterator[Path]:
    """Yield a staging directory that becomes ``out`` when the block succeeds.

    ``out`` is checked first (:func:`check_run_dir`), so a bad path fails before any
    work. If the block raises, the staging directory is removed and ``out`` is left
    as it was.
    """
    out = check_run_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.incomplete-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
        check_run_dir(out)
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_json(path: Path, payload: Any) -> None:
    """Write strict JSON: NaN and infinities become ``null``, numpy scalars numbers."""
    path.write_text(json.dumps(_strict(payload), indent=2, allow_nan=False) + "\n")


def _strict(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _strict(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclasses.dataclass
class RunRecord:
    """Everything a run writes, the one record every pipeline returns.

    Attributes
    ----------
    kind
        ``study``, ``sweep``, ``backtest`` or ``demo``; written into ``metrics.json``,
        where the report reads it.
    config, payload
        The resolved config and the ``metrics.json`` figures beside ``version``,
        ``kind`` and ``config``.
    history, figures, tables, weights
        ``history.csv``; one PNG per figure; one CSV per table (``name.csv``); one
        ``weights/name.safetensors`` per policy or ensemble.
    """

    kind: str
    config: Any
    payload: dict[str, Any]
    history: pd.DataFrame
    figures: dict[str, Figure] = dataclasses.field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = dataclasses.field(default_factory=dict)
    weights: dict[str, nn.Module] = dataclasses.field(default_factory=dict)


def write_record(record: RunRecord, directory: Path) -> None:
    """Write ``record`` into ``directory`` (a staging directory, see
    :func:`staged_run_dir`): ``config.toml``, ``metrics.json``, ``history.csv``, the
    tables, the PNGs and the weights."""
    from .. import __version__
    from .checkpoint import save_policy

    directory.joinpath("config.toml").write_text(to_toml(record.config))
    write_json(
        directory / "metrics.json",
        {"version": __version__, "kind": record.kind, "config": to_dict(record.config)}
        | record.payload,
    )
    record.history.to_csv(directory / "history.csv", index=False)
    for name, table in record.tables.items():
        table.to_csv(directory / f"{name}.csv", index=table.index.name is not None,
                     index_label=table.index.name)
    for name, figure in record.figures.items():
        figure.savefig(directory / f"{name}.png")
    if record.weights:
        (directory / "weights").mkdir()
        for name, model in record.weights.items():
            save_policy(model, directory / "weights" / f"{name}.safetensors")


__all__ = [
    "RUN_KINDS", "RunRecord", "check_run_dir", "default_run_dir", "staged_run_dir",
    "write_json", "write_record",
]
