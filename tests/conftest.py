"""Shared fixtures: small seeded data sets for fast tests."""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import matplotlib
import pytest
import torch

from neuraltrader import AR1, generate_sequences

matplotlib.use("Agg")
# one thread, here and in the commands tests start as subprocesses: CI's timings stay
# stable, and results computed in two processes agree to the bit
torch.set_num_threads(1)
os.environ["OMP_NUM_THREADS"] = "1"

DOCS = Path(__file__).resolve().parents[1] / "docs"


@contextlib.contextmanager
def torch_threads(count: int | None = None) -> Iterator[None]:
    """Run the block at ``count`` torch threads (``None``: as they are), then put this
    process's count back: a command sets the count for the whole process."""
    before = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def as_in_a_terminal() -> None:
    """``preexec_fn`` of a CLI subprocess that a test interrupts like Ctrl-C: SIGINT's
    default disposition, whatever the test runner inherited (a job started with ``&``
    by a script ignores SIGINT, and so would its children, and Python then raises no
    KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def signal_when(process: subprocess.Popen, ready: Callable[[], bool], signum: int,
                what: str) -> tuple[str, str]:
    """Send ``signum`` to the CLI ``process`` once ``ready()`` holds (within 120 s, else
    fail saying ``what`` never happened); its stdout and stderr. The process is killed
    on the way out whatever happened: one that ignored the signal, or never got it,
    must not train on after the test."""
    try:
        deadline = time.monotonic() + 120
        while not ready():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, what
            time.sleep(0.02)
        process.send_signal(signum)
        return process.communicate(timeout=60)
    finally:
        process.kill()


def docs_script(name: str):
    """Import ``docs/<name>.py`` (the README generators, which import each other)."""
    if str(DOCS) not in sys.path:
        sys.path.insert(0, str(DOCS))
    return importlib.import_module(name)


@pytest.fixture(scope="module")
def momentum_windows() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Tutorial-sized AR(1) data (rho=0.2, N=1000, M=100, T=20, L=4), seeds 11 and 12."""
    process = AR1(rho=0.2)
    return {
        "train": generate_sequences(process.sample(1000, 20, seed=11), 4),
        "valid": generate_sequences(process.sample(100, 20, seed=12), 4),
    }


@pytest.fixture(scope="session")
def finished_runs(tmp_path_factory) -> dict[str, Path]:
    """One small run directory of each kind, made through the CLI (so each has the
    report that the CLI writes at the end): ``study``, ``sweep``, ``backtest``, ``demo``."""
    from neuraltrader.cli import main

    root = tmp_path_factory.mktemp("finished")
    quick = ["--no-progress"]
    commands = {
        "study": ["run", "--set", "data.n_train=200", "--set", "train.epochs=15",
                  "--set", "train.seeds=3", *quick],
        "sweep": ["sweep", "--grid", "model.hidden=2,5", "--grid", "data.rho=0,0.3",
                  "--seeds", "2", "--set", "data.n_train=200", "--set", "train.epochs=10",
                  *quick],
        "backtest": ["backtest", "--data", "crude", "--model", "linear", "--epochs", "5",
                     "--seeds", "2", "--set", "backtest.train_years=10", *quick],
        "demo": ["demo", "linear", *quick],
    }
    runs = {}
    for kind, arguments in commands.items():
        runs[kind] = root / kind
        assert main([*arguments, "--out", str(runs[kind])]) == 0
    return runs
