//! CSV files: the header row names the columns; every other record is one item.
//!
//! Values are strings, except empty fields, which are `null` (CSV cannot tell an empty string
//! from a missing value, and `null` is what a missing value means everywhere else). Blank
//! lines are skipped; a record with more or fewer fields than the header is an
//! [`Error::Record`] naming its line. If two columns share a name, the later one wins.

use std::fs::File;
use std::path::{Path, PathBuf};

use ::csv::{ErrorKind, ReaderBuilder, StringRecord};
use serde_json::{Map, Value};

use super::stream::Sender;
use super::{ItemStream, KeyBy};
use crate::Error;

/// Streams the records of the CSV file at `path` as JSON objects keyed by `key`.
///
/// Opens the file now (an [`Error::Io`] names it); records are read lazily on a blocking
/// thread, a bounded number ahead of the consumer.
pub fn csv(path: &Path, key: KeyBy) -> Result<ItemStream, Error> {
    super::stream::file_stream(path, key, "CSV", read)
}

fn read(file: File, path: &Path, key: &KeyBy, tx: Sender) {
    let mut reader = ReaderBuilder::new().has_headers(true).from_reader(file);
    let headers = match reader.headers() {
        Ok(headers) => headers.clone(),
        Err(err) => {
            tx.send_blocking(Err(convert_error(err, path, 1)));
            tx.finish_blocking();
            return;
        }
    };
    let origin = path.display().to_string();
    let mut record = StringRecord::new();
    let mut index = 0u64;
    loop {
        let item = match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let payload: Map<String, Value> = headers
                    .iter()
                    .zip(record.iter())
                    .map(|(name, value)| {
                        let value = if value.is_empty() {
                            Value::Null
                        } else {
                            Value::String(value.to_owned())
                        };
                        (name.to_owned(), value)
                    })
                    .collect();
                // Field bytes plus one separator (or line end) per field.
                let bytes = record.as_slice().len() + record.len();
                key.item(&origin, index, payload, bytes)
            }
            Err(err) => {
                let fatal = matches!(err.kind(), ErrorKind::Io(_));
                let err = convert_error(err, path, reader.position().line());
                if fatal {
                    tx.send_blocking(Err(err));
                    break;
                }
                Err(err)
            }
        };
        index += 1;
        if !tx.send_blocking(item) {
            return;
        }
    }
    tx.finish_blocking();
}

/// Maps a CSV error onto [`Error`]; `line` is used when the error carries no position.
fn convert_error(err: ::csv::Error, path: &Path, line: u64) -> Error {
    let line = err.position().map_or(line, |pos| pos.line());
    let record = |message: String| Error::Record {
        path: path.to_path_buf(),
        line,
        message,
    };
    match err.into_kind() {
        ErrorKind::Io(source) => Error::Io {
            path: PathBuf::from(path),
            source,
        },
        ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => record(format!(
            "expected {expected_len} fields (as in the header), found {len}"
        )),
        ErrorKind::Utf8 { err, .. } => record(format!(
            "field {} is not valid UTF-8 (after byte {})",
            err.field() + 1,
            err.valid_up_to()
        )),
        // Seek, serialization and deserialization errors cannot happen here.
        other => record(format!("{other:?}")),
    }
}
