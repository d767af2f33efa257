"""The benchmarks run, in tiny configurations, and write their figures and targets as
JSON (no timing is asserted): a change that breaks a benchmark fails here, not the
next time someone measures."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def benchmarks(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import bench_backtest
    import bench_sweep
    import bench_train

    return {"train": bench_train, "backtest": bench_backtest, "sweep": bench_sweep}


def test_every_benchmark_records_its_host(benchmarks, capsys):
    """Figures move with the host (README, Speed): each JSON names what it ran on."""
    import bench_common
    import torch

    machine = bench_common.host("cpu")
    assert machine["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert machine["torch"] == torch.__version__ and "gpu" not in machine
    assert isinstance(machine["cores"], int) and machine["cores"] >= 1
    assert machine["cpu"] and capsys.readouterr().out.startswith(f"host: cpu {machine['cpu']},")


@pytest.mark.slow
def test_bench_train_figures(benchmarks, tmp_path):
    out = tmp_path / "train.json"
    benchmarks["train"].main(["--epochs", "2", "--sizes", "4", "--threads", "1",
                              "--json", str(out)])
    figures = json.loads(out.read_text())
    assert figures["host"]["cpu_capability"]
    assert figures["epochs"] == 2 and figures["threads"] == 1
    assert [record["replicas"] for record in figures["ensemble"]] == [4]
    assert all(record["peak_mb"] > 0 and math.isfinite(record["valid_return_mean"])
               for record in figures["ensemble"])
    assert figures["dropout"]["replicas"] == figures["vmap"]["replicas"] == 4
    targets = figures["targets"]
    assert {"fit speed-up", "dropout / plain ensemble time",
            "default study / tutorial loop time"} <= set(targets)
    assert not any(name.startswith("ensemble speed-up") for name in targets)  # 64, 256 only
    assert all(isinstance(target["met"], bool) for target in targets.values())


@pytest.mark.slow
def test_bench_backtest_ensemble_equals_the_per_seed_loop(benchmarks, tmp_path):
    out = tmp_path / "backtest.json"
    benchmarks["backtest"].main(["--models", "mlp", "--seeds", "4,16", "--epochs", "2",
                                 "--loop", "--threads", "1", "--json", str(out)])
    figures = json.loads(out.read_text())
    assert figures["host"]["cpu_capability"]
    rows = {row["seeds"]: row for row in figures["rows"]}
    assert set(rows) == {4, 16} and rows[4]["loop_seconds"] is None
    # the same policies trained apart: batched kernels round otherwise, so to 1e-4
    assert rows[16]["loop_sharpe"] == pytest.approx(rows[16]["sharpe"], rel=1e-4)
    assert set(figures["targets"]) == {"mlp: 16 seeds / 4 seeds time"}


@pytest.mark.slow
def test_bench_sweep_figures(benchmarks, tmp_path):
    out = tmp_path / "sweep.json"
    benchmarks["sweep"].main(["--epochs", "2", "--seeds", "1", "--threads", "1",
                              "--json", str(out)])
    figures = json.loads(out.read_text())
    assert figures["host"]["cpu_capability"]
    assert figures["cells"] == 18 and figures["epochs"] == 2
    assert figures["tutorial_seconds"] > 0 and "targets" not in figures  # not the full sweep
