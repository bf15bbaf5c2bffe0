//! XML sources: one large file, a glob of files (`.gz` ones decompressed as they stream), or
//! a text column of a SQL query; each record element is one item, mapped to a JSON object by
//! a [`Mapping`].
//!
//! A reader thread tokenizes the input and cuts it into records (`split`); chunks of records
//! are parsed (`dom`) and mapped on a thread pool sized to the cores (rayon), and a
//! collector thread hands the results to the stream in document order. The channels between
//! them are bounded (a few chunks per worker, then the source's 1024 items), so parsing
//! runs ahead of the sink by a bounded amount and never waits on it otherwise.
//!
//! A record that is not well-formed, or that cannot be mapped (a failed cast, a value path
//! that matches several elements, a missing key) is an [`Error::RecordAt`] with its byte
//! offset (in the decompressed file, or in the query row's document) and the reason; the
//! records after it go on. An I/O error ends the stream.

mod dom;
#[cfg(test)]
mod fuzz;
mod mapping;
mod split;

use std::io::{BufRead, BufReader};
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};

use ferry_core::Item;
use serde_json::Value;

pub use self::mapping::{Cast, Field, Mapping, Path};
use self::split::{Piece, Splitter};
use super::stream::{channel, spawn_blocking, Sender};
use super::{ItemStream, KeyBy};
use crate::Error;

/// Where the XML comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XmlInput {
    /// A file path or a glob pattern (`data/*.xml.gz`); files ending in `.gz` are
    /// decompressed. Matching files are read in name order.
    Files(PathBuf),
    /// A text column of a SQL query's rows: each row holds a document.
    Query {
        /// `sqlite:path`, a `.db` path, or `postgres://...`.
        url: String,
        /// The query.
        query: String,
        /// The column holding the XML.
        column: String,
    },
}

/// An XML source's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlConfig {
    /// Where the XML comes from.
    pub input: XmlInput,
    /// The record element's (local) name.
    pub record: String,
    /// The columns.
    pub mapping: Mapping,
    /// Parser threads (0: one per core).
    pub workers: usize,
}

/// What an XML source counted while it ran: records, and per column how many records its
/// path matched in, for the warning about paths that never match.
#[derive(Debug)]
pub struct XmlStats {
    /// The job-file table the columns are under (`source.columns`, `stage.0.columns`).
    prefix: String,
    columns: Vec<(String, String)>,
    records: AtomicU64,
    hits: Vec<AtomicU64>,
    started: std::time::Instant,
    workers: AtomicU64,
    /// Nanoseconds: parsers working (summed over workers), the reader waiting for room
    /// ahead of the parsers, the hand-off waiting for parsed chunks and for the sink.
    parse_busy: AtomicU64,
    read_blocked: AtomicU64,
    wait_parse: AtomicU64,
    wait_sink: AtomicU64,
    finished_ns: AtomicU64,
}

/// Adds the time since `since` to `counter`.
fn add_elapsed(counter: &AtomicU64, since: std::time::Instant) {
    let ns = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
    counter.fetch_add(ns, Ordering::Relaxed);
}

impl XmlStats {
    /// Counters for `mapping`, whose columns the job file holds under `prefix`
    /// (`source.columns`).
    pub(crate) fn new(mapping: &Mapping, prefix: &str) -> Self {
        XmlStats {
            prefix: prefix.to_owned(),
            columns: mapping
                .columns
                .iter()
                .map(|(name, field)| {
                    let path = match field {
                        Field::Value(p, _) | Field::Count(p) | Field::List(p, _) => p.to_string(),
                    };
                    (name.clone(), path)
                })
                .collect(),
            records: AtomicU64::new(0),
            hits: mapping.columns.iter().map(|_| AtomicU64::new(0)).collect(),
            started: std::time::Instant::now(),
            workers: AtomicU64::new(1),
            parse_busy: AtomicU64::new(0),
            read_blocked: AtomicU64::new(0),
            wait_parse: AtomicU64::new(0),
            wait_sink: AtomicU64::new(0),
            finished_ns: AtomicU64::new(0),
        }
    }

    /// The source's stages, busy and idle, and which stage held the others back, given
    /// the sink's profile (`sink`, from the engine's report) and the batch size: one line
    /// for the end report. The sink is the bottleneck when it was busy nearly all the time
    /// (90%) with at least half a batch of items waiting for it on average (the next batch
    /// was ready whenever a call ended); otherwise the stage the others waited on.
    pub fn profile(&self, sink: &ferry_core::StageReport, batch: usize) -> String {
        let ns = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64;
        let wall = match self.finished_ns.load(Ordering::Relaxed) {
            0 => self.started.elapsed().as_nanos() as f64,
            n => n as f64,
        }
        .max(1.0);
        let workers = ns(&self.workers).max(1.0);
        let share = |c: &AtomicU64| 100.0 * ns(c) / wall;
        let parse_busy = 100.0 * ns(&self.parse_busy) / (wall * workers);
        let (wait_parse, wait_sink) = (share(&self.wait_parse), share(&self.wait_sink));
        let sink_bound = sink.busy_share >= 0.9 && 2.0 * sink.mean_queue_depth >= batch as f64;
        let bottleneck = if sink_bound || wait_sink >= 50.0 {
            format!(
                "the sink (busy {:.0}%, a mean of {:.0} items waiting for it)",
                sink.busy_share * 100.0,
                sink.mean_queue_depth
            )
        } else if parse_busy >= 80.0 || wait_parse >= 50.0 {
            "parsing (the sink waited on it)".to_owned()
        } else {
            "reading the input".to_owned()
        };
        format!(
            "xml source: {} records in {:.2}s; reader waited on parsers {:.0}%; {} parsers busy {:.0}%; hand-off to the engine waited on parsers {:.0}%, on the engine/sink {:.0}%; bottleneck: {bottleneck}",
            self.records(),
            wall / 1e9,
            share(&self.read_blocked),
            workers,
            parse_busy,
            wait_parse,
            wait_sink,
        )
    }

    /// Counts one mapped record and the columns whose paths matched in it.
    fn count(&self, hits: &[bool]) {
        self.records.fetch_add(1, Ordering::Relaxed);
        for (counter, hit) in self.hits.iter().zip(hits) {
            if *hit {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Records mapped so far.
    pub fn records(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }

    /// One warning per column whose path matched in none of the records mapped.
    pub fn warnings(&self) -> Vec<String> {
        let n = self.records();
        if n == 0 {
            return Vec::new();
        }
        self.columns
            .iter()
            .zip(&self.hits)
            .filter(|(_, h)| h.load(Ordering::Relaxed) == 0)
            .map(|((name, path), _)| {
                format!(
                    "{}.{name}: path `{path}` matched nothing in any of the {n} records",
                    self.prefix
                )
            })
            .collect()
    }
}

/// Records per chunk handed to a worker.
const CHUNK: usize = 128;

/// A record to parse: where it is from, its index and offset, its bytes or why it is bad.
struct Raw {
    origin: Arc<str>,
    index: u64,
    offset: u64,
    bytes: Result<Vec<u8>, String>,
}

enum Slot {
    Chunk(std_mpsc::Receiver<Vec<Result<Item<Value>, Error>>>),
    Fail(Error),
    Done,
}

/// Streams the records of an XML source, keyed by `key`; the stats fill as it runs.
///
/// Files are matched now (no match is an [`Error::Io`]); reading, parsing and mapping
/// happen on other threads.
pub async fn xml(config: &XmlConfig, key: KeyBy) -> Result<(ItemStream, Arc<XmlStats>), Error> {
    let stats = Arc::new(XmlStats::new(&config.mapping, "source.columns"));
    let workers = match config.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .thread_name(|i| format!("ferry-xml-{i}"))
        .build()
        .map_err(|e| io_error("the XML parser pool", std::io::Error::other(e.to_string())))?;
    let input = match &config.input {
        XmlInput::Files(pattern) => Input::Files(match_files(pattern)?),
        XmlInput::Query { url, query, column } => Input::Query {
            rows: super::sql(url, query, KeyBy::RowNumber).await?,
            column: column.clone(),
            handle: tokio::runtime::Handle::current(),
        },
    };
    let (tx, stream) = channel(|| {
        io_error(
            "the XML source",
            std::io::Error::other("the XML reader stopped before the end of its input"),
        )
    });
    stats.workers.store(workers as u64, Ordering::Relaxed);
    let (order_tx, order_rx) = std_mpsc::sync_channel::<Slot>(workers * 2);
    let job = Arc::new(Job {
        record: config.record.clone(),
        mapping: config.mapping.clone(),
        key,
        stats: Arc::clone(&stats),
    });
    spawn_blocking("ferry-xml-read", move || {
        read(input, &job, &pool, &order_tx)
    })
    .map_err(|e| io_error("the XML reader", e))?;
    let collect_stats = Arc::clone(&stats);
    spawn_blocking("ferry-xml-collect", move || {
        collect(order_rx, tx, &collect_stats)
    })
    .map_err(|e| io_error("the XML collector", e))?;
    Ok((stream, stats))
}

fn io_error(what: &str, source: std::io::Error) -> Error {
    Error::Io {
        path: PathBuf::from(what),
        source,
    }
}

/// The files a path or glob pattern names, in name order.
fn match_files(pattern: &FsPath) -> Result<Vec<PathBuf>, Error> {
    let text = pattern.to_string_lossy();
    if !text.contains(['*', '?', '[']) {
        return Ok(vec![pattern.to_owned()]);
    }
    let bad = |m: String| io_error(&text, std::io::Error::other(m));
    let mut files: Vec<PathBuf> = glob::glob(&text)
        .map_err(|e| bad(format!("not a valid glob pattern: {e}")))?
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .collect();
    if files.is_empty() {
        return Err(bad("no file matches the pattern".into()));
    }
    files.sort();
    Ok(files)
}

enum Input {
    Files(Vec<PathBuf>),
    Query {
        rows: ItemStream,
        column: String,
        handle: tokio::runtime::Handle,
    },
}

/// What the workers need.
struct Job {
    record: String,
    mapping: Mapping,
    key: KeyBy,
    stats: Arc<XmlStats>,
}

impl Job {
    /// Parses and maps one record.
    fn item(&self, raw: Raw) -> Result<Item<Value>, Error> {
        let bad = |message: String| Error::RecordAt {
            origin: raw.origin.to_string(),
            offset: raw.offset,
            message,
        };
        let bytes = raw.bytes.as_ref().map_err(|m| bad(m.clone()))?;
        let element = dom::parse(bytes).map_err(bad)?;
        let mut hits = vec![false; self.mapping.columns.len()];
        let row = self.mapping.apply(&element, &mut hits).map_err(bad)?;
        self.stats.count(&hits);
        let size = bytes.len();
        let origin = format!("{}@{}", raw.origin, raw.offset);
        self.key
            .item(&origin, raw.index, row, size)
            .map_err(|e| match e {
                Error::MissingKey { column, .. } => {
                    bad(format!("key column `{column}` is missing or empty"))
                }
                other => other,
            })
    }
}

/// Maps every `record` element of one document held in memory (an item's text field, for
/// the `xml` stage), in document order, counting into `stats`; the error names the byte
/// offset of the first record that cannot be read or mapped, or says there is none.
pub(crate) fn map_document(
    doc: &[u8],
    record: &str,
    mapping: &Mapping,
    stats: &XmlStats,
) -> Result<Vec<serde_json::Map<String, Value>>, String> {
    let mut splitter = Splitter::new(std::io::Cursor::new(doc), record);
    let mut rows = Vec::new();
    let mut hits = vec![false; mapping.columns.len()];
    while let Some(piece) = splitter.next_piece().map_err(|e| e.to_string())? {
        let (offset, bytes) = match piece {
            Piece::Record { offset, bytes } => (offset, bytes),
            Piece::Bad { offset, message } => return Err(format!("byte {offset}: {message}")),
        };
        let at = |m: String| format!("byte {offset}: {m}");
        let element = dom::parse(&bytes).map_err(at)?;
        rows.push(mapping.apply(&element, &mut hits).map_err(at)?);
        stats.count(&hits);
    }
    if rows.is_empty() {
        return Err(format!("no <{record}> element in the document"));
    }
    Ok(rows)
}

/// The reader thread's state: the chunk being filled and the next record's index.
struct Cutter<'a> {
    job: &'a Arc<Job>,
    pool: &'a rayon::ThreadPool,
    order: &'a std_mpsc::SyncSender<Slot>,
    chunk: Vec<Raw>,
    index: u64,
}

impl Cutter<'_> {
    /// Hands the chunk to the pool and queues its results; `false` when the consumer is gone.
    fn send(&mut self) -> bool {
        if self.chunk.is_empty() {
            return true;
        }
        let raws = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
        let (res_tx, res_rx) = std_mpsc::sync_channel(1);
        let job = Arc::clone(self.job);
        self.pool.spawn(move || {
            let started = std::time::Instant::now();
            let items = raws.into_iter().map(|r| job.item(r)).collect();
            add_elapsed(&job.stats.parse_busy, started);
            let _ = res_tx.send(items);
        });
        let started = std::time::Instant::now();
        let sent = self.order.send(Slot::Chunk(res_rx)).is_ok();
        add_elapsed(&self.job.stats.read_blocked, started);
        sent
    }

    /// Adds a record; `false` when the consumer is gone.
    fn push(&mut self, origin: &Arc<str>, offset: u64, bytes: Result<Vec<u8>, String>) -> bool {
        self.chunk.push(Raw {
            origin: Arc::clone(origin),
            index: self.index,
            offset,
            bytes,
        });
        self.index += 1;
        self.chunk.len() < CHUNK || self.send()
    }

    /// Cuts the records of one input; `Ok(false)` when the consumer is gone.
    fn split(&mut self, origin: &Arc<str>, input: Box<dyn BufRead>) -> Result<bool, Error> {
        let mut splitter = Splitter::new(input, &self.job.record);
        while let Some(piece) = splitter.next_piece().map_err(|e| io_error(origin, e))? {
            let more = match piece {
                Piece::Record { offset, bytes } => self.push(origin, offset, Ok(bytes)),
                Piece::Bad { offset, message } => self.push(origin, offset, Err(message)),
            };
            if !more {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn files(&mut self, files: Vec<PathBuf>) -> Result<bool, Error> {
        for path in files {
            let origin: Arc<str> = Arc::from(path.display().to_string());
            let file = std::fs::File::open(&path).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
            let reader: Box<dyn BufRead> = if path.extension().is_some_and(|e| e == "gz") {
                Box::new(BufReader::with_capacity(
                    256 * 1024,
                    flate2::read::MultiGzDecoder::new(BufReader::new(file)),
                ))
            } else {
                Box::new(BufReader::with_capacity(256 * 1024, file))
            };
            if !self.split(&origin, reader)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn query(
        &mut self,
        mut rows: ItemStream,
        column: &str,
        handle: &tokio::runtime::Handle,
    ) -> Result<bool, Error> {
        use futures_util::StreamExt;
        while let Some(row) = handle.block_on(rows.next()) {
            let row = row?;
            let origin: Arc<str> = Arc::from(format!("query row {}", row.index() + 1));
            let more = match row.payload().get(column) {
                Some(Value::String(doc)) => {
                    let doc = std::io::Cursor::new(doc.clone().into_bytes());
                    self.split(&origin, Box::new(doc))?
                }
                other => {
                    let what = match other {
                        None | Some(Value::Null) => "null",
                        Some(_) => "a value that is not text",
                    };
                    self.push(
                        &origin,
                        0,
                        Err(format!("column `{column}` holds {what}, not XML")),
                    )
                }
            };
            if !more {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// The reader thread: cuts records, hands chunks to the pool, and queues their results in
/// order for the collector.
fn read(
    input: Input,
    job: &Arc<Job>,
    pool: &rayon::ThreadPool,
    order: &std_mpsc::SyncSender<Slot>,
) {
    let mut cutter = Cutter {
        job,
        pool,
        order,
        chunk: Vec::with_capacity(CHUNK),
        index: 0,
    };
    let result = match input {
        Input::Files(files) => cutter.files(files),
        Input::Query {
            rows,
            column,
            handle,
        } => cutter.query(rows, &column, &handle),
    };
    let slot = match result {
        Ok(false) => return,
        Ok(true) => Slot::Done,
        Err(e) => Slot::Fail(e),
    };
    if cutter.send() {
        let _ = order.send(slot);
    }
}

/// The collector thread: results in document order into the source's stream.
fn collect(order: std_mpsc::Receiver<Slot>, tx: Sender, stats: &XmlStats) {
    let mark_end = || {
        let ns = u64::try_from(stats.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        stats.finished_ns.store(ns, Ordering::Relaxed);
    };
    loop {
        let started = std::time::Instant::now();
        let Ok(slot) = order.recv() else { return };
        match slot {
            Slot::Chunk(results) => {
                // A worker that panicked drops its sender: the stream then ends with the
                // "stopped before the end" error.
                let items = results.recv();
                add_elapsed(&stats.wait_parse, started);
                let Ok(items) = items else { return };
                let started = std::time::Instant::now();
                for item in items {
                    if !tx.send_blocking(item) {
                        return;
                    }
                }
                add_elapsed(&stats.wait_sink, started);
            }
            Slot::Fail(e) => {
                mark_end();
                tx.send_blocking(Err(e));
                tx.finish_blocking();
                return;
            }
            Slot::Done => {
                mark_end();
                tx.finish_blocking();
                return;
            }
        }
    }
}
