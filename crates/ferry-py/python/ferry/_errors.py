"""What a handler raises (or puts in its result list) to tell the engine more.

The engine decides what happens next, exactly as for a Rust handler:

* ``Throttled(after=s)``: the target asked for time (a 429, a 503, a rate-limit or budget
  error). Back-pressure is not failure: the batch goes back whole, no item is charged an
  attempt or ever dead-lettered for it, every call pauses ``after`` seconds, and the engine
  learns the target's rate and paces calls at it.
* ``Retry(after=s)``: the whole batch failed for a reason that may pass (a 5xx, a lost
  connection). With ``after`` every call pauses that long.
* ``Split``: one unnamed item breaks the batch: the engine bisects until it stands alone,
  then dead-letters it.
* ``TooLarge``: the batch is too large for the target: split *and* lower the batch size.
* ``Fatal``: every item of the batch failed for good: all are dead-lettered.

Any other exception is a ``Retry`` without a delay: the batch is retried, split after
``split_after`` failures, and an item that keeps failing alone is dead-lettered after
``max_attempts``. In a returned list, ``Fatal(...)`` marks one item as failed for good and any
other exception instance marks it for retry.
"""

from __future__ import annotations

from typing import Optional

__all__ = ["FerryError", "Throttled", "Retry", "Split", "TooLarge", "Fatal"]


class FerryError(RuntimeError):
    """An engine or job failure (not a handler's outcome)."""


class _Outcome(Exception):
    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class Retry(_Outcome):
    """Retry the whole batch, at the earliest ``after`` seconds from now (all calls pause)."""

    def __init__(self, reason: str = "", *, after: Optional[float] = None) -> None:
        super().__init__(reason)
        if after is not None and after < 0:
            raise ValueError("after must be >= 0 seconds")
        self.after = after

    def __repr__(self) -> str:
        return f"Retry({self.reason!r}, after={self.after!r})"


class Throttled(Retry):
    """The target asked for time: come back after ``after`` seconds, at no cost to the items."""

    def __repr__(self) -> str:
        return f"Throttled({self.reason!r}, after={self.after!r})"


class Split(_Outcome):
    """An unnamed item breaks the batch: split it until the culprit stands alone."""


class TooLarge(Split):
    """The batch is too large for the target: split it and lower the batch size."""


class Fatal(_Outcome):
    """Failed for good: dead-letter (the whole batch when raised, one item in a result list)."""
