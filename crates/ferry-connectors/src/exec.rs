//! Handlers in any language: batches sent to long-lived child processes over a line protocol.
//!
//! [`ExecHandler::new`] starts a pool of `workers` children (`program` with `args`, the
//! parent's environment plus `env`); they live until the handler is dropped, which kills
//! them. Each child serves one batch at a time.
//!
//! # Protocol
//!
//! One JSON object per line, UTF-8, `\n`-terminated; the child must flush stdout after each
//! line. Per batch, Ferry writes one line to the child's stdin:
//!
//! ```json
//! {"batch": [{"key": "k1", "item": {"id": 1}}, {"key": "k2", "item": {"id": 2}}]}
//! ```
//!
//! and reads one line from its stdout, one of:
//!
//! * `{"outcomes": [o1, o2, ...]}`: one outcome per item, same length and order, each one of
//!   `{"ok": result}` (done, with its result), `{"retry": "msg"}` (failed for a reason that
//!   may pass: retried after a backoff) or `{"fatal": "msg"}` (failed for good:
//!   dead-lettered with `msg`).
//! * `{"results": [r1, r2, ...]}`: the short form: a result that is an object with an
//!   `"error"` string fails that item for good (`{"error": "msg"}`); one with a `"retry"`
//!   string retries it (`{"retry": "msg"}`); any other value is the item's result.
//! * `{"split": "msg"}` or `{"error": "msg"}`: the batch failed without naming an item (the
//!   handler raised): the engine splits it until the culprit is alone; a single item is
//!   dead-lettered with `msg`. A poison item is isolated this way; its neighbours succeed.
//! * `{"retry": "msg", "retry_after": 2.5}`: retry the whole batch; `retry_after` (seconds,
//!   optional; `after_ms` in milliseconds also works) pauses every call to the handler, like
//!   an HTTP `Retry-After`.
//! * `{"fatal": "msg"}`: every item of the batch fails for good.
//!
//! Anything else on stdout (a line that is not such an object, an `outcomes` or `results`
//! array of the wrong length), a child that exits or is killed, or a batch abandoned while
//! the child worked on it (the engine's per-attempt timeout, `dispatch.timeout`) makes Ferry
//! kill that child (at once: a child that hangs past the timeout does not keep its CPU) and
//! start a new one for the next batch; the batch is retried and counted as *ambiguous* in
//! [`counters`](ExecHandler::counters): the child may have done the work. The child's stderr
//! is forwarded line by line to `tracing` warnings, so diagnostics go there, never to
//! stdout. A child should exit when its stdin closes (the handler was dropped, or the
//! process running it died).
//!
//! Helpers that speak this protocol, one file each with no dependencies and an example each,
//! are in `examples/exec-handlers`: `ferry_exec.py` (`serve(handler)`) and `ferry_exec.js`;
//! `docs/job-file.md` documents them.
//!
//! A minimal Python child:
//!
//! ```python
//! import json, sys
//! for line in sys.stdin:
//!     batch = json.loads(line)["batch"]
//!     print(json.dumps({"results": [e["item"] for e in batch]}), flush=True)
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::Duration;

use ferry_core::{Batch, BatchOutcome, BoxFuture, Handler, Item, ItemOutcome};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot, Mutex, Semaphore};

use crate::classify::CallCounters;
use crate::error::Error;

/// Settings of an [`ExecHandler`]. Environment values may hold secrets: they are never
/// logged or printed (dry runs show `***`).
#[derive(Debug, Clone)]
pub struct ExecConfig {
    /// The program to run, a path or a name looked up in `PATH`.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Environment variables added to the parent's.
    pub env: Vec<(String, String)>,
    /// How many children serve batches concurrently (default 1; 0 is taken as 1).
    pub workers: usize,
}

impl Default for ExecConfig {
    fn default() -> Self {
        ExecConfig {
            program: String::new(),
            args: Vec::new(),
            env: Vec::new(),
            workers: 1,
        }
    }
}

/// Sends batches to a pool of long-lived child processes; see the [module docs](self) for
/// the protocol.
#[derive(Debug)]
pub struct ExecHandler {
    config: ExecConfig,
    slots: Vec<Mutex<Slot>>,
    /// One permit per child: a batch holding a permit always finds a free child.
    free: Semaphore,
    next: AtomicUsize,
    counters: Arc<CallCounters>,
}

/// One child of the pool, used by one batch at a time.
#[derive(Debug)]
struct Slot {
    id: usize,
    /// `None` after a failed (re)start; the next batch tries again.
    child: Option<Child>,
    /// A batch was written and its answer not read: the batch's future was dropped (a
    /// timeout), so the child's next line would answer the wrong batch.
    busy: bool,
}

/// A running child and the threads that carry its pipes.
#[derive(Debug)]
struct Child {
    process: std::process::Child,
    /// To the thread writing stdin; blocking writes stay off the runtime.
    stdin: std_mpsc::Sender<(Vec<u8>, oneshot::Sender<std::io::Result<()>>)>,
    /// From the thread reading stdout: complete lines, or why a line was unreadable.
    /// Closed when stdout is.
    lines: mpsc::UnboundedReceiver<Result<String, String>>,
}

impl Drop for Child {
    fn drop(&mut self) {
        // Errors mean the child is already gone; the wait reaps it either way.
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

#[derive(Serialize)]
struct Request<'a> {
    batch: Vec<Entry<'a>>,
}

#[derive(Serialize)]
struct Entry<'a> {
    key: &'a str,
    item: &'a Value,
}

impl ExecHandler {
    /// Starts the children; an error names the program that could not be started.
    pub fn new(config: ExecConfig) -> Result<Self, Error> {
        let workers = config.workers.max(1);
        let mut handler = ExecHandler {
            config,
            slots: Vec::with_capacity(workers),
            free: Semaphore::new(workers),
            next: AtomicUsize::new(0),
            counters: CallCounters::shared(),
        };
        for id in 0..workers {
            let child = handler.spawn(id)?;
            handler.slots.push(Mutex::new(Slot {
                id,
                child: Some(child),
                busy: false,
            }));
        }
        Ok(handler)
    }

    /// The handler's counters (ambiguous failures).
    pub fn counters(&self) -> Arc<CallCounters> {
        Arc::clone(&self.counters)
    }

    /// The line written to a child's stdin for `items` (without the newline).
    pub fn request_line(items: &[Item<Value>]) -> String {
        let request = Request {
            batch: items
                .iter()
                .map(|i| Entry {
                    key: i.key().as_str(),
                    item: i.payload(),
                })
                .collect(),
        };
        // Serializing `Value`s with string keys cannot fail.
        serde_json::to_string(&request).unwrap_or_default()
    }

    /// What a dry run prints: the command, the added environment's names (values masked)
    /// and the line a child would read.
    pub fn describe_request(&self, items: &[Item<Value>]) -> String {
        let mut out = format!("exec {}", self.config.program);
        for arg in &self.config.args {
            out.push(' ');
            out.push_str(arg);
        }
        for (name, _) in &self.config.env {
            out.push_str(&format!("\n{name}=***"));
        }
        out.push('\n');
        out.push_str(&Self::request_line(items));
        out
    }

    fn spawn(&self, id: usize) -> Result<Child, Error> {
        let program = &self.config.program;
        let io_error = |source| Error::Io {
            path: PathBuf::from(program),
            source,
        };
        let mut process = Command::new(program)
            .args(&self.config.args)
            .envs(self.config.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io_error)?;
        let pid = process.id();
        let (stdin, stdout, stderr) = match (
            process.stdin.take(),
            process.stdout.take(),
            process.stderr.take(),
        ) {
            (Some(i), Some(o), Some(e)) => (i, o, e),
            _ => {
                let _ = process.kill();
                let _ = process.wait();
                return Err(io_error(std::io::Error::other(
                    "the child's pipes are missing",
                )));
            }
        };
        // Owned by `Child` from here on, so an error below still kills the process.
        let (write_tx, write_rx) = std_mpsc::channel();
        let (line_tx, line_rx) = mpsc::unbounded_channel();
        let child = Child {
            process,
            stdin: write_tx,
            lines: line_rx,
        };
        let name = format!("ferry-exec-{id}");
        std::thread::Builder::new()
            .name(format!("{name}-stdin"))
            .spawn(move || write_lines(stdin, write_rx))
            .map_err(io_error)?;
        std::thread::Builder::new()
            .name(format!("{name}-stdout"))
            .spawn(move || read_lines(stdout, line_tx))
            .map_err(io_error)?;
        let label = program.clone();
        std::thread::Builder::new()
            .name(format!("{name}-stderr"))
            .spawn(move || forward_stderr(stderr, &label, id, pid))
            .map_err(io_error)?;
        tracing::debug!(program = %program, worker = id, pid, "exec child started");
        Ok(child)
    }

    /// Kills the slot's child (if any) and starts a new one; a failed start leaves the slot
    /// empty for the next batch to try again.
    fn restart(&self, slot: &mut Slot, why: &str) {
        let pid = slot.child.as_ref().map(|c| c.process.id());
        tracing::warn!(
            program = %self.config.program,
            worker = slot.id,
            pid,
            "restarting exec child: {why}"
        );
        slot.child = None;
        slot.busy = false;
        match self.spawn(slot.id) {
            Ok(child) => slot.child = Some(child),
            Err(e) => tracing::warn!(worker = slot.id, "cannot restart exec child: {e}"),
        }
    }

    /// A free slot: the permit guarantees one, so `try_lock` finds it.
    async fn free_slot(&self) -> tokio::sync::MutexGuard<'_, Slot> {
        let n = self.slots.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        for i in 0..n {
            if let Ok(guard) = self.slots[(start + i) % n].try_lock() {
                return guard;
            }
        }
        self.slots[start].lock().await
    }

    async fn send(&self, batch: &Batch<Value>) -> BatchOutcome<Value> {
        let Ok(_permit) = self.free.acquire().await else {
            return BatchOutcome::retry(None, "the exec handler is shutting down");
        };
        // Declared after the permit, so released before it.
        let mut guard = self.free_slot().await;
        let slot: &mut Slot = &mut guard;
        if slot.busy {
            self.counters.ambiguous.fetch_add(1, Ordering::Relaxed);
            self.restart(slot, "a batch was abandoned while the child worked on it");
        }
        if let Some(child) = slot.child.as_mut() {
            if !drain_idle_output(child, &self.config.program, slot.id) {
                self.restart(slot, "the child exited while idle");
            }
        } else {
            self.restart(slot, "it was not running");
        }
        if slot.child.is_none() {
            return BatchOutcome::retry(
                None,
                format!("exec child `{}` cannot be started", self.config.program),
            );
        }
        let mut line = Self::request_line(batch.items()).into_bytes();
        line.push(b'\n');
        slot.busy = true;
        // Dropped before the reply is read only when the engine abandons the call (its
        // timeout): then the child is killed at once rather than left working.
        let reply = {
            let mut watch = AbandonWatch {
                slot: &mut *slot,
                armed: true,
            };
            let reply = match watch.slot.child.as_mut() {
                Some(child) => exchange(child, line).await,
                None => Err("it is not running".to_owned()),
            };
            watch.armed = false;
            reply
        };
        slot.busy = false;
        let failure = match reply {
            Ok(text) => match parse_reply(&text, batch.len()) {
                Ok(outcome) => return outcome,
                Err(why) => why,
            },
            Err(why) => why,
        };
        let failure = match slot.child.as_mut() {
            Some(child) => describe_exit(child, failure).await,
            None => failure,
        };
        self.counters.ambiguous.fetch_add(1, Ordering::Relaxed);
        self.restart(slot, &failure);
        BatchOutcome::retry(None, format!("exec child: {failure}"))
    }
}

/// Kills the slot's child if dropped while armed: its batch was abandoned in flight (the
/// engine's timeout dropped the call). The slot stays `busy`, so the next batch on it reaps
/// the child and starts a new one.
struct AbandonWatch<'a> {
    slot: &'a mut Slot,
    armed: bool,
}

impl Drop for AbandonWatch<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(child) = self.slot.child.as_mut() {
            tracing::warn!(
                worker = self.slot.id,
                pid = child.process.id(),
                "killing exec child: its batch was abandoned (timeout)"
            );
            // An error means it is already gone; the next batch reaps it either way.
            let _ = child.process.kill();
        }
    }
}

impl Handler<Value, Value> for ExecHandler {
    fn call<'a>(&'a self, batch: &'a Batch<Value>) -> BoxFuture<'a, BatchOutcome<Value>> {
        Box::pin(self.send(batch))
    }
}

/// Writes one request line and reads one reply line.
async fn exchange(child: &mut Child, line: Vec<u8>) -> Result<String, String> {
    let (done_tx, done_rx) = oneshot::channel();
    child
        .stdin
        .send((line, done_tx))
        .map_err(|_| "its stdin is closed".to_owned())?;
    match done_rx.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("writing to its stdin: {e}")),
        Err(_) => return Err("its stdin is closed".to_owned()),
    }
    match child.lines.recv().await {
        Some(reply) => reply,
        None => Err("it closed its stdout".to_owned()),
    }
}

/// Discards lines written between batches (they answer nothing); `false` when the child's
/// stdout is closed.
fn drain_idle_output(child: &mut Child, program: &str, id: usize) -> bool {
    loop {
        match child.lines.try_recv() {
            Ok(line) => tracing::warn!(
                program = %program,
                worker = id,
                "exec child wrote a line outside a batch (ignored): {}",
                clip(&line.unwrap_or_else(|e| e))
            ),
            Err(mpsc::error::TryRecvError::Empty) => return true,
            Err(mpsc::error::TryRecvError::Disconnected) => return false,
        }
    }
}

/// Adds the exit status to `why` if the child has exited (waiting briefly: its stdout closes
/// just before it exits).
async fn describe_exit(child: &mut Child, why: String) -> String {
    for _ in 0..20 {
        match child.process.try_wait() {
            Ok(Some(status)) => return format!("{why} ({status})"),
            Ok(None) => tokio::time::sleep(Duration::from_millis(5)).await,
            Err(_) => break,
        }
    }
    why
}

/// The outcome a reply line states, or why the line breaks the protocol.
fn parse_reply(line: &str, n: usize) -> Result<BatchOutcome<Value>, String> {
    let value: Value = serde_json::from_str(line)
        .map_err(|e| format!("invalid JSON line ({e}): {}", clip(line)))?;
    let Value::Object(mut reply) = value else {
        return Err(format!("expected a JSON object: {}", clip(line)));
    };
    for (field, per_item) in [
        (
            "outcomes",
            outcome as fn(Value) -> Result<ItemOutcome<Value>, String>,
        ),
        ("results", |r| Ok(item_outcome(r))),
    ] {
        let Some(list) = reply.remove(field) else {
            continue;
        };
        return match list {
            Value::Array(list) if list.len() == n => list
                .into_iter()
                .map(per_item)
                .collect::<Result<Vec<_>, _>>()
                .map(BatchOutcome::Done),
            Value::Array(list) => Err(format!("{} {field} for a batch of {n} items", list.len())),
            _ => Err(format!("`{field}` is not an array: {}", clip(line))),
        };
    }
    if let Some(message) = string_field(&reply, "split").or_else(|| string_field(&reply, "error")) {
        return Ok(BatchOutcome::split(message));
    }
    if let Some(message) = string_field(&reply, "retry") {
        return Ok(BatchOutcome::retry(retry_after(&reply)?, message));
    }
    if let Some(message) = string_field(&reply, "fatal") {
        return Ok(BatchOutcome::fatal(message));
    }
    Err(format!(
        "expected `outcomes`, `results`, `split`, `error`, `retry` or `fatal`: {}",
        clip(line)
    ))
}

/// A batch retry's delay: `retry_after` in seconds or `after_ms` in milliseconds.
fn retry_after(reply: &Map<String, Value>) -> Result<Option<Duration>, String> {
    if let Some(v) = reply.get("retry_after") {
        return match v.as_f64() {
            Some(s) if s >= 0.0 && s.is_finite() => Ok(Some(Duration::from_secs_f64(s))),
            _ => Err(format!(
                "`retry_after` must be a number of seconds, found {v}"
            )),
        };
    }
    Ok(reply
        .get("after_ms")
        .and_then(Value::as_u64)
        .map(Duration::from_millis))
}

/// One entry of `outcomes`: `{"ok": result}`, `{"retry": "msg"}` or `{"fatal": "msg"}`.
fn outcome(entry: Value) -> Result<ItemOutcome<Value>, String> {
    let Value::Object(mut fields) = entry else {
        return Err(format!(
            "an outcome must be {{\"ok\": ...}}, {{\"retry\": \"msg\"}} or {{\"fatal\": \"msg\"}}, found {}",
            clip(&entry.to_string())
        ));
    };
    if let Some(result) = fields.remove("ok") {
        return Ok(ItemOutcome::Ok(result));
    }
    if let Some(message) = string_field(&fields, "retry") {
        return Ok(ItemOutcome::Retry(message));
    }
    if let Some(message) = string_field(&fields, "fatal") {
        return Ok(ItemOutcome::Fatal(message));
    }
    Err(format!(
        "an outcome must be {{\"ok\": ...}}, {{\"retry\": \"msg\"}} or {{\"fatal\": \"msg\"}}, found {}",
        clip(&Value::Object(fields).to_string())
    ))
}

fn item_outcome(result: Value) -> ItemOutcome<Value> {
    if let Value::Object(fields) = &result {
        if let Some(message) = string_field(fields, "error") {
            return ItemOutcome::Fatal(message);
        }
        if let Some(message) = string_field(fields, "retry") {
            return ItemOutcome::Retry(message);
        }
    }
    ItemOutcome::Ok(result)
}

fn string_field(object: &Map<String, Value>, name: &str) -> Option<String> {
    object.get(name).and_then(Value::as_str).map(str::to_owned)
}

/// A line shortened for messages.
fn clip(line: &str) -> String {
    let line = line.trim_end();
    if line.chars().count() > 200 {
        format!("{}…", line.chars().take(200).collect::<String>())
    } else {
        line.to_owned()
    }
}

/// The stdin thread: writes each line and says how it went; ends when the handler drops
/// the sender.
fn write_lines(
    mut stdin: ChildStdin,
    lines: std_mpsc::Receiver<(Vec<u8>, oneshot::Sender<std::io::Result<()>>)>,
) {
    for (line, done) in lines {
        let result = stdin.write_all(&line).and_then(|()| stdin.flush());
        let failed = result.is_err();
        let _ = done.send(result);
        if failed {
            return;
        }
    }
}

/// The stdout thread: sends each line; ends (closing the channel) at end of file.
fn read_lines(stdout: impl Read, lines: mpsc::UnboundedSender<Result<String, String>>) {
    let mut reader = BufReader::new(stdout);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => return,
            Ok(_) => {
                let line = String::from_utf8(std::mem::take(&mut buf))
                    .map_err(|e| format!("a line that is not UTF-8: {e}"));
                if lines.send(line).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = lines.send(Err(format!("reading its stdout: {e}")));
                return;
            }
        }
    }
}

/// The stderr thread: each line becomes a warning.
fn forward_stderr(stderr: impl Read, program: &str, id: usize, pid: u32) {
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                tracing::warn!(
                    program = %program,
                    worker = id,
                    pid,
                    "exec child stderr: {}",
                    line.trim_end()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replies() {
        assert_eq!(
            parse_reply(
                r#"{"results": [1, {"error": "bad"}, {"retry": "later"}]}"#,
                3
            ),
            Ok(BatchOutcome::Done(vec![
                ItemOutcome::Ok(json!(1)),
                ItemOutcome::Fatal("bad".into()),
                ItemOutcome::Retry("later".into()),
            ]))
        );
        assert_eq!(
            parse_reply(r#"{"error": "boom"}"#, 2),
            Ok(BatchOutcome::split("boom"))
        );
        assert_eq!(
            parse_reply(r#"{"retry": "busy", "after_ms": 250}"#, 2),
            Ok(BatchOutcome::retry(
                Some(Duration::from_millis(250)),
                "busy"
            ))
        );
        assert_eq!(
            parse_reply(
                r#"{"outcomes": [{"ok": {"error": "a result field"}}, {"retry": "later"}, {"fatal": "bad"}]}"#,
                3
            ),
            Ok(BatchOutcome::Done(vec![
                ItemOutcome::Ok(json!({"error": "a result field"})),
                ItemOutcome::Retry("later".into()),
                ItemOutcome::Fatal("bad".into()),
            ]))
        );
        assert_eq!(
            parse_reply(r#"{"split": "ValueError: poison"}"#, 2),
            Ok(BatchOutcome::split("ValueError: poison"))
        );
        assert_eq!(
            parse_reply(r#"{"retry": "busy", "retry_after": 1.5}"#, 2),
            Ok(BatchOutcome::retry(
                Some(Duration::from_millis(1500)),
                "busy"
            ))
        );
        assert_eq!(
            parse_reply(r#"{"fatal": "bad credentials"}"#, 2),
            Ok(BatchOutcome::fatal("bad credentials"))
        );
        assert!(parse_reply(r#"{"retry": "x", "retry_after": "soon"}"#, 1).is_err());
        assert!(parse_reply(r#"{"outcomes": [{"ok": 1}]}"#, 2).is_err());
        assert!(parse_reply(r#"{"outcomes": [{"maybe": 1}]}"#, 1).is_err());
        assert!(parse_reply(r#"{"outcomes": [5]}"#, 1).is_err());
        assert!(parse_reply(r#"{"results": [1]}"#, 2).is_err());
        assert!(parse_reply("hello", 1).is_err());
        assert!(parse_reply("[1]", 1).is_err());
        assert!(parse_reply(r#"{"ok": true}"#, 1).is_err());
    }

    #[test]
    fn request_lines_carry_keys_and_items() {
        let items = vec![
            Item::new("a", 0, json!({"x": 1})),
            Item::new("b", 1, json!(2)),
        ];
        assert_eq!(
            ExecHandler::request_line(&items),
            r#"{"batch":[{"key":"a","item":{"x":1}},{"key":"b","item":2}]}"#
        );
    }
}
