import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from neuraltrader import (
    ConfigError,
    DataError,
    DropoutTrader,
    NeuralTrader,
    TrainingError,
    fit,
    seeded,
)

COLUMNS = ["epoch", "train_recom", "train_return", "valid_recom", "valid_return"]


def small(windows, rows=3000):
    return tuple(tensor[:rows] for tensor in windows)


def test_history_frame(momentum_windows):
    with seeded(0):
        history = fit(
            NeuralTrader(4, 5), small(momentum_windows["train"]), momentum_windows["valid"],
            epochs=3, progress=False, generator=0,
        )
    assert list(history.columns) == COLUMNS
    assert history["epoch"].tolist() == [1, 2, 3]
    assert history[COLUMNS[1:]].dtypes.eq("float32").all()


def test_matches_the_tutorial_loop_without_shuffling(momentum_windows):
    """Same initial weights, same batch order: identical history and weights."""
    train, valid = small(momentum_windows["train"], 2500), momentum_windows["valid"]
    with seeded(1):
        ours = NeuralTrader(4, 5)
    theirs = NeuralTrader(4, 5)
    theirs.load_state_dict(ours.state_dict())
    history = fit(ours, train, valid, epochs=4, batch_size=1000, shuffle=False, progress=False)

    # the tutorial's loop, with the same (unshuffled) DataLoader batches
    loader = DataLoader(TensorDataset(*train), batch_size=1000, shuffle=False)
    optimizer = torch.optim.RMSprop(theirs.parameters(), lr=0.01)
    rows = []
    for _ in range(4):
        stats, batches = torch.zeros(2), 0
        theirs.train()
        for batch_x, batch_y in loader:
            recom = theirs(batch_x)
            retvrn = recom * batch_y
            optimizer.zero_grad()
            (-retvrn.mean()).backward()
            optimizer.step()
            batches += 1
            stats += torch.tensor([recom.detach().mean(), retvrn.detach().mean()])
        theirs.eval()
        valid_recom = theirs(valid[0]).detach()
        rows.append([*(stats / batches).tolist(), valid_recom.mean().item(),
                     (valid_recom * valid[1]).mean().item()])
    expected = pd.DataFrame(rows, columns=COLUMNS[1:])
    pd.testing.assert_frame_equal(
        history[COLUMNS[1:]], expected, check_dtype=False, rtol=1e-5, atol=1e-7
    )
    for ours_param, theirs_param in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(ours_param, theirs_param)


def test_seeded_training_is_reproducible_and_seeds_matter(momentum_windows):
    train, valid = small(momentum_windows["train"]), momentum_windows["valid"]

    def run(seed):
        with seeded(seed):
            return fit(DropoutTrader(4, 5), train, valid, epochs=3, progress=False,
                       generator=seed, batch_size=500)

    pd.testing.assert_frame_equal(run(5), run(5))
    assert not run(5).equals(run(6))


def test_accepts_tensor_datasets(momentum_windows):
    train, valid = small(momentum_windows["train"]), momentum_windows["valid"]
    histories = []
    for train_data, valid_data in ((train, valid), (TensorDataset(*train), TensorDataset(*valid))):
        with seeded(2):
            histories.append(fit(NeuralTrader(4, 5), train_data, valid_data, epochs=2,
                                 progress=False, generator=2))
    pd.testing.assert_frame_equal(*histories)


def test_valid_statistics_are_those_of_the_final_model(momentum_windows):
    train, (valid_x, valid_y) = small(momentum_windows["train"]), momentum_windows["valid"]
    model = DropoutTrader(4, 5)
    history = fit(model, train, (valid_x, valid_y), epochs=2, progress=False)
    with torch.no_grad():
        positions = model.eval()(valid_x)
    assert history["valid_recom"].iloc[-1] == pytest.approx(float(positions.mean()), rel=1e-6)
    assert history["valid_return"].iloc[-1] == pytest.approx(
        float((positions * valid_y).mean()), rel=1e-5
    )


def test_divergence_names_the_epoch(momentum_windows):
    calls = {"n": 0}

    def breaks_in_epoch_two(positions, targets):
        calls["n"] += 1  # 3 training batches + 1 validation call per epoch
        value = (positions * targets).mean()
        return value * float("nan") if calls["n"] > 4 else value

    with pytest.raises(TrainingError, match="diverged at epoch 2"):
        fit(NeuralTrader(4, 5), small(momentum_windows["train"]), momentum_windows["valid"],
            epochs=5, progress=False, objective=breaks_in_epoch_two)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"lr": 0.0}, ConfigError, r"lr must lie in \(0.0, inf\], got 0.0"),
        ({"lr": -0.01}, ConfigError, "got -0.01"),
        ({"epochs": 0}, ConfigError, "epochs must be an integer >= 1, got 0"),
        ({"batch_size": 0}, ConfigError, "batch_size must be an integer >= 1, got 0"),
        ({"optimizer": "lbfgs"}, ConfigError, "optimizer must be one of .*got 'lbfgs'"),
    ],
)
def test_bad_settings(momentum_windows, kwargs, error, message):
    settings = {"epochs": 1, "progress": False} | kwargs
    model = NeuralTrader(4, 5)
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(error, match=message):
        fit(model, momentum_windows["train"], momentum_windows["valid"], **settings)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_bad_data(momentum_windows):
    train_x, train_y = momentum_windows["train"]
    valid = momentum_windows["valid"]
    with pytest.raises(DataError, match="same non-zero length, got 16000 and 15999"):
        fit(NeuralTrader(4, 5), (train_x, train_y[1:]), valid, epochs=1)
    with pytest.raises(DataError, match=r"train windows have 4 columns, the model reads 3 \(lag 3"):
        fit(NeuralTrader(3, 5), (train_x, train_y), valid, epochs=1)
    broken = train_y.clone()
    broken[5] = float("nan")
    with pytest.raises(DataError, match=r"train targets must be finite, found nan at index \(5,\)"):
        fit(NeuralTrader(4, 5), (train_x, broken), valid, epochs=1)
    with pytest.raises(DataError, match="pair or a TensorDataset"):
        fit(NeuralTrader(4, 5), train_x, valid, epochs=1)
