"""Stubs of the native module ``ferry._ferry`` (use ``ferry.Engine``, not this)."""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

__version__: str

def setting_names() -> List[Tuple[str, str]]: ...
def run_job(
    path: str,
    sets: Sequence[str] = ...,
    max_concurrent: Optional[int] = ...,
    on_progress: Optional[Callable[[Dict[str, Any]], Any]] = ...,
    progress_interval: float = ...,
    resume: bool = ...,
    restart: bool = ...,
) -> Dict[str, Any]: ...

class Notify:
    def __call__(self, future: Any) -> None: ...

class NativeEngine:
    def __init__(
        self,
        handler: Callable[[List[Any]], Any],
        preset: str = ...,
        settings: Optional[Dict[str, Any]] = ...,
        event_loop: Optional[asyncio.AbstractEventLoop] = ...,
        total: Optional[int] = ...,
        intake_capacity: Optional[int] = ...,
        default_item_bytes: int = ...,
    ) -> None: ...
    def push(self, payload: Any, key: Optional[Any] = ..., priority: int = ..., size: Optional[int] = ...) -> None: ...
    def push_many(self, payloads: Iterable[Any], priority: int = ...) -> int:
        """Pushes every payload in chunks (one hand-over per chunk); keys are positions."""
    def push_nowait(self, payload: Any, key: Optional[Any] = ..., priority: int = ..., size: Optional[int] = ...) -> bool: ...
    def push_later(
        self,
        payload: Any,
        key: Optional[Any],
        priority: int,
        size: Optional[int],
        event_loop: asyncio.AbstractEventLoop,
        callback: Callable[[Optional[str]], Any],
    ) -> None: ...
    def close(self) -> None: ...
    def wait(self, timeout: float) -> bool: ...
    def is_done(self) -> bool: ...
    def cancel(self) -> None: ...
    def progress(self) -> Dict[str, Any]: ...
    def report(self) -> Dict[str, Any]: ...
    def dead_letters(self) -> List[Dict[str, Any]]: ...
    def elapsed(self) -> float: ...
