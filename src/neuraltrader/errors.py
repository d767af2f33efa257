"""The one exception family of neuraltrader.

Every error raised on bad input derives from :class:`NeuralTraderError` (itself a
``ValueError``, as scikit-learn does for bad parameters), so callers and the CLI can
catch one type. Messages name the offending value and what was expected.
:class:`Terminated` is SIGTERM raised as an exception, and :func:`interruption_behind`
finds an interrupt behind an exception it became.
"""

from __future__ import annotations


class NeuralTraderError(ValueError):
    """Base class of every error neuraltrader raises on bad input or a failed run."""


class ConfigError(NeuralTraderError):
    """A configuration key, value, file or option is invalid."""


class DataError(NeuralTraderError):
    """Input data has the wrong shape, type or values (NaN, too short, ...)."""


class TrainingError(NeuralTraderError):
    """Training diverged (non-finite loss) or was asked to do something impossible."""


class UnitsFailedError(NeuralTraderError):
    """Units of a run's work failed for good (their worker died more often than
    ``engine.max_retries``, or they raised): ``failed`` maps each unit's name to why.
    The units that finished are kept, so the run can be resumed."""

    def __init__(self, failed: dict[str, str], total: int) -> None:
        self.failed, self.total = dict(failed), total
        first, reason = next(iter(self.failed.items()))
        more = f" and {len(failed) - 1} more" if len(failed) > 1 else ""
        super().__init__(f"{len(failed)} of {total} units failed: {first} ({reason}){more}")


class Terminated(BaseException):
    """SIGTERM, raised like ``KeyboardInterrupt`` (by the CLI's handler) so that every
    ``finally`` and staged run directory cleans up on the way out."""


def interruption_behind(error: BaseException) -> KeyboardInterrupt | Terminated | None:
    """``error`` if it is an interrupt (``KeyboardInterrupt`` or :class:`Terminated`),
    else the interrupt in its chain of causes and contexts, if any.

    Python 3.10 and 3.11 wrap an exception raised while a class is built (a dataclass
    field's ``__set_name__``) in a ``RuntimeError``, so Ctrl-C landing in a lazy import
    (torch imports ``torch._dynamo`` when the first optimizer is built) can arrive as
    one. A context suppressed by ``raise ... from None`` is not followed.
    """
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt | Terminated):
            return cause
        seen.add(id(cause))
        cause = (cause.__cause__ if cause.__cause__ is not None or cause.__suppress_context__
                 else cause.__context__)
    return None


__all__ = ["ConfigError", "DataError", "NeuralTraderError", "TrainingError",
           "Terminated", "UnitsFailedError", "interruption_behind"]
