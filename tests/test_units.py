"""Finished units: written atomically, read back exactly (dtypes, values, models)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from neuraltrader import NeuralTrader
from neuraltrader.core.ensemble import make_ensemble
from neuraltrader.io.units import Unit, UnitStore


def test_a_unit_round_trips_exactly(tmp_path):
    store = UnitStore.of(tmp_path)
    frame = pd.DataFrame({
        "epoch": [1, 2], "value": torch.tensor([0.1, 0.2]).numpy(),  # float32 kept float32
        "p": [0.25, 1 / 3], "flag": [True, False],
    })
    ensemble = make_ensemble(NeuralTrader(4, 3), [2, 7])
    unit = Unit(tensors={"gains": torch.randn(5, generator=torch.Generator().manual_seed(0))},
                frames={"history": frame}, payload={"summary": {"x": 1 / 3, "n": None}},
                models={"ensemble": ensemble})
    assert "a" not in store
    store.save("a", unit)
    assert "a" in store and not list(store.directory.glob(".a.partial-*"))
    loaded = store.load("a")
    pd.testing.assert_frame_equal(loaded.frames["history"], frame)  # dtypes too
    assert torch.equal(loaded.tensors["gains"], unit.tensors["gains"])
    assert loaded.payload == unit.payload
    windows = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded.models["ensemble"](windows), ensemble.eval()(windows))
    store.discard()
    assert not store.directory.exists()


def test_a_unit_killed_mid_write_is_not_taken_for_finished(tmp_path, monkeypatch):
    """A save cut short (here: the model's file fails after the tensors were written)
    leaves no unit that looks finished, and the next save of that name succeeds."""
    import neuraltrader.io.units as units_module

    store = UnitStore.of(tmp_path)
    earlier = Unit(payload={"try": 1})
    store.save("a", earlier)

    def dying(model, path):
        raise KeyboardInterrupt  # a kill between two files of the unit

    monkeypatch.setattr(units_module, "save_policy", dying)
    unit = Unit(tensors={"x": torch.ones(3)}, payload={"try": 2},
                models={"ensemble": make_ensemble(NeuralTrader(4, 2), 2)})
    with pytest.raises(KeyboardInterrupt):
        store.save("a", unit)
    assert store.load("a").payload == {"try": 1}  # the finished unit, untouched
    monkeypatch.undo()
    store.save("a", unit)
    assert store.load("a").payload == {"try": 2}
    assert [p.name for p in store.directory.iterdir()] == ["a"]  # no partial left
