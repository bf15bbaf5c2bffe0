//! Dead letters: items that exhausted their attempts or failed for good, with why and when.
//!
//! A [`DeadLetterSink`] receives them in groups (one group per settled batch). Two sinks ship
//! here: [`MemoryDeadLetters`] for tests and library users, and [`JsonlDeadLetters`], one JSON
//! object per line, which `ferry` can re-drive later.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;
use tokio::io::AsyncWriteExt;

use crate::error::Error;
use crate::item::{Item, Key};
use crate::outcome::BoxFuture;

/// One item that will not be processed, with the reason.
#[derive(Debug, Clone)]
pub struct DeadLetter<T> {
    /// The item as it was accepted.
    pub item: Item<T>,
    /// The last error.
    pub error: String,
    /// Handler calls that included the item.
    pub attempts: u32,
    /// Wall-clock time of the first call (`None` if it never reached the handler).
    pub first_attempt_at: Option<SystemTime>,
    /// Wall-clock time it was dead-lettered.
    pub dead_at: SystemTime,
}

/// Where dead letters go.
pub trait DeadLetterSink<T>: Send + Sync + 'static {
    /// Stores a group of dead letters. An error here is fatal to the engine's run: losing a
    /// dead letter would lose an item.
    fn write<'a>(&'a self, letters: &'a [DeadLetter<T>]) -> BoxFuture<'a, Result<(), Error>>;

    /// Where the letters go, for reports ("memory", a file path).
    fn describe(&self) -> String;
}

/// Keeps dead letters in memory; clone it to read them back.
#[derive(Debug)]
pub struct MemoryDeadLetters<T> {
    letters: Arc<Mutex<Vec<DeadLetter<T>>>>,
}

impl<T> Clone for MemoryDeadLetters<T> {
    fn clone(&self) -> Self {
        MemoryDeadLetters {
            letters: Arc::clone(&self.letters),
        }
    }
}

impl<T> Default for MemoryDeadLetters<T> {
    fn default() -> Self {
        MemoryDeadLetters {
            letters: Arc::new(Mutex::new(Vec::new())),
        }
    }
}

impl<T: Clone> MemoryDeadLetters<T> {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of everything stored so far.
    pub fn snapshot(&self) -> Vec<DeadLetter<T>> {
        self.letters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The keys stored so far.
    pub fn keys(&self) -> Vec<Key> {
        self.letters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|l| l.item.key().clone())
            .collect()
    }
}

impl<T: Clone + Send + Sync + 'static> DeadLetterSink<T> for MemoryDeadLetters<T> {
    fn write<'a>(&'a self, letters: &'a [DeadLetter<T>]) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            self.letters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(letters.iter().cloned());
            Ok(())
        })
    }

    fn describe(&self) -> String {
        "memory".to_owned()
    }
}

/// Appends dead letters to a JSON Lines file:
/// `{"key", "index", "priority", "payload", "error", "attempts", "first_attempt_at", "dead_at"}`
/// (times as RFC 3339-like seconds since the epoch with fractions). Each group is flushed
/// before `write` returns.
#[derive(Debug)]
pub struct JsonlDeadLetters {
    path: PathBuf,
    file: tokio::sync::Mutex<Option<tokio::fs::File>>,
}

impl JsonlDeadLetters {
    /// A sink appending to `path` (created on first write).
    pub fn new(path: impl AsRef<Path>) -> Self {
        JsonlDeadLetters {
            path: path.as_ref().to_owned(),
            file: tokio::sync::Mutex::new(None),
        }
    }
}

#[derive(Serialize)]
struct Line<'a, T> {
    key: &'a Key,
    index: u64,
    priority: crate::item::Priority,
    payload: &'a T,
    error: &'a str,
    attempts: u32,
    first_attempt_at: Option<f64>,
    dead_at: f64,
}

fn epoch_secs(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl<T: Serialize + Send + Sync + 'static> DeadLetterSink<T> for JsonlDeadLetters {
    fn write<'a>(&'a self, letters: &'a [DeadLetter<T>]) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mut buf = Vec::with_capacity(letters.len() * 128);
            for l in letters {
                serde_json::to_writer(
                    &mut buf,
                    &Line {
                        key: l.item.key(),
                        index: l.item.index(),
                        priority: l.item.priority(),
                        payload: l.item.payload(),
                        error: &l.error,
                        attempts: l.attempts,
                        first_attempt_at: l.first_attempt_at.map(epoch_secs),
                        dead_at: epoch_secs(l.dead_at),
                    },
                )?;
                buf.push(b'\n');
            }
            let mut guard = self.file.lock().await;
            if guard.is_none() {
                let file = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)
                    .await
                    .map_err(Error::DeadLetter)?;
                *guard = Some(file);
            }
            if let Some(file) = guard.as_mut() {
                file.write_all(&buf).await.map_err(Error::DeadLetter)?;
                file.flush().await.map_err(Error::DeadLetter)?;
            }
            Ok(())
        })
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(key: &str) -> DeadLetter<serde_json::Value> {
        DeadLetter {
            item: Item::new(key, 3, serde_json::json!({"v": key})),
            error: "boom".into(),
            attempts: 2,
            first_attempt_at: Some(SystemTime::now()),
            dead_at: SystemTime::now(),
        }
    }

    #[tokio::test]
    async fn jsonl_appends_one_line_per_letter() {
        let dir = std::env::temp_dir().join(format!("ferry-dl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dead.jsonl");
        let _ = std::fs::remove_file(&path);
        let sink = JsonlDeadLetters::new(&path);
        sink.write(&[letter("a"), letter("b")]).await.unwrap();
        sink.write(&[letter("c")]).await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1]["key"], "b");
        assert_eq!(lines[1]["payload"]["v"], "b");
        assert_eq!(lines[1]["attempts"], 2);
        assert_eq!(lines[1]["error"], "boom");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn memory_sink_keeps_letters() {
        let sink = MemoryDeadLetters::new();
        sink.write(&[letter("x")]).await.unwrap();
        assert_eq!(sink.keys(), vec![Key::from("x")]);
        assert_eq!(sink.describe(), "memory");
    }
}
