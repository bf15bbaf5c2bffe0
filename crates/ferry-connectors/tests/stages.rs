//! Stages end to end: a SQLite table whose text column holds each record's XML (as the
//! original system keeps them) -> an `xml` stage -> a JSON Lines handler, through the job
//! runner: every good record lands once, in the stage's mapping; a bad document is
//! dead-lettered with the stage's name and the reason while the rest go on; the profile
//! counts each step; a resumed run writes nothing twice.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use ferry_connectors::job::{self, LoadOptions, RunOptions};
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ferry-stages-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `n` rows of `raw(row_id, doc)`: row 5 holds two orders (ids 5 and 100005), row 17 is not
/// well-formed, row 40 is NULL, row 99's total is not a decimal.
async fn raw_table(path: &Path, n: i64) {
    let pool = SqlitePool::connect_with(
        SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true),
    )
    .await
    .unwrap();
    sqlx::query("CREATE TABLE raw (row_id INTEGER PRIMARY KEY, doc TEXT)")
        .execute(&pool)
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    for i in 1..=n {
        let order = |id: i64, total: &str| {
            format!("<order id=\"{id}\"><name>A &amp; {id}</name><total currency=\"EUR\">{total}</total><items><item sku=\"s{id}\"/><item sku=\"t{id}\"/></items></order>")
        };
        let doc = match i {
            5 => Some(format!(
                "<orders>{}{}</orders>",
                order(5, "1.5"),
                order(100_005, "2")
            )),
            17 => Some("<order id=\"17\"><name>broken</order>".to_owned()),
            40 => None,
            99 => Some(order(99, "ninety")),
            _ => Some(order(i, &format!("{i}.25"))),
        };
        sqlx::query("INSERT INTO raw (row_id, doc) VALUES (?, ?)")
            .bind(i)
            .bind(doc)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    pool.close().await;
}

fn job_file(dir: &Path) -> PathBuf {
    let path = dir.join("staged.toml");
    let db = dir.join("raw.db");
    std::fs::write(
        &path,
        format!("[source]\ntype = \"sql\"\nurl = {:?}\nquery = \"SELECT row_id, doc FROM raw ORDER BY row_id\"\nkey = \"row_id\"\n\n\
         [[stage]]\ntype = \"xml\"\nfield = \"doc\"\nrecord = \"order\"\nkey = \"id\"\nkeep = [\"row_id\"]\nworkers = 2\nqueue = 16\n\
         [stage.columns]\nid = \"@id as integer\"\nname = \"name\"\ntotal = \"total as decimal\"\ncurrency = \"total/@currency\"\nmissing = \"nowhere\"\n\
         [stage.lists.lines]\npath = \"items/item\"\ncolumns.sku = \"@sku\"\n\n\
         [handler]\ntype = \"jsonl\"\npath = \"out.jsonl\"\n\n[batch]\nmax_items = 50\n",
            db.display().to_string()
        ),
    )
    .unwrap();
    path
}

fn written(dir: &Path) -> Vec<(String, Value)> {
    std::fs::read_to_string(dir.join("out.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["key"].as_str().unwrap().to_owned(), v["item"].clone())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_xml_stage_maps_a_text_column_and_dead_letters_bad_documents() {
    let dir = TempDir::new("xml");
    raw_table(&dir.0.join("raw.db"), 300).await;
    let job = job::load(&job_file(&dir.0), &LoadOptions::default()).unwrap();
    let summary = job::run(&job, &RunOptions::default(), |_| async {})
        .await
        .unwrap();

    // 300 rows, three bad, one with two orders.
    let out = written(&dir.0);
    assert_eq!(out.len(), 298);
    let keys: HashSet<&str> = out.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys.len(), 298, "no key twice");
    for bad in ["17", "40", "99"] {
        assert!(!keys.contains(bad), "{bad}");
    }
    let (_, second) = out.iter().find(|(k, _)| k == "100005").unwrap();
    assert_eq!(
        second,
        &serde_json::json!({"id": 100005, "name": "A & 100005", "total": "2", "currency": "EUR", "missing": null,
            "lines": [{"sku": "s100005"}, {"sku": "t100005"}], "row_id": 5})
    );
    assert_eq!(summary.report.progress.succeeded, 298);
    assert_eq!(summary.bad_records, 3);
    assert!(
        summary.warnings.contains(
            &"stage.0.columns.missing: path `nowhere` matched nothing in any of the 298 records"
                .to_owned()
        ),
        "{:?}",
        summary.warnings
    );

    // Dead letters name the stage, the item and the reason, and keep the item.
    let dead = std::fs::read_to_string(dir.0.join("staged.dead.jsonl")).unwrap();
    let letters: Vec<Value> = dead
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), 3, "{dead}");
    let by_key = |k: &str| {
        letters
            .iter()
            .find(|l| l["key"] == k)
            .unwrap_or_else(|| panic!("{k}: {dead}"))
    };
    let l17 = by_key("17");
    assert!(
        l17["error"]
            .as_str()
            .unwrap()
            .starts_with("stage `xml`: item `17`: byte "),
        "{l17}"
    );
    assert_eq!(l17["payload"]["stage"], "xml");
    assert_eq!(l17["payload"]["item"]["row_id"], 17);
    assert!(by_key("40")["error"]
        .as_str()
        .unwrap()
        .contains("field `doc` is null"));
    assert!(by_key("99")["error"]
        .as_str()
        .unwrap()
        .contains("`ninety` is not a decimal"));

    // The profile counts each step.
    let p = &summary.profile;
    let names: Vec<&str> = p.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["source", "xml", "sink"]);
    let xml = &p.nodes[1];
    assert_eq!((xml.items_in, xml.items_out, xml.errors), (300, 298, 3));
    assert_eq!((xml.workers, xml.queue_capacity), (2, Some(16)));
    assert_eq!(p.nodes[0].items_out, 300);
    assert_eq!(p.nodes[2].items_out, 298);
    assert!(p.bottleneck_line().starts_with("bottleneck: "));
    let json = serde_json::to_value(p).unwrap();
    assert!(json["queue_samples"]
        .as_array()
        .is_some_and(|s| !s.is_empty()));

    // A resumed run writes nothing again: every output and every dead letter is recorded.
    let resumed = RunOptions {
        resume: true,
        ..RunOptions::default()
    };
    let again = job::run(&job, &resumed, |_| async {}).await.unwrap();
    assert_eq!(again.skipped, 298 + 3);
    assert_eq!(written(&dir.0).len(), 298);
    let dead = std::fs::read_to_string(dir.0.join("staged.dead.jsonl")).unwrap();
    assert_eq!(dead.lines().count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sample_limit_sends_only_the_first_items() {
    let dir = TempDir::new("limit");
    raw_table(&dir.0.join("raw.db"), 200).await;
    let job = job::load(
        &job_file(&dir.0),
        &LoadOptions {
            sets: vec!["checkpoint.enabled=false".into()],
            ..Default::default()
        },
    )
    .unwrap();
    let opts = RunOptions {
        limit: Some(60),
        ..Default::default()
    };
    let summary = job::run(&job, &opts, |_| async {}).await.unwrap();
    assert_eq!(summary.report.progress.succeeded, 60, "{}", summary.report);
    assert_eq!(written(&dir.0).len(), 60);
}
