"""Ferry for Python: Ferry's batch engine in-process.

Adaptive batching, adaptive concurrency, rate limits, ``Retry-After``, split-on-failure, dead
letters and progress run in Rust (with the GIL released); handlers are Python callables, sync
or ``async def``::

    import ferry

    def handler(batch):                  # a list of payloads
        return [send(p) for p in batch]  # one result per item, or raise ferry.Retry(after=2)

    with ferry.Engine(handler, "standard", max_items=100, requests_per_sec=50) as engine:
        for row in rows:
            engine.push(row, key=row["id"], priority=0)
    print(engine.report)

``ferry.run_job("job.toml")`` runs a job file as ``ferry run`` does. ``ferry.batch`` holds the
feed buffer's ``BatchStateManager`` (also importable as ``batch_config_integration``).
"""

from __future__ import annotations

from . import _ferry
from ._engine import PRESETS, DeadLetter, Engine, Progress, Report, run, run_async, run_job
from ._errors import Fatal, FerryError, Retry, Split, Throttled, TooLarge
from .batch import (
    BatchProcessingConfig,
    BatchStateManager,
    create_high_performance_batch_manager,
    create_memory_efficient_batch_manager,
    create_optimized_batch_manager,
)

__version__: str = _ferry.__version__

#: Every ``Engine`` setting: name -> what it means (unit included).
SETTINGS = dict(_ferry.setting_names())

__all__ = [
    "Engine",
    "Report",
    "Progress",
    "DeadLetter",
    "run",
    "run_async",
    "run_job",
    "PRESETS",
    "SETTINGS",
    "Retry",
    "Throttled",
    "Split",
    "TooLarge",
    "Fatal",
    "FerryError",
    "BatchStateManager",
    "BatchProcessingConfig",
    "create_optimized_batch_manager",
    "create_high_performance_batch_manager",
    "create_memory_efficient_batch_manager",
]
