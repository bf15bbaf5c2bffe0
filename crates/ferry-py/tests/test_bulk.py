"""Bulk intake: ``push_many`` (and ``ferry.run``) hand whole chunks to the engine; every item
still ends exactly once, back-pressure still holds, priorities still board first, and a
dead letter still names its item."""

from __future__ import annotations

import random
import threading
import time

import pytest

import ferry
from conftest import FAST, balanced

#: Payloads per chunk in ``push_many`` (``CHUNK`` in ``src/engine.rs``).
CHUNK = 8192


@pytest.mark.parametrize("source", ["list", "tuple", "generator", "range"])
def test_push_many_takes_any_iterable_in_order_and_counts_it(source):
    n = 2 * CHUNK + 1234  # several chunks, and a last one that is not full
    seen = []
    lock = threading.Lock()

    def handler(batch):
        assert isinstance(batch, list)
        with lock:
            seen.extend(batch)

    payloads = {
        "list": list(range(n)),
        "tuple": tuple(range(n)),
        "generator": (i for i in range(n)),
        "range": range(n),
    }[source]
    engine = ferry.Engine(handler, "high_throughput", concurrency=1, max_items=333, adaptive_batch_size=False)
    assert engine.push_many(payloads) == n
    report = engine.finish()
    assert report.succeeded == report.accepted == n and balanced(report)
    # One call at a time, one priority: the handler sees the payloads in push order.
    assert seen == list(range(n))


def test_push_many_copies_the_list_so_later_changes_do_not_leak_in():
    seen = []
    data = [f"p{i}" for i in range(5000)]
    engine = ferry.Engine(lambda b: seen.extend(b), concurrency=1, max_items=100, adaptive_batch_size=False, **FAST)
    engine.push_many(data)
    data[:] = ["changed"] * len(data)
    report = engine.finish()
    assert report.succeeded == 5000
    assert sorted(seen) == sorted(f"p{i}" for i in range(5000))


def test_push_and_push_many_mix_and_keys_of_dead_letters_are_positions():
    def handler(batch):
        return [ferry.Fatal("bad") if isinstance(p, str) and p.startswith("bad") else p for p in batch]

    engine = ferry.Engine(handler, max_items=7, **FAST)
    engine.push("bad-alone", key="k-alone")
    engine.push_many(["ok", "bad-0", "ok"])
    engine.push("ok")
    engine.push_many(iter(["bad-1"]))
    report = engine.finish()
    assert report.succeeded == 3 and report.dead_lettered == 3
    keys = {d.payload: d.key for d in report.dead_letters}
    # `push` keeps its key; a `push_many` item's key is its position in the run (the index).
    assert keys == {"bad-alone": "k-alone", "bad-0": "2", "bad-1": "5"}
    assert {d.payload: d.index for d in report.dead_letters} == {"bad-alone": 0, "bad-0": 2, "bad-1": 5}


@pytest.mark.parametrize("seed", range(4))
def test_push_many_every_item_ends_exactly_once_under_random_failures(seed):
    rng = random.Random(seed)
    lock = threading.Lock()
    ok: dict = {}

    def handler(batch):
        with lock:
            roll = rng.random()
            rolls = [rng.random() for _ in batch]
        if roll < 0.1:
            raise ValueError("flaky")
        if roll < 0.15 and len(batch) > 1:
            raise ferry.Split("a bad row somewhere")
        out = []
        for p, r in zip(batch, rolls):
            if r < 0.03:
                out.append(ferry.Fatal(f"bad {p}"))
            elif r < 0.1:
                out.append(RuntimeError("again"))
            else:
                out.append(p)
                with lock:
                    ok[p] = ok.get(p, 0) + 1
        return out

    n = 6000
    engine = ferry.Engine(handler, concurrency=3, max_items=50, max_attempts=4, **FAST)
    # Three runs, one of them urgent, plus single pushes in between.
    engine.push_many(range(0, 2500))
    engine.push(2500)
    engine.push_many(range(2501, 4000), priority=2)
    engine.push_many(x for x in range(4000, n))
    report = engine.finish()
    dead = [d.payload for d in report.dead_letters]
    assert report.accepted == n and report.succeeded + report.dead_lettered == n and balanced(report)
    assert all(c == 1 for c in ok.values()), "an item succeeded twice"
    assert len(dead) == len(set(dead)) == report.dead_lettered
    assert set(ok) | set(dead) == set(range(n)) and not set(ok) & set(dead)


def test_push_many_honours_back_pressure():
    """A handler that blocks: ``push_many`` stops reading its source once the engine's
    buffer and intake are full, and reads the rest only as items leave."""
    gate = threading.Event()
    yielded = 0

    def source(n):
        nonlocal yielded
        for i in range(n):
            yielded += 1
            yield i

    def handler(batch):
        gate.wait(10)

    n = 200_000
    engine = ferry.Engine(handler, concurrency=1, max_items=100, adaptive_batch_size=False, intake_capacity=500, **FAST)
    pusher = threading.Thread(target=engine.push_many, args=(source(n),))
    pusher.start()
    time.sleep(0.5)
    held = yielded
    # What may have been read: one call (100), the engine's buffer (at most 4,096, and one
    # intake message of at most 500 beyond), its intake (500), and the chunk being handed over.
    assert 0 < held <= 100 + 4096 + 500 + 500 + CHUNK, held
    assert pusher.is_alive(), "push_many returned though the engine was full"
    time.sleep(0.2)
    assert yielded == held, "the source was read on while nothing left the engine"
    gate.set()
    pusher.join(30)
    report = engine.finish()
    assert yielded == n and report.succeeded == report.accepted == n and balanced(report)


def test_push_many_priorities_board_first():
    started, release = threading.Event(), threading.Event()
    batches = []

    def handler(batch):
        batches.append(list(batch))
        if batch == ["gate"]:
            started.set()
            release.wait(5)

    engine = ferry.Engine(handler, concurrency=1, max_items=10, adaptive_batch_size=False, max_wait=0.01, **FAST)
    engine.push("gate")
    assert started.wait(5)
    engine.push_many([f"normal-{i}" for i in range(30)])
    engine.push_many((f"high-{i}" for i in range(3)), priority=1)
    engine.push_many([f"urgent-{i}" for i in range(3)], priority=2)
    deadline = time.monotonic() + 5
    while engine.progress().accepted < 37 and time.monotonic() < deadline:
        time.sleep(0.005)
    release.set()
    report = engine.finish()
    assert report.succeeded == 37
    assert batches[1][:6] == [f"urgent-{i}" for i in range(3)] + [f"high-{i}" for i in range(3)]
    assert [p for b in batches[1:] for p in b if p.startswith("normal")] == [f"normal-{i}" for i in range(30)]


def test_push_many_split_isolates_a_poison_payload_across_chunks():
    poison = {CHUNK - 1, CHUNK}  # the last item of one chunk, the first of the next

    def handler(batch):
        if poison & set(batch):
            raise ferry.Split("constraint violated")

    n = 2 * CHUNK
    report = ferry.run(handler, list(range(n)), max_items=500, adaptive_batch_size=False, **FAST)
    assert report.succeeded == n - 2
    assert sorted(d.payload for d in report.dead_letters) == sorted(poison)


def test_push_many_after_finish_is_refused_and_a_bad_priority_is_an_error():
    engine = ferry.Engine(lambda b: None, **FAST)
    with pytest.raises(ValueError, match="priority"):
        engine.push_many([1, 2], priority=7)
    engine.finish()
    with pytest.raises(RuntimeError, match="finished"):
        engine.push_many([1])


def test_push_many_error_in_the_source_keeps_what_was_pushed():
    def source():
        yield from range(10)
        raise LookupError("the source broke")

    engine = ferry.Engine(lambda b: None, **FAST)
    with pytest.raises(LookupError, match="the source broke"):
        engine.push_many(source())
    report = engine.finish()
    # What the source gave before it failed was pushed, and ran.
    assert report.accepted == report.succeeded == 10


def test_push_many_sizes_count_toward_max_bytes():
    sizes = []
    report = ferry.run(lambda b: sizes.append(len(b)), ["x" * 100] * 50, max_items=1000, max_bytes=1000, adaptive_batch_size=False, **FAST)
    assert report.succeeded == 50
    assert max(sizes) <= 10, sizes
