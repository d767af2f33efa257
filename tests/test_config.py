import numpy as np
import pytest

from neuraltrader import ConfigError
from neuraltrader.io.config import FLOAT32_MAX, INT_MAX, load_config, to_toml
from neuraltrader.pipelines.study import StudyConfig


def test_defaults_are_the_tutorials():
    config = load_config(StudyConfig)
    assert (config.data.n_train, config.data.n_valid, config.data.length, config.data.lag) == (
        1000, 100, 20, 4,
    )
    assert config.data.rho == 0.2 and config.data.datasets == ["random", "momentum"]
    assert (config.model.hidden, config.model.dropout, config.model.models) == (
        5, 0.5, ["mlp", "dropout"],
    )
    assert config.train.lr == 0.01 and config.train.batch_size == 1000
    assert config.train.epochs_for("random") == 500 and config.train.epochs_for("momentum") == 250


def test_file_then_overrides(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text("seed = 3\n[data]\nrho = 0.5\nn_train = 50\n[train]\nepochs = 9\n")
    config = load_config(StudyConfig, path, ["data.rho=0.1", "model.models=mlp", "train.lr=1"])
    assert config.seed == 3 and config.data.n_train == 50 and config.train.epochs == 9
    assert config.data.rho == 0.1  # the override wins over the file
    assert config.model.models == ["mlp"] and config.train.lr == 1.0
    assert config.train.epochs_for("random") == 9


def test_a_retired_key_is_read_and_ignored_with_a_warning(tmp_path):
    """A run directory written by 0.1.0 holds train.exact_replicas: it still loads."""
    path = tmp_path / "config.toml"
    path.write_text("[train]\nexact_replicas = false\nseeds = 3\n")
    with pytest.warns(FutureWarning, match="'train.exact_replicas' is retired and ignored"):
        config = load_config(StudyConfig, path)
    assert config.train.seeds == 3 and not hasattr(config.train, "exact_replicas")
    with pytest.raises(ConfigError, match="unknown config key 'data.exact_replicas'"):
        load_config(StudyConfig, overrides=["data.exact_replicas=true"])  # retired in [train]


def test_resolved_config_reads_back_unchanged(tmp_path):
    config = load_config(StudyConfig, overrides=["train.seeds=3", "model.position=long_short"])
    path = tmp_path / "config.toml"
    path.write_text(to_toml(config))
    assert load_config(StudyConfig, path) == config


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.nope=1", "unknown config key 'data.nope'; known keys: data.lag, data.datasets"),
        ("nope.key=1", "unknown config section 'nope'"),
        ("data.n_train=many", "config key 'data.n_train' must be an integer, got 'many'"),
        ("train.lr=true", "config key 'train.lr' must be a number, got True"),
        ("data=1", "config key 'data' is a section"),
        ("data.length=4", r"data.length \(T=4\) must exceed data.lag \(L=4\)"),
        ("data.rho=1", r"data.rho must lie in \(-1, 1\), got 1.0"),
        ("data.rho=-1.5", "got -1.5"),
        ("train.lr=0", r"train.lr must lie in \(0, inf\], got 0.0"),
        ("train.epochs=0", "train.epochs must be an integer >= 1, got 0"),
        ("model.models=mlp,cnn",
         "model.models entry must be one of 'mlp', 'dropout', 'linear', 'lstm', "
         "'transformer'; got 'cnn'"),
        ("data.datasets=[]", "must be a non-empty list of strings"),
        ("seed", "--set expects section.key=value, got 'seed'"),
        ("seed=18446744073709551616",
         r"seed must be an integer in \[0, 2\*\*63 - 1 = 9223372036854775807\] \(64 bits"),
        ("seed=-1", "seed must be an integer >= 0, got -1"),
        ("train.seeds=9223372036854775808", r"train.seeds must be an integer in \[1, 2\*\*63"),
        ("seed=" + "1" * 5000, "config key 'seed': Exceeds the limit \\(4300 digits\\)"),
        ("train.lr=1e39", r"train.lr must be finite in float32 \(\|train.lr\| <= 3.4028235e\+38\)"),
        ("train.lr=-inf", "train.lr must be a finite number, got -inf"),
        ("train.lr=" + "9" * 400, "train.lr must be finite in float32.*an integer of 1329 bits"),
        ("data.n_valid=1", r"data.n_valid \(M=1\) must be at least 2"),
        ("seed=1\nother = 2", r"config key 'seed' must be an integer, got '1\\nother = 2'"),
    ],
)
def test_bad_values_are_named(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(StudyConfig, overrides=[override])


def test_malformed_or_missing_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[data\nrho = 0.2\n")
    with pytest.raises(ConfigError, match="bad.toml' is not valid TOML"):
        load_config(StudyConfig, path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(StudyConfig, tmp_path / "missing.toml")


def test_largest_values_are_accepted():
    config = load_config(StudyConfig, overrides=[f"seed={2**63 - 1}", "train.lr=3.4e38"])
    assert config.seed == INT_MAX == 2**63 - 1 and config.train.lr == 3.4e38
    assert float(np.finfo(np.float32).max) == FLOAT32_MAX


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda path: path.mkdir(), "is a directory, expected a TOML file"),
        (lambda path: path.write_bytes(b"seed = 1\n\xff\n"), "is not UTF-8 text"),
        (lambda path: path.write_text("seed = " + "[" * 5000 + "]" * 5000),
         "values are nested too deeply"),
    ],
)
def test_unreadable_file(tmp_path, make, message):
    make(tmp_path / "study.toml")
    with pytest.raises(ConfigError, match=message):
        load_config(StudyConfig, tmp_path / "study.toml")


def test_file_name_with_a_nul_byte():
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(StudyConfig, "bad\0name.toml")
