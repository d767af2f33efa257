"""SIGINT and SIGTERM: one line, no traceback, nothing half-written; ``main`` returns 130
or 143 and the command's process ends by the signal (a shell's ``$?``: 130 or 143)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from conftest import as_in_a_terminal, signal_when

# `python -m neuraltrader run ...`, long enough to interrupt mid-training. torch imports
# torch._dynamo (about a second) when the first optimizer is built, which is where this
# test interrupts, and CPython drops a KeyboardInterrupt that lands in importlib's
# callbacks ("Exception ignored"), about one run in a hundred here: the module is
# imported first, so that the test measures the command, not that window of CPython's.
COMMAND = [sys.executable, "-c",
           "import runpy, torch._dynamo; runpy.run_module('neuraltrader', "
           "run_name='__main__', alter_sys=True)",
           "run", "--no-progress", "--no-report",
           "--set", "train.epochs=100000", "--set", "data.datasets=momentum"]


def _interrupt(tmp_path, signum: int) -> subprocess.CompletedProcess:
    out = tmp_path / "run"
    process = subprocess.Popen([*COMMAND, "--out", str(out)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, preexec_fn=as_in_a_terminal)
    # once the staging directory exists, training has started
    stdout, stderr = signal_when(process, lambda: bool(list(tmp_path.glob(".run.incomplete-*"))),
                                 signum, "the run never started")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.mark.parametrize(("signum", "word"), [
    (signal.SIGINT, "interrupted"), (signal.SIGTERM, "terminated"),
])
def test_a_signal_ends_in_one_line_and_leaves_nothing(tmp_path, signum, word):
    result = _interrupt(tmp_path, signum)
    assert result.returncode == -signum  # ended by the signal, every time
    assert result.stderr == f"neuraltrader: {word}; nothing written\n"
    assert list(tmp_path.iterdir()) == []  # neither the run nor its staging directory


@pytest.mark.parametrize("wrapped", [False, True])
def test_an_interrupt_while_writing_the_report_leaves_a_complete_run(tmp_path, monkeypatch,
                                                                    capsys, wrapped):
    """The run directory is renamed into place before the report is written: Ctrl-C
    during the report (also as Python may wrap it) leaves a complete run, and
    `neuraltrader report` writes it."""
    from neuraltrader import report
    from neuraltrader.cli import main

    def interrupted(run_dir):
        if wrapped:
            _wrapped_interrupt()
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


@pytest.mark.parametrize(("status", "ending"), [
    (130, signal.SIGINT), (143, signal.SIGTERM), (0, None), (2, None), (141, None),
])
def test_the_console_script_ends_an_interrupted_command_by_its_signal(monkeypatch, status,
                                                                      ending):
    """The status ``main`` returns becomes the process's: 130 and 143 by re-raising the
    signal with its default action (set before the exit functions run, so that a second
    Ctrl-C ends it there), others by exit."""
    import os

    from neuraltrader import cli

    calls = []
    monkeypatch.setattr(cli, "main", lambda: status)
    monkeypatch.setattr(cli.atexit, "_run_exitfuncs", lambda: calls.append("atexit"))
    monkeypatch.setattr(cli.signal, "signal", lambda signum, action: calls.append((signum, action)))
    monkeypatch.setattr(cli.os, "kill", lambda pid, signum: calls.append((pid, signum)))
    with pytest.raises(SystemExit) as stop:  # reached here only because kill is a stub
        cli.console_main()
    assert stop.value.code == status
    expected = [] if ending is None else [(ending, signal.SIG_DFL), "atexit",
                                          (os.getpid(), ending)]
    assert calls == expected


def _wrapped_interrupt():
    """Ctrl-C as Python 3.10 and 3.11 deliver it from a dataclass field's
    ``__set_name__`` (in a lazy import): a RuntimeError the KeyboardInterrupt caused."""
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt as interrupt:
        raise RuntimeError("Error calling __set_name__ on 'Field' instance") from interrupt


def test_an_interrupt_python_wrapped_is_still_an_interrupt():
    from neuraltrader.errors import Terminated, interruption_behind

    with pytest.raises(RuntimeError) as wrapped:
        _wrapped_interrupt()
    assert isinstance(interruption_behind(wrapped.value), KeyboardInterrupt)
    terminated = Terminated()
    assert interruption_behind(terminated) is terminated
    try:  # a context its author hid is not followed
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise RuntimeError("replaced") from None
    except RuntimeError as hidden:
        assert interruption_behind(hidden) is None
    for other in (RuntimeError("a failure"), SystemExit(1), GeneratorExit()):
        assert interruption_behind(other) is None


def test_a_wrapped_interrupt_mid_run_keeps_the_finished_work(tmp_path, monkeypatch, capsys):
    """The second training's optimizer is interrupted the way torch's lazy import of
    torch._dynamo can be: one line, exit 130, the first unit kept for `resume`."""
    from neuraltrader.cli import main
    from neuraltrader.core import train

    built = []

    def make_optimizer(*args, **kwargs):
        built.append(args)
        if len(built) == 2:
            _wrapped_interrupt()
        return original(*args, **kwargs)

    original = train.make_optimizer
    monkeypatch.setattr(train, "make_optimizer", make_optimizer)
    out = tmp_path / "run"
    assert main(["run", "--set", "data.n_train=50", "--set", "train.epochs=2",
                 "--no-progress", "--no-report", "--out", str(out)]) == 130
    assert capsys.readouterr().err == (
        f"neuraltrader: interrupted; finished work kept; resume with `neuraltrader resume "
        f"{out}`\n")
    assert not out.exists() and len(list(tmp_path.glob(".run.incomplete-*/units/*"))) == 1
