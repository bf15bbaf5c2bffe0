//! # ferry-models
//!
//! Models that run inside a Ferry process, with no download at build or run time, each with
//! [`ferry_core::Handler`]s so a batch job or the job service can use them directly.
//!
//! - [`sentiment`]: the VADER lexicon and rule-based sentiment model (Hutto & Gilbert, 2014),
//!   a faithful port of `vaderSentiment` 3.3.2 with its lexicon embedded, and the
//!   batch-API-shaped [`Prediction`](sentiment::Prediction) the sentiment service returns.
//!
//! ```
//! use ferry_models::sentiment::{analyze, Label};
//! let s = analyze("The book was good.");
//! assert_eq!(s.label, Label::Positive);
//! assert!((s.compound - 0.4404).abs() < 1e-4);
//! ```

pub mod sentiment;
