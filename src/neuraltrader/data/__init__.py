"""Where returns come from: simulated processes (with their oracle), market data, and
the reference policies every learned one is compared with."""

from .market import BUNDLED, FILLS, KINDS, MarketData, infer_periods_per_year, load, load_csv
from .reference import buy_and_hold_position, flat_position, oracle_position
from .simulate import AR1, IIDNormal, ReturnProcess

__all__ = [
    "AR1", "BUNDLED", "FILLS", "IIDNormal", "KINDS", "MarketData", "ReturnProcess",
    "buy_and_hold_position", "flat_position", "infer_periods_per_year", "load", "load_csv",
    "oracle_position",
]
