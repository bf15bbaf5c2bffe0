//! `ExecHandler` end to end with real `python3` children speaking the line protocol.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ferry_connectors::exec::{ExecConfig, ExecHandler};
use ferry_core::{Batch, BatchOutcome, Handler, Item, ItemOutcome};
use serde_json::{json, Value};

/// The child's main loop; `SCRIPT` defines `handle(batch) -> reply`.
const PRELUDE: &str = r#"
import json, os, sys, time
def main():
    for line in sys.stdin:
        reply = handle(json.loads(line)["batch"])
        print(json.dumps(reply), flush=True)
"#;

fn handler(script: &str, workers: usize) -> ExecHandler {
    ExecHandler::new(ExecConfig {
        program: "python3".into(),
        args: vec!["-c".into(), format!("{PRELUDE}\n{script}\nmain()\n")],
        env: vec![("FERRY_TEST_TOKEN".into(), "s3cret".into())],
        workers,
    })
    .unwrap()
}

fn batch(items: Vec<Item<Value>>) -> Batch<Value> {
    Batch::new(items)
}

fn items(payloads: Vec<Value>) -> Batch<Value> {
    batch(
        payloads
            .into_iter()
            .enumerate()
            .map(|(i, p)| Item::new(format!("k{i}"), i as u64, p))
            .collect(),
    )
}

#[test]
fn a_missing_program_is_an_error_naming_it() {
    let err = ExecHandler::new(ExecConfig {
        program: "ferry-no-such-program".into(),
        ..ExecConfig::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("ferry-no-such-program"), "{err}");
}

/// Each item's result: its key, payload, the child's pid and the env token.
const ECHO: &str = r#"
def handle(batch):
    return {"results": [{"key": e["key"], "item": e["item"], "pid": os.getpid(),
                         "token": os.environ["FERRY_TEST_TOKEN"]} for e in batch]}
"#;

fn pids(outcome: &BatchOutcome<Value>) -> Vec<u64> {
    match outcome {
        BatchOutcome::Done(results) => results
            .iter()
            .map(|r| match r {
                ItemOutcome::Ok(v) => v["pid"].as_u64().unwrap(),
                other => panic!("{other:?}"),
            })
            .collect(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn echoes_results_in_order() {
    let h = handler(ECHO, 1);
    let outcome = h.call(&items(vec![json!({"a": 1}), json!("two")])).await;
    let pid = pids(&outcome)[0];
    assert_eq!(
        outcome,
        BatchOutcome::ok(vec![
            json!({"key": "k0", "item": {"a": 1}, "pid": pid, "token": "s3cret"}),
            json!({"key": "k1", "item": "two", "pid": pid, "token": "s3cret"}),
        ])
    );
    let again = h.call(&items(vec![json!(3)])).await;
    assert_eq!(pids(&again), vec![pid], "the child is long-lived");
    let text = h.describe_request(&[Item::new("k", 0, json!(1))]);
    assert!(
        text.contains("FERRY_TEST_TOKEN=***") && !text.contains("s3cret"),
        "{text}"
    );
    assert!(
        text.ends_with(r#"{"batch":[{"key":"k","item":1}]}"#),
        "{text}"
    );
}

#[tokio::test]
async fn item_errors_and_retries_stay_with_their_item() {
    let h = handler(
        r#"
def handle(batch):
    out = []
    for e in batch:
        if e["item"].get("bad"):
            out.append({"error": "bad row " + e["key"]})
        elif e["item"].get("busy"):
            out.append({"retry": "locked"})
        else:
            out.append(e["item"])
    return {"results": out}
"#,
        1,
    );
    let outcome = h
        .call(&items(vec![
            json!({"n": 1}),
            json!({"bad": true}),
            json!({"busy": true}),
        ]))
        .await;
    assert_eq!(
        outcome,
        BatchOutcome::Done(vec![
            ItemOutcome::Ok(json!({"n": 1})),
            ItemOutcome::Fatal("bad row k1".into()),
            ItemOutcome::Retry("locked".into()),
        ])
    );
}

#[tokio::test]
async fn batch_level_errors_split_and_retries_carry_the_delay() {
    let h = handler(
        r#"
def handle(batch):
    if batch[0]["item"] == "retry":
        return {"retry": "rate limited", "after_ms": 1500}
    return {"error": "transaction aborted"}
"#,
        1,
    );
    assert_eq!(
        h.call(&items(vec![json!(1), json!(2)])).await,
        BatchOutcome::split("transaction aborted")
    );
    assert_eq!(
        h.call(&items(vec![json!("retry")])).await,
        BatchOutcome::retry(Some(Duration::from_millis(1500)), "rate limited")
    );
    assert_eq!(h.counters().ambiguous(), 0);
}

#[tokio::test]
async fn a_crashing_child_is_restarted_and_the_batch_retried() {
    let h = handler(
        &format!(
            r#"{ECHO}
_echo = handle
def handle(batch):
    if any(e["item"] == "crash" for e in batch):
        sys.exit(3)
    if any(e["item"] == "garbage" for e in batch):
        return "not the protocol"
    return _echo(batch)
"#
        ),
        1,
    );
    let first = pids(&h.call(&items(vec![json!(1)])).await)[0];
    match h.call(&items(vec![json!(1), json!("crash")])).await {
        BatchOutcome::Retry {
            after: None,
            reason,
        } => {
            assert!(reason.contains("exit"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        h.counters().ambiguous(),
        1,
        "the child may have done the work"
    );
    let second = pids(&h.call(&items(vec![json!(2)])).await)[0];
    assert_ne!(first, second, "a new child serves the next batch");

    match h.call(&items(vec![json!("garbage")])).await {
        BatchOutcome::Retry { reason, .. } => {
            assert!(reason.contains("not the protocol"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.counters().ambiguous(), 2);
    let third = pids(&h.call(&items(vec![json!(3)])).await)[0];
    assert_ne!(second, third);
}

#[tokio::test]
async fn an_abandoned_batch_restarts_its_child() {
    let h = handler(
        &format!(
            r#"{ECHO}
_echo = handle
def handle(batch):
    if batch[0]["item"] == "slow":
        time.sleep(30)
    return _echo(batch)
"#
        ),
        1,
    );
    let first = pids(&h.call(&items(vec![json!(1)])).await)[0];
    let slow = items(vec![json!("slow")]);
    let timed_out = tokio::time::timeout(Duration::from_millis(300), h.call(&slow)).await;
    assert!(timed_out.is_err());
    // The hung child is killed when its batch is abandoned, not when the next batch comes.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while running(first) {
        assert!(
            std::time::Instant::now() < deadline,
            "the hung child {first} still runs"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Without the restart this batch would read nothing (or the slow batch's answer).
    let second = pids(&h.call(&items(vec![json!(2)])).await)[0];
    assert_ne!(first, second);
    assert_eq!(h.counters().ambiguous(), 1);
}

/// Whether process `pid` runs (exists and is not a zombie waiting to be reaped).
fn running(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rfind(')')
            .and_then(|i| s[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z")
    })
}

#[tokio::test]
async fn workers_serve_batches_concurrently_and_die_with_the_handler() {
    // Each child waits (5 s at most) until both have started a batch: only two children
    // serving at once pass this rendezvous.
    let dir = std::env::temp_dir().join(format!("ferry-exec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let h = Arc::new(handler(
        &format!(
            r#"{ECHO}
_echo = handle
def handle(batch):
    d = {dir:?}
    open(os.path.join(d, str(os.getpid())), "w").close()
    for _ in range(500):
        if len(os.listdir(d)) >= 2:
            return _echo(batch)
        time.sleep(0.01)
    return {{"error": "alone"}}
"#
        ),
        2,
    ));
    let (a, b) = (items(vec![json!(1)]), items(vec![json!(2)]));
    let (ra, rb) = tokio::join!(h.call(&a), h.call(&b));
    std::fs::remove_dir_all(&dir).unwrap();
    let (pa, pb) = (pids(&ra)[0], pids(&rb)[0]);
    assert_ne!(pa, pb, "two children");
    drop(h);
    for pid in [pa, pb] {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "child {pid} still exists"
        );
    }
}

/// Warnings seen by the test subscriber.
fn warnings() -> &'static Mutex<Vec<String>> {
    static SEEN: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    SEEN.get_or_init(|| {
        tracing::subscriber::set_global_default(Capture).unwrap();
        Mutex::new(Vec::new())
    })
}

/// A minimal subscriber recording the message of each warning.
struct Capture;

struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        warnings().lock().unwrap().push(message.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test]
async fn stderr_is_forwarded_without_breaking_the_protocol() {
    let _ = warnings();
    let h = handler(
        &format!(
            r#"{ECHO}
_echo = handle
def handle(batch):
    for e in batch:
        print("working on " + e["key"], file=sys.stderr, flush=True)
    print('{{"results": []}}', file=sys.stderr, flush=True)
    return _echo(batch)
"#
        ),
        1,
    );
    let outcome = h.call(&items(vec![json!(1), json!(2)])).await;
    assert_eq!(pids(&outcome).len(), 2);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let seen = warnings().lock().unwrap().clone();
        let stderr: Vec<&String> = seen
            .iter()
            .filter(|m| m.starts_with("exec child stderr: "))
            .collect();
        if stderr.iter().any(|m| m.ends_with("working on k1"))
            && stderr.iter().any(|m| m.ends_with(r#"{"results": []}"#))
        {
            assert!(stderr.iter().any(|m| m.ends_with("working on k0")));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
