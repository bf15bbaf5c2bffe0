//! `ferry keys` and what keys change about `ferry serve`: a request to the keyed service
//! without a key is refused, with the created key served, and refused again once the key is
//! revoked.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

use common::{http, Server, TempDir};

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
    let dir = TempDir::new("keys");
    let db = dir.0.join("k.db");
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

    // The keyed service: no key 401, the created key 200, and 401 again once revoked.
    let server = Server::on(dir.0.join("k.db").as_path(), &["--no-worker"]);
    assert!(server.banner.contains("1 API key(s)"), "{}", server.banner);
    let jobs = server.url("/v1/jobs");
    let bearer = format!("Bearer {key}");
    let (code, _, body) = http::get(&jobs, &[]);
    assert_eq!(code, 401, "without a key: {body}");
    let (code, _, body) = http::get(&jobs, &[("authorization", &bearer)]);
    assert_eq!(code, 200, "with the created key: {body}");
    let (code, _, body) = http::get(&jobs, &[("x-api-key", &key)]);
    assert_eq!(code, 200, "with the created key as X-API-Key: {body}");

    let revoked = ferry(&["keys", "--store", db, "revoke", &id]);
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    let (code, _, body) = http::get(&jobs, &[("authorization", &bearer)]);
    assert_eq!(code, 401, "with the revoked key: {body}");
    drop(server);
    let again = ferry(&["keys", "--store", db, "revoke", &id]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("no live key"));
    let empty = ferry(&["keys", "--store", db, "create", " "]);
    assert_eq!(empty.status.code(), Some(1));
}
