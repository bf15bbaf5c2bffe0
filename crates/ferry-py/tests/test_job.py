"""``ferry.run_job``: a job file run in-process, with progress and overrides."""

from __future__ import annotations

import json

import pytest

import ferry


def _job(tmp_path, n=200):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": i, "name": f"row {i}"}) + "\n" for i in range(n)))
    job = tmp_path / "job.toml"
    job.write_text(
        '[source]\ntype = "jsonl"\npath = "in.jsonl"\nkey = "id"\n\n'
        '[handler]\ntype = "jsonl"\npath = "out.jsonl"\n'
    )
    return job


def test_run_job_with_progress_and_overrides(tmp_path):
    job = _job(tmp_path)
    seen = []
    report = ferry.run_job(str(job), on_progress=seen.append, progress_interval=0.01, batch__max_items=7)
    assert report.succeeded == 200 and report.dead_lettered == 0
    assert report.final_batch_size <= 7
    assert seen and seen[-1].succeeded == 200
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert len(lines) == 200
    assert "skipped" in report.extra


def test_run_job_reports_bad_files(tmp_path):
    job = tmp_path / "bad.toml"
    job.write_text('[source]\ntype = "jsonl"\npath = "in.jsonl"\n\n[handler]\ntype = "nope"\n')
    with pytest.raises(ValueError, match="bad.toml"):
        ferry.run_job(str(job))
