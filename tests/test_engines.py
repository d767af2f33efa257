"""The engine layer without Ray: the driver loop (finished units skipped, new ones kept
as they arrive, failures named and kept apart), what a failed run leaves, and the
one-line errors of a missing Ray or an unreachable cluster."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence

import pytest
import torch

from neuraltrader.cli import main
from neuraltrader.errors import UnitsFailedError
from neuraltrader.io.units import Unit, UnitStore
from neuraltrader.pipelines import backtest as backtest_module
from neuraltrader.pipelines import sweep as sweep_module
from neuraltrader.pipelines.engines import Engine, LocalEngine, UnitResult, UnitTask, run_units

QUICK = ["--no-progress", "--no-report"]
SWEEP = ["sweep", "--grid", "model.hidden=2,3,4", "--set", "data.n_train=100",
         "--set", "train.epochs=5", "--seeds", "2", *QUICK]


def square(value: int) -> list[int]:
    return [value * value]


def pair(value: int) -> list[int]:
    return [value, -value]


def encode(value: int) -> Unit:
    return Unit(tensors={"value": torch.tensor(value)})


def decode(unit: Unit) -> int:
    return int(unit.tensors["value"])


class FailingEngine(Engine):
    """Runs tasks in reverse order (as a cluster may finish them) and fails those named."""

    kind = "failing"

    def __init__(self, failing: set[str]) -> None:
        self.failing, self.ran = failing, []

    def run(self, tasks: Sequence[UnitTask]) -> Iterator[UnitResult]:
        for task in reversed(tasks):
            self.ran.append(task.names)
            if set(task.names) & self.failing:
                yield UnitResult(task, error="WorkerCrashedError: the worker died")
            else:
                yield UnitResult(task, list(task.function(*task.args)))


def test_values_come_back_in_task_order_whatever_order_they_finish_in():
    tasks = [UnitTask((f"u{k}",), square, (k,)) for k in range(4)]
    tasks.append(UnitTask(("p0", "p1"), pair, (5,)))
    values = run_units(FailingEngine(set()), tasks, progress=False)
    assert list(values.items()) == [("u0", 0), ("u1", 1), ("u2", 4), ("u3", 9),
                                    ("p0", 5), ("p1", -5)]


def test_finished_units_are_read_back_and_only_missing_tasks_run(tmp_path):
    store = UnitStore(tmp_path / "units")
    store.save("u1", encode(100))  # a finished unit: read back, not recomputed
    store.save("p0", encode(7))  # half a task: the task runs whole
    engine = FailingEngine(set())
    tasks = [UnitTask((f"u{k}",), square, (k,)) for k in range(3)]
    tasks.append(UnitTask(("p0", "p1"), pair, (5,)))
    values = run_units(engine, tasks, store=store, encode=encode, decode=decode,
                       progress=False)
    assert sorted(engine.ran) == [("p0", "p1"), ("u0",), ("u2",)]
    assert values == {"u0": 0, "u1": 100, "u2": 4, "p0": 5, "p1": -5}
    assert all(name in store for name in values) and decode(store.load("u2")) == 4


def test_failed_units_are_all_named_and_the_others_kept(tmp_path, capsys):
    store = UnitStore(tmp_path / "units")
    tasks = [UnitTask((f"u{k}",), square, (k,)) for k in range(5)]
    with pytest.raises(UnitsFailedError) as raised:
        run_units(FailingEngine({"u1", "u3"}), tasks, store=store, encode=encode,
                  decode=decode, progress=False)
    assert raised.value.failed == {"u3": "WorkerCrashedError: the worker died",
                                   "u1": "WorkerCrashedError: the worker died"}
    assert str(raised.value).startswith("2 of 5 units failed: u3 (WorkerCrashedError")
    assert [name for name in ("u0", "u1", "u2", "u3", "u4") if name in store] == [
        "u0", "u2", "u4"]
    assert capsys.readouterr().err.count("neuraltrader: unit u") == 2


def test_the_local_engine_raises_a_task_error_at_once():
    def broken(value: int) -> list[int]:
        raise ZeroDivisionError(value)

    ran = []
    tasks = [UnitTask(("a",), broken, (1,)), UnitTask(("b",), lambda: ran.append(1) or [1])]
    with pytest.raises(ZeroDivisionError):
        run_units(LocalEngine(), tasks, progress=False)
    assert ran == []


def test_a_sweep_with_failed_cells_exits_1_and_leaves_a_resumable_run_naming_them(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(sweep_module, "make_engine", lambda *a: FailingEngine({"cell-1"}))
    out = tmp_path / "sweep"
    assert main([*SWEEP, "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "neuraltrader: unit cell-1 failed: WorkerCrashedError: the worker died"
    assert err[1].startswith("neuraltrader: error: 1 of 3 units failed: cell-1 (")
    assert f"resume with `neuraltrader resume {out}`" in err[1] and len(err) == 2
    assert not out.exists()
    (staging,) = tmp_path.glob(".sweep.incomplete-*")
    failure = json.loads((staging / "metrics.json").read_text())
    assert failure["complete"] is False and failure["units"] == 3
    assert failure["failed_units"] == [
        {"unit": "cell-1", "error": "WorkerCrashedError: the worker died"}]
    assert sorted(path.name for path in (staging / "units").iterdir()) == ["cell-0", "cell-2"]
    monkeypatch.undo()
    computed = []
    original = sweep_module.run_cell
    monkeypatch.setattr(sweep_module, "run_cell",
                        lambda *a, **k: computed.append(a[2]) or original(*a, **k))
    assert main(["resume", str(out), *QUICK]) == 0
    assert len(computed) == 1 and "failed_units" not in json.loads(
        (out / "metrics.json").read_text())


def test_a_backtest_whose_every_block_failed_still_names_them(tmp_path, monkeypatch):
    monkeypatch.setattr(backtest_module, "make_engine",
                        lambda *a: FailingEngine({f"block-{k}" for k in range(40)}))
    out = tmp_path / "backtest"
    assert main(["backtest", "--data", "crude", "--model", "linear", "--epochs", "2",
                 "--seeds", "1", "--set", "backtest.train_years=10", "--out", str(out),
                 *QUICK]) == 1
    (staging,) = tmp_path.glob(".backtest.incomplete-*")
    failed = json.loads((staging / "metrics.json").read_text())["failed_units"]
    assert [unit["unit"] for unit in failed][-1] == "block-0" and len(failed) > 10


def test_the_engine_is_not_part_of_the_run_request(tmp_path):
    from neuraltrader.io.config import load_config
    from neuraltrader.io.rundir import run_request
    from neuraltrader.pipelines.sweep import SweepConfig

    local = load_config(SweepConfig)
    on_ray = load_config(SweepConfig, overrides=["engine.kind=ray", "engine.max_retries=0"])
    assert run_request("sweep", local) == run_request("sweep", on_ray)


def test_asking_for_ray_without_it_installed_is_one_line_naming_the_extra(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    out = tmp_path / "sweep"
    assert main([*SWEEP, "--engine", "ray", "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        "neuraltrader: error: engine.kind='ray' needs Ray, which is not installed: "
        'pip install "neuraltrader[ray]"\n')
    assert list(tmp_path.iterdir()) == []


def test_an_address_without_the_ray_engine_is_refused(tmp_path, capsys):
    assert main([*SWEEP, "--address", "127.0.0.1:6379", "--out", str(tmp_path / "x")]) == 2
    assert "engine.address='127.0.0.1:6379' needs engine.kind='ray'" in capsys.readouterr().err


def test_the_local_engine_never_imports_ray(tmp_path):
    code = ("import sys; from neuraltrader.cli import main; "
            f"assert main({[*SWEEP, '--out', str(tmp_path / 'sweep')]!r}) == 0; "
            "assert 'ray' not in sys.modules, 'ray was imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def unused_port() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        return listener.getsockname()[1]


@pytest.mark.parametrize("address", ["127.0.0.1:{port}", "ray://127.0.0.1:{port}"])
def test_an_unreachable_cluster_is_one_line_before_anything_is_written(
    tmp_path, capsys, address
):
    pytest.importorskip("ray", reason="Ray is not installed (the extra neuraltrader[ray])")
    address = address.format(port=unused_port())
    assert main([*SWEEP, "--engine", "ray", "--address", address,
                 "--out", str(tmp_path / "sweep")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"neuraltrader: error: cannot reach a Ray cluster at {address!r}: ")
    assert err.count("\n") == 1 and list(tmp_path.iterdir()) == []


def test_a_malformed_address_is_named():
    pytest.importorskip("ray", reason="Ray is not installed (the extra neuraltrader[ray])")
    from neuraltrader.errors import ConfigError
    from neuraltrader.pipelines.engines.ray_cluster import check_reachable

    for address in ("localhost", "host:port", ":6379"):
        with pytest.raises(ConfigError, match="host:port, ray://host:port or auto"):
            check_reachable(address)
