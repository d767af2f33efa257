"""Run directories that are either complete or visibly incomplete.

Files are written into a sibling ``.NAME.incomplete-PID`` directory, which is renamed
to ``NAME`` only after everything is written. A failure removes it; a killed process
leaves it under a name that says it is incomplete; the next run into the same parent
removes it once that process is gone, unless it holds finished units to resume from.
While a run stages ``NAME``, the lock file ``.NAME.lock`` beside it holds the run's
PID, so a second run into ``NAME`` is refused at its start; a lock whose process is
gone is stale and taken over.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import datetime as dt
import glob
import hashlib
import itertools
import json
import math
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, DataError, UnitsFailedError, interruption_behind
from .config import to_dict, to_toml

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure
    from torch import nn

RUN_KINDS = ("study", "sweep", "backtest", "demo")

STAGING_NAME = re.compile(r"\.(?P<name>.+)\.incomplete-(?P<pid>[0-9]{1,10})")
MAX_PID = 2**31 - 1  # a larger number in a staging name or lock is not a process id
DEFAULT_NAME_MAX = 255  # bytes per file name, where os.pathconf cannot tell
STAGING_EXTRA = len("..incomplete-") + len(str(MAX_PID))  # ".NAME.incomplete-PID" - "NAME"

# the directories default_run_dir reserved in this process, each with the root it had to
# create (or None): a run that fails or never starts removes both if they are empty
_reserved: dict[Path, Path | None] = {}


def default_run_dir(root: str | Path = "runs") -> Path:
    """``runs/<YYYYmmdd-HHMMSS>``, with a numeric suffix if that name is taken.

    The name is reserved by creating the directory (empty) with an exclusive ``mkdir``,
    so two runs started in the same second, in one process or two, get two directories.
    If no run fills it, :func:`release_run_dir` (or, at the latest, the end of the
    process) removes it again.
    """
    root = Path(root)
    new_root = None if root.exists() else root
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for suffix in itertools.count(1):
        candidate = root / (stamp if suffix == 1 else f"{stamp}-{suffix}")
        try:
            candidate.mkdir(parents=True)
        except FileExistsError:
            if candidate.is_dir():
                continue
            raise ConfigError(f"cannot create a run directory under {str(root)!r}: "
                              f"{str(candidate)!r} is a file, not a directory") from None
        except OSError as error:
            raise ConfigError(f"cannot create a run directory under {str(root)!r}: "
                              f"{error.strerror}") from None
        if not _reserved:
            atexit.register(_release_all)
        _reserved[candidate] = new_root
        return candidate
    raise AssertionError("unreachable")  # pragma: no cover


def release_run_dir(out: str | Path) -> None:
    """Give back a name :func:`default_run_dir` reserved, if the run wrote nothing into
    it (a run refused after the name was chosen). Any other path is left alone."""
    out = Path(out)
    if out not in _reserved:
        return
    root = _reserved.pop(out)
    for directory in (out, root):  # rmdir only ever removes an empty directory
        if directory is not None:
            with contextlib.suppress(OSError):
                directory.rmdir()


def _release_all() -> None:
    # at exit: a reserved name whose run never started (refused in between) is removed
    for out in list(_reserved):
        release_run_dir(out)


def check_run_dir(out: str | Path) -> Path:
    """Refuse an output path that cannot become a new run directory, before any work.

    Refused: an empty path; a path that exists and is not an empty directory; a path
    under a regular file; a name longer than the file system allows (with room for the
    staging name ``.NAME.incomplete-PID``); and a path whose nearest existing parent
    does not accept new directories (read-only, ``/proc``, no permission).
    """
    text = os.fspath(out)
    if not text or "\0" in text:
        raise ConfigError(f"output directory must be a non-empty path without NUL bytes, "
                          f"got {text!r}")
    out = Path(text)
    state = _stat(out)
    if state is not None and not stat.S_ISDIR(state.st_mode):
        raise ConfigError(f"output directory {text!r} already exists and is a file")
    if state is not None and not _is_empty(out):
        raise ConfigError(f"output directory {text!r} already exists and is not empty")
    parent = _nearest_directory(out.parent, text)
    _check_name_lengths(out.parts[len(parent.parts):], _name_max(parent), text)
    _check_writable(parent, text)
    return out


def _stat(path: Path) -> os.stat_result | None:
    """``path``'s status, or ``None`` where it cannot exist as a directory to use
    (missing, under a file, a name too long, not searchable)."""
    try:
        return path.stat()
    except OSError:
        return None


def _is_empty(directory: Path) -> bool:
    try:
        with os.scandir(directory) as entries:
            return next(entries, None) is None
    except OSError:
        return False


def _nearest_directory(path: Path, text: str) -> Path:
    """``path`` or its nearest ancestor that exists, which must be a directory."""
    for candidate in (path, *path.parents):
        state = _stat(candidate)
        if state is None:
            continue
        if not stat.S_ISDIR(state.st_mode):
            raise ConfigError(f"output directory {text!r} cannot be created: "
                              f"{str(candidate)!r} is a file, not a directory")
        return candidate
    raise ConfigError(f"output directory {text!r}: no parent of it exists")


def _name_max(directory: Path) -> int:
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):  # no pathconf (Windows), or no answer
        return DEFAULT_NAME_MAX


def _check_name_lengths(names: tuple[str, ...], name_max: int, text: str) -> None:
    """Refuse any new path component longer than ``name_max`` bytes; the last one is
    first written as ``.NAME.incomplete-PID``, so it must fit with that around it."""
    for index, name in enumerate(names):
        room = name_max - (STAGING_EXTRA if index == len(names) - 1 else 0)
        size = len(os.fsencode(name))
        if size > room:
            raise ConfigError(
                f"output directory {_short(text)}: a name of {size} bytes is too long, at "
                f"most {room} fit here (this file system allows {name_max} bytes per name, "
                f"and the run is staged as '.NAME.incomplete-PID')"
            )


def _short(text: str, limit: int = 60) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def _check_writable(directory: Path, text: str) -> None:
    """Refuse a directory that does not accept a new directory. ``os.access`` is not
    enough: root passes it where the file system still refuses (``/proc``), so a probe
    directory is made and removed at once."""
    try:
        probe = tempfile.mkdtemp(prefix=".neuraltrader-probe-", dir=directory)
    except OSError as error:
        raise ConfigError(f"output directory {text!r} cannot be created: {str(directory)!r} "
                          f"does not accept new directories ({error.strerror})") from None
    os.rmdir(probe)


def _staging_name(name: str) -> str:
    return f".{name}.incomplete-{os.getpid()}"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (another user's included)."""
    if pid == os.getpid():
        return True
    if os.name == "nt":  # there os.kill(pid, 0) would end the process: assume alive
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _read_pid(lock: Path) -> int | str | None:
    """The PID in ``lock``; its text if that is no PID; ``None`` if it is gone."""
    try:
        text = lock.read_text(encoding="utf-8", errors="replace").strip()
    except FileNotFoundError:
        return None
    except OSError:
        return ""
    return int(text) if text.isascii() and text.isdigit() and 0 < int(text) <= MAX_PID else text


def _acquire_lock(out: Path) -> Path:
    """Create ``.NAME.lock`` beside ``out`` holding this process's PID.

    A lock held by a live process refuses the run; a lock whose PID is gone (or that
    holds no PID) is stale and taken over. An empty lock is being written by its
    creator, so it counts as held.
    """
    lock = out.parent / f".{out.name}.lock"
    for _ in range(5):
        try:
            descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read_pid(lock)
            if holder == "" and _age_seconds(lock) > EMPTY_LOCK_SECONDS:
                _remove_stale_lock(lock, holder)  # its creator died before writing it
                continue
            if holder == "" or (isinstance(holder, int) and pid_alive(holder)):
                owner = f"process {holder}" if holder else "another process"
                raise ConfigError(
                    f"output directory {str(out)!r} is being written by {owner} (lock file "
                    f"{str(lock)!r}); wait for it to finish or choose another --out"
                ) from None
            _remove_stale_lock(lock, holder)
            continue
        except OSError as error:
            raise ConfigError(
                f"cannot lock output directory {str(out)!r}: {error.strerror}"
            ) from None
        with os.fdopen(descriptor, "w") as file:
            file.write(f"{os.getpid()}\n")
        return lock
    raise ConfigError(f"cannot lock output directory {str(out)!r}: {str(lock)!r} keeps "
                      f"reappearing")


EMPTY_LOCK_SECONDS = 10.0


def _age_seconds(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def _remove_stale_lock(lock: Path, holder: int | str | None) -> None:
    # Re-read just before unlinking, so a lock taken over meanwhile is left alone. The
    # window that remains is harmless to the data: the final rename refuses a non-empty
    # run directory, so two runs can never both fill ``out``.
    if holder is not None and _read_pid(lock) == holder:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()


def _release_lock(lock: Path) -> None:
    if _read_pid(lock) == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()


def remove_stale_staging(parent: Path, name: str | None = None) -> list[Path]:
    """Remove the ``.NAME.incomplete-PID`` directories in ``parent`` whose process is
    gone (a run killed before it could clean up); return them.

    One that holds finished units (``units/``, :mod:`neuraltrader.io.units`) is kept, for
    a resumed run, unless ``name`` is given: then only the staging directories of run
    directory ``name`` are removed, all of them, as ``name`` has just been completed.
    """
    from .units import UNITS

    try:
        with os.scandir(parent) as iterator:
            entries = list(iterator)
    except OSError:
        return []
    removed = []
    for entry in entries:
        match = STAGING_NAME.fullmatch(entry.name)
        if not match or not entry.is_dir(follow_symlinks=False):
            continue
        pid = int(match["pid"])
        resumable = name is None and os.path.isdir(os.path.join(entry.path, UNITS))
        if (name in (None, match["name"]) and not resumable and 0 < pid <= MAX_PID
                and not pid_alive(pid)):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
    return removed


REQUEST = "request.json"  # what a staging directory is computing, for a resumed run


def run_request(kind: str, config: Any, **extra: Any) -> dict[str, Any]:
    """What a run computes, recorded in its staging directory so that only a run of the
    same request takes its finished units over: the ``kind``, the config, any ``extra``
    (a sweep's grid), the package version, the resolved device, and the SHA-256 of a
    CSV file the config reads (a path alone would not see the file change). The
    ``[engine]`` section is left out: a run resumes on either engine."""
    from .. import __version__
    from ..core.device import resolve_device

    values = to_dict(config)
    values.pop("engine", None)  # where units run does not change them
    request = {"kind": kind, "version": __version__,
               "device": str(resolve_device(config.train.device)),
               "config": values} | extra
    csv = getattr(config.data, "csv", None)
    if csv is not None:
        try:
            request["csv_sha256"] = hashlib.sha256(Path(csv).read_bytes()).hexdigest()
        except OSError as error:
            raise DataError(f"cannot read {csv!r}: {error.strerror}") from None
    return request


def _stale_stagings(out: Path) -> list[Path]:
    """Staging directories of run directory ``out`` that no run is writing, newest first:
    their process is gone, or it is this one (an interrupted call in a notebook; this
    process holds no lock on ``out`` while it looks)."""
    stale = []
    for path in out.parent.glob(f".{glob.escape(out.name)}.incomplete-*"):
        match = STAGING_NAME.fullmatch(path.name)
        if not (match and match["name"] == out.name and path.is_dir()):
            continue
        pid = int(match["pid"])
        if pid == os.getpid() or not pid_alive(pid):
            stale.append(path)
    return sorted(stale, key=lambda path: path.stat().st_mtime, reverse=True)


def _read_request(staging: Path) -> dict[str, Any] | None:
    try:
        request = json.loads((staging / REQUEST).read_text())
    except (OSError, ValueError):
        return None
    return request if isinstance(request, dict) else None


def interrupted_request(out: str | Path) -> dict[str, Any]:
    """What the killed or interrupted run into ``out`` was computing (its request, as
    :func:`staged_run_dir` recorded it), for ``neuraltrader resume``."""
    out = Path(out)
    for staging in _stale_stagings(out):
        request = _read_request(staging)
        if request is not None:
            return request
    raise DataError(
        f"no interrupted run to resume at {str(out)!r}: no .{out.name}.incomplete-PID "
        f"directory of a finished process with a {REQUEST} beside it"
    )


@contextlib.contextmanager
def staged_run_dir(out: str | Path, request: dict[str, Any] | None = None) -> Iterator[Path]:
    """Yield a staging directory that becomes ``out`` when the block succeeds.

    ``out`` is checked first (:func:`check_run_dir`) and locked (``.NAME.lock``), so a
    bad path or a second run into the same ``out`` fails before any work; staging
    directories of killed runs in the same parent are removed
    (:func:`remove_stale_staging`). If the block raises, the staging directory is
    removed and ``out`` is left as it was (an empty directory reserved by
    :func:`default_run_dir` is removed too).

    ``request`` (JSON: the kind of run and its config) is recorded in the staging
    directory. A killed or interrupted run into the same ``out`` with the same request
    left its finished units there (:mod:`neuraltrader.io.units`): that staging
    directory is taken over, so the run resumes. An interrupt (Ctrl-C, SIGTERM) keeps
    a staging directory that holds finished units, and says how to resume.
    """
    out = check_run_dir(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot create {str(out.parent)!r}: {error.strerror}") from None
    lock = _acquire_lock(out)
    try:
        staging = out.parent / _staging_name(out.name)
        # this process's own earlier try (an interrupted call in a notebook), else a
        # dead process's, with the same request: take its finished units over
        candidates = [staging, *_stale_stagings(out)] if request is not None else []
        earlier = next((path for path in candidates
                        if path.is_dir() and _read_request(path) == request), None)
        if earlier is None:
            shutil.rmtree(staging, ignore_errors=True)
        elif earlier != staging:
            shutil.rmtree(staging, ignore_errors=True)
            os.replace(earlier, staging)
        remove_stale_staging(out.parent)
        staging.mkdir(exist_ok=True)
        _keep_only_units(staging)
        if request is not None:
            write_json(staging / REQUEST, request)
        try:
            yield staging
            (staging / REQUEST).unlink(missing_ok=True)
            check_run_dir(out)
            if out.exists():
                out.rmdir()
            os.replace(staging, out)
        except BaseException as error:
            # finished units survive any failure (an interrupt, a full disk, a device out
            # of memory): the same command, or `resume`, takes them over
            failed = isinstance(error, UnitsFailedError)  # its metrics.json names them
            if not (failed or _holds_units(staging)):
                shutil.rmtree(staging, ignore_errors=True)
            elif failed:
                error.args = (f"{error}; the rest kept in {staging.name}, its metrics.json "
                              f"names the failed units; resume with `neuraltrader resume {out}`",)
            elif (interruption := interruption_behind(error)) is not None:
                interruption.args = (
                    f"finished work kept; resume with `neuraltrader resume {out}`",)
            raise
        _reserved.pop(out, None)  # filled: no longer a reservation to give back
        remove_stale_staging(out.parent, out.name)
    finally:
        _release_lock(lock)
        release_run_dir(out)  # after a failure: the empty reserved directory, if any


def _keep_only_units(staging: Path) -> None:
    """Clear a taken-over staging directory of everything but its finished units and
    request: files its earlier try had begun to write are written again."""
    from .units import UNITS

    for entry in staging.iterdir():
        if entry.name in (UNITS, REQUEST):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _holds_units(staging: Path) -> bool:
    from .units import UNITS

    return any((staging / UNITS).glob("[!.]*"))


@contextlib.contextmanager
def write_failure(staging: Path, request: dict[str, Any]) -> Iterator[None]:
    """Within the block, units that fail for good (``UnitsFailedError``) leave a
    ``metrics.json`` in ``staging`` that names them (``failed_units``, with why), beside
    the run's kind and config, so that the incomplete run says what it lacks."""
    try:
        yield
    except UnitsFailedError as error:
        write_json(staging / "metrics.json", {
            "version": request["version"], "kind": request["kind"], "complete": False,
            "failed_units": [{"unit": name, "error": why} for name, why in error.failed.items()],
            "units": error.total, "config": request["config"],
        })
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
    "REQUEST", "interrupted_request", "run_request", "write_failure",
    "RUN_KINDS", "RunRecord", "check_run_dir", "default_run_dir", "pid_alive",
    "release_run_dir", "remove_stale_staging", "staged_run_dir", "write_json", "write_record",
]
