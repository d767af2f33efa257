import json
import math

import numpy as np

from neuraltrader.io.rundir import write_json


def test_write_json_is_strict_json(tmp_path):
    payload = {"nan": math.nan, "inf": -math.inf, "numbers": [np.float32(0.5), np.int64(3)],
               "nested": {"value": np.float64(math.nan)}, "text": "ok"}
    write_json(tmp_path / "m.json", payload)
    text = (tmp_path / "m.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"nan": None, "inf": None, "numbers": [0.5, 3],
                                "nested": {"value": None}, "text": "ok"}
