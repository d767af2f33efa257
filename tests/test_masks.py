"""Counter-based dropout masks: the generator against its reference, the masks'
distribution, and a replica drawing exactly its solo run's masks (alone, in any
ensemble, on the vmap path, resumed)."""

import copy
import warnings

import pandas as pd
import pytest
import torch

from neuraltrader import DropoutTrader, NeuralTrader, fit, seeded
from neuraltrader.core.ensemble import FunctionalEnsemble, TraderEnsemble, make_ensemble
from neuraltrader.core.masks import dropout_masks, mask_outputs, splitmix64

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
def test_masks_keep_one_minus_rate_scaled(rate):
    keys = torch.tensor([3, 8])
    step = mask_outputs(5, 999)
    assert step == (5 * 999 + 3) // 4
    masks = torch.cat([dropout_masks(keys, k * step, 5, 999, rate) for k in range(40)], -1)
    assert masks.shape == (2, 5, 40 * 999)
    kept = masks > 0
    assert masks.unique().tolist() == [0.0, pytest.approx(1 / (1 - rate))]
    assert float(kept.float().mean()) == pytest.approx(1 - rate, abs=0.005)
    # no pattern shared by replicas, units or consecutive rows
    assert float((kept[0] == kept[1]).float().mean()) == pytest.approx(
        rate**2 + (1 - rate) ** 2, abs=0.01)
    assert float((kept[:, 0] == kept[:, 1]).float().mean()) == pytest.approx(
        rate**2 + (1 - rate) ** 2, abs=0.01)
    assert float((kept[..., 1:] == kept[..., :-1]).float().mean()) == pytest.approx(
        rate**2 + (1 - rate) ** 2, abs=0.01)


def test_the_key_comes_from_the_seed():
    keys = []
    for seed in (1, 1, 2):
        with seeded(seed):
            keys.append(int(DropoutTrader(4, 5).mask_keys))
    assert keys[0] == keys[1] != keys[2]
    # the key is drawn after the weights: they are NeuralTrader's under the same seed
    with seeded(1):
        plain = NeuralTrader(4, 5)
    with seeded(1):
        dropout = DropoutTrader(4, 5)
    assert torch.equal(plain.linear0.weight, dropout.linear0.weight)
    assert "mask_keys" not in dropout.state_dict()  # weights files hold weights only


def test_a_replica_draws_its_solo_runs_masks_bit_for_bit():
    windows = torch.randn(300, 4, generator=torch.Generator().manual_seed(0))
    with seeded(7):
        solo = DropoutTrader(4, 5, 0.3).train()
    ensemble = TraderEnsemble(DropoutTrader(4, 5, 0.3), [2, 7, 0]).train()
    assert int(ensemble.mask_keys[1]) == int(solo.mask_keys)
    for step in range(1, 4):  # the streams move on alike
        hidden = solo.hidden_features(windows)  # (B, H), dropped out
        full = torch.sigmoid(solo.linear0(windows))
        masks = dropout_masks(ensemble.mask_keys, ensemble.mask_draws, 5, 300, 0.3)
        torch.testing.assert_close(hidden, full * masks[1].T, rtol=0, atol=0)
        ensemble(windows)
        assert ensemble.mask_draws == solo.mask_draws == mask_outputs(5, 300) * step


@pytest.mark.parametrize("rate", [0.0, 0.4])
def test_a_replica_copy_goes_on_with_its_stream(rate):
    windows = torch.randn(40, 4, generator=torch.Generator().manual_seed(0))
    ensemble = TraderEnsemble(DropoutTrader(4, 5, rate), [6, 2]).train()
    ensemble(windows)  # one step: the streams moved on
    with seeded(2):
        solo = DropoutTrader(4, 5, rate).train()
    solo(windows)
    copy = ensemble.replica(1).train()
    assert copy.mask_draws == solo.mask_draws == (mask_outputs(5, 40) if rate else 0)
    torch.testing.assert_close(copy(windows), solo(windows), rtol=1e-6, atol=1e-7)


def test_a_replica_trains_as_its_solo_run_in_any_ensemble(momentum_windows):
    train, valid = small(momentum_windows["train"]), momentum_windows["valid"]
    template = DropoutTrader(4, 5, 0.5)
    three = fit(TraderEnsemble(template, [4, 0, 9]), train, valid, **SETTINGS)
    alone = fit(make_ensemble(template, [9]), train, valid, **SETTINGS)
    with seeded(9):
        solo = fit(DropoutTrader(4, 5, 0.5), train, valid, generator=9, **SETTINGS)
    replica = three[three.seed == 9].reset_index(drop=True)
    pd.testing.assert_frame_equal(replica, alone, check_dtype=False, rtol=1e-5, atol=1e-7)
    pd.testing.assert_frame_equal(replica.drop(columns="seed"), solo, check_dtype=False,
                                  rtol=1e-4, atol=1e-6)


class WiderDropout(DropoutTrader):
    """A subclass: its ensemble takes the generic vmap path."""


class DropoutInTurn(DropoutTrader):
    """A subclass whose ensembles run replica by replica."""

    batches_with_vmap = False


@pytest.mark.parametrize("policy_class", [WiderDropout, DropoutInTurn])
def test_the_generic_paths_draw_each_replicas_own_masks(policy_class):
    generator = torch.Generator().manual_seed(0)
    windows = torch.randn(50, 4, generator=generator)
    ensemble = make_ensemble(policy_class(4, 5, 0.5), [3, 5]).train()
    assert isinstance(ensemble, FunctionalEnsemble)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no batching-rule fallback
        steps = [ensemble(windows), ensemble(torch.stack([windows, -windows]))]
    assert ensemble.mask_draws == 2 * mask_outputs(5, 50)  # the streams moved on once a step
    for index, seed in enumerate([3, 5]):
        with seeded(seed):
            solo = policy_class(4, 5, 0.5).train()
        torch.testing.assert_close(steps[0][index], solo(windows))
        torch.testing.assert_close(steps[1][index], solo(windows if index == 0 else -windows))
        copy = ensemble.replica(index).train()  # its stream goes on where the replica's is
        assert set(copy.state_dict()) == set(solo.state_dict())
        torch.testing.assert_close(copy(windows), solo(windows))


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


@pytest.mark.parametrize("build", [
    lambda: TraderEnsemble(DropoutTrader(4, 5, 0.3), [1, 2]),
    lambda: make_ensemble(WiderDropout(4, 5, 0.3), [1, 2]),
    lambda: DropoutTrader(4, 5, 0.3),  # alone: its key is kept with the state
], ids=["batched", "vmap", "alone"])
def test_a_resumed_dropout_run_ends_as_an_uninterrupted_one(momentum_windows, build):
    train, valid = small(momentum_windows["train"]), momentum_windows["valid"]
    state = MemoryState()
    with seeded(1):
        whole = fit(build(), train, valid, state=state, generator=0, **SETTINGS)
    assert state.saved[2]["mask_draws"] == 2 * 3 * mask_outputs(5, 700)  # 2100 rows: 3 steps
    state.resume_at = 2
    with seeded(2):  # another process: the policy is built with another key
        resumed = fit(build(), train, valid, state=state, generator=0, **SETTINGS)
    pd.testing.assert_frame_equal(resumed, whole)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_the_masks_are_the_same_on_a_gpu():
    keys = torch.tensor([3, 2**61 + 5])
    torch.testing.assert_close(dropout_masks(keys.cuda(), 7, 5, 999, 0.3).cpu(),
                               dropout_masks(keys, 7, 5, 999, 0.3), rtol=0, atol=0)
