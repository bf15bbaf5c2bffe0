//! `ferry run` and `ferry validate` on bad input: one clear error naming where, no panic.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::BOARD_UPDATE_TOML;

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("ferry-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ferry(args: &[&str], job: &Path, env: &[(&str, &str)]) -> (Output, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.args(args).arg(job);
    for var in ["DATABASE_URL", "MONDAY_API_TOKEN", "MONDAY_API_URL"] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out, stderr)
}

#[test]
fn malformed_toml_names_the_line() {
    let d = Dir::new("malformed");
    let job = d.write("job.toml", "[source]\ntype = \"csv\"\npath = \n");
    let (out, err) = ferry(&["validate"], &job, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("job.toml:3: invalid TOML"), "{err}");
}

#[test]
fn unknown_and_mistyped_keys_are_all_reported_with_lines() {
    let d = Dir::new("keys");
    let job = d.write(
        "job.toml",
        "[source]\ntype = \"csv\"\npath = \"in.csv\"\nkye = \"id\"\n\n[handler]\ntype = \"jsonl\"\npath = \"out.jsonl\"\n\n[batch]\nmax_items = \"lots\"\n",
    );
    let (out, err) = ferry(&["validate"], &job, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("job.toml:4: `source.kye`: unknown key; expected one of:"),
        "{err}"
    );
    assert!(
        err.contains("job.toml:11: `batch.max_items`: expected an integer, found a string"),
        "{err}"
    );
}

#[test]
fn missing_environment_variable_is_named() {
    let d = Dir::new("env");
    let job = d.write("board.toml", BOARD_UPDATE_TOML);
    let (out, err) = ferry(&["run", "--execute"], &job, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("board.toml:") && err.contains("`DATABASE_URL` is not set"),
        "{err}"
    );
    assert!(err.contains("`MONDAY_API_TOKEN` is not set"), "{err}");
}

fn planning_db(d: &Dir, rows: &[(i64, &str, &str)]) -> PathBuf {
    let path = d.0.join("planning.db");
    let rows: Vec<(i64, String, String)> = rows
        .iter()
        .map(|(id, date, country)| (*id, (*date).to_owned(), (*country).to_owned()))
        .collect();
    common::planning_db(&path, &rows);
    path
}

/// A loopback listener standing in for monday.com: it counts the connections made to it
/// and answers each with a 500, so a run that should send nothing and does is caught (and
/// fails fast rather than waiting for a reply).
/// A stand-in for monday.com that answers every request with a 500 and counts the requests
/// that carry a mutation (a dry run may ask the board for its column types, a read, but must
/// never send a change).
fn counting_listener() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v2", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_millis(500)));
            let mut request = Vec::new();
            let mut buf = [0u8; 8192];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&request).contains("mutation") {
                    counted.fetch_add(1, Ordering::SeqCst);
                    break;
                }
            }
            let _ = stream.write_all(
                b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    });
    (url, hits)
}

#[test]
fn sql_syntax_error_is_one_clear_error() {
    let d = Dir::new("sql");
    let db = planning_db(&d, &[(1, "2025-01-01", "US")]);
    let job = d.write(
        "board.toml",
        &BOARD_UPDATE_TOML.replace("FROM planning_board_updates", "FORM planning_board_updates"),
    );
    let (out, err) = ferry(
        &["run", "--dry-run"],
        &job,
        &[("DATABASE_URL", db.to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("running the source query") && err.contains("syntax error"),
        "{err}"
    );
}

#[test]
fn unreachable_url_fails_before_reading() {
    let d = Dir::new("unreachable");
    let db = planning_db(&d, &[(1, "2025-01-01", "US")]);
    let job = d.write("board.toml", BOARD_UPDATE_TOML);
    let (out, err) = ferry(
        &["run"],
        &job,
        &[
            ("DATABASE_URL", db.to_str().unwrap()),
            ("MONDAY_API_TOKEN", "t"),
            ("MONDAY_API_URL", "http://127.0.0.1:9/v2"),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("http://127.0.0.1:9/v2") && err.contains("cannot reach 127.0.0.1:9"),
        "{err}"
    );
}

#[test]
fn a_row_the_mapping_cannot_render_is_named_in_a_dry_run() {
    let d = Dir::new("render");
    let db = planning_db(&d, &[(1, "2025-01-01", "US"), (2, "2025-01-02", "VN")]);
    // The mapping names a column the query does not return.
    let job = d.write(
        "board.toml",
        &BOARD_UPDATE_TOML.replace(
            "\"country\" = \"country_of_origin\"",
            "\"country\" = \"origin_country\"",
        ),
    );
    let (out, err) = ferry(
        &["run", "--dry-run"],
        &job,
        &[("DATABASE_URL", db.to_str().unwrap())],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{err}");
    assert!(stdout.contains("2 cannot be rendered"), "{stdout}");
    assert!(
        stdout.contains("columns.country") && stdout.contains("for item `1`"),
        "{stdout}"
    );
    assert!(err.contains("2 items cannot be rendered"), "{err}");
}

#[test]
fn dry_run_prints_requests_and_masks_the_token() {
    let d = Dir::new("dry");
    let db = planning_db(&d, &[(1, "2025-01-01", "US"), (2, "2025-01-02", "VN")]);
    let job = d.write("board.toml", BOARD_UPDATE_TOML);
    // monday.com is a local listener: a dry run that sent anything would be seen here, and
    // never reach the real service.
    let (monday, hits) = counting_listener();
    let (out, err) = ferry(
        &["run", "--dry_run"],
        &job,
        &[
            ("DATABASE_URL", db.to_str().unwrap()),
            ("MONDAY_API_TOKEN", "s3cret"),
            ("MONDAY_API_URL", &monday),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "a dry run sent a mutation to the API at {monday}"
    );
    assert!(
        !stdout.contains("s3cret") && !err.contains("s3cret"),
        "the token is shown:\n{stdout}\n{err}"
    );
    assert!(
        stdout.contains("column types of board 8709134353: not known (")
            && stdout.contains("values are shown as evaluated"),
        "{stdout}"
    );
    assert!(
        stdout.contains("a1: change_multiple_column_values(item_id: 2, board_id: 8709134353"),
        "{stdout}"
    );
    assert!(stdout.contains("Authorization: ***"), "{stdout}");
    assert!(
        stdout.contains("2 items read, 0 cannot be rendered; nothing was sent"),
        "{stdout}"
    );
}

/// A bad JSON Lines record is dead-lettered with its file, line and reason, and the good
/// records all land (exit 3); `source.on_error = "stop"` stops reading at it (exit 1).
#[test]
fn a_bad_record_is_dead_lettered_unless_on_error_is_stop() {
    let d = Dir::new("bad-record");
    d.write(
        "d.jsonl",
        "{\"id\": 1}\n{id: 2}\n{\"id\": 3}\n[4]\n{\"id\": 5}\n",
    );
    let job = d.write(
        "job.toml",
        "[source]\ntype = \"jsonl\"\npath = \"d.jsonl\"\nkey = \"id\"\n\n[handler]\ntype = \"jsonl\"\npath = \"out.jsonl\"\n\n[checkpoint]\nenabled = false\n",
    );
    let (out, err) = ferry(&["run"], &job, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{err}");
    assert!(
        stdout.contains("bad source records dead-lettered") && stdout.contains(": 2"),
        "{stdout}"
    );
    let written = std::fs::read_to_string(d.0.join("out.jsonl")).unwrap();
    let keys: Vec<serde_json::Value> = written
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["key"].clone())
        .collect();
    assert_eq!(keys, ["1", "3", "5"]);
    let dead = std::fs::read_to_string(d.0.join("job.dead.jsonl")).unwrap();
    let dead: Vec<serde_json::Value> = dead
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0]["payload"]["line"], 2);
    assert!(
        dead[0]["error"]
            .as_str()
            .unwrap()
            .ends_with("d.jsonl:2: key must be a string at column 2"),
        "{}",
        dead[0]["error"]
    );
    assert_eq!(dead[1]["payload"]["line"], 4);
    assert!(dead[1]["error"]
        .as_str()
        .unwrap()
        .contains("expected a JSON object, found an array"));

    std::fs::remove_file(d.0.join("out.jsonl")).unwrap();
    let (out, err) = ferry(&["run", "--set", "source.on_error=\"stop\""], &job, &[]);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("reading the source stopped early") && err.contains("d.jsonl:2:"),
        "{err}"
    );
    let written = std::fs::read_to_string(d.0.join("out.jsonl")).unwrap();
    assert_eq!(written.lines().count(), 1);
}

/// `ferry validate` names file, line and key of each bad path or type in an XML mapping.
#[test]
fn validate_names_the_line_and_key_of_a_bad_xml_mapping() {
    let d = Dir::new("xml-mapping");
    let job = d.write(
        "job.toml",
        "[source]\ntype = \"xml\"\npath = \"orders.xml\"\nrecord = \"order\"\n\n[source.columns]\nid = \"@id as money\"\nname = \"customer//name\"\n\n[handler]\ntype = \"jsonl\"\npath = \"out.jsonl\"\n",
    );
    let (out, err) = ferry(&["validate"], &job, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("job.toml:7: `source.columns.id`: `money` is not a type; expected text, integer, decimal, date, timestamp or boolean"),
        "{err}"
    );
    assert!(
        err.contains("job.toml:8: `source.columns.name`: `customer//name`: `` is not an element or attribute name"),
        "{err}"
    );
}
