"""Sweeps and backtests on a local Ray instance that these tests start themselves
(2 CPUs): the same files as in-process runs, a killed worker retried, a unit that
fails for good named and resumed, a killed driver resumed computing only what is
missing. Skipped where Ray (the extra neuraltrader[ray]) is not installed."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import torch_threads

ray = pytest.importorskip("ray", reason='Ray is not installed: pip install "neuraltrader[ray]"')

from neuraltrader.cli import main  # noqa: E402
from neuraltrader.pipelines.engines import ray_cluster  # noqa: E402

pytestmark = pytest.mark.ray

QUICK = ["--no-progress", "--no-report"]
SWEEP = ["sweep", "--grid", "model.hidden=2,3,4,5", "--set", "data.n_train=200",
         "--set", "train.epochs=150", "--seeds", "2", *QUICK]
BACKTEST = ["backtest", "--data", "crude", "--epochs", "20", "--seeds", "2",
            "--set", "backtest.train_years=10", *QUICK]
SWEEP_BACKTEST = ["sweep", "backtest", "--data", "crude", "--grid", "model.hidden=2,3",
                  "--grid", "backtest.cost_bps=2,20", "--set", "train.epochs=10", "--seeds", "2",
                  "--set", "backtest.train_years=10", *QUICK]
RAY = ["--engine", "ray"]


@pytest.fixture(scope="module")
def cluster():
    """A local Ray instance for this module; the runs join it (it is initialised)."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def local_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("local")
    for name, arguments in (("sweep", SWEEP), ("backtest", BACKTEST),
                            ("sweep-backtest", SWEEP_BACKTEST)):
        assert main([*arguments, "--out", str(root / name)]) == 0
    return root


def without_timings(value, path=""):
    if isinstance(value, dict):
        return {key: without_timings(item, f"{path}.{key}") for key, item in value.items()
                if not key.endswith("seconds") and f"{path}.{key}" != ".config.engine"}
    if isinstance(value, list):
        return [without_timings(item, path) for item in value]
    return value


def assert_same_run(out: Path, expected: Path) -> None:
    """The same files and figures, timings and the engine setting aside."""
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in expected.iterdir())
    for table in sorted(expected.glob("*.csv")):
        ours, theirs = (pd.read_csv(directory / table.name) for directory in (out, expected))
        timing = [column for column in theirs if column.endswith("seconds")]
        pd.testing.assert_frame_equal(ours.drop(columns=timing), theirs.drop(columns=timing),
                                      check_exact=True)
    assert without_timings(json.loads((out / "metrics.json").read_text())) == without_timings(
        json.loads((expected / "metrics.json").read_text()))
    for weights in sorted((expected / "weights").glob("*.safetensors")):
        assert (out / "weights" / weights.name).read_bytes() == weights.read_bytes()


def task_processes() -> list[int]:
    """PIDs of Ray workers now running a unit (Ray titles them after the function)."""
    running = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            title = cmdline.read_bytes()
        except OSError:
            continue
        if title.startswith(b"ray::run_unit_task"):
            running.append(int(cmdline.parent.name))
    return running


def kill_a_running_task(deadline: float = 120) -> int:
    end = time.monotonic() + deadline
    while not (running := task_processes()):
        assert time.monotonic() < end, "no unit ever ran"
        time.sleep(0.02)
    os.kill(running[0], signal.SIGKILL)
    return running[0]


class Recorded:
    """Records the units each Ray run computes (the tasks the driver submits)."""

    def __init__(self, monkeypatch):
        self.tasks: list[tuple[str, ...]] = []
        original = ray_cluster.RayEngine.run

        def run(engine, tasks):
            self.tasks += [task.names for task in tasks]
            return original(engine, tasks)

        monkeypatch.setattr(ray_cluster.RayEngine, "run", run)

    @property
    def names(self) -> list[str]:
        return [name for names in self.tasks for name in names]


def test_ray_gives_the_files_of_a_local_run(cluster, local_runs, tmp_path, monkeypatch):
    recorded = Recorded(monkeypatch)
    for name, arguments in (("sweep", SWEEP), ("backtest", BACKTEST),
                            ("sweep-backtest", SWEEP_BACKTEST)):
        assert main([*arguments, *RAY, "--out", str(tmp_path / name)]) == 0
        assert_same_run(tmp_path / name, local_runs / name)
    blocks = len(pd.read_csv(local_runs / "backtest" / "blocks.csv")["block"].unique())
    # a sweep of backtests trains once per grid point that differs in more than costs
    assert recorded.tasks == [(f"cell-{k}",) for k in range(4)] + [
        (f"block-{k}",) for k in range(blocks)] + [("cell-0", "cell-1"), ("cell-2", "cell-3")]
    config = json.loads((tmp_path / "sweep" / "metrics.json").read_text())["config"]
    assert config["engine"]["kind"] == "ray"


def test_a_ray_run_records_one_thread_and_refuses_tasks_no_node_fits(cluster, tmp_path, capsys):
    """Unset, train.threads is a Ray task's 1 CPU, whatever this process runs on, and the
    run's config.toml says so; a count larger than any node's CPUs (the cluster has 2)
    is one line before any work, where Ray would wait for such a node forever."""
    with torch_threads(2):
        assert main([*BACKTEST, *RAY, "--epochs", "2", "--out", str(tmp_path / "one")]) == 0
        assert "threads = 1" in (tmp_path / "one" / "config.toml").read_text()
        capsys.readouterr()
        assert main([*BACKTEST, *RAY, "--threads", "3", "--out", str(tmp_path / "three")]) == 2
    assert ("train.threads=3: each Ray task would take 3 CPUs, and the largest node has 2"
            in capsys.readouterr().err)
    assert not (tmp_path / "three").exists()


def test_a_worker_killed_mid_unit_is_retried_and_the_run_completes(
    cluster, local_runs, tmp_path
):
    out = tmp_path / "sweep"
    status = []
    driver = threading.Thread(target=lambda: status.append(
        main([*SWEEP, *RAY, "--out", str(out)])))
    driver.start()
    killed = kill_a_running_task()
    driver.join(timeout=300)
    assert status == [0] and killed not in task_processes()
    assert_same_run(out, local_runs / "sweep")


def test_a_unit_that_fails_for_good_is_named_and_resumes(
    cluster, local_runs, tmp_path, monkeypatch, capfd
):
    out = tmp_path / "sweep"
    status = []
    driver = threading.Thread(target=lambda: status.append(
        main([*SWEEP, *RAY, "--set", "engine.max_retries=0", "--out", str(out)])))
    driver.start()
    kill_a_running_task()
    driver.join(timeout=300)
    assert status == [1] and not out.exists()
    (staging,) = tmp_path.glob(".sweep.incomplete-*")
    failed = json.loads((staging / "metrics.json").read_text())["failed_units"]
    assert len(failed) == 1 and "Worker" in failed[0]["error"]
    assert f"unit {failed[0]['unit']} failed" in capfd.readouterr().err
    finished = {path.name for path in (staging / "units").glob("cell-*")}
    assert failed[0]["unit"] not in finished and len(finished) == 3
    recorded = Recorded(monkeypatch)
    assert main(["resume", str(out), *RAY, *QUICK]) == 0
    assert recorded.names == [failed[0]["unit"]]
    assert_same_run(out, local_runs / "sweep")


def test_a_killed_driver_resumes_on_ray_computing_only_the_missing_cells(
    cluster, local_runs, tmp_path, monkeypatch
):
    out = tmp_path / "sweep"
    driver = subprocess.Popen(
        [sys.executable, "-m", "neuraltrader", *SWEEP, *RAY, "--address", cluster,
         "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not list(tmp_path.glob(".sweep.incomplete-*/units/cell-*")):
        assert driver.poll() is None, driver.communicate()
        assert time.monotonic() < deadline, "no cell ever finished"
        time.sleep(0.02)
    driver.send_signal(signal.SIGKILL)
    driver.communicate(timeout=60)
    finished = {path.name for path in tmp_path.glob(".sweep.incomplete-*/units/cell-*")}
    assert 1 <= len(finished) < 4
    recorded = Recorded(monkeypatch)
    assert main(["resume", str(out), *RAY, "--address", cluster, *QUICK]) == 0
    assert sorted(recorded.names) == sorted({f"cell-{k}" for k in range(4)} - finished)
    assert_same_run(out, local_runs / "sweep")


def test_the_calibration_batches_give_the_same_figures_on_ray(cluster, tmp_path):
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "calibration.py"
    small = ["--quick", "--replicas", "8", "--draws", "10", "--batches", "2", "--no-progress"]
    figures = {}
    for engine, where in (("local", []), ("ray", ["--address", cluster])):
        result = subprocess.run(
            [sys.executable, str(script), *small, "--engine", engine, *where,
             "--json", str(tmp_path / f"{engine}.json")],
            capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        figures[engine] = json.loads((tmp_path / f"{engine}.json").read_text())
    assert figures["ray"].pop("engine") == "ray" and figures["local"].pop("engine") == "local"
    assert figures["ray"] == figures["local"] and figures["local"]["batches"] == 2
