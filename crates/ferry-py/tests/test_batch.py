"""The feed buffer's face: its README's usage snippets run unchanged, its stats keys mean
what they say, its triggers fire and are counted, its BATCH_* variables are read."""

from __future__ import annotations

import logging
import textwrap
import threading
import time
import uuid as uuid_module

import pytest

import batch_config_integration
import ferry
from ferry.batch import BatchProcessingConfig, BatchStateManager

# The feed buffer's README, verbatim: each snippet is run as printed there; the test supplies
# only the names the README leaves to the reader (entries, a callback, a config).
SNIPPET_PRIORITY = """
# Priority levels: 0=normal, 1=high, 2=urgent
manager.queue_entry(entry, "source", "uuid", priority=2)  # Urgent processing
"""

SNIPPET_INIT = """
manager = BatchStateManager(
    max_buffer_size=1000,           # Increased capacity
    max_buffer_age_seconds=3600,    # 1 hour max age
    flush_config=optimized_config,  # Tuned parameters
    enable_performance_monitoring=True
)
"""

SNIPPET_STATS = """
stats = manager.get_detailed_stats()
# Returns: buffer state, performance metrics, system health, optimization events
"""

SNIPPET_CONFIG = """
@dataclass(frozen=True)
class BatchProcessingConfig:
    # Buffer management - optimized defaults
    max_buffer_size: int = 1000
    size_threshold: int = 25            # Optimal for LLM APIs
    time_threshold_seconds: float = 300.0  # 5 minutes
    
    # Performance optimization
    enable_adaptive_sizing: bool = True
    enable_priority_flushing: bool = True
    enable_performance_monitoring: bool = True
    
    # Performance targets
    performance_target_ms: float = 2000.0    # 2s target
    throughput_target_eps: float = 10.0      # 10 entries/sec
"""

SNIPPET_FACTORIES = """
# Factory functions for different use cases
standard_manager = create_optimized_batch_manager(flush_callback)
high_perf_manager = create_high_performance_batch_manager(callback)
memory_efficient_manager = create_memory_efficient_batch_manager(callback)

# Performance reporting
report = get_batch_performance_report()
log_batch_performance_summary()
"""

SNIPPET_STANDARD = """
from batch_config_integration import create_optimized_batch_manager

def process_batch():
    # Your batch processing logic
    pass

manager = create_optimized_batch_manager(flush_callback=process_batch)

# Queue entries with priority
manager.queue_entry(rss_entry, "rss_feed", uuid, priority=0)  # Normal
manager.queue_entry(alert_entry, "security", uuid, priority=1)  # High
manager.queue_entry(urgent_entry, "critical", uuid, priority=2)  # Urgent
"""

SNIPPET_MONITORING = """
# Get detailed performance metrics
stats = manager.get_detailed_stats()
print(f"Throughput: {stats['performance']['throughput_eps']:.2f} eps")
print(f"Processing Time: {stats['performance']['avg_processing_time_ms']:.1f}ms")

# Log comprehensive performance summary
log_batch_performance_summary()
"""


def _namespace(**extra):
    ns = {name: getattr(batch_config_integration, name) for name in batch_config_integration.__all__}
    ns.update(extra)
    return ns


def _run(snippet, ns):
    exec(compile(textwrap.dedent(snippet), "<feed buffer README>", "exec"), ns)
    return ns


def test_readme_snippets_run_unchanged(capsys, caplog):
    caplog.set_level(logging.INFO, logger="ferry.batch")
    flushed = []
    ns = _namespace(
        entry={"title": "t"}, rss_entry={"title": "rss"}, alert_entry={"title": "alert"},
        urgent_entry={"title": "urgent"}, uuid=str(uuid_module.uuid4()),
        flush_callback=flushed.append, callback=flushed.append,
    )
    _run("from dataclasses import dataclass\n" + SNIPPET_CONFIG, ns)
    ns["optimized_config"] = ns["BatchProcessingConfig"]()
    ns["BatchStateManager"] = BatchStateManager
    _run(SNIPPET_INIT, ns)
    _run(SNIPPET_PRIORITY, ns)
    _run(SNIPPET_STATS, ns)
    assert {"buffer", "performance", "system_health", "optimization_events"} <= set(ns["stats"])
    assert ns["stats"]["buffer"]["pending_entries"] == 1
    ns["manager"].shutdown()
    _run(SNIPPET_FACTORIES, ns)
    assert isinstance(ns["report"], dict) and "performance" in ns["report"]
    _run(SNIPPET_STANDARD, ns)
    ns["manager"].flush()
    _run(SNIPPET_MONITORING, ns)
    out = capsys.readouterr().out
    assert "Throughput: " in out and "Processing Time: " in out
    assert ns["stats"]["performance"]["total_entries_processed"] == 3
    assert "batch performance:" in caplog.text
    for m in ("standard_manager", "high_perf_manager", "memory_efficient_manager"):
        ns[m].shutdown()


def test_stats_keys_mean_what_they_say():
    def slow(batch):
        time.sleep(0.05)

    cfg = BatchProcessingConfig(size_threshold=10, enable_adaptive_sizing=False, time_threshold_seconds=0.2)
    m = BatchStateManager(slow, cfg)
    t0 = time.monotonic()
    for i in range(50):
        m.queue_entry(i, "feed", f"u{i}")
    m.flush()
    elapsed = time.monotonic() - t0
    s = m.get_detailed_stats()
    perf = s["performance"]
    assert perf["total_entries_processed"] == 50 and perf["total_batches"] == 5
    assert 45 <= perf["avg_processing_time_ms"] < 200
    assert 50 / elapsed * 0.5 < perf["throughput_eps"] < 50 / elapsed * 2.0
    assert s["buffer"]["pending_entries"] == 0 and s["system_health"]["status"] == "healthy"
    assert s["flush_reasons"]["size"] == 5


def _wait_for(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not pred() and time.monotonic() < deadline:
        time.sleep(0.005)
    return pred()


def test_flush_reasons_are_counted_and_logged(caplog):
    caplog.set_level(logging.INFO, logger="ferry.batch")
    got = []
    cb = lambda batch, reason: got.append((reason, len(batch)))  # noqa: E731

    # size
    m = BatchStateManager(cb, BatchProcessingConfig(size_threshold=5, enable_adaptive_sizing=False, time_threshold_seconds=30))
    for i in range(10):
        m.queue_entry(i, "s", str(i))
    assert _wait_for(lambda: len(got) == 2)
    assert m.get_detailed_stats()["flush_reasons"]["size"] == 2
    # manual
    m.queue_entry("x", "s", "x")
    m.flush()
    assert got[-1] == ("manual", 1)
    m.shutdown()

    # time and priority: normal waits the whole threshold, urgent 20 % of it
    got.clear()
    m = BatchStateManager(cb, BatchProcessingConfig(size_threshold=50, enable_adaptive_sizing=False, time_threshold_seconds=0.5))
    t0 = time.monotonic()
    m.queue_entry("u", "s", "u", priority=2)
    assert _wait_for(lambda: len(got) == 1)
    assert got[0][0] == "priority" and time.monotonic() - t0 < 0.45
    m.queue_entry("n", "s", "n", priority=0)
    assert _wait_for(lambda: len(got) == 2)
    assert got[1][0] == "time" and time.monotonic() - t0 >= 0.5
    # shutdown
    m.queue_entry("y", "s", "y")
    m.shutdown()
    assert got[-1] == ("shutdown", 1)
    reasons = m.get_detailed_stats()["flush_reasons"]
    assert reasons["priority"] == 1 and reasons["time"] == 1 and reasons["shutdown"] == 1
    assert "reason=priority" in caplog.text and "reason=time" in caplog.text


def test_memory_trigger_fires_before_size_or_time():
    got = []
    cfg = BatchProcessingConfig(max_buffer_size=100, size_threshold=100, enable_adaptive_sizing=False, time_threshold_seconds=60)
    m = BatchStateManager(lambda batch, reason: got.append((reason, len(batch))), cfg)
    for i in range(90):
        m.queue_entry(i, "s", str(i))
    assert _wait_for(lambda: got, 3.0), "no flush under memory pressure"
    assert got[0][0] == "memory" and got[0][1] < 100
    m.shutdown()
    assert m.get_detailed_stats()["flush_reasons"]["memory"] >= 1


def test_a_failing_entry_is_isolated_and_counted():
    done = []

    def cb(batch):
        if any(e.entry == "poison" for e in batch):
            raise ValueError("cannot parse")
        done.extend(e.entry for e in batch)

    cfg = BatchProcessingConfig(size_threshold=10, enable_adaptive_sizing=False, time_threshold_seconds=0.05)
    m = BatchStateManager(cb, cfg)
    for i in range(9):
        m.queue_entry(i, "s", str(i))
    m.queue_entry("poison", "s", "p")
    m.flush()
    s = m.get_detailed_stats()
    assert sorted(done) == list(range(9))
    assert [d.payload.entry for d in m.dead_letters] == ["poison"]
    assert s["system_health"]["dead_lettered"] == 1 and s["system_health"]["errors"] >= 1
    assert s["system_health"]["status"] == "degraded"


def test_callbacks_of_zero_one_or_two_arguments():
    calls = []
    for cb in (lambda: calls.append(0), lambda b: calls.append(1), lambda b, r: calls.append(2)):
        m = BatchStateManager(cb, BatchProcessingConfig(time_threshold_seconds=0.05))
        m.queue_entry("e", "s", "u")
        m.flush()
    assert calls == [0, 1, 2]


def test_batch_environment_variables(monkeypatch):
    env = {
        "BATCH_MAX_BUFFER_SIZE": "500",
        "BATCH_SIZE_THRESHOLD": "10",
        "BATCH_TIME_THRESHOLD_SEC": "30",
        "BATCH_ENABLE_ADAPTIVE_SIZING": "false",
        "BATCH_ENABLE_PRIORITY_FLUSHING": "0",
        "BATCH_PERFORMANCE_TARGET_MS": "1500",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    cfg = BatchProcessingConfig.from_env()
    assert (cfg.max_buffer_size, cfg.size_threshold, cfg.time_threshold_seconds) == (500, 10, 30.0)
    assert not cfg.enable_adaptive_sizing and not cfg.enable_priority_flushing
    assert cfg.performance_target_ms == 1500.0
    assert cfg.wait_for(2) == 30.0  # priority flushing off: every entry waits the threshold
    m = ferry.create_optimized_batch_manager(lambda b: None)
    assert m.config.size_threshold == 10
    monkeypatch.setenv("BATCH_SIZE_THRESHOLD", "many")
    with pytest.raises(ValueError, match="BATCH_SIZE_THRESHOLD"):
        BatchProcessingConfig.from_env()


def test_seed_defaults_and_factories():
    cfg = BatchProcessingConfig.from_env({})
    assert (cfg.max_buffer_size, cfg.size_threshold, cfg.time_threshold_seconds) == (1000, 25, 300.0)
    assert [cfg.wait_for(p) for p in (0, 1, 2)] == [300.0, 120.0, 60.0]
    s = cfg.engine_settings()
    assert s["batch_size"] == 25 and s["min_batch_size"] == 5 and s["max_items"] == 50
    assert s["target_latency"] == 2.0 and s["memory_high_watermark"] == 850
    hp = ferry.create_high_performance_batch_manager(lambda b: None)
    me = ferry.create_memory_efficient_batch_manager(lambda b: None)
    assert hp.config.max_buffer_size > cfg.max_buffer_size > me.config.max_buffer_size
    assert (hp.config.engine_preset, me.config.engine_preset) == ("high_throughput", "low_memory")
    assert batch_config_integration.get_global_batch_manager() is me


def test_queue_entry_waits_when_the_buffer_is_full():
    release = threading.Event()
    cfg = BatchProcessingConfig(max_buffer_size=60, size_threshold=10, enable_adaptive_sizing=False, time_threshold_seconds=0.01)
    m = BatchStateManager(lambda b: release.wait(5), cfg)
    t = threading.Timer(0.5, release.set)
    t.start()
    t0 = time.monotonic()
    for i in range(200):
        m.queue_entry(i, "s", str(i))
    assert time.monotonic() - t0 >= 0.4, "queue_entry never waited for room"
    assert m.flush() == 200


def test_concurrent_producers_and_flushes_lose_nothing():
    seen = []
    lock = threading.Lock()

    def cb(batch):
        with lock:
            seen.extend(e.uuid for e in batch)

    m = BatchStateManager(cb, BatchProcessingConfig(size_threshold=7, time_threshold_seconds=0.05))

    def produce(t):
        for i in range(300):
            m.queue_entry(i, "s", f"{t}-{i}", priority=i % 3)

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for _ in range(5):
        m.flush()
        time.sleep(0.01)
    for t in threads:
        t.join()
    m.shutdown()
    assert sorted(seen) == sorted(f"{t}-{i}" for t in range(4) for i in range(300))
    assert m.get_detailed_stats()["performance"]["total_entries_processed"] == 1200
