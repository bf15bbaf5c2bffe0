//! The exec helpers shipped in `examples/exec-handlers` (`ferry_exec.py`, `ferry_exec.js`)
//! behind a real `ExecHandler`: what a handler returns or raises becomes the outcome the
//! protocol documents. The Node.js cases run where `node` is installed (scripts/test.sh
//! installs it); elsewhere they say so and pass.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_connectors::exec::{ExecConfig, ExecHandler};
use ferry_core::{Batch, BatchOutcome, Handler, Item, ItemOutcome};
use serde_json::{json, Value};

fn helpers() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/exec-handlers")
        .canonicalize()
        .unwrap()
}

/// An exec handler running `program` on `script`, written to a temporary file.
fn handler(program: &str, name: &str, script: &str) -> ExecHandler {
    let dir = std::env::temp_dir().join(format!("ferry-exec-helpers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, script).unwrap();
    ExecHandler::new(ExecConfig {
        program: program.into(),
        args: vec![path.to_string_lossy().into_owned()],
        env: vec![(
            "FERRY_HELPERS".into(),
            helpers().to_string_lossy().into_owned(),
        )],
        workers: 1,
    })
    .unwrap()
}

fn batch(payloads: &[Value]) -> Batch<Value> {
    Batch::new(
        payloads
            .iter()
            .enumerate()
            .map(|(i, p)| Item::new(format!("k{i}"), i as u64, p.clone()))
            .collect(),
    )
}

/// The Python handler: `{"double": n}` doubles, `"retry"`/`"fatal"` items get those
/// outcomes, whole-batch signals by the first item, `"poison"` raises.
const PYTHON: &str = r#"
import os, sys
sys.path.insert(0, os.environ["FERRY_HELPERS"])
from ferry_exec import serve, Retry, Fatal

def handle(items):
    if items[0] == "busy":
        raise Retry("overloaded", after=1.5)
    if items[0] == "denied":
        raise Fatal("no access")
    out = []
    for x in items:
        if x == "poison":
            raise ValueError("cannot take " + x)
        if x == "retry":
            out.append(Retry("not yet"))
        elif x == "fatal":
            out.append(Fatal("never"))
        elif x == "print":
            print("printed, not sent")
            out.append({"error": "only a field"})
        else:
            out.append({"double": x["n"] * 2})
    return out

serve(handle)
"#;

const NODE: &str = r#"
const { serve, Retry, Fatal } = require(process.env.FERRY_HELPERS + "/ferry_exec.js");

serve(async (items) => {
  if (items[0] === "busy") throw new Retry("overloaded", { after: 1.5 });
  if (items[0] === "denied") throw new Fatal("no access");
  return items.map((x) => {
    if (x === "poison") throw new TypeError("cannot take " + x);
    if (x === "retry") return new Retry("not yet");
    if (x === "fatal") return new Fatal("never");
    if (x === "print") {
      console.log("printed, not sent");
      return { error: "only a field" };
    }
    return { double: x.n * 2 };
  });
});
"#;

/// The same cases for either helper; `error` is how the poison item's exception reads.
async fn check(h: &ExecHandler, error: &str) {
    let outcome = h
        .call(&batch(&[
            json!({"n": 2}),
            json!("retry"),
            json!("fatal"),
            json!("print"),
        ]))
        .await;
    assert_eq!(
        outcome,
        BatchOutcome::Done(vec![
            ItemOutcome::Ok(json!({"double": 4})),
            ItemOutcome::Retry("not yet".into()),
            ItemOutcome::Fatal("never".into()),
            // A result with an `error` field is a result: the helpers send `{"ok": ...}`.
            ItemOutcome::Ok(json!({"error": "only a field"})),
        ])
    );
    assert_eq!(
        h.call(&batch(&[json!("busy"), json!({"n": 1})])).await,
        BatchOutcome::retry(Some(Duration::from_millis(1500)), "overloaded")
    );
    assert_eq!(
        h.call(&batch(&[json!("denied")])).await,
        BatchOutcome::fatal("no access")
    );
    assert_eq!(
        h.call(&batch(&[json!({"n": 1}), json!("poison")])).await,
        BatchOutcome::split(error)
    );
    // print()/console.log went to stderr: the child still answers in step, and nothing was
    // taken as a protocol error (no restart, nothing ambiguous).
    assert_eq!(
        h.call(&batch(&[json!({"n": 5})])).await,
        BatchOutcome::Done(vec![ItemOutcome::Ok(json!({"double": 10}))])
    );
    assert_eq!(h.counters().ambiguous(), 0);
}

#[tokio::test]
async fn the_python_helper_maps_returns_and_raises_to_outcomes() {
    let h = handler("python3", "handler.py", PYTHON);
    check(&h, "ValueError: cannot take poison").await;
}

#[tokio::test]
async fn the_python_helper_serve_each_dead_letters_only_the_failing_item() {
    let script = r#"
import os, sys
sys.path.insert(0, os.environ["FERRY_HELPERS"])
from ferry_exec import serve_each, Retry

def one(x):
    if x == "poison":
        raise KeyError("n")
    if x == "retry":
        raise Retry("later")
    return x * 10

serve_each(one)
"#;
    let h = handler("python3", "each.py", script);
    assert_eq!(
        h.call(&batch(&[
            json!(1),
            json!("poison"),
            json!("retry"),
            json!(2)
        ]))
        .await,
        BatchOutcome::Done(vec![
            ItemOutcome::Ok(json!(10)),
            ItemOutcome::Fatal("KeyError: 'n'".into()),
            ItemOutcome::Retry("later".into()),
            ItemOutcome::Ok(json!(20)),
        ])
    );
}

fn node_installed() -> bool {
    std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn the_node_helper_maps_returns_and_throws_to_outcomes() {
    if !node_installed() {
        eprintln!("node is not installed: the Node.js helper is not tested here");
        return;
    }
    let h = handler("node", "handler.js", NODE);
    check(&h, "TypeError: cannot take poison").await;
}

#[tokio::test]
async fn the_examples_score_and_refuse_the_poison_text() {
    let texts = [
        json!({"text": "great love", "n": 1}),
        json!({"text": "poison"}),
    ];
    let mut programs = vec![("python3", "enrich.py")];
    if node_installed() {
        programs.push(("node", "enrich.js"));
    }
    for (program, script) in programs {
        let h = ExecHandler::new(ExecConfig {
            program: program.into(),
            args: vec![helpers().join(script).to_string_lossy().into_owned()],
            ..ExecConfig::default()
        })
        .unwrap();
        let BatchOutcome::Done(one) = h.call(&batch(&texts[..1])).await else {
            panic!("{program}")
        };
        assert!(
            matches!(&one[0], ItemOutcome::Ok(v) if v["score"] == 2 && v["n"] == 1),
            "{program}: {one:?}"
        );
        let both = h.call(&batch(&texts)).await;
        let refused = "cannot score the poison text";
        match both {
            // Python: the batch raised, so it is split to find the culprit.
            BatchOutcome::Split { reason } => assert_eq!(reason, format!("ValueError: {refused}")),
            // Node (serveEach): the item alone is dead-lettered.
            BatchOutcome::Done(items) => {
                assert_eq!(items[1], ItemOutcome::Fatal(format!("Error: {refused}")))
            }
            other => panic!("{program}: {other:?}"),
        }
    }
}
