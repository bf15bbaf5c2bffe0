//! JSON Lines files: each non-blank line is one JSON object, one item.
//!
//! Blank (whitespace-only) lines are skipped and take no row number. A line that is not JSON,
//! or JSON that is not an object, is an [`Error::Record`] naming the line, with serde's
//! message.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde_json::Value;

use super::stream::Sender;
use super::{ItemStream, KeyBy};
use crate::Error;

/// Streams the objects of the JSON Lines file at `path`, keyed by `key`.
///
/// Opens the file now (an [`Error::Io`] names it); lines are read lazily on a blocking
/// thread, a bounded number ahead of the consumer.
pub fn jsonl(path: &Path, key: KeyBy) -> Result<ItemStream, Error> {
    super::stream::file_stream(path, key, "JSON Lines", read)
}

fn read(file: File, path: &Path, key: &KeyBy, tx: Sender) {
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let origin = path.display().to_string();
    let mut buf = Vec::new();
    let mut line_number = 0u64;
    let mut index = 0u64;
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(source) => {
                tx.send_blocking(Err(Error::Io {
                    path: path.to_path_buf(),
                    source,
                }));
                break;
            }
        }
        line_number += 1;
        let mut line = buf.as_slice();
        if line_number == 1 {
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let item = match serde_json::from_slice::<Value>(line) {
            Ok(Value::Object(payload)) => key.item(&origin, index, payload, line.len()),
            Ok(other) => Err(record_error(
                path,
                line_number,
                format!("expected a JSON object, found {}", kind(&other)),
            )),
            Err(err) => Err(record_error(path, line_number, parse_message(&err))),
        };
        index += 1;
        if !tx.send_blocking(item) {
            return;
        }
    }
    tx.finish_blocking();
}

fn record_error(path: &Path, line: u64, message: String) -> Error {
    Error::Record {
        path: path.to_path_buf(),
        line,
        message,
    }
}

/// serde's message with its position reduced to a column: the line is always 1 to serde,
/// and the error already names the file's line.
fn parse_message(err: &serde_json::Error) -> String {
    let message = err.to_string();
    let position = format!(" at line {} column {}", err.line(), err.column());
    match message.strip_suffix(&position) {
        Some(bare) => format!("{bare} at column {}", err.column()),
        None => message,
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
