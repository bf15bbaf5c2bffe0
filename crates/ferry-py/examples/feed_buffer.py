"""The feed buffer: a stream of prioritised RSS-style entries through the batch buffer's
size, time, priority and memory triggers, with the buffer's own API (``queue_entry``,
``get_detailed_stats``, the factories, the ``BATCH_*`` variables).

    BATCH_SIZE_THRESHOLD=20 BATCH_TIME_THRESHOLD_SEC=2 python crates/ferry-py/examples/feed_buffer.py

Every few hundred entries an "alert" (priority 1) or an "incident" (priority 2) arrives; they
board first and wait at most 40 % / 20 % of the time threshold. The callback stands for an
LLM call: ~5 ms per entry, and it rejects entries it cannot parse (they are retried, isolated
by splitting, and dead-lettered alone).
"""

from __future__ import annotations

import logging
import random
import time
import uuid

from batch_config_integration import create_optimized_batch_manager, log_batch_performance_summary


def process_batch(batch, reason):
    time.sleep(0.005 * len(batch))  # the model call
    bad = [e for e in batch if e.entry.get("garbled")]
    if bad:
        raise ValueError(f"cannot parse {bad[0].uuid}")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("ferry.batch").setLevel(logging.WARNING)  # one line per flush is a lot
    rng = random.Random(7)
    manager = create_optimized_batch_manager(flush_callback=process_batch)
    for i in range(2000):
        roll = rng.random()
        priority = 2 if roll < 0.01 else 1 if roll < 0.05 else 0
        entry = {"title": f"entry {i}", "garbled": rng.random() < 0.002}
        manager.queue_entry(entry, "rss_feed", str(uuid.uuid4()), priority=priority)
        if i % 500 == 499:
            s = manager.get_detailed_stats()
            print(f"{i + 1} queued: {s['performance']['throughput_eps']:.0f} eps, "
                  f"batch size {s['buffer']['current_batch_size']}, reasons {s['flush_reasons']}")
    manager.shutdown()
    stats = manager.get_detailed_stats()
    print(f"Throughput: {stats['performance']['throughput_eps']:.2f} eps")
    print(f"Processing Time: {stats['performance']['avg_processing_time_ms']:.1f}ms")
    print(f"Flush reasons: {stats['flush_reasons']}")
    print(f"Dead letters: {[d.key for d in manager.dead_letters]}")
    logging.getLogger("ferry.batch").setLevel(logging.INFO)
    log_batch_performance_summary()


if __name__ == "__main__":
    main()
