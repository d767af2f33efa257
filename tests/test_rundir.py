import json
import math
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from neuraltrader import ConfigError
from neuraltrader.io import rundir
from neuraltrader.io.rundir import default_run_dir, staged_run_dir, write_json


def test_write_json_is_strict_json(tmp_path):
    payload = {"nan": math.nan, "inf": -math.inf, "numbers": [np.float32(0.5), np.int64(3)],
               "nested": {"value": np.float64(math.nan)}, "text": "ok"}
    write_json(tmp_path / "m.json", payload)
    text = (tmp_path / "m.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"nan": None, "inf": None, "numbers": [0.5, 3],
                                "nested": {"value": None}, "text": "ok"}


# -- run directories: reserved names, locks, stale staging --------------------------

FROZEN = """
import datetime, sys, types
from neuraltrader.io import rundir
class Frozen(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return cls(2024, 1, 2, 3, 4, 5)
rundir.dt = types.SimpleNamespace(datetime=Frozen)
sys.stdin.readline()  # start together
for _ in range(20):
    out = rundir.default_run_dir(sys.argv[1])
    (out / "metrics.json").write_text("{}")  # filled, so it outlives this process
    print(out, flush=True)
"""


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def frozen_clock(monkeypatch):
    class Frozen(rundir.dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2024, 1, 2, 3, 4, 5)

    monkeypatch.setattr(rundir, "dt", SimpleNamespace(datetime=Frozen))


def test_default_run_dir_reserves_its_name(tmp_path, frozen_clock):
    first, second = default_run_dir(tmp_path / "runs"), default_run_dir(tmp_path / "runs")
    assert (first.name, second.name) == ("20240102-030405", "20240102-030405-2")
    assert first.is_dir() and second.is_dir()


def test_default_run_dir_is_atomic_across_processes(tmp_path):
    processes = [subprocess.Popen([sys.executable, "-c", FROZEN, str(tmp_path)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                 for _ in range(2)]
    outputs = [process.communicate("go\n", timeout=120)[0].split() for process in processes]
    names = [name for output in outputs for name in output]
    assert len(names) == 40 and len(set(names)) == 40
    assert len(list(tmp_path.iterdir())) == 40


def test_default_run_dir_under_a_file_is_a_config_error(tmp_path):
    (tmp_path / "runs").write_text("not a directory")
    with pytest.raises(ConfigError, match="cannot create a run directory under"):
        default_run_dir(tmp_path / "runs")


def test_a_failed_run_removes_its_reserved_directory_not_the_users(tmp_path):
    reserved, users = default_run_dir(tmp_path / "runs"), tmp_path / "mine"
    users.mkdir()
    for out in (reserved, users):
        with pytest.raises(RuntimeError), staged_run_dir(out) as staging:
            (staging / "metrics.json").write_text("{}")
            raise RuntimeError("failed")
    assert not reserved.exists() and users.is_dir()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["mine"]  # runs/ was made for it


def test_release_run_dir_removes_only_an_empty_reserved_directory(tmp_path):
    root = tmp_path / "runs"
    unused, filled = default_run_dir(root), default_run_dir(root)
    (filled / "notes.txt").write_text("mine")
    for out in (unused, filled, tmp_path):
        rundir.release_run_dir(out)
    assert not unused.exists() and (filled / "notes.txt").exists() and tmp_path.exists()
    rundir.release_run_dir(default_run_dir(tmp_path / "fresh"))
    assert not (tmp_path / "fresh").exists()  # the root it had to create goes too


def test_lock_is_held_while_staging_and_released_after(tmp_path):
    out = tmp_path / "run"
    with staged_run_dir(out) as staging:
        assert (tmp_path / ".run.lock").read_text() == f"{os.getpid()}\n"
        with (pytest.raises(ConfigError, match=f"being written by process {os.getpid()}"),
              staged_run_dir(out)):
            pass
        (staging / "metrics.json").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    with pytest.raises(ValueError), staged_run_dir(tmp_path / "other"):
        raise ValueError("failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # lock gone after failure


@pytest.mark.parametrize("content", ["{dead}\n", "not a pid\n", "99999999999\n"])
def test_stale_lock_is_taken_over(tmp_path, content):
    lock = tmp_path / ".run.lock"
    lock.write_text(content.format(dead=_dead_pid()))
    with staged_run_dir(tmp_path / "run") as staging:
        assert lock.read_text() == f"{os.getpid()}\n"
        (staging / "metrics.json").write_text("{}")
    assert not lock.exists() and (tmp_path / "run" / "metrics.json").exists()


def test_empty_lock_counts_as_held(tmp_path):
    # its creator writes the PID just after creating it
    (tmp_path / ".run.lock").write_text("")
    with (pytest.raises(ConfigError, match="being written by another process"),
          staged_run_dir(tmp_path / "run")):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == [".run.lock"]


def test_stale_staging_with_finished_units_is_kept_until_its_name_completes(tmp_path):
    dead = _dead_pid()
    resumable = tmp_path / f".run.incomplete-{dead}"
    (resumable / "units" / "random_mlp").mkdir(parents=True)
    leftover = tmp_path / f".old.incomplete-{dead}"
    leftover.mkdir()
    with staged_run_dir(tmp_path / "other") as staging:
        (staging / "metrics.json").write_text("{}")
    assert resumable.exists() and not leftover.exists()
    with staged_run_dir(tmp_path / "run") as staging:
        (staging / "metrics.json").write_text("{}")
    assert not resumable.exists()  # "run" is complete: nothing can resume into it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "run"]
