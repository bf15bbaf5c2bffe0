"""Shared helpers for the package's tests: fast retry settings and a balance check."""

from __future__ import annotations

import pytest

#: Retries that back off in milliseconds, so failure tests run quickly.
FAST = dict(backoff_base=0.001, backoff_max=0.005, progress_interval=0.02)


def balanced(report) -> bool:
    p = report.progress
    return p.accepted == p.succeeded + p.dead_lettered + p.cancelled + p.in_flight


@pytest.fixture
def fast():
    return dict(FAST)
