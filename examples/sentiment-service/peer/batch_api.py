"""A small Python peer of the KubeSentiment-compatible batch API, for benchmarks only.

FastAPI, in memory, VADER (the vaderSentiment package): the routes and shapes `ferry-bench
service --url` uses (`POST /api/v1/batch/predict`, `GET status/{id}`, `GET results/{id}`
with paging, `DELETE jobs/{id}`, `GET queue/status`), priority queues with the
KubeSentiment limits (100 / 500 / 1,000 jobs, 429 beyond), and one asyncio worker that
predicts each job's texts in batches of up to 100, yielding to the event loop between
batches. Nothing is durable.

    uvicorn batch_api:app --host 127.0.0.1 --port 8001 --log-level warning
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Dict, List, Optional

from fastapi import FastAPI, HTTPException, Query
from pydantic import BaseModel, Field
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

LIMITS = {"high": 100, "medium": 500, "low": 1000}
BATCH = 100

app = FastAPI(title="KubeSentiment-compatible batch API (Python peer)")
analyzer = SentimentIntensityAnalyzer()
jobs: Dict[str, dict] = {}
queues: Dict[str, asyncio.Queue] = {}
wakeup: Optional[asyncio.Event] = None


class BatchTextInput(BaseModel):
    texts: List[str] = Field(min_length=1, max_length=1000)
    priority: str = "medium"
    timeout_seconds: int = 300


def predict(text: str) -> dict:
    started = time.perf_counter()
    compound = analyzer.polarity_scores(text)["compound"]
    if compound >= 0.05:
        label = "POSITIVE"
    elif compound <= -0.05:
        label = "NEGATIVE"
    else:
        label = "NEUTRAL"
    return {
        "label": label,
        "score": round(abs(compound), 4),
        "inference_time_ms": (time.perf_counter() - started) * 1000.0,
        "model_name": "vader",
        "text_length": len(text),
        "backend": "async_batch",
        "cached": False,
    }


def status_of(job: dict) -> dict:
    total = len(job["texts"])
    done = len(job["results"])
    return {
        "job_id": job["job_id"],
        "status": job["status"],
        "total_texts": total,
        "processed_texts": done,
        "failed_texts": 0,
        "progress_percentage": 100.0 * done / total,
        "created_at": job["created_at"],
        "started_at": job["started_at"],
        "completed_at": job["completed_at"],
        "priority": job["priority"],
        "error": None,
    }


async def worker() -> None:
    while True:
        job = None
        for p in ("high", "medium", "low"):
            if not queues[p].empty():
                job = queues[p].get_nowait()
                break
        if job is None:
            wakeup.clear()
            await wakeup.wait()
            continue
        if job["status"] == "cancelled":
            continue
        job["status"] = "processing"
        job["started_at"] = time.time()
        texts = job["texts"]
        for i in range(0, len(texts), BATCH):
            job["results"].extend(predict(t) for t in texts[i : i + BATCH])
            await asyncio.sleep(0)
        job["status"] = "completed"
        job["completed_at"] = time.time()


@app.on_event("startup")
async def start() -> None:
    global wakeup
    wakeup = asyncio.Event()
    for p in LIMITS:
        queues[p] = asyncio.Queue()
    asyncio.get_running_loop().create_task(worker())


@app.post("/api/v1/batch/predict")
async def submit(payload: BatchTextInput) -> dict:
    if payload.priority not in LIMITS:
        raise HTTPException(422, f"unknown priority {payload.priority!r}")
    if queues[payload.priority].qsize() >= LIMITS[payload.priority]:
        raise HTTPException(429, "queue full", headers={"Retry-After": "1"})
    job = {
        "job_id": str(uuid.uuid4()),
        "texts": payload.texts,
        "priority": payload.priority,
        "status": "pending",
        "results": [],
        "created_at": time.time(),
        "started_at": None,
        "completed_at": None,
    }
    jobs[job["job_id"]] = job
    queues[payload.priority].put_nowait(job)
    wakeup.set()
    return status_of(job)


def find(job_id: str) -> dict:
    job = jobs.get(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id}")
    return job


@app.get("/api/v1/batch/status/{job_id}")
async def status(job_id: str) -> dict:
    return status_of(find(job_id))


@app.get("/api/v1/batch/results/{job_id}")
async def results(
    job_id: str, page: int = Query(1, ge=1), page_size: int = Query(100, ge=1, le=1000)
) -> dict:
    job = find(job_id)
    rows = job["results"]
    start = (page - 1) * page_size
    return {
        "job_id": job_id,
        "results": rows[start : start + page_size],
        "total_results": len(rows),
        "page": page,
        "page_size": page_size,
        "has_more": start + page_size < len(rows),
    }


@app.delete("/api/v1/batch/jobs/{job_id}")
async def cancel(job_id: str) -> dict:
    job = find(job_id)
    if job["status"] in ("pending", "processing"):
        job["status"] = "cancelled"
    return status_of(job)


@app.get("/api/v1/batch/queue/status")
async def queue_status() -> dict:
    return {p: {"queued_jobs": q.qsize(), "limit": LIMITS[p]} for p, q in queues.items()}
