"""SIGINT and SIGTERM: one line, exit 130 or 143, no traceback, nothing half-written."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

# a run long enough to interrupt mid-training (its epochs take seconds)
COMMAND = [sys.executable, "-m", "neuraltrader", "run", "--no-progress", "--no-report",
           "--set", "train.epochs=100000", "--set", "data.datasets=momentum"]


def _interrupt(tmp_path, signum: int) -> subprocess.CompletedProcess:
    out = tmp_path / "run"
    process = subprocess.Popen([*COMMAND, "--out", str(out)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    # wait until the staging directory exists: training has started
    while not list(tmp_path.glob(".run.incomplete-*")):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.05)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.mark.parametrize(("signum", "status", "word"), [
    (signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated"),
])
def test_a_signal_ends_in_one_line_and_leaves_nothing(tmp_path, signum, status, word):
    result = _interrupt(tmp_path, signum)
    assert result.returncode == status
    assert result.stderr == f"neuraltrader: {word}; nothing written\n"
    assert list(tmp_path.iterdir()) == []  # neither the run nor its staging directory
