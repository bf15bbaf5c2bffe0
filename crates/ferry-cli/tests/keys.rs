//! `ferry keys` and what keys change about `ferry serve`.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

fn ferry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn keys_create_list_revoke_and_serve_requires_them() {
    let dir = std::env::temp_dir().join(format!("ferry-keys-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("k.db");
    let db = db.to_str().unwrap();

    // Without keys, only loopback.
    let refused = ferry(&["serve", "--listen", "0.0.0.0:0", "--store", db]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("loopback only"),
        "{}",
        text(&refused.stderr)
    );

    let created = ferry(&["keys", "--store", db, "create", "acme", "--name", "ci"]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let key = text(&created.stdout).trim().to_owned();
    assert!(key.len() > 30, "{key}");
    let listed = ferry(&["keys", "--store", db, "list"]);
    let listing = text(&listed.stdout);
    assert!(
        listing.contains("acme") && listing.contains("ci"),
        "{listing}"
    );
    assert!(
        !listing.contains(&key),
        "the key itself is never shown again"
    );
    let id = listing
        .lines()
        .find(|l| l.contains("acme"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();

    // With a key, serve may listen beyond loopback and says keys are required.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--no-worker",
            "--store",
            db,
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let first = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(first.contains("1 API key(s)"), "{first}");

    let revoked = ferry(&["keys", "--store", db, "revoke", &id]);
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    let again = ferry(&["keys", "--store", db, "revoke", &id]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("no live key"));
    let empty = ferry(&["keys", "--store", db, "create", " "]);
    assert_eq!(empty.status.code(), Some(1));
    let _ = std::fs::remove_dir_all(&dir);
}
