//! Sources: CSV files, JSON Lines files, SQL queries and XML (files or a query's column), each turned into a stream of keyed
//! items whose payload is a JSON object (column name -> value).
//!
//! Every source streams: files are read on a blocking thread and queries on a task, each
//! feeding a bounded channel (1024 items), so memory stays bounded whatever
//! the size of the origin and the async runtime is never blocked. Dropping the stream stops
//! the reader.
//!
//! Errors arrive as items of the stream. Record-level errors (a malformed CSV record or
//! JSON line, a missing key) do not end it: the consumer decides whether to skip the record
//! or stop. I/O and query errors end it. A reader that stops before the end of its origin
//! (a panic, a cancelled task) ends the stream with an error, never silently.
//!
//! Item indices are 0-based positions of records in the origin (bad records count, so
//! indices stay stable when a bad record is fixed); row numbers in keys and errors are
//! 1-based.

mod csv;
mod jsonl;
mod sql;
mod stream;
pub mod xml;

pub use self::csv::csv;
pub use self::jsonl::jsonl;
pub use self::sql::{sql, sql_count};
pub use self::stream::{ItemStream, KeyBy};
pub use self::xml::{xml, XmlConfig, XmlInput, XmlStats};

/// Counts the records of a CSV (data rows, after the header) or JSON Lines file (non-blank
/// lines) by scanning it once; for progress and ETA, so it is approximate only for CSV
/// fields with embedded line breaks.
pub fn count_lines(path: &std::path::Path, header: bool) -> Result<u64, crate::Error> {
    use std::io::BufRead;
    let file = std::fs::File::open(path).map_err(|source| crate::Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut n = 0u64;
    for line in std::io::BufReader::new(file).split(b'\n') {
        let line = line.map_err(|source| crate::Error::Io {
            path: path.to_owned(),
            source,
        })?;
        if !line.iter().all(u8::is_ascii_whitespace) {
            n += 1;
        }
    }
    Ok(if header { n.saturating_sub(1) } else { n })
}
