"""Bad input through the real CLI: exit 2, one line on stderr, nothing written.

Each case runs ``main([...])`` and checks the exit status, that stderr is the single
line ``neuraltrader: error: ...`` naming the value, and that no file or directory was
created (the whole tree under ``tmp_path``, the working directory, is compared).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from neuraltrader.cli import main
from neuraltrader.io import rundir
from neuraltrader.pipelines import study

QUICK = ["--set", "data.n_train=50", "--set", "train.epochs=1", "--set", "model.models=mlp",
         "--set", "data.datasets=random", "--no-progress", "--no-report"]

# stages a run directory, says so, and waits for a line on stdin before finishing it
HOLDER = """
import sys
from neuraltrader.io.rundir import staged_run_dir
with staged_run_dir(sys.argv[1]) as staging:
    (staging / "partial.txt").write_text("half")
    print("staged", flush=True)
    sys.stdin.readline()
"""


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    """Run in ``tmp_path``, so a default ``runs/`` would land where it is checked."""
    monkeypatch.chdir(tmp_path)


def tree(root: Path) -> set[str]:
    """Every path under ``root``, hidden ones included."""
    return {str(path.relative_to(root)) for path in root.rglob("*")}


def refused(arguments: list[str], capsys) -> str:
    """Run the CLI; assert exit 2 and one stderr line; return that line."""
    assert main(arguments) == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("neuraltrader: error: "), stderr
    assert stderr.count("\n") == 1, stderr
    return stderr


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if the study starts training."""
    def forbidden(*args, **kwargs):
        raise AssertionError("the study ran although its input was bad")

    monkeypatch.setattr(study, "run_study", forbidden)


def dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# -- config values ------------------------------------------------------------------


@pytest.mark.parametrize("seed", [2**64, 2**63])
def test_seed_beyond_64_bits_is_refused(tmp_path, capsys, no_work, seed):
    line = refused(["run", *QUICK, "--set", f"seed={seed}", "--out", "out"], capsys)
    assert f"seed must be an integer in [0, 2**63 - 1 = {2**63 - 1}]" in line
    assert f"got {seed}" in line
    assert tree(tmp_path) == set()


def test_largest_seed_is_accepted(tmp_path):
    # the replicas are seeded seed + i: 2**63 - 1 + 1 is still within torch.manual_seed
    arguments = ["run", *QUICK, "--set", f"seed={2**63 - 1}", "--set", "train.seeds=2"]
    assert main([*arguments, "--out", "out"]) == 0
    assert (tmp_path / "out" / "metrics.json").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.lr=1e39", "train.lr must be finite in float32 (|train.lr| <= 3.4028235e+38), "
                          "got 1e+39"),
        ("train.risk_aversion=-3.5e38", "train.risk_aversion must lie in [0, inf]"),
        ("train.risk_aversion=3.5e38", "train.risk_aversion must be finite in float32"),
        ("train.lr=" + "9" * 400, "train.lr must be finite in float32"),
    ],
)
def test_float_beyond_float32_is_refused(tmp_path, capsys, no_work, override, message):
    line = refused(["run", *QUICK, "--set", override, "--out", "out"], capsys)
    assert message in line
    assert tree(tmp_path) == set()


def test_a_single_validation_series_is_refused_before_training(tmp_path, capsys, no_work):
    line = refused(["run", *QUICK, "--set", "data.n_valid=1", "--out", "out"], capsys)
    assert "data.n_valid (M=1) must be at least 2" in line
    assert tree(tmp_path) == set()


# -- config files -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda path: path.mkdir(), "is a directory, expected a TOML file"),
        (lambda path: path.write_bytes(b"seed = 1\n# caf\xe9\n"),
         "is not UTF-8 text, as TOML must be: byte 0xe9 at offset 14"),
        (lambda path: path.write_text("seed = 1" + "0" * 5000 + "\n"),
         "Exceeds the limit (4300 digits)"),
        (lambda path: path.write_text("seed = " + "[" * 100_000 + "]" * 100_000 + "\n"),
         "values are nested too deeply"),
    ],
    ids=["directory", "not-utf8", "huge-integer", "deep-nesting"],
)
def test_unreadable_config_file_is_refused(tmp_path, capsys, no_work, make, message):
    make(tmp_path / "config.toml")
    before = tree(tmp_path)
    line = refused(["run", "--config", "config.toml", "--out", "out"], capsys)
    assert "config file 'config.toml'" in line and message in line
    assert tree(tmp_path) == before


# -- output paths -------------------------------------------------------------------


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="no /proc on this system")
def test_out_under_proc_is_refused(tmp_path, capsys, no_work):
    line = refused(["run", *QUICK, "--out", "/proc/neuraltrader-run"], capsys)
    assert "'/proc' does not accept new directories" in line
    assert not Path("/proc/neuraltrader-run").exists() and tree(tmp_path) == set()


def test_out_under_a_regular_file_is_refused(tmp_path, capsys, no_work):
    (tmp_path / "notes.txt").write_text("mine")
    line = refused(["run", *QUICK, "--out", "notes.txt/run"], capsys)
    assert "'notes.txt' is a file, not a directory" in line
    assert tree(tmp_path) == {"notes.txt"}


def test_out_name_longer_than_the_file_system_allows_is_refused(tmp_path, capsys, no_work):
    name_max = os.pathconf(tmp_path, "PC_NAME_MAX")
    line = refused(["run", *QUICK, "--out", f"runs/{'x' * 300}"], capsys)
    assert f"a name of 300 bytes is too long, at most {name_max - 23} fit here" in line
    assert tree(tmp_path) == set()
    # a name that fits by itself but not once staged as .NAME.incomplete-PID
    line = refused(["run", *QUICK, "--out", "x" * (name_max - 5)], capsys)
    assert "too long" in line and tree(tmp_path) == set()


def test_empty_out_is_refused(tmp_path, capsys):
    line = refused(["run", *QUICK, "--out", ""], capsys)
    assert "output directory must be a non-empty path" in line
    assert tree(tmp_path) == set()


# -- run directories ----------------------------------------------------------------


def test_second_process_into_the_same_out_is_refused_at_its_start(tmp_path, capsys, no_work):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, "out"], cwd=tmp_path,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "staged"
        before = tree(tmp_path)
        assert before == {".out.lock", f".out.incomplete-{holder.pid}",
                          f".out.incomplete-{holder.pid}/partial.txt"}
        line = refused(["run", *QUICK, "--out", "out"], capsys)
        assert f"output directory 'out' is being written by process {holder.pid}" in line
        assert tree(tmp_path) == before  # the holder's staging and lock are untouched
    finally:
        holder.communicate("done\n", timeout=60)
    assert holder.returncode == 0
    assert tree(tmp_path) == {"out", "out/partial.txt"}  # finished; lock released


def test_run_after_a_killed_run_removes_its_leftovers(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, "out"], cwd=tmp_path,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "staged"
    holder.kill()  # SIGKILL: no cleanup runs
    holder.communicate(timeout=60)
    staging = f".out.incomplete-{holder.pid}"
    assert tree(tmp_path) == {".out.lock", staging, f"{staging}/partial.txt"}
    assert main(["run", *QUICK, "--out", "out"]) == 0  # the stale lock is taken over
    assert not (tmp_path / staging).exists() and not (tmp_path / ".out.lock").exists()
    assert (tmp_path / "out" / "metrics.json").exists()


def test_stale_staging_of_another_name_is_removed_live_ones_kept(tmp_path):
    stale = tmp_path / f".other.incomplete-{dead_pid()}"
    live = tmp_path / f".busy.incomplete-{os.getppid()}"
    for directory in (stale, live):
        directory.mkdir()
        (directory / "metrics.json").write_text("{}")
    (tmp_path / ".out.lock").write_text(f"{dead_pid()}\n")
    assert main(["run", *QUICK, "--out", "out"]) == 0
    assert not stale.exists() and live.exists()
    assert not (tmp_path / ".out.lock").exists()


def test_two_runs_without_out_in_the_same_second_get_two_directories(tmp_path, monkeypatch):
    class Frozen(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2024, 1, 2, 3, 4, 5)

    monkeypatch.setattr(rundir, "dt", SimpleNamespace(datetime=Frozen))
    assert main(["run", *QUICK]) == 0
    assert main(["run", *QUICK]) == 0
    runs = sorted(path.name for path in (tmp_path / "runs").iterdir())
    assert runs == ["20240102-030405", "20240102-030405-2"]
    assert all((tmp_path / "runs" / name / "metrics.json").exists() for name in runs)


def test_run_without_out_refused_after_naming_its_directory_leaves_nothing(tmp_path):
    # the sweep's grid is checked after default_run_dir reserved runs/<timestamp>
    command = [sys.executable, "-m", "neuraltrader", "sweep", "--grid", "data.rho=5",
               "--no-progress"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr == "neuraltrader: error: data.rho must lie in (-1, 1), got 5.0\n"
    assert tree(tmp_path) == set()


# -- report on a malformed or tampered metrics.json ---------------------------------

SWEEP = {
    "version": "0", "kind": "sweep", "results": [{"model.hidden": 2, "valid_return": 0.1}],
    "verdicts": {
        "strategies": 2, "best": {"model.hidden": 2},
        "deflated_sharpe": {"deflated_sharpe_ratio": 0.5, "sharpe": 0.1,
                            "expected_max_sharpe": 0.05, "trials": 2},
        "spa": {"p_value": 0.2, "p_value_lower": 0.1, "p_value_upper": 0.3, "reps": 100},
    },
}


def _sweep_without(*path: str) -> bytes:
    metrics = json.loads(json.dumps(SWEEP))
    section = metrics
    for key in path[:-1]:
        section = section[key]
    del section[path[-1]]
    return json.dumps(metrics).encode()


def _sweep_with(value: object, *path: str) -> bytes:
    metrics = json.loads(json.dumps(SWEEP))
    section = metrics
    for key in path[:-1]:
        section = section[key]
    section[path[-1]] = value
    return json.dumps(metrics).encode()


def test_report_of_a_minimal_sweep_shows_a_null_figure_as_nan(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_bytes(_sweep_with(None, "verdicts", "spa",
                                                                "p_value"))
    assert main(["report", "run"]) == 0
    page = (tmp_path / "run" / "report.html").read_text()
    assert "SPA test against buy-and-hold: p = nan" in page


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[]", "metrics.json must hold a JSON object, got a list of 0"),
        (b"null", "metrics.json must hold a JSON object, got null"),
        (b"[" * 100_000 + b"]" * 100_000, "metrics.json is nested too deeply to read"),
        (b'{"a": ' + b"[" * 100 + b"]" * 100 + b"}", "nests deeper than 32 levels"),
        (b'{"results": [{"x": 1' + b"0" * 5000 + b"}]}", "Exceeds the limit (4300 digits)"),
        (b'{"results": [{"model": "caf\xe9"}]}', "metrics.json is not UTF-8 text (byte 0xe9"),
        (b'{"results": [', "unreadable metrics.json (Expecting value"),
        (b'{"results": {"valid_return": 1}}', "'results' must be a list of objects, got an "
                                              "object"),
        (b'{"results": [{"model": "mlp"}, 3]}', "entry 1 is the number 3"),
        (_sweep_without("verdicts"), "a sweep's metrics.json must hold 'verdicts'"),
        (_sweep_without("verdicts", "spa"), "verdicts.spa is missing"),
        (_sweep_without("verdicts", "deflated_sharpe", "sharpe"),
         "verdicts.deflated_sharpe.sharpe is missing"),
        (_sweep_with("high", "verdicts", "spa", "p_value"),
         "verdicts.spa.p_value must be a number, got the string 'high'"),
        (_sweep_with({"pbo": 0.5}, "verdicts", "pbo"), "verdicts.pbo.splits is missing"),
        (_sweep_with(7, "verdicts", "note"), "verdicts.note must be a string"),
        (_sweep_with([1, 2], "grid"), "'grid' must be an object of swept keys"),
    ],
    ids=["list", "null", "json-recursion", "deep", "huge-integer", "not-utf8", "truncated",
         "results-object", "results-number", "no-verdicts", "no-spa", "no-sharpe",
         "p-value-text", "pbo-partial", "note-number", "grid-list"],
)
def test_report_refuses_a_malformed_metrics_json(tmp_path, capsys, content, message):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_bytes(content)
    line = refused(["report", "run"], capsys)
    assert "'run/metrics.json'" in line and message in line
    assert tree(tmp_path) == {"run", "run/metrics.json"}  # no report.html, no temporary


def test_report_refuses_a_sweep_summary_without_the_swept_column(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_bytes(_sweep_with({"model.hidden": [2, 5]}, "grid"))
    (run / "summary.csv").write_text("dataset,model,valid_return\nmomentum,mlp,0.1\n")
    line = refused(["report", "run"], capsys)
    assert "'run/summary.csv': summary.csv lacks the column(s) model.hidden" in line
    assert tree(tmp_path) == {"run", "run/metrics.json", "run/summary.csv"}
