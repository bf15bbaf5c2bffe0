//! The result shape of the KubeSentiment-compatible batch API (`/api/v1/batch/...`): one
//! object per text with its label, a confidence, timing and provenance, so its clients keep
//! working.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::vader::{analyze, Label, MODEL_NAME};

/// What [`Prediction::backend`] says for predictions made here.
pub const BACKEND: &str = "ferry";

/// One text's result, field for field as the batch API's `results[]` entries:
///
/// ```json
/// {"label": "POSITIVE", "score": 0.95, "inference_time_ms": 45.2,
///  "model_name": "...", "text_length": 32, "backend": "async_batch", "cached": false}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The sentiment class.
    pub label: Label,
    /// Confidence in `label`, in `[0, 1]` (see [`Sentiment::score`](super::Sentiment::score)).
    pub score: f64,
    /// Wall time spent scoring this text, in milliseconds.
    pub inference_time_ms: f64,
    /// The model that scored it ([`MODEL_NAME`]).
    pub model_name: String,
    /// The text's length in Unicode scalar values (what Python's `len` counts).
    pub text_length: usize,
    /// What produced it ([`BACKEND`]).
    pub backend: String,
    /// Whether it came from a result cache (never, here).
    pub cached: bool,
}

/// Scores `text` and wraps the result in the batch API's result shape.
///
/// ```
/// use ferry_models::sentiment::{predict, Label};
/// let p = predict("I love this product! It is amazing.");
/// assert_eq!(p.label, Label::Positive);
/// assert_eq!(p.text_length, 35);
/// assert_eq!(p.backend, "ferry");
/// ```
pub fn predict(text: &str) -> Prediction {
    let started = Instant::now();
    let sentiment = analyze(text);
    let inference_time_ms = started.elapsed().as_secs_f64() * 1000.0;
    Prediction {
        label: sentiment.label,
        score: sentiment.score,
        inference_time_ms,
        model_name: MODEL_NAME.to_owned(),
        text_length: text.chars().count(),
        backend: BACKEND.to_owned(),
        cached: false,
    }
}
