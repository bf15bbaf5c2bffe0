//! Sources: CSV files, JSON Lines files and SQL queries, each turned into a stream of keyed
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

pub use self::csv::csv;
pub use self::jsonl::jsonl;
pub use self::sql::sql;
pub use self::stream::{ItemStream, KeyBy};
