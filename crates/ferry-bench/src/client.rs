//! A client of the service under test, speaking the KubeSentiment-compatible batch API
//! (`/api/v1/batch/...`): submit a job, poll it to completion, page through its results.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

/// A job not completed this long after its submit fails the run.
const JOB_DEADLINE: Duration = Duration::from_secs(120);

/// A client of the service under test.
pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    poll: Duration,
}

impl Client {
    /// A client of the service at `base` (`http://host:port`) that polls a job's status
    /// every `poll`.
    pub(crate) fn new(http: reqwest::Client, base: String, poll: Duration) -> Client {
        Client { http, base, poll }
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let r = self.http.get(format!("{}{path}", self.base)).send().await?;
        let status = r.status();
        let body: Value = r.json().await?;
        anyhow::ensure!(status.is_success(), "GET {path}: {status} {body}");
        Ok(body)
    }

    /// Submits one job, polls it to completion and checks its results; returns the time from
    /// submit to `completed` seen.
    pub(crate) async fn job(&self, texts: &[String]) -> anyhow::Result<Duration> {
        let submitted = Instant::now();
        let r = self
            .http
            .post(format!("{}/api/v1/batch/predict", self.base))
            .json(&json!({ "texts": texts }))
            .send()
            .await?;
        let status = r.status();
        let body: Value = r.json().await?;
        anyhow::ensure!(status.is_success(), "submit: {status} {body}");
        let id = body["job_id"]
            .as_str()
            .context("submit: no job_id")?
            .to_owned();
        let deadline = submitted + JOB_DEADLINE;
        loop {
            anyhow::ensure!(
                Instant::now() < deadline,
                "job {id} did not complete within {JOB_DEADLINE:?}"
            );
            let s = self.get(&format!("/api/v1/batch/status/{id}")).await?;
            match s["status"].as_str() {
                Some("completed") => break,
                Some("pending" | "processing") => tokio::time::sleep(self.poll).await,
                other => bail!("job {id} ended {other:?}: {s}"),
            }
        }
        let latency = submitted.elapsed();
        let page_size = texts.len().clamp(1, 1000);
        let mut seen = 0;
        for page in 1.. {
            let r = self
                .get(&format!(
                    "/api/v1/batch/results/{id}?page={page}&page_size={page_size}"
                ))
                .await?;
            let results = r["results"].as_array().context("results: no array")?;
            if let Some(bad) = results.iter().find(|v| v.get("error").is_some()) {
                bail!("job {id} has a failed text: {bad}");
            }
            seen += results.len();
            if !r["has_more"].as_bool().unwrap_or(false) {
                break;
            }
        }
        anyhow::ensure!(
            seen == texts.len(),
            "job {id}: {seen} results for {} texts",
            texts.len()
        );
        Ok(latency)
    }
}
