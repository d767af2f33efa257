"""SIGINT and SIGTERM: one line, exit 130 or 143, no traceback, nothing half-written."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from conftest import as_in_a_terminal, signal_when

# a run long enough to interrupt mid-training (its epochs take seconds)
COMMAND = [sys.executable, "-m", "neuraltrader", "run", "--no-progress", "--no-report",
           "--set", "train.epochs=100000", "--set", "data.datasets=momentum"]


def _interrupt(tmp_path, signum: int) -> subprocess.CompletedProcess:
    out = tmp_path / "run"
    process = subprocess.Popen([*COMMAND, "--out", str(out)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, preexec_fn=as_in_a_terminal)
    # once the staging directory exists, training has started
    stdout, stderr = signal_when(process, lambda: bool(list(tmp_path.glob(".run.incomplete-*"))),
                                 signum, "the run never started")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.mark.parametrize(("signum", "status", "word"), [
    (signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated"),
])
def test_a_signal_ends_in_one_line_and_leaves_nothing(tmp_path, signum, status, word):
    result = _interrupt(tmp_path, signum)
    assert result.returncode == status
    assert result.stderr == f"neuraltrader: {word}; nothing written\n"
    assert list(tmp_path.iterdir()) == []  # neither the run nor its staging directory


def test_an_interrupt_while_writing_the_report_leaves_a_complete_run(tmp_path, monkeypatch,
                                                                    capsys):
    """The run directory is renamed into place before the report is written: Ctrl-C
    during the report leaves a complete run, and `neuraltrader report` writes it."""
    from neuraltrader import report
    from neuraltrader.cli import main

    def interrupted(run_dir):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "write_report", interrupted)
    out = tmp_path / "run"
    assert main(["run", "--set", "data.n_train=50", "--set", "train.epochs=2",
                 "--no-progress", "--out", str(out)]) == 130
    error = capsys.readouterr().err
    assert error == (f"neuraltrader: interrupted; {out} is complete but has no report; "
                     f"write it with `neuraltrader report {out}`\n")
    assert (out / "metrics.json").exists() and not (out / "report.html").exists()
    monkeypatch.undo()
    assert main(["report", str(out)]) == 0 and (out / "report.html").exists()
