"""The feed buffer's import path: ``from batch_config_integration import
create_optimized_batch_manager`` works as the buffer's own README prints it. Everything here is
``ferry.batch``."""

from ferry.batch import (  # noqa: F401
    BatchProcessingConfig,
    BatchStateManager,
    QueuedEntry,
    create_high_performance_batch_manager,
    create_memory_efficient_batch_manager,
    create_optimized_batch_manager,
    get_batch_performance_report,
    get_global_batch_manager,
    log_batch_performance_summary,
)

__all__ = [
    "BatchProcessingConfig",
    "BatchStateManager",
    "QueuedEntry",
    "create_optimized_batch_manager",
    "create_high_performance_batch_manager",
    "create_memory_efficient_batch_manager",
    "get_global_batch_manager",
    "get_batch_performance_report",
    "log_batch_performance_summary",
]
