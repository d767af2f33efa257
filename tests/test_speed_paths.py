"""The fast paths of training: counter-based dropout masks (``exact_replicas=False``)
and the foreach RMSprop step, each against what it replaces or promises."""

import copy

import pandas as pd
import pytest
import torch

from neuraltrader import DropoutTrader, NeuralTrader, fit
from neuraltrader.core.ensemble import TraderEnsemble, make_ensemble, splitmix64
from neuraltrader.core.train import RMSprop, train_epoch

SETTINGS = {"epochs": 4, "batch_size": 700, "progress": False}
MASK64 = (1 << 64) - 1


def splitmix64_reference(seed: int, count: int) -> list[int]:
    """java.util.SplittableRandom's nextLong(), in Python integers."""
    outputs = []
    for _ in range(count):
        seed = (seed + 0x9E3779B97F4A7C15) & MASK64
        z = seed
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        outputs.append(z ^ (z >> 31))
    return outputs


def small(windows, rows=2100):
    return tuple(tensor[:rows] for tensor in windows)


@pytest.mark.parametrize("start", [0, 5])
def test_splitmix64_is_the_reference_generator(start):
    seeds = [0, 1, 2**62 + 12345, 2**63 + 7]  # the last as torch's int64: negative
    keys = torch.tensor([seed - 2**64 if seed >> 63 else seed for seed in seeds])
    outputs = splitmix64(keys, start, 6)
    assert outputs.shape == (4, 6) and outputs.dtype == torch.int64
    for seed, row in zip(seeds, outputs.tolist(), strict=True):
        assert [value & MASK64 for value in row] == splitmix64_reference(seed, start + 6)[start:]


@pytest.mark.parametrize("rate", [0.5, 0.2])
def test_counter_masks_keep_one_minus_rate_scaled(rate):
    ensemble = TraderEnsemble(DropoutTrader(4, 5, rate), [3, 8], exact_replicas=False)
    assert ensemble.mask_generators == []
    masks = torch.cat([ensemble._dropout_masks(999) for _ in range(40)], -1)  # (E, H, 40 B)
    assert masks.shape == (2, 5, 40 * 999)
    kept = masks > 0
    assert masks.unique().tolist() == [0.0, pytest.approx(1 / (1 - rate))]
    assert float(kept.float().mean()) == pytest.approx(1 - rate, abs=0.005)
    # no pattern shared by replicas, units or consecutive rows
    assert float((kept[0] == kept[1]).float().mean()) == pytest.approx(
        rate**2 + (1 - rate) ** 2, abs=0.01)
    assert not torch.equal(kept[:, 0], kept[:, 1])
    assert ensemble.mask_draws == 40 * ((5 * 999 + 3) // 4)


def test_counter_masks_belong_to_the_seed_not_the_ensemble(momentum_windows):
    """Replica s trains the same in any ensemble (its masks and batch orders come from s
    alone), though not as its solo run (other masks)."""
    train, valid = small(momentum_windows["train"]), momentum_windows["valid"]
    template = DropoutTrader(4, 5, 0.5)
    three = fit(TraderEnsemble(template, [4, 0, 9], exact_replicas=False), train, valid,
                **SETTINGS)
    alone = fit(make_ensemble(template, [9], exact_replicas=False), train, valid, **SETTINGS)
    replica = three[three.seed == 9].reset_index(drop=True)
    pd.testing.assert_frame_equal(replica, alone, check_dtype=False, rtol=1e-4, atol=1e-6)
    exact = fit(TraderEnsemble(template, [9]), train, valid, **SETTINGS)
    assert not exact["train_return"].equals(alone["train_return"])


class MemoryState:
    """A TrainingState in memory: every snapshot kept, the one of ``resume_at`` loaded."""

    every = 2

    def __init__(self) -> None:
        self.saved: dict[int, dict] = {}
        self.resume_at: int | None = None

    def load(self):
        return None if self.resume_at is None else copy.deepcopy(self.saved[self.resume_at])

    def save(self, state) -> None:
        self.saved[state["epochs_done"]] = copy.deepcopy(state)


def test_a_resumed_counter_mask_run_ends_as_an_uninterrupted_one(momentum_windows):
    train, valid = small(momentum_windows["train"]), momentum_windows["valid"]
    template = DropoutTrader(4, 5, 0.3)
    state = MemoryState()
    whole = fit(TraderEnsemble(template, [1, 2], exact_replicas=False), train, valid,
                state=state, **SETTINGS)
    assert state.saved[2]["mask_draws"] > 0
    state.resume_at = 2
    resumed = fit(TraderEnsemble(template, [1, 2], exact_replicas=False), train, valid,
                  state=state, **SETTINGS)
    pd.testing.assert_frame_equal(resumed, whole)


def test_foreach_rmsprop_steps_as_torchs(momentum_windows):
    """Bit for bit, state included: the same elementwise arithmetic, less Python."""
    windows, targets = small(momentum_windows["train"])
    for make in (lambda: NeuralTrader(4, 5), lambda: TraderEnsemble(NeuralTrader(4, 5), 3)):
        ours = make()
        theirs = copy.deepcopy(ours)
        optimizers = (RMSprop(ours.parameters(), lr=0.01),
                      torch.optim.RMSprop(theirs.parameters(), lr=0.01))
        for model, optimizer in zip((ours, theirs), optimizers, strict=True):
            for _ in range(3):
                train_epoch(model, optimizer, windows, targets, batch_size=500)
        for mine, reference in zip(ours.parameters(), theirs.parameters(), strict=True):
            assert torch.equal(mine, reference)
        mine, reference = (optimizer.state_dict() for optimizer in optimizers)
        assert mine["state"].keys() == reference["state"].keys()
        for index, state in reference["state"].items():
            assert torch.equal(mine["state"][index]["square_avg"], state["square_avg"])
            assert torch.equal(mine["state"][index]["step"], state["step"])
            assert float(state["step"]) == 3 * 5


def test_foreach_rmsprop_falls_back_to_torchs_step(momentum_windows):
    windows, targets = small(momentum_windows["train"])
    model = NeuralTrader(4, 5)
    momentum = RMSprop(model.parameters(), lr=0.01, momentum=0.9)
    train_epoch(model, momentum, windows, targets, batch_size=700)
    assert all("momentum_buffer" in state for state in momentum.state.values())
    # torch's step after the lean one carries on from its state
    plain = RMSprop(model.parameters(), lr=0.01)
    train_epoch(model, plain, windows, targets, batch_size=700)
    plain.step()
    assert all(float(state["step"]) == 4 for state in plain.state.values())


def test_train_exact_replicas_false_changes_only_the_dropout_models_of_a_study():
    from neuraltrader.io.config import load_config
    from neuraltrader.pipelines.study import StudyConfig, run_study

    small_study = ["data.n_train=100", "train.epochs=5", "train.seeds=3"]
    results = {}
    for exact in ("true", "false"):
        config = load_config(StudyConfig, overrides=[*small_study,
                                                     f"train.exact_replicas={exact}"])
        results[exact] = pd.DataFrame(run_study(config, progress=False).results).set_index(
            ["dataset", "model"])["valid_return"]
    plain = [key for key in results["true"].index if key[1] == "mlp"]
    dropout = [key for key in results["true"].index if key[1] == "dropout"]
    assert plain and dropout
    assert (results["true"][plain] == results["false"][plain]).all()
    assert (results["true"][dropout] != results["false"][dropout]).all()
