//! VADER sentiment: the lexicon and rule-based model of Hutto & Gilbert (2014), ported from
//! the reference Python package `vaderSentiment` 3.3.2, rule for rule (including its quirks),
//! so that scores match the reference to its printed precision.
//!
//! This module owns the model ([`analyze`] → [`Sentiment`]), the batch API's result shape
//! ([`predict`] → [`Prediction`]) and two engine handlers that score a batch off the async
//! runtime: [`SentimentHandler`] for string payloads and [`SentimentJsonHandler`] for the
//! JSON payloads the CLI and the job service carry.
//!
//! The lexicon and emoji table (`data/`, MIT, © 2016 C.J. Hutto) are compiled into the
//! binary and parsed once, on first use or on [`preload`]. If you use VADER, please cite:
//! Hutto, C.J. & Gilbert, E.E. (2014). *VADER: A Parsimonious Rule-based Model for Sentiment
//! Analysis of Social Media Text.* ICWSM-14.

mod handler;
mod lexicon;
mod prediction;
mod sample;
mod vader;

pub use handler::{payload_text, SentimentHandler, SentimentJsonHandler, EXPECTED_TEXT};
pub use lexicon::preload;
pub use prediction::{predict, Prediction, BACKEND};
pub use sample::sample_texts;
pub use vader::{analyze, Label, Sentiment, MODEL_NAME, NEGATIVE_THRESHOLD, POSITIVE_THRESHOLD};
