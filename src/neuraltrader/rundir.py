"""Run directories that are either complete or visibly incomplete.

Files are written into a sibling ``.NAME.incomplete-PID`` directory, which is renamed
to ``NAME`` only after everything is written. A failure removes it; a killed process
leaves it under a name that says it is incomplete.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import ConfigError


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
    """Write strict JSON (NaN is refused: callers turn missing figures into ``None``)."""
    path.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")


__all__ = ["check_run_dir", "default_run_dir", "staged_run_dir", "write_json"]
