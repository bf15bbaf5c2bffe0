"""The engine from Python: ``Engine``, its ``Report`` and ``Progress``, ``run`` and ``run_job``.

A thin layer over the native module: settings, batching, dispatch, retries, splits, dead
letters and progress are the Rust engine's; this module picks sync or asyncio, wraps dicts in
typed objects, calls ``on_progress`` on the caller's thread, and turns Ctrl-C into a
cancellation that drains.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional

from . import _ferry

__all__ = ["Engine", "Report", "Progress", "DeadLetter", "run", "run_async", "run_job", "PRESETS"]

#: The engine presets, as ``EngineConfig``'s: remote APIs, cheap local handlers, small machines.
PRESETS = ("standard", "high_throughput", "low_memory")


@dataclass(frozen=True)
class Progress:
    """A consistent snapshot: ``accepted == succeeded + dead_lettered + cancelled + in_flight``."""

    accepted: int = 0
    succeeded: int = 0
    dead_lettered: int = 0
    cancelled: int = 0
    in_flight: int = 0
    executing: int = 0
    calls_in_flight: int = 0
    calls: int = 0
    retries: int = 0
    splits: int = 0
    timeouts: int = 0
    total: Optional[int] = None
    rate: float = 0.0
    elapsed: float = 0.0
    eta: Optional[float] = None
    concurrency_limit: int = 0
    batch_size: int = 0
    finished: bool = False
    fraction: Optional[float] = None

    @property
    def ended(self) -> int:
        """Items that ended: succeeded, dead-lettered or cancelled."""
        return self.succeeded + self.dead_lettered + self.cancelled

    @classmethod
    def _from(cls, d: Dict[str, Any]) -> "Progress":
        return cls(**d)


@dataclass(frozen=True)
class DeadLetter:
    """An item that will not be processed, with the last error."""

    key: str
    index: int
    priority: int
    payload: Any
    error: str
    attempts: int


@dataclass(frozen=True)
class Report:
    """What a finished run did. ``str(report)`` is the text ``ferry run`` prints."""

    progress: Progress
    elapsed: float
    items_per_sec: float
    p50: float
    p95: float
    p99: float
    busy_share: float
    final_concurrency: int
    final_batch_size: int
    peak_concurrency: int
    dead_letter_sink: str
    text: str
    dead_letters: List[DeadLetter] = field(default_factory=list)
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def accepted(self) -> int:
        return self.progress.accepted

    @property
    def succeeded(self) -> int:
        return self.progress.succeeded

    @property
    def dead_lettered(self) -> int:
        return self.progress.dead_lettered

    @property
    def cancelled(self) -> int:
        return self.progress.cancelled

    @property
    def calls(self) -> int:
        return self.progress.calls

    @property
    def retries(self) -> int:
        return self.progress.retries

    @property
    def splits(self) -> int:
        return self.progress.splits

    def __str__(self) -> str:
        return self.text

    @classmethod
    def _from(cls, d: Dict[str, Any], dead: Iterable[Dict[str, Any]] = ()) -> "Report":
        d = dict(d)
        progress = Progress._from(d.pop("progress"))
        known = {f for f in cls.__dataclass_fields__} - {"progress", "dead_letters", "extra"}
        base = {k: d.pop(k) for k in list(d) if k in known}
        return cls(progress=progress, dead_letters=[DeadLetter(**x) for x in dead], extra=d, **base)


def _is_async(handler: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(handler):
        return True
    call = getattr(handler, "__call__", None)
    return call is not None and inspect.iscoroutinefunction(call)


def _resolve(fut: "asyncio.Future[None]", error: Optional[str]) -> None:
    if fut.done():
        return
    if error is None:
        fut.set_result(None)
    else:
        fut.set_exception(RuntimeError(error))


class Engine:
    """Ferry's engine in-process, around a Python ``handler``.

    ``handler(payloads: list) -> list | None`` takes a batch of payloads and returns one result
    per item (``None`` for "all succeeded"), or raises; see ``ferry.Retry``, ``ferry.Split``,
    ``ferry.Fatal``. A plain function runs on a thread pool sized by the engine's concurrency;
    an ``async def`` runs on the event loop the engine was created on (create it inside a
    coroutine and use ``push_async``/``finish_async``).

    ``preset`` is ``standard`` (adaptive size and concurrency, for remote APIs),
    ``high_throughput`` or ``low_memory``; ``settings`` override it (``ferry.SETTINGS`` lists
    them: ``max_items``, ``max_wait``, ``concurrency``, ``requests_per_sec``, ``timeout``,
    ``max_attempts``, ...). Seconds are floats.

    ``intake_capacity`` is how many pushed items may wait per priority before the engine
    takes them in (default 16,384: two ``push_many`` chunks); past it, and past the engine's
    own buffer, pushing blocks.

    ``on_progress(Progress)`` is called on the caller's thread, every ``progress_interval``
    while pushing and finishing. ``dead_letters`` is a JSON Lines path (default: kept in memory
    and returned in the report).
    """

    def __init__(
        self,
        handler: Callable[..., Any],
        preset: str = "standard",
        *,
        on_progress: Optional[Callable[[Progress], Any]] = None,
        dead_letters: Optional[str] = None,
        total: Optional[int] = None,
        intake_capacity: Optional[int] = None,
        default_item_bytes: int = 64,
        **settings: Any,
    ) -> None:
        self._async = _is_async(handler)
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        if self._async:
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:
                raise TypeError(
                    "an async def handler runs on the caller's event loop: "
                    "create the Engine inside a coroutine"
                ) from None
        self._on_progress = on_progress
        self._dead_path = dead_letters
        self._interval = float(settings.get("progress_interval", 0.25))
        self._native = _ferry.NativeEngine(
            handler,
            preset,
            settings,
            self._loop,
            total,
            intake_capacity,
            default_item_bytes,
        )
        self._last_tick = time.monotonic()
        self.report: Optional[Report] = None
        # The hot path: pushing straight into the native engine, unless something must
        # happen per push.
        if self._async:
            self.push = self._push_on_loop  # type: ignore[method-assign]
        elif on_progress is None:
            self.push = self._native.push  # type: ignore[method-assign]

    # -- feeding ---------------------------------------------------------------------------

    def push(self, payload: Any, key: Optional[str] = None, priority: int = 0, size: Optional[int] = None) -> None:
        """Hands one payload to the engine, blocking while it is full (back-pressure).

        ``key`` identifies the item (default: its position), ``priority`` is 0 (normal),
        1 (high) or 2 (urgent), ``size`` its bytes for ``max_bytes`` and the memory limits
        (default: the length of a str or bytes payload, else ``default_item_bytes``).
        """
        self._native.push(payload, key, priority, size)
        self._maybe_tick()

    def _push_on_loop(self, payload: Any, key: Optional[str] = None, priority: int = 0, size: Optional[int] = None) -> None:
        if not self._native.push_nowait(payload, key, priority, size):
            raise RuntimeError(
                "the engine is full; with an async handler use `await engine.push_async(...)`"
            )

    def push_many(self, payloads: Iterable[Any], priority: int = 0) -> int:
        """Pushes every payload of an iterable, in order, blocking while the engine is full;
        returns how many. The fast path for a source at hand: the payloads are taken in
        chunks (a list or tuple is sliced, any other iterable read), each chunk costs one
        hand-over to the engine instead of one per item, and payloads stay Python objects
        (never copied or serialised). Every item is still an item of its own: it is retried,
        split out, dead-lettered and counted alone.

        ``priority`` applies to all of them. An item's key is its position (its index, as a
        string, in a dead letter); use ``push`` for keys of your own or per-item sizes (here
        a str or bytes payload counts its length, any other ``default_item_bytes``). If the
        iterable raises, what it gave before is pushed and the exception propagates."""
        if self._async:
            raise RuntimeError("with an async handler use `await engine.push_many_async(...)`")
        n = self._native.push_many(payloads, priority)
        self._maybe_tick()
        return n

    async def push_async(self, payload: Any, key: Optional[str] = None, priority: int = 0, size: Optional[int] = None) -> None:
        """Like ``push``, but awaits (without blocking the loop) while the engine is full."""
        if not self._native.push_nowait(payload, key, priority, size):
            loop = asyncio.get_running_loop()
            fut: asyncio.Future[None] = loop.create_future()
            self._native.push_later(payload, key, priority, size, loop, functools.partial(_resolve, fut))
            await fut
        self._maybe_tick()

    async def push_many_async(self, payloads: Iterable[Any], priority: int = 0) -> int:
        """Pushes every payload, awaiting while the engine is full; returns how many."""
        n = 0
        for p in payloads:
            await self.push_async(p, priority=priority)
            n += 1
        return n

    # -- watching --------------------------------------------------------------------------

    def progress(self) -> Progress:
        """The latest progress snapshot."""
        return Progress._from(self._native.progress())

    def _tick(self) -> None:
        self._last_tick = time.monotonic()
        if self._on_progress is not None:
            self._on_progress(self.progress())

    def _maybe_tick(self) -> None:
        if self._on_progress is not None and time.monotonic() - self._last_tick >= self._interval:
            self._tick()

    # -- ending ----------------------------------------------------------------------------

    def cancel(self) -> None:
        """Stops intake at once: waiting items are cancelled, calls in flight get
        ``shutdown_grace`` to finish. ``finish`` then returns the report, every item counted."""
        self._native.cancel()

    def _make_report(self) -> Report:
        report = Report._from(self._native.report(), self._native.dead_letters())
        if self._dead_path is not None:
            with open(self._dead_path, "a", encoding="utf-8") as f:
                for d in report.dead_letters:
                    f.write(json.dumps(d.__dict__, default=repr) + "\n")
            report = dataclasses.replace(report, dead_letter_sink=self._dead_path)
        self.report = report
        return report

    def finish(self) -> Report:
        """Ends intake, waits (calling ``on_progress``) until every item has ended, and returns
        the report. Ctrl-C cancels the run, waits for it to drain, sets ``engine.report`` and
        re-raises ``KeyboardInterrupt``."""
        if self.report is not None:
            return self.report
        if self._async:
            raise RuntimeError("with an async handler use `await engine.finish_async()`")
        self._native.close()
        try:
            while not self._native.wait(self._interval):
                self._tick()
        except KeyboardInterrupt:
            self._native.cancel()
            while not self._native.wait(0.1):
                pass
            self._make_report()
            raise
        self._tick()
        return self._make_report()

    async def finish_async(self) -> Report:
        """``finish`` for asyncio: awaits the end of the run without blocking the loop;
        task cancellation cancels the run (it drains) and propagates."""
        if self.report is not None:
            return self.report
        self._native.close()
        step = min(self._interval, 0.02)
        try:
            while not self._native.is_done():
                if time.monotonic() - self._last_tick >= self._interval:
                    self._tick()
                await asyncio.sleep(step)
        except asyncio.CancelledError:
            self._native.cancel()
            while not self._native.is_done():
                await asyncio.sleep(step)
            self._make_report()
            raise
        self._tick()
        return self._make_report()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self._native.cancel()
            while not self._native.wait(0.1):
                pass
            self._make_report()
        else:
            self.finish()

    async def __aenter__(self) -> "Engine":
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self._native.cancel()
        await self.finish_async()


def run(handler: Callable[..., Any], payloads: Iterable[Any], preset: str = "standard", **settings: Any) -> Report:
    """Runs ``handler`` over every payload and returns the report (``Engine`` + ``push_many``
    + ``finish``)."""
    engine = Engine(handler, preset, **settings)
    try:
        engine.push_many(payloads)
    except BaseException:
        engine.cancel()
        engine.finish()
        raise
    return engine.finish()


async def run_async(handler: Callable[..., Any], payloads: Iterable[Any], preset: str = "standard", **settings: Any) -> Report:
    """``run`` inside a coroutine (for ``async def`` handlers, or from an event loop)."""
    engine = Engine(handler, preset, **settings)
    async with engine:
        if engine._async:
            await engine.push_many_async(payloads)
        else:
            for p in payloads:
                await engine.push_async(p)
    assert engine.report is not None
    return engine.report


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(v)


def run_job(
    path: str,
    *,
    on_progress: Optional[Callable[[Progress], Any]] = None,
    progress_interval: float = 0.25,
    resume: bool = False,
    restart: bool = False,
    max_concurrent: Optional[int] = None,
    sets: Optional[Dict[str, Any]] = None,
    **overrides: Any,
) -> Report:
    """Runs a job file in-process (as ``ferry run`` does) and returns the report.

    ``overrides`` set job-file keys like ``ferry run --set``: a double underscore stands for
    a dot (``batch__max_items=10`` sets ``batch.max_items``); ``sets`` takes dotted keys as a
    dict. ``on_progress(Progress)`` is called on this thread. The report's ``extra`` holds
    ``skipped``, ``ambiguous``, ``checkpoint`` and ``source_error``.
    """
    pairs = dict(sets or {})
    pairs.update({k.replace("__", "."): v for k, v in overrides.items()})
    callback = None
    if on_progress is not None:
        callback = lambda d: on_progress(Progress._from(d))  # noqa: E731
    d = _ferry.run_job(
        str(path),
        [f"{k}={_toml_value(v)}" for k, v in pairs.items()],
        max_concurrent,
        callback,
        progress_interval,
        resume,
        restart,
    )
    return Report._from(d)
