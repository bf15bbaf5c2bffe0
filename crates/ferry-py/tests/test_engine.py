"""The engine from Python: outcomes, exactly-once, retries, splits, priorities, waits,
memory pressure, cancellation, asyncio and blocking handlers."""

from __future__ import annotations

import _thread
import asyncio
import random
import signal
import threading
import time

import pytest

import ferry
from conftest import FAST, balanced


def test_all_items_succeed_and_the_report_counts_them():
    seen = []

    def handler(batch):
        seen.extend(batch)
        return [None] * len(batch)

    report = ferry.run(handler, range(1000), max_items=64, **FAST)
    assert report.succeeded == 1000 and report.accepted == 1000
    assert sorted(seen) == list(range(1000))
    assert report.dead_lettered == 0 and report.dead_letters == []
    assert report.final_batch_size >= 1 and report.final_concurrency >= 1
    assert report.p50 <= report.p95 <= report.p99
    assert "1000 succeeded" in str(report)


def test_returning_none_means_every_item_succeeded():
    report = ferry.run(lambda batch: None, ["a", "b", "c"], **FAST)
    assert report.succeeded == 3


def _random_handler(seed: int, ok: dict):
    rng = random.Random(seed)
    lock = threading.Lock()

    def handler(batch):
        with lock:
            roll = rng.random()
            per_item = [rng.random() for _ in batch]
        if roll < 0.15:
            raise ValueError("flaky backend")
        if roll < 0.2:
            raise ferry.Retry("429", after=0.001)
        if roll < 0.25 and len(batch) > 1:
            raise ferry.Split("a bad row somewhere")
        out = []
        for p, r in zip(batch, per_item):
            if r < 0.05:
                out.append(ferry.Fatal(f"bad {p}"))
            elif r < 0.15:
                out.append(RuntimeError("try again"))
            else:
                out.append(p)
                with lock:
                    ok[p] = ok.get(p, 0) + 1
        return out

    return handler


@pytest.mark.parametrize("seed", range(8))
def test_every_item_ends_exactly_once_under_random_failures(seed):
    ok: dict = {}
    n = 300
    report = ferry.run(_random_handler(seed, ok), range(n), max_items=32, max_attempts=4, **FAST)
    dead = [d.payload for d in report.dead_letters]
    assert report.succeeded + report.dead_lettered == n
    assert report.cancelled == 0 and balanced(report)
    assert all(c == 1 for c in ok.values()), "an item succeeded twice"
    assert len(dead) == len(set(dead)) == report.dead_lettered
    assert set(ok) | set(dead) == set(range(n)) and not set(ok) & set(dead)


try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - hypothesis is in the test extra
    given = None

if given is not None:

    @settings(max_examples=12, deadline=None)
    @given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 200), max_items=st.integers(1, 40))
    def test_exactly_once_property(seed, n, max_items):
        ok: dict = {}
        report = ferry.run(_random_handler(seed, ok), range(n), max_items=max_items, max_attempts=3, **FAST)
        dead = {d.payload for d in report.dead_letters}
        assert report.succeeded + report.dead_lettered == n
        assert set(ok) == set(range(n)) - dead and all(c == 1 for c in ok.values())


def test_retry_after_is_honoured():
    calls = []

    def handler(batch):
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise ferry.Retry("slow down", after=0.4)
        return None

    report = ferry.run(handler, range(5), concurrency=1, max_items=10, max_wait=0.01, **FAST)
    assert report.succeeded == 5 and report.retries >= 1
    assert calls[1] - calls[0] >= 0.39


def test_throttled_costs_time_never_an_item():
    # Refused eight times in a row with max_attempts=2: a Retry would dead-letter the items,
    # Throttled (the target asking for time) only delays them.
    calls = []

    def handler(batch):
        calls.append(time.monotonic())
        if len(calls) <= 8:
            raise ferry.Throttled("HTTP 429", after=0.01)
        return None

    report = ferry.run(handler, range(5), concurrency=1, max_items=10, max_wait=0.01,
                       max_attempts=2, **FAST)
    assert report.succeeded == 5 and report.dead_lettered == 0
    assert len(calls) == 9


def test_split_isolates_one_poison_payload():
    def handler(batch):
        if 37 in batch:
            raise ferry.Split("constraint violated")
        return None

    report = ferry.run(handler, range(100), max_items=100, adaptive_batch_size=False, max_wait=0.05, **FAST)
    assert report.succeeded == 99
    assert [d.payload for d in report.dead_letters] == [37]
    assert "constraint violated" in report.dead_letters[0].error
    assert report.splits >= 1


def test_fatal_raised_dead_letters_the_batch_and_per_item_fatal_one_item():
    report = ferry.run(lambda b: [ferry.Fatal("no") if p == 3 else p for p in b], range(10), **FAST)
    assert report.succeeded == 9 and [d.payload for d in report.dead_letters] == [3]

    def all_bad(batch):
        raise ferry.Fatal("401 unauthorized")

    report = ferry.run(all_bad, range(4), **FAST)
    assert report.dead_lettered == 4 and report.calls == 1


def test_other_exceptions_retry_then_split_then_dead_letter():
    def handler(batch):
        if 5 in batch:
            raise KeyError("boom")
        return None

    report = ferry.run(handler, range(20), max_items=20, adaptive_batch_size=False, max_attempts=3, max_wait=0.02, **FAST)
    assert report.succeeded == 19 and [d.payload for d in report.dead_letters] == [5]
    assert report.dead_letters[0].attempts >= 3 and "KeyError" in report.dead_letters[0].error
    assert report.retries >= 1 and report.splits >= 1


def test_priorities_board_first():
    started, release = threading.Event(), threading.Event()
    batches = []

    def handler(batch):
        batches.append(list(batch))
        if batch == ["gate"]:
            started.set()
            release.wait(5)
        return None

    engine = ferry.Engine(handler, concurrency=1, max_items=10, adaptive_batch_size=False, max_wait=0.01, **FAST)
    engine.push("gate")
    assert started.wait(5)
    for i in range(30):
        engine.push(f"normal-{i}")
    for i in range(3):
        engine.push(f"high-{i}", priority=1)
    for i in range(3):
        engine.push(f"urgent-{i}", priority=2)
    # Release the gate once the engine holds all of them (not just its intake channels).
    deadline = time.monotonic() + 5
    while engine.progress().accepted < 37 and time.monotonic() < deadline:
        time.sleep(0.005)
    release.set()
    report = engine.finish()
    assert report.succeeded == 37
    after_gate = batches[1]
    assert after_gate[:6] == [f"urgent-{i}" for i in range(3)] + [f"high-{i}" for i in range(3)]


@pytest.mark.parametrize("priority,wait", [(0, 1.2), (1, 0.6), (2, 0.2)])
def test_max_wait_is_held_per_priority(priority, wait):
    arrived = []

    def handler(batch):
        arrived.append(time.monotonic())
        return None

    engine = ferry.Engine(handler, max_items=1000, adaptive_batch_size=False, max_wait=1.2, max_wait_high=0.6, max_wait_urgent=0.2, **FAST)
    pushed = time.monotonic()
    engine.push("x", priority=priority)
    deadline = time.monotonic() + 5
    while not arrived and time.monotonic() < deadline:
        time.sleep(0.005)
    engine.finish()
    waited = arrived[0] - pushed
    # Held for its own priority's wait, and not for the next priority's.
    assert wait * 0.9 <= waited < wait + 0.35, waited


def test_memory_pressure_sends_a_batch_before_it_is_full_or_due():
    arrived = []

    def handler(batch):
        arrived.append((time.monotonic(), len(batch)))
        return None

    engine = ferry.Engine(
        handler, max_items=1000, adaptive_batch_size=False, max_wait=10.0, max_bytes=100_000,
        memory_high_watermark=1000, memory_hard_limit=200_000, **FAST,
    )
    pushed = time.monotonic()
    for i in range(20):
        engine.push(i, size=100)
    deadline = time.monotonic() + 5
    while not arrived and time.monotonic() < deadline:
        time.sleep(0.005)
    assert arrived, "no batch left under memory pressure"
    assert arrived[0][0] - pushed < 2.0 and arrived[0][1] < 1000
    assert engine.finish().succeeded == 20


def test_cancel_drains_and_accounts_for_every_item():
    def handler(batch):
        time.sleep(0.05)
        return None

    engine = ferry.Engine(handler, concurrency=2, max_items=10, adaptive_batch_size=False, shutdown_grace=5.0, **FAST)
    engine.push_many(range(2000))
    time.sleep(0.1)
    engine.cancel()
    report = engine.finish()
    assert balanced(report) and report.progress.in_flight == 0
    assert report.accepted == 2000 and report.cancelled > 0
    assert report.succeeded + report.cancelled + report.dead_lettered == 2000


@pytest.fixture
def python_sigint():
    """Python's own SIGINT handler for the test, as in a terminal. A process started in the
    background by a non-interactive shell inherits SIGINT ignored, and there Python installs no
    handler and `_thread.interrupt_main()` does nothing (the Ctrl-C test failed so in a CI run
    started with `setsid nohup ... &`)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_cancels_drains_and_reraises(python_sigint):
    def handler(batch):
        time.sleep(0.05)
        return None

    ticks = []

    def on_progress(p):
        # Ctrl-C arrives while finish() waits for the run (the signal, as the terminal sends it).
        ticks.append(p)
        if len(ticks) == 5:
            _thread.interrupt_main()

    engine = ferry.Engine(handler, concurrency=2, max_items=10, adaptive_batch_size=False, on_progress=on_progress, **FAST)
    engine.push_many(range(2000))
    with pytest.raises(KeyboardInterrupt):
        engine.finish()
    report = engine.report
    assert report is not None and report.cancelled > 0
    assert report.succeeded + report.cancelled + report.dead_lettered == report.accepted == 2000


def test_a_sleeping_handler_does_not_delay_other_batches():
    done = {}
    t0 = time.monotonic()

    def handler(batch):
        if "slow" in batch:
            time.sleep(1.5)
        for p in batch:
            done[p] = time.monotonic() - t0
        return None

    engine = ferry.Engine(handler, concurrency=4, max_items=1, adaptive_batch_size=False, max_wait=0.01, **FAST)
    engine.push("slow")
    for i in range(40):
        engine.push(i)
    report = engine.finish()
    assert report.succeeded == 41
    assert max(done[i] for i in range(40)) < 1.0 < done["slow"]


def test_async_handler_runs_on_the_callers_loop():
    async def main():
        loop = asyncio.get_running_loop()
        threads, active, peak = set(), [0], [0]

        async def handler(batch):
            assert asyncio.get_running_loop() is loop
            threads.add(threading.get_ident())
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            await asyncio.sleep(0.02)
            active[0] -= 1
            return [p * 2 for p in batch]

        async with ferry.Engine(handler, concurrency=4, max_items=10, adaptive_batch_size=False, max_wait=0.01, **FAST) as engine:
            for i in range(400):
                await engine.push_async(i)
        return engine.report, threads, peak[0]

    report, threads, peak = asyncio.run(main())
    assert report.succeeded == 400
    assert threads == {threading.get_ident()} and peak > 1


def test_async_handler_exceptions_map_like_sync_ones():
    async def main():
        async def handler(batch):
            await asyncio.sleep(0)
            if 7 in batch:
                raise ferry.Split("poison")
            return None

        return await ferry.run_async(handler, range(30), max_items=30, adaptive_batch_size=False, max_wait=0.02, **FAST)

    report = asyncio.run(main())
    assert report.succeeded == 29 and [d.payload for d in report.dead_letters] == [7]


def test_an_async_handler_needs_a_running_loop():
    async def handler(batch):
        return None

    with pytest.raises(TypeError, match="event loop"):
        ferry.Engine(handler)


def test_settings_and_presets_are_checked():
    with pytest.raises(TypeError, match="unknown setting `max_itemz`"):
        ferry.Engine(lambda b: None, max_itemz=3)
    with pytest.raises(ValueError, match="unknown preset"):
        ferry.Engine(lambda b: None, "turbo")
    with pytest.raises(ValueError, match="max_items"):
        ferry.Engine(lambda b: None, max_items=0)
    for preset in ferry.PRESETS:
        assert ferry.run(lambda b: None, range(10), preset, max_wait=0.01).succeeded == 10
    assert "requests_per_sec" in ferry.SETTINGS
    # A cap below the default start brings the start down with it; a start given above
    # the cap is an error that names the key.
    report = ferry.run(lambda b: None, range(10), max_concurrency=2, max_wait=0.01)
    assert report.succeeded == 10
    with pytest.raises(ValueError, match="initial_concurrency"):
        ferry.Engine(lambda b: None, max_concurrency=2, initial_concurrency=3)


def test_progress_and_on_progress():
    snapshots = []

    def handler(batch):
        time.sleep(0.01)
        return None

    engine = ferry.Engine(handler, on_progress=snapshots.append, max_items=20, adaptive_batch_size=False, total=500, **FAST)
    for i in range(500):
        engine.push(i, key=f"k{i}")
    report = engine.finish()
    assert report.succeeded == 500 and snapshots
    assert all(s.accepted == s.ended + s.in_flight for s in snapshots)
    assert snapshots[-1].succeeded == 500 and snapshots[-1].fraction == 1.0
    assert engine.progress().finished


def test_rate_limit_is_applied():
    # 60 calls at 20/s: even after a full second's burst, at least 2 s.
    report = ferry.run(lambda b: None, range(60), concurrency=4, max_items=1, adaptive_batch_size=False, requests_per_sec=20, max_wait=0.001, **FAST)
    assert report.succeeded == 60 and report.elapsed >= 1.8


def test_dead_letters_file(tmp_path):
    path = tmp_path / "dead.jsonl"
    engine = ferry.Engine(lambda b: [ferry.Fatal("nope") for _ in b], dead_letters=str(path), **FAST)
    engine.push({"id": 1}, key="row-1", priority=2)
    report = engine.finish()
    assert report.dead_lettered == 1 and report.dead_letter_sink == str(path)
    d = report.dead_letters[0]
    assert (d.key, d.priority, d.payload, d.attempts) == ("row-1", 2, {"id": 1}, 1)
    assert '"error": "nope"' in path.read_text()


def test_sync_handlers_run_on_at_most_cap_threads_that_keep_their_thread_locals():
    local, made, threads = threading.local(), [], set()

    def handler(batch):
        if not hasattr(local, "client"):
            local.client = object()  # an HTTP client or a connection, made once per thread
            made.append(threading.get_ident())
        threads.add(threading.get_ident())
        time.sleep(0.002)
        return None

    report = ferry.run(handler, range(2000), concurrency=3, max_items=5, adaptive_batch_size=False, max_wait=0.001, **FAST)
    assert report.succeeded == 2000 and report.calls >= 400
    assert len(threads) <= 3 and len(made) == len(threads)
