//! What every source shares: the stream type, how items are keyed, and the bounded channel
//! that carries items from a reader (a blocking thread or a task) to the consumer.

use std::pin::Pin;
use std::task::{Context, Poll};

use ferry_core::{Item, Key};
use futures_core::Stream;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::Error;

/// A source's items, in source order; errors are items too (see the [module docs](super)).
pub type ItemStream = Pin<Box<dyn Stream<Item = Result<Item<Value>, Error>> + Send>>;

/// How items are keyed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyBy {
    /// By a column's value, as a string: strings as they are, numbers and booleans without
    /// quotes, arrays and objects as compact JSON. A missing, null or empty value is an
    /// [`Error::MissingKey`] for that record.
    Column(String),
    /// By the record's 1-based row number.
    RowNumber,
}

impl KeyBy {
    /// The key of the record at 0-based `index` with this payload.
    fn key(&self, origin: &str, index: u64, payload: &Map<String, Value>) -> Result<Key, Error> {
        let column = match self {
            KeyBy::RowNumber => return Ok(Key::from(index + 1)),
            KeyBy::Column(column) => column,
        };
        let key = match payload.get(column) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(Key::from(s.as_str())),
            Some(other) => Some(Key::from(other.to_string())),
        };
        key.ok_or_else(|| Error::MissingKey {
            origin: origin.to_owned(),
            row: index + 1,
            column: column.clone(),
        })
    }

    /// Builds the item for the record at 0-based `index`.
    pub(super) fn item(
        &self,
        origin: &str,
        index: u64,
        payload: Map<String, Value>,
        bytes: usize,
    ) -> Result<Item<Value>, Error> {
        let key = self.key(origin, index, &payload)?;
        Ok(Item::new(key, index, Value::Object(payload)).with_bytes(bytes))
    }
}

/// How many items a reader may run ahead of its consumer.
const CHANNEL_CAPACITY: usize = 1024;

enum Message {
    Item(Result<Item<Value>, Error>),
    /// The reader reached the end of its origin (after an error that ends it, or not).
    End,
}

/// The reader's end of a source's channel.
pub(super) struct Sender(mpsc::Sender<Message>);

impl Sender {
    /// Sends from a blocking thread; `false` when the consumer dropped the stream.
    pub(super) fn send_blocking(&self, item: Result<Item<Value>, Error>) -> bool {
        self.0.blocking_send(Message::Item(item)).is_ok()
    }

    /// Sends from a task; `false` when the consumer dropped the stream.
    pub(super) async fn send(&self, item: Result<Item<Value>, Error>) -> bool {
        self.0.send(Message::Item(item)).await.is_ok()
    }

    /// Completes when the consumer dropped the stream.
    pub(super) async fn closed(&self) {
        self.0.closed().await;
    }

    /// Marks the end of the origin, from a blocking thread.
    pub(super) fn finish_blocking(self) {
        // The consumer may be gone; then nobody needs to know.
        let _ = self.0.blocking_send(Message::End);
    }

    /// Marks the end of the origin, from a task.
    pub(super) async fn finish(self) {
        let _ = self.0.send(Message::End).await;
    }
}

/// The consumer's end: a stream that ends with `stopped()` if the reader went away without
/// marking the end, so a crashed reader never looks like a short origin.
struct Receiver {
    rx: mpsc::Receiver<Message>,
    stopped: Option<Box<dyn FnOnce() -> Error + Send>>,
}

impl Stream for Receiver {
    type Item = Result<Item<Value>, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.stopped.is_none() {
            return Poll::Ready(None);
        }
        match this.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Message::Item(item))) => Poll::Ready(Some(item)),
            Poll::Ready(Some(Message::End)) => {
                this.stopped = None;
                this.rx.close();
                Poll::Ready(None)
            }
            Poll::Ready(None) => Poll::Ready(this.stopped.take().map(|stopped| Err(stopped()))),
        }
    }
}

/// A bounded channel whose receiving end is the source's stream; `stopped` builds the error
/// reported if the reader stops without [`Sender::finish`].
pub(super) fn channel(stopped: impl FnOnce() -> Error + Send + 'static) -> (Sender, ItemStream) {
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let stream = Receiver {
        rx,
        stopped: Some(Box::new(stopped)),
    };
    (Sender(tx), Box::pin(stream))
}

/// Runs a blocking reader on Tokio's blocking pool, or on its own thread when called outside
/// a Tokio runtime (the stream itself works on any executor).
pub(super) fn spawn_blocking(
    name: &str,
    reader: impl FnOnce() + Send + 'static,
) -> std::io::Result<()> {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            // Detached: the reader stops on its own when the stream is dropped.
            drop(runtime.spawn_blocking(reader));
            Ok(())
        }
        Err(_) => std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(reader)
            .map(drop),
    }
}

/// Opens the file at `path` now (an [`Error::Io`] names it) and streams what `read`
/// produces from it on a blocking thread; `what` names the format in the error reported if
/// the reader stops early.
pub(super) fn file_stream(
    path: &std::path::Path,
    key: KeyBy,
    what: &'static str,
    read: fn(std::fs::File, &std::path::Path, &KeyBy, Sender),
) -> Result<ItemStream, Error> {
    let io_error = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let path = path.to_path_buf();
    let stopped_path = path.clone();
    let (tx, stream) = channel(move || Error::Io {
        path: stopped_path,
        source: std::io::Error::other(format!(
            "the {what} reader stopped before the end of the file"
        )),
    });
    spawn_blocking(&format!("ferry-{what}"), move || {
        read(file, &path, &key, tx)
    })
    .map_err(io_error)?;
    Ok(stream)
}

/// Approximate size of a payload, for [`Item::with_bytes`] where no raw record length is at
/// hand: the lengths of names and strings, 8 bytes per number.
pub(super) fn approx_object_size(map: &Map<String, Value>) -> usize {
    map.iter().map(|(k, v)| k.len() + approx_size(v)).sum()
}

fn approx_size(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) => 1,
        Value::Number(_) => 8,
        Value::String(s) => s.len(),
        Value::Array(values) => values.iter().map(approx_size).sum::<usize>() + 2,
        Value::Object(map) => approx_object_size(map) + 2,
    }
}
