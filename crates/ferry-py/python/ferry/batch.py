"""The feed buffer's face over Ferry's engine: ``BatchStateManager`` and its configuration.

A Python app feeds entries with ``queue_entry(entry, source, uuid, priority=0|1|2)``; a
``flush_callback`` receives batches when a trigger fires. The triggers are the engine's:

* **size**: the batch reached the current size (adaptive between ``min_batch_size`` and
  ``max_batch_size``, starting at ``size_threshold``, toward ``performance_target_ms``);
* **time**: a normal entry waited ``time_threshold_seconds`` (capped by
  ``max_buffer_age_seconds``);
* **priority**: a high entry (1) waited 40 % of that, an urgent one (2) 20 % (the seed's
  300 s / 120 s / 60 s); priority entries board first;
* **memory**: entries held (waiting or being flushed) reached ``memory_pressure_threshold``
  (85 %) of ``max_buffer_size``; at ``emergency_memory_threshold`` (95 %) ``queue_entry``
  waits for room (back-pressure, nothing is dropped);
* **manual** / **shutdown**: ``flush()`` and ``shutdown()`` drain everything.

The engine does not tell *why* a batch left, so each batch's reason is read off the batch
(full? an entry past its wait? entries held over the watermark?), counted in
``get_detailed_stats()["flush_reasons"]`` and logged on the ``ferry.batch`` logger. A
callback that raises is retried, then the batch is split, then the entry that still fails
alone is dead-lettered (``stats["system_health"]["dead_lettered"]``).

``BatchProcessingConfig.from_env()`` reads the seed's variables: ``BATCH_MAX_BUFFER_SIZE``,
``BATCH_SIZE_THRESHOLD``, ``BATCH_TIME_THRESHOLD_SEC``, ``BATCH_ENABLE_ADAPTIVE_SIZING``,
``BATCH_ENABLE_PRIORITY_FLUSHING``, ``BATCH_PERFORMANCE_TARGET_MS``.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import math
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, List, Mapping, Optional

from ._engine import Engine

__all__ = [
    "BatchProcessingConfig",
    "BatchStateManager",
    "QueuedEntry",
    "FLUSH_REASONS",
    "create_optimized_batch_manager",
    "create_high_performance_batch_manager",
    "create_memory_efficient_batch_manager",
    "get_global_batch_manager",
    "get_batch_performance_report",
    "log_batch_performance_summary",
]

logger = logging.getLogger("ferry.batch")

#: Why a batch left: counted in ``get_detailed_stats()["flush_reasons"]``.
FLUSH_REASONS = ("size", "time", "priority", "memory", "manual", "shutdown")

#: Share of ``time_threshold_seconds`` a high (1) and an urgent (2) entry may wait.
PRIORITY_WAIT_SHARE = {0: 1.0, 1: 0.4, 2: 0.2}


def _env_bool(name: str, raw: str) -> bool:
    v = raw.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={raw!r}: expected true or false")


def _env_num(name: str, raw: str, kind: Callable[[str], Any]) -> Any:
    try:
        value = kind(raw.strip())
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected a number") from None
    if value <= 0:
        raise ValueError(f"{name}={raw!r}: must be greater than zero")
    return value


#: The seed's environment variables: name -> (field, parser).
ENVIRONMENT = {
    "BATCH_MAX_BUFFER_SIZE": ("max_buffer_size", int),
    "BATCH_SIZE_THRESHOLD": ("size_threshold", int),
    "BATCH_TIME_THRESHOLD_SEC": ("time_threshold_seconds", float),
    "BATCH_ENABLE_ADAPTIVE_SIZING": ("enable_adaptive_sizing", bool),
    "BATCH_ENABLE_PRIORITY_FLUSHING": ("enable_priority_flushing", bool),
    "BATCH_PERFORMANCE_TARGET_MS": ("performance_target_ms", float),
}


@dataclass(frozen=True)
class BatchProcessingConfig:
    """The feed buffer's settings, with the seed's names and defaults."""

    # Buffer management
    max_buffer_size: int = 1000
    size_threshold: int = 25
    time_threshold_seconds: float = 300.0
    # Performance optimization
    enable_adaptive_sizing: bool = True
    enable_priority_flushing: bool = True
    enable_performance_monitoring: bool = True
    # Performance targets
    performance_target_ms: float = 2000.0
    throughput_target_eps: float = 10.0
    # Ferry's additions: the adaptive range, memory pressure, and the engine underneath
    min_batch_size: int = 5
    max_batch_size: int = 50
    memory_pressure_threshold: float = 0.85
    emergency_memory_threshold: float = 0.95
    max_concurrent_flushes: int = 1
    engine_preset: str = "standard"

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None, **defaults: Any) -> "BatchProcessingConfig":
        """``defaults`` (or the seed's defaults), overridden by the ``BATCH_*`` variables."""
        env = os.environ if environ is None else environ
        values = dict(defaults)
        for name, (fld, kind) in ENVIRONMENT.items():
            raw = env.get(name)
            if raw is None or raw.strip() == "":
                continue
            values[fld] = _env_bool(name, raw) if kind is bool else _env_num(name, raw, kind)
        return cls(**values)

    def wait_for(self, priority: int, max_age: Optional[float] = None) -> float:
        """Seconds an entry of ``priority`` may wait for its batch."""
        base = self.time_threshold_seconds
        if max_age is not None:
            base = min(base, max_age)
        share = PRIORITY_WAIT_SHARE.get(priority, 1.0) if self.enable_priority_flushing else 1.0
        return base * share

    def engine_settings(self, max_age: Optional[float] = None) -> Dict[str, Any]:
        """The engine settings this configuration stands for. Entries count 1 byte each, so
        the engine's memory limits are counts of entries."""
        lo = max(1, min(self.min_batch_size, self.size_threshold))
        hi = max(self.size_threshold, self.max_batch_size if self.enable_adaptive_sizing else self.size_threshold)
        high = max(1, math.ceil(self.max_buffer_size * self.memory_pressure_threshold))
        hard = max(high, math.ceil(self.max_buffer_size * self.emergency_memory_threshold), hi)
        s: Dict[str, Any] = {
            "name": "batch-state-manager",
            "max_items": hi,
            "max_bytes": hi,
            "max_wait": self.wait_for(0, max_age),
            "max_wait_high": self.wait_for(1, max_age),
            "max_wait_urgent": self.wait_for(2, max_age),
            "memory_high_watermark": high,
            "memory_hard_limit": hard,
            "concurrency": self.max_concurrent_flushes,
        }
        if self.enable_adaptive_sizing:
            s.update(
                adaptive_batch_size=True,
                batch_size=self.size_threshold,
                min_batch_size=lo,
                target_latency=self.performance_target_ms / 1000.0,
            )
        else:
            s["adaptive_batch_size"] = False
        return s


@dataclass
class QueuedEntry:
    """One queued entry, as the flush callback receives it."""

    entry: Any
    source: str
    uuid: str
    priority: int = 0
    queued_at: float = 0.0
    attempts: int = 0


def _arity(fn: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    n = 0
    for p in params:
        if p.kind is p.VAR_POSITIONAL:
            return 2
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty:
            n += 1
    return n


class BatchStateManager:
    """A prioritised entry buffer that calls ``flush_callback`` with batches.

    ``flush_callback`` may take no argument, the batch (a list of ``QueuedEntry``), or the
    batch and the flush reason. ``config`` is a ``BatchProcessingConfig`` (or any object with
    its attribute names; default: ``BatchProcessingConfig.from_env()``); the seed's keyword
    form ``BatchStateManager(max_buffer_size=..., max_buffer_age_seconds=...,
    flush_config=..., enable_performance_monitoring=...)`` works too.
    """

    def __init__(
        self,
        flush_callback: Optional[Callable[..., Any]] = None,
        config: Any = None,
        *,
        max_buffer_size: Optional[int] = None,
        max_buffer_age_seconds: Optional[float] = None,
        flush_config: Any = None,
        enable_performance_monitoring: Optional[bool] = None,
    ) -> None:
        cfg = _as_config(config if config is not None else flush_config)
        overrides: Dict[str, Any] = {}
        if max_buffer_size is not None:
            overrides["max_buffer_size"] = max_buffer_size
        if enable_performance_monitoring is not None:
            overrides["enable_performance_monitoring"] = enable_performance_monitoring
        self.config = dataclasses.replace(cfg, **overrides)
        self.max_buffer_age_seconds = max_buffer_age_seconds
        self.flush_callback = flush_callback
        self._arity = _arity(flush_callback) if flush_callback is not None else 0
        self._lock = threading.Lock()
        # Serializes producers with flush/shutdown, so no entry is pushed into an engine that
        # is being drained.
        self._feed = threading.Lock()
        self._engine: Optional[Engine] = None
        self._draining: Optional[str] = None
        self._pending = [0, 0, 0]
        self._oldest: Deque[float] = deque()
        self._created = time.monotonic()
        self._first_queued: Optional[float] = None
        self._queued = 0
        self._processed = 0
        self._batches = 0
        self._callback_s = 0.0
        self._last_ms = 0.0
        self._max_ms = 0.0
        self._errors = 0
        self._dead = 0
        self._retries = 0
        self._splits = 0
        self._reasons = {r: 0 for r in FLUSH_REASONS}
        self._events: Deque[Dict[str, Any]] = deque(maxlen=100)
        self._last_size = self.config.size_threshold
        self._dead_letters: List[Any] = []

    # -- the engine ------------------------------------------------------------------------

    def _start(self) -> Engine:
        if self._engine is None:
            settings = self.config.engine_settings(self.max_buffer_age_seconds)
            self._engine = Engine(self._handle, self.config.engine_preset, intake_capacity=max(1, min(64, self.config.max_buffer_size // 20)), **settings)
        return self._engine

    def _drain(self, reason: str) -> int:
        with self._feed:
            engine = self._engine
            if engine is None:
                return 0
            self._draining = reason
            try:
                report = engine.finish()
            finally:
                self._draining = None
                self._engine = None
        with self._lock:
            self._dead += report.dead_lettered
            self._retries += report.retries
            self._splits += report.splits
            self._dead_letters.extend(report.dead_letters)
        return report.succeeded

    def _reason(self, batch: List[QueuedEntry], now: float) -> str:
        engine = self._engine
        size = engine.progress().batch_size if engine is not None else self.config.size_threshold
        if len(batch) >= max(1, size):
            return "size"
        if self._draining is not None:
            return self._draining
        held = sum(self._pending)
        if held >= self.config.max_buffer_size * self.config.memory_pressure_threshold:
            return "memory"
        late = max(batch, key=lambda e: (now - e.queued_at) / max(self.config.wait_for(e.priority, self.max_buffer_age_seconds), 1e-9))
        return "priority" if late.priority > 0 else "time"

    def _handle(self, batch: List[QueuedEntry]) -> None:
        now = time.monotonic()
        first = [e for e in batch if e.attempts == 0]
        reason = "retry" if not first else self._reason(batch, now)
        for e in batch:
            e.attempts += 1
        with self._lock:
            if reason != "retry":
                self._reasons[reason] += 1
                self._batches += 1
            engine = self._engine
            if engine is not None:
                size = engine.progress().batch_size
                if size != self._last_size:
                    self._events.append({"time": time.time(), "event": "batch_size", "from": self._last_size, "to": size})
                    logger.debug("adaptive batch size %d -> %d", self._last_size, size)
                    self._last_size = size
        logger.info("flush: %d entries, reason=%s", len(batch), reason)
        started = time.monotonic()
        try:
            if self.flush_callback is None:
                pass
            elif self._arity == 0:
                self.flush_callback()
            elif self._arity == 1:
                self.flush_callback(batch)
            else:
                self.flush_callback(batch, reason)
        except BaseException as e:
            with self._lock:
                self._errors += 1
            logger.warning("flush callback failed for %d entries (reason=%s): %r", len(batch), reason, e)
            logger.debug("flush callback traceback", exc_info=True)
            raise
        finally:
            ms = (time.monotonic() - started) * 1000.0
            with self._lock:
                self._callback_s += ms / 1000.0
                self._last_ms = ms
                self._max_ms = max(self._max_ms, ms)
                for e in first:
                    self._pending[e.priority] -= 1
        with self._lock:
            self._processed += len(batch)

    # -- the seed's API --------------------------------------------------------------------

    def queue_entry(self, entry: Any, source: str, uuid: str, priority: int = 0) -> bool:
        """Queues one entry (priority 0 normal, 1 high, 2 urgent); waits while the buffer is
        over its emergency level. Returns ``True`` once queued."""
        if priority not in (0, 1, 2):
            raise ValueError(f"priority must be 0, 1 or 2, got {priority!r}")
        now = time.monotonic()
        e = QueuedEntry(entry, source, str(uuid), priority, now)
        with self._lock:
            self._pending[priority] += 1
            self._queued += 1
            if self._first_queued is None:
                self._first_queued = now
        try:
            with self._feed:
                self._start().push(e, key=e.uuid, priority=priority, size=1)
        except BaseException:
            with self._lock:
                self._pending[priority] -= 1
                self._queued -= 1
            raise
        return True

    def flush(self) -> int:
        """Flushes everything queued now and waits for it; returns how many entries succeeded."""
        return self._drain("manual")

    def shutdown(self) -> int:
        """Flushes everything and stops (a later ``queue_entry`` starts again)."""
        n = self._drain("shutdown")
        self._log_summary()
        return n

    def __enter__(self) -> "BatchStateManager":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    def get_detailed_stats(self) -> Dict[str, Any]:
        """Buffer state, performance metrics, flush reasons, system health and optimization
        events, as the seed's ``get_detailed_stats`` returns them."""
        engine = self._engine
        progress = engine.progress() if engine is not None else None
        now = time.monotonic()
        with self._lock:
            pending = sum(self._pending)
            batches = self._batches
            calls = max(1, batches)
            span = now - self._first_queued if self._first_queued is not None else 0.0
            throughput = self._processed / span if span > 0 else 0.0
            avg_ms = self._callback_s * 1000.0 / calls if batches else 0.0
            dead = self._dead + (progress.dead_lettered if progress else 0)
            cfg = self.config
            health = "healthy"
            if self._errors or dead:
                health = "degraded"
            if pending >= cfg.max_buffer_size * cfg.emergency_memory_threshold:
                health = "critical"
            return {
                "buffer": {
                    "pending_entries": pending,
                    "pending_by_priority": {"normal": self._pending[0], "high": self._pending[1], "urgent": self._pending[2]},
                    "max_buffer_size": cfg.max_buffer_size,
                    "utilization": pending / cfg.max_buffer_size,
                    "memory_pressure": pending / cfg.max_buffer_size,
                    "current_batch_size": progress.batch_size if progress else self._last_size,
                    "size_threshold": cfg.size_threshold,
                    "time_threshold_seconds": cfg.time_threshold_seconds,
                },
                "performance": {
                    "throughput_eps": throughput,
                    "avg_processing_time_ms": avg_ms,
                    "last_processing_time_ms": self._last_ms,
                    "max_processing_time_ms": self._max_ms,
                    "avg_batch_size": self._processed / calls if batches else 0.0,
                    "total_entries_queued": self._queued,
                    "total_entries_processed": self._processed,
                    "total_batches": batches,
                    "performance_target_ms": cfg.performance_target_ms,
                    "throughput_target_eps": cfg.throughput_target_eps,
                    "uptime_seconds": now - self._created,
                },
                "flush_reasons": dict(self._reasons),
                "system_health": {
                    "status": health,
                    "errors": self._errors,
                    "dead_lettered": dead,
                    "retries": self._retries + (progress.retries if progress else 0),
                    "splits": self._splits + (progress.splits if progress else 0),
                    "meets_processing_target": avg_ms <= cfg.performance_target_ms,
                    "meets_throughput_target": throughput >= cfg.throughput_target_eps,
                },
                "optimization_events": list(self._events),
                "config": dataclasses.asdict(cfg),
            }

    @property
    def dead_letters(self) -> List[Any]:
        """Entries that failed for good (after ``flush``/``shutdown``)."""
        return list(self._dead_letters)

    def _log_summary(self) -> None:
        if not self.config.enable_performance_monitoring:
            return
        s = self.get_detailed_stats()
        p = s["performance"]
        logger.info(
            "batch performance: %d entries in %d batches, %.2f eps, %.1f ms per batch, reasons %s, health %s",
            p["total_entries_processed"], p["total_batches"], p["throughput_eps"],
            p["avg_processing_time_ms"], s["flush_reasons"], s["system_health"]["status"],
        )


def _as_config(config: Any) -> BatchProcessingConfig:
    if config is None:
        return BatchProcessingConfig.from_env()
    if isinstance(config, BatchProcessingConfig):
        return config
    if isinstance(config, Mapping):
        return BatchProcessingConfig(**config)
    # Any object with the seed's attribute names (its own frozen dataclass, for one).
    names = [f.name for f in dataclasses.fields(BatchProcessingConfig)]
    return BatchProcessingConfig(**{n: getattr(config, n) for n in names if hasattr(config, n)})


_GLOBAL: Optional[BatchStateManager] = None


def _register(m: BatchStateManager) -> BatchStateManager:
    global _GLOBAL
    _GLOBAL = m
    return m


def create_optimized_batch_manager(flush_callback: Optional[Callable[..., Any]] = None) -> BatchStateManager:
    """The standard buffer: the seed's defaults (25 per batch, 5-50 adaptive, 300 s), read
    through the ``BATCH_*`` variables; the engine's ``standard`` preset."""
    return _register(BatchStateManager(flush_callback, BatchProcessingConfig.from_env()))


def create_high_performance_batch_manager(flush_callback: Optional[Callable[..., Any]] = None) -> BatchStateManager:
    """For fast callbacks and many entries: 5,000 buffered, 50 per batch (adaptive up to 200),
    60 s, 4 flushes at once; the ``high_throughput`` preset. ``BATCH_*`` still override."""
    cfg = BatchProcessingConfig.from_env(
        max_buffer_size=5000, size_threshold=50, max_batch_size=200, time_threshold_seconds=60.0,
        max_concurrent_flushes=4, engine_preset="high_throughput",
    )
    return _register(BatchStateManager(flush_callback, cfg))


def create_memory_efficient_batch_manager(flush_callback: Optional[Callable[..., Any]] = None) -> BatchStateManager:
    """For small machines: 200 buffered, 10 per batch (5-25), early memory flushes at 70 %;
    the ``low_memory`` preset. ``BATCH_*`` still override."""
    cfg = BatchProcessingConfig.from_env(
        max_buffer_size=200, size_threshold=10, max_batch_size=25, memory_pressure_threshold=0.7,
        engine_preset="low_memory",
    )
    return _register(BatchStateManager(flush_callback, cfg))


def get_global_batch_manager() -> Optional[BatchStateManager]:
    """The manager a factory made last."""
    return _GLOBAL


def get_batch_performance_report() -> Dict[str, Any]:
    """``get_detailed_stats()`` of the global manager (empty when none was made)."""
    return _GLOBAL.get_detailed_stats() if _GLOBAL is not None else {}


def log_batch_performance_summary() -> None:
    """Logs the global manager's performance summary on the ``ferry.batch`` logger."""
    if _GLOBAL is not None:
        _GLOBAL._log_summary()
