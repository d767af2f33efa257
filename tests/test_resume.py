"""Kill a real run, resume it, and get what an uninterrupted run gives (timings aside),
computing only the units the killed run had not finished."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from conftest import as_in_a_terminal, signal_when

from neuraltrader.cli import main
from neuraltrader.core import train as train_module
from neuraltrader.pipelines import cell, sweep

QUICK = ["--no-progress", "--no-report"]
SWEEP = ["sweep", "--grid", "model.hidden=2,3,4,5", "--set", "data.n_train=200",
         "--set", "train.epochs=150", "--seeds", "2"]
BACKTEST = ["backtest", "--data", "crude", "--epochs", "40", "--seeds", "2",
            "--set", "backtest.train_years=10"]


def without_timings(value):
    if isinstance(value, dict):
        return {key: without_timings(item) for key, item in value.items()
                if not key.endswith("seconds")}
    if isinstance(value, list):
        return [without_timings(item) for item in value]
    return value


def metrics(out):
    return without_timings(json.loads((out / "metrics.json").read_text()))


def start_and_kill(arguments, out, unit, signum=signal.SIGKILL):
    """Start the CLI in a subprocess and send ``signum`` once unit ``unit`` is written."""
    process = subprocess.Popen([sys.executable, "-m", "neuraltrader", *arguments, "--out",
                                str(out), *QUICK], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, preexec_fn=as_in_a_terminal)
    written = f".{out.name}.incomplete-*/units/{unit}"
    _, stderr = signal_when(process, lambda: bool(list(out.parent.glob(written))), signum,
                            "the unit never appeared")
    return process.returncode, stderr


def run_whole_and_killed(arguments, tmp_path, unit):
    """Run ``arguments`` to the end into ``whole``, and again into ``killed``, SIGKILLed
    once unit ``unit`` is written; return both directories."""
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert main([*arguments, "--out", str(whole), *QUICK]) == 0
    start_and_kill(arguments, killed, unit)
    return whole, killed


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("uninterrupted")
    for name, arguments in (("sweep", SWEEP), ("backtest", BACKTEST)):
        assert main([*arguments, "--out", str(root / name), *QUICK]) == 0
    return root


def test_a_killed_sweep_resumes_computing_only_the_missing_cells(
    tmp_path, uninterrupted, monkeypatch, capsys
):
    out = tmp_path / "sweep"
    status, _ = start_and_kill(SWEEP, out, "cell-1")
    assert status == -signal.SIGKILL and not out.exists()
    finished = len(list(tmp_path.glob(".sweep.incomplete-*/units/cell-*")))
    assert 2 <= finished < 4
    computed = []
    original = sweep.run_cell
    monkeypatch.setattr(sweep, "run_cell", lambda *a, **k: computed.append(a) or original(*a, **k))
    assert main(["resume", str(out), *QUICK]) == 0
    assert len(computed) == 4 - finished  # only the missing cells
    assert metrics(out) == metrics(uninterrupted / "sweep")
    assert list(tmp_path.iterdir()) == [out]  # no staging, lock or units left
    assert not (out / "units").exists() and not (out / "request.json").exists()
    assert "SPA test" in capsys.readouterr().out


def test_an_interrupted_backtest_keeps_its_blocks_and_resumes(tmp_path, uninterrupted):
    out = tmp_path / "backtest"
    status, stderr = start_and_kill(BACKTEST, out, "block-2", signal.SIGINT)
    assert status == -signal.SIGINT
    assert stderr == ("neuraltrader: interrupted; finished work kept; resume with "
                      f"`neuraltrader resume {out}`\n")
    assert main(["resume", str(out), *QUICK]) == 0
    assert metrics(out) == metrics(uninterrupted / "backtest")


def test_rerunning_the_same_command_resumes_and_another_config_starts_afresh(
    tmp_path, monkeypatch
):
    out = tmp_path / "study"
    study = ["run", "--set", "data.n_train=100", "--set", "train.epochs=400"]
    start_and_kill(study, out, "random-mlp")
    trained = []
    original = cell._measured_cell
    monkeypatch.setattr(cell, "_measured_cell",
                        lambda *a, **k: trained.append(a[:3:2]) or original(*a, **k))
    assert main([*study, "--set", "train.lr=0.02", "--out", str(out), *QUICK]) == 0
    assert ("random", "mlp") in trained  # another config: nothing taken over
    trained.clear()
    again = tmp_path / "again"
    start_and_kill(study, again, "random-mlp")
    assert main([*study, "--out", str(again), *QUICK]) == 0
    assert ("random", "mlp") not in trained and len(trained) == 3


def test_nothing_to_resume_is_one_line(tmp_path, capsys):
    assert main(["resume", str(tmp_path / "never"), *QUICK]) == 2
    error = capsys.readouterr().err
    assert "no interrupted run to resume" in error and error.count("\n") == 1


def test_training_resumes_from_its_last_kept_state(tmp_path, monkeypatch):
    """SIGKILL mid-training with train.checkpoint_every: the resumed run trains only the
    epochs after the last kept state and ends as the uninterrupted run does."""
    study = ["run", "--set", "data.datasets=momentum", "--set", "model.models=dropout",
             "--set", "data.n_train=100", "--set", "train.epochs=1500",
             "--set", "train.checkpoint_every=100", "--seeds", "2"]
    whole, out = run_whole_and_killed(study, tmp_path, "momentum-dropout.training")
    staging = next(tmp_path.glob(".killed.incomplete-*"))
    assert not (staging / "units" / "momentum-dropout").exists()  # mid-training
    epochs = []
    original = train_module.train_epoch
    monkeypatch.setattr(train_module, "train_epoch",
                        lambda *a, **k: epochs.append(1) or original(*a, **k))
    assert main(["resume", str(out), *QUICK]) == 0
    assert 0 < len(epochs) <= 1500 - 100
    assert metrics(out) == metrics(whole)


def test_a_run_killed_while_writing_its_files_resumes(tmp_path):
    """SIGKILL once metrics.json is in the staging directory, while the PNGs are being
    written: every unit is finished, so resuming only writes the files again."""
    study = ["run", "--set", "data.n_train=100", "--set", "train.epochs=30"]
    whole = tmp_path / "whole"
    assert main([*study, "--out", str(whole), *QUICK]) == 0
    out = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "neuraltrader", *study, "--out",
                                str(out), *QUICK], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".killed.incomplete-*/metrics.json")):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    process.kill()
    process.wait(timeout=60)
    if out.exists():  # pragma: no cover - the writes outran the kill
        pytest.skip("the run finished its files before the kill landed")
    assert main(["resume", str(out), *QUICK]) == 0
    assert metrics(out) == metrics(whole)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in whole.iterdir())


def test_an_interrupt_while_writing_files_keeps_the_units_for_resume_in_process(
    tmp_path, monkeypatch, capsys
):
    """Ctrl-C in the middle of the final writes (weights half written) keeps the finished
    units; `resume`, even in the same process (a notebook), clears the half-written files
    and completes the run."""
    from neuraltrader.pipelines import study as study_module

    study = ["run", "--set", "data.n_train=60", "--set", "train.epochs=5"]
    whole = tmp_path / "whole"
    assert main([*study, "--out", str(whole), *QUICK]) == 0

    def interrupted(result, directory):
        (directory / "weights").mkdir()
        (directory / "metrics.json").write_text("{")
        raise KeyboardInterrupt

    monkeypatch.setattr(study_module, "write_run", interrupted)
    out = tmp_path / "run"
    assert main([*study, "--out", str(out), *QUICK]) == 130
    assert "finished work kept; resume with" in capsys.readouterr().err
    monkeypatch.undo()
    assert main(["resume", str(out), *QUICK]) == 0
    assert metrics(out) == metrics(whole)
    assert sorted(tmp_path.iterdir()) == [out, whole]


def test_a_lock_left_empty_by_a_dead_creator_expires(tmp_path):
    import os

    out = tmp_path / "run"
    lock = tmp_path / ".run.lock"
    lock.write_text("")
    os.utime(lock, (time.time() - 60, time.time() - 60))
    assert main(["run", "--set", "data.n_train=60", "--set", "train.epochs=2",
                 "--out", str(out), *QUICK]) == 0
    assert not lock.exists()


def test_a_request_sees_the_csv_contents_version_and_device(tmp_path):
    from neuraltrader.io.rundir import run_request
    from neuraltrader.pipelines.backtest import BacktestConfig

    prices = tmp_path / "prices.csv"
    prices.write_text("date,A\n2020-01-02,100\n")
    config = BacktestConfig()
    config.data.csv = str(prices)
    first = run_request("backtest", config)
    assert first["device"] == "cpu" and first["version"] and first["kind"] == "backtest"
    assert run_request("backtest", config) == first
    prices.write_text("date,A\n2020-01-02,101\n")  # same path, other prices
    assert run_request("backtest", config) != first


def test_a_resumed_sweep_of_a_policy_drawing_torchs_generator_gives_the_same_figures(
    tmp_path,
):
    """The transformer's nn.Dropout draws from torch's global generator; the resumed run
    skips the finished cells, so it matches the uninterrupted one only because each
    cell's training seeds that generator from its seeds."""
    arguments = ["sweep", "--grid", "model.hidden=2,4,6", "--set", "model.models=transformer",
                 "--set", "model.dropout=0.3", "--set", "data.n_train=100",
                 "--set", "train.epochs=15", "--seeds", "2"]
    whole, out = run_whole_and_killed(arguments, tmp_path, "cell-0")
    assert len(list(tmp_path.glob(".killed.incomplete-*/units/cell-*"))) < 3
    assert main(["resume", str(out), *QUICK]) == 0
    assert metrics(out) == metrics(whole)
